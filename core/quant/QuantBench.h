#pragma once
// Benchmark of the GPTQ layer quantizer and of RTN (house style, practice 13), for
// `quantscope-cli bench gptq`. Prints nothing: it returns the figures for the CLI to show.
//
// Per layer shape (default 4096×4096 and 11008×4096, the Llama-7B q/k/v/o and gate/up sizes): inputs are
// synthetic (SyntheticData.h: correlated normal tokens with 3 outlier channels and 1 dead channel),
// H = XᵀX over `tokens` tokens (generated once per column count, not timed in the layer figure), weights
// normal. The layer figure is prepareGptqHessian (dead columns, damping, factorization) plus
// quantizeGptq, 4-bit g128 by default. The RTN baseline error and GPTQ's on the same H are reported for the
// first `errorRows` rows as a sanity check (GPTQ should be well below RTN).
// RTN throughput: quantizeRtn of the largest weight with the same grid, best of `rtnRepeats` runs,
// in GB/s of float32 weights (1 GB = 1e9 bytes); and the same for fakeQuantizeRtn into a reused buffer.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/Progress.h"

namespace qs::core {

struct QuantBenchOptions
{
    std::vector<std::pair<int64_t, int64_t>> shapes{ { 4096, 4096 }, { 11008, 4096 } }; // rows × cols
    int tokens = 2048;
    int bits = 4;
    int groupSize = 128;
    bool actOrder = false;
    uint64_t seed = 1;
    int rtnRepeats = 3;
    int64_t errorRows = 256;

    static QuantBenchOptions defaults() { return {}; }
};

struct GptqBenchLayer
{
    int64_t rows = 0;
    int64_t cols = 0;
    int tokens = 0;
    double hessianSeconds = 0.0;  // building H = XᵀX (shared by layers with the same cols; 0 when reused)
    double prepareSeconds = 0.0;  // dead columns, damping, factorization
    double quantizeSeconds = 0.0; // the column loop
    double seconds = 0.0;         // prepare + quantize: the per-layer figure
    double loss = 0.0;
    double percDampUsed = 0.0;
    int deadColumns = 0;
    double relErrorGptq = 0.0;    // ‖ΔW X‖²/‖W X‖² over the first errorRows rows
    double relErrorRtn = 0.0;
};

struct QuantBenchResult
{
    int threads = 0;
    int bits = 0;
    int groupSize = 0;
    std::string grid;
    std::vector<GptqBenchLayer> layers;
    int64_t rtnRows = 0;
    int64_t rtnCols = 0;
    uint64_t rtnBytes = 0;
    double rtnSeconds = 0.0; // best run of quantizeRtn (a fresh QuantizedTensor each time)
    double rtnGBps = 0.0;
    // fakeQuantizeRtn into a reused buffer (no codes, no fresh pages): the arithmetic alone. quantizeRtn's
    // figure is lower because it allocates and first touches codes + dequantized (1.25× the input).
    double rtnFakeSeconds = 0.0;
    double rtnFakeGBps = 0.0;
};

// Throws Cancelled when cancelled; Error on bad options.
QuantBenchResult benchGptq(const QuantBenchOptions &options, Progress &progress);

} // namespace qs::core
