// The block-by-block quantization pipeline end to end on stories260K (real trained weights): quality
// ordering of the methods, SmoothQuant's FP-exact folding, cancellation leaving nothing behind, and the
// run directory round trip (weights, evaluation, original-model checks).
//
// Sizes are kept small for Debug+ASan runs: 8 calibration windows of 64 tokens from the TinyStories
// sample, evaluation at ctx 128 on the first 4 chunks of the same text (in-domain; the numbers compare
// quantizations, they are not a benchmark).
#include <QFile>
#include <QTest>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "Stories260KRun.h"
#include "TestData.h"
#include "VectorTensorData.h"
#include "common/Error.h"
#include "eval/Evaluate.h"
#include "eval/TextSource.h"
#include "io/FormatRegistry.h"
#include "model/Forward.h"
#include "quant/Pipeline.h"
#include "quant/RunDir.h"

using namespace qs::core;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using qs::test::CancellingProgress;
using qs::test::errorText;

// In-memory float rows for hand-built model variants.
using VecData = qs::test::VectorTensorData;

void replaceData(Model &m, const std::string &name, std::vector<float> values)
{
    for (Tensor &x : m.tensors)
        if (x.name == name)
            x.data = std::make_shared<VecData>(std::move(values), x.cols);
}

std::vector<std::string> tempLeftovers(const fs::path &dir, const std::string &stem)
{
    std::vector<std::string> out;
    for (const fs::directory_entry &e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind(stem + ".tmp-", 0) == 0)
            out.push_back(e.path().string());
    return out;
}

} // namespace

class TestPipeline : public QObject
{
    Q_OBJECT

    std::shared_ptr<const Model> m_model;
    std::string m_text;
    std::string m_modelDir;
    QString m_out;

    PipelineOptions options(bool evaluate, bool cumulative = false) const
    {
        PipelineOptions o = qs::test::calibrationOptions(m_text, 8, 64);
        o.cumulativeError = cumulative;
        if (evaluate) {
            o.evalText = m_text;
            o.eval.ctx = 128;
            o.eval.maxChunks = 4;
        }
        return o;
    }

    QuantRun quantize(const std::string &planJson, const PipelineOptions &o)
    {
        return qs::test::quantize(m_model, planJson, o);
    }

    static void report(const char *what, const QuantRun &r)
    {
        QVERIFY(r.evaluation);
        const RunEvaluation &e = *r.evaluation;
        qInfo("%-22s ppl %.4f (orig %.4f, %+.2f%%)  KLD mean %.5f median %.5f p99 %.5f  top-1 %.4f  bpw %.3f  %.1f s",
            what, e.perplexity, e.originalPerplexity, 100.0 * (e.perplexity / e.originalPerplexity - 1.0), e.kldMean,
            e.kldMedian, e.kldP99, e.top1Agreement, r.bitsPerWeight, r.seconds);
    }

    // Logits of a model on the first 96 tokens of the sample text.
    std::vector<float> logits(const std::shared_ptr<const Model> &m)
    {
        NullProgress p;
        const TokenizedText text = tokenizeTextFile(*m_model, m_text, p);
        std::vector<int32_t> tokens(text.tokens.begin(), text.tokens.begin() + 96);
        ForwardEngine engine(m);
        return engine.forwardAll(tokens);
    }

    static double maxRelDiff(const std::vector<float> &a, const std::vector<float> &b)
    {
        double maxAbs = 0.0, scale = 0.0;
        for (size_t i = 0; i < a.size(); ++i) {
            maxAbs = std::max(maxAbs, std::fabs(double(a[i]) - double(b[i])));
            scale = std::max(scale, std::fabs(double(b[i])));
        }
        return maxAbs / scale;
    }

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(dir, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_modelDir = dir.toStdString();
        m_text = text.toStdString();
        m_model = openModel(m_modelDir);
        m_out = QString::fromStdString(qs::test::freshOutputDir("tst_pipeline").string());
    }

