#pragma once
// Internal to core/tokenizer: the BPE engine behind GGUF "gpt2" vocabularies and Hugging Face
// tokenizer.json BPE models. Loaders describe the pipeline in a BpeSpec; BpeTokenizer runs it:
//   added-token split -> normalizer -> pre-tokenizer -> BPE merges per piece (by rank) -> ids.
// Two flavours share the engine: byte-level (GPT-2, Llama 3, Qwen2: every byte is a symbol through GPT-2's
// byte alphabet) and SentencePiece-style (Llama 2, Mistral: characters are symbols, byte_fallback for the
// rest, "▁" for spaces).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/AddedTokens.h"
#include "tokenizer/PreTokenizer.h"
#include "tokenizer/TokenizerImpl.h"

namespace qs::core {

struct BpeMerge
{
    int32_t rank = 0;
    int32_t merged = -1;
};

// Hugging Face normalizers we run: Prepend (only to non-empty text) and Replace with a literal pattern.
struct NormalizerStep
{
    enum class Kind { Prepend, Replace } kind = Kind::Prepend;
    std::string pattern; // Replace: what to replace
    std::string content; // Prepend: the prefix; Replace: the replacement
};

struct PreTokenizerStep
{
    enum class Kind { Split, ByteLevel, Metaspace } kind = Kind::Split;
    SplitPattern pattern = SplitPattern::Gpt2; // Split, and ByteLevel with useRegex
    bool addPrefixSpace = false; // ByteLevel
    bool useRegex = true; // ByteLevel
    std::string replacement = "\xE2\x96\x81"; // Metaspace
    enum class Prepend { Always, First, Never } prepend = Prepend::Always; // Metaspace
    bool split = true; // Metaspace: split before each replacement character
};

enum class BpeDecoder {
    ByteLevel, // pieces through the inverse byte alphabet
    SentencePiece // "▁" -> " ", <0xXX> -> byte (when byteFallback), one leading space dropped (stripLeadingSpace)
};

struct BpeSpec
{
    std::string sourceName; // file name, for messages
    std::string displayName; // Tokenizer::name()
    std::vector<std::string> pieces; // by id (added tokens outside the model vocabulary included)
    std::vector<uint8_t> special; // by id: decode() renders these as nothing
    PieceIndex vocab; // the model's vocabulary: piece -> id
    std::unordered_map<uint64_t, BpeMerge> merges; // key: (uint64(left id) << 32) | right id
    bool byteLevel = false;
    bool byteFallback = false;
    bool fuseUnk = false;
    bool ignoreMerges = false; // a piece that is itself in the vocabulary skips merging (Llama 3)
    int32_t unkId = -1;
    std::vector<NormalizerStep> normalizer;
    std::vector<PreTokenizerStep> preTokenizer;
    BpeDecoder decoder = BpeDecoder::ByteLevel;
    bool decodeByteFallback = false;
    bool stripLeadingSpace = false;
    std::vector<AddedToken> addedTokens;
    int32_t bosId = -1;
    int32_t eosId = -1;
    bool addBos = false;

    static uint64_t mergeKey(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
};

std::unique_ptr<Tokenizer> makeBpeTokenizer(BpeSpec spec);

} // namespace qs::core
