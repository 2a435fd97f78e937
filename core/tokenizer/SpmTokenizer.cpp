// llama.cpp's SentencePiece emulation for GGUF vocabularies with tokenizer.ggml.model = "llama"
// (llm_tokenizer_spm in llama-vocab.cpp): the text is split into UTF-8 characters, then the adjacent pair
// whose concatenation is a vocabulary piece with the highest score is merged, again and again; leftovers
// that are not pieces become byte tokens. The merge order is kept in a priority queue over a linked list
// of symbols, so a long stretch costs O(n log n), not a rescan per merge; and the text is first cut where
// no merge can reach across, so that words are merged once and then come from a cache.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/Error.h"
#include "io/GgufFile.h"
#include "tokenizer/AddedTokens.h"
#include "tokenizer/TokenizerImpl.h"
#include "tokenizer/Unicode.h"

namespace qs::core {

namespace {

class SpmTokenizer final : public Tokenizer
{
public:
    explicit SpmTokenizer(const GgufFile &file);

    std::vector<int32_t> encode(std::string_view text) const override;
    std::string decode(const std::vector<int32_t> &ids) const override;
    std::string tokenToPiece(int32_t id) const override;

private:
    struct Symbol
    {
        int32_t prev;
        int32_t next;
        uint32_t offset;
        uint32_t n; // bytes; 0 once merged into the symbol on its left
    };
    struct Bigram
    {
        float score;
        int32_t left;
        int32_t right;
        uint32_t size; // bytes of the merged piece, to recognise stale entries
    };
    struct Workspace // scratch reused across the stretches of one encode() call
    {
        std::vector<Symbol> symbols;
        std::vector<Bigram> heap;
    };

    void encodeEscaped(std::string_view text, std::vector<int32_t> &out) const;
    void mergeStretch(std::string_view text, std::vector<int32_t> &out, Workspace &ws) const;
    void appendByteTokens(std::string_view bytes, std::vector<int32_t> &out) const;
    std::string render(int32_t id) const;

    std::vector<std::string> m_pieces;
    std::vector<float> m_scores;
    std::vector<TokenType> m_types;
    PieceIndex m_index;
    BytePairTable m_adjacentBytes;
    std::array<int32_t, 256> m_byteTokens {};
    int32_t m_unkId = -1;
    bool m_addSpacePrefix = true;
    AddedTokenMatcher m_userDefined;
    std::string m_fileName;
};

SpmTokenizer::SpmTokenizer(const GgufFile &file)
    : m_fileName(file.fileName())
{
    const std::vector<std::string> *tokens = file.stringArray("tokenizer.ggml.tokens");
    if (!tokens)
        fail(m_fileName, "no tokenizer vocabulary in the metadata (tokenizer.ggml.tokens is missing)");
    if (tokens->empty() || tokens->size() > size_t(INT32_MAX))
        fail(m_fileName, "tokenizer.ggml.tokens has " + std::to_string(tokens->size()) + " entries");
    m_pieces = *tokens;
    const size_t n = m_pieces.size();

    m_scores.assign(n, 0.0f); // llama.cpp treats missing scores as 0
    if (std::optional<std::vector<float>> scores = file.getF32Array("tokenizer.ggml.scores")) {
        if (scores->size() != n)
            fail(m_fileName,
                "tokenizer.ggml.scores has " + std::to_string(scores->size()) + " entries for " + std::to_string(n)
                    + " tokens");
        m_scores = std::move(*scores);
    }
    m_types.assign(n, TokenType::Normal);
    if (std::optional<std::vector<int32_t>> types = file.getI32Array("tokenizer.ggml.token_type")) {
        if (types->size() != n)
            fail(m_fileName,
                "tokenizer.ggml.token_type has " + std::to_string(types->size()) + " entries for " + std::to_string(n)
                    + " tokens");
        for (size_t i = 0; i < n; ++i) {
            const int32_t t = (*types)[i];
            m_types[i] = t >= 1 && t <= 6 ? TokenType(t) : TokenType::Normal;
        }
    }

    // llama.cpp fills token_to_id in id order, so a piece spelled twice maps to its last id.
    m_index.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        m_index.insert_or_assign(m_pieces[i], int32_t(i));
        m_adjacentBytes.addPiece(m_pieces[i]);
    }

