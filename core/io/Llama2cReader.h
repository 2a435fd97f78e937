#pragma once
// Reads llama2.c "v0" checkpoints (the .bin that run.c loads, formats.md 7.1): a 28-byte int32 header and
// packed float32 arrays. q/k rows are stored in Meta (interleaved RoPE) order and are returned in HF order.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "io/FormatRegistry.h"
#include "model/Model.h"

namespace qs::core {

struct Llama2cHeader
{
    int dim = 0;
    int hiddenDim = 0;
    int numLayers = 0;
    int numHeads = 0;
    int numKvHeads = 0;
    int vocabSize = 0; // absolute value of the stored field
    bool sharedClassifier = true; // stored vocab_size > 0: the output layer reuses the embedding
    int seqLen = 0;
    uint64_t expectedFileSize = 0; // header + every array, including freq_cis and the classifier
};

class Llama2cReader
{
public:
    static constexpr size_t kHeaderBytes = 28;

    // Validates the header in bytes[0, size) against a file of fileSize bytes: plausible dimensions
    // (checked before any size arithmetic), the "ak42" magic of newer exports, and the exact file size.
    // Throws Error("<fileForErrors>: ...").
    static Llama2cHeader parseHeader(
        const uint8_t *bytes, size_t size, uint64_t fileSize, const std::string &fileForErrors);

    // Cheap: a .bin file whose first 28 bytes look like a v0 header (or carry the newer "ak42" magic, so
    // that opening explains why it is not supported).
    static bool probe(const std::string &path);

    // options.tokenizerPath overrides the search for tokenizer.bin / tok*.bin beside the model.
    static std::unique_ptr<Model> open(const std::string &path, const OpenOptions &options = {});
};

} // namespace qs::core
