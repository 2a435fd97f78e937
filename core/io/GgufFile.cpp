#include "io/GgufFile.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/Error.h"
#include "io/MappedFile.h"

namespace qs::core {

static_assert(std::endian::native == std::endian::little, "GGUF parsing assumes a little-endian host");

namespace {

struct GgufTypeInfo
{
    GgufType type;
    const char *name;
    uint32_t size; // bytes of a scalar; 0 for STRING and ARRAY, whose size depends on their content
    bool isInteger;
    bool isSigned;
};

// formats.md 2.2, indexed by type id.
constexpr GgufTypeInfo kGgufTypes[] = {
    { GgufType::UInt8, "UINT8", 1, true, false },
    { GgufType::Int8, "INT8", 1, true, true },
    { GgufType::UInt16, "UINT16", 2, true, false },
    { GgufType::Int16, "INT16", 2, true, true },
    { GgufType::UInt32, "UINT32", 4, true, false },
    { GgufType::Int32, "INT32", 4, true, true },
    { GgufType::Float32, "FLOAT32", 4, false, false },
    { GgufType::Bool, "BOOL", 1, false, false },
    { GgufType::String, "STRING", 0, false, false },
    { GgufType::Array, "ARRAY", 0, false, false },
    { GgufType::UInt64, "UINT64", 8, true, false },
    { GgufType::Int64, "INT64", 8, true, true },
    { GgufType::Float64, "FLOAT64", 8, false, false },
};

const GgufTypeInfo *ggufTypeInfo(uint32_t id)
{
    return id < std::size(kGgufTypes) ? &kGgufTypes[id] : nullptr;
}

const GgufTypeInfo &ggufTypeInfo(GgufType t)
{
    return kGgufTypes[uint32_t(t)];
}

// Sign- or zero-extends size bytes of a little-endian integer.
int64_t loadInteger(const uint8_t *p, const GgufTypeInfo &info)
{
    uint64_t bits = 0;
    std::memcpy(&bits, p, info.size);
    if (info.isSigned && info.size < 8) {
        const unsigned shift = 64 - 8 * info.size;
        return int64_t(bits << shift) >> shift;
    }
    return int64_t(bits); // a UINT64 beyond INT64_MAX is filtered out by the callers that care
}

double loadFloat(const uint8_t *p, GgufType t)
{
    if (t == GgufType::Float32) {
        float f;
        std::memcpy(&f, p, 4);
        return f;
    }
    double d;
    std::memcpy(&d, p, 8);
    return d;
}

std::string num(uint64_t v)
{
    return std::to_string(v);
}

std::string shapeText(const std::vector<uint64_t> &ne)
{
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i)
        s += (i ? ", " : "") + num(ne[i]);
    return s + "]";
}

// Smallest encodings, used to reject counts that cannot fit in what is left of the file before
// allocating anything for them.
constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1; // key length, 1-byte key, value type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8; // name length, n_dims, type, offset
// Counts are only known to fit in the file, and our objects are larger than their encodings; reserving
// more than this up front would let a large hostile file ask for many times its size at once.
constexpr uint64_t kMaxReserve = uint64_t(1) << 16;

} // namespace

const char *ggufTypeName(GgufType type)
{
    const GgufTypeInfo *info = ggufTypeInfo(uint32_t(type));
    return info ? info->name : "?";
}

// ---------------------------------------------------------------------------------------------------
// GgufValue

std::string GgufValue::typeDescription() const
{
    if (isArray())
        return std::string("ARRAY of ") + ggufTypeName(m_elementType);
    return ggufTypeName(m_type);
}

std::optional<int64_t> GgufValue::toInt64() const
{
    const GgufTypeInfo &info = ggufTypeInfo(m_type);
    if (m_type == GgufType::Bool)
        return int64_t(m_bits);
    if (!info.isInteger)
        return std::nullopt;
    if (m_type == GgufType::UInt64 && m_bits > uint64_t(std::numeric_limits<int64_t>::max()))
        return std::nullopt;
    return loadInteger(reinterpret_cast<const uint8_t *>(&m_bits), info);
}