    m_vocabSize = int32_t(n);
    m_unkId = ggufTokenId(file, "tokenizer.ggml.unknown_token_id", 0, n);
    m_bosId = ggufTokenId(file, "tokenizer.ggml.bos_token_id", 1, n);
    m_eosId = ggufTokenId(file, "tokenizer.ggml.eos_token_id", 2, n);
    m_addBos = file.getBool("tokenizer.ggml.add_bos_token").value_or(true) && m_bosId >= 0;
    m_addSpacePrefix = file.getBool("tokenizer.ggml.add_space_prefix").value_or(true);

    // Byte fallback looks up "<0xXX>" first and then the byte as a one-character piece (llama.cpp's
    // byte_to_token); -1 means neither exists and the unknown token stands in.
    for (int b = 0; b < 256; ++b) {
        int32_t id = findPiece(m_index, byteTokenName(uint8_t(b)));
        if (id < 0)
            id = findPiece(m_index, std::string(1, char(b)));
        m_byteTokens[b] = id;
    }

    std::vector<AddedToken> userDefined;
    for (size_t i = 0; i < n; ++i)
        if (m_types[i] == TokenType::UserDefined)
            userDefined.push_back({ m_pieces[i], int32_t(i), false, false, false, false });
    m_userDefined = AddedTokenMatcher(std::move(userDefined));
    m_name = "llama-spm (GGUF)";
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text) const
{
    std::vector<int32_t> out;
    if (text.empty())
        return out; // llama.cpp: no fragments, no tokens (not even the space prefix)
    out.reserve(text.size() / 3 + 4);
    // llama.cpp prefixes a space to every text fragment that starts the input or follows a special token.
    bool previousWasSpecial = true;
    const std::vector<TextFragment> fragments
        = m_userDefined.empty() ? std::vector<TextFragment> { { text, -1, 0 } } : m_userDefined.split(text);
    for (const TextFragment &f : fragments) {
        if (f.token >= 0) {
            out.push_back(f.token);
            previousWasSpecial = true;
            continue;
        }
        std::string withPrefix;
        if (m_addSpacePrefix && previousWasSpecial)
            withPrefix = " ";
        withPrefix.append(f.text);
        encodeEscaped(escapeSpaces(withPrefix), out);
        previousWasSpecial = false;
    }
    return out;
}

void SpmTokenizer::appendByteTokens(std::string_view bytes, std::vector<int32_t> &out) const
{
    for (char c : bytes) {
        int32_t id = m_byteTokens[uint8_t(c)];
        if (id < 0)
            id = m_unkId;
        if (id < 0)
            fail(m_fileName,
                "cannot encode byte " + byteTokenName(uint8_t(c))
                    + ": the vocabulary has neither a byte token nor an unknown token");
        out.push_back(id);
    }
}

void SpmTokenizer::encodeEscaped(std::string_view text, std::vector<int32_t> &out) const
{
    // Cut the text where no merge can reach across (see BytePairTable; for Llama's vocabulary that is
    // before every "▁" that follows another character, i.e. at word starts) and merge each stretch on its
    // own. Words repeat, so short stretches are cached for the rest of this call.
    constexpr size_t kMaxCachedBytes = 64;
    constexpr size_t kMaxCacheEntries = 1 << 17;
    std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>> cache;
    Workspace ws;
    const auto flush = [&](size_t begin, size_t end) {
        const std::string_view stretch = text.substr(begin, end - begin);
        const bool cacheable = stretch.size() <= kMaxCachedBytes;
        if (cacheable) {
            if (const auto it = cache.find(stretch); it != cache.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        const size_t before = out.size();
        mergeStretch(stretch, out, ws);
        if (cacheable) {
            if (cache.size() >= kMaxCacheEntries)
                cache.clear();
            cache.emplace(stretch, std::vector<int32_t>(out.begin() + std::ptrdiff_t(before), out.end()));
        }
    };
    size_t begin = 0;
    for (size_t pos = 0; pos < text.size();) {
        if (pos > begin && !m_adjacentBytes.contains(uint8_t(text[pos - 1]), uint8_t(text[pos]))) {
            flush(begin, pos);
            begin = pos;
        }
        pos += unicode::decodeUtf8(text, pos).length;
    }
    if (begin < text.size())
        flush(begin, text.size());
}

void SpmTokenizer::mergeStretch(std::string_view text, std::vector<int32_t> &out, Workspace &ws) const
{
    if (text.size() > UINT32_MAX / 2)
        fail(m_fileName, "text too long to tokenize in one piece");

    // Characters: well-formed UTF-8 sequences, and each malformed byte on its own. (llama.cpp cuts by the
    // lead byte alone, which is the same for valid text but lets a stray lead byte swallow the bytes after
    // it - including a "▁" that stood for a space, so decode could not give the space back.)
    std::vector<Symbol> &symbols = ws.symbols;
    symbols.clear();
    for (size_t offset = 0; offset < text.size();) {
        const size_t len = unicode::decodeUtf8(text, offset).length;
        const int32_t index = int32_t(symbols.size());
        symbols.push_back({ index - 1, offset + len == text.size() ? -1 : index + 1, uint32_t(offset), uint32_t(len) });
        offset += len;
    }

    // Highest score first; among equal scores the leftmost pair (llama.cpp's llm_bigram_spm::comparator).
    // std heap functions build max-heaps, so "lower" means "comes later".
    const auto lower
        = [](const Bigram &a, const Bigram &b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
    std::vector<Bigram> &heap = ws.heap;
    heap.clear();
    const auto tryAddBigram = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0)
            return;
        const uint32_t size = symbols[size_t(left)].n + symbols[size_t(right)].n;
        const int32_t id = findPiece(m_index, text.substr(symbols[size_t(left)].offset, size));
        if (id < 0)
            return;
        float score = m_scores[size_t(id)];
        if (score != score) // a NaN would break the heap's ordering; treat it as the lowest score
            score = -std::numeric_limits<float>::infinity();
        heap.push_back({ score, left, right, size });
        std::push_heap(heap.begin(), heap.end(), lower);
    };
    for (int32_t i = 1; i < int32_t(symbols.size()); ++i)
        tryAddBigram(i - 1, i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), lower);
        const Bigram bigram = heap.back();
        heap.pop_back();
        Symbol &left = symbols[size_t(bigram.left)];
        Symbol &right = symbols[size_t(bigram.right)];
        // Stale when either side has been merged since: their sizes no longer add up.
        if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size)
            continue;
        left.n += right.n;
        right.n = 0;
        left.next = right.next;
        if (right.next >= 0)
            symbols[size_t(right.next)].prev = bigram.left;
        tryAddBigram(left.prev, bigram.left);
        tryAddBigram(bigram.left, left.next);
    }

    if (symbols.empty())
        return;
    for (int32_t i = 0; i != -1; i = symbols[size_t(i)].next) {
        const std::string_view piece = text.substr(symbols[size_t(i)].offset, symbols[size_t(i)].n);
        const int32_t id = findPiece(m_index, piece);
        if (id >= 0)
            out.push_back(id);
        else
            appendByteTokens(piece, out); // merged symbols are always pieces; this is a lone character
    }
}