    void rtn8IsWithinOnePercent()
    {
        std::vector<LayerResult> seen;
        std::vector<std::pair<int, double>> blocks;
        PipelineCallbacks cb;
        cb.onLayerDone = [&](const LayerResult &l) { seen.push_back(l); };
        cb.onBlockDone = [&](int b, double e) { blocks.emplace_back(b, e); };
        NullProgress progress;
        const Plan plan = Plan::fromJson(json::parse(R"({"default": {"method": "rtn", "bits": 8, "group_size": -1}})"));
        const QuantRun r = runQuantization(m_model, plan, options(true, true), cb, progress);
        report("RTN 8-bit per channel", r);
        QCOMPARE(int(r.layers.size()), 35);
        QCOMPARE(int(seen.size()), 35);
        QCOMPARE(seen.front().name, std::string("model.layers.0.self_attn.q_proj"));
        QCOMPARE(seen.back().name, std::string("model.layers.4.mlp.down_proj"));
        QCOMPARE(int(blocks.size()), 5);
        for (const auto &[b, e] : blocks) {
            QVERIFY(std::isfinite(e));
            QVERIFY(e > 0.0 && e < 0.05);
        }
        for (const LayerResult &l : r.layers) {
            QCOMPARE(l.bits, 8);
            QVERIFY(l.relOutputError > 0.0 && l.relOutputError < 0.02);
            QVERIFY(l.sqnrDb > 35.0);
            QVERIFY(!l.gptqLoss);
        }
        // 8 bits + (16 + 8)/cols per row: 8.375 for 64 columns, 8.14 for down_proj's 172.
        QVERIFY(r.bitsPerWeight > 8.3 && r.bitsPerWeight < 8.4);
        const RunEvaluation &e = *r.evaluation;
        QVERIFY2(
            std::fabs(e.perplexity / e.originalPerplexity - 1.0) < 0.01, qPrintable(QString::number(e.perplexity)));
        QVERIFY(e.kldMean < 0.005);
        QVERIFY(e.top1Agreement > 0.95);
        // Provenance.
        QCOMPARE(r.provenance.modelFiles.size(), size_t(4)); // config, model, tokenizer, tokenizer_config
        QCOMPARE(r.provenance.modelSha256.size(), size_t(64));
        QCOMPARE(r.provenance.calibration["seed"].get<int>(), 0);
        QCOMPARE(r.provenance.calibration["text_sha256"].get<std::string>().size(), size_t(64));
        QVERIFY(!r.provenance.date.empty());
    }

    void gptqBeatsRtnAtFourBitsG32()
    {
        const QuantRun rtn = quantize(R"({"default": {"method": "rtn", "bits": 4, "group_size": 32}})", options(true));
        const QuantRun gptq
            = quantize(R"({"default": {"method": "gptq", "bits": 4, "group_size": 32}})", options(true));
        report("RTN 4-bit g32", rtn);
        report("GPTQ 4-bit g32", gptq);
        const RunEvaluation &a = *rtn.evaluation, &b = *gptq.evaluation;
        QCOMPARE(a.originalPerplexity, b.originalPerplexity);
        QVERIFY2(std::fabs(b.perplexity - b.originalPerplexity) < std::fabs(a.perplexity - a.originalPerplexity),
            qPrintable(QString("GPTQ %1 vs RTN %2").arg(b.perplexity).arg(a.perplexity)));
        QVERIFY2(b.kldMean < a.kldMean, qPrintable(QString("GPTQ %1 vs RTN %2").arg(b.kldMean).arg(a.kldMean)));

        // Layer-level: GPTQ's output error on the calibration inputs is below RTN's for (nearly) every layer
        // (the inputs differ after block 0, since each stack feeds its own quantized outputs forward).
        int better = 0;
        for (size_t i = 0; i < gptq.layers.size(); ++i) {
            QCOMPARE(gptq.layers[i].name, rtn.layers[i].name);
            QVERIFY(gptq.layers[i].gptqLoss.has_value());
            QCOMPARE(*gptq.layers[i].damp, 0.01);
            better += gptq.layers[i].relOutputError < rtn.layers[i].relOutputError ? 1 : 0;
        }
        QVERIFY2(better >= 30, qPrintable(QString::number(better)));

        // down_proj has 172 input columns: groups of 32 leave a last group of 12.
        for (const QuantRun *r : { &rtn, &gptq }) {
            const QuantizedTensor *t = r->findTensor("model.layers.2.mlp.down_proj");
            QVERIFY(t);
            QCOMPARE(t->cols, int64_t(172));
            QCOMPARE(t->numGroups(), 6);
            QCOMPARE(t->gIdx[171], 5);
            QCOMPARE(t->gIdx[160], 5);
            QCOMPARE(t->gIdx[159], 4);
            t->validate();
            QVERIFY(std::fabs(t->bitsPerWeight() - (4.0 + 6.0 * 20.0 / 172.0)) < 1e-9);
        }
    }

