#include "quant/Gptq.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <sstream>

#include <Eigen/Cholesky>

#include "common/Error.h"

namespace qs::core {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A pivot² below this fraction of the largest diagonal entry means H_λ is singular to working precision:
// the factorization "succeeds" but U is garbage, so it counts as a failure and damping is raised.
constexpr double kPivotFloor = 1e-12;

// Rows per parallel chunk of the in-block work. Fixed (not derived from the thread count) so that the
// per-row arithmetic and the order of the loss sum never depend on OMP_NUM_THREADS.
constexpr int64_t kRowChunk = 64;

// Below this the triangular inverse is done by one dense triangular solve.
constexpr Eigen::Index kInverseLeaf = 64;
// Panel width of the blocked Cholesky and the slab size of the parallel triangular products.
constexpr Eigen::Index kPanel = 128;
// Below this size the factorization helpers run single-threaded (threads cost more than they save).
constexpr Eigen::Index kParallelMin = 256;

Eigen::Index slabsFor(Eigen::Index n)
{
    return n >= kParallelMin ? (n + kPanel - 1) / kPanel : 1;
}

// In-place inverse of the lower triangle of L (the strict upper part is neither read nor written).
// Recursive 2×2 blocking: inv([A 0; B C]) = [A⁻¹ 0; −C⁻¹ B A⁻¹  C⁻¹], about n³/3 flops in triangular
// products instead of the n³ of a solve against the identity. Eigen does not thread triangular
// products, so the two products are split into independent row/column slabs for OpenMP.
void invertLowerInPlace(Eigen::Ref<Eigen::MatrixXd> L)
{
    const Eigen::Index n = L.rows();
    if (n <= kInverseLeaf) {
        Eigen::MatrixXd x = Eigen::MatrixXd::Identity(n, n);
        L.triangularView<Eigen::Lower>().solveInPlace(x);
        L.triangularView<Eigen::Lower>() = x;
        return;
    }
    const Eigen::Index n1 = n / 2, n2 = n - n1;
    invertLowerInPlace(L.topLeftCorner(n1, n1));
    invertLowerInPlace(L.bottomRightCorner(n2, n2));
    Eigen::MatrixXd t(n2, n1);
    const Eigen::Index rowSlabs = slabsFor(n2), colSlabs = slabsFor(n1);
    // t = B · A⁻¹: rows of B are independent.
#pragma omp parallel for schedule(dynamic, 1) if (rowSlabs > 1)
    for (Eigen::Index s = 0; s < rowSlabs; ++s) {
        const Eigen::Index r0 = s * n2 / rowSlabs, r1 = (s + 1) * n2 / rowSlabs;
        t.middleRows(r0, r1 - r0).noalias() =
            L.block(n1 + r0, 0, r1 - r0, n1) * L.topLeftCorner(n1, n1).triangularView<Eigen::Lower>();
    }
    // B = −C⁻¹ · t: columns of t are independent.
#pragma omp parallel for schedule(dynamic, 1) if (colSlabs > 1)
    for (Eigen::Index s = 0; s < colSlabs; ++s) {
        const Eigen::Index c0 = s * n1 / colSlabs, c1 = (s + 1) * n1 / colSlabs;
        L.block(n1, c0, n2, c1 - c0).noalias() =
            -(L.bottomRightCorner(n2, n2).triangularView<Eigen::Lower>() * t.middleCols(c0, c1 - c0));
    }
}

// Right-looking blocked Cholesky of the lower triangle in place (the strict upper part becomes garbage).
// Same arithmetic as Eigen's LLT, but the panel solve and the trailing update — nearly all the flops —
// run as independent slabs under OpenMP (Eigen's own blocked LLT updates with an unthreaded rank-k
// kernel). Returns false at the first pivot that is not positive.
bool choleskyLowerInPlace(Eigen::MatrixXd &a)
{
    const Eigen::Index n = a.rows();
    for (Eigen::Index k0 = 0; k0 < n; k0 += kPanel) {
        const Eigen::Index kb = std::min(kPanel, n - k0), k1 = k0 + kb, rest = n - k1;
        {
            Eigen::Ref<Eigen::MatrixXd> a11 = a.block(k0, k0, kb, kb);
            Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(a11); // in place
            if (llt.info() != Eigen::Success)
                return false;
        }
        if (rest == 0)
            break;
        // A21 ← A21 · L11⁻ᵀ, by independent row slabs.
        const Eigen::Index rowSlabs = slabsFor(rest);
#pragma omp parallel for schedule(dynamic, 1) if (rowSlabs > 1)
        for (Eigen::Index s = 0; s < rowSlabs; ++s) {
            const Eigen::Index r0 = k1 + s * rest / rowSlabs, r1 = k1 + (s + 1) * rest / rowSlabs;
            Eigen::Ref<Eigen::MatrixXd> panel = a.block(r0, k0, r1 - r0, kb);
            a.block(k0, k0, kb, kb).triangularView<Eigen::Lower>().transpose().solveInPlace<Eigen::OnTheRight>(panel);
        }
        // A22 −= A21 A21ᵀ on the lower triangle, by column blocks (each also touches the upper part of its
        // diagonal block, which is never read).
        const Eigen::Index colBlocks = (rest + kPanel - 1) / kPanel;
#pragma omp parallel for schedule(dynamic, 1) if (rest >= kParallelMin)
        for (Eigen::Index b = 0; b < colBlocks; ++b) {
            const Eigen::Index j0 = k1 + b * kPanel, jb = std::min(kPanel, n - j0);
            a.block(j0, j0, n - j0, jb).noalias() -= a.block(j0, k0, n - j0, kb) * a.block(j0, k0, jb, kb).transpose();
        }
    }
    return true;
}

// r holds J·H_λ·J (H_λ reversed in both dimensions). On success r becomes U, the upper factor with
// H_λ⁻¹ = UᵀU: chol(J H_λ J) = L' ⇒ H_λ = (J L' J)(J L' J)ᵀ ⇒ H_λ⁻¹ = (J L'⁻¹ J)ᵀ (J L'⁻¹ J).
bool factorReversedInPlace(Eigen::MatrixXd &r)
{
    const Eigen::Index n = r.rows();
    if (n == 0)
        return true;
    const double maxDiag = r.diagonal().maxCoeff();
    if (!(maxDiag > 0.0) || !std::isfinite(maxDiag))
        return false;
    if (!choleskyLowerInPlace(r))
        return false;
    const double minPivot = r.diagonal().minCoeff();
    if (!(minPivot * minPivot > kPivotFloor * maxDiag))
        return false;
    r.triangularView<Eigen::StrictlyUpper>().setZero();
    invertLowerInPlace(r);
    r.reverseInPlace(); // J L'⁻¹ J: lower becomes upper
    return r.allFinite();
}

std::string layerPrefix(const std::string &layer)
{
    return (layer.empty() ? std::string("layer") : layer) + ": GPTQ: ";
}

// Tiled gather of row-major src (rows × n) into column-major dst in processing order: dst(r, j) =
// src[r, perm[j]], with dead columns zeroed.
template <typename S>
void gatherColumns(const float *src, int64_t rows, int64_t n, const std::vector<int32_t> &perm,
                   const std::vector<uint8_t> &dead, S *dst)
{
    const int64_t tiles = (rows + kRowChunk - 1) / kRowChunk;
#pragma omp parallel for schedule(static) if (rows * n > (int64_t(1) << 16))
    for (int64_t t = 0; t < tiles; ++t) {
        const int64_t r0 = t * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
        for (int64_t j = 0; j < n; ++j) {
            const int64_t c = perm[size_t(j)];
            S *d = dst + j * rows;
            if (dead[size_t(c)]) {
                for (int64_t r = r0; r < r1; ++r)
                    d[r] = S(0);
            } else {
                for (int64_t r = r0; r < r1; ++r)
                    d[r] = S(src[r * n + c]);
            }
        }
    }
}

// Scatter of column-major processing-order data back to row-major natural order.
template <typename T>
void scatterColumns(const T *src, int64_t rows, int64_t n, const std::vector<int32_t> &perm, T *dst)
{
    const int64_t tiles = (rows + kRowChunk - 1) / kRowChunk;
#pragma omp parallel for schedule(static) if (rows * n > (int64_t(1) << 16))
    for (int64_t t = 0; t < tiles; ++t) {
        const int64_t r0 = t * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
        for (int64_t j = 0; j < n; ++j) {
            const int64_t c = perm[size_t(j)];
            const T *s = src + j * rows;
            for (int64_t r = r0; r < r1; ++r)
                dst[r * n + c] = s[r];
        }
    }
}

template <typename S>
double runGptq(const WeightView &w, const GptqHessian &h, const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> &U,
               const GptqOptions &o, const Grid &grid, Progress &progress, QuantizedTensor &t)
{
    using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
    const int64_t m = w.rows, n = w.cols;
    const int g = o.spec.groupSize;
    const int ng = t.numGroups();
    const bool fresh = g > 0 && !o.staticGroups;
    const int64_t B = std::max(1, o.blockSize);

    Mat W(m, n);
    gatherColumns(w.data, m, n, h.perm, h.dead, W.data());

    // Parameters per (row, group); groups in processing order when fresh, natural order otherwise.
    std::vector<GroupParams> params(size_t(m * ng));
    if (!fresh) {
        // Per row (g = −1) or static groups: from the dead-zeroed original W in natural column order.
        const int64_t gs = g > 0 ? g : n;
#pragma omp parallel for schedule(static) if (m * n > (int64_t(1) << 16))
        for (int64_t r = 0; r < m; ++r) {
            const float *src = w.data + r * n;
            for (int k = 0; k < ng; ++k) {
                RangeStats s;
                for (int64_t c = k * gs; c < std::min(n, (k + 1) * gs); ++c)
                    s.add(h.dead[size_t(c)] ? 0.0f : src[c]);
                params[size_t(r * ng + k)] = grid.params(s);
            }
        }
    }
    // Group (parameter column) of processing position j.
    auto groupOf = [&](int64_t j) -> int {
        if (g <= 0)
            return 0;
        return fresh ? int(j / g) : int(h.perm[size_t(j)] / g);
    };

    Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic> codesP(m, n);
    Eigen::MatrixXf deqP(m, n);
    std::vector<double> rowLoss(size_t(m), 0.0);
    const int64_t chunks = (m + kRowChunk - 1) / kRowChunk;

    for (int64_t i1 = 0; i1 < n; i1 += B) {
        const int64_t i2 = std::min(i1 + B, n);
        const int64_t cnt = i2 - i1;
        Mat E(m, cnt);

#pragma omp parallel for schedule(static) if (m * cnt * cnt > (int64_t(1) << 16) && chunks > 1)
        for (int64_t ch = 0; ch < chunks; ++ch) {
            const int64_t r0 = ch * kRowChunk, r1 = std::min(m, r0 + kRowChunk), rr = r1 - r0;
            std::vector<RangeStats> stats;
            for (int64_t j = i1; j < i2; ++j) {
                const int64_t jj = j - i1;
                if (fresh && j % g == 0) {
                    // Always-fresh group parameters: every earlier column's update applied, including the
                    // pending lazy-batch part for the columns past this block.
                    const int64_t jEnd = std::min<int64_t>(j + g, n);
                    stats.assign(size_t(rr), RangeStats());
                    for (int64_t c = j; c < std::min(jEnd, i2); ++c) {
                        const S *col = W.data() + c * m;
                        for (int64_t r = r0; r < r1; ++r)
                            stats[size_t(r - r0)].add(float(col[r]));
                    }
                    if (jEnd > i2) {
                        Mat ahead = W.block(r0, i2, rr, jEnd - i2);
                        if (j > i1)
                            ahead.noalias() -= E.block(r0, 0, rr, jj) * U.block(i1, i2, jj, jEnd - i2);
                        for (int64_t c = 0; c < ahead.cols(); ++c)
                            for (int64_t r = 0; r < rr; ++r)
                                stats[size_t(r)].add(float(ahead(r, c)));
                    }
                    const int k = int(j / g);
                    for (int64_t r = r0; r < r1; ++r)
                        params[size_t(r * ng + k)] = grid.params(stats[size_t(r - r0)]);
                }
                const int k = groupOf(j);
                const S ujj = U(j, j);
                S *wcol = W.data() + j * m;
                S *ecol = E.data() + jj * m;
                uint8_t *qcol = codesP.data() + j * m;
                float *dcol = deqP.data() + j * m;
                for (int64_t r = r0; r < r1; ++r) {
                    const GroupParams &p = params[size_t(r * ng + k)];
                    const uint8_t q = grid.quantize(float(wcol[r]), p);
                    const float v = dequantizeCode(q, p.scale, p.zero);
                    qcol[r] = q;
                    dcol[r] = v;
                    const S e = (wcol[r] - S(v)) / ujj;
                    ecol[r] = e;
                    rowLoss[size_t(r)] += 0.5 * double(e) * double(e);
                }
                // Rank-1 update of the rest of the block (columns are contiguous: W is column-major).
                for (int64_t c = j + 1; c < i2; ++c) {
                    const S u = U(j, c);
                    S *wc = W.data() + c * m;
                    for (int64_t r = r0; r < r1; ++r)
                        wc[r] -= ecol[r] * u;
                }
            }
        }

        // Lazy batch update of everything right of the block: the hot GEMM.
        if (i2 < n)
            W.rightCols(n - i2).noalias() -= E * U.block(i1, i2, cnt, n - i2);
        progress.advance(double(cnt));
        progress.throwIfCancelled();
    }

    // Back to natural column order, row-major.
    scatterColumns(codesP.data(), m, n, h.perm, t.codes.data());
    scatterColumns(deqP.data(), m, n, h.perm, t.dequantized.data());
    for (size_t i = 0; i < params.size(); ++i) {
        t.scales[i] = params[i].scale;
        t.zeros[i] = params[i].zero;
    }
    if (fresh && h.actOrder) {
        for (int64_t j = 0; j < n; ++j)
            t.gIdx[size_t(h.perm[size_t(j)])] = int32_t(j / g);
    }
    double loss = 0.0;
    for (double l : rowLoss)
        loss += l;
    return loss;
}

} // namespace

