#pragma once
// GGUF export (formats.md §2.7–2.10): a llama.cpp-loadable file from a model or a quantization run.

#include <string>

#include "export/ExportSource.h"

namespace qs::core {

struct GgufExportOptions
{
    // Empty: per-tensor types from the run (quantized layers on a GGUF grid keep their codes, others are
    // re-encoded to the nearest block type), float tensors F16/F32. Otherwise one type for every matrix
    // ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K").
    std::string type;
    // Type of the matrices that are float in the source or run (embedding, lm_head, layers the run left in
    // float) when `type` is empty: "F16" (llama.cpp's usual choice), "F32" (bit-exact with an F32 source or
    // run) or "BF16". Norms and other vectors are always F32.
    std::string floatType = "F16";
};

// Writes out atomically (temporary file, then rename). Throws Error naming the file, or Cancelled;
// neither leaves anything behind.
ExportSummary exportGguf(const ExportSource &source, const GgufExportOptions &options, const std::string &out,
                         Progress &progress);

} // namespace qs::core
