#include "stats/WeightStats.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/Error.h"
#include "common/Half.h"
#include "stats/ParallelChunks.h"

namespace qs::core {

double symlogForward(double x, double c)
{
    const double y = std::log1p(std::fabs(x) / c);
    return x < 0 ? -y : y;
}

double symlogInverse(double y, double c)
{
    const double x = c * std::expm1(std::fabs(y));
    return y < 0 ? -x : x;
}

std::vector<double> histogramEdges(const Histogram &h)
{
    const size_t bins = h.counts.size();
    std::vector<double> edges(bins + 1);
    if (bins == 0)
        return edges;
    const double w = (h.hi - h.lo) / double(bins);
    for (size_t i = 0; i <= bins; ++i) {
        const double y = h.lo + double(i) * w;
        edges[i] = h.scale > 0.0 ? symlogInverse(y, h.scale) : y;
    }
    return edges;
}

namespace {

// Count, mean and central moment sums M2..M4 of a set of values.
struct Moments
{
    double n = 0.0;
    double mean = 0.0;
    double m2 = 0.0;
    double m3 = 0.0;
    double m4 = 0.0;
};

// Pairwise combination (Chan, Golub & LeVeque for M2; Pébay 2008 for M3, M4): exact in real arithmetic
// and stable in floating point because only differences of means enter, never raw power sums.
Moments mergeMoments(const Moments &a, const Moments &b)
{
    if (a.n == 0.0)
        return b;
    if (b.n == 0.0)
        return a;
    Moments r;
    r.n = a.n + b.n;
    const double delta = b.mean - a.mean;
    const double dn = delta / r.n;
    const double dn2 = dn * dn;
    const double nab = a.n * b.n;
    r.mean = a.mean + b.n * dn;
    r.m2 = a.m2 + b.m2 + delta * dn * nab;
    r.m3 = a.m3 + b.m3 + delta * dn2 * nab * (a.n - b.n) + 3.0 * dn * (a.n * b.m2 - b.n * a.m2);
    r.m4 = a.m4 + b.m4 + delta * dn2 * dn * nab * (a.n * a.n - a.n * b.n + b.n * b.n)
        + 6.0 * dn2 * (a.n * a.n * b.m2 + b.n * b.n * a.m2) + 4.0 * dn * (a.n * b.m3 - b.n * a.m3);
    return r;
}

struct Pass1Chunk
{
    Moments moments;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
    uint64_t nan = 0;
    uint64_t inf = 0;
    uint64_t zero = 0;
};

struct Candidate
{
    double deviation;
    int64_t row;
    int64_t col;
    float value;
};

// Strict total order "a is a stronger outlier than b", so the top-N list does not depend on which thread
// saw which candidate first.
bool strongerOutlier(const Candidate &a, const Candidate &b)
{
    if (a.deviation != b.deviation)
        return a.deviation > b.deviation;
    if (a.row != b.row)
        return a.row < b.row;
    return a.col < b.col;
}

// Keeps the N strongest candidates: a heap whose front is the weakest kept one.
class TopOutliers
{
public:
    explicit TopOutliers(size_t capacity)
        : m_capacity(capacity)
    { }

    void offer(const Candidate &c)
    {
        if (m_capacity == 0)
            return;
        if (m_heap.size() < m_capacity) {
            m_heap.push_back(c);
            std::push_heap(m_heap.begin(), m_heap.end(), strongerOutlier);
        } else if (strongerOutlier(c, m_heap.front())) {
            std::pop_heap(m_heap.begin(), m_heap.end(), strongerOutlier);
            m_heap.back() = c;
            std::push_heap(m_heap.begin(), m_heap.end(), strongerOutlier);
        }
    }

    // Whether a candidate this far out could be kept (a row whose largest deviation fails this has
    // nothing to offer; ties are decided by position, so equal deviations may still enter).
    bool mayTake(double deviation) const
    {
        return m_capacity > 0 && (m_heap.size() < m_capacity || deviation >= m_heap.front().deviation);
    }

    const std::vector<Candidate> &items() const { return m_heap; }

private:
    size_t m_capacity;
    std::vector<Candidate> m_heap;
};

// Uniform binning of a coordinate over [lo, hi] (see Histogram in the header). A degenerate range (all
// values equal) puts everything in the middle bin directly: computing it through the widened range could
// land one bin off by rounding.
struct Binner
{
    double lo = 0.0;
    double scale = 0.0; // bins / (hi - lo)
    int64_t last = 0;
    int64_t middle = -1; // >= 0 for a degenerate range

    Binner(double lo_, double hi_, bool degenerate, int bins)
        : lo(lo_)
        , scale(double(bins) / (hi_ - lo_))
        , last(bins - 1)
        , middle(degenerate ? bins / 2 : -1)
    { }

    int64_t bin(double y) const
    {
        if (middle >= 0)
            return middle;
        const double f = (y - lo) * scale; // truncation is floor here: f > 0 below
        if (!(f > 0.0))
            return 0;
        return f >= double(last) ? last : int64_t(f);
    }
};

// ln(u) for u >= 1 to about 1e-4, from the exponent bits and a short atanh series: a first guess of the
// symmetric-log bin that SymlogBinner then checks against the exact edges (libm's log1p was half the
// cost of the whole statistics pass).
inline double roughLog(double u)
{
    uint64_t bits;
    std::memcpy(&bits, &u, 8);
    const int e = int((bits >> 52) & 0x7FF) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull; // mantissa in [1, 2)
    double m;
    std::memcpy(&m, &bits, 8);
    const double t = (m - 1.0) / (m + 1.0); // [0, 1/3)
    const double t2 = t * t;
    return double(e) * 0.6931471805599453 + 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * 0.2));
}

