#include "stats/WeightStats.h"

#include <cmath>
#include <map>

#include "common/Error.h"
#include "stats/WeightStatsDetail.h"

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
    if (!detail::computeFromStoredCodes(s, model, tensor, options, progress))
        detail::computeFromFloats(s, model, tensor, options, progress);
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