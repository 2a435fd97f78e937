#pragma once
// The ggml tensor types a GGUF file can name (formats.md 2.5) and dequantization of their rows to float32
// (block layouts in formats.md 2.6). One table drives parsing (block size, bytes per block), names in
// messages and menus, and decoding: adding a type means adding one row in GgufBlocks.cpp.
//
// Every decodable type has two decoders: a plain reference one written straight from the spec, one
// element at a time, and a fast one used in practice (block at a time, no per-element calls, loops the
// compiler can vectorise). Tests check the fast ones against the reference ones.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/Model.h"

namespace qs::core {

// Decodes n elements (a multiple of the type's block size) starting at src, which need not be aligned.
using DequantizeRowFn = void (*)(const uint8_t *src, float *dst, int64_t n);

struct GgmlTypeInfo
{
    uint32_t id; // ggml type id as stored in GGUF tensor infos
    const char *name; // "Q4_K"
    uint32_t blockSize; // elements per block
    uint32_t bytesPerBlock; // bytes per block
    // Null when QuantScope knows the layout (so files using it still parse) but cannot decode it.
    DequantizeRowFn dequantize;
    DequantizeRowFn dequantizeReference;
    std::optional<DType> dtype; // the Model dtype for decodable types
};

// All ggml types whose sizes are known, in id order. Ids that ggml removed or that are newer than this
// table are absent: a file naming them is rejected.
const std::vector<GgmlTypeInfo> &ggmlTypes();
const GgmlTypeInfo *findGgmlType(uint32_t id);
const GgmlTypeInfo *findGgmlType(std::string_view name);
const GgmlTypeInfo &ggmlTypeFor(DType dtype);

// Names of the decodable types, "F32, F16, ..." (for messages).
std::string decodableGgmlTypeNames();

// Bytes taken by n elements of the type; n must be a multiple of the block size.
inline uint64_t ggmlBytesFor(const GgmlTypeInfo &type, uint64_t n)
{
    return n / type.blockSize * type.bytesPerBlock;
}

} // namespace qs::core