// Symmetric-log bins defined by their edges in value space (see Histogram in the header): bin i holds
// E[i] <= x < E[i+1], E[i] = symlogInverse(lo + i·w, c). A cheap estimate of the index is confirmed
// against the two edges; a miss (rare: values within ~1e-4 of an edge in log space) falls back to a
// binary search, so the result is exact by the edge rule whatever the estimate's error.
struct SymlogBinner
{
    std::vector<double> edges;
    double lo = 0.0;
    double scale = 0.0; // bins / (hi - lo)
    double invC = 0.0;
    int64_t last = 0;
    int64_t middle = -1;

    SymlogBinner(const Histogram &h, bool degenerate)
        : edges(histogramEdges(h))
        , lo(h.lo)
        , scale(double(h.counts.size()) / (h.hi - h.lo))
        , invC(1.0 / h.scale)
        , last(int64_t(h.counts.size()) - 1)
        , middle(degenerate ? int64_t(h.counts.size()) / 2 : -1)
    { }

    int64_t bin(double x) const
    {
        if (middle >= 0)
            return middle;
        const double y = roughLog(1.0 + std::fabs(x) * invC);
        const double f = (std::copysign(y, x) - lo) * scale; // copysign: no branch on a random sign
        int64_t i = f > 0.0 ? (f >= double(last) ? last : int64_t(f)) : 0;
        if ((i == 0 || edges[size_t(i)] <= x) && (i == last || x < edges[size_t(i + 1)]))
            return i;
        // Number of interior edges E[1..last] that are <= x.
        return int64_t(std::upper_bound(edges.begin() + 1, edges.begin() + 1 + last, x) - (edges.begin() + 1));
    }
};

// Returns whether the range was degenerate.
bool widenDegenerate(double &lo, double &hi)
{
    if (lo < hi)
        return false;
    const double h = lo == 0.0 ? 0.5 : std::fabs(lo) * 0.5;
    lo -= h;
    hi += h;
    return true;
}

void validate(const StatsOptions &o)
{
    if (o.histogramBins < 1 || o.histogramBins > (1 << 20))
        fail("weight statistics",
            "histogram bins must be between 1 and 1048576, got " + std::to_string(o.histogramBins));
    if (!(o.outlierSigma > 0.0) || !std::isfinite(o.outlierSigma))
        fail("weight statistics", "outlier threshold k must be a positive number of standard deviations");
    if (o.topOutliers < 0)
        fail("weight statistics", "number of outlier positions to keep must not be negative");
    if (o.chunkElements < 1)
        fail("weight statistics", "chunk size must be at least one value");
    if (o.binTableMinElements < 0)
        fail("weight statistics", "table threshold must not be negative");
}

// Mean, σ, skewness and kurtosis from the merged moments (both paths).
void setMoments(WeightStats &s, const Moments &total, double mn, double mx)
{
    // -0 and +0 compare equal, and which one a (vectorised) min/max keeps depends on lane order: report
    // +0 either way.
    s.min = mn == 0.0 ? 0.0 : mn;
    s.max = mx == 0.0 ? 0.0 : mx;
    s.absMax = std::max(std::fabs(mn), std::fabs(mx));
    if (mn == mx) {
        // A constant tensor: the merged mean may be off by rounding, and a σ of 1e-20 would turn every
        // value into a 6σ "outlier". Set the exact answer.
        s.mean = s.min;
        s.stddev = 0.0;
    } else {
        s.mean = total.mean;
        s.stddev = std::sqrt(total.m2 / total.n);
        if (total.m2 > 0.0) {
            s.skewness = std::sqrt(total.n) * total.m3 / std::pow(total.m2, 1.5);
            s.kurtosis = total.n * total.m4 / (total.m2 * total.m2) - 3.0;
        }
    }
}

// Moments of values about m given the raw sums s1..s4 of (x - m)^k over n values, shifted exactly to
// the true mean m + e (e = s1 / n is the rounding left in m, tiny but free to fix).
Moments momentsAbout(double m, double nn, double s1, double s2, double s3, double s4)
{
    const double e = s1 / nn;
    Moments mo;
    mo.n = nn;
    mo.mean = m + e;
    mo.m2 = std::max(0.0, s2 - e * s1);
    mo.m3 = s3 - 3.0 * e * s2 + 3.0 * e * e * s1 - nn * e * e * e;
    mo.m4 = std::max(0.0, s4 - 4.0 * e * s3 + 6.0 * e * e * s2 - 4.0 * e * e * e * s1 + nn * e * e * e * e);
    return mo;
}

struct Binners
{
    Binner linear;
    SymlogBinner symlog;
};

// Histogram ranges, symmetric-log scale and outlier threshold from the moments (both paths).
Binners prepareHistograms(WeightStats &s, const StatsOptions &options)
{
    double linLo = s.min, linHi = s.max;
    const bool linDegenerate = widenDegenerate(linLo, linHi);
    double c = s.stddev / 16.0;
    if (!(c > 0.0))
        c = s.mean != 0.0 ? std::fabs(s.mean) / 16.0 : 1.0;
    double logLo = symlogForward(s.min, c), logHi = symlogForward(s.max, c);
    const bool logDegenerate = widenDegenerate(logLo, logHi);
    s.linearHistogram.lo = linLo;
    s.linearHistogram.hi = linHi;
    s.symlogHistogram.lo = logLo;
    s.symlogHistogram.hi = logHi;
    s.symlogHistogram.scale = c;
    s.outlierThreshold = options.outlierSigma * s.stddev;
    return { Binner(linLo, linHi, linDegenerate, options.histogramBins),
        SymlogBinner(s.symlogHistogram, logDegenerate) };
}

