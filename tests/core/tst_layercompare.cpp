// Comparing quantization methods on one layer (core/quant/LayerCompare.h) on stories260K (real trained
// weights) with calibration windows from the TinyStories sample: GPTQ beats RTN at the same grid on real
// layers, an RTN entry is bit-identical to quantizeRtn on the same weights, layers whose pipeline inputs
// are float give the pipeline's own codes and metrics, cancellation, histograms and errors.
#include <QTest>

#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>

#include "Stories260KRun.h"
#include "TestData.h"
#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "quant/LayerCompare.h"
#include "quant/Pipeline.h"
#include "quant/Rtn.h"

using namespace qs::core;
using nlohmann::json;

namespace {

using qs::test::CancellingProgress;

MethodConfig config(const char *method, int bits, int group, bool symmetric = false)
{
    MethodConfig c = MethodConfig::defaults(method);
    c.set("bits", int64_t(bits));
    c.set("group_size", int64_t(group));
    if (c.info().param("symmetric"))
        c.set("symmetric", symmetric);
    c.validate();
    return c;
}

uint64_t total(const Histogram &h)
{
    uint64_t n = 0;
    for (uint64_t c : h.counts)
        n += c;
    return n;
}

} // namespace

class TestLayerCompare : public QObject
{
    Q_OBJECT

    std::shared_ptr<const Model> m_model;
    std::string m_text;

    LayerCompareOptions options() const
    {
        LayerCompareOptions o;
        o.calibrationText = m_text;
        o.samples = 8;
        o.seqLen = 64;
        o.seed = 0;
        return o;
    }

    PipelineOptions pipelineOptions() const
    {
        PipelineOptions o = qs::test::calibrationOptions(m_text, 8, 64);
        o.cumulativeError = false;
        return o;
    }

    // A pipeline run that quantizes only `layer` with `c` (everything else stays float, so the layer's
    // inputs in the pipeline are those of the float model).
    QuantRun runOnly(const std::string &layer, const MethodConfig &c)
    {
        json plan;
        plan["default"] = c.toJson();
        std::string escaped;
        for (char ch : layer)
            escaped += ch == '.' ? std::string("\\.") : std::string(1, ch);
        plan["skip"] = json::array({ "lm_head", "model.embed_tokens", "re:(?!" + escaped + "$).*" });
        return qs::test::quantize(m_model, Plan::fromJson(plan), pipelineOptions());
    }

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(dir, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_model = openModel(dir.toStdString());
        m_text = text.toStdString();
    }

    void gptqBeatsRtn_data()
    {
        QTest::addColumn<QString>("layer");
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("group");
        QTest::newRow("q_proj b1 4-bit g128") << "model.layers.1.self_attn.q_proj" << 4 << 128;
        QTest::newRow("o_proj b2 4-bit g128") << "model.layers.2.self_attn.o_proj" << 4 << 128;
        QTest::newRow("down_proj b3 4-bit g128") << "model.layers.3.mlp.down_proj" << 4 << 128;
        QTest::newRow("up_proj b4 3-bit g32") << "model.layers.4.mlp.up_proj" << 3 << 32;
    }

    void gptqBeatsRtn()
    {
        QFETCH(QString, layer);
        QFETCH(int, bits);
        QFETCH(int, group);
        NullProgress p;
        const LayerComparison r = compareLayerMethods(m_model, layer.toStdString(),
            { config("rtn", bits, group), config("gptq", bits, group) }, options(), p);
        QCOMPARE(r.layer, layer.toStdString());
        QCOMPARE(int(r.entries.size()), 2);
        QCOMPARE(r.calibrationTokens, int64_t(8 * 64));
        const LayerCompareEntry &rtn = r.entries[0], &gptq = r.entries[1];
        QVERIFY2(rtn.error.empty(), rtn.error.c_str());
        QVERIFY2(gptq.error.empty(), gptq.error.c_str());
        qInfo("%s: rel output error RTN %.5f GPTQ %.5f; weight MSE RTN %.3g GPTQ %.3g", qPrintable(layer),
            rtn.metrics.relOutputError, gptq.metrics.relOutputError, rtn.metrics.weightMse, gptq.metrics.weightMse);
        QVERIFY(rtn.metrics.relOutputError > 0.0);
        QVERIFY(gptq.metrics.relOutputError < rtn.metrics.relOutputError);
        // GPTQ trades weight error for output error: its weight MSE is not what it minimises.
        QVERIFY(gptq.metrics.gptqLoss.has_value() && *gptq.metrics.gptqLoss > 0.0);
        QVERIFY(!rtn.metrics.gptqLoss.has_value());
        QCOMPARE(r.bestIndex(), 1);
        QCOMPARE(rtn.metrics.bits, bits);
        QCOMPARE(gptq.metrics.groupSize, group);
        QCOMPARE(rtn.metrics.bitsPerWeight, rtn.tensor.bitsPerWeight());
        QVERIFY(std::isfinite(rtn.metrics.sqnrDb) && rtn.metrics.sqnrDb > 0.0);
        rtn.tensor.validate();
        gptq.tensor.validate();
        QVERIFY(r.calibration.contains("text_sha256"));
    }

