#include "io/Safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "io/MappedFile.h"

namespace qs::core {

namespace {

using nlohmann::json;

struct DTypeInfo
{
    const char *name;
    unsigned bits;
};

// formats.md 1.2. Sub-byte types are listed so that valid files using them parse; only F32/F16/BF16 can be
// read as float, and the model readers decide whether a tensor of another type matters.
// clang-format off
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 8},     {"U8", 8},      {"I8", 8},          {"I16", 16},         {"U16", 16},
    {"F16", 16},     {"BF16", 16},   {"I32", 32},        {"U32", 32},         {"F32", 32},
    {"F64", 64},     {"I64", 64},    {"U64", 64},        {"C64", 64},         {"F8_E4M3", 8},
    {"F8_E5M2", 8},  {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"F4", 4},
    {"F6_E2M3", 6},  {"F6_E3M2", 6},
};
// clang-format on

unsigned dtypeBits(const std::string &name)
{
    for (const DTypeInfo &d : kDTypes)
        if (name == d.name)
            return d.bits;
    return 0;
}

uint64_t readU64Le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

// JSON integers >= 0, taken as uint64 directly from the parser (never through double, formats.md 1.1).
// nlohmann stores non-negative literals as unsigned; "-0" arrives as a signed zero.
bool asU64(const json &j, uint64_t &out)
{
    if (j.is_number_unsigned()) {
        out = j.get<uint64_t>();
        return true;
    }
    if (j.is_number_integer() && j.get<int64_t>() == 0) {
        out = 0;
        return true;
    }
    return false;
}

std::string shapeText(const std::vector<uint64_t> &shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// Short, printable excerpt of a header key for messages (keys of hostile files can be anything).
std::string quoteName(const std::string &name)
{
    std::string s;
    for (unsigned char c : name.substr(0, 200))
        s += (c >= 0x20 && c != 0x7F) ? char(c) : '?';
    if (name.size() > 200)
        s += "...";
    return "'" + s + "'";
}

SafetensorsEntry parseEntry(const std::string &name, const json &entry, const std::string &file)
{
    const std::string what = "tensor " + quoteName(name);
    if (!entry.is_object())
        fail(file, what + ": header entry is not a JSON object");

    SafetensorsEntry info;
    info.name = name;

    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string())
        fail(file, what + ": missing or non-string 'dtype'");
    info.dtype = dtype->get<std::string>();
    info.bitsPerElement = dtypeBits(info.dtype);
    if (info.bitsPerElement == 0)
        fail(file, what + ": unknown dtype " + quoteName(info.dtype));

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array())
        fail(file, what + ": missing 'shape' or it is not an array");
    info.numel = 1;
    bool overflow = false;
    for (const json &d : *shape) {
        uint64_t v = 0;
        if (!asU64(d, v))
            fail(file, what + ": 'shape' must hold non-negative integers, found " + d.dump().substr(0, 40));
        info.shape.push_back(v);
        if (__builtin_mul_overflow(info.numel, v, &info.numel))
            overflow = true;
    }
    // A zero anywhere makes the product 0 even if an earlier partial product overflowed.
    if (std::find(info.shape.begin(), info.shape.end(), uint64_t(0)) != info.shape.end()) {
        info.numel = 0;
        overflow = false;
    }
    if (overflow)
        fail(file, what + ": shape " + shapeText(info.shape) + " has more elements than fit in 64 bits");

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 || !asU64((*offsets)[0], info.begin)
        || !asU64((*offsets)[1], info.end))
        fail(file, what + ": 'data_offsets' must be two non-negative integers [begin, end]");
    if (info.end < info.begin)
        fail(file,
            what + ": data_offsets end " + std::to_string(info.end) + " is before begin " + std::to_string(info.begin));

    uint64_t bits = 0;
    if (__builtin_mul_overflow(info.numel, uint64_t(info.bitsPerElement), &bits))
        fail(file, what + ": shape " + shapeText(info.shape) + " of " + info.dtype + " overflows 64 bits of size");
    if (bits % 8 != 0)
        fail(file,
            what + ": " + std::to_string(info.numel) + " elements of " + info.dtype
                + " do not fill a whole number of bytes");
    if (bits / 8 != info.byteSize())
        fail(file,
            what + ": shape " + shapeText(info.shape) + " of " + info.dtype + " needs " + std::to_string(bits / 8)
                + " bytes but data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "] give "
                + std::to_string(info.byteSize()));
    return info;
}

} // namespace

