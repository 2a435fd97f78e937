// The BPE engine (see BpeTokenizer.h) and the GGUF "gpt2" loader.
//
// Merging follows Hugging Face's word.rs / llama.cpp's llm_tokenizer_bpe_session: the applicable pair with
// the lowest merge rank goes first, ties to the leftmost; a binary heap over a linked list of symbols keeps
// that O(n log n) per piece, which matters for SentencePiece-style vocabularies where the whole text is one
// piece. Pieces repeat a lot (words), so each encode() call caches the ids of short ones; SentencePiece-style
// text, which is one long piece, is first cut where no merge can reach across (BytePairTable).

#include "tokenizer/BpeTokenizer.h"

#include <algorithm>

#include "common/Error.h"
#include "io/GgufFile.h"
#include "tokenizer/Unicode.h"

namespace qs::core {

namespace {

class BpeTokenizer final : public Tokenizer
{
public:
    explicit BpeTokenizer(BpeSpec spec);

    std::vector<int32_t> encode(std::string_view text) const override;
    std::string decode(const std::vector<int32_t> &ids) const override;
    std::string tokenToPiece(int32_t id) const override;

private:
    struct Symbol
    {
        int32_t id;
        int32_t prev;
        int32_t next;
    };
    struct Candidate
    {
        int32_t rank;
        int32_t pos;
        int32_t left;
        int32_t right;
        int32_t merged;
    };
    using Cache = std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>>;
    // Scratch buffers reused across the pieces of one encode() call, and its cache of merged stretches.
    struct Workspace
    {
        std::vector<int32_t> initial;
        std::vector<uint32_t> ends; // byte end of each initial symbol within the piece
        std::vector<int32_t> stretch;
        std::vector<Symbol> symbols;
        std::vector<Candidate> heap;
        std::string mapped;
        Cache cache;
    };

    std::string normalize(std::string_view text) const;
    std::vector<std::string> preTokenize(std::string normalized, bool atTextStart) const;
    void encodePiece(std::string_view piece, std::vector<int32_t> &out, Workspace &ws) const;
    void initialSymbols(std::string_view piece, std::vector<int32_t> &symbols, std::vector<uint32_t> &ends) const;
    void mergeCached(
        std::string_view text, const int32_t *symbols, size_t count, std::vector<int32_t> &out, Workspace &ws) const;
    void applyMerges(std::vector<int32_t> &ids, Workspace &ws) const;
    void appendRendered(int32_t id, std::string &out) const;
    [[noreturn]] void failUnencodable(std::string_view what) const;

