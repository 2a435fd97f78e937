#include "tokenizer/Unicode.h"

#include <algorithm>

namespace qs::core::unicode {

namespace {

// The first 256 code points are asked for most (ASCII text, byte-level BPE), so they skip the search.
std::array<uint8_t, 256> buildLatin1Flags()
{
    std::array<uint8_t, 256> flags {};
    for (size_t i = 0; i < kCodePointRangeCount && kCodePointRanges[i].first < 256; ++i)
        for (uint32_t cp = kCodePointRanges[i].first; cp <= kCodePointRanges[i].last && cp < 256; ++cp)
            flags[cp] = kCodePointRanges[i].flags;
    return flags;
}

std::array<uint32_t, 256> buildByteToCodePoint()
{
    std::array<uint32_t, 256> map {};
    std::array<bool, 256> direct {};
    for (int b = '!'; b <= '~'; ++b)
        direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b)
        direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b)
        direct[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b)
        map[b] = direct[b] ? uint32_t(b) : next++;
    return map;
}

} // namespace

uint8_t codePointFlags(uint32_t cp)
{
    static const std::array<uint8_t, 256> latin1 = buildLatin1Flags();
    if (cp < 256)
        return latin1[cp];
    if (cp == kInvalid)
        return 0;
    const CodePointRange *end = kCodePointRanges + kCodePointRangeCount;
    const CodePointRange *it
        = std::upper_bound(kCodePointRanges, end, cp, [](uint32_t v, const CodePointRange &r) { return v < r.first; });
    if (it == kCodePointRanges)
        return 0;
    --it;
    return cp <= it->last ? it->flags : 0;
}

DecodedChar decodeUtf8(std::string_view text, size_t pos)
{
    const auto byteAt = [&](size_t i) { return uint8_t(text[i]); };
    const uint8_t b0 = byteAt(pos);
    if (b0 < 0x80)
        return { b0, 1 };
    size_t length = 0;
    uint32_t cp = 0;
    uint32_t minimum = 0;
    if ((b0 & 0xE0) == 0xC0) {
        length = 2;
        cp = b0 & 0x1F;
        minimum = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        length = 3;
        cp = b0 & 0x0F;
        minimum = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        length = 4;
        cp = b0 & 0x07;
        minimum = 0x10000;
    } else {
        return {};
    }
    if (pos + length > text.size())
        return {};
    for (size_t i = 1; i < length; ++i) {
        const uint8_t b = byteAt(pos + i);
        if ((b & 0xC0) != 0x80)
            return {};
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return {};
    return { cp, uint32_t(length) };
}

void appendUtf8(std::string &out, uint32_t cp)
{
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

const std::array<uint32_t, 256> &byteToCodePoint()
{
    static const std::array<uint32_t, 256> map = buildByteToCodePoint();
    return map;
}

int codePointToByte(uint32_t cp)
{
    // The image of bytes_to_unicode is U+0021..U+0143 (the 188 direct bytes plus 68 shifted ones).
    static const std::array<int16_t, 0x144> inverse = [] {
        std::array<int16_t, 0x144> inv;
        inv.fill(-1);
        const std::array<uint32_t, 256> &map = byteToCodePoint();
        for (int b = 0; b < 256; ++b)
            inv[map[b]] = int16_t(b);
        return inv;
    }();
    return cp < inverse.size() ? inverse[cp] : -1;
}

} // namespace qs::core::unicode
