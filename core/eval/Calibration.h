#pragma once
// Calibration samples from tokenized text (specs/algorithms.md §1.3): the sequences a calibration pass
// feeds through the model to gather activation statistics, GPTQ Hessians and AWQ scales.
//
// Two ways to cut them:
// - windows (GPTQ style): N windows of exactly L consecutive tokens at random offsets of one token stream
//   (the GPTQ reference takes 128 random 2048-token segments, seed 0). Windows may overlap.
// - documents: whole documents (split on a separator such as "<|endoftext|>", or on blank lines), each
//   truncated to its first L tokens, so no sample straddles two unrelated texts.
//
// Randomness comes from our own xoshiro256** seeded through splitmix64, never from std:: distributions or
// engines whose output is implementation-defined, so a seed selects the same samples on every compiler,
// library and platform, and a recorded seed reproduces a run.
//
// A CalibrationSet records where it came from (text file, its SHA-256, tokenizer, seed, N, L, mode) so
// results derived from it carry their provenance (house style, practice 8).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace qs::core {

// splitmix64 (Steele, Lea & Flood 2014, as published by Vigna): seeds xoshiro and is a fine generator on
// its own for a handful of values.
class SplitMix64
{
public:
    explicit SplitMix64(uint64_t seed)
        : m_state(seed)
    { }
    uint64_t next();

private:
    uint64_t m_state;
};

// xoshiro256** 1.0 (Blackman & Vigna), state filled by four splitmix64 outputs of the seed.
class Xoshiro256
{
public:
    explicit Xoshiro256(uint64_t seed);
    uint64_t next();
    // Uniform in [0, n) without modulo bias (rejection of the short top range); n must be > 0.
    uint64_t below(uint64_t n);

private:
    uint64_t m_s[4];
};

enum class CalibrationMode : uint8_t { Windows, Documents };
const char *calibrationModeName(CalibrationMode mode); // "windows", "documents"

struct CalibrationSample
{
    std::vector<int32_t> tokens;
    // windows: offset of the first token in the stream; documents: index of the document in the list
    // given to makeCalibrationDocuments (empty documents included in the numbering).
    int64_t origin = 0;
};

struct CalibrationSet
{
    std::vector<CalibrationSample> samples;

    // Provenance. The make* functions fill mode, seed, requestedSamples, seqLen, sourceTokens and
    // sourceDocuments; the caller fills what only it knows (textPath, textSha256, tokenizer, separator),
    // e.g. with describeCalibrationText().
    CalibrationMode mode = CalibrationMode::Windows;
    uint64_t seed = 0;
    int requestedSamples = 0; // N asked for; documents mode may yield fewer (samples.size())
    int seqLen = 0; // L
    int64_t sourceTokens = 0; // tokens in the stream (windows) or in all documents (documents)
    int64_t sourceDocuments = 0; // non-empty documents available (documents mode), 0 for windows
    std::string textPath;
    std::string textSha256;
    std::string tokenizer; // a name the user recognises, e.g. the tokenizer file or model it came from
    std::string separator; // documents mode: the separator used; "" means blank lines

    int64_t totalTokens() const; // tokens over all samples
    // Provenance as JSON (no token ids): text_path, text_sha256, tokenizer, mode, samples (actual count),
    // requested_samples, seq_len, seed, rng, source_tokens, total_tokens, origins, and for documents
    // separator and source_documents.
    nlohmann::json toJson() const;
};

// GPTQ-style windows: samples windows of seqLen tokens, each starting at a uniform offset in
// [0, tokens.size() - seqLen]. Deterministic for a seed. Throws Error naming sourceForErrors when
// samples or seqLen is not positive, or when the text has fewer than seqLen tokens.
CalibrationSet makeCalibrationWindows(const std::vector<int32_t> &tokens, int samples, int seqLen, uint64_t seed,
    std::string_view sourceForErrors = "calibration text");

// Splits text into documents: on every occurrence of separator, or on runs of blank (whitespace-only)
// lines when separator is empty. Surrounding whitespace is trimmed. With a separator, empty pieces between
// two separators are kept (as "") so document indices count separators; a single empty tail after a final
// separator is dropped. Blank-line mode never yields empty documents.
std::vector<std::string> splitDocuments(std::string_view text, std::string_view separator);

// Documents mode: up to samples non-empty documents, each truncated to its first seqLen tokens. When there
// are more non-empty documents than samples, a seeded choice without replacement picks them; the chosen
// ones are returned in document order. Throws Error naming sourceForErrors when samples or seqLen is not
// positive or when every document is empty.
CalibrationSet makeCalibrationDocuments(const std::vector<std::vector<int32_t>> &documents, int samples, int seqLen,
    uint64_t seed, std::string_view sourceForErrors = "calibration text");

// Fills textPath and textSha256 (hashing the file; throws Error naming it when unreadable) and tokenizer.
void describeCalibrationText(CalibrationSet &set, const std::string &textPath, const std::string &tokenizer);

} // namespace qs::core
