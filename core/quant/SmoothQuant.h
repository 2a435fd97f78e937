#pragma once
// SmoothQuant (algorithms.md §4): move activation outliers into the weights with an exact per-input-channel
// rescaling, then W8A8.
//
// For one input shared by several linears (q/k/v after input_layernorm; gate/up after
// post_attention_layernorm):
//     s_j = clamp( a_j^α / max(w_j, 1e-5)^(1−α), min 1e-5 )
// with a_j = max over calibration tokens of |x_j| and w_j = max over all rows of ALL the linears of |W[r, j]|.
// Each linear's column j is multiplied by s_j; the producer of the input (RMSNorm γ, or LayerNorm γ and β)
// is multiplied by 1/s_j, so the float model is unchanged. s is computed in double, stored as float.
// Miss one consumer of the smoothed input and the model silently changes: pass every linear reading it.
//
// Then weights: INT8 symmetric per output channel (grid "sym", convention (a), absmax/127; §4.1
// fake_quant.py) by default, or per tensor (groupSize 0, O1–O3); activations: per-token dynamic (O1/
// fake_quant.py) or per-tensor (O2 dynamic, O3 static with absmax re-calibrated AFTER smoothing) via
// fakeQuantActivationsPerToken / fakeQuantPerTensor.

#include <span>
#include <string>
#include <vector>

#include "quant/ActivationQuant.h"
#include "quant/QuantizedTensor.h"
#include "quant/Rtn.h"

namespace qs::core {

// How the simulated W8A8 quantizes activations (§4.1 table): O1 per-token dynamic, O2 per-tensor dynamic,
// O3 per-tensor static (absmax calibrated on the smoothed model).
enum class ActivationScheme : uint8_t { PerToken, PerTensorDynamic, PerTensorStatic };
const char *activationSchemeName(ActivationScheme s); // "per_token", "per_tensor_dynamic", "per_tensor_static"

struct SmoothQuantOptions
{
    double alpha = 0.5;                          // 0.5 OPT/BLOOM; Llama-2/3 0.85, Mistral 0.8 (§4.2)
    QuantSpec weightSpec{GridId::Sym, 8, -1, 1}; // INT8 symmetric per output channel
    int activationBits = 8;
    ActivationScheme activationScheme = ActivationScheme::PerToken;

    static SmoothQuantOptions defaults() { return {}; }
};

struct SmoothingScales
{
    double alpha = 0.5;
    std::vector<float> scales;       // s_j: W[:, j] *= s_j
    std::vector<float> normFold;     // 1/s_j: γ_j *= normFold_j (and β_j for LayerNorm)
    std::vector<float> actAbsMax;    // a_j as given
    std::vector<float> weightAbsMax; // w_j over all linears (before the 1e-5 floor)
};

// Throws Error (naming `what`) when a has the wrong size or holds negative/non-finite values, when the
// linears disagree on the column count, or when alpha is outside [0, 1].
SmoothingScales computeSmoothingScales(std::span<const float> actAbsMax, const std::vector<WeightView> &linears,
                                       double alpha, const std::string &what = {});

// W[:, j] *= s_j in place (row-major rows × cols).
void applyInputScales(float *w, int64_t rows, int64_t cols, std::span<const float> s);
// X[:, j] /= s_j in place (row-major tokens × channels): the activation side, for simulation and tests
// (in a model the division is folded into the norm).
void divideActivations(float *x, int64_t tokens, int64_t channels, std::span<const float> s);

struct SmoothQuantResult
{
    SmoothingScales smoothing;
    std::vector<std::vector<float>> weights; // W·diag(s) for each linear, in input order, row-major
};

// computeSmoothingScales plus the scaled copies of every linear.
SmoothQuantResult smoothLinears(std::span<const float> actAbsMax, const std::vector<WeightView> &linears, double alpha,
                                const std::string &what = {});

// Quantizes a smoothed weight (default: 8-bit symmetric per output channel, grid "sym") and records s
// as its input scales (provenance; see QuantizedTensor). Pass empty s for an unsmoothed baseline.
QuantizedTensor quantizeSmoothedWeight(const WeightView &smoothedW, std::span<const float> s,
                                       const QuantSpec &spec = QuantSpec{GridId::Sym, 8, -1, 1},
                                       const std::string &name = {});

// Per-token dynamic INT-b fake quantization of activations (tokens × channels), in place: the W8A8
// simulation the forward pass applies to each quantized linear's input.
inline void fakeQuantActivationsPerToken(float *x, int64_t tokens, int64_t channels, int bits = 8)
{
    fakeQuantPerToken(x, tokens, channels, ActQuantOptions{bits, SymConvention::Restricted});
}

} // namespace qs::core