bool gptqInverseFactor(const Eigen::MatrixXd &hDamped, Eigen::MatrixXd &u)
{
    u = hDamped.reverse();
    return factorReversedInPlace(u);
}

bool gptqInverseFactorReference(const Eigen::MatrixXd &hDamped, Eigen::MatrixXd &u)
{
    const Eigen::Index n = hDamped.rows();
    Eigen::LLT<Eigen::MatrixXd> l1(hDamped);
    if (l1.info() != Eigen::Success)
        return false;
    Eigen::MatrixXd linv = Eigen::MatrixXd::Identity(n, n);
    l1.matrixL().solveInPlace(linv); // L⁻¹
    const Eigen::MatrixXd hinv = linv.transpose() * linv;
    Eigen::LLT<Eigen::MatrixXd> l2(hinv);
    if (l2.info() != Eigen::Success)
        return false;
    u = l2.matrixU();
    return u.allFinite();
}

GptqHessian prepareGptqHessian(const Eigen::MatrixXd &H, const GptqOptions &o, const std::string &layer)
{
    const auto t0 = Clock::now();
    const std::string pre = layerPrefix(layer);
    if (H.rows() != H.cols())
        throw Error(pre + "the Hessian is " + std::to_string(H.rows()) + " x " + std::to_string(H.cols()) +
                    ", not square");
    const int64_t n = H.rows();
    if (n == 0)
        throw Error(pre + "the Hessian is empty");
    if (!H.allFinite())
        throw Error(pre + "the Hessian contains NaN or Inf (calibration overflow?)");
    if (!(o.percDamp >= 0.0) || !(o.dampIncrement > 0.0) || !(o.maxPercDamp >= o.percDamp))
        throw Error(pre + "damping must satisfy 0 <= damp <= max damp and increment > 0");

    GptqHessian h;
    h.cols = n;
    h.actOrder = o.actOrder;
    h.doublePrecision = o.doublePrecision;
    h.dead.assign(size_t(n), 0);
    Eigen::VectorXd diag = H.diagonal();
    for (int64_t j = 0; j < n; ++j) {
        if (diag[j] < 0.0) {
            std::ostringstream os;
            os << pre << "H[" << j << ", " << j << "] = " << diag[j] << " is negative: not a sum of x xT";
            throw Error(os.str());
        }
        if (diag[j] == 0.0) {
            h.dead[size_t(j)] = 1;
            diag[j] = 1.0;
            ++h.deadColumns;
        }
    }
    h.perm.resize(size_t(n));
    std::iota(h.perm.begin(), h.perm.end(), 0);
    if (o.actOrder)
        std::stable_sort(h.perm.begin(), h.perm.end(), [&](int32_t a, int32_t b) { return diag[a] > diag[b]; });
    h.meanDiag = diag.mean();

    // Reversed, permuted, damped copy: R(a, b) = H(perm[n−1−a], perm[n−1−b]) (+ λ on the diagonal, dead
    // diagonals set to 1). Rebuilt from H on every attempt so that only one n × n working copy exists.
    Eigen::MatrixXd r(n, n);
    auto build = [&](double lambda) {
        for (int64_t b = 0; b < n; ++b) {
            const int64_t cb = h.perm[size_t(n - 1 - b)];
            for (int64_t a = 0; a < n; ++a)
                r(a, b) = H(h.perm[size_t(n - 1 - a)], cb);
        }
        for (int64_t a = 0; a < n; ++a)
            r(a, a) = diag[h.perm[size_t(n - 1 - a)]] + lambda;
    };

    double damp = o.percDamp;
    for (;;) {
        const double lambda = damp * h.meanDiag;
        build(lambda);
        if (factorReversedInPlace(r)) {
            h.percDampUsed = damp;
            h.lambda = lambda;
            break;
        }
        ++h.dampRetries;
        damp += o.dampIncrement;
        if (damp > o.maxPercDamp * (1.0 + 1e-12)) {
            std::ostringstream os;
            os << pre << "the Hessian is not positive definite even with damping " << (damp - o.dampIncrement)
               << " x mean(diag H) after " << h.dampRetries << " attempts (" << h.deadColumns
               << " dead columns); check the calibration data";
            throw Error(os.str());
        }
    }
    if (o.doublePrecision)
        h.uDouble = std::move(r);
    else
        h.uFloat = r.cast<float>();
    h.prepareSeconds = secondsSince(t0);
    return h;
}

