#pragma once
// Writes safetensors files the way the reference writer does (formats.md 1.4): tensors sorted by dtype
// alignment (largest first, the reference enum order), ties by name; consecutive offsets from 0; compact
// JSON with "__metadata__" first (always carrying "format": "pt", 1.5) and the tensors in offset order;
// header padded with spaces to a multiple of 8. Files go through AtomicFile: written to
// "<path>.tmp-XXXXXX" beside the target and renamed into place, removed on any failure.
//
// Two ways in: writeSafetensors() for tensors already in memory, and SafetensorsStreamWriter for tensors
// produced one after another (the header is written first from the declared shapes, then the bytes are
// appended in writeOrder()), so a multi-gigabyte file never needs to be in memory.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/Progress.h"

namespace qs::core {

class AtomicFile;

enum class SafetensorsDType : uint8_t { F32, F16, BF16, I32, I8, U8 };
const char *safetensorsDTypeName(SafetensorsDType t); // "F32", "F16", ...
size_t safetensorsDTypeSize(SafetensorsDType t); // bytes per element

struct SafetensorsTensorInfo
{
    std::string name; // as stored, e.g. "model.layers.0.self_attn.q_proj.weight"
    SafetensorsDType dtype = SafetensorsDType::F32;
    std::vector<uint64_t> shape; // [] is a scalar
    uint64_t byteSize() const; // numel × element size
};

// A view of tensor bytes in memory (little-endian, row-major); data must hold info.byteSize() bytes.
struct SafetensorsTensorView
{
    SafetensorsTensorInfo info;
    const void *data = nullptr;
};

// Extra metadata strings go into "__metadata__" beside "format": "pt" (a "format" entry here wins).
using SafetensorsMetadata = std::map<std::string, std::string>;

class SafetensorsStreamWriter
{
public:
    // Validates names (non-empty, unique, not "__metadata__") and creates the temporary file with the
    // header. Throws Error naming path.
    SafetensorsStreamWriter(
        const std::string &path, std::vector<SafetensorsTensorInfo> tensors, const SafetensorsMetadata &metadata = {});
    ~SafetensorsStreamWriter(); // discards the temporary unless finish() succeeded
    SafetensorsStreamWriter(const SafetensorsStreamWriter &) = delete;
    SafetensorsStreamWriter &operator=(const SafetensorsStreamWriter &) = delete;

    // The order in which tensor bytes must be appended (the file's offset order).
    const std::vector<SafetensorsTensorInfo> &writeOrder() const { return m_order; }
    uint64_t headerBytes() const { return m_headerBytes; } // 8 + padded JSON length
    uint64_t fileBytes() const { return m_headerBytes + m_dataBytes; }

    // Appends bytes of tensor `name`, which must be the tensor being filled or, once that one is
    // complete, the next one in writeOrder(). A tensor may arrive in several pieces.
    void append(const std::string &name, const void *data, size_t bytes);
    // Checks that every tensor is complete, then renames the file into place.
    void finish();

private:
    std::string m_path;
    std::vector<SafetensorsTensorInfo> m_order;
    std::unique_ptr<AtomicFile> m_file;
    uint64_t m_headerBytes = 0;
    uint64_t m_dataBytes = 0;
    size_t m_current = 0; // index in m_order being filled
    uint64_t m_currentDone = 0; // bytes of it received
};

// The tensors in the order the writer stores them (dtype alignment, then name; formats.md 1.4).
std::vector<SafetensorsTensorInfo> safetensorsWriteOrder(std::vector<SafetensorsTensorInfo> tensors);

// Writes all tensors at once. Progress (optional): setTotal(data bytes), advance per tensor.
void writeSafetensors(const std::string &path, const std::vector<SafetensorsTensorView> &tensors,
    const SafetensorsMetadata &metadata = {}, Progress *progress = nullptr);

} // namespace qs::core