    void rtnEntryIsTheDirectRtn()
    {
        const std::string layer = "model.layers.2.mlp.gate_proj";
        const MethodConfig c = config("rtn", 4, 32);
        NullProgress p;
        const LayerComparison r = compareLayerMethods(m_model, layer, { c, config("rtn", 8, -1) }, options(), p);
        const Tensor &t = m_model->tensor(layer);
        const std::vector<float> w = m_model->readMatrix(t);
        const QuantizedTensor direct = quantizeRtn({ w.data(), t.rows, t.cols }, toRtnSpec(c), layer);
        const QuantizedTensor &got = r.entries[0].tensor;
        QCOMPARE(got.rows, t.rows);
        QCOMPARE(got.cols, t.cols);
        QVERIFY(got.codes == direct.codes);
        QVERIFY(got.scales == direct.scales);
        QVERIFY(got.zeros == direct.zeros);
        QVERIFY(got.dequantized == direct.dequantized);
        QCOMPARE(r.entries[0].label, std::string("RTN 4-bit g32"));
        QCOMPARE(r.entries[1].label, std::string("RTN 8-bit per channel"));
        // 8 bits per channel is far closer than 4 bits g32.
        QVERIFY(r.entries[1].metrics.relOutputError < 0.25 * r.entries[0].metrics.relOutputError);
        QCOMPARE(r.bestIndex(), 1);
    }

    // Where the pipeline's inputs are float, the comparison must give the pipeline's results.
    void matchesPipelineOnFloatInputs_data()
    {
        QTest::addColumn<QString>("layer");
        QTest::addColumn<QString>("method");
        QTest::newRow("gptq q_proj b0") << "model.layers.0.self_attn.q_proj" << "gptq";
        QTest::newRow("awq down_proj b0") << "model.layers.0.mlp.down_proj" << "awq";
        QTest::newRow("awq o_proj b0 (GQA)") << "model.layers.0.self_attn.o_proj" << "awq";
        QTest::newRow("smoothquant k_proj b0") << "model.layers.0.self_attn.k_proj" << "smoothquant";
        QTest::newRow("rtn v_proj b0") << "model.layers.0.self_attn.v_proj" << "rtn";
    }

    void matchesPipelineOnFloatInputs()
    {
        QFETCH(QString, layer);
        QFETCH(QString, method);
        const MethodConfig c = MethodConfig::defaults(method.toStdString());
        const QuantRun run = runOnly(layer.toStdString(), c);
        QCOMPARE(int(run.layers.size()), 1);
        const LayerResult &pl = run.layers.front();
        QCOMPARE(pl.name, layer.toStdString());
        NullProgress p;
        const LayerComparison r = compareLayerMethods(m_model, layer.toStdString(), { c }, options(), p);
        const LayerCompareEntry &e = r.entries.front();
        QVERIFY2(e.error.empty(), e.error.c_str());
        const QuantizedTensor *pt = run.findTensor(layer.toStdString());
        QVERIFY(pt);
        QVERIFY(e.tensor.codes == pt->codes);
        QVERIFY(e.tensor.scales == pt->scales);
        QVERIFY(e.tensor.inputScales == pt->inputScales);
        QCOMPARE(e.metrics.relOutputError, pl.relOutputError);
        QCOMPARE(e.metrics.weightMse, pl.weightMse);
        QCOMPARE(e.metrics.bitsPerWeight, pl.bitsPerWeight);
        QCOMPARE(e.metrics.inputScales, pl.inputScales);
        QCOMPARE(e.metrics.gptqLoss.has_value(), pl.gptqLoss.has_value());
        if (pl.gptqLoss)
            QCOMPARE(*e.metrics.gptqLoss, *pl.gptqLoss);
        if (method == QLatin1String("awq") && layer.contains(QLatin1String("o_proj")))
            QVERIFY(e.metrics.note.find("grouped-query") != std::string::npos); // stories260K: 8 heads, 4 kv
    }