std::optional<double> GgufValue::toDouble() const
{
    if (m_type != GgufType::Float32 && m_type != GgufType::Float64)
        return std::nullopt;
    return loadFloat(reinterpret_cast<const uint8_t *>(&m_bits), m_type);
}

int64_t GgufValue::integerAt(uint64_t i) const
{
    const GgufTypeInfo &info = ggufTypeInfo(m_elementType);
    if (!isArray() || info.size == 0 || i >= m_count)
        throw Error("GGUF value: element " + num(i) + " out of range or not numeric");
    return loadInteger(m_elements.data() + i * info.size, info);
}

double GgufValue::floatAt(uint64_t i) const
{
    const GgufTypeInfo &info = ggufTypeInfo(m_elementType);
    if (!isArray() || info.size == 0 || i >= m_count)
        throw Error("GGUF value: element " + num(i) + " out of range or not numeric");
    if (m_elementType == GgufType::Float32 || m_elementType == GgufType::Float64)
        return loadFloat(m_elements.data() + i * info.size, m_elementType);
    return double(loadInteger(m_elements.data() + i * info.size, info));
}

// ---------------------------------------------------------------------------------------------------
// Parsing

class GgufParser
{
public:
    GgufParser(const uint8_t *data, uint64_t size, const std::string &file)
        : m_data(data)
        , m_size(size)
        , m_file(file)
    { }

    GgufFile run();

private:
    enum class Section { Header, Metadata, TensorInfos };

    std::string where() const
    {
        switch (m_section) {
        case Section::Header:
            return "the header";
        case Section::Metadata:
            return "metadata entry " + num(m_index) + (m_name.empty() ? "" : " ('" + m_name + "')");
        case Section::TensorInfos:
            return "tensor info " + num(m_index) + (m_name.empty() ? "" : " ('" + m_name + "')");
        }
        return {};
    }

    [[noreturn]] void failHere(const std::string &what) const { fail(m_file, where() + ": " + what); }

    uint64_t remaining() const { return m_size - m_pos; }

    void need(uint64_t n, const char *what) const
    {
        if (n > remaining())
            fail(m_file,
                "truncated: the file ends at byte " + num(m_size) + " but the " + what + " of " + where() + " at byte "
                    + num(m_pos) + " needs " + num(n) + " bytes");
    }

    template <typename T> T read(const char *what)
    {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, m_data + m_pos, sizeof(T));
        m_pos += sizeof(T);
        return v;
    }

    std::string readString(const char *what)
    {
        const uint64_t length = read<uint64_t>(what);
        if (length > remaining() || length > GgufFile::kMaxStringBytes)
            failHere("truncated or corrupt: " + std::string(what) + " at byte " + num(m_pos - 8) + " claims "
                + num(length) + " bytes but only " + num(remaining()) + " bytes of the file are left");
        std::string s(reinterpret_cast<const char *>(m_data + m_pos), size_t(length));
        m_pos += length;
        return s;
    }

    const GgufTypeInfo &readValueType(const char *what)
    {
        const uint32_t id = read<uint32_t>(what);
        const GgufTypeInfo *info = ggufTypeInfo(id);
        if (!info)
            failHere("unknown metadata value type " + num(id));
        return *info;
    }

    void checkBool(uint8_t b)
    {
        if (b > 1)
            failHere("boolean value " + num(b) + " is neither 0 nor 1");
    }

    void readValue(GgufValue &v);
    void readTensorInfo(GgufFile &f);
    void checkTensorPlacement(GgufFile &f);

    const uint8_t *m_data;
    uint64_t m_size;
    uint64_t m_pos = 0;
    const std::string &m_file;
    Section m_section = Section::Header;
    uint64_t m_index = 0;
    std::string m_name; // key or tensor name being read, for messages
};

