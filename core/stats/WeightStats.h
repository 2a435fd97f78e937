#pragma once
// Per-tensor weight statistics: moments, histograms, outliers and per-channel absolute maxima.
//
// Design (why two passes): outliers are defined as |x - mean| > k·σ and the linear histogram spans
// [min, max], so mean, σ, min and max must be known before either can be built exactly. A single pass
// could only approximate both (a provisional fine histogram cannot tell exactly which values lie beyond
// k·σ). computeWeightStats() therefore works in two steps, in one of two ways:
//
// Stored F16/BF16 tensors (the common case; the stored bytes in canonical row order, see below): every
// element is one of 65536 codes, so
//   pass 1 reads the stored bytes once, without converting them to float, and only counts codes (a
//          per-thread 64K-entry table) and keeps per-row and per-column absmax in code space (for finite
//          codes, code & 0x7FFF orders like |value|: vectorised 16-bit integer maxima);
//   then   count, NaN/Inf/zero counts, min/max, the moments, both histograms and the outlier count follow
//          exactly from the code counts, each distinct value converted once and visited in code order;
//   pass 2 finds the top-N outlier positions: the counts give the deviation of the N-th strongest
//          outlier, and only rows whose absmax can reach it (|x - mean| <= rowAbsMax + |mean|) are read
//          again, usually a handful.
// The stored bytes are used only when the tensor exposes them (TensorData::storedData) and they are in
// canonical row order: readers keep stored order except for q/k projections and their biases in GGUF and
// llama2.c (Meta's interleaved order); safetensors never permutes. The first rows read through the reader
// are compared with the stored codes as a check; any mismatch uses the float path.
//
// Any other tensor (F32, GGUF block formats, permuted q/k): two streaming passes over float32 rows:
//   pass 1: count, min/max, mean and central moments M2..M4, NaN/Inf/zero counts, per-row and
//           per-column absmax;
//   pass 2: linear and symmetric-log histograms, outlier count and the top-N outlier positions.
// Each pass is an OpenMP loop over row chunks (about StatsOptions::chunkElements values each). Stored F32
// tensors in canonical row order are read in place; any other tensor is read as float32 through
// Model::readRows into the thread's own chunk buffer, so memory stays bounded by threads × chunk size plus
// the per-channel vectors, never a copy of the whole tensor (such a tensor is decoded twice; mapped pages
// are usually still in the page cache for the second pass). Chunks without NaN/Inf take vectorised loops
// (omp simd); the symmetric-log bin of a big tensor's values comes from a table indexed by the top 16 bits
// of the float, exact by the edge rule (see SymlogTable in WeightStatsFloats.cpp; the code-count path is in WeightStatsCodes.cpp).
//
// Numerics: float path: within a chunk the moments are taken about the chunk's own mean in double (two
// loops over the hot buffer, with the exact correction for the rounding of that mean); chunks are
// combined with the pairwise update of Chan et al. / Pébay for M2, M3, M4. Code path: the same two-loop
// scheme over the distinct values weighted by their counts. Chunk boundaries depend only on the shape,
// chunks are merged in order and code counts are integers, so the results are the same for any number of
// threads (the two paths agree to rounding of the summation order; histograms, counts, extremes, absmax
// and outlier positions are identical).
//
// Non-finite values (NaN, ±Inf) are counted in nanCount/infCount and ignored by every other field; the
// caller turns non-zero counts into per-tensor warnings.

#include <cstdint>
#include <string>
#include <vector>

#include "common/Progress.h"
#include "model/Model.h"

namespace qs::core {

struct StatsOptions
{
    int histogramBins = 256;
    double outlierSigma = 6.0; // k: an outlier has |x - mean| > k·σ
    int topOutliers = 32; // how many outlier positions to keep, largest |x - mean| first
    int64_t chunkElements = 1 << 16; // values per work chunk (rounded to whole rows); tests make it small
    // Float path: tensors with at least this many values find their symmetric-log bin by table lookup
    // (same bins, exact; the table costs about as much as 10^5 values binned without it). Tests set 0.
    int64_t binTableMinElements = 1 << 18;

