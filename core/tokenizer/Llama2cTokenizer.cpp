// llama2.c tokenizer.bin (formats.md 7.3) with run.c's encode() and decode().
//
// run.c merges by rescanning all adjacent pairs for the best score after every merge (quadratic). The same
// choice - highest score, ties to the leftmost pair - comes out of a priority queue over a linked list,
// which is what is done here, so long texts stay fast while the ids stay identical.

#include <filesystem>
#include <fstream>
#include <limits>
#include <queue>

#include "common/Error.h"
#include "tokenizer/TokenizerImpl.h"

namespace qs::core {

namespace {

namespace fs = std::filesystem;

class Llama2cTokenizer final : public Tokenizer
{
public:
    Llama2cTokenizer(const std::string &path, int32_t vocabSize);

    std::vector<int32_t> encode(std::string_view text) const override;
    std::string decode(const std::vector<int32_t> &ids) const override;
    std::string tokenToPiece(int32_t id) const override;

private:
    std::string render(int32_t id, bool afterBos) const;

    std::vector<std::string> m_pieces;
    std::vector<float> m_scores;
    PieceIndex m_index;
    std::string m_fileName;
};

Llama2cTokenizer::Llama2cTokenizer(const std::string &path, int32_t vocabSize)
    : m_fileName(fs::path(path).filename().string())
{
    if (vocabSize < 0)
        fail(m_fileName, "invalid vocabulary size " + std::to_string(vocabSize));
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(m_fileName, "cannot be opened");
    std::error_code ec;
    const uintmax_t fileSize = fs::file_size(path, ec);
    if (ec)
        fail(m_fileName, "cannot read its size");

    uint64_t offset = 0;
    const auto readExact = [&](void *dst, size_t n, const char *what, int32_t id) {
        if (!in.read(static_cast<char *>(dst), std::streamsize(n)))
            fail(m_fileName,
                "truncated: the file ends inside " + std::string(what)
                    + (id >= 0 ? " of token " + std::to_string(id) : std::string()) + " (offset "
                    + std::to_string(offset) + ", " + std::to_string(fileSize) + " bytes)");
        offset += n;
    };
    int32_t maxTokenLength = 0;
    readExact(&maxTokenLength, 4, "the header", -1);
    if (maxTokenLength <= 0)
        fail(m_fileName, "max_token_length " + std::to_string(maxTokenLength) + " is not positive");

    // Without a vocabulary size (it lives in the model header), records are read until the file ends.
    for (int32_t id = 0; vocabSize == 0 ? offset < fileSize : id < vocabSize; ++id) {
        float score = 0;
        int32_t length = 0;
        readExact(&score, 4, "the score", id);
        readExact(&length, 4, "the length", id);
        if (length < 0)
            fail(m_fileName, "token " + std::to_string(id) + " has negative length " + std::to_string(length));
        // Checked before allocating, so a corrupt length cannot ask for gigabytes.
        if (uint64_t(length) > fileSize - std::min<uint64_t>(offset, fileSize))
            fail(m_fileName,
                "truncated: token " + std::to_string(id) + " has length " + std::to_string(length)
                    + ", beyond the end of the file (" + std::to_string(fileSize) + " bytes)");
        std::string piece(size_t(length), '\0');
        readExact(piece.data(), piece.size(), "the text", id);
        m_pieces.push_back(std::move(piece));
        m_scores.push_back(score);
    }
    if (m_pieces.size() < 3)
        fail(m_fileName, "has " + std::to_string(m_pieces.size()) + " tokens; <unk>, <s> and </s> at least are needed");
    // run.c binary-searches a sorted copy, so which of two equal pieces it finds is unspecified; the
    // first id is taken here.
    m_index.reserve(m_pieces.size());
    for (size_t i = 0; i < m_pieces.size(); ++i)
        m_index.emplace(m_pieces[i], int32_t(i));
    m_vocabSize = int32_t(m_pieces.size());
    m_bosId = 1; // hard-coded in run.c
    m_eosId = 2;
    m_addBos = true;
    m_name = "llama2.c (tokenizer.bin)";
}

std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text) const
{
    struct Symbol
    {
        int32_t id;
        int32_t prev;
        int32_t next;
    };
    struct Pair
    {
        float score;
        int32_t pos;
        int32_t left;
        int32_t right;
        int32_t merged;
    };
    struct Lower // highest score first, then the leftmost pair, as run.c's strict '>' scan picks
    {
        bool operator()(const Pair &a, const Pair &b) const
        {
            return a.score < b.score || (a.score == b.score && a.pos > b.pos);
        }
    };

    std::vector<Symbol> symbols;
    if (text.empty())
        return {};
    symbols.reserve(text.size() + 1);
    const auto push = [&](int32_t id) {
        const int32_t index = int32_t(symbols.size());
        if (index > 0)
            symbols.back().next = index;
        symbols.push_back({ id, index - 1, -1 });
    };
    // The dummy prefix: run.c looks up the " " piece for non-empty text (a vocabulary without one gets none).
    if (const int32_t space = findPiece(m_index, " "); space >= 0)
        push(space);
    // UTF-8 characters as run.c groups them: a byte plus up to three following continuation bytes.
    for (size_t i = 0; i < text.size();) {
        size_t n = 1;
        while (i + n < text.size() && n < 4 && (uint8_t(text[i + n]) & 0xC0) == 0x80)
            ++n;
        const std::string_view ch = text.substr(i, n);
        if (const int32_t id = findPiece(m_index, ch); id >= 0) {
            push(id);
        } else {
            for (char c : ch) { // byte fallback: the first three ids are <unk>, <s>, </s>
                const int32_t id2 = int32_t(uint8_t(c)) + 3;
                if (id2 >= m_vocabSize)
                    fail(m_fileName,
                        "cannot encode byte " + byteTokenName(uint8_t(c))
                            + ": the vocabulary is too small for byte fallback");
                push(id2);
            }
        }
        i += n;
    }

    std::priority_queue<Pair, std::vector<Pair>, Lower> queue;
    std::string buffer;
    const auto consider = [&](int32_t pos) {
        if (pos < 0 || symbols[size_t(pos)].next < 0)
            return;
        const Symbol &l = symbols[size_t(pos)];
        const Symbol &r = symbols[size_t(l.next)];
        buffer.assign(m_pieces[size_t(l.id)]);
        buffer.append(m_pieces[size_t(r.id)]);
        const int32_t merged = findPiece(m_index, buffer);
        // run.c starts its best score at -1e10 and needs a strictly greater one; NaN never qualifies.
        if (merged < 0 || !(m_scores[size_t(merged)] > -1e10f))
            return;
        queue.push({ m_scores[size_t(merged)], pos, l.id, r.id, merged });
    };
    for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i)
        consider(i);
    while (!queue.empty()) {
        const Pair p = queue.top();
        queue.pop();
        Symbol &l = symbols[size_t(p.pos)];
        if (l.id != p.left || l.next < 0 || symbols[size_t(l.next)].id != p.right)
            continue; // stale: one side has been merged since
        Symbol &r = symbols[size_t(l.next)];
        l.id = p.merged;
        l.next = r.next;
        if (r.next >= 0)
            symbols[size_t(r.next)].prev = p.pos;
        r.id = -1;
        consider(l.prev);
        consider(p.pos);
    }

