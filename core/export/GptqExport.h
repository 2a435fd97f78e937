#pragma once
// GPTQ checkpoint export (formats.md §3): a Hugging Face folder with qweight/qzeros/scales/g_idx per
// quantized linear, quantize_config.json and quantization_config in config.json.

#include <string>

#include "export/ExportSource.h"

namespace qs::core {

struct GptqExportOptions
{
};

// Writes the folder atomically (temporary folder, then rename). Throws Error naming the path, or
// Cancelled; neither leaves anything behind.
ExportSummary exportGptq(const ExportSource &source, const GptqExportOptions &options, const std::string &out,
                         Progress &progress);

} // namespace qs::core
