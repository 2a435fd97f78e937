// EfficientQAT (Block-AP + E2E-QP, specs/algorithms.md §7) through the pipeline on stories260K: zero epochs
// and zero learning rates are RTN, the losses go down in every block and end to end, the result is valid
// and baked, runs are deterministic (also across thread counts), training is cancellable, the plan rules
// hold, and at 2 and 3 bits EfficientQAT beats GPTQ (same bits and group size) in perplexity and KLD.
//
// Data: the five TinyStories stories are split into a calibration file (stories 1-3) and a held-out
// evaluation file (stories 4-5), so the comparison is not measured on the training text. Calibration: 16
// windows of 64 tokens; evaluation: llamacpp protocol, ctx 128, every chunk of the held-out text. The
// learning rates are far above the paper's (which are for 4096 samples × 2048 tokens): with 16 short
// windows the paper's values barely move the weights.
#include <QDir>
#include <QTest>

#include <atomic>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "TestData.h"
#include "common/Error.h"
#include "eval/TextSource.h"
#include "io/FormatRegistry.h"
#include "quant/Pipeline.h"

using namespace qs::core;
using nlohmann::json;

namespace {

// Cancels once the first training step has been reported.
class CancelOnTraining final : public Progress
{
public:
    void setTotal(double) override {}
    void advance(double) override {}
    void message(std::string_view) override {}
    bool isCancelled() const override { return m_cancelled; }
    std::atomic<bool> m_cancelled{ false };
};

std::string errorText(const std::function<void()> &f)
{
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return {};
}

// The training parameters the quality tests use (see the header comment).
// A stronger E2E-QP (lr 1e-3, 4 epochs) lowers the calibration loss much further but overfits the ~550
// calibration tokens and loses on the held-out text; this milder one still lowers the loss.
const char *kTraining = R"("block_ap_epochs": 3, "block_ap_batch": 2, "block_ap_lr": 1e-3, "qp_lr": 1e-3,
                           "e2e_epochs": 1, "e2e_batch": 4, "e2e_lr": 2e-4)";

} // namespace

class TestEfficientQat : public QObject
{
    Q_OBJECT

    std::shared_ptr<const Model> m_model;
    std::string m_calib, m_eval;

    PipelineOptions options(bool evaluate, int samples = 16) const
    {
        PipelineOptions o;
        o.calibrationText = m_calib;
        o.samples = samples;
        o.seqLen = 64;
        o.seed = 0;
        o.cumulativeError = false;
        if (evaluate) {
            o.evalText = m_eval;
            o.eval.ctx = 128;
        }
        return o;
    }

    QuantRun quantize(const std::string &planJson, const PipelineOptions &o, PipelineCallbacks cb = {})
    {
        const Plan plan = Plan::fromJson(json::parse(planJson));
        NullProgress progress;
        return runQuantization(m_model, plan, o, cb, progress);
    }

    static std::string qatPlan(int bits, int groupSize, const std::string &extra)
    {
        return R"({"default": {"method": "efficientqat", "bits": )" + std::to_string(bits) + R"(, "group_size": )" +
               std::to_string(groupSize) + (extra.empty() ? "" : ", " + extra) + "}}";
    }

