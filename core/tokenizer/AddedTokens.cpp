#include "tokenizer/AddedTokens.h"

#include <algorithm>

#include "tokenizer/Unicode.h"

namespace qs::core {

namespace {

bool isWordCharAt(std::string_view text, size_t pos)
{
    const unicode::DecodedChar c = unicode::decodeUtf8(text, pos);
    return c.cp == '_' || (unicode::codePointFlags(c.cp) & (unicode::kLetter | unicode::kNumber));
}

// Start of the character that ends just before pos (pos > 0), stepping over continuation bytes.
size_t previousCharStart(std::string_view text, size_t pos)
{
    size_t p = pos - 1;
    while (p > 0 && pos - p < 4 && (uint8_t(text[p]) & 0xC0) == 0x80)
        --p;
    return p;
}

bool isAsciiSpace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

} // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens)
    : m_byFirstByte(256)
{
    for (AddedToken &t : tokens)
        if (!t.content.empty() && t.id >= 0)
            m_tokens.push_back(std::move(t));
    for (uint32_t i = 0; i < m_tokens.size(); ++i)
        m_byFirstByte[uint8_t(m_tokens[i].content[0])].push_back(i);
    for (std::vector<uint32_t> &bucket : m_byFirstByte)
        std::stable_sort(bucket.begin(), bucket.end(),
            [&](uint32_t a, uint32_t b) { return m_tokens[a].content.size() > m_tokens[b].content.size(); });
}

std::vector<TextFragment> AddedTokenMatcher::split(std::string_view text) const
{
    std::vector<TextFragment> out;
    size_t textStart = 0; // start of the pending text stretch
    const auto flushText = [&](size_t end) {
        if (end > textStart)
            out.push_back({ text.substr(textStart, end - textStart), -1, textStart });
    };
    size_t pos = 0;
    while (pos < text.size()) {
        const AddedToken *match = nullptr;
        if (!m_tokens.empty()) {
            for (uint32_t index : m_byFirstByte[uint8_t(text[pos])]) {
                const AddedToken &t = m_tokens[index];
                if (text.compare(pos, t.content.size(), t.content) != 0)
                    continue;
                if (t.singleWord) {
                    const size_t end = pos + t.content.size();
                    if ((pos > 0 && isWordCharAt(text, previousCharStart(text, pos)))
                        || (end < text.size() && isWordCharAt(text, end)))
                        continue;
                }
                match = &t;
                break;
            }
        }
        if (!match) {
            ++pos;
            continue;
        }
        size_t begin = pos;
        size_t end = pos + match->content.size();
        if (match->lstrip)
            while (begin > textStart && isAsciiSpace(text[begin - 1]))
                --begin;
        if (match->rstrip)
            while (end < text.size() && isAsciiSpace(text[end]))
                ++end;
        flushText(begin);
        out.push_back({ text.substr(pos, match->content.size()), match->id, pos });
        textStart = end;
        pos = end;
    }
    flushText(text.size());
    return out;
}

} // namespace qs::core
