#include "stats/ActivationStats.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "stats/ChannelOutliers.h"
#include "stats/ParallelChunks.h"

namespace qs::core {

namespace {

// Columns per work item of the per-channel passes: wide enough for vector loads along a row, small enough
// that the per-column partial sums stay in registers / L1, and fixed so results do not depend on threads.
constexpr int64_t kColBlock = 64;
// Hessian: token rows converted to double per GEMM, and the tile edge of the lower triangle.
constexpr int64_t kHessianSlab = 256;
constexpr int64_t kHessianTile = 128;
// Interleaved partial histograms per thread (see the histogram pass).
constexpr int64_t kHistogramCopies = 4;
// Below this many values (or multiply-adds for the Hessian) a chunk is processed on the calling thread:
// waking a thread team costs more than the work, and far more when the cores are busy (spinning waits).
constexpr int64_t kParallelMinValues = int64_t(1) << 16;
constexpr double kParallelMinFlops = double(int64_t(1) << 22);

// Binned exceedance counts: 16 levels per octave; level l covers [2^(l/16), 2^((l+1)/16)) with the edges
// taken from this table, so levelOf() and levelEdge() agree exactly.
constexpr int kLevelsPerOctave = 16;
// Values this many levels below the largest magnitude of the input share the lowest bin (2^-32 relative:
// far below any threshold a share is asked for), which bounds the bins per channel.
constexpr int kLevelSpan = 32 * kLevelsPerOctave;

const std::array<double, kLevelsPerOctave + 1> &levelTable()
{
    static const std::array<double, kLevelsPerOctave + 1> table = [] {
        std::array<double, kLevelsPerOctave + 1> t {};
        for (int k = 0; k <= kLevelsPerOctave; ++k)
            t[size_t(k)] = std::exp2(double(k) / kLevelsPerOctave);
        t[0] = 1.0;
        t[kLevelsPerOctave] = 2.0;
        return t;
    }();
    return table;
}

// Level of v > 0: 16·e + k with v = f·2^e, f in [1, 2), and k the largest index with table[k] <= f.
int levelOf(double v)
{
    int e = 0;
    const double m = std::frexp(v, &e); // v = m·2^e, m in [0.5, 1)
    const double f = 2.0 * m;
    const auto &t = levelTable();
    int k = kLevelsPerOctave - 1;
    while (t[size_t(k)] > f)
        --k;
    return (e - 1) * kLevelsPerOctave + k;
}

double levelEdge(int level)
{
    const int e = level >= 0 ? level / kLevelsPerOctave : -((-level + kLevelsPerOctave - 1) / kLevelsPerOctave);
    const int k = level - e * kLevelsPerOctave;
    return std::ldexp(levelTable()[size_t(k)], e);
}

// Whether a row holds no NaN or ±Inf: the exponent bits are all ones exactly for those. Bit tests instead
// of std::isfinite so the loop vectorises and has no early exit.
inline bool rowIsFinite(const float *row, int64_t cols)
{
    uint32_t nonFinite = 0;
    for (int64_t c = 0; c < cols; ++c) {
        uint32_t bits;
        std::memcpy(&bits, row + c, sizeof bits);
        nonFinite |= uint32_t((bits & 0x7f800000u) == 0x7f800000u);
    }
    return nonFinite == 0;
}

// Per-channel absmax, Σ|x| and Σx² over the rows of one column block (`block` points at its first column
// in row 0), plus the block's min and max. W > 0 is a full block of W columns: the compile-time trip count lets the
// compiler vectorise the inner loop at -O2; W == 0 handles the last, partial block of w columns.
template <int W>
void channelBlock(const float *block, int64_t rows, int64_t cols, int64_t w, float *absMax, double *sumAbs,
    double *sumSquare, float &minOut, float &maxOut)
{
    const int64_t n = W > 0 ? int64_t(W) : w;
    double sAbs[kColBlock] = {};
    double sSq[kColBlock] = {};
    float aMax[kColBlock];
    float lo[kColBlock];
    float hi[kColBlock];
    for (int64_t k = 0; k < n; ++k) {
        aMax[k] = absMax[k];
        lo[k] = std::numeric_limits<float>::infinity();
        hi[k] = -std::numeric_limits<float>::infinity();
    }
    for (int64_t r = 0; r < rows; ++r) {
        const float *row = block + r * cols;
        for (int64_t k = 0; k < n; ++k) {
            const float v = row[k];
            const float a = std::fabs(v);
            sAbs[k] += double(a);
            sSq[k] += double(v) * double(v);
            aMax[k] = aMax[k] < a ? a : aMax[k];
            lo[k] = v < lo[k] ? v : lo[k];
            hi[k] = hi[k] < v ? v : hi[k];
        }
    }
    for (int64_t k = 0; k < n; ++k) {
        sumAbs[k] += sAbs[k];
        sumSquare[k] += sSq[k];
        absMax[k] = aMax[k];
        minOut = std::min(minOut, lo[k]);
        maxOut = std::max(maxOut, hi[k]);
    }
}

} // namespace

// --- DoublingHistogram -------------------------------------------------------------------------------

DoublingHistogram::DoublingHistogram(int bins)
    : m_bins(bins)
{
    if (bins < 4 || bins % 4 != 0 || bins > kMaxActivationHistogramBins)
        fail("",
            "activation histogram: the number of bins must be a positive multiple of 4 up to "
                + std::to_string(kMaxActivationHistogramBins) + " (got " + std::to_string(bins) + ")");
    m_counts.assign(size_t(bins), 0);
}

void DoublingHistogram::ensureRange(double absMax)
{
    if (!(absMax > 0.0) || !std::isfinite(absMax))
        return;
    if (m_range == 0.0) {
        // The smallest power of two strictly above absMax: frexp gives absMax = m·2^e with m < 1.
        int e = 0;
        std::frexp(absMax, &e);
        m_range = std::ldexp(1.0, e);
        m_scale = double(m_bins) / (2.0 * m_range);
        return; // only zeros so far, and they sit in bin B/2 at any range
    }
    const size_t b = size_t(m_bins);
    while (absMax >= m_range) {
        // Old bins 2i and 2i+1 become new bin B/4 + i; the outer quarters start empty.
        std::vector<uint64_t> merged(b, 0);
        for (size_t i = 0; i < b / 2; ++i)
            merged[b / 4 + i] = m_counts[2 * i] + m_counts[2 * i + 1];
        m_counts.swap(merged);
        m_range *= 2.0;
        m_scale *= 0.5;
    }
}

void DoublingHistogram::add(double v)
{
    ensureRange(std::fabs(v));
    ++m_counts[size_t(binOf(v))];
}

void DoublingHistogram::addCounts(const std::vector<uint64_t> &counts)
{
    const size_t n = std::min(counts.size(), m_counts.size());
    for (size_t i = 0; i < n; ++i)
        m_counts[i] += counts[i];
}

uint64_t DoublingHistogram::total() const
{
    uint64_t n = 0;
    for (uint64_t c : m_counts)
        n += c;
    return n;
}

std::vector<double> DoublingHistogram::edges() const
{
    const double r = m_range > 0.0 ? m_range : 1.0;
    std::vector<double> e(size_t(m_bins) + 1);
    const double w = 2.0 * r / double(m_bins);
    for (size_t i = 0; i < e.size(); ++i)
        e[i] = -r + double(i) * w;
    return e;
}

// --- ExceedanceTracker ---------------------------------------------------------------------------------

namespace {

// Per-channel counts of |x| above the final outlier threshold, which is unknown until the end. See
// "Outlier token shares" in the header: values above the running threshold (a lower bound of the final
// one) are kept exactly while they fit the budget, then in log-spaced bins.
class ExceedanceTracker
{
public:
    void init(int64_t cols, int64_t budget)
    {
        m_budget = std::max<int64_t>(budget, 0);
        m_values.assign(size_t(cols), {});
    }

