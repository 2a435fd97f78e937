// Perplexity (llama.cpp and GPTQ-style protocols) and KL divergence: scored-token counts, BOS handling,
// agreement with a hand-computed NLL and with the stories260K reference, KLD of a model against itself
// (exactly zero), BF16 against F32, progress, cancellation and errors.
#include <QTest>

#include <atomic>
#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "VectorTensorData.h"
#include "TestData.h"
#include "common/Error.h"
#include "eval/Evaluate.h"
#include "io/FormatRegistry.h"
#include "model/Forward.h"

using namespace qs::core;

namespace {

std::string str(const QString &s)
{
    return s.toStdString();
}

std::vector<int32_t> referenceTokens(const QString &path)
{
    std::ifstream in(str(path));
    return nlohmann::json::parse(in).at("token_ids").get<std::vector<int32_t>>();
}

double logSumExp(const float *x, int64_t n)
{
    double m = x[0];
    for (int64_t i = 1; i < n; ++i)
        m = std::max(m, double(x[i]));
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i)
        s += std::exp(double(x[i]) - m);
    return m + std::log(s);
}

std::vector<int32_t> randomTokens(int64_t n, int vocab, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> u(3, vocab - 1);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int32_t &x : t)
        x = u(rng);
    return t;
}

using VectorData = qs::test::VectorTensorData;

// A tiny random Llama (1 block, GQA 2:1) for tests where only the bookkeeping matters: under sanitizers
// in Debug it runs a hundred times faster than stories260K.
std::shared_ptr<const Model> tinyModel()
{
    auto m = std::make_shared<Model>();
    m->format = "memory";
    m->path = "tiny";
    HyperParams &h = m->hparams;
    h.hiddenSize = 8;
    h.intermediateSize = 12;
    h.numLayers = 1;
    h.numHeads = 2;
    h.numKvHeads = 1;
    h.headDim = 4;
    h.vocabSize = 16;
    h.maxPositions = 256;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    auto add = [&](const std::string &name, TensorRole role, int64_t rows, int64_t cols, float offset = 0.0f) {
        std::vector<float> v(size_t(rows * cols));
        for (float &x : v)
            x = offset + u(rng);
        Tensor t;
        t.name = name;
        t.role = role;
        t.rows = rows;
        t.cols = cols;
        t.data = std::make_shared<VectorData>(std::move(v), cols);
        m->tensors.push_back(std::move(t));
    };
    add("model.embed_tokens", TensorRole::Embed, 16, 8);
    add("model.layers.0.input_layernorm", TensorRole::Norm, 1, 8, 1.0f);
    add(layerName(0, TensorRole::Q), TensorRole::Q, 8, 8);
    add(layerName(0, TensorRole::K), TensorRole::K, 4, 8);
    add(layerName(0, TensorRole::V), TensorRole::V, 4, 8);
    add(layerName(0, TensorRole::O), TensorRole::O, 8, 8);
    add("model.layers.0.post_attention_layernorm", TensorRole::Norm, 1, 8, 1.0f);
    add(layerName(0, TensorRole::Gate), TensorRole::Gate, 12, 8);
    add(layerName(0, TensorRole::Up), TensorRole::Up, 12, 8);
    add(layerName(0, TensorRole::Down), TensorRole::Down, 8, 12);
    add("model.norm", TensorRole::Norm, 1, 8, 1.0f);
    add("lm_head", TensorRole::LmHead, 16, 8);
    validateLlamaModel(*m, "tiny");
    return m;
}

class CountingProgress final : public Progress
{
public:
    void setTotal(double t) override { total = t; }
    void advance(double a) override { done = done + a; }
    void message(std::string_view) override { }
    bool isCancelled() const override { return cancelAfter >= 0 && done >= cancelAfter; }

    double total = 0.0;
    std::atomic<double> done { 0.0 };
    double cancelAfter = -1.0;
};

} // namespace

class TestEvaluate : public QObject
{
    Q_OBJECT

