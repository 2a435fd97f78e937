#include "export/GgufWriter.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/AtomicFile.h"
#include "common/Error.h"

namespace qs::core {

static_assert(std::endian::native == std::endian::little, "GGUF writing assumes a little-endian host");

namespace {

constexpr uint32_t kGgufVersion = 3;
const std::string kAlignmentKey = "general.alignment";

size_t scalarSize(GgufType t)
{
    switch (t) {
    case GgufType::UInt8:
    case GgufType::Int8:
    case GgufType::Bool:
        return 1;
    case GgufType::UInt16:
    case GgufType::Int16:
        return 2;
    case GgufType::UInt32:
    case GgufType::Int32:
    case GgufType::Float32:
        return 4;
    case GgufType::UInt64:
    case GgufType::Int64:
    case GgufType::Float64:
        return 8;
    case GgufType::String:
    case GgufType::Array:
        return 0;
    }
    return 0;
}

template <typename T> void append(std::string &out, T v)
{
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}

void appendString(std::string &out, std::string_view s)
{
    append<uint64_t>(out, s.size());
    out.append(s.data(), s.size());
}

uint64_t padded(uint64_t n, uint64_t a)
{
    return (n + a - 1) / a * a;
}

} // namespace

#define QS_SCALAR(fn, T, id)                                                                                          \
    GgufWriteValue GgufWriteValue::fn(T v)                                                                             \
    {                                                                                                                  \
        GgufWriteValue w;                                                                                              \
        w.m_type = GgufType::id;                                                                                       \
        append<T>(w.m_bytes, v);                                                                                       \
        return w;                                                                                                      \
    }
QS_SCALAR(u8, uint8_t, UInt8)
QS_SCALAR(i8, int8_t, Int8)
QS_SCALAR(u16, uint16_t, UInt16)
QS_SCALAR(i16, int16_t, Int16)
QS_SCALAR(u32, uint32_t, UInt32)
QS_SCALAR(i32, int32_t, Int32)
QS_SCALAR(u64, uint64_t, UInt64)
QS_SCALAR(i64, int64_t, Int64)
QS_SCALAR(f32, float, Float32)
QS_SCALAR(f64, double, Float64)
#undef QS_SCALAR

GgufWriteValue GgufWriteValue::boolean(bool v)
{
    GgufWriteValue w;
    w.m_type = GgufType::Bool;
    w.m_bytes.push_back(v ? 1 : 0);
    return w;
}

GgufWriteValue GgufWriteValue::string(std::string_view v)
{
    GgufWriteValue w;
    w.m_type = GgufType::String;
    appendString(w.m_bytes, v);
    return w;
}

GgufWriteValue GgufWriteValue::stringArray(const std::vector<std::string> &v)
{
    GgufWriteValue w;
    w.m_type = GgufType::Array;
    append<uint32_t>(w.m_bytes, uint32_t(GgufType::String));
    append<uint64_t>(w.m_bytes, v.size());
    for (const std::string &s : v)
        appendString(w.m_bytes, s);
    return w;
}

GgufWriteValue GgufWriteValue::numericArray(GgufType elementType, const void *data, uint64_t count)
{
    const size_t size = scalarSize(elementType);
    if (size == 0)
        throw Error(std::string("GGUF: an array of ") + ggufTypeName(elementType) + " is not a numeric array");
    GgufWriteValue w;
    w.m_type = GgufType::Array;
    append<uint32_t>(w.m_bytes, uint32_t(elementType));
    append<uint64_t>(w.m_bytes, count);
    if (count > 0)
        w.m_bytes.append(static_cast<const char *>(data), size_t(count) * size);
    return w;
}

GgufWriteValue GgufWriteValue::f32Array(const std::vector<float> &v)
{
    return numericArray(GgufType::Float32, v.data(), v.size());
}

GgufWriteValue GgufWriteValue::i32Array(const std::vector<int32_t> &v)
{
    return numericArray(GgufType::Int32, v.data(), v.size());
}

GgufWriteValue GgufWriteValue::u32Array(const std::vector<uint32_t> &v)
{
    return numericArray(GgufType::UInt32, v.data(), v.size());
}

GgufWriteValue GgufWriteValue::copyOf(const GgufValue &value)
{
    GgufWriteValue w;
    w.m_type = value.type();
    if (value.type() == GgufType::String) {
        appendString(w.m_bytes, value.string());
        return w;
    }
    if (!value.isArray()) {
        const uint64_t bits = value.rawBits();
        char b[8];
        std::memcpy(b, &bits, 8);
        w.m_bytes.append(b, scalarSize(value.type()));
        return w;
    }
    const GgufType et = value.elementType();
    if (et == GgufType::String)
        return stringArray(value.strings());
    if (et == GgufType::Array)
        throw Error("GGUF: arrays of arrays cannot be written");
    append<uint32_t>(w.m_bytes, uint32_t(et));
    append<uint64_t>(w.m_bytes, value.arraySize());
    for (uint64_t i = 0; i < value.arraySize(); ++i) {
        switch (et) {
        case GgufType::Float32:
            append<float>(w.m_bytes, float(value.floatAt(i)));
            break;
        case GgufType::Float64:
            append<double>(w.m_bytes, value.floatAt(i));
            break;
        default: {
            // Integers and bools: the low bytes of the two's complement value are the stored bytes.
            const int64_t x = value.integerAt(i);
            char b[8];
            std::memcpy(b, &x, 8);
            w.m_bytes.append(b, scalarSize(et));
            break;
        }
        }
    }
    return w;
}

GgufWriter::GgufWriter(std::string path, uint32_t alignment)
    : m_path(std::move(path))
    , m_alignment(alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % 8 != 0)
        failHere("alignment " + std::to_string(alignment) + " is not a power of two and a multiple of 8");
}

