#pragma once
// Benchmark of the forward pass for the CLI ("bench forward MODEL"): prompt-processing throughput, i.e.
// one whole-sequence pass over ctx tokens with a fresh context, producing the last position's logits (as
// llama-bench's pp test does), at each requested context length.
//
// Per context: one warm-up pass first (it also fills the weight cache, so the timed passes measure the
// steady state of an evaluation, not the first conversion), then passes repeated until at least
// minSeconds have elapsed (and at least minRuns). Tokens are a fixed pseudo-random sequence over the
// vocabulary. Peak RSS is the process's high-water mark (getrusage ru_maxrss) after all passes, so it
// includes the model mapping pages touched and whatever the process held before.

#include <cstdint>
#include <string>
#include <vector>

#include "common/Progress.h"

namespace qs::core {

struct ForwardBenchOptions
{
    std::vector<int> contexts { 128, 512 };
    double minSeconds = 1.0;
    int minRuns = 2;
    int threads = 0; // 0 = OpenMP default
    uint64_t weightCacheBytes = uint64_t(1) << 30;

    static ForwardBenchOptions defaults() { return {}; }
};

struct ForwardBenchPoint
{
    int ctx = 0;
    int runs = 0; // timed passes (warm-up excluded)
    double seconds = 0.0; // total over the timed passes
    double tokensPerSecond = 0.0;
    double firstPassSeconds = 0.0; // the warm-up pass (includes weight conversion when not yet cached)
};

struct ForwardBenchResult
{
    std::string format;
    int threads = 0;
    int64_t parameters = 0;
    double openSeconds = 0.0;
    uint64_t weightCacheBytes = 0; // budget
    uint64_t cachedBytes = 0; // what the cache held at the end
    std::vector<ForwardBenchPoint> points;
    uint64_t peakRssBytes = 0;
};

// Throws Error when the model cannot be opened or run, Cancelled when cancelled.
// Progress: setTotal(number of contexts), advance per context.
ForwardBenchResult benchForward(const std::string &modelPath, const ForwardBenchOptions &options, Progress &progress);

uint64_t peakRssBytes(); // getrusage(RUSAGE_SELF).ru_maxrss in bytes

} // namespace qs::core