void GgufParser::readValue(GgufValue &v)
{
    const GgufTypeInfo &type = readValueType("value type");
    v.m_type = type.type;
    if (type.type == GgufType::String) {
        v.m_string = readString("string value");
        return;
    }
    if (type.type != GgufType::Array) {
        need(type.size, "value");
        std::memcpy(&v.m_bits, m_data + m_pos, type.size);
        m_pos += type.size;
        if (type.type == GgufType::Bool)
            checkBool(uint8_t(v.m_bits));
        return;
    }

    const GgufTypeInfo &element = readValueType("array element type");
    if (element.type == GgufType::Array)
        failHere("arrays of arrays are not supported (the ggml reader rejects them too)");
    const uint64_t count = read<uint64_t>("array length");
    const uint64_t minElementBytes = element.type == GgufType::String ? 8 : element.size;
    if (count > GgufFile::kMaxArrayCount)
        failHere("array of " + num(count) + " " + element.name + " elements exceeds the limit of "
            + num(GgufFile::kMaxArrayCount));
    if (count * minElementBytes > remaining())
        failHere("array of " + num(count) + " " + element.name + " elements needs at least "
            + num(count * minElementBytes) + " bytes but only " + num(remaining()) + " are left");
    v.m_elementType = element.type;
    v.m_count = count;
    if (element.type == GgufType::String) {
        v.m_strings.reserve(size_t(std::min<uint64_t>(count, kMaxReserve)));
        for (uint64_t i = 0; i < count; ++i)
            v.m_strings.push_back(readString("string array element"));
        return;
    }
    const uint64_t bytes = count * element.size;
    v.m_elements.assign(m_data + m_pos, m_data + m_pos + bytes);
    m_pos += bytes;
    if (element.type == GgufType::Bool)
        for (uint8_t b : v.m_elements)
            checkBool(b);
}

void GgufParser::readTensorInfo(GgufFile &f)
{
    GgufTensorInfo t;
    t.name = readString("tensor name");
    if (t.name.size() > GgufFile::kMaxTensorNameBytes)
        failHere("name is " + num(t.name.size()) + " bytes; GGUF allows at most " + num(GgufFile::kMaxTensorNameBytes));
    m_name = t.name;
    if (f.m_tensorIndex.count(t.name))
        failHere("duplicate tensor name '" + t.name + "'");

    const uint32_t nDims = read<uint32_t>("number of dimensions");
    if (nDims > GgufFile::kMaxDims)
        failHere(num(nDims) + " dimensions; GGUF allows at most " + num(GgufFile::kMaxDims));
    t.ne.resize(nDims);
    for (uint32_t d = 0; d < nDims; ++d)
        t.ne[d] = read<uint64_t>("dimension");

    const uint32_t typeId = read<uint32_t>("tensor type");
    t.type = findGgmlType(typeId);
    if (!t.type)
        failHere("unknown ggml type id " + num(typeId));
    t.offset = read<uint64_t>("tensor data offset");

    // ggml reads dimensions as int64: anything above INT64_MAX is a negative size.
    constexpr uint64_t kMaxElements = uint64_t(std::numeric_limits<int64_t>::max());
    uint64_t numel = 1;
    for (uint64_t n : t.ne) {
        if (n > kMaxElements)
            failHere("dimension " + num(n) + " is negative or absurd (shape " + shapeText(t.ne) + ")");
        if (n != 0 && numel > kMaxElements / n)
            failHere("element count of shape " + shapeText(t.ne) + " overflows 64 bits");
        numel *= n;
    }
    t.numel = numel;
    if (t.rowLength() % t.type->blockSize != 0)
        failHere("first dimension " + num(t.rowLength()) + " of a " + t.type->name
            + " tensor is not a multiple of its block size " + num(t.type->blockSize));
    const uint64_t blocks = numel / t.type->blockSize;
    if (blocks > std::numeric_limits<uint64_t>::max() / t.type->bytesPerBlock)
        failHere("byte size of shape " + shapeText(t.ne) + " overflows 64 bits");
    t.nbytes = blocks * t.type->bytesPerBlock;

    f.m_tensorIndex.emplace(t.name, f.m_tensors.size());
    f.m_tensors.push_back(std::move(t));
}

