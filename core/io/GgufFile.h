#pragma once
// A parsed GGUF file (formats.md 2): header, metadata key/values of every type, tensor infos, alignment
// and where the tensor data starts. Parsing reads the header and metadata only; tensor data stays in the
// mapping until a reader asks for rows.
//
// Parsing validates everything the ggml reader does (formats.md 2.3) and more, so that a truncated or
// hostile file gives an Error naming the file and the problem instead of a crash or a huge allocation:
// every read is bounds-checked, counts are checked against the bytes left before anything is allocated,
// and every tensor's data must lie inside the file, aligned, without overlapping another's.
//
// Versions 2 and 3 are read (they are identical for little-endian files); version 1 is rejected.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/GgufBlocks.h"

namespace qs::core {

class MappedFile;

// Metadata value types (formats.md 2.2).
enum class GgufType : uint32_t {
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
};

const char *ggufTypeName(GgufType type); // "UINT32", "ARRAY", ... ("?" for ids outside the table)

// One metadata value. Scalars keep their bits; arrays keep their elements (strings as strings, numbers
// as the file's little-endian bytes, converted by the typed getters of GgufFile).
class GgufValue
{
public:
    GgufType type() const { return m_type; }
    bool isArray() const { return m_type == GgufType::Array; }
    GgufType elementType() const { return m_elementType; } // arrays only
    uint64_t arraySize() const { return m_count; } // arrays only

    // Description for messages: "UINT32", "ARRAY of STRING".
    std::string typeDescription() const;

    // Integer scalars (any signedness/width) and bools, as int64; nullopt for other types or a UINT64
    // beyond INT64_MAX.
    std::optional<int64_t> toInt64() const;
    // FLOAT32 / FLOAT64 scalars as double; nullopt otherwise.
    std::optional<double> toDouble() const;

    const std::string &string() const { return m_string; } // STRING scalars
    const std::vector<std::string> &strings() const { return m_strings; } // ARRAY of STRING
    // Numeric arrays: element i converted to int64 (integer element types) or double (float types).
    int64_t integerAt(uint64_t i) const;
    double floatAt(uint64_t i) const;

    uint64_t rawBits() const { return m_bits; } // numeric scalars: the value's bytes, zero-extended

private:
    friend class GgufParser;
    GgufType m_type = GgufType::UInt8;
    GgufType m_elementType = GgufType::UInt8;
    uint64_t m_count = 0;
    uint64_t m_bits = 0;
    std::string m_string;
    std::vector<std::string> m_strings;
    std::vector<uint8_t> m_elements;
};

struct GgufKeyValue
{
    std::string key;
    GgufValue value;
};

struct GgufTensorInfo
{
    std::string name;
    std::vector<uint64_t> ne; // dimensions, innermost (contiguous) first: a Linear [out, in] is [in, out]
    const GgmlTypeInfo *type = nullptr; // never null after parsing
    uint64_t offset = 0; // relative to GgufFile::dataStart()
    uint64_t numel = 0;
    uint64_t nbytes = 0;

    // Elements per row (ne[0]) and number of rows (product of the other dimensions).
    uint64_t rowLength() const { return ne.empty() ? 1 : ne[0]; }
    uint64_t rowCount() const { return rowLength() == 0 ? 0 : numel / rowLength(); }
};

class GgufFile
{
public:
    static constexpr uint32_t kDefaultAlignment = 32;
    static constexpr uint64_t kMaxStringBytes = uint64_t(1) << 30;
    static constexpr uint64_t kMaxArrayCount = uint64_t(1) << 30;
    static constexpr size_t kMaxTensorNameBytes = 63; // ggml's GGML_MAX_NAME (64) includes the NUL
    static constexpr uint32_t kMaxDims = 4;

    // Parses a GGUF image held in memory. The buffer must outlive tensorData() calls; nothing else keeps
    // pointers into it. Throws Error("<fileNameForErrors>: ...") on any problem.
    static GgufFile parse(const uint8_t *data, uint64_t size, const std::string &fileNameForErrors);
    // Maps the file and parses it; the mapping is kept (see mapping()). Errors name the file's name.
    static GgufFile open(const std::string &path);