    BpeSpec m_spec;
    std::array<int32_t, 256> m_byteLevelIds {}; // byte-level: id of each byte's alphabet character
    std::array<std::string, 256> m_byteLevelChars;
    std::array<int32_t, 256> m_fallbackIds {}; // byte_fallback: id of "<0xXX>"
    AddedTokenMatcher m_added;
    BytePairTable m_adjacentBytes; // SentencePiece style: where merges cannot join symbols
    bool m_canCut = false; // false when an empty piece would defeat the BytePairTable argument
};

BpeTokenizer::BpeTokenizer(BpeSpec spec)
    : m_spec(std::move(spec))
{
    m_vocabSize = int32_t(m_spec.pieces.size());
    m_bosId = m_spec.bosId;
    m_eosId = m_spec.eosId;
    m_addBos = m_spec.addBos && m_bosId >= 0;
    m_name = m_spec.displayName;
    m_spec.special.resize(m_spec.pieces.size(), 0);

    const std::array<uint32_t, 256> &alphabet = unicode::byteToCodePoint();
    for (int b = 0; b < 256; ++b) {
        m_byteLevelChars[b].clear();
        unicode::appendUtf8(m_byteLevelChars[b], alphabet[b]);
        m_byteLevelIds[b] = findPiece(m_spec.vocab, m_byteLevelChars[b]);
        m_fallbackIds[b] = findPiece(m_spec.vocab, byteTokenName(uint8_t(b)));
    }
    m_added = AddedTokenMatcher(m_spec.addedTokens);
    if (!m_spec.byteLevel) {
        m_canCut = true;
        for (const auto &[piece, id] : m_spec.vocab) {
            m_adjacentBytes.addPiece(piece);
            m_canCut = m_canCut && !piece.empty();
        }
    }
}

void BpeTokenizer::failUnencodable(std::string_view what) const
{
    fail(m_spec.sourceName,
        "cannot encode " + std::string(what)
            + ": it is not in the vocabulary and there is no byte fallback or unknown token");
}

std::string BpeTokenizer::normalize(std::string_view text) const
{
    std::string s(text);
    for (const NormalizerStep &step : m_spec.normalizer) {
        if (step.kind == NormalizerStep::Kind::Prepend) {
            if (!s.empty())
                s.insert(0, step.content);
        } else if (!step.pattern.empty()) {
            std::string replaced;
            replaced.reserve(s.size() + s.size() / 2);
            for (size_t i = 0; i < s.size();) {
                if (s.compare(i, step.pattern.size(), step.pattern) == 0) {
                    replaced += step.content;
                    i += step.pattern.size();
                } else {
                    replaced += s[i++];
                }
            }
            s = std::move(replaced);
        }
    }
    return s;
}

std::vector<std::string> BpeTokenizer::preTokenize(std::string normalized, bool atTextStart) const
{
    std::vector<std::string> pieces;
    if (normalized.empty())
        return pieces;
    pieces.push_back(std::move(normalized));
    for (const PreTokenizerStep &step : m_spec.preTokenizer) {
        std::vector<std::string> next;
        next.reserve(pieces.size());
        for (size_t p = 0; p < pieces.size(); ++p) {
            std::string &piece = pieces[p];
            switch (step.kind) {
            case PreTokenizerStep::Kind::Split:
                for (std::string_view v : splitText(piece, step.pattern))
                    next.emplace_back(v);
                break;
            case PreTokenizerStep::Kind::ByteLevel:
                if (step.addPrefixSpace && !piece.empty() && piece[0] != ' ')
                    piece.insert(0, 1, ' ');
                if (step.useRegex) {
                    for (std::string_view v : splitText(piece, SplitPattern::Gpt2))
                        next.emplace_back(v);
                } else {
                    next.push_back(std::move(piece));
                }
                break;
            case PreTokenizerStep::Kind::Metaspace: {
                const std::string &r = step.replacement;
                std::string s;
                s.reserve(piece.size() + piece.size() / 2);
                for (char c : piece) {
                    if (c == ' ')
                        s += r;
                    else
                        s += c;
                }
                const bool prepend = step.prepend == PreTokenizerStep::Prepend::Always
                    || (step.prepend == PreTokenizerStep::Prepend::First && atTextStart && p == 0);
                if (prepend && !s.empty() && s.compare(0, r.size(), r) != 0)
                    s.insert(0, r);
                if (!step.split || r.empty()) {
                    next.push_back(std::move(s));
                    break;
                }
                // Split before every replacement character, which stays with what follows it.
                size_t start = 0;
                for (size_t i = r.size() <= s.size() ? s.find(r, 1) : std::string::npos; i != std::string::npos;
                     i = s.find(r, i + r.size())) {
                    if (i > start)
                        next.push_back(s.substr(start, i - start));
                    start = i;
                }
                if (start < s.size())
                    next.push_back(s.substr(start));
                break;
            }
            }
        }
        pieces = std::move(next);
    }
    return pieces;
}

void BpeTokenizer::initialSymbols(
    std::string_view piece, std::vector<int32_t> &symbols, std::vector<uint32_t> &ends) const
{
    symbols.clear();
    ends.clear();
    if (m_spec.byteLevel) {
        for (char c : piece) {
            int32_t id = m_byteLevelIds[uint8_t(c)];
            if (id < 0)
                id = m_spec.unkId;
            if (id < 0)
                failUnencodable("byte " + byteTokenName(uint8_t(c)));
            symbols.push_back(id);
        }
        return;
    }
    // SentencePiece style: characters (malformed bytes one by one), then byte fallback, then <unk>.
    bool lastWasUnk = false;
    for (size_t pos = 0; pos < piece.size();) {
        const size_t length = unicode::decodeUtf8(piece, pos).length;
        const std::string_view ch = piece.substr(pos, length);
        pos += length;
        if (const int32_t id = findPiece(m_spec.vocab, ch); id >= 0) {
            symbols.push_back(id);
            ends.push_back(uint32_t(pos));
            lastWasUnk = false;
            continue;
        }
        if (m_spec.byteFallback
            && std::all_of(ch.begin(), ch.end(), [&](char c) { return m_fallbackIds[uint8_t(c)] >= 0; })) {
            for (size_t i = 0; i < ch.size(); ++i) {
                symbols.push_back(m_fallbackIds[uint8_t(ch[i])]);
                ends.push_back(uint32_t(pos - ch.size() + i + 1));
            }
            lastWasUnk = false;
            continue;
        }
        if (m_spec.unkId < 0)
            failUnencodable("'" + std::string(ch) + "'");
        if (m_spec.fuseUnk && lastWasUnk) {
            ends.back() = uint32_t(pos);
        } else {
            symbols.push_back(m_spec.unkId);
            ends.push_back(uint32_t(pos));
        }
        lastWasUnk = true;
    }
}

void BpeTokenizer::applyMerges(std::vector<int32_t> &ids, Workspace &ws) const
{
    const size_t n = ids.size();
    if (n < 2 || m_spec.merges.empty())
        return;
    std::vector<Symbol> &symbols = ws.symbols;
    std::vector<Candidate> &heap = ws.heap;
    symbols.resize(n);
    for (size_t i = 0; i < n; ++i)
        symbols[i] = { ids[i], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1 };
    heap.clear();
    // Min-heap on (rank, position): std heap functions build max-heaps, so "less" means "comes later".
    const auto later
        = [](const Candidate &a, const Candidate &b) { return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos); };
    const auto consider = [&](int32_t pos) {
        const int32_t next = symbols[size_t(pos)].next;
        if (next < 0)
            return;
        const int32_t left = symbols[size_t(pos)].id;
        const int32_t right = symbols[size_t(next)].id;
        const auto it = m_spec.merges.find(BpeSpec::mergeKey(left, right));
        if (it == m_spec.merges.end())
            return;
        heap.push_back({ it->second.rank, pos, left, right, it->second.merged });
        std::push_heap(heap.begin(), heap.end(), later);
    };
    for (size_t i = 0; i + 1 < n; ++i)
        consider(int32_t(i));
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later);
        const Candidate c = heap.back();
        heap.pop_back();
        Symbol &s = symbols[size_t(c.pos)];
        // Stale entries: the left symbol was merged away or changed, or its right neighbour changed. Ids
        // cannot come back once changed (merged pieces only grow), so equal ids mean the pair still stands.
        if (s.id != c.left || s.next < 0 || symbols[size_t(s.next)].id != c.right)
            continue;
        Symbol &right = symbols[size_t(s.next)];
        s.id = c.merged;
        s.next = right.next;
        if (right.next >= 0)
            symbols[size_t(right.next)].prev = c.pos;
        right.id = -1;
        if (s.prev >= 0)
            consider(s.prev);
        consider(c.pos);
    }
    ids.clear();
    for (int32_t i = 0; i != -1; i = symbols[size_t(i)].next)
        ids.push_back(symbols[size_t(i)].id);
}

