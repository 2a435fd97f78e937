#pragma once
// Encoders for the GGUF tensor types QuantScope writes (formats.md §2.6, algorithms.md §8.2), and packing
// of a quantization run's integer codes into GGUF blocks.
//
// Encoders follow llama.cpp's reference (no imatrix) recipes, quantize_row_*_ref in ggml-quants.c:
//   F32 / F16 / BF16  plain conversion (F16 and BF16 round to nearest even)
//   Q8_0              d = absmax/127, q = roundf(x·(1/d))
//   Q4_0 / Q5_0       d = signed max/−8 (−16), q = min(qmax, (int)(x·(1/d) + 8.5 (16.5)))
//   Q4_1 / Q5_1       d = (max − min)/15 (31), m = min, q = (int)((x − min)·(1/d) + 0.5)
//   Q4_K              make_qkx2_quants per 32-element sub-block (weights rms + |x|, 21 candidate scales),
//                     6-bit scales/mins against f16 d/dmin, codes re-derived from the stored values
//   Q6_K              make_qx_quants per 16-element sub-block (weights x², 19 candidates), int8 scales
//                     against an f16 d, codes re-derived from the stored values
// Like llama.cpp, legacy types compute codes with the fp32 scale and store it as f16; decoding uses the
// f16 value. The result decodes through io/GgufBlocks' decoders (what tests check).
//
// Packing (packQuantizedRow): a QuantizedTensor on a GGUF grid (gguf_q4_0, gguf_q5_0, gguf_q8_0,
// gguf_q4_1, gguf_q5_1; quant/Grid.h) holds exactly what a block stores: per group of 32 an f16-exact
// scale (and for the affine grids m = −scale·zero, f16-exact) and the codes. The blocks then decode to
// the tensor's dequantized weights bit for bit. ggufPackProblem() says why a tensor cannot be packed
// (another grid, act-order g_idx, row groups, a scale that a later fold moved off f16).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/GgufBlocks.h"
#include "quant/QuantizedTensor.h"

namespace qs::core {

// The types exportGguf can write, in menu order: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K.
const std::vector<std::string> &ggufWritableTypeNames();
std::string ggufWritableTypeList(); // "F32, F16, ..." for messages
// The writable type of that name, or nullptr.
const GgmlTypeInfo *findWritableGgmlType(std::string_view name);

// Encodes n floats (a multiple of the type's block size) into ggmlBytesFor(type, n) bytes at dst.
// Throws Error for a type that is not writable or a bad n.
void quantizeGgufRow(const GgmlTypeInfo &type, const float *src, uint8_t *dst, int64_t n);

// The ggml type of a quantized tensor's grid ("Q4_0" ...), or nullptr when the grid is no GGUF block grid.
const GgmlTypeInfo *ggmlTypeOfGrid(const QuantizedTensor &t);

// Empty when every row of t can be packed into blocks of ggmlTypeOfGrid(t) unchanged; otherwise the reason
// (for the export summary). Checks grid, group size, natural g_idx, row groups and f16-exact scales/offsets.
std::string ggufPackProblem(const QuantizedTensor &t);

// Packs row `row` of t (codes and group parameters) into ggmlBytesFor(type, t.cols) bytes at dst.
// Precondition: ggufPackProblem(t) is empty.
void packQuantizedRow(const QuantizedTensor &t, int64_t row, uint8_t *dst);

} // namespace qs::core
