#pragma once
// Internal to the weight statistics (WeightStats*.cpp): the moment arithmetic, binning, outlier ranking
// and result assembly that the code-count path (WeightStatsCodes.cpp) and the float path
// (WeightStatsFloats.cpp) share. Not part of the public core API; see WeightStats.h for the design.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/Progress.h"
#include "model/Model.h"
#include "stats/WeightStats.h"

namespace qs::core::detail {


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
inline Moments mergeMoments(const Moments &a, const Moments &b)
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
inline bool strongerOutlier(const Candidate &a, const Candidate &b)
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
inline bool widenDegenerate(double &lo, double &hi)
{
    if (lo < hi)
        return false;
    const double h = lo == 0.0 ? 0.5 : std::fabs(lo) * 0.5;
    lo -= h;
    hi += h;
    return true;
}

// Mean, σ, skewness and kurtosis from the merged moments (both paths).
inline void setMoments(WeightStats &s, const Moments &total, double mn, double mx)
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
inline Moments momentsAbout(double m, double nn, double s1, double s2, double s3, double s4)
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
inline Binners prepareHistograms(WeightStats &s, const StatsOptions &options)
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

inline void keepTopOutliers(WeightStats &s, std::vector<Candidate> candidates, int topOutliers)
{
    std::sort(candidates.begin(), candidates.end(), strongerOutlier);
    if (candidates.size() > size_t(topOutliers))
        candidates.resize(size_t(topOutliers));
    s.topOutliers.reserve(candidates.size());
    for (const Candidate &cand : candidates)
        s.topOutliers.push_back({ cand.row, cand.col, cand.value });
    s.outlierFraction = double(s.outlierCount) / double(s.count);
}

// The code-count path for stored F16/BF16 tensors in canonical row order; returns false (and computes
// nothing) when the tensor does not qualify.
bool computeFromStoredCodes(
    WeightStats &s, const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress);

// The float path: any tensor, through float32 rows.
void computeFromFloats(
    WeightStats &s, const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress);

} // namespace qs::core::detail