    // Before a chunk's record() calls. threshold must not decrease from call to call.
    void prepare(double threshold, double inputAbsMax)
    {
        m_threshold = std::max(m_threshold, threshold);
        const int top = inputAbsMax > 0.0 ? levelOf(inputAbsMax) : INT_MIN / 2;
        const int low = m_threshold > 0.0 ? levelOf(m_threshold) : INT_MIN / 2;
        m_floorLevel = std::max(low, top - kLevelSpan);
    }

    double threshold() const { return m_threshold; }

    // absValue > threshold(). Called concurrently for different channels, never for the same one.
    void record(int64_t channel, float absValue)
    {
        if (!m_binned)
            m_values[size_t(channel)].push_back(absValue);
        else
            binValue(m_bins[size_t(channel)], absValue);
    }

    void afterChunk()
    {
        if (m_binned)
            return;
        int64_t kept = keptValues();
        if (kept <= m_budget)
            return;
        if (m_threshold > m_prunedAt) {
            // Values at or below the risen threshold can no longer exceed the final one.
            for (std::vector<float> &v : m_values)
                v.erase(
                    std::remove_if(v.begin(), v.end(), [t = m_threshold](float a) { return double(a) <= t; }), v.end());
            m_prunedAt = m_threshold;
            kept = keptValues();
        }
        // Keep at least half the budget free after a prune, so pruning costs O(1) per value amortised.
        if (kept > m_budget / 2)
            switchToBins();
    }

