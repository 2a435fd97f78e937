#pragma once
// ZeroQuant (algorithms.md §6), the post-training parts: group-wise symmetric weights and token-wise
// dynamic activation quantization. (Layer-by-layer distillation, LKD, is not implemented here; with zero
// LKD steps ZeroQuant is exactly this RTN.)
//
// Weights use DeepSpeed's SymQuantizer grid, convention (b) ("sym_full"): scale = absmax/2^(b−1), codes
// −2^(b−1)..2^(b−1)−1, +absmax clamped one step down. Groups:
//   * default: groups of groupSize INPUT columns per row, the GPTQ/AWQ/GGUF layout. Not DeepSpeed's
//     layout, but its scales sit in the same place as every other method's, so GPTQ-style exporters work.
//   * rowGroups: DeepSpeed's layout, groups of whole OUTPUT rows (rowsPerGroup consecutive rows share one
//     scale). Scales then vary only along output rows, so dequantization stays in an INT8 GEMM's
//     epilogue. DeepSpeed reshapes the matrix into num_groups equal chunks; when num_groups divides the row
//     count that is rowsPerGroup = rows/num_groups. Chunks that split a row are not supported.
// Activations: one scale per token from that token's absmax (INT8 default), convention (a) absmax/127 so
// every element's error is ≤ s_t/2; convention (b) on request (DeepSpeed, clamps +absmax).

#include <string>

#include "quant/ActivationQuant.h"
#include "quant/QuantizedTensor.h"
#include "quant/Rtn.h"

namespace qs::core {

struct ZeroQuantOptions
{
    int bits = 8;
    int groupSize = 128;       // input-column groups; −1 per row; 0 per tensor (ignored with rowGroups)
    bool rowGroups = false;    // DeepSpeed layout: groups of whole output rows
    int rowsPerGroup = 1;      // with rowGroups
    GridId grid = GridId::SymFull;
    int activationBits = 8;    // 0: activations stay in float (W-only simulation)
    SymConvention activationConvention = SymConvention::Restricted;

    QuantSpec weightSpec() const; // the RTN spec these options describe
};

// Throws Error naming `name` on bad options or non-finite weights.
QuantizedTensor quantizeZeroQuantWeight(const WeightView &w, const ZeroQuantOptions &options,
                                        const std::string &name = {});

// Token-wise dynamic fake quantization of x (tokens × channels) in place with options.activationBits
// (no-op when 0); tokenScales receives s_t when given.
void fakeQuantTokenwise(float *x, int64_t tokens, int64_t channels, const ZeroQuantOptions &options,
                        std::vector<float> *tokenScales = nullptr);

} // namespace qs::core
