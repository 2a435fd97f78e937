#pragma once
// Synthetic Llama-shaped Hugging Face folders for demos, tests and benchmarks when no real checkpoint is
// at hand. The weights imitate what matters for quantization in real LLMs:
// - heavy tails: Student-t with 5 degrees of freedom (excess kurtosis 6), scaled to σ = 1/sqrt(fan_in)
//   (the embedding and lm_head use 1/sqrt(hidden));
// - outlier residual-stream channels: a few hidden dimensions whose *input columns* are multiplied by
//   10–30× in q/k/v/gate/up of every block (the same columns everywhere, as real models' outlier
//   dimensions are a property of the residual stream), and whose *output rows* of o_proj and down_proj
//   (the writers into those dimensions) are multiplied by a third of that;
// - RMSNorm weights around 1 (1 + 0.05·N(0,1)).
// Random numbers come from our own generator (xoshiro256** seeded with splitmix64, Marsaglia's polar
// method with a log written here in plain arithmetic), never from <random>'s distributions or libm's
// transcendental functions, so a seed gives the same bytes with any standard library. Each row draws from
// its own stream (seed, tensor name, row), so the bytes also do not depend on the thread count or the
// order tensors are written in.
//
// Output: config.json (model_type llama, the keys of formats.md 1.8, plus "quantscope_synthetic": true,
// "quantscope_preset", "quantscope_seed" and "quantscope_outlier_channels"), generation_config.json and
// model.safetensors, or model-0000i-of-0000n.safetensors + model.safetensors.index.json when the weights
// exceed maxShardBytes. No tokenizer. Generation streams tensor by tensor in row chunks (bounded memory
// even for the 2.2 GB "1b" preset) into "<outDir>.tmp-XXXXXX", renamed to outDir only when complete.

#include <cstdint>
#include <string>
#include <vector>

#include "common/Progress.h"

namespace qs::core {

struct DemoPreset
{
    std::string name; // "tiny" | "small" | "1b"
    int hiddenSize = 0;
    int numLayers = 0;
    int numHeads = 0;
    int numKvHeads = 0;
    int intermediateSize = 0;
    int vocabSize = 0;
    int maxPositions = 0;
    std::string description;
};

const std::vector<DemoPreset> &demoPresets();
const DemoPreset *findDemoPreset(const std::string &name); // nullptr when unknown

struct DemoOptions
{
    std::string preset = "tiny";
    std::string dtype = "f16"; // f32 | f16 | bf16
    uint64_t seed = 1;
    uint64_t maxShardBytes = 2000000000; // split the weights into shards of at most this; 0 = never split

    static DemoOptions defaults() { return {}; }
};

struct DemoOutlierChannel
{
    int channel = 0; // hidden dimension (column of q/k/v/gate/up, row of o/down)
    float columnScale = 1.0f; // 10–30
    float rowScale = 1.0f; // columnScale / 3
};

// The planted outlier channels for these options, ascending by channel (the same in every block).
// Throws Error for an unknown preset.
std::vector<DemoOutlierChannel> demoOutlierChannels(const DemoOptions &options);

// Writes the folder. outDir is created (with its parents); if it exists it must be empty or an earlier
// demo model (which is replaced), otherwise Error. Throws Error for unknown preset/dtype or I/O failures,
// Cancelled when cancelled; either way nothing is left behind and an earlier demo at outDir is kept.
// Progress: setTotal(weight bytes), advance per row chunk.
void writeDemoModel(const std::string &outDir, const DemoOptions &options, Progress &progress);

// True when dir holds a config.json with "quantscope_synthetic": true.
bool isDemoModelFolder(const std::string &dir);

} // namespace qs::core