    static StatsOptions defaults() { return {}; }
};

// Bins uniform over [lo, hi] in the histogram's own coordinate: the value itself for the linear
// histogram (scale == 0), y = symlogForward(value, scale) for the symmetric-log one. With
// w = (hi - lo) / bins:
// - linear: a value x goes to floor((x - lo) · (bins / (hi - lo))), clamped to [0, bins - 1];
// - symmetric-log: bins are defined by their edges in value space, E[i] = symlogInverse(lo + i·w, c);
//   x goes to the number of interior edges E[1..bins-1] that are <= x. (Same bins as transforming
//   every value, but the edges are exact and need no logarithm per value.)
// A degenerate range (all finite values equal) is widened for display and its values are counted in
// bin bins / 2.
struct Histogram
{
    double lo = 0.0;
    double hi = 0.0;
    double scale = 0.0; // symmetric-log only: the constant c of symlogForward; 0 for the linear histogram
    std::vector<uint64_t> counts;
};

// Symmetric-log transform used by WeightStats::symlogHistogram: sign(x)·log1p(|x| / c). Linear for
// |x| << c and logarithmic beyond, so the bulk and the far tails fit on one axis.
double symlogForward(double x, double c);
double symlogInverse(double y, double c); // sign(y)·c·expm1(|y|): the value whose transform is y

// The bins + 1 bin edges in value space (lo + i·w, or symlogInverse of it), for plotting bars.
std::vector<double> histogramEdges(const Histogram &h);

struct OutlierPosition
{
    int64_t row = 0;
    int64_t col = 0;
    float value = 0.0f;
};

struct WeightStats
{
    std::string name; // canonical tensor name
    int64_t rows = 0;
    int64_t cols = 0;

    uint64_t count = 0; // finite values: every field below is over these only
    uint64_t nanCount = 0;
    uint64_t infCount = 0;
    uint64_t zeroCount = 0; // exact zeros (pruned or padded weights)

    // All 0 when count == 0.
    double min = 0.0;
    double max = 0.0;
    double absMax = 0.0;
    double mean = 0.0;
    double stddev = 0.0; // population standard deviation σ (divides by count)
    double skewness = 0.0; // 0 when σ == 0
    double kurtosis = 0.0; // excess kurtosis (0 for a normal distribution); 0 when σ == 0

    // Linear bins over [min, max]. When min == max the range is widened to [v - h, v + h] with
    // h = |v| / 2 (or 0.5 when v == 0) for display, and every value is counted in bin bins / 2.
    Histogram linearHistogram;
    // Uniform bins over [symlogForward(min, c), symlogForward(max, c)] (widened like the linear one
    // when equal). c = σ / 16, so the central ±σ band spans about ±2.8 units of the axis while a 30σ
    // outlier sits near 6.2: the bulk and the tail share the plot. When σ == 0, c = |mean| / 16, or 1
    // when the tensor is all zeros.
    Histogram symlogHistogram;

    double outlierSigma = 0.0; // k used
    double outlierThreshold = 0.0; // k·σ; no value is an outlier when σ == 0
    uint64_t outlierCount = 0;
    double outlierFraction = 0.0; // outlierCount / count
    // Up to topOutliers outliers, by |x - mean| descending; ties by row, then col.
    std::vector<OutlierPosition> topOutliers;

    std::vector<float> rowAbsMax; // per output channel (row), size rows; 0 for a row without finite values
    std::vector<float> colAbsMax; // per input channel (column), size cols
};

// Statistics of one tensor. Progress: setTotal(2 · numel) and advance(chunk values) per chunk and pass;
// throws Cancelled between chunks, Error for invalid options or reader failures.
WeightStats computeWeightStats(
    const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress);

// Statistics of every tensor of the model, in model.tensors order. Progress spans the whole model
// (one setTotal). A tied tensor (lm_head sharing the embedding) reuses the statistics of the tensor whose
// data it shares instead of reading it again.
std::vector<WeightStats> computeModelStats(const Model &model, const StatsOptions &options, Progress &progress);

} // namespace qs::core