    bool exact() const { return !m_binned; }

    // Tokens of the channel with |x| > t (t >= every threshold passed to prepare()). Exact in value mode;
    // in binned mode bins above t count fully and the bin holding t log-linearly.
    double countAbove(int64_t channel, double t) const
    {
        if (!m_binned) {
            const std::vector<float> &v = m_values[size_t(channel)];
            return double(std::count_if(v.begin(), v.end(), [t](float a) { return double(a) > t; }));
        }
        const Bins &b = m_bins[size_t(channel)];
        if (b.counts.empty())
            return 0.0;
        const int lt = t > 0.0 ? levelOf(t) : INT_MIN / 2;
        double n = 0.0;
        for (size_t i = 0; i < b.counts.size(); ++i) {
            const int level = b.base + int(i);
            if (level > lt) {
                n += double(b.counts[i]);
            } else if (level == lt && b.counts[i] > 0) {
                const double lo = levelEdge(level);
                const double hi = levelEdge(level + 1);
                n += double(b.counts[i]) * std::log(hi / t) / std::log(hi / lo);
            }
        }
        return n;
    }

private:
    struct Bins
    {
        int base = 0;
        std::vector<uint64_t> counts;
    };

    int64_t keptValues() const
    {
        int64_t n = 0;
        for (const std::vector<float> &v : m_values)
            n += int64_t(v.size());
        return n;
    }

    void binValue(Bins &b, double v)
    {
        // Values far below the input's largest magnitude share the floor bin, which bounds the bins kept.
        const int level = std::max(levelOf(v), m_floorLevel);
        if (b.counts.empty()) {
            b.base = level;
        } else if (level < b.base) {
            b.counts.insert(b.counts.begin(), size_t(b.base - level), 0);
            b.base = level;
        }
        const size_t i = size_t(level - b.base);
        if (i >= b.counts.size())
            b.counts.resize(i + 1, 0);
        ++b.counts[i];
    }

    void switchToBins()
    {
        m_bins.assign(m_values.size(), {});
        for (size_t c = 0; c < m_values.size(); ++c) {
            std::vector<float> &v = m_values[c];
            for (float a : v)
                binValue(m_bins[c], a);
            std::vector<float>().swap(v);
        }
        m_values.clear();
        m_values.shrink_to_fit();
        m_binned = true;
    }