    void histogramsShareBins()
    {
        NullProgress p;
        const std::string layer = "model.layers.1.self_attn.v_proj";
        const LayerComparison r = compareLayerMethods(m_model, layer,
            { config("rtn", 4, 128), config("gptq", 4, 128), config("awq", 4, 128), config("rtn", 8, -1) }, options(), p);
        QCOMPARE(int(r.entries.size()), 4);
        const uint64_t n = uint64_t(r.rows * r.cols);
        QCOMPARE(total(r.originalHistogram), n);
        for (const LayerCompareEntry &e : r.entries) {
            QVERIFY2(e.error.empty(), e.error.c_str());
            QCOMPARE(total(e.errorHistogram), n);
            QCOMPARE(total(e.weightHistogram), n);
            QCOMPARE(e.errorHistogram.lo, r.entries[0].errorHistogram.lo);
            QCOMPARE(e.errorHistogram.hi, r.entries[0].errorHistogram.hi);
            QCOMPARE(e.errorHistogram.lo, -e.errorHistogram.hi);
            QCOMPARE(e.weightHistogram.lo, r.originalHistogram.lo);
            QCOMPARE(int(e.errorHistogram.counts.size()), options().histogramBins);
        }
        // The 8-bit errors sit in the centre bins; the 4-bit ones spread out.
        auto centre = [](const Histogram &h) {
            const size_t m = h.counts.size() / 2;
            return h.counts[m - 1] + h.counts[m];
        };
        QVERIFY(centre(r.entries[3].errorHistogram) > centre(r.entries[0].errorHistogram));
        QCOMPARE(r.entries[2].metrics.inputScales, std::string("awq"));
    }

    void smoothQuantOnSiblingsAndWithoutNorm()
    {
        NullProgress p;
        const MethodConfig sq = MethodConfig::defaults("smoothquant");
        const LayerComparison q = compareLayerMethods(m_model, "model.layers.2.self_attn.q_proj", { sq }, options(), p);
        QCOMPARE(q.entries[0].metrics.inputScales, std::string("smoothquant"));
        QCOMPARE(q.entries[0].metrics.activationBits, 8);
        QVERIFY(q.entries[0].metrics.relOutputError > 0.0 && q.entries[0].metrics.relOutputError < 0.05);
        const LayerComparison d = compareLayerMethods(m_model, "model.layers.2.mlp.down_proj", { sq }, options(), p);
        QVERIFY(d.entries[0].metrics.inputScales.empty());
        QVERIFY(d.entries[0].metrics.note.find("no norm") != std::string::npos);
    }

    void cancels_data()
    {
        QTest::addColumn<double>("after");
        QTest::newRow("while capturing") << 2.0;
        QTest::newRow("between configurations") << 9.0; // 8 samples, then the first config
    }

    void cancels()
    {
        QFETCH(double, after);
        CancellingProgress p(after);
        QVERIFY_THROWS_EXCEPTION(Cancelled,
            compareLayerMethods(m_model, "model.layers.4.mlp.down_proj",
                { config("gptq", 4, 128), config("awq", 4, 128), config("rtn", 4, 128) }, options(), p));
        QVERIFY(p.done() >= after);
        QVERIFY(p.done() < after + 1.0); // stopped at the next check, not at the end
    }

    void errors()
    {
        NullProgress p;
        auto message = [&](const std::string &layer, const std::vector<MethodConfig> &cs) -> std::string {
            try {
                compareLayerMethods(m_model, layer, cs, options(), p);
            } catch (const Error &e) {
                return e.what();
            }
            return {};
        };
        QVERIFY(message("model.layers.0.input_layernorm", { config("rtn", 4, 128) }).find("not a block linear")
            != std::string::npos);
        QVERIFY(message("lm_head", { config("rtn", 4, 128) }).find("not a block linear") != std::string::npos);
        QVERIFY(message("model.layers.0.self_attn.q_proj", {}).find("no configurations") != std::string::npos);
        MethodConfig bad = MethodConfig::defaults("gptq");
        bad.set("group_size", int64_t(0)); // GPTQ has no per-tensor scale
        const std::string m = message("model.layers.0.self_attn.q_proj", { bad });
        QVERIFY2(m.find("layer compare: GPTQ 4-bit per tensor") != std::string::npos, m.c_str());
        LayerCompareOptions o = options();
        o.calibrationText.clear();
        QVERIFY_THROWS_EXCEPTION(
            Error, compareLayerMethods(m_model, "model.layers.0.self_attn.q_proj", { config("rtn", 4, 128) }, o, p));
    }
};

QTEST_MAIN(TestLayerCompare)
#include "tst_layercompare.moc"