GgufWriter::~GgufWriter() = default;

void GgufWriter::failHere(const std::string &what) const
{
    fail(m_path, what);
}

bool GgufWriter::hasMetadata(std::string_view key) const
{
    for (const auto &kv : m_metadata)
        if (kv.first == key)
            return true;
    return key == kAlignmentKey;
}

void GgufWriter::addMetadata(const std::string &key, GgufWriteValue value)
{
    if (m_file)
        failHere("metadata '" + key + "' added after the data section began");
    if (key.empty() || key.size() > 65535)
        failHere("metadata key of " + std::to_string(key.size()) + " bytes (must be 1..65535)");
    if (hasMetadata(key))
        failHere("metadata key '" + key + "' given twice"
            + (key == kAlignmentKey ? std::string(" (the writer sets it from its alignment)") : std::string()));
    m_metadata.emplace_back(key, std::move(value));
}

void GgufWriter::addTensor(const std::string &name, std::vector<uint64_t> ne, const GgmlTypeInfo &type)
{
    if (m_file)
        failHere("tensor '" + name + "' added after the data section began");
    if (name.empty() || name.size() > GgufFile::kMaxTensorNameBytes)
        failHere("tensor name '" + name + "' must have 1.." + std::to_string(GgufFile::kMaxTensorNameBytes) + " bytes");
    for (const Tensor &t : m_tensors)
        if (t.name == name)
            failHere("tensor '" + name + "' added twice");
    if (ne.empty() || ne.size() > GgufFile::kMaxDims)
        failHere("tensor '" + name + "' has " + std::to_string(ne.size()) + " dimensions (1..4)");
    if (ne[0] % type.blockSize != 0)
        failHere("tensor '" + name + "': row length " + std::to_string(ne[0]) + " is not a multiple of " + type.name
            + "'s block size " + std::to_string(type.blockSize));
    uint64_t numel = 1;
    for (uint64_t d : ne)
        numel *= d;
    Tensor t { name, std::move(ne), &type, m_dataBytes, ggmlBytesFor(type, numel) };
    m_dataBytes += padded(t.nbytes, m_alignment);
    m_tensors.push_back(std::move(t));
}

void GgufWriter::beginData()
{
    if (m_file)
        failHere("data section begun twice");
    std::string head;
    head.append("GGUF", 4);
    append<uint32_t>(head, kGgufVersion);
    append<uint64_t>(head, m_tensors.size());
    append<uint64_t>(head, m_metadata.size() + 1);
    // general.alignment first so that a reader knows it before anything else.
    appendString(head, kAlignmentKey);
    append<uint32_t>(head, uint32_t(GgufType::UInt32));
    append<uint32_t>(head, m_alignment);
    for (const auto &[key, value] : m_metadata) {
        appendString(head, key);
        append<uint32_t>(head, uint32_t(value.type()));
        head += value.bytes();
    }
    for (const Tensor &t : m_tensors) {
        appendString(head, t.name);
        append<uint32_t>(head, uint32_t(t.ne.size()));
        for (uint64_t d : t.ne)
            append<uint64_t>(head, d);
        append<uint32_t>(head, t.type->id);
        append<uint64_t>(head, t.offset);
    }
    head.resize(size_t(padded(head.size(), m_alignment)), '\0');
    m_file = std::make_unique<AtomicFile>(m_path);
    m_file->write(head);
    m_current = 0;
    m_currentDone = 0;
    // Empty tensors need no bytes; skip them so that the next write goes to the right one.
    while (m_current < m_tensors.size() && m_tensors[m_current].nbytes == 0)
        ++m_current;
}

uint64_t GgufWriter::currentTensorBytes() const
{
    return m_current < m_tensors.size() ? m_tensors[m_current].nbytes : 0;
}

uint64_t GgufWriter::bytesWritten() const
{
    return m_file ? m_file->bytesWritten() : 0;
}

void GgufWriter::padTo(uint64_t multiple)
{
    static const char zeros[64] = {};
    uint64_t pad = padded(m_file->bytesWritten(), multiple) - m_file->bytesWritten();
    while (pad > 0) {
        const size_t n = size_t(std::min<uint64_t>(pad, sizeof zeros));
        m_file->write(zeros, n);
        pad -= n;
    }
}

void GgufWriter::writeTensorData(const void *data, size_t bytes)
{
    if (!m_file || m_finished)
        failHere("tensor data written outside beginData()..finish()");
    const char *p = static_cast<const char *>(data);
    while (bytes > 0) {
        if (m_current >= m_tensors.size()) {
            m_file->discard();
            failHere("more tensor data than the tensor infos declare");
        }
        const Tensor &t = m_tensors[m_current];
        const size_t n = size_t(std::min<uint64_t>(bytes, t.nbytes - m_currentDone));
        m_file->write(p, n);
        p += n;
        bytes -= n;
        m_currentDone += n;
        if (m_currentDone == t.nbytes) {
            padTo(m_alignment);
            m_currentDone = 0;
            ++m_current;
            while (m_current < m_tensors.size() && m_tensors[m_current].nbytes == 0)
                ++m_current;
        }
    }
}

void GgufWriter::finish()
{
    if (!m_file)
        beginData();
    if (m_current < m_tensors.size()) {
        const Tensor &t = m_tensors[m_current];
        m_file->discard();
        failHere("tensor '" + t.name + "' has " + std::to_string(m_currentDone) + " of its " + std::to_string(t.nbytes)
            + " bytes");
    }
    m_file->commit();
    m_finished = true;
}

} // namespace qs::core