void keepTopOutliers(WeightStats &s, std::vector<Candidate> candidates, int topOutliers)
{
    std::sort(candidates.begin(), candidates.end(), strongerOutlier);
    if (candidates.size() > size_t(topOutliers))
        candidates.resize(size_t(topOutliers));
    s.topOutliers.reserve(candidates.size());
    for (const Candidate &cand : candidates)
        s.topOutliers.push_back({ cand.row, cand.col, cand.value });
    s.outlierFraction = double(s.outlierCount) / double(s.count);
}

// ---------------------------------------------------------------------------------------------------
// Stored 16-bit floats (F16, BF16): every element is one of 65536 codes, so one pass that only counts
// codes (no conversion to float) carries everything that does not depend on position: count, NaN/Inf,
// zeros, min/max, the moments, both histograms and the outlier count follow exactly from the code
// counts, each distinct value converted once. The same pass keeps per-row and per-column absmax in
// code space: for finite codes of both formats, code & 0x7FFF orders like |value| and fits an int16,
// so the maxima are vectorised integer maxima. A second, selective pass finds the top-N outlier
// positions: the code counts give the deviation of the N-th strongest outlier, and only rows whose
// absmax can reach it (|x - mean| <= rowAbsMax + |mean|) are read again.

constexpr size_t kCodes = size_t(1) << 16;

struct HalfCodec
{
    bool f16 = true;
    int16_t finiteLimit = 0x7C00; // |code| == limit: ±Inf, above: NaN (F16 0x7C00, BF16 0x7F80)

    float value(uint16_t code) const { return f16 ? halfToFloat(code) : bf16ToFloat(code); }
};

// Whether the tensor's stored bytes are 16-bit floats in canonical row order, so the code path may
// read them directly. Readers keep stored rows in canonical order except for q/k projections and their
// biases in GGUF and llama2.c (Meta's interleaved order, ARCHITECTURE.md "q/k row order"); safetensors
// (Hugging Face order) never permutes. storedRowsMatchReader() double-checks the first rows.
std::optional<HalfCodec> storedHalfCodes(const Model &model, const Tensor &t)
{
    if (t.dtype != DType::F16 && t.dtype != DType::BF16)
        return std::nullopt;
    if (!t.data || t.storedBytes != uint64_t(t.rows) * uint64_t(t.cols) * 2u)
        return std::nullopt;
    const bool mayBePermuted = t.role == TensorRole::Q || t.role == TensorRole::K || t.role == TensorRole::Bias;
    if (mayBePermuted && model.format != "safetensors")
        return std::nullopt;
    if (!t.data->storedData())
        return std::nullopt;
    HalfCodec codec;
    codec.f16 = t.dtype == DType::F16;
    codec.finiteLimit = codec.f16 ? int16_t(0x7C00) : int16_t(0x7F80);
    return codec;
}

// The first rows through the reader must be the stored codes, value for value (a permuted or otherwise
// transformed tensor falls back to the float path instead of giving wrong per-row results).
bool storedRowsMatchReader(const Model &model, const Tensor &t, const HalfCodec &codec)
{
    const int64_t rows = std::min<int64_t>(t.rows, 8);
    const size_t n = size_t(rows * t.cols);
    std::vector<float> viaReader(n);
    model.readRows(t, 0, rows, viaReader.data());
    const uint8_t *stored = t.data->storedData();
    for (size_t i = 0; i < n; ++i) {
        uint16_t code;
        std::memcpy(&code, stored + 2 * i, 2);
        const float mine = codec.value(code);
        const float theirs = viaReader[i];
        if (std::memcmp(&mine, &theirs, 4) != 0 && !(std::isnan(mine) && std::isnan(theirs)))
            return false;
    }
    return true;
}

// Counts one row's codes and folds its finite |code| into colMax; returns the row's largest |code|.
// Two loops on purpose: the scatter into the histogram cannot be vectorised (it is unrolled by four
// codes per 64-bit load instead), the maxima can (eight codes per SSE2 instruction; x86-64 always has
// SSE2, other targets take the scalar loop). Measured on one Zen 4 core: 1.27 ns/value with both in one
// scalar loop, 0.51 ns/value like this, of which the histogram is 0.43.
inline int16_t countRow(const uint8_t *src, int64_t cols, uint32_t *hist, int16_t *colMax, int16_t finiteLimit)
{
    int64_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        uint64_t w;
        std::memcpy(&w, src + 2 * c, 8); // stored data need not be aligned
        ++hist[w & 0xFFFFu];
        ++hist[(w >> 16) & 0xFFFFu];
        ++hist[(w >> 32) & 0xFFFFu];
        ++hist[w >> 48];
    }
    for (; c < cols; ++c) {
        uint16_t h;
        std::memcpy(&h, src + 2 * c, 2);
        ++hist[h];
    }
    int16_t rowMax = 0;
    c = 0;
