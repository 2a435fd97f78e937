#pragma once
// The table of model formats: each entry probes a path (by magic bytes or file name) and opens it.
// Adding a format means adding one entry in FormatRegistry.cpp; the GUI's file dialog filter, the CLI and
// the tests all read this table.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/Model.h"

namespace qs::core {

struct OpenOptions
{
    std::string tokenizerPath; // llama2.c: tokenizer.bin when not beside the model
};

struct ModelFormat
{
    std::string name;        // "safetensors" | "gguf" | "llama2c"
    std::string description; // "Hugging Face folder (config.json + safetensors)"
    std::vector<std::string> filePatterns; // for file dialogs: "*.gguf", "*.bin", "config.json", ...
    std::function<bool(const std::string &path)> probe; // cheap: reads at most a few bytes
    std::function<std::unique_ptr<Model>(const std::string &path, const OpenOptions &options)> open;
};

const std::vector<ModelFormat> &modelFormats();

// Probes every format in order and opens with the first that accepts the path.
// Throws Error("<path>: not a recognised model (...)") when none does.
std::unique_ptr<Model> openModel(const std::string &path, const OpenOptions &options = {});

} // namespace qs::core
