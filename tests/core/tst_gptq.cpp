// GPTQ per layer (algorithms.md §3.6, §11 #3–#7): the loss identity Σ½e² = ½tr(ΔW H_λ ΔWᵀ), lazy-batch
// exactness, H = cI ⇒ RTN, scale invariance, GPTQ < RTN on the §3.6 synthetic harness (also held out),
// act-order g_idx and static groups, dead columns, the Cholesky retry and failure paths, the fast inverse
// factor against the literal recipe, and a GPTQ result on the gguf_q4_0 grid decoding through ggml's Q4_0.
#include <QTest>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/Error.h"
#include "common/Half.h"
#include "common/Progress.h"
#include "io/GgufBlocks.h"
#include "quant/Gptq.h"
#include "quant/QuantMetrics.h"
#include "quant/Rtn.h"
#include "quant/SyntheticData.h"

using namespace qs::core;

namespace {

struct Layer
{
    int64_t rows = 0, cols = 0;
    std::vector<float> w;
    std::vector<float> x; // tokens × cols
    int64_t tokens = 0;
    Eigen::MatrixXd H;
};

Layer makeLayer(int64_t rows, int64_t cols, int64_t tokens, uint64_t seed, int outliers = 3, int dead = 1,
                double wStd = 0.02)
{
    Layer L;
    L.rows = rows;
    L.cols = cols;
    L.tokens = tokens;
    SyntheticInputOptions so;
    so.tokens = tokens;
    so.channels = cols;
    so.seed = seed;
    so.outlierChannels = outliers;
    so.deadChannels = dead;
    L.x = syntheticInputs(so);
    L.H = gramMatrix(L.x.data(), tokens, cols);
    L.w = syntheticWeights(rows, cols, seed + 1000, wStd);
    return L;
}

// ½ tr(ΔW H_λ ΔWᵀ) with the dead-column fix and damping the algorithm used, ΔW = W(dead zeroed) − Q.
double halfTraceLoss(const Layer &L, const GptqResult &r)
{
    Eigen::MatrixXd Hd = L.H;
    std::vector<bool> dead(size_t(L.cols), false);
    for (int64_t j = 0; j < L.cols; ++j)
        if (Hd(j, j) == 0.0) {
            Hd(j, j) = 1.0;
            dead[size_t(j)] = true;
        }
    Hd.diagonal().array() += r.lambda;
    Eigen::MatrixXd D(L.rows, L.cols);
    for (int64_t i = 0; i < L.rows; ++i)
        for (int64_t j = 0; j < L.cols; ++j)
            D(i, j) = (dead[size_t(j)] ? 0.0 : double(L.w[size_t(i * L.cols + j)])) -
                      double(r.tensor.dequantized[size_t(i * L.cols + j)]);
    return 0.5 * (D * Hd).cwiseProduct(D).sum();
}

// ‖(W − Q)X‖²/T = tr(ΔW H ΔWᵀ)/T with the undamped H = XᵀX (the §3.6 table's error). Plain loops: fast
// enough unoptimised.
double outputError(const std::vector<float> &w, const std::vector<float> &q, int64_t rows, int64_t cols,
                   const Eigen::MatrixXd &H, int64_t tokens)
{
    double total = 0.0;
    std::vector<double> d(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols; ++j)
            d[size_t(j)] = double(w[size_t(r * cols + j)]) - double(q[size_t(r * cols + j)]);
        for (int64_t j = 0; j < cols; ++j) {
            const double *h = H.data() + j * cols;
            double v = 0.0;
            for (int64_t i = 0; i < cols; ++i)
                v += h[i] * d[size_t(i)];
            total += v * d[size_t(j)];
        }
    }
    return total / double(tokens);
}

// The §3.6 harness data, built once for both bit widths: n = 256, m = 64, T = 4096, plus a held-out H.
struct Harness
{
    Layer calib;
    Eigen::MatrixXd heldOutH;
};

const Harness &harness()
{
    static const Harness h = [] {
        Harness x;
        x.calib = makeLayer(64, 256, 4096, 21);
        SyntheticInputOptions ho; // held out: same distribution, another seed, half the tokens
        ho.tokens = 2048;
        ho.channels = 256;
        ho.seed = 777;
        const std::vector<float> xh = syntheticInputs(ho);
        x.heldOutH = gramMatrix(xh.data(), 2048, 256);
        return x;
    }();
    return h;
}