GptqResult quantizeGptq(const WeightView &w, const GptqHessian &h, const GptqOptions &o, Progress &progress,
                        const std::string &layer)
{
    const auto t0 = Clock::now();
    const std::string what = layer.empty() ? std::string("layer") : layer;
    const std::string pre = layerPrefix(layer);
    if (w.rows <= 0 || w.cols <= 0 || !w.data)
        throw Error(pre + "empty weight " + std::to_string(w.rows) + " x " + std::to_string(w.cols));
    if (w.cols != h.cols)
        throw Error(pre + "the weight has " + std::to_string(w.cols) + " columns but the Hessian is " +
                    std::to_string(h.cols) + " x " + std::to_string(h.cols));
    if (h.actOrder != o.actOrder || h.doublePrecision != o.doublePrecision)
        throw Error(pre + "the prepared Hessian was made with other act_order/precision options");
    if (o.spec.groupSize == 0)
        throw Error(pre + "group_size 0 (per tensor) is not supported; use -1 (per channel) or a group size");
    if (o.spec.rowGroupSize != 1)
        throw Error(pre + "row groups are not supported");
    if (o.blockSize < 1)
        throw Error(pre + "block_size must be at least 1 (got " + std::to_string(o.blockSize) + ")");
    const Grid grid = o.spec.makeGrid();
    grid.checkShape(w.cols, o.spec.groupSize, what);
    if (o.actOrder && !o.staticGroups && grid.info().requiredGroupSize > 0)
        throw Error(pre + "grid '" + grid.info().name +
                    "' stores blocks in natural column order: act_order needs static_groups");
    checkFinite(w.data, w.rows, w.cols, what);

    GptqResult res;
    res.tensor = allocateQuantized(w.rows, w.cols, grid, o.spec.groupSize);
    res.tensor.name = layer;
    res.tensor.method = "gptq";
    if (o.doublePrecision)
        res.loss = runGptq<double>(w, h, h.uDouble, o, grid, progress, res.tensor);
    else
        res.loss = runGptq<float>(w, h, h.uFloat, o, grid, progress, res.tensor);

    for (float s : res.tensor.scales)
        if (!std::isfinite(s))
            throw Error(pre + "a group scale overflowed (weights too large for grid '" + grid.info().name + "')");
    res.percDampUsed = h.percDampUsed;
    res.lambda = h.lambda;
    res.dampRetries = h.dampRetries;
    res.deadColumns = h.deadColumns;
    res.perm = h.perm;
    res.seconds = secondsSince(t0);
    return res;
}

GptqResult quantizeGptq(const WeightView &w, const Eigen::MatrixXd &H, const GptqOptions &o, Progress &progress,
                        const std::string &layer)
{
    const auto t0 = Clock::now();
    const GptqHessian h = prepareGptqHessian(H, o, layer);
    GptqResult r = quantizeGptq(w, h, o, progress, layer);
    r.seconds = secondsSince(t0);
    return r;
}

} // namespace qs::core
