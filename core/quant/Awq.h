#pragma once
// AWQ (algorithms.md §5): activation-aware per-input-channel scaling before group-wise RTN, for the
// linears that share one input (q/k/v, gate/up, or o / down alone).
//
// 1. Scale search: μ_j = mean over tokens of |x_j|; for α ∈ {0, 1/n, …, (n−1)/n}
//        s = normalise(clamp(μ^α, 1e-4)),  normalise(s) = s / sqrt(max(s)·min(s))
//    every linear becomes Q(W·diag(s))·diag(s)⁻¹ (Q = group-wise RTN on the grid) and the module that
//    consumes the linears is run on those candidate weights; the loss is the mean squared difference from
//    the module's output with the original weights. The α with the smallest loss wins (the first one on
//    ties; α = 0 gives s ≡ 1 exactly, i.e. plain RTN, so the chosen loss ≤ the RTN loss).
// 2. Apply: W[:, j] *= s_j for every linear; 1/s_j is folded into the producer of the input (normFold).
// 3. Clipping search (each linear except q/k unless clipQK): for every row and group, max_val =
//    m·(1 − i/clipGrid), i = 0 … ⌊maxShrink·clipGrid⌋ − 1 (m = the group's absmax), clamp the group to
//    ±max_val, fake-quantize, and keep the max_val with the smallest mean squared error of the group's
//    partial dot products Σ_{j∈group} x_j·w_j over ≤ clipTokens evenly strided tokens of the SCALED inputs
//    X/s. i = 0 is the unclipped group, so the result is never worse than no clipping.
//    The MSE is evaluated as δᵀ G δ / T with the group's Gram matrix G = X_gᵀX_g (same value as summing the
//    partial products token by token, without the T factor in the inner loop).
// 4. Group-wise RTN of the scaled (and clipped) weights on the grid; s is recorded as the tensor's input
//    scales (provenance, and effectiveWeights() divides it back out).
//
// The loss module is a callback so the pipeline can supply the real attention/MLP forward (with mask,
// positions and rotary embedding reproduced exactly, §5.4). linearOutputsModule() is the simple default:
// the concatenated outputs X·W_iᵀ of the linears themselves.

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/Progress.h"
#include "model/Model.h"
#include "quant/ActivationQuant.h"
#include "quant/QuantizedTensor.h"
#include "quant/Rtn.h"

namespace qs::core {

struct AwqOptions
{
    QuantSpec spec{GridId::MinMaxAwq, 4, 128, 1}; // groupSize −1 or > 0
    int nGrid = 20;          // α grid size
    bool clip = true;
    double maxShrink = 0.5;  // candidates i < ⌊maxShrink·clipGrid⌋: down to 0.55·absmax at the defaults
    int clipGrid = 20;
    int clipTokens = 512;
    bool clipQK = false;     // the reference skips q_proj/k_proj (their product QKᵀ amplifies clipping)

    static AwqOptions defaults() { return {}; }
};

struct AwqLinear
{
    WeightView weight;
    TensorRole role = TensorRole::O; // Q and K are excluded from clipping unless clipQK
    std::string name;
};

// Maps candidate weights (one row-major rows_i × cols matrix per linear, in the ORIGINAL input basis) to the
// module output (any layout, the same size on every call). Called once for the reference and once per α.
using AwqModuleFn = std::function<std::vector<float>(const std::vector<std::vector<float>> &weights)>;

// The default loss module: concatenated X·W_iᵀ (tokens × rows_i each). Holds x by pointer: x must outlive it.
AwqModuleFn linearOutputsModule(const ActivationView &x);

// μ_j = mean over tokens of |x_j| (double accumulation).
std::vector<float> meanAbsPerChannel(const ActivationView &x);

// normalise(clamp(μ^α, 1e-4)); α = 0 gives exactly 1 everywhere.
std::vector<float> awqScalesForAlpha(std::span<const float> meanAbs, double alpha);

struct AwqScaleSearch
{
    std::vector<double> alphas;  // 0, 1/n, …
    std::vector<double> losses;  // module MSE per α
    int bestIndex = 0;
    double bestAlpha = 0.0;
    double bestLoss = 0.0;
    double rtnLoss = 0.0;        // losses[0]: α = 0 is plain RTN
    std::vector<float> scales;   // s at the best α
    std::vector<float> meanAbs;  // μ used
};

// x: the cached inputs (tokens × cols), used for μ unless meanAbs is given (e.g. μ over more tokens than
// cached). module: empty → linearOutputsModule(x). Throws Error on shape mismatches.
AwqScaleSearch searchAwqScales(const ActivationView &x, const std::vector<AwqLinear> &linears,
                               const AwqOptions &options, const AwqModuleFn &module, Progress &progress,
                               std::span<const float> meanAbs = {});

struct AwqClip
{
    int64_t rows = 0;
    int numGroups = 0;
    int groupSize = -1;
    std::vector<float> maxVal;           // rows × numGroups: the chosen clip value (= absmax when unclipped)
    std::vector<int> shrinkStep;         // the chosen i (0 = unclipped)
    std::vector<double> errUnclipped;    // partial-output MSE at i = 0
    std::vector<double> errBest;         // at the chosen i (≤ errUnclipped)
    int tokensUsed = 0;
};

// Clipping search for one (already scaled) weight against the (already scaled) inputs.
AwqClip searchAwqClip(const WeightView &scaledW, const ActivationView &scaledX, const AwqOptions &options,
                      Progress &progress, const std::string &name = {});
// Clamps every group of w (row-major rows × cols) to ±maxVal.
void applyAwqClip(float *w, int64_t rows, int64_t cols, const AwqClip &clip);

struct AwqResult
{
    AwqScaleSearch search;
    std::vector<float> normFold;              // 1/s: multiply the producer's output channels (γ) by this
    std::vector<QuantizedTensor> tensors;     // per linear, in input order (inputScales = s)
    std::vector<AwqClip> clips;               // per linear; empty maxVal when not clipped
};

// Scale search, apply, clip and quantize, for one group of linears sharing x.
AwqResult runAwq(const ActivationView &x, const std::vector<AwqLinear> &linears, const AwqOptions &options,
                 const AwqModuleFn &module, Progress &progress, std::span<const float> meanAbs = {});

} // namespace qs::core
