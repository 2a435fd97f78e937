#pragma once
// Reading and tokenizing an evaluation or calibration text file with a model's own tokenizer, the one
// path shared by the CLI and the GUI so both produce the same token streams.

#include <cstdint>
#include <string>
#include <vector>

#include "common/Progress.h"
#include "model/Model.h"

namespace qs::core {

struct TokenizedText
{
    std::string path;
    std::string sha256;
    uint64_t bytes = 0;
    std::string tokenizer; // the tokenizer's name, for provenance
    std::vector<int32_t> tokens; // with the model's single leading BOS when it adds one
};

// Limits the text to maxBytes (a clear Error beyond: nobody means to evaluate a 2 GB file by accident).
// Throws Error naming the file when it cannot be read or is empty, or when the model has no tokenizer.
TokenizedText tokenizeTextFile(const Model &model, const std::string &path, Progress &progress,
                               uint64_t maxBytes = uint64_t(256) << 20);

std::string readTextFile(const std::string &path, uint64_t maxBytes = uint64_t(256) << 20);

} // namespace qs::core