void GgufParser::checkTensorPlacement(GgufFile &f)
{
    m_section = Section::TensorInfos;
    m_name.clear();
    if (f.m_tensors.empty())
        return; // vocabulary-only files end right after the infos, without padding
    if (f.m_dataStart > m_size)
        fail(m_file,
            "truncated: tensor data should start at byte " + num(f.m_dataStart) + " but the file ends at byte "
                + num(m_size));
    const uint64_t dataBytes = m_size - f.m_dataStart;
    for (const GgufTensorInfo &t : f.m_tensors) {
        const std::string desc = "tensor '" + t.name + "' (" + t.type->name + " " + shapeText(t.ne) + ", "
            + num(t.nbytes) + " bytes at data offset " + num(t.offset) + ")";
        if (t.offset % f.m_alignment != 0)
            fail(m_file, desc + " is not aligned to " + num(f.m_alignment) + " bytes");
        if (t.offset > dataBytes || t.nbytes > dataBytes - t.offset)
            fail(m_file,
                desc + " ends beyond the end of the file (" + num(m_size) + " bytes, data from byte "
                    + num(f.m_dataStart) + ")");
    }
    std::vector<const GgufTensorInfo *> byOffset;
    byOffset.reserve(f.m_tensors.size());
    for (const GgufTensorInfo &t : f.m_tensors)
        if (t.nbytes > 0)
            byOffset.push_back(&t);
    std::sort(byOffset.begin(), byOffset.end(),
        [](const GgufTensorInfo *a, const GgufTensorInfo *b) { return a->offset < b->offset; });
    for (size_t i = 1; i < byOffset.size(); ++i) {
        const GgufTensorInfo &a = *byOffset[i - 1];
        const GgufTensorInfo &b = *byOffset[i];
        if (a.offset + a.nbytes > b.offset)
            fail(m_file,
                "tensors '" + a.name + "' (data bytes " + num(a.offset) + ".." + num(a.offset + a.nbytes) + ") and '"
                    + b.name + "' (from " + num(b.offset) + ") overlap");
    }
}

