#pragma once
// Internal to core/tokenizer: the concrete tokenizers' factories and what they share. Users go through
// Tokenizer.h.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/Tokenizer.h"

namespace qs::core {

class GgufFile;

// tokenizer.ggml.token_type values (formats.md 2.7), also used for tokenizer.json added tokens.
enum class TokenType : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// Piece -> id lookups by string_view without building a std::string per probe (merging probes millions).
struct PieceHash
{
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view> {}(s); }
};
using PieceIndex = std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>>;

inline int32_t findPiece(const PieceIndex &index, std::string_view piece)
{
    const auto it = index.find(piece);
    return it == index.end() ? -1 : it->second;
}

// Which byte pairs occur next to each other inside some vocabulary piece. Where the last byte of one
// symbol and the first byte of the next form a pair no piece contains, no merge can ever join those two
// symbols (a merged piece would contain the pair), so the text on either side can be merged
// independently - and repeated stretches (words) can be cached - with exactly the same result as merging
// the whole text at once.
class BytePairTable
{
public:
    BytePairTable()
        : m_bits(65536 / 64, 0)
    { }
    void addPiece(std::string_view piece)
    {
        for (size_t i = 1; i < piece.size(); ++i)
            set(uint8_t(piece[i - 1]), uint8_t(piece[i]));
    }
    bool contains(uint8_t first, uint8_t second) const
    {
        const size_t bit = size_t(first) << 8 | second;
        return (m_bits[bit >> 6] >> (bit & 63)) & 1;
    }

private:
    void set(uint8_t first, uint8_t second)
    {
        const size_t bit = size_t(first) << 8 | second;
        m_bits[bit >> 6] |= uint64_t(1) << (bit & 63);
    }
    std::vector<uint64_t> m_bits;
};

// "<0x0A>" style byte-token names: upper-case hex, as SentencePiece, llama.cpp and tokenizers write them.
std::string byteTokenName(uint8_t byte);
// The byte a "<0xXX>" piece stands for (exactly six characters, either hex case), or -1.
int parseByteToken(std::string_view piece);

// " " -> "▁" (U+2581), as SentencePiece-style vocabularies spell spaces.
std::string escapeSpaces(std::string_view text);
// "▁" -> " ".
std::string unescapeSpaces(std::string_view piece);
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

// A GGUF token id key: absent -> fallback, 0xFFFFFFFF / negative -> -1 (none), beyond the vocabulary ->
// Error naming the file and key.
int32_t ggufTokenId(const GgufFile &file, std::string_view key, int32_t fallback, size_t vocabSize);

std::unique_ptr<Tokenizer> makeSpmTokenizer(const GgufFile &file);
std::unique_ptr<Tokenizer> makeBpeTokenizer(const GgufFile &file);
// jsonPath: tokenizer.json; tokenizer_config.json beside it is read when present.
std::unique_ptr<Tokenizer> makeHfTokenizer(const std::string &jsonPath);
std::unique_ptr<Tokenizer> makeLlama2cTokenizer(const std::string &path, int32_t vocabSize);

} // namespace qs::core