std::optional<DType> SafetensorsEntry::floatDType() const
{
    if (dtype == "F32")
        return DType::F32;
    if (dtype == "F16")
        return DType::F16;
    if (dtype == "BF16")
        return DType::BF16;
    return std::nullopt;
}

const SafetensorsEntry *SafetensorsHeader::find(const std::string &name) const
{
    const auto it = index.find(name);
    return it == index.end() ? nullptr : &tensors[it->second];
}

size_t firstInvalidUtf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return i; // continuation byte without a lead, 0xC0/0xC1 (overlong) or > 0xF4
        }
        if (n - i < len)
            return i;
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0u) != 0x80u)
                return i;
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (overlong || surrogate || cp > 0x10FFFF)
            return i;
        i += len;
    }
    return n;
}

bool isValidUtf8(const uint8_t *data, size_t size)
{
    return firstInvalidUtf8(data, size) == size;
}

SafetensorsHeader Safetensors::parseHeader(
    const uint8_t *bytes, size_t size, uint64_t fileSize, const std::string &file)
{
    if (fileSize < 8)
        fail(
            file, "file is " + std::to_string(fileSize) + " bytes, too short for the 8-byte safetensors header length");
    if (size < 8 || size > fileSize)
        fail(file,
            "internal error: header buffer of " + std::to_string(size) + " bytes for a file of "
                + std::to_string(fileSize));

    SafetensorsHeader h;
    h.headerLength = readU64Le(bytes);
    if (h.headerLength > kMaxHeaderLength)
        fail(file,
            "header length " + std::to_string(h.headerLength)
                + " exceeds the safetensors limit of 100000000 bytes (corrupt or not a safetensors file)");
    if (h.headerLength > fileSize - 8)
        fail(file,
            "header length " + std::to_string(h.headerLength) + " runs past the end of the file ("
                + std::to_string(fileSize) + " bytes)");
    h.dataOffset = 8 + h.headerLength;
    h.dataSize = fileSize - h.dataOffset;
    if (size < h.dataOffset)
        fail(file,
            "internal error: only " + std::to_string(size) + " of " + std::to_string(h.dataOffset)
                + " header bytes were supplied");

    const uint8_t *text = bytes + 8;
    const size_t textSize = size_t(h.headerLength);
    if (textSize == 0 || text[0] != '{')
        fail(file, "header does not start with '{' (not a safetensors file)");
    // nlohmann-json checks UTF-8 inside strings only; the format requires the whole header to be UTF-8.
    const size_t bad = firstInvalidUtf8(text, textSize);
    if (bad != textSize)
        fail(file, "header is not valid UTF-8 (byte " + std::to_string(8 + bad) + " of the file)");

    // JSON text cannot hold a raw NUL, and nlohmann-json would stop reading at one: whatever followed it
    // would be ignored instead of rejected.
    if (const void *nul = std::memchr(text, 0, textSize))
        fail(file,
            "header contains a NUL byte (byte " + std::to_string(8 + (static_cast<const uint8_t *>(nul) - text))
                + " of the file)");

    json root;
    std::string duplicate;
    try {
        // The spec forbids duplicate keys; a repeated tensor name would silently hide one entry.
        const json::parser_callback_t onEvent
            = [&duplicate, seen = std::set<std::string>()](int depth, json::parse_event_t event, json &parsed) mutable {
                  if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()
                      && !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
                      duplicate = parsed.get<std::string>();
                  return true;
              };
        root = json::parse(text, text + textSize, onEvent);
    } catch (const json::exception &e) {
        fail(file, std::string("header is not valid JSON: ") + e.what());
    }
    if (!root.is_object())
        fail(file, "header is not a JSON object");
    if (!duplicate.empty())
        fail(file, "header lists " + quoteName(duplicate) + " twice");

    for (auto it = root.begin(); it != root.end(); ++it) {
        if (it.key() == "__metadata__") {
            const json &meta = it.value();
            if (meta.is_null())
                continue;
            if (!meta.is_object())
                fail(file, "'__metadata__' is not a JSON object");
            for (auto m = meta.begin(); m != meta.end(); ++m) {
                if (!m.value().is_string())
                    fail(file,
                        "'__metadata__' value for key " + quoteName(m.key())
                            + " is not a string (safetensors metadata holds strings only)");
                h.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        SafetensorsEntry info = parseEntry(it.key(), it.value(), file);
        if (info.end > h.dataSize)
            fail(file,
                "tensor " + quoteName(info.name) + " ends at byte " + std::to_string(info.end)
                    + " but the data section has " + std::to_string(h.dataSize) + " bytes");
        h.tensors.push_back(std::move(info));
    }

    // formats.md 1.3.5: sorted by (begin, end), the tensors must tile the data section from byte 0 with no
    // gaps or overlaps, and (1.3.7) end exactly at the end of the file.
    std::sort(h.tensors.begin(), h.tensors.end(),
        [](const auto &a, const auto &b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    uint64_t expected = 0;
    const SafetensorsEntry *previous = nullptr;
    for (const SafetensorsEntry &t : h.tensors) {
        if (t.begin != expected) {
            if (!previous)
                fail(file,
                    "tensor " + quoteName(t.name) + " is the first in the data section but starts at byte "
                        + std::to_string(t.begin) + " instead of 0");
            if (t.begin < expected)
                fail(file,
                    "tensor " + quoteName(t.name) + " (bytes " + std::to_string(t.begin) + " to "
                        + std::to_string(t.end) + ") overlaps tensor " + quoteName(previous->name) + " (bytes "
                        + std::to_string(previous->begin) + " to " + std::to_string(previous->end) + ")");
            fail(file,
                "gap of " + std::to_string(t.begin - expected) + " bytes between tensor " + quoteName(previous->name)
                    + " (ends at byte " + std::to_string(expected) + ") and tensor " + quoteName(t.name)
                    + " (starts at byte " + std::to_string(t.begin) + ")");
        }
        expected = t.end;
        previous = &t;
    }
    if (expected != h.dataSize)
        fail(file,
            "the data section has " + std::to_string(h.dataSize) + " bytes but the tensors cover only "
                + std::to_string(expected) + " (" + std::to_string(h.dataSize - expected)
                + " unexplained trailing bytes)");

    for (size_t i = 0; i < h.tensors.size(); ++i)
        h.index.emplace(h.tensors[i].name, i);
    return h;
}

std::shared_ptr<const Safetensors> Safetensors::open(const std::string &path)
{
    const std::string fileName = std::filesystem::path(path).filename().string();
    std::shared_ptr<const MappedFile> mapped = MappedFile::open(path); // its errors name the path
    std::shared_ptr<Safetensors> st(new Safetensors);
    st->m_file = mapped;
    st->m_path = path;
    st->m_fileName = fileName;
    // The whole file is mapped, but parseHeader only touches the first 8 + N bytes.
    st->m_header = parseHeader(mapped->data(), size_t(mapped->size()), mapped->size(), fileName);
    return st;
}

const uint8_t *Safetensors::tensorBytes(const SafetensorsEntry &info) const
{
    return m_file->data() + m_header.dataOffset + info.begin;
}

} // namespace qs::core
