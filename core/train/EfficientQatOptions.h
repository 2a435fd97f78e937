#pragma once
// Parameters of EfficientQAT (specs/algorithms.md §7) and the training-loss event the pipeline forwards
// to its callers (the GUI plots it live). Kept apart from EfficientQat.h so that the method registry and
// the pipeline header only pull in these plain structs.

#include <cstdint>
#include <functional>
#include <string>

namespace qs::core {

struct EfficientQatOptions
{
    // The quantizer (per layer; the pipeline takes them from each layer's config).
    int bits = 2;
    int groupSize = 64;     // −1: one group per output row
    bool symmetric = false; // true: zero fixed at 2^(b−1) (grid sym_gptq), only scales trained

    bool blockAp = true; // phase 1: block-wise training of weights, norms, scales and zeros
    bool e2eQp = true;   // phase 2: end-to-end training of the scales on the LM loss

    // Block-AP (§7.1 defaults: 2 epochs, batch 2, AdamW wd 0, lr 1e-4 for s/z and 2e-5 (2-bit) or 1e-5
    // (3/4-bit) for W, cosine to lr/20 over all steps).
    int blockApEpochs = 2;
    int blockApBatch = 2;
    double blockApLr = 2e-5;   // weights and RMSNorm γ
    double blockApQpLr = 1e-4; // scales and zeros
    double blockApWeightDecay = 0.0;
    bool trainNorms = true; // RMSNorm γ in front of trained linears (the reference trains every "weight")

    // E2E-QP (§7.2 defaults: 1 epoch, batch 32, lr 2e-5 (2-bit) or 1e-5, cosine with 3% warm-up,
    // max grad norm 0.3, AdamW wd 0). Codes and zeros frozen; scales trained.
    int e2eEpochs = 1;
    int e2eBatch = 32;
    double e2eLr = 2e-5;
    double e2eMaxGradNorm = 0.3; // 0: no clipping
    double e2eWarmupRatio = 0.03;

    uint64_t seed = 0; // sample order per epoch

    static EfficientQatOptions defaults() { return {}; }
};

enum class TrainingLossKind : uint8_t {
    Step,    // the loss of one optimiser step's batch, before the update
    Initial, // over all calibration samples before training (Block-AP: the RTN-initialised block)
    Final,   // over all calibration samples after training (Block-AP: the baked block)
};

struct TrainingLossEvent
{
    std::string phase; // "block_ap" | "e2e_qp"
    int block = -1;    // Block-AP: the block; E2E-QP: −1
    int epoch = 0;
    int step = 0;       // 0-based within the phase (per block for Block-AP); −1 for Initial, totalSteps for Final
    int totalSteps = 0;
    double loss = 0.0;  // Block-AP: MSE against the float block's output; E2E-QP: mean next-token cross-entropy
    double lr = 0.0;    // weights' learning rate (Block-AP) / scales' (E2E-QP) at that step
    TrainingLossKind kind = TrainingLossKind::Step;
};

using TrainingLossCallback = std::function<void(const TrainingLossEvent &)>;

} // namespace qs::core