    // True when the first bytes of the file are the GGUF magic; reads 4 bytes, never throws.
    static bool hasMagic(const std::string &path);

    const std::string &fileName() const { return m_fileName; }
    uint32_t version() const { return m_version; }
    uint32_t alignment() const { return m_alignment; }
    uint64_t dataStart() const { return m_dataStart; }
    uint64_t fileSize() const { return m_size; }
    const std::shared_ptr<const MappedFile> &mapping() const { return m_mapping; } // null after parse()

    // Metadata, in file order, and lookup by key.
    const std::vector<GgufKeyValue> &metadata() const { return m_metadata; }
    const GgufValue *find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed getters: nullopt when the key is absent; Error("<file>: metadata 'key' is INT32, expected
    // UINT32") when it has another type. Types are exact, as llama.cpp checks them.
    std::optional<uint8_t> getU8(std::string_view key) const;
    std::optional<int8_t> getI8(std::string_view key) const;
    std::optional<uint16_t> getU16(std::string_view key) const;
    std::optional<int16_t> getI16(std::string_view key) const;
    std::optional<uint32_t> getU32(std::string_view key) const;
    std::optional<int32_t> getI32(std::string_view key) const;
    std::optional<uint64_t> getU64(std::string_view key) const;
    std::optional<int64_t> getI64(std::string_view key) const;
    std::optional<float> getF32(std::string_view key) const;
    std::optional<double> getF64(std::string_view key) const;
    std::optional<bool> getBool(std::string_view key) const;
    std::optional<std::string> getString(std::string_view key) const;

    // Lenient getters for values whose width differs between writers: any integer type (as int64, Error
    // when a UINT64 exceeds INT64_MAX), any float type (as double).
    std::optional<int64_t> getInteger(std::string_view key) const;
    std::optional<double> getFloat(std::string_view key) const;

    // Arrays: nullopt when absent; Error when not an array or the element type differs.
    std::optional<std::vector<std::string>> getStringArray(std::string_view key) const;
    const std::vector<std::string> *stringArray(std::string_view key) const; // same checks, no copy
    std::optional<std::vector<float>> getF32Array(std::string_view key) const;
    std::optional<std::vector<int32_t>> getI32Array(std::string_view key) const;
    std::optional<std::vector<uint32_t>> getU32Array(std::string_view key) const;
    // Any integer element type, as int64.
    std::optional<std::vector<int64_t>> getIntegerArray(std::string_view key) const;
    // Length of an array of any element type; nullopt when absent, Error when not an array.
    std::optional<uint64_t> getArraySize(std::string_view key) const;

    // Tensors, in file order, and lookup by name.
    const std::vector<GgufTensorInfo> &tensors() const { return m_tensors; }
    const GgufTensorInfo *findTensor(std::string_view name) const;
    // Absolute position of a tensor's first byte in the file.
    uint64_t tensorFileOffset(const GgufTensorInfo &t) const { return m_dataStart + t.offset; }
    // Pointer to a tensor's bytes in the mapping or parsed buffer (validated to lie inside it).
    const uint8_t *tensorData(const GgufTensorInfo &t) const { return m_base + tensorFileOffset(t); }

private:
    friend class GgufParser;
    const GgufValue &expect(std::string_view key, GgufType type) const; // precondition: key present
    const GgufValue *findArray(std::string_view key, GgufType elementType) const;
    [[noreturn]] void failWrongType(std::string_view key, const GgufValue &v, const std::string &expected) const;

    std::string m_fileName;
    std::shared_ptr<const MappedFile> m_mapping;
    const uint8_t *m_base = nullptr;
    uint64_t m_size = 0;
    uint32_t m_version = 0;
    uint32_t m_alignment = kDefaultAlignment;
    uint64_t m_dataStart = 0;
    std::vector<GgufKeyValue> m_metadata;
    std::map<std::string, size_t, std::less<>> m_keyIndex;
    std::vector<GgufTensorInfo> m_tensors;
    std::map<std::string, size_t, std::less<>> m_tensorIndex;
};

} // namespace qs::core
