// GPTQ checkpoint export (core/export/GptqExport, docs/gptq-export.md) and the Hugging Face reader's GPTQ
// path (core/io/GptqTensorData), end to end on stories260K:
//  - runs made in-test with the pipeline at 2, 3, 4 and 8 bits, symmetric and not, groups of 32 and per
//    channel, act-order on and off, v1 and v2 zero conventions, AWQ input scales;
//  - an independent bit-by-bit decoder of the int32 words recovers exactly the run's codes and zeros;
//  - the reader's dequantized weights equal code·f16(scale) recomputed here, bit for bit;
//  - the exported folder's perplexity equals the RUN_DIR's within kPplRelTolerance;
//  - refusals, cancellation, unwritable targets; malformed GPTQ folders.
//
// stories260K's MLP is 172 wide: 2/3/4-bit values do not fill whole int32 words there (172 is not a
// multiple of 16/32/8), so the 2/3/4-bit runs quantize the attention linears and keep the MLP in float
// (modules_in_block_to_quantize); the 8-bit runs quantize every block linear (172 = 43·4), with groups of
// 32 that leave a last group of 12.
#include <QDir>
#include <QTest>

#include <array>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "Stories260KRun.h"
#include "TestData.h"
#include "common/Error.h"
#include "common/Half.h"
#include "eval/Evaluate.h"
#include "eval/TextSource.h"
#include "export/GptqExport.h"
#include "io/FormatRegistry.h"
#include "io/HfConfig.h"
#include "io/Safetensors.h"
#include "io/SafetensorsWriter.h"
#include "model/Forward.h"
#include "quant/Pipeline.h"
#include "quant/RunDir.h"

using namespace qs::core;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The exported model against its RUN_DIR: embeddings, norms and lm_head become F16 and scales F16, so the
// perplexities differ slightly; measured differences are below 0.1 % (see the qInfo lines).
constexpr double kPplRelTolerance = 0.005;

using qs::test::CancellingProgress;
using qs::test::errorText;

std::string readText(const fs::path &p)
{
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void writeText(const fs::path &p, const std::string &text)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

// --- The independent decoder: formats.md §3.2 read literally, one bit at a time. ---------------------------

std::vector<int32_t> wordsOf(const Safetensors &f, const std::string &name)
{
    const SafetensorsEntry *e = f.find(name);
    if (!e)
        qFatal("missing tensor %s", name.c_str());
    std::vector<int32_t> w(size_t(e->numel));
    std::memcpy(w.data(), f.tensorBytes(*e), w.size() * 4);
    return w;
}

// Value k of output column n of qweight [rows, N]: stream bit k·b + j of column n lives in word row
// (k·b + j) / 32, bit (k·b + j) % 32.
uint32_t qweightValue(const std::vector<int32_t> &w, int64_t N, int64_t k, int64_t n, int bits)
{
    uint32_t v = 0;
    for (int j = 0; j < bits; ++j) {
        const int64_t p = k * bits + j;
        const uint32_t word = uint32_t(w[size_t((p / 32) * N + n)]);
        v |= ((word >> (p % 32)) & 1u) << j;
    }
    return v;
}

// Value n of group row g of qzeros [G, W]: stream bit n·b + j of row g lives in word column (n·b + j) / 32.
uint32_t qzerosValue(const std::vector<int32_t> &w, int64_t W, int64_t g, int64_t n, int bits)
{
    uint32_t v = 0;
    for (int j = 0; j < bits; ++j) {
        const int64_t p = n * bits + j;
        const uint32_t word = uint32_t(w[size_t(g * W + p / 32)]);
        v |= ((word >> (p % 32)) & 1u) << j;
    }
    return v;
}

struct Case
{
    const char *plan;
    int bits;
    int groupSize;
    bool sym;
    bool actOrder;
    bool mlpFloat;
    const char *format; // checkpoint_format
};

} // namespace

class TestGptqExport : public QObject
{
    Q_OBJECT