// llama.cpp's token_to_piece without special rendering: normal pieces with "▁" as spaces, user-defined
// verbatim, bytes as themselves, the unknown token as "▅", control and unused tokens as nothing.
std::string SpmTokenizer::render(int32_t id) const
{
    const std::string &piece = m_pieces[size_t(id)];
    switch (m_types[size_t(id)]) {
    case TokenType::Normal:
        return unescapeSpaces(piece);
    case TokenType::UserDefined:
        return piece;
    case TokenType::Unknown:
        return "\xE2\x96\x85";
    case TokenType::Byte: {
        const int b = parseByteToken(piece);
        return b >= 0 ? std::string(1, char(b)) : piece;
    }
    case TokenType::Control:
    case TokenType::Unused:
        return {};
    }
    return {};
}

std::string SpmTokenizer::decode(const std::vector<int32_t> &ids) const
{
    std::string out;
    bool atStart = m_addSpacePrefix; // drop the encoder's space prefix once, before the first text
    for (int32_t id : ids) {
        checkId(id);
        std::string piece = render(id);
        if (piece.empty())
            continue;
        if (atStart && piece[0] == ' ')
            piece.erase(0, 1);
        atStart = false;
        out += piece;
    }
    return out;
}

std::string SpmTokenizer::tokenToPiece(int32_t id) const
{
    checkId(id);
    if (m_types[size_t(id)] == TokenType::Control)
        return m_pieces[size_t(id)];
    return render(id);
}

} // namespace

std::unique_ptr<Tokenizer> makeSpmTokenizer(const GgufFile &file)
{
    return std::make_unique<SpmTokenizer>(file);
}

} // namespace qs::core
