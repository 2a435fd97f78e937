// The float32 forward pass: the stories260K reference values (independent float64 pass) in every format,
// the two other small llama2.c models, the kernels and a whole random model (GQA, biases, odd lengths)
// against a plain double-precision reference, RoPE scaling, the weight cache, KV-cached generation and
// the activation observer's calls.
#include <QTest>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numbers>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "VectorTensorData.h"
#include "TestData.h"
#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "model/Forward.h"
#include "model/ForwardKernels.h"

using namespace qs::core;

namespace {

// Float32 against the float64 reference: the README's bar for the mean NLL, and for raw logits (values
// up to ~16) a bound a few float32 ulps of accumulated error stay far below.
constexpr double kNllRelTolerance = 1e-4;
constexpr double kLogitAbsTolerance = 1e-4;
// BF16 weights (8-bit mantissa) move every logit; the bars are loose on purpose.
constexpr double kBf16NllRelTolerance = 2e-2;
constexpr double kBf16ArgmaxAgreement = 0.95;
// The float32 engine against the double reference on random models with O(1) activations.
constexpr double kConformanceTolerance = 2e-5;

std::string str(const QString &s)
{
    return s.toStdString();
}

struct Reference
{
    std::vector<int32_t> tokens;
    double meanNll = 0.0;
    std::vector<double> lastLogits16;
    std::vector<int32_t> argmax;
    std::vector<int32_t> greedy; // BOS then 40 tokens
};

Reference loadReference(const QString &path)
{
    std::ifstream in(str(path));
    const nlohmann::json j = nlohmann::json::parse(in);
    Reference r;
    r.tokens = j.at("token_ids").get<std::vector<int32_t>>();
    r.meanNll = j.at("mean_nll_next_token").get<double>();
    r.lastLogits16 = j.at("logits_last_position_first16").get<std::vector<double>>();
    r.argmax = j.at("argmax_per_position").get<std::vector<int32_t>>();
    r.greedy = j.at("greedy_from_bos_40").get<std::vector<int32_t>>();
    return r;
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

// Mean next-token NLL of positions 0 .. n−2.
double meanNll(const std::vector<float> &logits, const std::vector<int32_t> &tokens, int64_t vocab)
{
    double sum = 0.0;
    const int64_t n = int64_t(tokens.size());
    for (int64_t t = 0; t + 1 < n; ++t) {
        const float *row = logits.data() + t * vocab;
        sum += logSumExp(row, vocab) - double(row[tokens[size_t(t + 1)]]);
    }
    return sum / double(n - 1);
}

int32_t argmaxRow(const float *row, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (row[i] > row[best])
            best = i;
    return int32_t(best);
}

// ---- an in-memory model with random weights ----

using VectorData = qs::test::VectorTensorData;

struct RandomSpec
{
    int hidden = 16, intermediate = 24, layers = 2, heads = 4, kvHeads = 2, headDim = 4, vocab = 40;
    bool bias = false;
    uint32_t seed = 1;
};

std::shared_ptr<Model> randomModel(const RandomSpec &s)
{
    auto m = std::make_shared<Model>();
    m->format = "memory";
    m->path = "random";
    HyperParams &h = m->hparams;
    h.hiddenSize = s.hidden;
    h.intermediateSize = s.intermediate;
    h.numLayers = s.layers;
    h.numHeads = s.heads;
    h.numKvHeads = s.kvHeads;
    h.headDim = s.headDim;
    h.vocabSize = s.vocab;
    h.maxPositions = 256;
    h.rmsEps = 1e-5;
    h.ropeTheta = 10000.0;
    h.attentionBias = s.bias;
    std::mt19937 rng(s.seed);
    auto add = [&](const std::string &name, TensorRole role, int block, int64_t rows, int64_t cols, double scale,
                   double offset = 0.0) {
        std::uniform_real_distribution<double> u(-1.0, 1.0);
        std::vector<float> v(size_t(rows * cols));
        for (float &x : v)
            x = float(offset + scale * u(rng));
        Tensor t;
        t.name = name;
        t.sourceName = name;
        t.role = role;
        t.block = block;
        t.rows = rows;
        t.cols = cols;
        t.data = std::make_shared<VectorData>(std::move(v), cols);
        m->tensors.push_back(std::move(t));
    };
    const int64_t H = s.hidden, I = s.intermediate, q = int64_t(s.heads) * s.headDim,
                  kv = int64_t(s.kvHeads) * s.headDim;
    add("model.embed_tokens", TensorRole::Embed, -1, s.vocab, H, 1.0);
    for (int b = 0; b < s.layers; ++b) {
        const std::string p = "model.layers." + std::to_string(b) + ".";
        add(p + "input_layernorm", TensorRole::Norm, b, 1, H, 0.2, 1.0);
        add(layerName(b, TensorRole::Q), TensorRole::Q, b, q, H, 1.5 / std::sqrt(double(H)));
        add(layerName(b, TensorRole::K), TensorRole::K, b, kv, H, 1.5 / std::sqrt(double(H)));
        add(layerName(b, TensorRole::V), TensorRole::V, b, kv, H, 1.5 / std::sqrt(double(H)));
        add(layerName(b, TensorRole::O), TensorRole::O, b, H, q, 1.0 / std::sqrt(double(q)));
        if (s.bias)
            for (TensorRole r : { TensorRole::Q, TensorRole::K, TensorRole::V })
                add(layerName(b, r) + ".bias", TensorRole::Bias, b, 1, r == TensorRole::Q ? q : kv, 0.3);
        if (s.bias)
            add(layerName(b, TensorRole::O) + ".bias", TensorRole::Bias, b, 1, H, 0.3);
        add(p + "post_attention_layernorm", TensorRole::Norm, b, 1, H, 0.2, 1.0);
        add(layerName(b, TensorRole::Gate), TensorRole::Gate, b, I, H, 1.5 / std::sqrt(double(H)));
        add(layerName(b, TensorRole::Up), TensorRole::Up, b, I, H, 1.5 / std::sqrt(double(H)));
        add(layerName(b, TensorRole::Down), TensorRole::Down, b, H, I, 1.0 / std::sqrt(double(I)));
    }
    add("model.norm", TensorRole::Norm, -1, 1, H, 0.2, 1.0);
    add("lm_head", TensorRole::LmHead, -1, s.vocab, H, 2.0 / std::sqrt(double(H)));
    validateLlamaModel(*m, "random");
    return m;
}

// ---- the plain double-precision reference ----

using Mat = std::vector<std::vector<double>>; // [rows][cols]

Mat tensorOf(const Model &m, const std::string &name)
{
    const Tensor &t = m.tensor(name);
    const std::vector<float> v = m.readMatrix(t);
    Mat out(size_t(t.rows), std::vector<double>(size_t(t.cols)));
    for (int64_t r = 0; r < t.rows; ++r)
        for (int64_t c = 0; c < t.cols; ++c)
            out[size_t(r)][size_t(c)] = v[size_t(r * t.cols + c)];
    return out;
}

std::vector<double> biasOf(const Model &m, const std::string &name, int64_t n)
{
    if (!m.find(name))
        return std::vector<double>(size_t(n), 0.0);
    return tensorOf(m, name)[0];
}

Mat linear(const Mat &x, const Mat &w, const std::vector<double> &b)
{
    Mat y(x.size(), std::vector<double>(w.size()));
    for (size_t t = 0; t < x.size(); ++t)
        for (size_t o = 0; o < w.size(); ++o) {
            double s = b[o];
            for (size_t i = 0; i < w[o].size(); ++i)
                s += x[t][i] * w[o][i];
            y[t][o] = s;
        }
    return y;
}

Mat rms(const Mat &x, const std::vector<double> &w, double eps)
{
    Mat y = x;
    for (auto &row : y) {
        double ss = 0.0;
        for (double v : row)
            ss += v * v;
        const double inv = 1.0 / std::sqrt(ss / double(row.size()) + eps);
        for (size_t i = 0; i < row.size(); ++i)
            row[i] = row[i] * inv * w[i];
    }
    return y;
}

// Rotate-half RoPE written out from the definition, θ_j = base^(−2j/d), position = row index.
void rope(Mat &x, int heads, int d, double base)
{
    for (size_t t = 0; t < x.size(); ++t)
        for (int h = 0; h < heads; ++h)
            for (int j = 0; j < d / 2; ++j) {
                const double angle = double(t) * std::pow(base, -2.0 * j / d);
                double &a = x[t][size_t(h * d + j)];
                double &b = x[t][size_t(h * d + j + d / 2)];
                const double na = a * std::cos(angle) - b * std::sin(angle);
                const double nb = b * std::cos(angle) + a * std::sin(angle);
                a = na;
                b = nb;
            }
}

// q: n × heads·d, k/v: n × kvHeads·d, query t sees keys 0..t.
Mat attention(const Mat &q, const Mat &k, const Mat &v, int heads, int kvHeads, int d, int64_t posOffset = 0)
{
    const size_t n = q.size();
    Mat out(n, std::vector<double>(size_t(heads * d), 0.0));
    for (size_t t = 0; t < n; ++t)
        for (int h = 0; h < heads; ++h) {
            const int g = h / (heads / kvHeads);
            const size_t keys = size_t(posOffset) + t + 1;
            std::vector<double> s(keys);
            double mx = -1e300;
            for (size_t j = 0; j < keys; ++j) {
                double dot = 0.0;
                for (int i = 0; i < d; ++i)
                    dot += q[t][size_t(h * d + i)] * k[j][size_t(g * d + i)];
                s[j] = dot / std::sqrt(double(d));
                mx = std::max(mx, s[j]);
            }
            double sum = 0.0;
            for (double &e : s)
                sum += (e = std::exp(e - mx));
            for (size_t j = 0; j < keys; ++j)
                for (int i = 0; i < d; ++i)
                    out[t][size_t(h * d + i)] += s[j] / sum * v[j][size_t(g * d + i)];
        }
    return out;
}

Mat referenceLogits(const Model &m, const std::vector<int32_t> &tokens)
{
    const HyperParams &h = m.hparams;
    const Mat emb = tensorOf(m, "model.embed_tokens");
    Mat x;
    for (int32_t t : tokens)
        x.push_back(emb[size_t(t)]);
    const int64_t H = h.hiddenSize, I = h.intermediateSize, q = int64_t(h.numHeads) * h.headDim,
                  kv = int64_t(h.numKvHeads) * h.headDim;
    for (int b = 0; b < h.numLayers; ++b) {
        const std::string p = "model.layers." + std::to_string(b) + ".";
        const Mat xn = rms(x, tensorOf(m, p + "input_layernorm")[0], h.rmsEps);
        auto proj = [&](TensorRole r, const Mat &in, int64_t n) {
            return linear(in, tensorOf(m, layerName(b, r)), biasOf(m, layerName(b, r) + ".bias", n));
        };
        Mat Q = proj(TensorRole::Q, xn, q), K = proj(TensorRole::K, xn, kv), V = proj(TensorRole::V, xn, kv);
        rope(Q, h.numHeads, h.headDim, h.ropeTheta);
        rope(K, h.numKvHeads, h.headDim, h.ropeTheta);
        const Mat a = attention(Q, K, V, h.numHeads, h.numKvHeads, h.headDim);
        const Mat o = proj(TensorRole::O, a, H);
        for (size_t t = 0; t < x.size(); ++t)
            for (int64_t i = 0; i < H; ++i)
                x[t][size_t(i)] += o[t][size_t(i)];
        const Mat xm = rms(x, tensorOf(m, p + "post_attention_layernorm")[0], h.rmsEps);
        const Mat g = proj(TensorRole::Gate, xm, I), u = proj(TensorRole::Up, xm, I);
        Mat act = g;
        for (size_t t = 0; t < act.size(); ++t)
            for (int64_t i = 0; i < I; ++i)
                act[t][size_t(i)] = g[t][size_t(i)] / (1.0 + std::exp(-g[t][size_t(i)])) * u[t][size_t(i)];
        const Mat d = proj(TensorRole::Down, act, H);
        for (size_t t = 0; t < x.size(); ++t)
            for (int64_t i = 0; i < H; ++i)
                x[t][size_t(i)] += d[t][size_t(i)];
    }
    const Mat xf = rms(x, tensorOf(m, "model.norm")[0], h.rmsEps);
    return linear(xf, tensorOf(m, "lm_head"), std::vector<double>(size_t(h.vocabSize), 0.0));
}

std::vector<int32_t> randomTokens(int64_t n, int vocab, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> u(0, vocab - 1);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int32_t &x : t)
        x = u(rng);
    return t;
}

// ---- observer ----

struct Call
{
    int block;
    int kind; // 0..4 LinearInput, 5 = block output
    int64_t tokens;
    int64_t cols;
};

class RecordingObserver final : public ActivationObserver
{
public:
    explicit RecordingObserver(std::vector<int> wanted = {})
        : m_wanted(std::move(wanted))
    { }
    void onLinearInput(int block, LinearInput input, const float *x, int64_t tokens, int64_t cols) override
    {
        calls.push_back({ block, int(input), tokens, cols });
        if (input == LinearInput::AttnIn && !firstAttnInBlock.has_value()) {
            firstAttnInBlock = block;
            firstAttnIn.assign(x, x + tokens * cols);
        }
    }
    void onBlockOutput(int block, const float *, int64_t tokens, int64_t hidden) override
    {
        calls.push_back({ block, 5, tokens, hidden });
    }
    bool wantsBlock(int block) const override
    {
        return m_wanted.empty() || std::find(m_wanted.begin(), m_wanted.end(), block) != m_wanted.end();
    }