    int64_t m_budget = 0;
    double m_threshold = 0.0;
    double m_prunedAt = -1.0;
    int m_floorLevel = INT_MIN / 2;
    bool m_binned = false;
    std::vector<std::vector<float>> m_values;
    std::vector<Bins> m_bins;
};

} // namespace

// --- Accumulator -------------------------------------------------------------------------------------------

struct ActivationStatsCollector::Accumulator
{
    Accumulator(int b, LinearInput in, int64_t c, int bins, int64_t budget, bool hessian)
        : block(b)
        , input(in)
        , cols(c)
        , histogram(bins)
        , wantsHessian(hessian)
    {
        absMax.assign(size_t(c), 0.0f);
        sumAbs.assign(size_t(c), 0.0);
        sumSquare.assign(size_t(c), 0.0);
        exceedance.init(c, budget);
        if (hessian)
            hessianLower = Eigen::MatrixXd::Zero(c, c);
    }

    int block;
    LinearInput input;
    int64_t cols;
    uint64_t tokens = 0;
    uint64_t nonFiniteTokens = 0;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
    std::vector<float> absMax;
    std::vector<double> sumAbs;
    std::vector<double> sumSquare;
    DoublingHistogram histogram;
    ExceedanceTracker exceedance;
    bool wantsHessian;
    Eigen::MatrixXd hessianLower; // only the lower triangle (tiles i >= j) is maintained
};

bool ActivationStatsCollector::Key::operator<(const Key &o) const
{
    // Blocks in model order, the lm_head input (block -1) last.
    const int a = block < 0 ? INT_MAX : block;
    const int b = o.block < 0 ? INT_MAX : o.block;
    if (a != b)
        return a < b;
    return uint8_t(input) < uint8_t(o.input);
}

ActivationStatsCollector::ActivationStatsCollector(ActivationStatsOptions options)
    : m_options(std::move(options))
{
    DoublingHistogram check(m_options.histogramBins); // throws Error for a bad bin count now, not mid-pass
    (void)check;
    if (!(m_options.outlierFactor > 0.0) || !std::isfinite(m_options.outlierFactor))
        fail("", "activation statistics: the outlier factor must be positive");
}

ActivationStatsCollector::~ActivationStatsCollector() = default;

bool ActivationStatsCollector::wantsBlock(int block) const
{
    const auto &b = m_options.blocks;
    return b.empty() || std::find(b.begin(), b.end(), block) != b.end();
}

bool ActivationStatsCollector::wantsHessian(int block, LinearInput input) const
{
    if (!m_options.collectHessians || !wantsBlock(block))
        return false;
    const auto &b = m_options.hessianBlocks;
    const auto &in = m_options.hessianInputs;
    return (b.empty() || std::find(b.begin(), b.end(), block) != b.end())
        && (in.empty() || std::find(in.begin(), in.end(), input) != in.end());
}

uint64_t ActivationStatsCollector::hessianBytes(const HyperParams &hp) const
{
    const int64_t h = hp.hiddenSize;
    const int64_t headDim = hp.headDim > 0 ? hp.headDim : (hp.numHeads > 0 ? h / hp.numHeads : h);
    const int64_t attnOut = hp.numHeads > 0 ? int64_t(hp.numHeads) * headDim : h;
    const auto bytes = [](int64_t cols) { return uint64_t(cols) * uint64_t(cols) * sizeof(double); };
    uint64_t total = 0;
    for (int b = 0; b < hp.numLayers; ++b) {
        if (wantsHessian(b, LinearInput::AttnIn))
            total += bytes(h);
        if (wantsHessian(b, LinearInput::AttnOut))
            total += bytes(attnOut);
        if (wantsHessian(b, LinearInput::MlpIn))
            total += bytes(h);
        if (wantsHessian(b, LinearInput::MlpAct))
            total += bytes(hp.intermediateSize);
    }
    if (wantsHessian(-1, LinearInput::Head))
        total += bytes(h);
    return total;
}

ActivationStatsCollector::Accumulator &ActivationStatsCollector::accumulator(int block, LinearInput input, int64_t cols)
{
    const auto where
        = [&] { return "activation statistics, block " + std::to_string(block) + " " + linearInputName(input); };
    if (cols <= 0)
        fail("", where() + ": the input has " + std::to_string(cols) + " columns");
    const Key key { block, input };
    auto it = m_accumulators.find(key);
    if (it != m_accumulators.end()) {
        if (it->second->cols != cols)
            fail("",
                where() + ": got " + std::to_string(cols) + " columns, earlier calls had "
                    + std::to_string(it->second->cols));
        return *it->second;
    }
    auto acc = std::make_unique<Accumulator>(
        block, input, cols, m_options.histogramBins, m_options.exceedanceBudget, wantsHessian(block, input));
    Accumulator &ref = *acc;
    m_accumulators.emplace(key, std::move(acc));
    return ref;
}

void ActivationStatsCollector::onLinearInput(int block, LinearInput input, const float *x, int64_t tokens, int64_t cols)
{
    if (tokens <= 0 || !wantsBlock(block))
        return;
    Accumulator &acc = accumulator(block, input, cols);
    if (!x)
        fail("", "activation statistics: null activation data");

    // 1. Token rows with a NaN or Inf are left out of every statistic (see the header).
    const bool parallel = tokens * cols >= kParallelMinValues;
    int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static) if (parallel)
    for (int64_t r = 0; r < tokens; ++r)
        bad += rowIsFinite(x + r * cols, cols) ? 0 : 1;
    const float *data = x;
    int64_t rows = tokens;
    if (bad > 0) {
        m_scratch.resize(size_t((tokens - bad) * cols));
        float *out = m_scratch.data();
        for (int64_t r = 0; r < tokens; ++r) {
            const float *row = x + r * cols;
            if (rowIsFinite(row, cols)) {
                std::copy(row, row + cols, out);
                out += cols;
            }
        }
        data = m_scratch.data();
        rows = tokens - bad;
        acc.nonFiniteTokens += uint64_t(bad);
    }
    if (rows == 0)
        return;
    acc.tokens += uint64_t(rows);