#if defined(__SSE2__)
    const __m128i magnitude = _mm_set1_epi16(0x7FFF);
    const __m128i limit = _mm_set1_epi16(finiteLimit);
    __m128i rowVec = _mm_setzero_si128();
    for (; c + 8 <= cols; c += 8) {
        __m128i a = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i *>(src + 2 * c)), magnitude);
        a = _mm_and_si128(a, _mm_cmplt_epi16(a, limit)); // NaN/Inf count as 0
        rowVec = _mm_max_epi16(rowVec, a);
        __m128i *col = reinterpret_cast<__m128i *>(colMax + c);
        _mm_storeu_si128(col, _mm_max_epi16(_mm_loadu_si128(col), a));
    }
    alignas(16) int16_t lanes[8];
    _mm_store_si128(reinterpret_cast<__m128i *>(lanes), rowVec);
    rowMax = *std::max_element(lanes, lanes + 8);
#endif
    for (; c < cols; ++c) {
        uint16_t h;
        std::memcpy(&h, src + 2 * c, 2);
        int16_t a = int16_t(h & 0x7FFFu);
        a = a < finiteLimit ? a : int16_t(0);
        rowMax = std::max(rowMax, a);
        colMax[c] = std::max(colMax[c], a);
    }
    return rowMax;
}

void computeFromCodes(
    WeightStats &s, const Tensor &tensor, const HalfCodec &codec, const StatsOptions &options, Progress &progress)
{
    const uint8_t *bytes = tensor.data->storedData();
    const int64_t rows = tensor.rows;
    const int64_t cols = tensor.cols;
    const size_t rowBytes = size_t(cols) * 2;
    const int64_t chunkRows = detail::rowsPerChunk(cols, options.chunkElements);
    const int64_t chunks = (rows + chunkRows - 1) / chunkRows;
    const int16_t finiteLimit = codec.finiteLimit;

    // ---- pass 1: code counts, per-row and per-column absmax (as codes) ----
    std::vector<uint64_t> counts(kCodes, 0);
    std::vector<int16_t> rowMax(size_t(rows), 0);
    std::vector<int16_t> colMax(size_t(cols), 0);
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel if (chunks > 1)
        {
            std::vector<uint32_t> hist; // this thread's counts, allocated with its first chunk
            std::vector<int16_t> colLocal;
            uint64_t pending = 0; // values counted in hist since it was last added to counts
            auto addToCounts = [&] {
                std::lock_guard lock(mergeMutex);
                for (size_t i = 0; i < kCodes; ++i)
                    counts[i] += hist[i];
            };
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    const uint64_t values = uint64_t(count * cols);
                    if (hist.empty()) {
                        hist.assign(kCodes, 0);
                        colLocal.assign(size_t(cols), 0);
                    }
                    if (pending + values > std::numeric_limits<uint32_t>::max()) { // 32-bit counters cannot overflow
                        addToCounts();
                        std::fill(hist.begin(), hist.end(), 0u);
                        pending = 0;
                    }
                    for (int64_t r = 0; r < count; ++r)
                        rowMax[size_t(first + r)] = countRow(bytes + size_t(first + r) * rowBytes, cols, hist.data(),
                            colLocal.data(), finiteLimit); // rows are disjoint between chunks
                    pending += values;
                    progress.advance(double(values));
                });
            }
            if (!hist.empty()) {
                addToCounts();
                std::lock_guard lock(mergeMutex);
                for (size_t c = 0; c < size_t(cols); ++c)
                    colMax[c] = std::max(colMax[c], colLocal[c]);
            }
        }
        errors.rethrow();
    }
    for (size_t r = 0; r < size_t(rows); ++r)
        s.rowAbsMax[r] = codec.value(uint16_t(rowMax[r]));
    for (size_t c = 0; c < size_t(cols); ++c)
        s.colAbsMax[c] = codec.value(uint16_t(colMax[c]));

    // ---- everything position-free, from the code counts, in code order (thread-independent) ----
    struct Level
    {
        double value;
        double n;
        uint64_t count;
    };
    std::vector<Level> levels;
    double mn = std::numeric_limits<double>::infinity();
    double mx = -std::numeric_limits<double>::infinity();
    double sum = 0.0;
    for (size_t code = 0; code < kCodes; ++code) {
        const uint64_t n = counts[code];
        if (n == 0)
            continue;
        const int16_t a = int16_t(code & 0x7FFFu);
        if (a >= finiteLimit) {
            (a == finiteLimit ? s.infCount : s.nanCount) += n;
            continue;
        }
        s.count += n;
        s.zeroCount += a == 0 ? n : 0;
        const double v = codec.value(uint16_t(code));
        levels.push_back({ v, double(n), n });
        mn = std::min(mn, v);
        mx = std::max(mx, v);
        sum += double(n) * v;
    }
    if (s.count == 0) {
        s.symlogHistogram.scale = 1.0;
        progress.advance(double(rows * cols)); // pass 2 has nothing to look at
        return;
    }
    const double nn = double(s.count);
    const double m = sum / nn;
    double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
    for (const Level &l : levels) {
        const double d = l.value - m;
        const double d2 = d * d;
        s1 += l.n * d;
        s2 += l.n * d2;
        s3 += l.n * d2 * d;
        s4 += l.n * d2 * d2;
    }
    setMoments(s, momentsAbout(m, nn, s1, s2, s3, s4), mn, mx);

    const Binners bins = prepareHistograms(s, options);
    const bool findOutliers = s.stddev > 0.0;
    const double threshold = s.outlierThreshold;
    const double mean = s.mean;
    std::vector<std::pair<double, uint64_t>> outlierLevels; // deviation, count
    for (const Level &l : levels) {
        s.linearHistogram.counts[size_t(bins.linear.bin(l.value))] += l.count;
        s.symlogHistogram.counts[size_t(bins.symlog.bin(l.value))] += l.count;
        if (findOutliers) {
            const double dev = std::fabs(l.value - mean);
            if (dev > threshold) {
                s.outlierCount += l.count;
                outlierLevels.push_back({ dev, l.count });
            }
        }
    }
    s.outlierFraction = double(s.outlierCount) / double(s.count);
    if (outlierLevels.empty() || options.topOutliers == 0) {
        progress.advance(double(rows * cols));
        return;
    }

    // ---- pass 2: positions of the top-N outliers: every value at least as far out as the N-th ----
    std::sort(outlierLevels.begin(), outlierLevels.end(), std::greater<>());
    double cutoff = outlierLevels.back().first;
    uint64_t strongest = 0;
    for (const auto &[dev, n] : outlierLevels) {
        strongest += n;
        if (strongest >= uint64_t(options.topOutliers)) {
            cutoff = dev;
            break;
        }
    }
    // |x - mean| <= |x| + |mean|; the factor covers the rounding of the deviation.
    const double meanAbs = std::fabs(mean);
    const auto rowMayReach
        = [&](int64_t row) { return (double(s.rowAbsMax[size_t(row)]) + meanAbs) * (1.0 + 1e-12) >= cutoff; };
    std::vector<Candidate> candidates;
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel if (chunks > 1)
        {
            TopOutliers top(size_t(options.topOutliers));
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    for (int64_t row = first; row < first + count; ++row) {
                        if (!rowMayReach(row))
                            continue;
                        const uint8_t *src = bytes + size_t(row) * rowBytes;
                        for (int64_t col = 0; col < cols; ++col) {
                            uint16_t h;
                            std::memcpy(&h, src + 2 * col, 2);
                            if (int16_t(h & 0x7FFFu) >= finiteLimit)
                                continue;
                            const float x = codec.value(h);
                            const double dev = std::fabs(double(x) - mean);
                            if (dev >= cutoff)
                                top.offer({ dev, row, col, x });
                        }
                    }
                    progress.advance(double(count * cols));
                });
            }
            std::lock_guard lock(mergeMutex);
            candidates.insert(candidates.end(), top.items().begin(), top.items().end());
        }
        errors.rethrow();
    }
    keepTopOutliers(s, std::move(candidates), options.topOutliers);
}