    std::vector<Call> calls;
    std::optional<int> firstAttnInBlock;
    std::vector<float> firstAttnIn;

private:
    std::vector<int> m_wanted;
};

} // namespace

class TestForward : public QObject
{
    Q_OBJECT
private slots:
    void matchesReference_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<bool>("bf16");
        QTest::newRow("gguf") << QStringLiteral("models/stories260K.gguf") << false;
        QTest::newRow("llama2c") << QStringLiteral("models/stories260K-llama2c/stories260K.bin") << false;
        QTest::newRow("hf-f32") << QStringLiteral("models/stories260K-hf") << false;
        QTest::newRow("hf-bf16-sharded") << QStringLiteral("models/stories260K-hf-bf16-sharded") << true;
    }
    void matchesReference()
    {
        QFETCH(QString, path);
        QFETCH(bool, bf16);
        QS_REQUIRE_TESTDATA(refPath, "reference/stories260K.reference.json");
        const QString modelPath = qs::test::testDataPath(path);
        if (!QFileInfo::exists(modelPath)) {
            if (qs::test::inCi())
                QFAIL(qPrintable(QStringLiteral("test data missing: ") + modelPath));
            QSKIP(qPrintable(QStringLiteral("test data missing: ") + modelPath));
        }
        const Reference ref = loadReference(refPath);
        ForwardEngine engine(openModel(str(modelPath)));
        const int64_t V = engine.hparams().vocabSize;
        const std::vector<float> logits = engine.forwardAll(ref.tokens);
        QCOMPARE(logits.size(), ref.tokens.size() * size_t(V));
        for (float v : logits)
            QVERIFY(std::isfinite(v));

        const double nll = meanNll(logits, ref.tokens, V);
        const double nllRel = std::abs(nll - ref.meanNll) / ref.meanNll;
        int agree = 0;
        for (size_t t = 0; t < ref.tokens.size(); ++t)
            agree += argmaxRow(logits.data() + t * size_t(V), V) == ref.argmax[t] ? 1 : 0;
        const float *last = logits.data() + (ref.tokens.size() - 1) * size_t(V);
        double maxLogitDiff = 0.0;
        for (size_t i = 0; i < ref.lastLogits16.size(); ++i)
            maxLogitDiff = std::max(maxLogitDiff, std::abs(double(last[i]) - ref.lastLogits16[i]));
        const std::vector<int32_t> generated = engine.greedyGenerate({ ref.greedy[0] }, int(ref.greedy.size()) - 1);
        int greedySame = 0;
        while (
            greedySame < int(generated.size()) && generated[size_t(greedySame)] == ref.greedy[size_t(greedySame) + 1])
            ++greedySame;
        qInfo("%s: mean NLL %.7f (reference %.7f, rel. deviation %.2e), argmax %d/%zu, max |Δlogit| (last position, "
              "first 16) %.2e, greedy prefix %d/%zu",
            qPrintable(path), nll, ref.meanNll, nllRel, agree, ref.tokens.size(), maxLogitDiff, greedySame,
            generated.size());

        if (bf16) {
            QVERIFY2(nllRel < kBf16NllRelTolerance, qPrintable(QString::number(nllRel)));
            QVERIFY(double(agree) >= kBf16ArgmaxAgreement * double(ref.tokens.size()));
            return;
        }
        QVERIFY2(nllRel < kNllRelTolerance, qPrintable(QString::number(nllRel)));
        QCOMPARE(agree, int(ref.tokens.size()));
        QVERIFY2(maxLogitDiff < kLogitAbsTolerance, qPrintable(QString::number(maxLogitDiff)));
        QCOMPARE(greedySame, int(generated.size()));
    }

    // Two more real models (FFN 192; plain multi-head attention): finite logits, and their own greedy text
    // has a low perplexity, which fails loudly if, say, GQA grouping or the FFN size were mishandled.
    void otherModels_data()
    {
        QTest::addColumn<QString>("path");
        QTest::newRow("llama2xs") << QStringLiteral("models/llama2xs-llama2c/llama2xs.bin");
        QTest::newRow("aidreams260K") << QStringLiteral("models/aidreams260K-llama2c/aidreams260K.bin");
    }
    void otherModels()
    {
        QFETCH(QString, path);
        const QString modelPath = qs::test::testDataPath(path);
        if (!QFileInfo::exists(modelPath)) {
            if (qs::test::inCi())
                QFAIL(qPrintable(QStringLiteral("test data missing: ") + modelPath));
            QSKIP(qPrintable(QStringLiteral("test data missing: ") + modelPath));
        }
        ForwardEngine engine(openModel(str(modelPath)));
        const int64_t V = engine.hparams().vocabSize;
        std::vector<int32_t> text { engine.hparams().bosTokenId };
        const std::vector<int32_t> gen = engine.greedyGenerate(text, 63);
        text.insert(text.end(), gen.begin(), gen.end());
        const std::vector<float> logits = engine.forwardAll(text);
        for (float v : logits)
            QVERIFY(std::isfinite(v));
        const double ppl = std::exp(meanNll(logits, text, V));
        qInfo("%s: perplexity on its own greedy text %.4f", qPrintable(path), ppl);
        QVERIFY2(ppl < 5.0, qPrintable(QString::number(ppl)));
        // The KV-cached generation and the full pass agree on every greedy choice.
        for (size_t t = 0; t + 1 < text.size(); ++t)
            QCOMPARE(argmaxRow(logits.data() + t * size_t(V), V), text[t + 1]);
    }

    // The kernels against the definitions, on shapes that exercise GQA, query blocks (32) and a KV cache.
    void attentionKernelConformance_data()
    {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("posOffset");
        QTest::newRow("mha-1") << 2 << 2 << 4 << 1 << 0;
        QTest::newRow("gqa-7") << 4 << 2 << 6 << 7 << 0;
        QTest::newRow("gqa-33") << 6 << 2 << 8 << 33 << 0;
        QTest::newRow("mqa-70") << 4 << 1 << 4 << 70 << 0;
        QTest::newRow("cache-1") << 4 << 2 << 4 << 1 << 12;
        QTest::newRow("cache-35") << 8 << 4 << 2 << 35 << 9;
    }
    void attentionKernelConformance()
    {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, rows);
        QFETCH(int, posOffset);
        std::mt19937 rng(uint32_t(heads * 1000 + rows * 10 + posOffset));
        std::uniform_real_distribution<double> u(-2.0, 2.0);
        const int64_t qCols = int64_t(heads) * headDim, kvCols = int64_t(kvHeads) * headDim;
        const int64_t keys = posOffset + rows;
        // Padded strides, as in the engine's fused buffers.
        const int64_t qStride = qCols + 3, kvStride = kvCols + 5, outStride = qCols + 1;
        std::vector<float> q(size_t(rows * qStride)), k(size_t(keys * kvStride)), v(size_t(keys * kvStride));
        Mat Q(static_cast<size_t>(rows), std::vector<double>(static_cast<size_t>(qCols)));
        Mat K(static_cast<size_t>(keys), std::vector<double>(static_cast<size_t>(kvCols)));
        Mat Vm = K;
        for (int64_t t = 0; t < rows; ++t)
            for (int64_t i = 0; i < qCols; ++i)
                Q[size_t(t)][size_t(i)] = q[size_t(t * qStride + i)] = float(u(rng));
        for (int64_t t = 0; t < keys; ++t)
            for (int64_t i = 0; i < kvCols; ++i) {
                K[size_t(t)][size_t(i)] = k[size_t(t * kvStride + i)] = float(u(rng));
                Vm[size_t(t)][size_t(i)] = v[size_t(t * kvStride + i)] = float(u(rng));
            }
        std::vector<float> out(size_t(rows * outStride), -7.0f);
        kernels::causalAttention({ heads, kvHeads, headDim }, q.data(), qStride, k.data(), v.data(), kvStride, rows,
            posOffset, out.data(), outStride);
        const Mat expect = attention(Q, K, Vm, heads, kvHeads, headDim, posOffset);
        double maxDiff = 0.0;
        for (int64_t t = 0; t < rows; ++t) {
            for (int64_t i = 0; i < qCols; ++i)
                maxDiff = std::max(
                    maxDiff, std::abs(double(out[size_t(t * outStride + i)]) - expect[size_t(t)][size_t(i)]));
            QCOMPARE(out[size_t(t * outStride + qCols)], -7.0f); // padding untouched
        }
        QVERIFY2(maxDiff < 1e-5, qPrintable(QString::number(maxDiff)));
    }

    void ropeAndNormKernels()
    {
        HyperParams h;
        h.headDim = 10;
        h.ropeTheta = 500.0;
        const int heads = 3, rows = 9, firstPos = 5, stride = heads * h.headDim + 2;
        const auto table = kernels::makeRopeTable(kernels::ropeInverseFrequencies(h, 64), 0, 64);
        std::mt19937 rng(3);
        std::uniform_real_distribution<double> u(-1.0, 1.0);
        std::vector<float> x(size_t(rows * stride));
        for (float &v : x)
            v = float(u(rng));
        const std::vector<float> before = x;
        kernels::applyRope(x.data(), rows, stride, heads, h.headDim, firstPos, table);
        double maxDiff = 0.0;
        const int d = h.headDim;
        for (int t = 0; t < rows; ++t)
            for (int hh = 0; hh < heads; ++hh)
                for (int j = 0; j < d / 2; ++j) {
                    const double angle = double(firstPos + t) * std::pow(h.ropeTheta, -2.0 * j / d);
                    const double a = before[size_t(t * stride + hh * d + j)];
                    const double b = before[size_t(t * stride + hh * d + j + d / 2)];
                    maxDiff = std::max(maxDiff,
                        std::abs(x[size_t(t * stride + hh * d + j)] - (a * std::cos(angle) - b * std::sin(angle))));
                    maxDiff = std::max(maxDiff,
                        std::abs(
                            x[size_t(t * stride + hh * d + j + d / 2)] - (b * std::cos(angle) + a * std::sin(angle))));
                }
        QVERIFY2(maxDiff < 1e-6, qPrintable(QString::number(maxDiff)));
        for (int t = 0; t < rows; ++t) // padding columns untouched
            QCOMPARE(x[size_t(t * stride + stride - 1)], before[size_t(t * stride + stride - 1)]);

        const int cols = 37;
        std::vector<float> a(size_t(3 * cols)), w(static_cast<size_t>(cols)), y(a.size());
        for (float &v : a)
            v = float(u(rng));
        for (float &v : w)
            v = float(1.0 + u(rng));
        kernels::rmsNorm(a.data(), w.data(), 3, cols, 1e-5, y.data());
        for (int t = 0; t < 3; ++t) {
            double ss = 0.0;
            for (int i = 0; i < cols; ++i)
                ss += double(a[size_t(t * cols + i)]) * a[size_t(t * cols + i)];
            const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
            for (int i = 0; i < cols; ++i)
                QVERIFY(std::abs(y[size_t(t * cols + i)] - a[size_t(t * cols + i)] * inv * w[size_t(i)]) < 1e-6);
        }
    }

    void ropeScaling()
    {
        HyperParams h;
        h.headDim = 128;
        h.ropeTheta = 500000.0;
        h.maxPositions = 131072;
        const std::vector<double> plain = kernels::ropeInverseFrequencies(h, 16);
        QCOMPARE(plain.size(), size_t(64));
        QCOMPARE(plain[0], 1.0);
        QVERIFY(std::abs(plain[10] - std::pow(500000.0, -20.0 / 128.0)) < 1e-15);

        h.ropeScaling.type = "linear";
        h.ropeScaling.factor = 4.0;
        const std::vector<double> linear = kernels::ropeInverseFrequencies(h, 16);
        for (size_t j = 0; j < plain.size(); ++j)
            QVERIFY(std::abs(linear[j] - plain[j] / 4.0) < 1e-18);

        // Llama 3.1: factor 8, low 1, high 4, original 8192. Wavelengths below 8192/4 are kept, above
        // 8192/1 divided by 8, in between blended with smooth = (8192/λ − 1)/(4 − 1).
        h.ropeScaling.type = "llama3";
        h.ropeScaling.factor = 8.0;
        h.ropeScaling.lowFreqFactor = 1.0;
        h.ropeScaling.highFreqFactor = 4.0;
        h.ropeScaling.originalMaxPositions = 8192;
        const std::vector<double> l3 = kernels::ropeInverseFrequencies(h, 16);
        int kept = 0, divided = 0, blended = 0;
        for (size_t j = 0; j < plain.size(); ++j) {
            const double lambda = 2.0 * std::numbers::pi / plain[j];
            if (lambda < 2048.0) {
                QCOMPARE(l3[j], plain[j]);
                ++kept;
            } else if (lambda > 8192.0) {
                QVERIFY(std::abs(l3[j] - plain[j] / 8.0) <= 1e-15 * plain[j]);
                ++divided;
            } else {
                const double smooth = (8192.0 / lambda - 1.0) / 3.0;
                const double expect = (1.0 - smooth) * plain[j] / 8.0 + smooth * plain[j];
                QVERIFY(std::abs(l3[j] - expect) <= 1e-12 * plain[j]);
                QVERIFY(l3[j] < plain[j] && l3[j] > plain[j] / 8.0);
                ++blended;
            }
        }
        QVERIFY(kept > 0 && divided > 0 && blended > 0);

        h.ropeScaling.type = "dynamic";
        h.ropeScaling.factor = 2.0;
        h.ropeScaling.originalMaxPositions = 4096;
        QCOMPARE(kernels::ropeInverseFrequencies(h, 4096), plain); // within the trained context: unchanged
        const std::vector<double> dyn = kernels::ropeInverseFrequencies(h, 8192);
        const double base = 500000.0 * std::pow(2.0 * 8192.0 / 4096.0 - 1.0, 128.0 / 126.0);
        QVERIFY(std::abs(dyn[5] - std::pow(base, -10.0 / 128.0)) < 1e-15);

        h.ropeScaling.type = "yarn";
        QVERIFY_THROWS_EXCEPTION(Error, kernels::ropeInverseFrequencies(h, 16));
    }

    // A whole random model, float32 engine against the double reference: GQA, biases on q/k/v/o, lengths
    // that cross the attention's query blocks.
    void modelConformance_data()
    {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<bool>("bias");
        QTest::addColumn<int>("length");
        QTest::newRow("gqa-bias-1") << 4 << 2 << true << 1;
        QTest::newRow("gqa-bias-37") << 4 << 2 << true << 37;
        QTest::newRow("mha-13") << 4 << 4 << false << 13;
        QTest::newRow("mqa-bias-65") << 4 << 1 << true << 65;
    }
    void modelConformance()
    {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(bool, bias);
        QFETCH(int, length);
        RandomSpec spec;
        spec.heads = heads;
        spec.kvHeads = kvHeads;
        spec.bias = bias;
        spec.seed = uint32_t(heads * 100 + kvHeads * 10 + length);
        const std::shared_ptr<Model> model = randomModel(spec);
        const std::vector<int32_t> tokens = randomTokens(length, spec.vocab, spec.seed);
        ForwardEngine engine(model);
        const std::vector<float> logits = engine.forwardAll(tokens);
        const Mat expect = referenceLogits(*model, tokens);
        double maxDiff = 0.0, maxAbs = 0.0;
        for (int t = 0; t < length; ++t)
            for (int v = 0; v < spec.vocab; ++v) {
                maxDiff = std::max(
                    maxDiff, std::abs(double(logits[size_t(t * spec.vocab + v)]) - expect[size_t(t)][size_t(v)]));
                maxAbs = std::max(maxAbs, std::abs(expect[size_t(t)][size_t(v)]));
            }
        qInfo("max |Δlogit| %.2e (logits up to %.2f)", maxDiff, maxAbs);
        QVERIFY(maxAbs > 0.5); // the model does something
        QVERIFY2(maxDiff < kConformanceTolerance, qPrintable(QString::number(maxDiff)));

        // A sub-range of positions, and streamed tiles, give the same rows (up to GEMM rounding: Eigen's
        // kernels round differently for different row counts).
        if (length > 3) {
            auto close = [&](const float *a, const float *b, int64_t count) {
                for (int64_t i = 0; i < count; ++i)
                    if (std::abs(a[i] - b[i]) > 1e-5f * (1.0f + std::abs(b[i])))
                        return false;
                return true;
            };
            std::vector<float> part(size_t(2 * spec.vocab));
            engine.forward(tokens.data(), length, Logits::into(part.data(), 1, 3));
            QVERIFY(close(part.data(), logits.data() + spec.vocab, 2 * spec.vocab));
            int64_t seen = 0;
            engine.forward(
                tokens.data(), length, Logits::streamed(2, length, [&](int64_t p, int64_t c, const float *rows) {
                    QCOMPARE(p, 2 + seen);
                    QVERIFY(close(rows, logits.data() + p * spec.vocab, c * spec.vocab));
                    seen += c;
                }));
            QCOMPARE(seen, int64_t(length - 2));
        }
    }

    // No cache, a cache that holds one block, and the default: bit-identical logits; greedy generation
    // (KV cache) agrees with argmax of full passes.
    void weightCacheAndGeneration()
    {
        RandomSpec spec;
        spec.layers = 3;
        spec.bias = true;
        const std::shared_ptr<Model> model = randomModel(spec);
        const std::vector<int32_t> tokens = randomTokens(21, spec.vocab, 9);
        ForwardEngine cached(model);
        const std::vector<float> a = cached.forwardAll(tokens);
        QVERIFY(cached.cachedBytes() > 0);
        ForwardOptions none;
        none.weightCacheBytes = 0;
        ForwardEngine uncached(model, none);
        QVERIFY(uncached.forwardAll(tokens) == a);
        QCOMPARE(uncached.cachedBytes(), uint64_t(0));
        ForwardOptions small;
        small.weightCacheBytes = 12000; // about one block of this model
        ForwardEngine partial(model, small);
        QVERIFY(partial.forwardAll(tokens) == a);
        QVERIFY(partial.forwardAll(tokens) == a);
        QVERIFY(partial.cachedBytes() <= small.weightCacheBytes);
        // Small tiles: the LM head read in vocabulary tiles of 7 rows (not cached) and logits streamed
        // 3 positions at a time.
        ForwardOptions tiled;
        tiled.weightCacheBytes = 0;
        tiled.headTileBytes = 7 * spec.hidden * sizeof(float) + 5;
        ForwardEngine tiledEngine(model, tiled);
        std::vector<float> t(a.size());
        tiledEngine.forward(tokens.data(), int64_t(tokens.size()), Logits::into(t.data(), 0, int64_t(tokens.size())));
        for (size_t i = 0; i < a.size(); ++i)
            QVERIFY(std::abs(t[i] - a[i]) <= 1e-5f * (1.0f + std::abs(a[i])));
        tiled.headTileBytes = 3 * spec.vocab * sizeof(float);
        ForwardEngine streamedEngine(model, tiled);
        int64_t calls = 0, seen = 0;
        streamedEngine.forward(tokens.data(), int64_t(tokens.size()),
            Logits::streamed(1, int64_t(tokens.size()), [&](int64_t p, int64_t c, const float *rows) {
                QCOMPARE(p, 1 + seen);
                QVERIFY(c <= 3);
                for (int64_t i = 0; i < c * spec.vocab; ++i)
                    QVERIFY(std::abs(rows[i] - a[size_t(p * spec.vocab + i)]) <= 1e-5f * (1.0f + std::abs(rows[i])));
                seen += c;
                ++calls;
            }));
        QCOMPARE(seen, int64_t(tokens.size()) - 1);
        QCOMPARE(calls, (seen + 2) / 3);

        cached.clearCache();
        QCOMPARE(cached.cachedBytes(), uint64_t(0));

        std::vector<int32_t> seq(tokens.begin(), tokens.begin() + 5);
        const std::vector<int32_t> gen = cached.greedyGenerate(seq, 12);
        QCOMPARE(gen.size(), size_t(12));
        for (int32_t g : gen) {
            const std::vector<float> l = cached.forwardAll(seq);
            QCOMPARE(argmaxRow(l.data() + (seq.size() - 1) * size_t(spec.vocab), spec.vocab), g);
            seq.push_back(g);
        }
    }

    void errors()
    {
        RandomSpec spec;
        ForwardEngine engine(randomModel(spec));
        std::vector<int32_t> bad { 1, spec.vocab };
        QVERIFY_THROWS_EXCEPTION(Error, engine.forwardAll(bad));
        std::vector<int32_t> ok { 1, 2, 3 };
        std::vector<float> out(size_t(spec.vocab));
        QVERIFY_THROWS_EXCEPTION(Error, engine.forward(ok.data(), 3, Logits::into(out.data(), 2, 4)));
        QVERIFY_THROWS_EXCEPTION(Error, engine.forward(ok.data(), 0, Logits::none()));
        NullProgress cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(
            Cancelled, engine.forward(ok.data(), 3, Logits::into(out.data(), 2, 3), nullptr, &cancelled));

        auto noQ = randomModel(spec);
        noQ->tensors.erase(std::find_if(noQ->tensors.begin(), noQ->tensors.end(),
            [](const Tensor &t) { return t.name == layerName(1, TensorRole::Q); }));
        QVERIFY_THROWS_EXCEPTION(Error, ForwardEngine { noQ });
    }

    void observer()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        const std::shared_ptr<const Model> model = openModel(str(path));
        const HyperParams &h = model->hparams;
        ForwardEngine engine(model);
        const std::vector<int32_t> tokens { 1, 403, 407, 261, 378, 383, 286, 261, 376 };
        const int64_t n = int64_t(tokens.size());
        RecordingObserver rec;
        const std::vector<float> withObserver = engine.forwardAll(tokens, &rec);
        QVERIFY(withObserver == engine.forwardAll(tokens)); // observing changes nothing

        QCOMPARE(rec.calls.size(), size_t(h.numLayers * 5 + 1));
        const int64_t qDim = int64_t(h.numHeads) * h.headDim;
        for (int b = 0; b < h.numLayers; ++b) {
            const Call *c = &rec.calls[size_t(b * 5)];
            const int kinds[5] = { int(LinearInput::AttnIn), int(LinearInput::AttnOut), int(LinearInput::MlpIn),
                int(LinearInput::MlpAct), 5 };
            const int64_t cols[5] = { h.hiddenSize, qDim, h.hiddenSize, h.intermediateSize, h.hiddenSize };
            for (int i = 0; i < 5; ++i) {
                QCOMPARE(c[i].block, b);
                QCOMPARE(c[i].kind, kinds[i]);
                QCOMPARE(c[i].tokens, n);
                QCOMPARE(c[i].cols, cols[i]);
            }
        }
        const Call &head = rec.calls.back();
        QCOMPARE(head.block, -1);
        QCOMPARE(head.kind, int(LinearInput::Head));
        QCOMPARE(head.cols, int64_t(h.hiddenSize));
        QCOMPARE(head.tokens, n);

        // Block 0's attention input is RMSNorm(embedding) with input_layernorm's weights.
        QCOMPARE(*rec.firstAttnInBlock, 0);
        const std::vector<float> emb = model->readMatrix(model->tensor("model.embed_tokens"));
        const std::vector<float> w = model->readMatrix(model->tensor("model.layers.0.input_layernorm"));
        double maxDiff = 0.0;
        for (int64_t t = 0; t < n; ++t) {
            const float *e = emb.data() + tokens[size_t(t)] * h.hiddenSize;
            double ss = 0.0;
            for (int i = 0; i < h.hiddenSize; ++i)
                ss += double(e[i]) * e[i];
            const double inv = 1.0 / std::sqrt(ss / h.hiddenSize + h.rmsEps);
            for (int i = 0; i < h.hiddenSize; ++i)
                maxDiff = std::max(maxDiff,
                    std::abs(
                        double(rec.firstAttnIn[size_t(t * h.hiddenSize + i)]) - double(e[i]) * inv * w[size_t(i)]));
        }
        QVERIFY2(maxDiff < 1e-5, qPrintable(QString::number(maxDiff)));

        // Observing one block without logits: only that block's calls, no head, and the same values.
        RecordingObserver only2({ 2 });
        engine.forward(tokens.data(), n, Logits::none(), &only2);
        QCOMPARE(only2.calls.size(), size_t(5));
        for (const Call &c : only2.calls)
            QCOMPARE(c.block, 2);
        // The full pass's block-2 AttnIn: record with an observer that wants block 2 and the head.
        RecordingObserver with2({ 2, -1 });
        std::vector<float> last(size_t(h.vocabSize));
        engine.forward(tokens.data(), n, Logits::into(last.data(), n - 1, n), &with2);
        QCOMPARE(with2.calls.size(), size_t(6));
        QVERIFY(with2.firstAttnIn == only2.firstAttnIn);
    }
};

QTEST_GUILESS_MAIN(TestForward)
#include "tst_forward.moc"
