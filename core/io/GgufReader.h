#pragma once
// Opens a llama-architecture GGUF file as a format-neutral Model (formats.md 2.7, 2.8): hyper-parameters
// from the llama.* and tokenizer.ggml.* keys, GGUF tensor names mapped to canonical Hugging Face names,
// and rows decoded lazily from the memory map. q/k rows (and biases) are returned in Hugging Face
// rotate-half order, so that every reader yields the same canonical model.

#include <memory>
#include <string>

#include "model/Model.h"

namespace qs::core {

class GgufFile;

class GgufReader
{
public:
    // Cheap: true when the path is a regular file starting with the GGUF magic.
    static bool probe(const std::string &path);

    // Maps and parses the file and builds the model; throws Error("<file>: ...") on any problem,
    // including files without tensors (vocabulary-only GGUFs) and architectures other than llama.
    static std::unique_ptr<Model> open(const std::string &path);

    // Builds the model from a parsed file; path is recorded as Model::path and tokenizerPath. The model
    // keeps the file's mapping alive; when the file was parsed from a caller's buffer instead, that
    // buffer must outlive the model.
    static std::unique_ptr<Model> build(const GgufFile &file, const std::string &path);
};

} // namespace qs::core