// ---------------------------------------------------------------------------------------------------
// Any other tensor: float32 rows, two passes (see WeightStats.h).

bool isFiniteBits(float x)
{
    return (std::bit_cast<uint32_t>(x) & 0x7F800000u) != 0x7F800000u;
}

// Stored F32 tensors in canonical row order are read in place (no copy into a buffer); the same
// conditions as for 16-bit codes, plus 4-byte alignment of the mapped data.
const float *storedFloatRows(const Model &model, const Tensor &t)
{
    if (t.dtype != DType::F32 || !t.data || t.storedBytes != uint64_t(t.rows) * uint64_t(t.cols) * 4u)
        return nullptr;
    const bool mayBePermuted = t.role == TensorRole::Q || t.role == TensorRole::K || t.role == TensorRole::Bias;
    if (mayBePermuted && model.format != "safetensors")
        return nullptr;
    const uint8_t *p = t.data->storedData();
    if (!p || reinterpret_cast<uintptr_t>(p) % alignof(float) != 0)
        return nullptr;
    const float *rows = reinterpret_cast<const float *>(p);
    const int64_t check = std::min<int64_t>(t.rows, 8);
    std::vector<float> viaReader(size_t(check * t.cols));
    model.readRows(t, 0, check, viaReader.data());
    if (std::memcmp(viaReader.data(), rows, viaReader.size() * sizeof(float)) != 0)
        return nullptr;
    return rows;
}

// Symmetric-log bins by table lookup for big float tensors: the top 16 bits of a float (sign, exponent,
// 7 mantissa bits) select a contiguous range of values, and the table holds the lowest bin of that range
// when the range spans at most two bins. The bin is then base + (x >= E[base + 1]): exact by the edge
// rule, since E[base + 1] is the only edge inside the range. Ranges spanning three or more bins (very
// narrow bins) are marked and take the exact binary search. Only the entries between min and max are
// filled (a few 10,000 binary searches), so the table pays off from some 10^5 values on.
class SymlogTable
{
public:
    static constexpr uint32_t kExact = std::numeric_limits<uint32_t>::max();

    SymlogTable(const SymlogBinner &exact, double mn, double mx)
        : m_exact(exact)
        , m_base(size_t(1) << 16, kExact)
        , m_next(exact.edges.size() + 1, std::numeric_limits<double>::infinity())
    {
        // m_next[b] = the edge a value must reach to be in bin b (b >= 1); +inf past the last bin.
        for (int64_t b = 1; b <= exact.last; ++b)
            m_next[size_t(b)] = exact.edges[size_t(b)];
        if (!std::signbit(mx)) // positive floats from idx(max(mn, +0)) to idx(mx)
            fill(std::signbit(mn) ? 0u : std::bit_cast<uint32_t>(float(mn)) >> 16,
                std::bit_cast<uint32_t>(float(mx)) >> 16);
        if (std::signbit(mn)) // negative floats (-0 included) from idx(min(mx, -0)) to idx(mn)
            fill(std::signbit(mx) ? std::bit_cast<uint32_t>(float(mx)) >> 16 : 0x8000u,
                std::bit_cast<uint32_t>(float(mn)) >> 16);
    }

