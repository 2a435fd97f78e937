#pragma once
// What every exporter starts from: a model opened through the format table and, when the path is a
// quantization run directory (RUN_DIR, docs/run-dir.md), the run's contents (integer codes, scales, zeros,
// g_idx, plan, metrics). Exporters that can store quantized layers natively (GGUF block types, GPTQ
// checkpoints, the HDF5 project's tensors) use `run`; everything else reads float weights from `model`
// (for a RUN_DIR these are the dequantized weights, bit-identical to what the pipeline evaluated).
//
// ExportSummary is what every exporter reports: the CLI prints it (table or --json), the GUI shows it.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/Progress.h"
#include "model/Model.h"
#include "quant/RunDir.h"

namespace qs::core {

struct ExportSource
{
    std::string path;                          // what the user gave (model or RUN_DIR)
    std::shared_ptr<const Model> model;        // always set
    std::shared_ptr<const RunDirContents> run; // set when path is a RUN_DIR

    // The run's quantized tensor for a canonical layer name, or nullptr (not a run, or a float layer).
    const QuantizedTensor *quantized(const std::string &name) const;
};

// Opens path as a model (any registered format) and, for a RUN_DIR, also reads the run's contents.
// Throws Error naming the path.
ExportSource openExportSource(const std::string &path, Progress &progress);

struct ExportedTensor
{
    std::string name;   // name in the written file
    std::string type;   // storage type written ("Q4_0", "F16", "int4 g128 (GPTQ)", ...)
    std::string source; // "codes" (a run's codes written unchanged), "requantized", "float", ...
    std::string note;   // e.g. "row length 172 is not a multiple of 32: Q4_0 → Q8_0"... or empty
};

struct ExportSummary
{
    std::string format; // "gguf" | "gptq" | "hdf5"
    std::string path;   // the written file or folder
    uint64_t bytes = 0; // size on disk
    std::vector<ExportedTensor> tensors;
    std::vector<std::string> notes; // user-facing remarks: fallbacks, what was left out and why
    double seconds = 0.0;

    nlohmann::ordered_json toJson() const;
};

// Size of a file, or the sum of the regular files in a folder (not recursive).
uint64_t pathBytes(const std::string &path);

} // namespace qs::core