    void smoothQuantFoldKeepsLogits()
    {
        for (double alpha : { 0.5, 0.85 }) {
            const std::string planText
                = R"({"default": {"method": "smoothquant", "alpha": )" + std::to_string(alpha) + "}}";
            const QuantRun r = quantize(planText.c_str(), options(alpha == 0.5));
            if (alpha == 0.5)
                report("SmoothQuant W8A8 a0.5", r);

            // Fold only: the modified norms with the smoothed weights W·diag(s) in float (no quantization).
            auto folded = std::make_shared<Model>(*m_model);
            int smoothed = 0;
            for (const QuantizedTensor &t : r.tensors) {
                std::vector<float> w = m_model->readMatrix(m_model->tensor(t.name));
                if (!t.inputScales.empty()) {
                    QCOMPARE(t.inputScalesSource, std::string("smoothquant"));
                    for (int64_t row = 0; row < t.rows; ++row)
                        for (int64_t c = 0; c < t.cols; ++c)
                            w[size_t(row * t.cols + c)] *= t.inputScales[size_t(c)];
                    ++smoothed;
                }
                replaceData(*folded, t.name, std::move(w));
            }
            QCOMPARE(smoothed, 25); // q/k/v and gate/up of 5 blocks; o and down have no norm in front
            QCOMPARE(int(r.modifiedTensors.size()), 10); // both norms of every block
            for (const auto &[name, values] : r.modifiedTensors)
                replaceData(*folded, name, values);
            const double diff = maxRelDiff(logits(folded), logits(m_model));
            qInfo("alpha %.2f: fold-only logits max |diff| / max |logit| = %.3g", alpha, diff);
            QVERIFY2(diff < 2e-5, qPrintable(QString::number(diff)));

            // W8A8: every linear input of every block is fake-quantized per token.
            QCOMPARE(int(r.activationQuant.inputs().size()), 5 * 4);
            for (const LayerResult &l : r.layers)
                QCOMPARE(l.activationBits, 8);
            if (alpha == 0.5) {
                const RunEvaluation &e = *r.evaluation;
                QVERIFY(std::fabs(e.perplexity / e.originalPerplexity - 1.0) < 0.03);
                QVERIFY(e.kldMean < 0.01);
            }
        }
    }