    int64_t bin(float x) const
    {
        const uint32_t base = m_base[std::bit_cast<uint32_t>(x) >> 16];
        if (base == kExact)
            return m_exact.bin(x);
        return int64_t(base) + (double(x) >= m_next[base + 1] ? 1 : 0);
    }

private:
    void fill(uint32_t from, uint32_t to)
    {
        for (uint32_t i = from; i <= to; ++i) {
            const int64_t a = exactBin(std::bit_cast<float>(i << 16));
            const int64_t b = exactBin(std::bit_cast<float>((i << 16) | 0xFFFFu));
            const int64_t lo = std::min(a, b), hi = std::max(a, b);
            m_base[i] = hi - lo <= 1 ? uint32_t(lo) : kExact;
        }
    }

    // Number of interior edges E[1..last] that are <= x (the edge rule).
    int64_t exactBin(float x) const
    {
        const auto first = m_exact.edges.begin() + 1;
        return int64_t(std::upper_bound(first, first + m_exact.last, double(x)) - first);
    }

    const SymlogBinner &m_exact;
    std::vector<uint32_t> m_base;
    std::vector<double> m_next;
};

// Pass 1 over a chunk without NaN/Inf: vectorised (omp simd) extremes, per-channel absmax, sum and
// zero count, then the moments about the chunk mean in a second sweep over the same (cached) values.
void pass1Finite(const float *buf, int64_t count, int64_t cols, Pass1Chunk &p, float *rowAbsOut, float *colAbs)
{
    float mnf = std::numeric_limits<float>::infinity();
    float mxf = -std::numeric_limits<float>::infinity();
    double sum = 0.0;
    int64_t zeros = 0;
    for (int64_t r = 0; r < count; ++r) {
        const float *row = buf + r * cols;
        float rowAbs = 0.0f;
        int64_t rowZeros = 0;
#pragma omp simd reduction(max : rowAbs, mxf) reduction(min : mnf) reduction(+ : sum, rowZeros)
        for (int64_t c = 0; c < cols; ++c) {
            const float x = row[c];
            const float a = std::fabs(x);
            rowAbs = a > rowAbs ? a : rowAbs;
            colAbs[c] = a > colAbs[c] ? a : colAbs[c];
            mnf = x < mnf ? x : mnf;
            mxf = x > mxf ? x : mxf;
            sum += double(x);
            rowZeros += x == 0.0f ? 1 : 0;
        }
        rowAbsOut[r] = rowAbs;
        zeros += rowZeros;
    }
    const int64_t n = count * cols;
    const double m = sum / double(n);
    double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
#pragma omp simd reduction(+ : s1, s2, s3, s4)
    for (int64_t i = 0; i < n; ++i) {
        const double d = double(buf[i]) - m;
        const double d2 = d * d;
        s1 += d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    }
    p.moments = momentsAbout(m, double(n), s1, s2, s3, s4);
    p.min = mnf;
    p.max = mxf;
    p.zero = uint64_t(zeros);
}

// Pass 1 over a chunk with NaN/Inf: the same, skipping them, one value at a time.
void pass1WithNonFinite(const float *buf, int64_t count, int64_t cols, Pass1Chunk &p, float *rowAbsOut, float *colAbs)
{
    uint64_t n = 0;
    double sum = 0.0;
    for (int64_t r = 0; r < count; ++r) {
        const float *row = buf + r * cols;
        float rowAbs = 0.0f;
        for (int64_t c = 0; c < cols; ++c) {
            const float x = row[c];
            if (!std::isfinite(x)) {
                if (std::isnan(x))
                    ++p.nan;
                else
                    ++p.inf;
                continue;
            }
            ++n;
            sum += x;
            p.min = std::min(p.min, double(x));
            p.max = std::max(p.max, double(x));
            p.zero += x == 0.0f;
            const float a = std::fabs(x);
            rowAbs = std::max(rowAbs, a);
            colAbs[c] = std::max(colAbs[c], a);
        }
        rowAbsOut[r] = rowAbs;
    }
    if (n == 0)
        return;
    const double m = sum / double(n);
    double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
    for (int64_t i = 0; i < count * cols; ++i) {
        const float x = buf[i];
        if (!std::isfinite(x))
            continue;
        const double d = double(x) - m;
        const double d2 = d * d;
        s1 += d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    }
    p.moments = momentsAbout(m, double(n), s1, s2, s3, s4);
}