    std::shared_ptr<const Model> m_model;
    std::string m_text;
    fs::path m_out;
    std::vector<int32_t> m_tokens;
    fs::path m_goodExport; // a 4-bit export the malformed-folder tests start from

    PipelineOptions options() const
    {
        // Small: about 20 pipeline runs under Debug+ASan.
        PipelineOptions o = qs::test::calibrationOptions(m_text, 4, 32);
        o.cumulativeError = false;
        return o;
    }

    QuantRun quantize(const std::string &planJson) { return qs::test::quantize(m_model, planJson, options()); }

    fs::path writeRun(const QuantRun &r, const std::string &name) { return qs::test::writeRun(r, m_out / name); }

    double perplexity(const std::shared_ptr<const Model> &m)
    {
        ForwardEngine engine(m);
        EvalOptions o;
        o.ctx = 128;
        o.maxChunks = 4;
        NullProgress p;
        return evaluatePerplexity(engine, m_tokens, o, p).perplexity;
    }

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(dir, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_text = text.toStdString();
        m_model = openModel(dir.toStdString());
        m_out = qs::test::freshOutputDir("tst_gptq_export");
        NullProgress p;
        m_tokens = tokenizeTextFile(*m_model, m_text, p).tokens;
    }

    void packingConstants()
    {
        // formats.md §3.3: symmetric v1 qzeros words are 0x77777777 (4-bit), 0x7F7F7F7F (8), 0x55555555 (2);
        // 3-bit: the stored value 3 repeated over 96 bits. Independent of the packer: literals.
        // (Checked on exported folders in roundTrip; here on the 3-bit pattern derived by hand.)
        const uint32_t w0 = 0xDB6DB6DBu, w1 = 0xB6DB6DB6u, w2 = 0x6DB6DB6Du;
        const std::vector<int32_t> words = { int32_t(w0), int32_t(w1), int32_t(w2) };
        for (int n = 0; n < 32; ++n)
            QCOMPARE(qzerosValue(words, 3, 0, n, 3), 3u);
    }