GptqOptions options(GridId grid, int bits, int groupSize, bool actOrder = false, bool staticGroups = false,
                    bool dbl = false, int block = 128)
{
    GptqOptions o;
    o.spec = QuantSpec{ grid, bits, groupSize, 1 };
    o.actOrder = actOrder;
    o.staticGroups = staticGroups;
    o.doublePrecision = dbl;
    o.blockSize = block;
    return o;
}

bool sameBits(float a, float b)
{
    return std::memcmp(&a, &b, 4) == 0;
}

} // namespace

class TestGptq : public QObject
{
    Q_OBJECT
private slots:
    void lossIdentity_data()
    {
        QTest::addColumn<bool>("actOrder");
        QTest::addColumn<int>("groupSize");
        QTest::addColumn<bool>("dbl");
        QTest::newRow("natural g32 double") << false << 32 << true;
        QTest::newRow("act-order g32 double") << true << 32 << true;
        QTest::newRow("act-order per-row double") << true << -1 << true;
        QTest::newRow("natural g32 float") << false << 32 << false;
    }

    void lossIdentity()
    {
        QFETCH(bool, actOrder);
        QFETCH(int, groupSize);
        QFETCH(bool, dbl);
        const Layer L = makeLayer(24, 96, 512, 3);
        NullProgress progress;
        const GptqResult r =
            quantizeGptq({ L.w.data(), L.rows, L.cols }, L.H, options(GridId::MinMax, 3, groupSize, actOrder, false, dbl, 16),
                         progress, "model.layers.0.self_attn.q_proj");
        r.tensor.validate();
        QCOMPARE(r.deadColumns, 1);
        const double expect = halfTraceLoss(L, r);
        const double rel = std::fabs(r.loss - expect) / expect;
        QVERIFY2(rel < (dbl ? 1e-10 : 1e-4), qPrintable(QStringLiteral("loss %1 vs %2 (rel %3)").arg(r.loss).arg(expect).arg(rel)));
    }

    void lazyBatchExactness()
    {
        // Always-fresh group parameters make Q independent of B (g = 64; 48 is neither a divisor nor a multiple).
        const Layer L = makeLayer(32, 256, 600, 4);
        NullProgress progress;
        const WeightView wv{ L.w.data(), L.rows, L.cols };
        const GptqHessian h = prepareGptqHessian(L.H, options(GridId::MinMax, 4, 64, false, false, true), "l");
        const GptqResult ref = quantizeGptq(wv, h, options(GridId::MinMax, 4, 64, false, false, true, 1), progress, "l");
        for (int B : { 16, 48, 128, 256 }) {
            const GptqResult r = quantizeGptq(wv, h, options(GridId::MinMax, 4, 64, false, false, true, B), progress, "l");
            QVERIFY2(r.tensor.codes == ref.tensor.codes, qPrintable(QStringLiteral("B = %1").arg(B)));
            double maxDiff = 0.0;
            for (size_t i = 0; i < r.tensor.dequantized.size(); ++i)
                maxDiff = std::max(maxDiff, double(std::fabs(r.tensor.dequantized[i] - ref.tensor.dequantized[i])));
            QVERIFY(maxDiff <= 1e-6);
            QVERIFY(std::fabs(r.loss - ref.loss) <= 1e-9 * ref.loss);
        }
        // The float path too (codes identical; float summation order may move the loss slightly).
        const GptqHessian hf = prepareGptqHessian(L.H, options(GridId::MinMax, 4, 64), "l");
        const GptqResult f1 = quantizeGptq(wv, hf, options(GridId::MinMax, 4, 64, false, false, false, 1), progress, "l");
        const GptqResult f2 = quantizeGptq(wv, hf, options(GridId::MinMax, 4, 64, false, false, false, 128), progress, "l");
        int differ = 0;
        for (size_t i = 0; i < f1.tensor.codes.size(); ++i)
            differ += f1.tensor.codes[i] != f2.tensor.codes[i];
        QVERIFY(differ <= 2);
    }