    const int64_t nBlocks = (cols + kColBlock - 1) / kColBlock;

    // 2. Per-channel absmax, Σ|x|, Σx² and the chunk's min/max. Each channel is summed in token order by
    // one thread, then added to its running sum.
    double chunkMin = std::numeric_limits<double>::infinity();
    double chunkMax = -std::numeric_limits<double>::infinity();
#pragma omp parallel if (parallel)
    {
        float threadMin = std::numeric_limits<float>::infinity();
        float threadMax = -std::numeric_limits<float>::infinity();
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nBlocks; ++b) {
            const int64_t c0 = b * kColBlock;
            const int64_t w = std::min(kColBlock, cols - c0);
            float *absMax = acc.absMax.data() + c0;
            double *sumAbs = acc.sumAbs.data() + c0;
            double *sumSquare = acc.sumSquare.data() + c0;
            if (w == kColBlock)
                channelBlock<int(kColBlock)>(data + c0, rows, cols, w, absMax, sumAbs, sumSquare, threadMin, threadMax);
            else
                channelBlock<0>(data + c0, rows, cols, w, absMax, sumAbs, sumSquare, threadMin, threadMax);
        }
#pragma omp critical(qs_activation_minmax)
        {
            chunkMin = std::min(chunkMin, double(threadMin));
            chunkMax = std::max(chunkMax, double(threadMax));
        }
    }
    acc.min = std::min(acc.min, chunkMin);
    acc.max = std::max(acc.max, chunkMax);
    const double inputAbsMax = std::max(-acc.min, acc.max);

    // 3. Histogram range and the running outlier threshold (a lower bound of the final one, since the
    // median of channel maxima only grows).
    acc.histogram.ensureRange(inputAbsMax);
    const double runningThreshold = findOutlierChannels(acc.absMax, m_options.outlierFactor).threshold;
    acc.exceedance.prepare(runningThreshold, inputAbsMax);
    const double threshold = acc.exceedance.threshold();

    // 4. Histogram counts (per-thread partial histograms, merged) and exceedances (per channel, each
    // channel owned by one thread). Each thread keeps kHistogramCopies interleaved partial histograms:
    // neighbouring values often land in the same bin, and one counter would serialise those increments.
    detail::ChunkErrors errors;
    const DoublingHistogram &hist = acc.histogram;
    const size_t bins = size_t(hist.bins());
