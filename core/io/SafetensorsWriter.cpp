#include "io/SafetensorsWriter.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "common/AtomicFile.h"
#include "common/Error.h"

namespace qs::core {

namespace {

// Position in the reference writer's sort (formats.md 1.4: U64, I64, F64, C64, F32, U32, I32, BF16, F16,
// U16, I16, ..., I8, U8, ...): lower is written first.
int sortRank(SafetensorsDType t)
{
    switch (t) {
    case SafetensorsDType::F32:
        return 0;
    case SafetensorsDType::I32:
        return 1;
    case SafetensorsDType::BF16:
        return 2;
    case SafetensorsDType::F16:
        return 3;
    case SafetensorsDType::I8:
        return 4;
    case SafetensorsDType::U8:
        return 5;
    }
    return 6;
}

void storeU64LE(uint64_t v, char *out)
{
    for (int i = 0; i < 8; ++i)
        out[i] = char((v >> (8 * i)) & 0xFFu);
}

} // namespace

const char *safetensorsDTypeName(SafetensorsDType t)
{
    switch (t) {
    case SafetensorsDType::F32:
        return "F32";
    case SafetensorsDType::F16:
        return "F16";
    case SafetensorsDType::BF16:
        return "BF16";
    case SafetensorsDType::I32:
        return "I32";
    case SafetensorsDType::I8:
        return "I8";
    case SafetensorsDType::U8:
        return "U8";
    }
    return "?";
}

size_t safetensorsDTypeSize(SafetensorsDType t)
{
    switch (t) {
    case SafetensorsDType::F32:
    case SafetensorsDType::I32:
        return 4;
    case SafetensorsDType::F16:
    case SafetensorsDType::BF16:
        return 2;
    case SafetensorsDType::I8:
    case SafetensorsDType::U8:
        return 1;
    }
    return 1;
}

uint64_t SafetensorsTensorInfo::byteSize() const
{
    // The reference schema caps offsets at 2^48 - 1; anything near that is a caller bug, not a model.
    constexpr uint64_t limit = (uint64_t(1) << 48) - 1;
    uint64_t n = safetensorsDTypeSize(dtype);
    for (const uint64_t d : shape) {
        if (d != 0 && n > limit / d)
            fail(name, "tensor shape is too large for a safetensors file");
        n *= d;
    }
    return n;
}

std::vector<SafetensorsTensorInfo> safetensorsWriteOrder(std::vector<SafetensorsTensorInfo> tensors)
{
    std::sort(tensors.begin(), tensors.end(), [](const SafetensorsTensorInfo &a, const SafetensorsTensorInfo &b) {
        const int ra = sortRank(a.dtype), rb = sortRank(b.dtype);
        if (ra != rb)
            return ra < rb;
        return a.name < b.name; // byte-wise, as the reference compares names
    });
    return tensors;
}

SafetensorsStreamWriter::SafetensorsStreamWriter(
    const std::string &path, std::vector<SafetensorsTensorInfo> tensors, const SafetensorsMetadata &metadata)
    : m_path(path)
    , m_order(safetensorsWriteOrder(std::move(tensors)))
{
    std::set<std::string> names;
    for (const SafetensorsTensorInfo &t : m_order) {
        if (t.name.empty() || t.name == "__metadata__")
            fail(m_path, "invalid tensor name '" + t.name + "'");
        if (!names.insert(t.name).second)
            fail(m_path, "tensor '" + t.name + "' given twice");
    }

    // Built by hand because the key order matters ("__metadata__" first, tensors in offset order) and
    // nlohmann::json objects sort their keys; nlohmann still does the string escaping.
    nlohmann::json meta = nlohmann::json::object();
    meta["format"] = "pt";
    for (const auto &[key, value] : metadata)
        meta[key] = value;
    std::string header = "{\"__metadata__\":" + meta.dump();
    uint64_t offset = 0;
    for (const SafetensorsTensorInfo &t : m_order) {
        const uint64_t end = offset + t.byteSize();
        nlohmann::json shape = nlohmann::json::array();
        for (const uint64_t d : t.shape)
            shape.push_back(d);
        header += "," + nlohmann::json(t.name).dump() + ":{\"dtype\":\"" + safetensorsDTypeName(t.dtype)
            + "\",\"shape\":" + shape.dump() + ",\"data_offsets\":[" + std::to_string(offset) + ","
            + std::to_string(end) + "]}";
        offset = end;
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');
    m_dataBytes = offset;
    m_headerBytes = 8 + header.size();

    m_file = std::make_unique<AtomicFile>(m_path);
    char len[8];
    storeU64LE(header.size(), len);
    m_file->write(len, 8);
    m_file->write(header);
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() = default;

void SafetensorsStreamWriter::append(const std::string &name, const void *data, size_t bytes)
{
    if (!m_file)
        fail(m_path, "append after the file was finished");
    // Skip completed tensors (including zero-size ones) up to the one being named.
    while (m_current < m_order.size() && m_currentDone == m_order[m_current].byteSize()
        && m_order[m_current].name != name) {
        ++m_current;
        m_currentDone = 0;
    }
    if (m_current >= m_order.size() || m_order[m_current].name != name) {
        const std::string expected = m_current < m_order.size() ? m_order[m_current].name : "(none left)";
        m_file->discard();
        fail(m_path, "tensor '" + name + "' supplied out of order (expected '" + expected + "')");
    }
    const uint64_t size = m_order[m_current].byteSize();
    if (m_currentDone + bytes > size) {
        m_file->discard();
        fail(m_path,
            "tensor '" + name + "' given " + std::to_string(m_currentDone + bytes) + " bytes but its shape needs "
                + std::to_string(size));
    }
    m_file->write(data, bytes);
    m_currentDone += bytes;
}

void SafetensorsStreamWriter::finish()
{
    if (!m_file)
        fail(m_path, "finish called twice");
    while (m_current < m_order.size() && m_currentDone == m_order[m_current].byteSize()) {
        ++m_current;
        m_currentDone = 0;
    }
    if (m_current < m_order.size()) {
        m_file->discard();
        fail(m_path,
            "tensor '" + m_order[m_current].name + "' is incomplete (" + std::to_string(m_currentDone) + " of "
                + std::to_string(m_order[m_current].byteSize()) + " bytes)");
    }
    m_file->commit();
    m_file.reset();
}

void writeSafetensors(const std::string &path, const std::vector<SafetensorsTensorView> &tensors,
    const SafetensorsMetadata &metadata, Progress *progress)
{
    std::vector<SafetensorsTensorInfo> infos;
    infos.reserve(tensors.size());
    for (const SafetensorsTensorView &t : tensors)
        infos.push_back(t.info);
    SafetensorsStreamWriter writer(path, std::move(infos), metadata);
    if (progress)
        progress->setTotal(double(writer.fileBytes() - writer.headerBytes()));

    // Look views up by name to feed them in the writer's order.
    std::map<std::string, const SafetensorsTensorView *> byName;
    for (const SafetensorsTensorView &t : tensors)
        byName[t.info.name] = &t;
    for (const SafetensorsTensorInfo &info : writer.writeOrder()) {
        if (progress)
            progress->throwIfCancelled();
        const SafetensorsTensorView *view = byName.at(info.name);
        const uint64_t bytes = info.byteSize();
        if (bytes > 0 && !view->data)
            fail(path, "tensor '" + info.name + "' has no data");
        writer.append(info.name, view->data, size_t(bytes));
        if (progress)
            progress->advance(double(bytes));
    }
    writer.finish();
}

} // namespace qs::core
