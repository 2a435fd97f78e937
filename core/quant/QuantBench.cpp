#include "quant/QuantBench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "common/Error.h"
#include "quant/Gptq.h"
#include "quant/QuantMetrics.h"
#include "quant/Rtn.h"
#include "quant/SyntheticData.h"

namespace qs::core {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

} // namespace

QuantBenchResult benchGptq(const QuantBenchOptions &o, Progress &progress)
{
    if (o.shapes.empty() || o.tokens < 1 || o.rtnRepeats < 1)
        throw Error("bench gptq: need at least one shape, one token and one RTN run");
    for (const auto &[rows, cols] : o.shapes)
        if (rows < 1 || cols < 1)
            throw Error("bench gptq: bad shape " + std::to_string(rows) + " x " + std::to_string(cols));

    QuantBenchResult res;
    res.threads = omp_get_max_threads();
    res.bits = o.bits;
    res.groupSize = o.groupSize;
    GptqOptions go;
    go.spec = QuantSpec{ GridId::MinMax, o.bits, o.groupSize, 1 };
    go.actOrder = o.actOrder;
    res.grid = gridInfo(go.spec.grid).name;

    double total = 0.0;
    for (const auto &shape : o.shapes)
        total += double(shape.second);
    progress.setTotal(total);

    std::map<int64_t, Eigen::MatrixXd> hessians; // by column count
    int64_t largest = 0;
    std::vector<float> largestW;
    for (size_t li = 0; li < o.shapes.size(); ++li) {
        const auto [rows, cols] = o.shapes[li];
        GptqBenchLayer L;
        L.rows = rows;
        L.cols = cols;
        L.tokens = o.tokens;
        progress.message("bench gptq: " + std::to_string(rows) + " x " + std::to_string(cols));
        auto hit = hessians.find(cols);
        if (hit == hessians.end()) {
            const auto t0 = Clock::now();
            SyntheticInputOptions so;
            so.tokens = o.tokens;
            so.channels = cols;
            so.seed = o.seed + uint64_t(cols);
            const std::vector<float> x = syntheticInputs(so);
            hit = hessians.emplace(cols, gramMatrix(x.data(), o.tokens, cols)).first;
            L.hessianSeconds = since(t0);
        }
        progress.throwIfCancelled();
        const Eigen::MatrixXd &H = hit->second;
        const std::vector<float> w = syntheticWeights(rows, cols, o.seed + uint64_t(li) * 7919u);
        const WeightView wv{ w.data(), rows, cols };

        auto t0 = Clock::now();
        const GptqHessian prepared = prepareGptqHessian(H, go, "bench");
        L.prepareSeconds = since(t0);
        progress.throwIfCancelled();
        t0 = Clock::now();
        const GptqResult g = quantizeGptq(wv, prepared, go, progress, "bench");
        L.quantizeSeconds = since(t0);
        L.seconds = L.prepareSeconds + L.quantizeSeconds;
        L.loss = g.loss;
        L.percDampUsed = g.percDampUsed;
        L.deadColumns = g.deadColumns;

        const QuantizedTensor rtn = quantizeRtn(wv, go.spec, "bench");
        L.relErrorGptq = layerError(w.data(), g.tensor.dequantized.data(), rows, cols, &H, o.errorRows).relOutputError;
        L.relErrorRtn = layerError(w.data(), rtn.dequantized.data(), rows, cols, &H, o.errorRows).relOutputError;
        res.layers.push_back(L);
        if (rows * cols > largest) {
            largest = rows * cols;
            largestW = w;
            res.rtnRows = rows;
            res.rtnCols = cols;
        }
        progress.throwIfCancelled();
    }

    progress.message("bench gptq: RTN throughput");
    const WeightView wv{ largestW.data(), res.rtnRows, res.rtnCols };
    res.rtnBytes = uint64_t(largest) * sizeof(float);
    res.rtnSeconds = 1e300;
    for (int i = 0; i < o.rtnRepeats; ++i) {
        const auto t0 = Clock::now();
        const QuantizedTensor t = quantizeRtn(wv, go.spec, "bench");
        res.rtnSeconds = std::min(res.rtnSeconds, since(t0));
        if (t.codes.empty())
            throw Error("bench gptq: RTN produced nothing");
        progress.throwIfCancelled();
    }
    res.rtnGBps = double(res.rtnBytes) / res.rtnSeconds / 1e9;

    std::vector<float> out(static_cast<size_t>(largest));
    const Grid grid = go.spec.makeGrid();
    res.rtnFakeSeconds = 1e300;
    for (int i = 0; i < o.rtnRepeats + 1; ++i) { // the first run touches the pages and is not counted
        const auto t0 = Clock::now();
        fakeQuantizeRtn(largestW.data(), res.rtnRows, res.rtnCols, grid, go.spec.groupSize, out.data());
        if (i > 0)
            res.rtnFakeSeconds = std::min(res.rtnFakeSeconds, since(t0));
        progress.throwIfCancelled();
    }
    res.rtnFakeGBps = double(res.rtnBytes) / res.rtnFakeSeconds / 1e9;
    return res;
}

} // namespace qs::core