#pragma omp parallel if (parallel)
    {
        std::vector<uint64_t> local(bins * kHistogramCopies, 0);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nBlocks; ++b) {
            errors.run([&] {
                const int64_t c0 = b * kColBlock;
                const int64_t w = std::min(kColBlock, cols - c0);
                // Locals, so the loop keeps them in registers across the (rare) record() calls.
                const double scale = hist.scale();
                const int half = hist.bins() / 2;
                const double limit = threshold;
                uint64_t *counts = local.data();
                for (int64_t r = 0; r < rows; ++r) {
                    const float *row = data + r * cols + c0;
                    for (int64_t k = 0; k < w; ++k) {
                        const float v = row[k];
                        ++counts[size_t(k % kHistogramCopies) * bins
                            + size_t(DoublingHistogram::binAt(double(v), scale, half))];
                        const float a = std::fabs(v);
                        if (double(a) > limit)
                            acc.exceedance.record(c0 + k, a);
                    }
                }
            });
        }
        for (size_t copy = 1; copy < size_t(kHistogramCopies); ++copy)
            for (size_t i = 0; i < bins; ++i)
                local[i] += local[copy * bins + i];
        local.resize(bins);
#pragma omp critical(qs_activation_histogram)
        acc.histogram.addCounts(local);
    }
    errors.rethrow();
    acc.exceedance.afterChunk();

    // 5. Hessian Σ x xᵀ, lower triangle, in double: slabs of token rows converted once, then one GEMM per
    // tile of the lower triangle. Tiles are independent, so they run in parallel; a GEMM inside the
    // parallel region stays single-threaded in Eigen.
    if (acc.wantsHessian) {
        const int64_t nTiles = (cols + kHessianTile - 1) / kHessianTile;
        std::vector<std::pair<int64_t, int64_t>> tiles;
        tiles.reserve(size_t(nTiles * (nTiles + 1) / 2));
        for (int64_t i = 0; i < nTiles; ++i)
            for (int64_t j = 0; j <= i; ++j)
                tiles.emplace_back(i, j);
        Eigen::MatrixXd slab;
        for (int64_t s0 = 0; s0 < rows; s0 += kHessianSlab) {
            const int64_t n = std::min(kHessianSlab, rows - s0);
            slab = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                data + s0 * cols, n, cols)
                       .cast<double>();
            detail::ChunkErrors gemmErrors;
            const bool parallelGemm = tiles.size() > 1 && double(n) * double(cols) * double(cols) >= kParallelMinFlops;
#pragma omp parallel for schedule(dynamic, 1) if (parallelGemm)
            for (int64_t t = 0; t < int64_t(tiles.size()); ++t) {
                gemmErrors.run([&] {
                    const int64_t i0 = tiles[size_t(t)].first * kHessianTile;
                    const int64_t j0 = tiles[size_t(t)].second * kHessianTile;
                    const int64_t ni = std::min(kHessianTile, cols - i0);
                    const int64_t nj = std::min(kHessianTile, cols - j0);
                    acc.hessianLower.block(i0, j0, ni, nj).noalias()
                        += slab.middleCols(i0, ni).transpose() * slab.middleCols(j0, nj);
                });
            }
            gemmErrors.rethrow();
        }
    }
}