    std::vector<int32_t> out;
    for (int32_t i = 0; i != -1; i = symbols[size_t(i)].next)
        out.push_back(symbols[size_t(i)].id);
    return out;
}

// run.c's decode(prev, token): after BOS a leading space is dropped; "<0xHH>" pieces are raw bytes (run.c
// reads them with sscanf "<0x%02hhX>", so one or two hex digits after "<0x" are enough).
std::string Llama2cTokenizer::render(int32_t id, bool afterBos) const
{
    std::string_view piece = m_pieces[size_t(id)];
    if (afterBos && !piece.empty() && piece[0] == ' ')
        piece.remove_prefix(1);
    if (piece.size() >= 4 && piece.substr(0, 3) == "<0x") {
        const auto hex = [](char c) {
            return c >= '0' && c <= '9' ? c - '0'
                : c >= 'A' && c <= 'F'  ? c - 'A' + 10
                : c >= 'a' && c <= 'f'  ? c - 'a' + 10
                                        : -1;
        };
        int value = hex(piece[3]);
        if (value >= 0) {
            if (piece.size() >= 5 && hex(piece[4]) >= 0)
                value = value * 16 + hex(piece[4]);
            return std::string(1, char(value));
        }
    }
    return std::string(piece);
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t> &ids) const
{
    // BOS and EOS are written as "\n<s>\n" / "\n</s>\n"; run.c never prints them, so they render as
    // nothing. A sequence without BOS is decoded as if one preceded it, which drops the dummy prefix.
    std::string out;
    int32_t prev = m_bosId;
    for (int32_t id : ids) {
        checkId(id);
        if (id != m_bosId && id != m_eosId)
            out += render(id, prev == m_bosId);
        prev = id;
    }
    return out;
}

std::string Llama2cTokenizer::tokenToPiece(int32_t id) const
{
    checkId(id);
    if (id == m_bosId)
        return "<s>";
    if (id == m_eosId)
        return "</s>";
    return render(id, false);
}

} // namespace

std::unique_ptr<Tokenizer> makeLlama2cTokenizer(const std::string &path, int32_t vocabSize)
{
    return std::make_unique<Llama2cTokenizer>(path, vocabSize);
}

} // namespace qs::core