// 64-byte aligned storage for the float path's per-thread buffers: vectorised reductions may peel
// iterations to reach alignment, and the summation order must not depend on where a thread's buffer
// happened to land (results are identical for any thread count).
template <class T> struct Aligned64
{
    using value_type = T;
    Aligned64() = default;
    template <class U> Aligned64(const Aligned64<U> &) { }
    T *allocate(size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <class U> bool operator==(const Aligned64<U> &) const { return true; }
};
using FloatBuffer = std::vector<float, Aligned64<float>>;

void computeFromFloats(
    WeightStats &s, const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress)
{
    const int64_t rows = tensor.rows;
    const int64_t cols = tensor.cols;
    const int64_t chunkRows = detail::rowsPerChunk(cols, options.chunkElements);
    const int64_t chunks = (rows + chunkRows - 1) / chunkRows;
    const float *stored = storedFloatRows(model, tensor);
    // This chunk's rows: in place for stored F32, else decoded by the reader into the thread's buffer.
    const auto chunkRowsOf = [&](int64_t first, int64_t count, FloatBuffer &buffer) -> const float * {
        if (stored)
            return stored + first * cols;
        buffer.resize(size_t(count * cols));
        model.readRows(tensor, first, count, buffer.data());
        return buffer.data();
    };

    // ---- pass 1: moments, extremes, counts, per-channel absmax ----
    std::vector<Pass1Chunk> partial(static_cast<size_t>(chunks));
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel
        {
            FloatBuffer buffer;
            FloatBuffer colAbs(size_t(cols), 0.0f);
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    const float *buf = chunkRowsOf(first, count, buffer);
                    const int64_t n = count * cols;
                    int64_t nonFinite = 0;
#pragma omp simd reduction(+ : nonFinite)
                    for (int64_t i = 0; i < n; ++i)
                        nonFinite += isFiniteBits(buf[i]) ? 0 : 1;
                    Pass1Chunk &p = partial[size_t(chunk)];
                    float *rowAbs = s.rowAbsMax.data() + first; // rows are disjoint between chunks
                    if (nonFinite == 0)
                        pass1Finite(buf, count, cols, p, rowAbs, colAbs.data());
                    else
                        pass1WithNonFinite(buf, count, cols, p, rowAbs, colAbs.data());
                    progress.advance(double(n));
                });
            }
            std::lock_guard lock(mergeMutex);
            for (int64_t c = 0; c < cols; ++c)
                s.colAbsMax[size_t(c)] = std::max(s.colAbsMax[size_t(c)], colAbs[size_t(c)]);
        }
        errors.rethrow();
    }

    // Merge in chunk order: the same arithmetic whatever the thread count.
    Moments total;
    double mn = std::numeric_limits<double>::infinity();
    double mx = -std::numeric_limits<double>::infinity();
    for (const Pass1Chunk &p : partial) {
        total = mergeMoments(total, p.moments);
        mn = std::min(mn, p.min);
        mx = std::max(mx, p.max);
        s.nanCount += p.nan;
        s.infCount += p.inf;
        s.zeroCount += p.zero;
    }
    s.count = uint64_t(total.n);
    if (s.count == 0) {
        s.symlogHistogram.scale = 1.0;
        progress.advance(double(rows * cols)); // pass 2 has nothing to look at
        return;
    }
    setMoments(s, total, mn, mx);

    // ---- pass 2: histograms and outliers ----
    const Binners bins = prepareHistograms(s, options);
    const Binner &linBin = bins.linear;
    const SymlogBinner &logBin = bins.symlog;
    std::optional<SymlogTable> logTable;
    if (logBin.middle < 0 && rows * cols >= options.binTableMinElements)
        logTable.emplace(logBin, mn, mx);
    const auto symlogBinOf = [&](float x) { return logTable ? logTable->bin(x) : logBin.bin(x); };
    const bool findOutliers = s.stddev > 0.0;
    const double threshold = s.outlierThreshold;
    const double mean = s.mean;
    const double linLo = linBin.lo, linScale = linBin.scale, linLast = double(linBin.last);
    std::vector<Candidate> candidates;
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel
        {
            FloatBuffer buffer;
            std::vector<int32_t> linIndex(static_cast<size_t>(cols));
            // Four interleaved copies of each histogram (counter 4·bin + col % 4): most values fall in a
            // few central bins, and increments of one counter in a row wait on each other through memory.
            // One copy for very many bins (memory: copies × bins × 8 bytes per thread and histogram).
            const size_t nbins = size_t(options.histogramBins);
            const size_t copies = nbins <= 4096 ? 4 : 1;
            const size_t o1 = (copies - 1) & 1u, o2 = (copies - 1) & 2u, o3 = copies - 1; // lane offsets
            std::vector<uint64_t> lin(copies * nbins, 0);
            std::vector<uint64_t> lg(copies * nbins, 0);
            uint64_t outliers = 0;
            TopOutliers top(size_t(options.topOutliers));
            // Offers the row's outliers for the top-N list; counts them too when asked.
            const auto offerRow = [&](const float *row, int64_t r, bool count) {
                for (int64_t col = 0; col < cols; ++col) {
                    const float x = row[col];
                    if (!isFiniteBits(x))
                        continue;
                    const double dev = std::fabs(double(x) - mean);
                    if (dev > threshold) {
                        outliers += count ? 1 : 0;
                        top.offer({ dev, r, col, x });
                    }
                }
            };
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    const float *buf = chunkRowsOf(first, count, buffer);
                    const Pass1Chunk &p = partial[size_t(chunk)];
                    const bool allFinite = p.nan == 0 && p.inf == 0;
                    for (int64_t r = 0; r < count; ++r) {
                        const float *row = buf + r * cols;
                        if (!allFinite) {
                            for (int64_t col = 0; col < cols; ++col) {
                                const float x = row[col];
                                if (!isFiniteBits(x))
                                    continue;
                                ++lin[copies * size_t(linBin.bin(x))];
                                ++lg[copies * size_t(symlogBinOf(x))];
                            }
                            if (findOutliers)
                                offerRow(row, first + r, true);
                            continue;
                        }
                        // Binner::bin, branch-free so that it vectorises (the same arithmetic); the number
                        // of outliers in the row (counted in double: one vector type in the loop) and its
                        // largest deviation, so that rows which cannot enter the top-N list are not scanned.
                        double beyond = 0.0;
                        double rowDev = 0.0;
                        const double middle = double(std::max<int64_t>(linBin.middle, 0));
                        const bool degenerate = linBin.middle >= 0;
#pragma omp simd reduction(+ : beyond) reduction(max : rowDev)
                        for (int64_t col = 0; col < cols; ++col) {
                            const double x = double(row[col]);
                            double f = (x - linLo) * linScale;
                            f = f > 0.0 ? f : 0.0;
                            f = f < linLast ? f : linLast;
                            linIndex[size_t(col)] = int32_t(degenerate ? middle : f);
                            const double dev = std::fabs(x - mean);
                            beyond += dev > threshold ? 1.0 : 0.0;
                            rowDev = dev > rowDev ? dev : rowDev;
                        }
                        if (findOutliers && beyond > 0.0) {
                            outliers += uint64_t(beyond);
                            if (top.mayTake(rowDev))
                                offerRow(row, first + r, false);
                        }
                        int64_t col = 0;
                        for (; col + 4 <= cols; col += 4) {
                            ++lin[copies * size_t(linIndex[size_t(col)])];
                            ++lin[copies * size_t(linIndex[size_t(col + 1)]) + o1];
                            ++lin[copies * size_t(linIndex[size_t(col + 2)]) + o2];
                            ++lin[copies * size_t(linIndex[size_t(col + 3)]) + o3];
                        }
                        for (; col < cols; ++col)
                            ++lin[copies * size_t(linIndex[size_t(col)])];
                        if (logTable) {
                            const SymlogTable &table = *logTable;
                            for (col = 0; col + 4 <= cols; col += 4) {
                                ++lg[copies * size_t(table.bin(row[col]))];
                                ++lg[copies * size_t(table.bin(row[col + 1])) + o1];
                                ++lg[copies * size_t(table.bin(row[col + 2])) + o2];
                                ++lg[copies * size_t(table.bin(row[col + 3])) + o3];
                            }
                            for (; col < cols; ++col)
                                ++lg[copies * size_t(table.bin(row[col]))];
                        } else {
                            for (col = 0; col < cols; ++col)
                                ++lg[copies * size_t(logBin.bin(row[col]))];
                        }
                    }
                    progress.advance(double(count * cols));
                });
            }
            std::lock_guard lock(mergeMutex);
            for (size_t b = 0; b < nbins; ++b)
                for (size_t k = 0; k < copies; ++k) {
                    s.linearHistogram.counts[b] += lin[copies * b + k];
                    s.symlogHistogram.counts[b] += lg[copies * b + k];
                }
            s.outlierCount += outliers;
            candidates.insert(candidates.end(), top.items().begin(), top.items().end());
        }
        errors.rethrow();
    }
    keepTopOutliers(s, std::move(candidates), options.topOutliers);
}