    void isotropicEqualsRtn_data()
    {
        QTest::addColumn<int>("grid");
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("groupSize");
        QTest::addColumn<bool>("actOrder");
        QTest::newRow("minmax 4 g32") << int(GridId::MinMax) << 4 << 32 << false;
        QTest::newRow("minmax 3 per-row") << int(GridId::MinMax) << 3 << -1 << false;
        QTest::newRow("sym_gptq 4 g64") << int(GridId::SymGptq) << 4 << 64 << false;
        QTest::newRow("gguf_q4_0") << int(GridId::GgufQ4_0) << 4 << 32 << false;
        QTest::newRow("minmax 4 per-row act-order") << int(GridId::MinMax) << 4 << -1 << true;
    }

    void isotropicEqualsRtn()
    {
        QFETCH(int, grid);
        QFETCH(int, bits);
        QFETCH(int, groupSize);
        QFETCH(bool, actOrder);
        const int64_t rows = 16, cols = 128;
        const std::vector<float> w = syntheticWeights(rows, cols, 12);
        const Eigen::MatrixXd H = 3.7 * Eigen::MatrixXd::Identity(cols, cols);
        NullProgress progress;
        const GptqOptions o = options(GridId(grid), bits, groupSize, actOrder, false, false, 32);
        const GptqResult g = quantizeGptq({ w.data(), rows, cols }, H, o, progress, "iso");
        const QuantizedTensor r = quantizeRtn({ w.data(), rows, cols }, o.spec, "iso");
        QVERIFY(g.tensor.codes == r.codes);
        QVERIFY(g.tensor.dequantized == r.dequantized);
        QVERIFY(g.tensor.scales == r.scales);
        QVERIFY(g.tensor.zeros == r.zeros);

        // Damping → ∞ also reduces to RTN.
        GptqOptions big = options(GridId(grid), bits, groupSize, false, false, false, 32);
        big.percDamp = 1e9;
        big.maxPercDamp = 1e10;
        const Layer L = makeLayer(rows, cols, 300, 13, 2, 0);
        const GptqResult gb = quantizeGptq({ w.data(), rows, cols }, L.H, big, progress, "iso");
        QVERIFY(gb.tensor.codes == r.codes);
    }

    void scaleInvariance()
    {
        // No dead columns: their diagonal is set to 1 whatever the scale of H, which breaks exact invariance.
        const Layer L = makeLayer(16, 64, 256, 5, 3, 0);
        NullProgress progress;
        const GptqOptions o = options(GridId::MinMax, 4, 32, true);
        const GptqResult a = quantizeGptq({ L.w.data(), L.rows, L.cols }, L.H, o, progress, "s");
        const Eigen::MatrixXd H4 = 4.0 * L.H;
        const GptqResult b = quantizeGptq({ L.w.data(), L.rows, L.cols }, H4, o, progress, "s");
        QVERIFY(a.tensor.codes == b.tensor.codes);
        QVERIFY(a.tensor.dequantized == b.tensor.dequantized);
        QVERIFY(std::fabs(b.loss - 4.0 * a.loss) <= 1e-5 * b.loss); // the loss scales with c
    }

    void beatsRtnOnHarness_data()
    {
        QTest::addColumn<int>("bits");
        QTest::newRow("4-bit g128") << 4;
        QTest::newRow("3-bit g128") << 3;
    }

