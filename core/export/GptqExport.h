#pragma once
// GPTQ checkpoint export (formats.md §3): a Hugging Face folder with qweight/qzeros/scales/g_idx per
// quantized linear, quantize_config.json and quantization_config in config.json. What is written and
// what is refused (mixed bits/group sizes, activation quantization, float zero points, shapes that do not
// fill whole int32 words, ...): docs/gptq-export.md.

#include <string>

#include "export/ExportSource.h"

namespace qs::core {

struct GptqExportOptions
{
    // "gptq" (v1, what transformers/optimum, AutoGPTQ, GPTQModel and vLLM all load: qzeros hold zero − 1)
    // or "gptq_v2" (true zeros; GPTQModel only). docs/gptq-export.md.
    std::string checkpointFormat = "gptq";
};

// Writes the folder atomically (temporary folder, then rename). Throws Error naming the path, or
// Cancelled; neither leaves anything behind.
ExportSummary exportGptq(const ExportSource &source, const GptqExportOptions &options, const std::string &out,
                         Progress &progress);

} // namespace qs::core