GgufFile GgufParser::run()
{
    GgufFile f;
    f.m_fileName = m_file;
    f.m_base = m_data;
    f.m_size = m_size;

    m_section = Section::Header;
    need(4, "magic");
    if (std::memcmp(m_data, "GGUF", 4) != 0) {
        std::string shown;
        for (int i = 0; i < 4; ++i) {
            const char c = char(m_data[i]);
            static const char hex[] = "0123456789abcdef";
            const uint8_t b = m_data[i];
            shown += (c >= 0x20 && c < 0x7F) ? std::string(1, c) : std::string("\\x") + hex[b >> 4] + hex[b & 0xF];
        }
        fail(m_file, "not a GGUF file (starts with '" + shown + "', expected 'GGUF')");
    }
    m_pos = 4;
    const uint32_t version = read<uint32_t>("version");
    if (version == 1)
        fail(m_file,
            "GGUF version 1 is not supported (it used 32-bit counts); convert the model again with a "
            "current llama.cpp");
    if (version != 0 && (version & 0xFFFFu) == 0)
        fail(m_file,
            "GGUF version field " + num(version) + " looks byte-swapped: big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
        fail(m_file, "unsupported GGUF version " + num(version) + " (QuantScope reads versions 2 and 3)");
    f.m_version = version;

    const uint64_t tensorCount = read<uint64_t>("tensor count");
    const uint64_t kvCount = read<uint64_t>("metadata count");
    const uint64_t left = remaining();
    if (kvCount > left / kMinKeyValueBytes || tensorCount > left / kMinTensorInfoBytes
        || kvCount * kMinKeyValueBytes + tensorCount * kMinTensorInfoBytes > left)
        fail(m_file,
            "header claims " + num(kvCount) + " metadata entries and " + num(tensorCount)
                + " tensors, which cannot fit in the remaining " + num(left) + " bytes of the file");

    m_section = Section::Metadata;
    f.m_metadata.reserve(size_t(std::min<uint64_t>(kvCount, kMaxReserve)));
    for (uint64_t i = 0; i < kvCount; ++i) {
        m_index = i;
        m_name.clear();
        GgufKeyValue kv;
        kv.key = readString("key");
        m_name = kv.key;
        if (kv.key.empty())
            failHere("empty key");
        if (f.m_keyIndex.count(kv.key))
            failHere("duplicate key '" + kv.key + "'");
        readValue(kv.value);
        f.m_keyIndex.emplace(kv.key, f.m_metadata.size());
        f.m_metadata.push_back(std::move(kv));
    }

    if (const GgufValue *a = f.find("general.alignment")) {
        if (a->type() != GgufType::UInt32)
            fail(m_file, "general.alignment has type " + a->typeDescription() + "; it must be UINT32");
        const uint32_t alignment = uint32_t(a->rawBits());
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
            fail(m_file, "general.alignment " + num(alignment) + " is not a power of two");
        f.m_alignment = alignment;
    }

    m_section = Section::TensorInfos;
    f.m_tensors.reserve(size_t(std::min<uint64_t>(tensorCount, kMaxReserve)));
    for (uint64_t i = 0; i < tensorCount; ++i) {
        m_index = i;
        m_name.clear();
        readTensorInfo(f);
    }

    // Data start = end of the infos rounded up to the alignment (absolute file offset).
    const uint64_t pad = (f.m_alignment - m_pos % f.m_alignment) % f.m_alignment;
    f.m_dataStart = m_pos + pad;
    checkTensorPlacement(f);
    return f;
}

// ---------------------------------------------------------------------------------------------------
// GgufFile

GgufFile GgufFile::parse(const uint8_t *data, uint64_t size, const std::string &fileNameForErrors)
{
    if (!data && size != 0)
        fail(fileNameForErrors, "no data");
    static const uint8_t empty = 0;
    GgufParser parser(data ? data : &empty, size, fileNameForErrors);
    return parser.run();
}

GgufFile GgufFile::open(const std::string &path)
{
    std::shared_ptr<const MappedFile> mapping = MappedFile::open(path);
    std::string name = std::filesystem::path(path).filename().string();
    if (name.empty())
        name = path;
    GgufFile f = parse(mapping->data(), mapping->size(), name);
    f.m_mapping = std::move(mapping);
    return f;
}

bool GgufFile::hasMagic(const std::string &path)
{
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return false;
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    if (!in.read(magic, 4))
        return false;
    return std::memcmp(magic, "GGUF", 4) == 0;
}

const GgufValue *GgufFile::find(std::string_view key) const
{
    const auto it = m_keyIndex.find(key);
    return it == m_keyIndex.end() ? nullptr : &m_metadata[it->second].value;
}

const GgufTensorInfo *GgufFile::findTensor(std::string_view name) const
{
    const auto it = m_tensorIndex.find(name);
    return it == m_tensorIndex.end() ? nullptr : &m_tensors[it->second];
}

void GgufFile::failWrongType(std::string_view key, const GgufValue &v, const std::string &expected) const
{
    fail(m_fileName, "metadata '" + std::string(key) + "' is " + v.typeDescription() + ", expected " + expected);
}

const GgufValue &GgufFile::expect(std::string_view key, GgufType type) const
{
    const GgufValue *v = find(key);
    if (v->type() != type)
        failWrongType(key, *v, ggufTypeName(type));
    return *v;
}

namespace {

template <typename T> T fromBits(uint64_t bits)
{
    T v;
    std::memcpy(&v, &bits, sizeof(T)); // little-endian: the value's bytes are the low bytes
    return v;
}

} // namespace

#define QS_GGUF_SCALAR_GETTER(Name, CType, Tag)                                                                        \
    std::optional<CType> GgufFile::Name(std::string_view key) const                                                    \
    {                                                                                                                  \
        if (!has(key))                                                                                                 \
            return std::nullopt;                                                                                       \
        return fromBits<CType>(expect(key, GgufType::Tag).rawBits());                                                  \
    }

// One getter per scalar type; a macro because they differ only in the names.
QS_GGUF_SCALAR_GETTER(getU8, uint8_t, UInt8)
QS_GGUF_SCALAR_GETTER(getI8, int8_t, Int8)
QS_GGUF_SCALAR_GETTER(getU16, uint16_t, UInt16)
QS_GGUF_SCALAR_GETTER(getI16, int16_t, Int16)
QS_GGUF_SCALAR_GETTER(getU32, uint32_t, UInt32)
QS_GGUF_SCALAR_GETTER(getI32, int32_t, Int32)
QS_GGUF_SCALAR_GETTER(getU64, uint64_t, UInt64)
QS_GGUF_SCALAR_GETTER(getI64, int64_t, Int64)
QS_GGUF_SCALAR_GETTER(getF32, float, Float32)
QS_GGUF_SCALAR_GETTER(getF64, double, Float64)
#undef QS_GGUF_SCALAR_GETTER

std::optional<bool> GgufFile::getBool(std::string_view key) const
{
    if (!has(key))
        return std::nullopt;
    return expect(key, GgufType::Bool).rawBits() != 0;
}

std::optional<std::string> GgufFile::getString(std::string_view key) const
{
    if (!has(key))
        return std::nullopt;
    return expect(key, GgufType::String).string();
}

std::optional<int64_t> GgufFile::getInteger(std::string_view key) const
{
    const GgufValue *v = find(key);
    if (!v)
        return std::nullopt;
    if (!ggufTypeInfo(v->type()).isInteger)
        failWrongType(key, *v, "an integer");
    const std::optional<int64_t> i = v->toInt64();
    if (!i)
        fail(m_fileName, "metadata '" + std::string(key) + "' value " + num(v->rawBits()) + " is out of range");
    return i;
}

std::optional<double> GgufFile::getFloat(std::string_view key) const
{
    const GgufValue *v = find(key);
    if (!v)
        return std::nullopt;
    const std::optional<double> d = v->toDouble();
    if (!d)
        failWrongType(key, *v, "FLOAT32 or FLOAT64");
    return d;
}

const GgufValue *GgufFile::findArray(std::string_view key, GgufType elementType) const
{
    const GgufValue *v = find(key);
    if (v && (!v->isArray() || v->elementType() != elementType))
        failWrongType(key, *v, std::string("ARRAY of ") + ggufTypeName(elementType));
    return v;
}

std::optional<std::vector<std::string>> GgufFile::getStringArray(std::string_view key) const
{
    if (const std::vector<std::string> *a = stringArray(key))
        return *a;
    return std::nullopt;
}

const std::vector<std::string> *GgufFile::stringArray(std::string_view key) const
{
    const GgufValue *v = findArray(key, GgufType::String);
    return v ? &v->strings() : nullptr;
}

std::optional<std::vector<float>> GgufFile::getF32Array(std::string_view key) const
{
    const GgufValue *v = findArray(key, GgufType::Float32);
    if (!v)
        return std::nullopt;
    std::vector<float> out(size_t(v->arraySize()));
    for (uint64_t i = 0; i < v->arraySize(); ++i)
        out[size_t(i)] = float(v->floatAt(i));
    return out;
}

std::optional<std::vector<int32_t>> GgufFile::getI32Array(std::string_view key) const
{
    const GgufValue *v = findArray(key, GgufType::Int32);
    if (!v)
        return std::nullopt;
    std::vector<int32_t> out(size_t(v->arraySize()));
    for (uint64_t i = 0; i < v->arraySize(); ++i)
        out[size_t(i)] = int32_t(v->integerAt(i));
    return out;
}

std::optional<std::vector<uint32_t>> GgufFile::getU32Array(std::string_view key) const
{
    const GgufValue *v = findArray(key, GgufType::UInt32);
    if (!v)
        return std::nullopt;
    std::vector<uint32_t> out(size_t(v->arraySize()));
    for (uint64_t i = 0; i < v->arraySize(); ++i)
        out[size_t(i)] = uint32_t(v->integerAt(i));
    return out;
}

std::optional<std::vector<int64_t>> GgufFile::getIntegerArray(std::string_view key) const
{
    const GgufValue *v = find(key);
    if (!v)
        return std::nullopt;
    if (!v->isArray() || !ggufTypeInfo(v->elementType()).isInteger)
        failWrongType(key, *v, "an ARRAY of integers");
    std::vector<int64_t> out(size_t(v->arraySize()));
    for (uint64_t i = 0; i < v->arraySize(); ++i) {
        out[size_t(i)] = v->integerAt(i);
        if (v->elementType() == GgufType::UInt64 && out[size_t(i)] < 0)
            fail(m_fileName, "metadata '" + std::string(key) + "' element " + num(i) + " is out of range");
    }
    return out;
}

std::optional<uint64_t> GgufFile::getArraySize(std::string_view key) const
{
    const GgufValue *v = find(key);
    if (!v)
        return std::nullopt;
    if (!v->isArray())
        failWrongType(key, *v, "an ARRAY");
    return v->arraySize();
}

} // namespace qs::core