namespace {

void symmetrizeFromLower(Eigen::MatrixXd &h)
{
    const int64_t n = h.rows();
    for (int64_t j = 1; j < n; ++j)
        for (int64_t i = 0; i < j; ++i)
            h(i, j) = h(j, i);
}

} // namespace

std::vector<InputActivationStats> ActivationStatsCollector::results() const
{
    std::vector<InputActivationStats> out;
    out.reserve(m_accumulators.size());
    for (const auto &[key, accPtr] : m_accumulators) {
        const Accumulator &acc = *accPtr;
        InputActivationStats r;
        r.block = acc.block;
        r.input = acc.input;
        r.cols = acc.cols;
        r.tokens = acc.tokens;
        r.nonFiniteTokens = acc.nonFiniteTokens;
        if (acc.tokens > 0) {
            r.min = acc.min;
            r.max = acc.max;
            r.absMax = std::max(-acc.min, acc.max);
        }
        r.channelAbsMax = acc.absMax;
        r.channelMeanAbs.resize(size_t(acc.cols), 0.0);
        r.channelMeanSquare.resize(size_t(acc.cols), 0.0);
        if (acc.tokens > 0) {
            const double n = double(acc.tokens);
            for (size_t c = 0; c < size_t(acc.cols); ++c) {
                r.channelMeanAbs[c] = acc.sumAbs[c] / n;
                r.channelMeanSquare[c] = acc.sumSquare[c] / n;
            }
        }
        r.histogramRange = acc.histogram.range();
        r.histogramCounts = acc.histogram.counts();

        const ChannelOutliers outliers = findOutlierChannels(acc.absMax, m_options.outlierFactor);
        r.outlierFactor = m_options.outlierFactor;
        r.outlierMedian = outliers.median;
        r.outlierThreshold = outliers.threshold;
        r.outlierChannels = outliers.channels;
        r.outlierShareExact = acc.exceedance.exact();
        r.outlierTokenShare.reserve(outliers.channels.size());
        for (int c : outliers.channels)
            r.outlierTokenShare.push_back(
                acc.tokens > 0 ? acc.exceedance.countAbove(c, outliers.threshold) / double(acc.tokens) : 0.0);

        if (acc.wantsHessian) {
            r.hasHessian = true;
            r.hessian = acc.hessianLower;
            symmetrizeFromLower(r.hessian);
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<InputActivationStats> ActivationStatsCollector::takeResults()
{
    // Free each Hessian as soon as it is copied, so peak memory grows by one matrix, not by all of them.
    std::vector<InputActivationStats> out;
    std::map<Key, Eigen::MatrixXd> hessians;
    for (auto &[key, acc] : m_accumulators)
        if (acc->wantsHessian)
            hessians[key].swap(acc->hessianLower);
    for (auto &[key, acc] : m_accumulators)
        acc->wantsHessian = false;
    out = results();
    size_t i = 0;
    for (auto &[key, acc] : m_accumulators) {
        auto it = hessians.find(key);
        if (it != hessians.end()) {
            out[i].hasHessian = true;
            out[i].hessian.swap(it->second);
            symmetrizeFromLower(out[i].hessian);
        }
        ++i;
    }
    m_accumulators.clear();
    m_scratch.clear();
    m_scratch.shrink_to_fit();
    return out;
}

// --- Results ---------------------------------------------------------------------------------------------

std::vector<double> InputActivationStats::histogramEdges() const
{
    const size_t bins = histogramCounts.size();
    const double r = histogramRange > 0.0 ? histogramRange : 1.0;
    std::vector<double> e(bins + 1, 0.0);
    if (bins == 0)
        return e;
    const double w = 2.0 * r / double(bins);
    for (size_t i = 0; i <= bins; ++i)
        e[i] = -r + double(i) * w;
    return e;
}

std::vector<std::string> InputActivationStats::layers() const
{
    switch (input) {
    case LinearInput::AttnIn:
        return { layerName(block, TensorRole::Q), layerName(block, TensorRole::K), layerName(block, TensorRole::V) };
    case LinearInput::AttnOut:
        return { layerName(block, TensorRole::O) };
    case LinearInput::MlpIn:
        return { layerName(block, TensorRole::Gate), layerName(block, TensorRole::Up) };
    case LinearInput::MlpAct:
        return { layerName(block, TensorRole::Down) };
    case LinearInput::Head:
        return { "lm_head" };
    }
    return {};
}

ActivationSummary summarizeActivations(const InputActivationStats &s, int topChannels)
{
    ActivationSummary m;
    m.block = s.block;
    m.input = linearInputName(s.input);
    m.layers = s.layers();
    m.cols = s.cols;
    m.tokens = s.tokens;
    m.nonFiniteTokens = s.nonFiniteTokens;
    m.min = s.min;
    m.max = s.max;
    m.absMax = s.absMax;
    if (!s.channelMeanAbs.empty()) {
        double a = 0.0, q = 0.0;
        for (size_t c = 0; c < s.channelMeanAbs.size(); ++c) {
            a += s.channelMeanAbs[c];
            q += s.channelMeanSquare[c];
        }
        // Every channel saw the same tokens, so the overall means are the channel means averaged.
        m.meanAbs = a / double(s.channelMeanAbs.size());
        m.rms = std::sqrt(q / double(s.channelMeanSquare.size()));
    }
    m.medianChannelAbsMax = s.outlierMedian;
    m.outlierFactor = s.outlierFactor;
    m.outlierThreshold = s.outlierThreshold;
    m.outlierCount = int(s.outlierChannels.size());
    m.outlierShareExact = s.outlierShareExact;
    m.hasHessian = s.hasHessian;

    std::vector<size_t> order(s.outlierChannels.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return s.channelAbsMax[size_t(s.outlierChannels[a])] > s.channelAbsMax[size_t(s.outlierChannels[b])];
    });
    for (size_t k = 0; k < order.size() && int(k) < topChannels; ++k) {
        const size_t i = order[k];
        ActivationSummary::Channel ch;
        ch.channel = s.outlierChannels[i];
        ch.absMax = s.channelAbsMax[size_t(ch.channel)];
        ch.ratio = s.outlierMedian > 0.0 ? ch.absMax / s.outlierMedian : std::numeric_limits<double>::infinity();
        ch.tokenShare = i < s.outlierTokenShare.size() ? s.outlierTokenShare[i] : 0.0;
        m.topOutliers.push_back(ch);
    }
    return m;
}

nlohmann::json ActivationSummary::toJson() const
{
    nlohmann::json j;
    j["block"] = block;
    j["input"] = input;
    j["layers"] = layers;
    j["cols"] = cols;
    j["tokens"] = tokens;
    j["non_finite_tokens"] = nonFiniteTokens;
    j["min"] = min;
    j["max"] = max;
    j["absmax"] = absMax;
    j["mean_abs"] = meanAbs;
    j["rms"] = rms;
    j["median_channel_absmax"] = medianChannelAbsMax;
    j["outlier_factor"] = outlierFactor;
    j["outlier_threshold"] = outlierThreshold;
    j["outlier_count"] = outlierCount;
    nlohmann::json top = nlohmann::json::array();
    for (const Channel &c : topOutliers) {
        // JSON has no infinity: a ratio against a zero median is reported as null.
        top.push_back({ { "channel", c.channel }, { "absmax", c.absMax },
            { "ratio", std::isfinite(c.ratio) ? nlohmann::json(c.ratio) : nlohmann::json(nullptr) },
            { "token_share", c.tokenShare } });
    }
    j["top_outliers"] = top;
    j["outlier_share_exact"] = outlierShareExact;
    j["hessian"] = hasHessian;
    return j;
}

} // namespace qs::core