    void beatsRtnOnHarness()
    {
        // §3.6: n = 256, m = 64, T = 4096, correlated inputs, 3 outlier channels, one dead channel;
        // error = ‖(W − Q)X‖²/T. Held-out: a second X from another seed.
        QFETCH(int, bits);
        const Layer &L = harness().calib;
        const Eigen::MatrixXd &Hh = harness().heldOutH;
        NullProgress progress;
        const WeightView wv{ L.w.data(), L.rows, L.cols };
        const QuantizedTensor rtn = quantizeRtn(wv, { GridId::MinMax, bits, 128, 1 }, "h");
        const GptqResult g = quantizeGptq(wv, L.H, options(GridId::MinMax, bits, 128), progress, "h");
        const GptqResult ga = quantizeGptq(wv, L.H, options(GridId::MinMax, bits, 128, true), progress, "h");
        // The dead channel is zeroed by GPTQ; RTN keeps it. Compare on the data (dead rows of X are zero).
        const double eR = outputError(L.w, rtn.dequantized, L.rows, L.cols, L.H, L.tokens);
        const double eG = outputError(L.w, g.tensor.dequantized, L.rows, L.cols, L.H, L.tokens);
        const double eA = outputError(L.w, ga.tensor.dequantized, L.rows, L.cols, L.H, L.tokens);
        const double hR = outputError(L.w, rtn.dequantized, L.rows, L.cols, Hh, 2048);
        const double hG = outputError(L.w, g.tensor.dequantized, L.rows, L.cols, Hh, 2048);
        const double hA = outputError(L.w, ga.tensor.dequantized, L.rows, L.cols, Hh, 2048);
        qInfo("harness %d-bit g128: calib RTN %.5g GPTQ %.5g GPTQ+act-order %.5g | held-out RTN %.5g GPTQ %.5g "
              "act-order %.5g | ratios GPTQ/RTN %.3f act/RTN %.3f (spec table %s)",
              bits, eR, eG, eA, hR, hG, hA, eG / eR, eA / eR, bits == 4 ? "0.38/0.81=0.47, 0.17/0.81=0.21" : "1.67/3.39=0.49, 0.90/3.39=0.27");
        QVERIFY(eG < eR);
        QVERIFY(eA < eR);
        QVERIFY(hG < hR);
        QVERIFY(hA < hR);
    }

    void actOrderGroupIndex()
    {
        const Layer L = makeLayer(8, 128, 400, 6, 3, 0);
        NullProgress progress;
        const WeightView wv{ L.w.data(), L.rows, L.cols };
        const GptqResult r = quantizeGptq(wv, L.H, options(GridId::MinMax, 4, 32, true), progress, "a");
        r.tensor.validate();
        QVERIFY(r.tensor.actOrderGroups());
        // perm sorts diag(H) descending; gIdx[c] = position of c / g.
        for (size_t j = 0; j + 1 < r.perm.size(); ++j)
            QVERIFY(L.H(r.perm[j], r.perm[j]) >= L.H(r.perm[j + 1], r.perm[j + 1]));
        for (size_t j = 0; j < r.perm.size(); ++j)
            QCOMPARE(r.tensor.gIdx[size_t(r.perm[j])], int32_t(j / 32));
        // The outlier channels (largest diag) are processed first.
        const std::vector<int64_t> outliers = syntheticOutlierChannels({ 400, 128, 6 });
        for (int k = 0; k < 3; ++k)
            QVERIFY(std::find(outliers.begin(), outliers.end(), r.perm[size_t(k)]) != outliers.end());

        // Static groups: natural g_idx, and every group's parameters are RTN's on the original W.
        const GptqResult s = quantizeGptq(wv, L.H, options(GridId::MinMax, 4, 32, true, true), progress, "a");
        s.tensor.validate();
        QVERIFY(!s.tensor.actOrderGroups());
        const QuantizedTensor rtn = quantizeRtn(wv, { GridId::MinMax, 4, 32, 1 }, "a");
        QVERIFY(s.tensor.scales == rtn.scales);
        QVERIFY(s.tensor.zeros == rtn.zeros);
        // …but the codes still carry error compensation.
        QVERIFY(s.tensor.codes != rtn.codes);
    }

    void deadColumn()
    {
        const Layer L = makeLayer(8, 64, 300, 7, 0, 2);
        NullProgress progress;
        const GptqResult r = quantizeGptq({ L.w.data(), L.rows, L.cols }, L.H, options(GridId::SymGptq, 4, 32, true),
                                          progress, "d");
        QCOMPARE(r.deadColumns, 2);
        for (int64_t c : syntheticDeadChannels({ 300, 64, 7, 0.8, 0.5, 0, 20.0, 2 }))
            for (int64_t i = 0; i < L.rows; ++i)
                QCOMPARE(r.tensor.dequantized[size_t(i * L.cols + c)], 0.0f);
    }

