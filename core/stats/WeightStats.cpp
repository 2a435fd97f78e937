#include "stats/WeightStats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>

#include "common/Error.h"
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

    const int64_t rows = tensor.rows;
    const int64_t cols = tensor.cols;
    if (rows <= 0 || cols <= 0) {
        s.symlogHistogram.scale = 1.0;
        return s;
    }
    const int64_t chunkRows = detail::rowsPerChunk(cols, options.chunkElements);
    const int64_t chunks = (rows + chunkRows - 1) / chunkRows;

    // ---- pass 1: moments, extremes, counts, per-channel absmax ----
    std::vector<Pass1Chunk> partial(static_cast<size_t>(chunks));
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel
        {
            std::vector<float> buffer;
            std::vector<float> colAbs(size_t(cols), 0.0f);
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    buffer.resize(size_t(count * cols));
                    model.readRows(tensor, first, count, buffer.data());

                    Pass1Chunk &p = partial[size_t(chunk)];
                    uint64_t n = 0;
                    double sum = 0.0;
                    for (int64_t r = 0; r < count; ++r) {
                        const float *row = buffer.data() + r * cols;
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
                            colAbs[size_t(c)] = std::max(colAbs[size_t(c)], a);
                        }
                        s.rowAbsMax[size_t(first + r)] = rowAbs; // rows are disjoint between chunks
                    }
                    if (n > 0) {
                        // Second sweep over the hot buffer: moments about the chunk mean m, then the exact
                        // shift to the true mean m + e (e is the rounding left in m, tiny but free to fix).
                        const double m = sum / double(n);
                        double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
                        for (const float x : buffer) {
                            if (!std::isfinite(x))
                                continue;
                            const double d = double(x) - m;
                            const double d2 = d * d;
                            s1 += d;
                            s2 += d2;
                            s3 += d2 * d;
                            s4 += d2 * d2;
                        }
                        const double nn = double(n);
                        const double e = s1 / nn;
                        Moments &mo = p.moments;
                        mo.n = nn;
                        mo.mean = m + e;
                        mo.m2 = std::max(0.0, s2 - e * s1);
                        mo.m3 = s3 - 3.0 * e * s2 + 3.0 * e * e * s1 - nn * e * e * e;
                        mo.m4 = std::max(
                            0.0, s4 - 4.0 * e * s3 + 6.0 * e * e * s2 - 4.0 * e * e * e * s1 + nn * e * e * e * e);
                    }
                    progress.advance(double(count * cols));
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
        return s;
    }
    s.min = mn;
    s.max = mx;
    s.absMax = std::max(std::fabs(mn), std::fabs(mx));
    if (mn == mx) {
        // A constant tensor: the merged mean may be off by rounding, and a σ of 1e-20 would turn every
        // value into a 6σ "outlier". Set the exact answer.
        s.mean = mn;
        s.stddev = 0.0;
    } else {
        s.mean = total.mean;
        s.stddev = std::sqrt(total.m2 / total.n);
        if (total.m2 > 0.0) {
            s.skewness = std::sqrt(total.n) * total.m3 / std::pow(total.m2, 1.5);
            s.kurtosis = total.n * total.m4 / (total.m2 * total.m2) - 3.0;
        }
    }

    // ---- pass 2: histograms and outliers ----
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
    const Binner linBin(linLo, linHi, linDegenerate, options.histogramBins);
    const SymlogBinner logBin(s.symlogHistogram, logDegenerate);

    const bool findOutliers = s.stddev > 0.0;
    const double threshold = options.outlierSigma * s.stddev;
    s.outlierThreshold = threshold;
    const double mean = s.mean;
    std::vector<Candidate> candidates;
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel
        {
            std::vector<float> buffer;
            std::vector<uint64_t> lin(size_t(options.histogramBins), 0);
            std::vector<uint64_t> lg(size_t(options.histogramBins), 0);
            uint64_t outliers = 0;
            TopOutliers top(size_t(options.topOutliers));
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    buffer.resize(size_t(count * cols));
                    model.readRows(tensor, first, count, buffer.data());
                    for (int64_t r = 0; r < count; ++r) {
                        const float *row = buffer.data() + r * cols;
                        for (int64_t col = 0; col < cols; ++col) {
                            const float x = row[col];
                            if (!std::isfinite(x))
                                continue;
                            const double v = x;
                            ++lin[size_t(linBin.bin(v))];
                            ++lg[size_t(logBin.bin(v))];
                            if (findOutliers) {
                                const double dev = std::fabs(v - mean);
                                if (dev > threshold) {
                                    ++outliers;
                                    top.offer({ dev, first + r, col, x });
                                }
                            }
                        }
                    }
                    progress.advance(double(count * cols));
                });
            }
            std::lock_guard lock(mergeMutex);
            for (size_t b = 0; b < lin.size(); ++b) {
                s.linearHistogram.counts[b] += lin[b];
                s.symlogHistogram.counts[b] += lg[b];
            }
            s.outlierCount += outliers;
            candidates.insert(candidates.end(), top.items().begin(), top.items().end());
        }
        errors.rethrow();
    }
    std::sort(candidates.begin(), candidates.end(), strongerOutlier);
    if (candidates.size() > size_t(options.topOutliers))
        candidates.resize(size_t(options.topOutliers));
    s.topOutliers.reserve(candidates.size());
    for (const Candidate &cand : candidates)
        s.topOutliers.push_back({ cand.row, cand.col, cand.value });
    s.outlierFraction = double(s.outlierCount) / double(s.count);
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