    static void compareTensors(const QuantRun &a, const QuantRun &b)
    {
        QCOMPARE(a.tensors.size(), b.tensors.size());
        for (const QuantizedTensor &t : a.tensors) {
            const QuantizedTensor *u = b.findTensor(t.name);
            QVERIFY2(u, t.name.c_str());
            QVERIFY2(t.codes == u->codes, t.name.c_str());
            QVERIFY2(t.scales == u->scales, t.name.c_str());
            QVERIFY2(t.zeros == u->zeros, t.name.c_str());
            QVERIFY2(t.dequantized == u->dequantized, t.name.c_str());
        }
    }

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(dir, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_model = openModel(dir.toStdString());
        const QString out = qs::test::outputDir() + QStringLiteral("/tst_efficientqat");
        QDir(out).removeRecursively();
        QVERIFY(QDir().mkpath(out));
        std::ifstream in(text.toStdString(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        const std::string all = ss.str();
        std::vector<std::string> stories;
        const std::string sep = "<|endoftext|>";
        for (size_t pos = 0;;) {
            const size_t next = all.find(sep, pos);
            const std::string story = all.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
            if (story.find_first_not_of(" \n\r\t") != std::string::npos)
                stories.push_back(story);
            if (next == std::string::npos)
                break;
            pos = next + sep.size();
        }
        QCOMPARE(int(stories.size()), 5);
        m_calib = (out + QStringLiteral("/calibration.txt")).toStdString();
        m_eval = (out + QStringLiteral("/heldout.txt")).toStdString();
        std::ofstream(m_calib, std::ios::binary) << stories[0] << stories[1] << stories[2];
        std::ofstream(m_eval, std::ios::binary) << stories[3] << stories[4];
    }

    // §7.4 test 1: zero epochs is min–max RTN (grid minmax_awq) exactly; test 5: lr = 0 changes nothing.
    void zeroEpochsAndZeroLrAreRtn()
    {
        const QuantRun rtn = quantize(R"({"default": {"method": "rtn", "bits": 3, "group_size": 32, "grid": "minmax_awq"}})",
                                      options(false, 8));
        const QuantRun zeroEpochs = quantize(qatPlan(3, 32, R"("phases": "block_ap", "block_ap_epochs": 0)"),
                                             options(false, 8));
        compareTensors(rtn, zeroEpochs);
        QVERIFY(zeroEpochs.modifiedTensors.empty());
        const QuantRun zeroLr = quantize(
            qatPlan(3, 32, R"("phases": "block_ap", "block_ap_epochs": 1, "block_ap_lr": 0, "qp_lr": 0)"),
            options(false, 8));
        compareTensors(rtn, zeroLr);
        for (const auto &[name, values] : zeroLr.modifiedTensors) // norms "trained" at lr 0
            QVERIFY2(values == m_model->readMatrix(m_model->tensor(name)), name.c_str());
        // Step-0 loss (§7.4 test 3): the Initial loss is the RTN block's, and with lr 0 the Final one equals it.
        int blocks = 0;
        for (const TrainingLossEvent &e : zeroLr.trainingSummary)
            if (e.kind == TrainingLossKind::Final) {
                ++blocks;
                for (const TrainingLossEvent &i : zeroLr.trainingSummary)
                    if (i.kind == TrainingLossKind::Initial && i.block == e.block)
                        QCOMPARE(e.loss, i.loss);
            }
        QCOMPARE(blocks, 5);
    }

    // Losses go down in every Block-AP block and in E2E-QP; the tensors are valid, baked, integer-zero;
    // and EfficientQAT beats GPTQ at the same bits and group size on held-out text.
    void beatsGptq_data()
    {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("groupSize");
        QTest::newRow("w2g32") << 2 << 32;
        QTest::newRow("w3g32") << 3 << 32;
    }
    void beatsGptq()
    {
        QFETCH(int, bits);
        QFETCH(int, groupSize);
        const QuantRun gptq = quantize(R"({"default": {"method": "gptq", "bits": )" + std::to_string(bits) +
                                           R"(, "group_size": )" + std::to_string(groupSize) + "}}",
                                       options(true));
        std::vector<TrainingLossEvent> events;
        PipelineCallbacks cb;
        cb.onTrainingLoss = [&](const TrainingLossEvent &e) { events.push_back(e); };
        const QuantRun qat = quantize(qatPlan(bits, groupSize, kTraining), options(true), cb);

        // Every step reported, finite; per block the Final (baked) loss is below the Initial (RTN) one.
        std::map<int, double> initial, final;
        std::map<int, int> steps, total;
        for (const TrainingLossEvent &e : events) {
            QVERIFY(std::isfinite(e.loss) && e.loss >= 0.0);
            if (e.kind == TrainingLossKind::Initial)
                initial[e.block] = e.loss;
            else if (e.kind == TrainingLossKind::Final)
                final[e.block] = e.loss;
            else {
                QCOMPARE(e.step, steps[e.block]);
                ++steps[e.block];
                total[e.block] = e.totalSteps;
                QCOMPARE(e.phase, std::string(e.block < 0 ? "e2e_qp" : "block_ap"));
            }
        }
        QCOMPARE(int(initial.size()), 6); // 5 blocks + E2E-QP (−1)
        for (const auto &[block, loss] : initial) {
            QVERIFY(final.count(block));
            QCOMPARE(steps[block], total[block]);
            QVERIFY(steps[block] > 0);
            qInfo("%s block %2d: loss %.5f -> %.5f (%d steps)", block < 0 ? "E2E-QP  " : "Block-AP", block, loss,
                  final[block], steps[block]);
            // Block-AP roughly halves the block MSE; E2E-QP's milder run lowers the cross-entropy by a few %.
            QVERIFY2(final[block] < (block < 0 ? 1.0 : 0.9) * loss, qPrintable(QStringLiteral("block %1: %2 -> %3")
                                                               .arg(block).arg(loss).arg(final[block])));
        }
        QCOMPARE(int(qat.trainingSummary.size()), 12);

        QCOMPARE(int(qat.tensors.size()), 35);
        for (const QuantizedTensor &t : qat.tensors) {
            t.validate();
            QCOMPARE(t.method, std::string("efficientqat"));
            QCOMPARE(t.zeroKind, ZeroPointKind::Integer);
            QCOMPARE(t.grid, GridId::MinMaxAwq);
            QVERIFY(!t.actOrderGroups());
            // Baked: re-quantizing the dequantized weights with the stored parameters gives the codes.
            const int ng = t.numGroups();
            for (int64_t r = 0; r < t.rows; ++r)
                for (int64_t c = 0; c < t.cols; ++c) {
                    const int k = int(c / t.groupSize);
                    const float s = t.scales[size_t(r * ng + k)], z = t.zeros[size_t(r * ng + k)];
                    const float q = std::clamp(std::nearbyint(t.dequantized[size_t(r * t.cols + c)] / s) + z, 0.0f,
                                               float(t.qmax()));
                    QCOMPARE(uint8_t(q), t.codes[size_t(r * t.cols + c)]);
                }
        }
        // The trained RMSNorm weights are part of the result.
        QCOMPARE(int(qat.modifiedTensors.size()), 10);
        const LayerResult *l = qat.findLayer("model.layers.2.mlp.down_proj");
        QVERIFY(l && l->note.find("Block-AP") != std::string::npos && l->note.find("E2E-QP") != std::string::npos);

        const RunEvaluation &g = *gptq.evaluation, &q = *qat.evaluation;
        qInfo("w%dg%d held-out ppl: fp %.4f  GPTQ %.4f  EfficientQAT %.4f | KLD: GPTQ %.5f  EfficientQAT %.5f | "
              "top-1: GPTQ %.3f  EfficientQAT %.3f | seconds: GPTQ %.1f  EfficientQAT %.1f (bpw %.3f)",
              bits, groupSize, g.originalPerplexity, g.perplexity, q.perplexity, g.kldMean, q.kldMean,
              g.top1Agreement, q.top1Agreement, gptq.seconds, qat.seconds, qat.bitsPerWeight);
        QVERIFY(q.perplexity < g.perplexity);
        QVERIFY(q.kldMean < g.kldMean);
    }

    // Same seed, same result; the thread count does not matter for a model this small (one-thread products).
    void deterministic()
    {
        const std::string plan = qatPlan(2, 32, R"("block_ap_epochs": 1, "block_ap_lr": 1e-3, "qp_lr": 1e-3,
                                                   "e2e_epochs": 1, "e2e_batch": 8, "e2e_lr": 1e-3)");
        PipelineOptions o = options(false);
        o.samples = 6;
        o.threads = 1;
        const QuantRun a = quantize(plan, o);
        o.threads = 2;
        const QuantRun b = quantize(plan, o);
        compareTensors(a, b);
        QVERIFY(a.modifiedTensors == b.modifiedTensors);
        const QuantRun rtn = quantize(qatPlan(2, 32, R"("phases": "block_ap", "block_ap_epochs": 0)"), o);
        QVERIFY(a.tensors.front().scales != rtn.findTensor(a.tensors.front().name)->scales); // it trained
    }

    void cancellable()
    {
        const Plan plan = Plan::fromJson(json::parse(qatPlan(2, 32, kTraining)));
        CancelOnTraining progress;
        PipelineCallbacks cb;
        int seen = 0;
        cb.onTrainingLoss = [&](const TrainingLossEvent &e) {
            if (e.kind == TrainingLossKind::Step && ++seen == 3)
                progress.m_cancelled = true;
        };
        bool cancelled = false;
        try {
            runQuantization(m_model, plan, options(false), cb, progress);
        } catch (const Cancelled &) {
            cancelled = true;
        }
        QVERIFY(cancelled);
        QCOMPARE(seen, 3); // stopped before the next step
    }

    void planRules()
    {
        auto run = [&](const char *j) { return errorText([&] { quantize(j, options(false)); }); };
        QVERIFY(run(R"({"default": {"method": "efficientqat"},
                        "rules": [{"match": "*down_proj", "method": "smoothquant"}]})")
                    .find("quantizes activations") != std::string::npos);
        QVERIFY(run(R"({"default": {"method": "efficientqat"},
                        "rules": [{"match": "*q_proj", "method": "awq"}]})")
                    .find("rtn, gptq or zeroquant only") != std::string::npos);
        QVERIFY(run(R"({"default": {"method": "efficientqat"},
                        "rules": [{"match": "*q_proj", "qp_lr": 0.01}]})")
                    .find("training parameters must be equal") != std::string::npos);
        QVERIFY(run(R"({"default": {"method": "efficientqat"},
                        "rules": [{"match": "lm_head", "method": "efficientqat"}]})")
                    .find("not supported for lm_head") != std::string::npos);
        // Different bits per layer are fine (each linear has its own quantizer), and so is GPTQ beside it.
        const QuantRun mixed = quantize(R"({"default": {"method": "efficientqat", "bits": 3, "group_size": 32,
                                              "block_ap_epochs": 1, "e2e_epochs": 1, "e2e_batch": 8},
                                           "rules": [{"match": "*down_proj", "bits": 4},
                                                     {"match": "*o_proj", "method": "gptq", "bits": 3, "group_size": 32}]})",
                                        options(false, 8));
        QCOMPARE(int(mixed.tensors.size()), 35);
        QCOMPARE(mixed.findTensor("model.layers.1.mlp.down_proj")->bits, 4);
        QCOMPARE(mixed.findTensor("model.layers.1.self_attn.o_proj")->method, std::string("gptq"));
        for (const QuantizedTensor &t : mixed.tensors)
            t.validate();
    }
};

QTEST_GUILESS_MAIN(TestEfficientQat)
#include "tst_efficientqat.moc"