WeightStats computeOne(const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress)
{
    WeightStats s;
    s.name = tensor.name;
    s.rows = tensor.rows;
    s.cols = tensor.cols;
    s.outlierSigma = options.outlierSigma;
    s.rowAbsMax.assign(size_t(std::max<int64_t>(tensor.rows, 0)), 0.0f);
    s.colAbsMax.assign(size_t(std::max<int64_t>(tensor.cols, 0)), 0.0f);
    s.linearHistogram.counts.assign(size_t(options.histogramBins), 0);
    s.symlogHistogram.counts.assign(size_t(options.histogramBins), 0);
    if (tensor.rows <= 0 || tensor.cols <= 0) {
        s.symlogHistogram.scale = 1.0;
        return s;
    }
    const std::optional<HalfCodec> codec = storedHalfCodes(model, tensor);
    if (codec && storedRowsMatchReader(model, tensor, *codec))
        computeFromCodes(s, tensor, *codec, options, progress);
    else
        computeFromFloats(s, model, tensor, options, progress);
    return s;
}

} // namespace

WeightStats computeWeightStats(
    const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress)
{
    validate(options);
    progress.setTotal(2.0 * double(std::max<int64_t>(tensor.numel(), 0)));
    return computeOne(model, tensor, options, progress);
}

std::vector<WeightStats> computeModelStats(const Model &model, const StatsOptions &options, Progress &progress)
{
    validate(options);
    // A tensor whose data object was already analysed (tied lm_head) copies that result instead of
    // reading the same bytes twice.
    const size_t n = model.tensors.size();
    std::vector<size_t> reuse(n, n); // index of the earlier tensor to copy, n when computed
    std::map<const TensorData *, size_t> firstWithData;
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const Tensor &t = model.tensors[i];
        if (t.data) {
            const auto [it, inserted] = firstWithData.emplace(t.data.get(), i);
            const Tensor &source = model.tensors[it->second];
            if (!inserted && source.rows == t.rows && source.cols == t.cols) {
                reuse[i] = it->second;
                continue;
            }
        }
        total += 2.0 * double(std::max<int64_t>(t.numel(), 0));
    }
    progress.setTotal(total);

    std::vector<WeightStats> results;
    results.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const Tensor &t = model.tensors[i];
        progress.throwIfCancelled();
        if (reuse[i] < n) {
            WeightStats copy = results[reuse[i]];
            copy.name = t.name;
            results.push_back(std::move(copy));
            continue;
        }
        progress.message("Statistics: " + t.name);
        results.push_back(computeOne(model, t, options, progress));
    }
    return results;
}

} // namespace qs::core
