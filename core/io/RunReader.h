#pragma once
// The "run" entry of the format table: a quantization run directory (a folder holding run.json, see
// quant/RunDir.h and docs/run-dir.md) opens as the quantized model, so `eval`, `export`, `inspect` and the
// GUI accept a RUN_DIR wherever they accept a MODEL.

#include <memory>
#include <string>

#include "io/FormatRegistry.h"

namespace qs::core::RunReader {

bool probe(const std::string &path); // a folder with run.json
// Opens the original model (checked against the recorded SHA-256) with the run applied. Throws Error.
std::unique_ptr<Model> open(const std::string &path, const OpenOptions &options);

} // namespace qs::core::RunReader