void BpeTokenizer::mergeCached(
    std::string_view text, const int32_t *symbols, size_t count, std::vector<int32_t> &out, Workspace &ws) const
{
    constexpr size_t kMaxCachedBytes = 64; // long stretches rarely repeat
    constexpr size_t kMaxCacheEntries = 1 << 17;
    const bool cacheable = text.size() <= kMaxCachedBytes;
    if (cacheable) {
        if (const auto it = ws.cache.find(text); it != ws.cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    ws.stretch.assign(symbols, symbols + count);
    applyMerges(ws.stretch, ws);
    out.insert(out.end(), ws.stretch.begin(), ws.stretch.end());
    if (cacheable) {
        if (ws.cache.size() >= kMaxCacheEntries)
            ws.cache.clear();
        ws.cache.emplace(text, ws.stretch);
    }
}

void BpeTokenizer::encodePiece(std::string_view piece, std::vector<int32_t> &out, Workspace &ws) const
{
    if (m_spec.ignoreMerges) {
        std::string_view asVocab = piece;
        if (m_spec.byteLevel) {
            ws.mapped.clear();
            for (char c : piece)
                ws.mapped += m_byteLevelChars[uint8_t(c)];
            asVocab = ws.mapped;
        }
        if (const int32_t id = findPiece(m_spec.vocab, asVocab); id >= 0) {
            out.push_back(id);
            return;
        }
    }
    initialSymbols(piece, ws.initial, ws.ends);
    const std::vector<int32_t> &symbols = ws.initial;
    if (!m_canCut || m_spec.byteLevel) {
        mergeCached(piece, symbols.data(), symbols.size(), out, ws);
        return;
    }
    // SentencePiece style, where the whole text is typically one piece: merge stretch by stretch between
    // symbols that no merge can join (see BytePairTable), the stretches' text being their cache key.
    size_t first = 0;
    const auto flush = [&](size_t end) {
        const uint32_t begin = first == 0 ? 0 : ws.ends[first - 1];
        mergeCached(piece.substr(begin, ws.ends[end - 1] - begin), symbols.data() + first, end - first, out, ws);
        first = end;
    };
    for (size_t i = 1; i < symbols.size(); ++i) {
        const std::string &left = m_spec.pieces[size_t(symbols[i - 1])];
        const std::string &right = m_spec.pieces[size_t(symbols[i])];
        if (!m_adjacentBytes.contains(uint8_t(left.back()), uint8_t(right.front())))
            flush(i);
    }
    if (first < symbols.size())
        flush(symbols.size());
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const
{
    std::vector<int32_t> out;
    if (text.empty())
        return out;
    out.reserve(text.size() / 3 + 4);
    Workspace ws;

    const std::vector<TextFragment> fragments
        = m_added.empty() ? std::vector<TextFragment> { { text, -1, 0 } } : m_added.split(text);
    for (const TextFragment &f : fragments) {
        if (f.token >= 0) {
            out.push_back(f.token);
            continue;
        }
        for (const std::string &piece : preTokenize(normalize(f.text), f.offset == 0))
            encodePiece(piece, out, ws);
    }
    return out;
}

void BpeTokenizer::appendRendered(int32_t id, std::string &out) const
{
    const std::string &piece = m_spec.pieces[size_t(id)];
    if (m_spec.decoder == BpeDecoder::ByteLevel) {
        // Characters outside the byte alphabet (added tokens' text) pass through, as in Hugging Face.
        for (size_t pos = 0; pos < piece.size();) {
            const unicode::DecodedChar c = unicode::decodeUtf8(piece, pos);
            const int b = c.cp == unicode::kInvalid ? -1 : unicode::codePointToByte(c.cp);
            if (b >= 0)
                out += char(b);
            else
                out.append(piece, pos, c.length);
            pos += c.length;
        }
        return;
    }
    if (m_spec.decodeByteFallback) {
        if (const int b = parseByteToken(piece); b >= 0) {
            out += char(b);
            return;
        }
    }
    out += unescapeSpaces(piece);
}

std::string BpeTokenizer::decode(const std::vector<int32_t> &ids) const
{
    std::string out;
    bool atStart = m_spec.decoder == BpeDecoder::SentencePiece && m_spec.stripLeadingSpace;
    for (int32_t id : ids) {
        checkId(id);
        if (m_spec.special[size_t(id)])
            continue;
        const size_t before = out.size();
        appendRendered(id, out);
        if (atStart && out.size() > before) {
            if (out[before] == ' ')
                out.erase(before, 1);
            atStart = false;
        }
    }
    return out;
}

std::string BpeTokenizer::tokenToPiece(int32_t id) const
{
    checkId(id);
    if (m_spec.special[size_t(id)])
        return m_spec.pieces[size_t(id)];
    std::string out;
    appendRendered(id, out);
    return out;
}

} // namespace

std::unique_ptr<Tokenizer> makeBpeTokenizer(BpeSpec spec)
{
    return std::make_unique<BpeTokenizer>(std::move(spec));
}

// GGUF "gpt2": tokens + merges ("left right"), split per tokenizer.ggml.pre, as llama.cpp's BPE vocabulary.
std::unique_ptr<Tokenizer> makeBpeTokenizer(const GgufFile &file)
{
    BpeSpec spec;
    spec.sourceName = file.fileName();
    const std::vector<std::string> *tokens = file.stringArray("tokenizer.ggml.tokens");
    if (!tokens)
        fail(spec.sourceName, "no tokenizer vocabulary in the metadata (tokenizer.ggml.tokens is missing)");
    if (tokens->empty() || tokens->size() > size_t(INT32_MAX))
        fail(spec.sourceName, "tokenizer.ggml.tokens has " + std::to_string(tokens->size()) + " entries");
    const std::vector<std::string> *merges = file.stringArray("tokenizer.ggml.merges");
    if (!merges)
        fail(spec.sourceName, "tokenizer.ggml.merges is missing (required for a 'gpt2' tokenizer)");
    spec.pieces = *tokens;
    const size_t n = spec.pieces.size();

    std::vector<TokenType> types(n, TokenType::Normal);
    if (std::optional<std::vector<int32_t>> t = file.getI32Array("tokenizer.ggml.token_type")) {
        if (t->size() != n)
            fail(spec.sourceName,
                "tokenizer.ggml.token_type has " + std::to_string(t->size()) + " entries for " + std::to_string(n)
                    + " tokens");
        for (size_t i = 0; i < n; ++i)
            types[i] = (*t)[i] >= 1 && (*t)[i] <= 6 ? TokenType((*t)[i]) : TokenType::Normal;
    }
    spec.special.resize(n, 0);
    spec.vocab.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        spec.vocab.insert_or_assign(spec.pieces[i], int32_t(i)); // llama.cpp: a repeated piece maps to its last id
        spec.special[i] = types[i] == TokenType::Control || types[i] == TokenType::Unused;
        if (types[i] == TokenType::UserDefined)
            spec.addedTokens.push_back({ spec.pieces[i], int32_t(i), false, false, false, false });
    }

    // llama.cpp splits a merge at the first space after the first character and keeps the first rank of a
    // repeated pair. Pairs whose pieces are not in the vocabulary can never apply to ids; they are skipped,
    // as llama.cpp loads them without complaint.
    spec.merges.reserve(merges->size());
    for (size_t rank = 0; rank < merges->size(); ++rank) {
        const std::string &m = (*merges)[rank];
        const size_t space = m.find(' ', 1);
        if (space == std::string::npos)
            fail(spec.sourceName,
                "tokenizer.ggml.merges[" + std::to_string(rank) + "] '" + m
                    + "' is not two pieces separated by a space");
        const std::string_view left = std::string_view(m).substr(0, space);
        const std::string_view right = std::string_view(m).substr(space + 1);
        const int32_t l = findPiece(spec.vocab, left);
        const int32_t r = findPiece(spec.vocab, right);
        const int32_t merged = findPiece(spec.vocab, std::string(left) + std::string(right));
        if (l < 0 || r < 0 || merged < 0)
            continue;
        spec.merges.emplace(BpeSpec::mergeKey(l, r), BpeMerge { int32_t(rank), merged });
    }

    const std::string pre = file.getString("tokenizer.ggml.pre").value_or("default");
    SplitPattern pattern = SplitPattern::Gpt2;
    std::string kind = "gpt2-bpe";
    bool addBosDefault = false;
    if (pre == "default" || pre == "gpt-2" || pre == "gpt2") {
    } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3") {
        pattern = SplitPattern::Llama3;
        spec.ignoreMerges = true; // as llama.cpp sets for this pre-tokenizer
        addBosDefault = true;
        kind = "llama3-bpe";
    } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
        pattern = SplitPattern::Qwen2;
        kind = "qwen2-bpe";
    } else {
        fail(spec.sourceName,
            "tokenizer.ggml.pre '" + pre + "' is not supported (supported: default, gpt-2, llama-bpe/llama3, qwen2)");
    }
    PreTokenizerStep split;
    split.kind = PreTokenizerStep::Kind::Split;
    split.pattern = pattern;
    spec.preTokenizer.push_back(split);
    spec.byteLevel = true;
    spec.decoder = BpeDecoder::ByteLevel;
    spec.displayName = kind + " (GGUF)";

    spec.unkId = ggufTokenId(file, "tokenizer.ggml.unknown_token_id", -1, n);
    // llama.cpp's defaults for BPE vocabularies are 11 for both; real files always set them.
    spec.bosId = ggufTokenId(file, "tokenizer.ggml.bos_token_id", n > 11 ? 11 : -1, n);
    spec.eosId = ggufTokenId(file, "tokenizer.ggml.eos_token_id", n > 11 ? 11 : -1, n);
    spec.addBos = file.getBool("tokenizer.ggml.add_bos_token").value_or(addBosDefault);
    return makeBpeTokenizer(std::move(spec));
}

} // namespace qs::core
