#pragma once
// Simulated ("fake") INT-b quantization of activations for W8A8-style evaluation: the forward pass calls
// these on the input of each quantized linear. Shared by SmoothQuant (§4.1) and ZeroQuant (§6.1).
//
// Granularities that keep an integer GEMM legal (§4.1): one scale per token (row of X) or one per tensor.
// Scales are computed in fp32 from the absmax: convention (a) absmax/(2^(b−1) − 1) by default (SmoothQuant's
// quantize_activation_per_token_absmax), or (b) absmax/2^(b−1) (DeepSpeed, clamps +absmax one step down).
// The absmax is floored at 1e-5 so all-zero (padding) tokens stay zero without NaN. Rounding is
// half-to-even. The error of every element is ≤ scale/2, except the +absmax element under (b) (≤ scale).

#include <cstdint>
#include <vector>

#include "quant/Grid.h"

namespace qs::core {

// Row-major activations: tokens × channels.
struct ActivationView
{
    const float *data = nullptr;
    int64_t tokens = 0;
    int64_t channels = 0;
};

struct ActQuantOptions
{
    int bits = 8; // 2..8
    SymConvention convention = SymConvention::Restricted; // Restricted (a) or FullSigned (b)
};

// Quantizes each row of x (tokens × channels) in place with its own scale; tokenScales (optional)
// receives one scale per token. Throws Error on bits or convention it does not support.
void fakeQuantPerToken(float *x, int64_t tokens, int64_t channels, const ActQuantOptions &options = {},
                       std::vector<float> *tokenScales = nullptr);

// One scale for all of x: dynamic (absmax of x itself) when staticAbsMax < 0, otherwise from the given
// calibrated absmax (SmoothQuant O3; values beyond it clamp). Returns the scale used.
float fakeQuantPerTensor(float *x, int64_t tokens, int64_t channels, const ActQuantOptions &options = {},
                         float staticAbsMax = -1.0f);

} // namespace qs::core