    void awqFourBitsG32()
    {
        // A coarser search than the defaults (5 α values, 5 clip ratios, 4 cached sequences) to keep the
        // Debug build quick; the method is the same.
        PipelineOptions o = options(true);
        o.awqCacheTokens = 256;
        const QuantRun r = quantize(
            R"({"default": {"method": "awq", "bits": 4, "group_size": 32, "n_grid": 5, "clip_grid": 10}})", o);
        report("AWQ 4-bit g32", r);
        QCOMPARE(int(r.layers.size()), 35);
        // stories260K uses grouped-query attention: o_proj cannot fold into v_proj, so it is clip-only.
        const LayerResult *oProj = r.findLayer("model.layers.1.self_attn.o_proj");
        QVERIFY(oProj && oProj->note.find("grouped-query") != std::string::npos);
        QVERIFY(r.findTensor("model.layers.1.self_attn.o_proj")->inputScales.empty());
        // down_proj's scales fold into up_proj's rows (its quantized scales), norms into the RMSNorms.
        QCOMPARE(r.findTensor("model.layers.1.mlp.down_proj")->inputScalesSource, std::string("awq"));
        QCOMPARE(int(r.modifiedTensors.size()), 10);
        for (const QuantizedTensor &t : r.tensors)
            t.validate();
        const RunEvaluation &e = *r.evaluation;
        QVERIFY(e.kldMean < 0.2);

        // The scalings alone (no quantization) leave the model unchanged: every linear as W·diag(s) in float,
        // 1/s folded into the norms (q/k/v, gate/up) and into up_proj's rows (down_proj's s).
        auto folded = std::make_shared<Model>(*m_model);
        for (const QuantizedTensor &t : r.tensors) {
            std::vector<float> w = m_model->readMatrix(m_model->tensor(t.name));
            for (int64_t row = 0; row < t.rows; ++row)
                for (int64_t c = 0; c < t.cols; ++c) {
                    float &x = w[size_t(row * t.cols + c)];
                    if (!t.inputScales.empty())
                        x *= t.inputScales[size_t(c)];
                    if (t.name.find("up_proj") != std::string::npos) {
                        const std::string down = t.name.substr(0, t.name.find("up_proj")) + "down_proj";
                        x /= r.findTensor(down)->inputScales[size_t(row)];
                    }
                }
            replaceData(*folded, t.name, std::move(w));
        }
        for (const auto &[name, values] : r.modifiedTensors)
            replaceData(*folded, name, values);
        const double diff = maxRelDiff(logits(folded), logits(m_model));
        qInfo("AWQ fold-only logits max |diff| / max |logit| = %.3g", diff);
        QVERIFY2(diff < 2e-5, qPrintable(QString::number(diff)));
    }