    void roundTrip_data()
    {
        QTest::addColumn<int>("index");
        // plans: attention only below 8 bits (see the file comment)
        static const Case cases[] = {
            { R"({"default": {"method": "gptq", "bits": 4, "group_size": 32, "symmetric": true, "act_order": true},
                  "skip": ["model.layers.*.mlp.*"]})", 4, 32, true, true, true, "gptq" },
            { R"({"default": {"method": "gptq", "bits": 4, "group_size": 32}, "skip": ["model.layers.*.mlp.*"]})",
                4, 32, false, false, true, "gptq" },
            { R"({"default": {"method": "gptq", "bits": 3, "group_size": -1}, "skip": ["model.layers.*.mlp.*"]})",
                3, -1, false, false, true, "gptq" },
            { R"({"default": {"method": "gptq", "bits": 3, "group_size": 32, "symmetric": true},
                  "skip": ["model.layers.*.mlp.*"]})", 3, 32, true, false, true, "gptq" },
            { R"({"default": {"method": "gptq", "bits": 2, "group_size": 32, "symmetric": true, "act_order": true},
                  "skip": ["model.layers.*.mlp.*"]})", 2, 32, true, true, true, "gptq" },
            { R"({"default": {"method": "gptq", "bits": 2, "group_size": -1}, "skip": ["model.layers.*.mlp.*"]})",
                2, -1, false, false, true, "gptq_v2" },
            { R"({"default": {"method": "gptq", "bits": 8, "group_size": 32, "act_order": true}})", 8, 32, false, true,
                false, "gptq" },
            { R"({"default": {"method": "rtn", "bits": 8, "group_size": -1, "symmetric": true}})", 8, -1, true, false,
                false, "gptq" },
            { R"({"default": {"method": "gptq", "bits": 8, "group_size": 32, "symmetric": true}})", 8, 32, true, false,
                false, "gptq_v2" },
            { R"({"default": {"method": "awq", "bits": 8, "group_size": 32}})", 8, 32, false, false, false, "gptq" },
        };
        for (int i = 0; i < int(std::size(cases)); ++i) {
            const Case &c = cases[i];
            const std::string tag = std::to_string(c.bits) + "-bit g" + std::to_string(c.groupSize)
                + (c.sym ? " sym" : " asym") + (c.actOrder ? " act-order" : "") + " " + c.format
                + (std::string(c.plan).find("awq") != std::string::npos ? " awq" : "")
                + (std::string(c.plan).find("rtn") != std::string::npos ? " rtn" : "");
            QTest::newRow(tag.c_str()) << i;
        }
        m_cases.assign(std::begin(cases), std::end(cases));
    }

    void roundTrip()
    {
        QFETCH(int, index);
        const Case &c = m_cases[size_t(index)];
        const QuantRun run = quantize(c.plan);
        const std::string tag = "case" + std::to_string(index);
        const fs::path runDir = writeRun(run, tag + "-run");
        const fs::path outDir = m_out / (tag + "-gptq");

        NullProgress progress;
        const ExportSource source = openExportSource(runDir.string(), progress);
        GptqExportOptions options;
        options.checkpointFormat = c.format;
        const ExportSummary summary = exportGptq(source, options, outDir.string(), progress);
        QCOMPARE(summary.format, std::string("gptq"));
        QCOMPARE(fs::path(summary.path), outDir);
        QVERIFY(summary.bytes > 0);
        QVERIFY(fs::is_regular_file(outDir / "model.safetensors"));
        QVERIFY(fs::is_regular_file(outDir / "tokenizer.json"));
        QVERIFY(fs::is_regular_file(outDir / "tokenizer_config.json"));
        for (const fs::directory_entry &e : fs::directory_iterator(m_out))
            QVERIFY2(e.path().filename().string().find(".tmp-") == std::string::npos, e.path().c_str());

        // config.json and quantize_config.json: keys and types.
        const json config = json::parse(readText(outDir / "config.json"));
        QCOMPARE(config["torch_dtype"].get<std::string>(), std::string("float16"));
        QCOMPARE(config["model_type"].get<std::string>(), std::string("llama"));
        QCOMPARE(config["hidden_size"].get<int>(), 64);
        for (const json &qc : { config["quantization_config"], json::parse(readText(outDir / "quantize_config.json")) }) {
            QVERIFY(qc["quant_method"].is_string() && qc["quant_method"] == "gptq");
            QVERIFY(qc["bits"].is_number_integer() && qc["bits"] == c.bits);
            QVERIFY(qc["group_size"].is_number_integer() && qc["group_size"] == c.groupSize);
            QVERIFY(qc["desc_act"].is_boolean() && qc["desc_act"] == c.actOrder);
            QVERIFY(qc["sym"].is_boolean() && qc["sym"] == c.sym);
            QVERIFY(qc["checkpoint_format"].is_string() && qc["checkpoint_format"] == c.format);
            QVERIFY(qc["lm_head"].is_boolean() && qc["lm_head"] == false);
            QVERIFY(qc["static_groups"].is_boolean());
            if (std::string(c.plan).find("gptq") != std::string::npos) {
                QVERIFY(qc["damp_percent"].is_number_float() && qc["damp_percent"] == 0.01);
                QVERIFY(qc["true_sequential"].is_boolean() && qc["true_sequential"] == true);
            }
            QCOMPARE(qc.contains("modules_in_block_to_quantize"), c.mlpFloat);
            if (c.mlpFloat)
                QCOMPARE(qc["modules_in_block_to_quantize"].dump(),
                    std::string(R"([["self_attn.q_proj","self_attn.k_proj","self_attn.v_proj"],["self_attn.o_proj"]])"));
        }

        // Tensors: shapes, dtypes, and the independent decode of every code and zero.
        const auto file = Safetensors::open((outDir / "model.safetensors").string());
        QCOMPARE(file->header().metadata.at("format"), std::string("pt"));
        const uint32_t mask = (1u << c.bits) - 1u;
        int quantized = 0;
        for (const QuantizedTensor &q : run.tensors) {
            ++quantized;
            const int64_t N = q.rows, K = q.cols, G = q.numGroups();
            const SafetensorsEntry *qw = file->find(q.name + ".qweight");
            const SafetensorsEntry *qz = file->find(q.name + ".qzeros");
            const SafetensorsEntry *sc = file->find(q.name + ".scales");
            const SafetensorsEntry *gi = file->find(q.name + ".g_idx");
            QVERIFY(qw && qz && sc && gi);
            QVERIFY(!file->find(q.name + ".weight"));
            QCOMPARE(qw->dtype, std::string("I32"));
            QCOMPARE(qz->dtype, std::string("I32"));
            QCOMPARE(sc->dtype, std::string("F16"));
            QCOMPARE(gi->dtype, std::string("I32"));
            QCOMPARE(qw->shape, (std::vector<uint64_t> { uint64_t(K * c.bits / 32), uint64_t(N) }));
            QCOMPARE(qz->shape, (std::vector<uint64_t> { uint64_t(G), uint64_t(N * c.bits / 32) }));
            QCOMPARE(sc->shape, (std::vector<uint64_t> { uint64_t(G), uint64_t(N) }));
            QCOMPARE(gi->shape, (std::vector<uint64_t> { uint64_t(K) }));
            const std::vector<int32_t> qweight = wordsOf(*file, q.name + ".qweight");
            const std::vector<int32_t> qzeros = wordsOf(*file, q.name + ".qzeros");
            const std::vector<int32_t> gIdx = wordsOf(*file, q.name + ".g_idx");
            QCOMPARE(gIdx, q.gIdx);
            for (int64_t n = 0; n < N; ++n)
                for (int64_t k = 0; k < K; ++k)
                    if (qweightValue(qweight, N, k, n, c.bits) != q.codes[size_t(n * K + k)])
                        QFAIL(qPrintable(QString("%1: code [%2][%3]").arg(q.name.c_str()).arg(n).arg(k)));
            const bool v1 = std::string(c.format) == "gptq";
            for (int64_t g = 0; g < G; ++g)
                for (int64_t n = 0; n < N; ++n) {
                    const uint32_t stored = qzerosValue(qzeros, N * c.bits / 32, g, n, c.bits);
                    const uint32_t zero = v1 ? ((stored + 1u) & mask) : stored;
                    QCOMPARE(float(zero), q.zero(n, int(g)));
                    if (c.sym)
                        QCOMPARE(zero, 1u << (c.bits - 1));
                }
            if (c.sym && v1 && c.bits != 3) {
                const uint32_t word = c.bits == 4 ? 0x77777777u : c.bits == 8 ? 0x7F7F7F7Fu : 0x55555555u;
                for (int32_t w : qzeros)
                    QCOMPARE(uint32_t(w), word);
            }
            if (c.sym && v1 && c.bits == 3)
                for (size_t i = 0; i < qzeros.size(); ++i)
                    QCOMPARE(uint32_t(qzeros[i]), (std::array<uint32_t, 3> { 0xDB6DB6DBu, 0xB6DB6DB6u, 0x6DB6DB6Du })[i % 3]);
            QCOMPARE(q.actOrderGroups(), c.actOrder);
            if (q.name == "model.layers.1.mlp.down_proj" && c.groupSize == 32) {
                QCOMPARE(G, int64_t(6)); // 172 = 5·32 + 12
                int lastGroup = 0;
                for (int32_t g : gIdx)
                    lastGroup += g == q.gIdx[171] ? 1 : 0;
                QVERIFY(lastGroup >= 12);
            }
        }
        QCOMPARE(quantized, c.mlpFloat ? 20 : 35);

        // Our reader: the folder opens as a model; quantized linears are code·f16(scale) exactly; float tensors
        // are the RUN_DIR's values rounded to F16.
        const std::shared_ptr<const Model> exported = openModel(outDir.string());
        QCOMPARE(exported->format, std::string("safetensors"));
        const std::shared_ptr<const Model> runModel = source.model;
        for (const QuantizedTensor &q : run.tensors) {
            const Tensor &t = exported->tensor(q.name);
            QCOMPARE(t.dtype, DType::GPTQ);
            QCOMPARE(t.rows, q.rows);
            QCOMPARE(t.cols, q.cols);
            const std::vector<float> w = exported->readMatrix(t);
            for (int64_t n = 0; n < q.rows; ++n)
                for (int64_t k = 0; k < q.cols; ++k) {
                    const int g = q.gIdx[size_t(k)];
                    const float s16 = halfToFloat(floatToHalf(q.scale(n, g)));
                    const float expect = s16 * (float(q.codes[size_t(n * q.cols + k)]) - q.zero(n, g));
                    const float got = w[size_t(n * q.cols + k)];
                    if (std::memcmp(&expect, &got, 4) != 0)
                        QFAIL(qPrintable(QString("%1 [%2][%3]: %4 vs %5").arg(q.name.c_str()).arg(n).arg(k).arg(got).arg(expect)));
                }
        }
        for (const Tensor &t : runModel->tensors) {
            if (run.findTensor(t.name))
                continue;
            const Tensor &e = exported->tensor(t.name);
            QCOMPARE(e.dtype, DType::F16);
            const std::vector<float> a = runModel->readMatrix(t), b = exported->readMatrix(e);
            QCOMPARE(a.size(), b.size());
            for (size_t i = 0; i < a.size(); ++i)
                QCOMPARE(b[i], halfToFloat(floatToHalf(a[i])));
        }

        // The notes report the F16 deviation, and it is the real one.
        double maxDelta = 0.0;
        for (const QuantizedTensor &q : run.tensors)
            for (int64_t n = 0; n < q.rows; ++n)
                for (int64_t k = 0; k < q.cols; ++k) {
                    const int g = q.gIdx[size_t(k)];
                    const uint8_t code = q.codes[size_t(n * q.cols + k)];
                    const double d = std::fabs(double(halfToFloat(floatToHalf(q.scale(n, g))) * (float(code) - q.zero(n, g)))
                        - double(q.scale(n, g) * (float(code) - q.zero(n, g))));
                    maxDelta = std::max(maxDelta, d);
                }
        char expectNote[64];
        std::snprintf(expectNote, sizeof expectNote, "max |Δw| %.3g", maxDelta);
        bool noted = false;
        for (const std::string &n : summary.notes)
            noted = noted || n.find(expectNote) != std::string::npos;
        QVERIFY2(noted, expectNote);

        // Same evaluation figures up to the F16 rounding.
        const double pplRun = perplexity(runModel);
        const double pplExported = perplexity(exported);
        qInfo("%-40s ppl run %.5f exported %.5f (%+.4f %%), max |dw| from f16 scales %.3g", QTest::currentDataTag(),
            pplRun, pplExported, 100.0 * (pplExported / pplRun - 1.0), maxDelta);
        QVERIFY2(std::fabs(pplExported / pplRun - 1.0) < kPplRelTolerance,
            qPrintable(QString("%1 vs %2").arg(pplExported).arg(pplRun)));

        if (index == 0)
            m_goodExport = outDir;
    }

    void refusals()
    {
        NullProgress p;
        const auto exportPlan = [&](const std::string &plan, const std::string &name) {
            const fs::path runDir = writeRun(quantize(plan), name);
            const ExportSource source = openExportSource(runDir.string(), p);
            return errorText([&] { exportGptq(source, {}, (m_out / (name + "-out")).string(), p); });
        };
        std::string e = exportPlan(R"({"default": {"method": "rtn", "bits": 4, "group_size": 32}})", "r-172");
        QVERIFY2(e.find("cannot be written as a GPTQ checkpoint") != std::string::npos, e.c_str());
        QVERIFY2(e.find("model.layers.0.mlp.down_proj: 172 input channels are not a multiple of 8") != std::string::npos,
            e.c_str());
        QVERIFY2(e.find("model.layers.0.mlp.gate_proj: 172 output channels are not a multiple of 8") != std::string::npos,
            e.c_str());

        e = exportPlan(R"({"default": {"method": "rtn", "bits": 8, "group_size": 32},
                           "rules": [{"match": "*q_proj", "group_size": -1}]})", "r-mixed");
        QVERIFY2(e.find("one bits/group_size for the whole checkpoint") != std::string::npos, e.c_str());
        QVERIFY2(e.find("8-bit group -1: model.layers.0.self_attn.q_proj") != std::string::npos, e.c_str());

        e = exportPlan(R"({"default": {"method": "smoothquant"}})", "r-sq");
        QVERIFY2(e.find("quantizes activations") != std::string::npos, e.c_str());
        QVERIFY2(e.find("weight-only") != std::string::npos, e.c_str());

        e = exportPlan(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1},
                           "rules": [{"match": "model.embed_tokens", "method": "rtn", "bits": 8, "group_size": -1}]})",
            "r-embed");
        QVERIFY2(e.find("model.embed_tokens: GPTQ checkpoints quantize only the linear layers") != std::string::npos,
            e.c_str());

        e = exportPlan(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1},
                           "skip": ["model.layers.0.mlp.*"]})", "r-uneven");
        QVERIFY2(e.find("quantizes other linears than block") != std::string::npos, e.c_str());

        // Float zero points (EfficientQAT-style) and unsupported bit widths, on a hand-edited copy of a run.
        const fs::path runDir = writeRun(quantize(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1}})"), "r-edit");
        ExportSource source = openExportSource(runDir.string(), p);
        {
            RunDirContents c = *source.run;
            c.tensors[0].zeroKind = ZeroPointKind::Float;
            c.tensors[1].bits = 5;
            ExportSource edited = source;
            edited.run = std::make_shared<const RunDirContents>(std::move(c));
            e = errorText([&] { exportGptq(edited, {}, (m_out / "r-edit-out").string(), p); });
            QVERIFY2(e.find("model.layers.0.self_attn.q_proj: fractional zero points") != std::string::npos, e.c_str());
            QVERIFY2(e.find("model.layers.0.self_attn.k_proj: 5-bit codes") != std::string::npos, e.c_str());
        }
        // A plain model is not a run.
        ExportSource plain;
        plain.path = "stories260K-hf";
        plain.model = m_model;
        e = errorText([&] { exportGptq(plain, {}, (m_out / "plain-out").string(), p); });
        QVERIFY2(e.find("stories260K-hf: is not a quantization run directory") == 0, e.c_str());
        // Unknown checkpoint format.
        GptqExportOptions bad;
        bad.checkpointFormat = "marlin";
        e = errorText([&] { exportGptq(source, bad, (m_out / "x").string(), p); });
        QVERIFY2(e.find("checkpoint format 'marlin'") != std::string::npos, e.c_str());
        for (const char *name : { "r-172-out", "r-mixed-out", "r-sq-out", "r-embed-out", "r-uneven-out", "r-edit-out" })
            QVERIFY(!fs::exists(m_out / name));
    }

    void targetsAndCancel()
    {
        NullProgress p;
        const fs::path runDir = writeRun(quantize(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1}})"), "t-run");
        const ExportSource source = openExportSource(runDir.string(), p);

        // Cancelled halfway: nothing left, not even the temporary folder.
        const fs::path target = m_out / "t-cancel";
        CancellingProgress cancel(20000.0);
        QVERIFY_THROWS_EXCEPTION(Cancelled, exportGptq(source, {}, target.string(), cancel));
        QVERIFY(!fs::exists(target));
        for (const fs::directory_entry &e : fs::directory_iterator(m_out))
            QVERIFY2(e.path().filename().string().rfind("t-cancel.tmp-", 0) != 0, e.path().c_str());

        // A previous export is replaced; a cancelled re-export leaves it untouched.
        exportGptq(source, {}, target.string(), p);
        const std::string before = readText(target / "config.json");
        CancellingProgress cancel2(1000.0);
        QVERIFY_THROWS_EXCEPTION(Cancelled, exportGptq(source, {}, target.string(), cancel2));
        QCOMPARE(readText(target / "config.json"), before);
        const ExportSummary again = exportGptq(source, {}, target.string(), p);
        QVERIFY(again.bytes > 0);

        // A folder that is not a GPTQ checkpoint is never replaced.
        const fs::path occupied = m_out / "t-occupied";
        fs::create_directories(occupied);
        writeText(occupied / "notes.txt", "mine");
        std::string e = errorText([&] { exportGptq(source, {}, occupied.string(), p); });
        QVERIFY2(e == occupied.string() + ": exists and is not a GPTQ checkpoint folder (refusing to replace it)", e.c_str());
        QCOMPARE(readText(occupied / "notes.txt"), std::string("mine"));

        // Unwritable targets name the path.
        const fs::path underFile = m_out / "t-occupied" / "notes.txt" / "out";
        e = errorText([&] { exportGptq(source, {}, underFile.string(), p); });
        QVERIFY2(e.rfind(underFile.string() + ": the folder ", 0) == 0, e.c_str());
        if (::geteuid() != 0) {
            const fs::path locked = m_out / "t-locked";
            fs::create_directories(locked);
            fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
            e = errorText([&] { exportGptq(source, {}, (locked / "out").string(), p); });
            fs::permissions(locked, fs::perms::owner_all);
            QVERIFY2(e.rfind((locked / "out").string() + ": cannot create a temporary folder beside it: ", 0) == 0,
                e.c_str());
        }
    }

    // Malformed GPTQ folders: each a copy of a good export with one thing broken.
    void malformed_data()
    {
        QTest::addColumn<QString>("what");
        QTest::addColumn<QString>("expected");
        QTest::newRow("qweight shape") << "qweight-shape"
                                       << "model.safetensors: tensor 'model.layers.0.self_attn.q_proj.qweight' has shape [7, 64] but 64 input channels at 4 bits need [8, 64]";
        QTest::newRow("g_idx out of range") << "gidx-range"
                                            << "model.safetensors: tensor 'model.layers.0.self_attn.q_proj.g_idx': g_idx[5] = 2 is outside the 2 groups [0, 1]";
        QTest::newRow("bits unsupported") << "bits-5" << "config.json: 'quantization_config.bits' is 5; GPTQ checkpoints use 2, 3, 4 or 8 bits";
        QTest::newRow("bits disagree") << "bits-8" << "tensor 'model.layers.0.self_attn.k_proj.qweight' has shape [8, 32] but 64 input channels at 8 bits need [16, 32]";
        QTest::newRow("truncated") << "truncated" << "model.safetensors: ";
        QTest::newRow("qzeros missing") << "no-qzeros" << "has a qweight but no 'model.layers.0.self_attn.q_proj.qzeros' tensor";
        QTest::newRow("scales dtype") << "scales-i32" << "tensor 'model.layers.0.self_attn.q_proj.scales' has dtype I32; GPTQ scales are F16, BF16 or F32";
        QTest::newRow("scales groups") << "scales-groups" << "tensor 'model.layers.0.self_attn.q_proj.scales' has shape [1, 64]; expected [2, 64]";
        QTest::newRow("both float and GPTQ") << "duplicate" << "'model.layers.0.self_attn.q_proj' is stored both as GPTQ tensors and as a float weight";
    }

    void malformed()
    {
        QFETCH(QString, what);
        QFETCH(QString, expected);
        if (m_goodExport.empty())
            QSKIP("roundTrip did not produce the 4-bit export");
        const fs::path dir = m_out / ("bad-" + what.toStdString());
        fs::remove_all(dir);
        fs::create_directories(dir);
        for (const char *name : { "config.json", "tokenizer.json", "tokenizer_config.json" })
            fs::copy_file(m_goodExport / name, dir / name);
        const auto src = Safetensors::open((m_goodExport / "model.safetensors").string());
        const std::string w = what.toStdString();

        // Rewrite the tensors with one change.
        std::vector<std::vector<uint8_t>> keep;
        std::vector<SafetensorsTensorView> views;
        const std::string q = "model.layers.0.self_attn.q_proj";
        for (const SafetensorsEntry &e : src->tensors()) {
            if (w == "no-qzeros" && e.name == q + ".qzeros")
                continue;
            SafetensorsTensorView v;
            v.info.name = e.name;
            v.info.shape = e.shape;
            v.info.dtype = e.dtype == "I32" ? SafetensorsDType::I32 : e.dtype == "F16" ? SafetensorsDType::F16 : SafetensorsDType::F32;
            keep.emplace_back(src->tensorBytes(e), src->tensorBytes(e) + e.byteSize());
            std::vector<uint8_t> &bytes = keep.back();
            if (w == "qweight-shape" && e.name == q + ".qweight") {
                v.info.shape[0] -= 1;
                bytes.resize(bytes.size() - 64 * 4);
            }
            if (w == "gidx-range" && e.name == q + ".g_idx") {
                const int32_t bad = 2;
                std::memcpy(bytes.data() + 5 * 4, &bad, 4);
            }
            if (w == "scales-i32" && e.name == q + ".scales") {
                v.info.dtype = SafetensorsDType::I32;
                v.info.shape[1] /= 2;
            }
            if (w == "scales-groups" && e.name == q + ".scales") {
                v.info.shape[0] = 1;
                bytes.resize(bytes.size() / 2);
            }
            views.push_back(v);
        }
        if (w == "duplicate") {
            keep.emplace_back(size_t(64 * 64 * 2), uint8_t(0));
            SafetensorsTensorView v;
            v.info = { q + ".weight", SafetensorsDType::F16, { 64, 64 } };
            views.push_back(v);
        }
        for (size_t i = 0; i < views.size(); ++i)
            views[i].data = keep[i].data();
        writeSafetensors((dir / "model.safetensors").string(), views);

        if (w == "truncated") {
            const auto size = fs::file_size(dir / "model.safetensors");
            fs::resize_file(dir / "model.safetensors", size - 100);
        }
        if (w == "bits-5" || w == "bits-8") {
            json config = json::parse(readText(dir / "config.json"));
            config["quantization_config"]["bits"] = w == "bits-5" ? 5 : 8;
            writeText(dir / "config.json", config.dump(2));
        }
        const std::string e = errorText([&] { (void)openModel(dir.string()); });
        QVERIFY2(e.find(expected.toStdString()) != std::string::npos, e.c_str());
    }

    void gptqConfigParsing()
    {
        // v1 and v2 spellings, format alias, sym default.
        const std::string base = readText(m_goodExport.empty() ? fs::path() : m_goodExport / "config.json");
        if (base.empty())
            QSKIP("roundTrip did not produce the 4-bit export");
        json c = json::parse(base);
        c["quantization_config"].erase("checkpoint_format");
        c["quantization_config"]["format"] = "gptq_v2";
        c["quantization_config"].erase("sym");
        const HfConfig parsed = parseHfConfig(c.dump(), "config.json");
        QVERIFY(parsed.gptq);
        QCOMPARE(parsed.gptq->checkpointFormat, std::string("gptq_v2"));
        QCOMPARE(parsed.gptq->bits, 4);
        QCOMPARE(parsed.gptq->groupSize, 32);
        QVERIFY(parsed.gptq->sym);
        QVERIFY(!parsed.warnings.empty());
        c["quantization_config"]["checkpoint_format"] = "gptq";
        const std::string e = errorText([&] { (void)parseHfConfig(c.dump(), "config.json"); });
        QVERIFY2(e.find("'quantization_config.format' is 'gptq_v2' but checkpoint_format is 'gptq'") != std::string::npos,
            e.c_str());
    }

private:
    std::vector<Case> m_cases;
};

QTEST_GUILESS_MAIN(TestGptqExport)
#include "tst_gptq_export.moc"