    std::shared_ptr<const Model> m_model;
    std::vector<int32_t> m_reference; // BOS + the first TinyStories story (128 tokens)
    std::vector<int32_t> m_stream; // the reference twice (256 tokens)

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K.gguf");
        QS_REQUIRE_TESTDATA(refPath, "reference/stories260K.reference.json");
        m_model = openModel(str(modelPath));
        m_reference = referenceTokens(refPath);
        // Two documents, each with its BOS (tests run under sanitizers in Debug: short streams keep them fast).
        m_stream = m_reference;
        m_stream.insert(m_stream.end(), m_reference.begin(), m_reference.end());
    }

    void protocolNames()
    {
        QVERIFY(parseEvalProtocol("llamacpp") == EvalProtocol::LlamaCpp);
        QVERIFY(parseEvalProtocol("gptq") == EvalProtocol::Gptq);
        QVERIFY_THROWS_EXCEPTION(Error, parseEvalProtocol("wikitext"));
        QCOMPARE(std::string(evalProtocolName(EvalProtocol::LlamaCpp)), std::string("llamacpp"));
        QCOMPARE(std::string(evalProtocolName(EvalProtocol::Gptq)), std::string("gptq"));
        QCOMPARE(scoredRange(EvalProtocol::LlamaCpp, 512).first, int64_t(256));
        QCOMPARE(scoredRange(EvalProtocol::LlamaCpp, 512).count, int64_t(255));
        QCOMPARE(scoredRange(EvalProtocol::LlamaCpp, 2048).count, int64_t(1023));
        QCOMPARE(scoredRange(EvalProtocol::Gptq, 2048).count, int64_t(2047));

        HyperParams h;
        QVERIFY(withLeadingBos(h, { 5, 6 }) == (std::vector<int32_t> { 1, 5, 6 }));
        QVERIFY(withLeadingBos(h, { 1, 6 }) == (std::vector<int32_t> { 1, 6 }));
        h.addBos = false;
        QVERIFY(withLeadingBos(h, { 5, 6 }) == (std::vector<int32_t> { 5, 6 }));
    }

    // n tokens, ctx 64: llamacpp scores floor(n/64)·(64 − 1 − 32), gptq floor(n/64)·63; the tail is dropped.
    void scoredTokenCounts_data()
    {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("ctx");
        QTest::addColumn<int>("maxChunks");
        QTest::addColumn<QString>("protocol");
        QTest::addColumn<int>("chunks");
        QTest::addColumn<int>("scored");
        QTest::newRow("llamacpp-200-64") << 200 << 64 << 0 << "llamacpp" << 3 << 3 * 31;
        QTest::newRow("gptq-200-64") << 200 << 64 << 0 << "gptq" << 3 << 3 * 63;
        QTest::newRow("llamacpp-exact-48-16") << 48 << 16 << 0 << "llamacpp" << 3 << 3 * 7;
        QTest::newRow("gptq-max2") << 70 << 16 << 2 << "gptq" << 2 << 2 * 15;
        QTest::newRow("llamacpp-odd-15") << 50 << 15 << 0 << "llamacpp" << 3 << 3 * 7; // first 7, scores 7..13
        QTest::newRow("gptq-one-chunk") << 31 << 16 << 0 << "gptq" << 1 << 15;
    }
    void scoredTokenCounts()
    {
        QFETCH(int, n);
        QFETCH(int, ctx);
        QFETCH(int, maxChunks);
        QFETCH(QString, protocol);
        QFETCH(int, chunks);
        QFETCH(int, scored);
        ForwardEngine engine(tinyModel());
        EvalOptions o;
        o.ctx = ctx;
        o.maxChunks = maxChunks;
        o.protocol = parseEvalProtocol(str(protocol));
        QCOMPARE(evalChunkCount(n, o), int64_t(chunks));
        CountingProgress progress;
        const PerplexityResult r
            = evaluatePerplexity(engine, randomTokens(n, engine.hparams().vocabSize, uint32_t(n + ctx)), o, progress);
        QCOMPARE(r.chunks, int64_t(chunks));
        QCOMPARE(r.tokensScored, int64_t(scored));
        QCOMPARE(r.protocol, str(protocol));
        QCOMPARE(r.ctx, ctx);
        QVERIFY(std::isfinite(r.perplexity) && r.perplexity > 1.0);
        QCOMPARE(progress.total, double(chunks));
        QCOMPARE(progress.done.load(), double(chunks));
    }

    // GPTQ-style over the reference's 128 tokens as one chunk scores exactly its 127 predictions.
    void gptqMatchesReference()
    {
        ForwardEngine engine(m_model);
        EvalOptions o;
        o.ctx = int(m_reference.size());
        o.protocol = EvalProtocol::Gptq;
        NullProgress progress;
        const PerplexityResult r = evaluatePerplexity(engine, m_reference, o, progress);
        QCOMPARE(r.tokensScored, int64_t(127));
        const double rel = std::abs(r.meanNll - 1.1397816417943827) / 1.1397816417943827;
        qInfo("gptq, ctx 128: mean NLL %.7f, PPL %.5f (reference 1.1397816 / 3.12609), rel. deviation %.2e", r.meanNll,
            r.perplexity, rel);
        QVERIFY(rel < 1e-4);
        QVERIFY(std::abs(r.perplexity - 3.126085684193763) / 3.126085684193763 < 1e-4);
    }

    // The llama.cpp protocol by hand: first token of every chunk replaced by BOS, positions ctx/2 .. ctx−2.
    void llamacppMatchesHandComputation()
    {
        ForwardEngine engine(m_model);
        const int ctx = 32;
        const int64_t V = engine.hparams().vocabSize;
        double sum = 0.0, sumNoBos = 0.0;
        int64_t count = 0;
        const std::vector<int32_t> text(m_reference.begin(), m_reference.begin() + 3 * ctx);
        for (size_t c = 0; c + ctx <= text.size(); c += ctx) {
            std::vector<int32_t> chunk(text.begin() + long(c), text.begin() + long(c + ctx));
            const std::vector<float> plain = engine.forwardAll(chunk);
            chunk[0] = engine.hparams().bosTokenId;
            const std::vector<float> logits = engine.forwardAll(chunk);
            for (int p = ctx / 2; p <= ctx - 2; ++p) {
                const int32_t target = text[c + size_t(p) + 1];
                sum += logSumExp(logits.data() + p * V, V) - logits[size_t(p * V + target)];
                sumNoBos += logSumExp(plain.data() + p * V, V) - plain[size_t(p * V + target)];
                ++count;
            }
        }
        EvalOptions o;
        o.ctx = ctx;
        NullProgress progress;
        const PerplexityResult r = evaluatePerplexity(engine, text, o, progress);
        QCOMPARE(r.tokensScored, count);
        QCOMPARE(r.protocol, std::string("llamacpp"));
        const double expect = sum / double(count);
        // Up to GEMM rounding (the evaluation computes only the scored rows' logits).
        QVERIFY2(std::abs(r.meanNll - expect) <= 1e-6 * expect, qPrintable(QString::number(r.meanNll - expect)));
        QVERIFY(std::abs(r.perplexity - std::exp(expect)) <= 1e-6 * std::exp(expect));
        qInfo("mean NLL with BOS replaced %.6f, without %.6f", expect, sumNoBos / double(count));
        QVERIFY(std::abs(sumNoBos / double(count) - expect) > 1e-3); // the replacement really happened
        qInfo("llamacpp, ctx 32, %lld tokens scored: PPL %.4f ± (NLL s.e. %.4f)", (long long)r.tokensScored,
            r.perplexity, r.meanNllStdError);
    }

    void selfKldIsZero_data()
    {
        QTest::addColumn<QString>("protocol");
        QTest::addColumn<bool>("tiny");
        QTest::newRow("llamacpp-stories260K") << "llamacpp" << false;
        QTest::newRow("gptq-tiny") << "gptq" << true;
    }
    void selfKldIsZero()
    {
        QFETCH(QString, protocol);
        QFETCH(bool, tiny);
        const std::shared_ptr<const Model> model = tiny ? tinyModel() : m_model;
        ForwardEngine a(model);
        ForwardEngine b(model);
        EvalOptions o;
        o.ctx = 32;
        o.maxChunks = 2;
        o.protocol = parseEvalProtocol(str(protocol));
        std::vector<int32_t> tokens = m_stream;
        if (tiny)
            for (int32_t &t : tokens)
                t %= 16;
        CountingProgress progress;
        const KldResult k = evaluateKld(a, b, tokens, o, progress);
        QCOMPARE(k.chunks, int64_t(2));
        QCOMPARE(k.tokensScored, int64_t(2 * scoredRange(o.protocol, 32).count));
        QCOMPARE(int64_t(k.perTokenKld.size()), k.tokensScored);
        QCOMPARE(k.protocol, str(protocol));
        QVERIFY(k.kldMean < 1e-12);
        QVERIFY(k.kldMax < 1e-12);
        for (double v : k.perTokenKld)
            QVERIFY(std::abs(v) < 1e-12);
        QCOMPARE(k.top1Agreement, 1.0);
        QCOMPARE(k.model.perplexity, k.reference.perplexity);
        QCOMPARE(k.model.tokensScored, k.tokensScored);
        QCOMPARE(progress.done.load(), 2.0);

        NullProgress np;
        const PerplexityResult p = evaluatePerplexity(a, tokens, o, np);
        QVERIFY(std::abs(p.meanNll - k.model.meanNll) <= 1e-6 * p.meanNll);
    }

    // BF16 weights against the F32 original: a small positive KLD and high agreement.
    void bf16AgainstF32()
    {
        QS_REQUIRE_TESTDATA(f32Path, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(bf16Path, "models/stories260K-hf-bf16-sharded");
        ForwardEngine reference(openModel(str(f32Path)));
        ForwardEngine model(openModel(str(bf16Path)));
        EvalOptions o;
        o.ctx = 32;
        NullProgress progress;
        const KldResult k = evaluateKld(model, reference, m_reference, o, progress);
        qInfo("BF16 vs F32 (llamacpp, ctx 32, %lld tokens): KLD mean %.3e ± %.1e, median %.3e, p99 %.3e, max %.3e, "
              "top-1 %.4f, PPL %.5f vs %.5f",
            (long long)k.tokensScored, k.kldMean, k.kldStdError, k.kldMedian, k.kldP99, k.kldMax, k.top1Agreement,
            k.model.perplexity, k.reference.perplexity);
        QVERIFY(k.kldMean > 0.0);
        QVERIFY(k.kldMean < 1e-2);
        for (double v : k.perTokenKld)
            QVERIFY(v > -1e-12);
        QVERIFY(k.kldMedian <= k.kldP99 && k.kldP99 <= k.kldMax);
        QVERIFY(k.top1Agreement > 0.9);
        QVERIFY(std::abs(std::log(k.model.perplexity / k.reference.perplexity)) < 0.05);
    }

    void errorsAndCancellation()
    {
        const std::shared_ptr<const Model> tiny = tinyModel();
        ForwardEngine engine(tiny);
        NullProgress progress;
        EvalOptions o;
        o.ctx = 512;
        QVERIFY_THROWS_EXCEPTION(Error, evaluatePerplexity(engine, m_stream, o, progress)); // < one chunk
        o.ctx = 2;
        QVERIFY_THROWS_EXCEPTION(Error, evaluatePerplexity(engine, m_stream, o, progress)); // nothing scored
        o.ctx = 1;
        o.protocol = EvalProtocol::Gptq;
        QVERIFY_THROWS_EXCEPTION(Error, evaluatePerplexity(engine, m_stream, o, progress));
        o.ctx = 32;
        std::vector<int32_t> bad = m_stream;
        for (int32_t &t : bad)
            t %= 16;
        bad[70] = engine.hparams().vocabSize; // found before any chunk runs
        CountingProgress untouched;
        QVERIFY_THROWS_EXCEPTION(Error, evaluatePerplexity(engine, bad, o, untouched));
        QCOMPARE(untouched.done.load(), 0.0);

        bad[70] = 3;
        CountingProgress cancelling;
        cancelling.cancelAfter = 1.0; // cancelled once the first chunk is done
        QVERIFY_THROWS_EXCEPTION(Cancelled, evaluatePerplexity(engine, bad, o, cancelling));
        QCOMPARE(cancelling.done.load(), 1.0);
        CountingProgress cancelling2;
        cancelling2.cancelAfter = 2.0;
        ForwardEngine other(tiny);
        QVERIFY_THROWS_EXCEPTION(Cancelled, evaluateKld(engine, other, bad, o, cancelling2));
        ForwardEngine stories(m_model);
        QVERIFY_THROWS_EXCEPTION(Error, evaluateKld(engine, stories, bad, o, progress)); // vocabularies differ
        QCOMPARE(cancelling2.done.load(), 2.0);
    }
};

QTEST_GUILESS_MAIN(TestEvaluate)
#include "tst_evaluate.moc"