    void zeroQuantWithEmbeddingAndHead()
    {
        // ZeroQuant W8A8 everywhere, the embedding RTN 8-bit and lm_head ZeroQuant: the paths outside the
        // blocks (quantized embedding feeding block 0, the head's Hessian and its activation quantization).
        PipelineOptions o = options(false);
        o.samples = 4;
        o.seqLen = 32;
        const QuantRun r = quantize(R"({"default": {"method": "zeroquant", "bits": 8, "group_size": 32},
            "rules": [{"match": "model.embed_tokens", "method": "rtn", "bits": 8, "group_size": -1},
                      {"match": "lm_head", "method": "zeroquant", "bits": 8, "group_size": -1}]})",
            o);
        QCOMPARE(int(r.layers.size()), 37);
        QCOMPARE(r.layers.front().name, std::string("model.embed_tokens"));
        QVERIFY(r.layers.front().relOutputError > 0.0 && r.layers.front().relOutputError < 0.01);
        QCOMPARE(r.layers.back().name, std::string("lm_head"));
        QCOMPARE(r.layers.back().activationBits, 8);
        QVERIFY(r.activationQuant.find(-1, LinearInput::Head));
        QCOMPARE(int(r.activationQuant.inputs().size()), 5 * 4 + 1);
        QCOMPARE(r.activationQuant.find(2, LinearInput::MlpAct)->convention, SymConvention::Restricted);

        const std::string dir = (fs::path(m_out.toStdString()) / "run-zeroquant").string();
        NullProgress progress;
        writeRunDir(r, dir, progress);
        const std::shared_ptr<const Model> opened = openModel(dir);
        for (const char *name : { "model.embed_tokens", "lm_head" })
            QVERIFY(opened->readMatrix(opened->tensor(name)) == r.findTensor(name)->dequantized);
        // The opened run and the in-memory one compute the same logits (activation quantization included).
        const std::vector<float> a = logits(opened), b = logits(quantizedModel(m_model, r));
        QVERIFY(a == b);
        QVERIFY(maxRelDiff(a, logits(m_model)) > 0.0);
    }

    void cancelLeavesNothing()
    {
        // Cancelled inside the pipeline (after the second block): no result at all.
        {
            CancellingProgress progress(2.0);
            PipelineCallbacks cb;
            const Plan plan;
            bool cancelled = false;
            try {
                (void)runQuantization(m_model, plan, options(false), cb, progress);
            } catch (const Cancelled &) {
                cancelled = true;
            }
            QVERIFY(cancelled);
        }
        // Cancelled while writing: no RUN_DIR and no temporary folder; an earlier run there stays intact.
        PipelineOptions o = options(false);
        o.samples = 4;
        const QuantRun r = quantize(R"({"default": {"method": "rtn", "bits": 4, "group_size": 32}})", o);
        const fs::path dir = fs::path(m_out.toStdString());
        const std::string target = (dir / "cancelled-run").string();
        CancellingProgress writing(1.0); // cancels at the first tensor written
        bool cancelled = false;
        try {
            writeRunDir(r, target, writing);
        } catch (const Cancelled &) {
            cancelled = true;
        }
        QVERIFY(cancelled);
        QVERIFY(!fs::exists(target));
        QVERIFY(tempLeftovers(dir, "cancelled-run").empty());

        NullProgress ok;
        writeRunDir(r, target, ok);
        QVERIFY(isRunDir(target));
        const uintmax_t size = fs::file_size(fs::path(target) / kRunTensorsFile);
        CancellingProgress again(1.0);
        QVERIFY_THROWS_EXCEPTION(Cancelled, writeRunDir(r, target, again));
        QVERIFY(isRunDir(target));
        QCOMPARE(fs::file_size(fs::path(target) / kRunTensorsFile), size);
        QVERIFY(tempLeftovers(dir, "cancelled-run").empty());
        // A folder that is not a run is never replaced.
        const std::string other = (dir / "not-a-run").string();
        fs::create_directories(other);
        QFile f(QString::fromStdString(other + "/keep.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.close();
        const std::string e = errorText([&] { writeRunDir(r, other, ok); });
        QVERIFY2(e.find("is not a run directory") != std::string::npos, e.c_str());
        QVERIFY(fs::exists(other + "/keep.txt"));
    }

    void runDirRoundTrip()
    {
        // Mixed: GPTQ with act-order on the MLP, SmoothQuant W8A8 on attention, one layer skipped, lm_head RTN.
        const char *planText = R"({
          "default": {"method": "smoothquant", "alpha": 0.5},
          "rules": [{"match": "model.layers.*.mlp.*", "method": "gptq", "bits": 4, "group_size": 32,
                     "act_order": true},
                    {"match": "lm_head", "method": "rtn", "bits": 8, "group_size": 64}],
          "skip": ["model.layers.0.self_attn.k_proj"]
        })";
        const QuantRun r = quantize(planText, options(true));
        report("mixed SQ/GPTQ-act", r);
        QCOMPARE(int(r.layers.size()), 35 - 1 + 1);
        QVERIFY(r.findTensor("lm_head"));
        QVERIFY(!r.findTensor("model.layers.0.self_attn.k_proj"));
        // The skipped k_proj shares the smoothed norm: it stays float but rescaled, and is stored.
        QVERIFY(r.modifiedTensors.count("model.layers.0.self_attn.k_proj"));
        QVERIFY(r.findTensor("model.layers.3.mlp.down_proj")->actOrderGroups());

        const std::string dir = (fs::path(m_out.toStdString()) / "run-mixed").string();
        NullProgress progress;
        writeRunDir(r, dir, progress);
        QVERIFY(fs::exists(fs::path(dir) / "run.json"));

        // run.json carries the cli.md keys.
        std::ifstream in(fs::path(dir) / "run.json");
        const json j = json::parse(in);
        for (const char *key :
            { "plan", "provenance", "layers", "bits_per_weight", "perplexity", "kld_mean", "seconds" })
            QVERIFY2(j.contains(key), key);
        for (const char *key :
            { "name", "method", "bits", "group_size", "weight_mse", "rel_output_error", "sqnr_db", "seconds" })
            QVERIFY2(j["layers"][0].contains(key), key);
        QVERIFY(Plan::fromJson(j["plan"]) == r.plan);

        // Opened as a model: same dequantized weights, same modified tensors, same evaluation.
        const std::shared_ptr<const Model> opened = openModel(dir);
        QCOMPARE(opened->format, std::string("run"));
        QVERIFY(opened->runInfo);
        QVERIFY(opened->inputTransform);
        for (const QuantizedTensor &t : r.tensors) {
            const std::vector<float> w = opened->readMatrix(opened->tensor(t.name));
            QVERIFY2(w == t.dequantized, t.name.c_str());
        }
        for (const auto &[name, values] : r.modifiedTensors)
            QVERIFY2(opened->readMatrix(opened->tensor(name)) == values, name.c_str());
        const RunEvaluation e = evaluateRun(opened, m_model, m_text, options(true).eval, true, 0, progress);
        QCOMPARE(e.perplexity, r.evaluation->perplexity);
        QCOMPARE(e.kldMean, r.evaluation->kldMean);

        // Read back for exporters.
        const RunDirContents c = readRunDir(dir);
        QCOMPARE(c.tensors.size(), r.tensors.size());
        for (size_t i = 0; i < c.tensors.size(); ++i) {
            QCOMPARE(c.tensors[i].name, r.tensors[i].name);
            QVERIFY(c.tensors[i].codes == r.tensors[i].codes);
            QVERIFY(c.tensors[i].gIdx == r.tensors[i].gIdx);
            QVERIFY(c.tensors[i].dequantized == r.tensors[i].dequantized);
            QVERIFY(c.tensors[i].inputScales == r.tensors[i].inputScales);
            QCOMPARE(c.tensors[i].grid, r.tensors[i].grid);
        }
        QVERIFY(c.activationQuant == r.activationQuant);
        QCOMPARE(c.layers.size(), r.layers.size());
        QVERIFY(c.evaluation && c.evaluation->perplexity == r.evaluation->perplexity);
    }

    void originalMissingOrChanged()
    {
        // A private copy of the model, so it can be changed and removed.
        const fs::path copy = fs::path(m_out.toStdString()) / "model-copy";
        fs::remove_all(copy);
        fs::copy(m_modelDir, copy, fs::copy_options::recursive);
        const std::shared_ptr<const Model> model = openModel(copy.string());
        PipelineOptions o = options(false);
        o.samples = 2;
        o.seqLen = 32;
        const Plan plan;
        PipelineCallbacks cb;
        NullProgress progress;
        const QuantRun r = runQuantization(model, plan, o, cb, progress);
        const std::string dir = (fs::path(m_out.toStdString()) / "run-of-copy").string();
        writeRunDir(r, dir, progress);
        QVERIFY(openModel(dir));

        {
            std::ofstream cfg(copy / "config.json", std::ios::app);
            cfg << "\n";
        }
        std::string e = errorText([&] { (void)openModel(dir); });
        QVERIFY2(e.find("has changed since the run") != std::string::npos, e.c_str());
        QVERIFY2(e.find(dir) != std::string::npos, e.c_str());
        fs::remove_all(copy);
        e = errorText([&] { (void)openModel(dir); });
        QVERIFY2(e.find("is missing") != std::string::npos, e.c_str());
    }

    void planErrorsBeforeWork()
    {
        PipelineCallbacks cb;
        NullProgress progress;
        const PipelineOptions o = options(false);
        std::string e = errorText([&] {
            (void)runQuantization(m_model, Plan::fromJson(json::parse(R"({"default": {"method": "rtn"}, "rules": [
                {"match": "*q_proj", "method": "smoothquant"}, {"match": "*k_proj", "method": "awq"}]})")),
                o, cb, progress);
        });
        QVERIFY2(e.find("smoothquant") != std::string::npos && e.find("awq") != std::string::npos, e.c_str());
        e = errorText([&] {
            (void)runQuantization(m_model,
                Plan::fromJson(json::parse(R"({"default": {"method": "rtn"}, "rules": [{"match": "lm_head",
                "method": "awq"}]})")),
                o, cb, progress);
        });
        QVERIFY2(e.find("lm_head") != std::string::npos, e.c_str());
        PipelineOptions noText = o;
        noText.calibrationText = m_text + ".missing";
        e = errorText([&] { (void)runQuantization(m_model, Plan(), noText, cb, progress); });
        QVERIFY2(e.find(".missing") != std::string::npos, e.c_str());
    }
};

QTEST_GUILESS_MAIN(TestPipeline)
#include "tst_pipeline.moc"
