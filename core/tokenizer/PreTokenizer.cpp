#include "tokenizer/PreTokenizer.h"

#include <cstdint>

#include "tokenizer/Unicode.h"

namespace qs::core {

namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kWhitespace;

// The input decoded once: code point, class flags and byte offset per character (plus an end sentinel),
// so the scanners can look ahead and back by characters.
struct Chars
{
    std::vector<uint32_t> cps;
    std::vector<uint8_t> flags;
    std::vector<size_t> offsets; // size() + 1 entries

    explicit Chars(std::string_view text)
    {
        cps.reserve(text.size());
        flags.reserve(text.size());
        offsets.reserve(text.size() + 1);
        for (size_t pos = 0; pos < text.size();) {
            const unicode::DecodedChar c = unicode::decodeUtf8(text, pos);
            cps.push_back(c.cp);
            flags.push_back(unicode::codePointFlags(c.cp));
            offsets.push_back(pos);
            pos += c.length;
        }
        offsets.push_back(text.size());
    }
    size_t size() const { return cps.size(); }
    // Out of range reads give "no character": no flags, a code point matching nothing.
    uint32_t cp(size_t i) const { return i < cps.size() ? cps[i] : unicode::kInvalid; }
    uint8_t flag(size_t i) const { return i < flags.size() ? flags[i] : 0; }
    bool isLetter(size_t i) const { return flag(i) & kLetter; }
    bool isNumber(size_t i) const { return flag(i) & kNumber; }
    bool isSpace(size_t i) const { return flag(i) & kWhitespace; }
    // [^\s\p{L}\p{N}] : any character that is none of the three (malformed bytes included).
    bool isOther(size_t i) const { return i < cps.size() && (flags[i] & (kLetter | kNumber | kWhitespace)) == 0; }
};

uint32_t asciiLower(uint32_t cp)
{
    return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
}

// 's 't 're 've 'm 'll 'd at i; returns the match length in characters (0 when none).
size_t contraction(const Chars &c, size_t i, bool ignoreCase)
{
    if (c.cp(i) != '\'')
        return 0;
    const auto at = [&](size_t k) { return ignoreCase ? asciiLower(c.cp(k)) : c.cp(k); };
    const uint32_t a = at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    const uint32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

// \s+(?!\S) then \s+ at i, where c[i] is whitespace: the greedy run, less its last character when a
// non-space follows it (that character then starts the next piece, e.g. " word").
size_t trailingWhitespace(const Chars &c, size_t i)
{
    size_t k = 0;
    while (c.isSpace(i + k))
        ++k;
    if (k > 1 && i + k < c.size())
        return k - 1;
    return k;
}

size_t matchGpt2(const Chars &c, size_t i)
{
    if (const size_t n = contraction(c, i, false))
        return n;
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional ASCII space, then a run of one class.
    const size_t j = i + (c.cp(i) == ' ' ? 1 : 0);
    if (c.isLetter(j)) {
        size_t e = j;
        while (c.isLetter(e))
            ++e;
        return e - i;
    }
    if (c.isNumber(j)) {
        size_t e = j;
        while (c.isNumber(e))
            ++e;
        return e - i;
    }
    if (c.isOther(j)) {
        size_t e = j;
        while (c.isOther(e))
            ++e;
        return e - i;
    }
    if (c.isSpace(i))
        return trailingWhitespace(c, i);
    return 1; // unreachable: every character is a letter, number, space or other
}

size_t matchLlama3(const Chars &c, size_t i, size_t maxDigits)
{
    if (const size_t n = contraction(c, i, true))
        return n;
    const uint32_t cp = c.cp(i);
    const bool newline = cp == '\r' || cp == '\n';
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c.isLetter(i) || (!newline && !c.isNumber(i) && c.isLetter(i + 1))) {
        size_t e = i + 1;
        while (c.isLetter(e))
            ++e;
        return e - i;
    }
    // \p{N}{1,3}
    if (c.isNumber(i)) {
        size_t e = i;
        while (e - i < maxDigits && c.isNumber(e))
            ++e;
        return e - i;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t j = i + (cp == ' ' ? 1 : 0);
    if (c.isOther(j)) {
        size_t e = j;
        while (c.isOther(e))
            ++e;
        while (c.cp(e) == '\r' || c.cp(e) == '\n')
            ++e;
        return e - i;
    }
    // \s*[\r\n]+ : greedy \s* backtracks to the last line break of the whitespace run.
    if (c.isSpace(i)) {
        size_t lastBreakEnd = 0;
        for (size_t k = i; c.isSpace(k); ++k)
            if (c.cp(k) == '\r' || c.cp(k) == '\n')
                lastBreakEnd = k + 1;
        if (lastBreakEnd > 0)
            return lastBreakEnd - i;
        return trailingWhitespace(c, i);
    }
    return 1; // unreachable, as above
}

} // namespace

std::vector<std::string_view> splitText(std::string_view text, SplitPattern pattern)
{
    std::vector<std::string_view> pieces;
    if (text.empty())
        return pieces;
    const Chars c(text);
    for (size_t i = 0; i < c.size();) {
        size_t n = 0;
        switch (pattern) {
        case SplitPattern::Gpt2:
            n = matchGpt2(c, i);
            break;
        case SplitPattern::Llama3:
            n = matchLlama3(c, i, 3);
            break;
        case SplitPattern::Qwen2:
            n = matchLlama3(c, i, 1);
            break;
        }
        if (n == 0)
            n = 1;
        const size_t begin = c.offsets[i];
        const size_t end = c.offsets[i + n];
        pieces.push_back(text.substr(begin, end - begin));
        i += n;
    }
    return pieces;
}

bool splitPatternFromRegex(std::string_view regex, SplitPattern &pattern)
{
    static constexpr std::string_view kGpt2
        = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    static constexpr std::string_view kLlama3
        = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    static constexpr std::string_view kQwen2
        = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    if (regex == kGpt2)
        pattern = SplitPattern::Gpt2;
    else if (regex == kLlama3)
        pattern = SplitPattern::Llama3;
    else if (regex == kQwen2)
        pattern = SplitPattern::Qwen2;
    else
        return false;
    return true;
}

} // namespace qs::core