    void choleskyRetryAndFailure()
    {
        // Rank-deficient H (8 tokens, 32 columns) without damping: the factorization fails, damping rises.
        const Layer L = makeLayer(4, 32, 8, 8, 0, 0);
        NullProgress progress;
        GptqOptions o = options(GridId::MinMax, 4, -1);
        o.percDamp = 0.0;
        const GptqResult r = quantizeGptq({ L.w.data(), L.rows, L.cols }, L.H, o, progress, "model.layers.3.mlp.down_proj");
        QVERIFY(r.dampRetries >= 1);
        QVERIFY(std::fabs(r.percDampUsed - 0.0025 * r.dampRetries) < 1e-12);
        QVERIFY(r.lambda > 0.0);
        r.tensor.validate();

        // Impossible: an indefinite H that no damping ≤ 1·mean(diag) repairs.
        Eigen::MatrixXd bad = Eigen::MatrixXd::Identity(4, 4);
        bad(0, 1) = bad(1, 0) = 10.0;
        const std::vector<float> w(8, 0.5f);
        try {
            quantizeGptq({ w.data(), 2, 4 }, bad, options(GridId::MinMax, 4, -1), progress, "model.layers.3.mlp.down_proj");
            QFAIL("no error");
        } catch (const Error &e) {
            const std::string m = e.what();
            QVERIFY2(m.find("model.layers.3.mlp.down_proj") == 0, e.what());
            QVERIFY(m.find("damping") != std::string::npos);
        }
        // Malformed H.
        Eigen::MatrixXd nan = Eigen::MatrixXd::Identity(4, 4);
        nan(2, 3) = std::nan("");
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq({ w.data(), 2, 4 }, nan, options(GridId::MinMax, 4, -1), progress, "x"));
        Eigen::MatrixXd neg = Eigen::MatrixXd::Identity(4, 4);
        neg(1, 1) = -1.0;
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq({ w.data(), 2, 4 }, neg, options(GridId::MinMax, 4, -1), progress, "x"));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq({ w.data(), 2, 4 }, Eigen::MatrixXd::Identity(5, 5),
                                                     options(GridId::MinMax, 4, -1), progress, "x"));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq({ w.data(), 2, 4 }, Eigen::MatrixXd::Identity(4, 4),
                                                     options(GridId::MinMax, 4, 0), progress, "x"));
    }

    void fastFactorMatchesReference()
    {
        // n = 150 exercises the recursive triangular inverse (leaf 64).
        const Layer L = makeLayer(1, 150, 400, 9, 3, 0);
        Eigen::MatrixXd Hd = L.H;
        Hd.diagonal().array() += 0.01 * Hd.diagonal().mean();
        Eigen::MatrixXd uFast, uRef;
        QVERIFY(gptqInverseFactor(Hd, uFast));
        QVERIFY(gptqInverseFactorReference(Hd, uRef));
        QVERIFY(uFast.triangularView<Eigen::StrictlyLower>().toDenseMatrix().isZero(0.0));
        const double rel = (uFast - uRef).norm() / uRef.norm();
        QVERIFY2(rel < 1e-9, qPrintable(QString::number(rel)));
        // UᵀU = H⁻¹, i.e. U H Uᵀ = I.
        const Eigen::MatrixXd I = uFast * Hd * uFast.transpose();
        QVERIFY((I - Eigen::MatrixXd::Identity(150, 150)).cwiseAbs().maxCoeff() < 1e-8);
    }

    void fastFactorLargeIsInverse()
    {
        // n = 520 takes the blocked, threaded paths (panels of 128; slabs once a dimension reaches 256).
        // Checked cheaply on random vectors: UᵀU(H v) = v.
        const int64_t n = 520, tokens = 400;
        const std::vector<float> x = syntheticWeights(tokens, n, 17);
        Eigen::MatrixXd H = gramMatrix(x.data(), tokens, n); // rank 400: needs the damping
        H.diagonal().array() += 0.01 * H.diagonal().mean();
        Eigen::MatrixXd u;
        QVERIFY(gptqInverseFactor(H, u));
        QVERIFY(u.triangularView<Eigen::StrictlyLower>().toDenseMatrix().isZero(0.0));
        SyntheticRng rng(18);
        for (int k = 0; k < 3; ++k) {
            Eigen::VectorXd v(n);
            for (int64_t i = 0; i < n; ++i)
                v[i] = rng.normal();
            const Eigen::VectorXd back = u.transpose() * (u * (H * v));
            QVERIFY2((back - v).norm() < 1e-8 * v.norm(), qPrintable(QString::number((back - v).norm() / v.norm())));
        }
        // A matrix that is not positive definite fails cleanly.
        Eigen::MatrixXd bad = H;
        bad(n - 1, n - 1) = -1.0;
        QVERIFY(!gptqInverseFactor(bad, u));
    }

    void ggufQ4_0Grid()
    {
        const Layer L = makeLayer(8, 128, 300, 10, 3, 1);
        NullProgress progress;
        const WeightView wv{ L.w.data(), L.rows, L.cols };
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq(wv, L.H, options(GridId::GgufQ4_0, 4, 32, true), progress, "g"));
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq(wv, L.H, options(GridId::GgufQ4_0, 4, 64), progress, "g"));
        for (bool act : { false, true }) {
            const GptqResult r = quantizeGptq(wv, L.H, options(GridId::GgufQ4_0, 4, 32, act, act), progress, "g");
            r.tensor.validate();
            QVERIFY(!r.tensor.actOrderGroups());
            // Pack Q4_0 blocks (d = f16 scale, nibbles j | j+16) and decode them with ggml's decoder.
            std::vector<uint8_t> blocks;
            for (int64_t i = 0; i < L.rows; ++i)
                for (int k = 0; k < r.tensor.numGroups(); ++k) {
                    uint8_t b[18];
                    const uint16_t d = floatToHalf(r.tensor.scale(i, k));
                    std::memcpy(b, &d, 2);
                    const uint8_t *q = r.tensor.codes.data() + i * L.cols + k * 32;
                    for (int j = 0; j < 16; ++j)
                        b[2 + j] = uint8_t(q[j] | (q[j + 16] << 4));
                    blocks.insert(blocks.end(), b, b + 18);
                }
            std::vector<float> decoded(size_t(L.rows * L.cols));
            findGgmlType(std::string_view("Q4_0"))->dequantize(blocks.data(), decoded.data(), L.rows * L.cols);
            for (size_t i = 0; i < decoded.size(); ++i)
                QVERIFY(sameBits(decoded[i], r.tensor.dequantized[i]));
            // And GPTQ on this grid still beats RTN on this grid.
            const QuantizedTensor rtn = quantizeRtn(wv, { GridId::GgufQ4_0, 4, 32, 1 }, "g");
            QVERIFY(outputError(L.w, r.tensor.dequantized, L.rows, L.cols, L.H, 300) <
                    outputError(L.w, rtn.dequantized, L.rows, L.cols, L.H, 300));
        }
    }

    void sharedHessianAndCancel()
    {
        const Layer L = makeLayer(8, 64, 200, 11);
        const GptqOptions o = options(GridId::MinMax, 4, 32, true);
        const GptqHessian h = prepareGptqHessian(L.H, o, "qkv");
        NullProgress progress;
        const GptqResult a = quantizeGptq({ L.w.data(), 8, 64 }, h, o, progress, "q");
        const GptqResult b = quantizeGptq({ L.w.data(), 8, 64 }, L.H, o, progress, "q");
        QVERIFY(a.tensor.codes == b.tensor.codes);
        QVERIFY_THROWS_EXCEPTION(Error, quantizeGptq({ L.w.data(), 8, 64 }, h, options(GridId::MinMax, 4, 32), progress, "q"));
        NullProgress cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(Cancelled, quantizeGptq({ L.w.data(), 8, 64 }, h, o, cancelled, "q"));
    }

    void threadCountDoesNotMatter()
    {
        const Layer L = makeLayer(200, 128, 300, 12);
        NullProgress progress;
        const GptqOptions o = options(GridId::MinMax, 4, 32, false, false, false, 32);
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        const GptqResult a = quantizeGptq({ L.w.data(), L.rows, L.cols }, L.H, o, progress, "t");
        omp_set_num_threads(std::max(2, saved));
        const GptqResult b = quantizeGptq({ L.w.data(), L.rows, L.cols }, L.H, o, progress, "t");
        omp_set_num_threads(saved);
        QVERIFY(a.tensor.codes == b.tensor.codes);
        QVERIFY(a.tensor.dequantized == b.tensor.dequantized);
    }
};

QTEST_GUILESS_MAIN(TestGptq)
#include "tst_gptq.moc"
