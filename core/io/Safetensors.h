#pragma once
// One safetensors file (formats.md 1.1-1.3): the header is parsed and validated on open, tensor bytes stay in
// the memory map until someone reads them. parseHeader() works on an in-memory buffer so tests and fuzzers
// need no files.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/Model.h"

namespace qs::core {

class MappedFile;

struct SafetensorsEntry
{
    std::string name;
    std::string dtype; // as written in the header: "F32", "BF16", "I32", ...
    unsigned bitsPerElement = 0; // from the dtype table
    std::vector<uint64_t> shape; // may be empty (scalar) or contain 0
    uint64_t numel = 0; // product of shape, 1 for a scalar
    uint64_t begin = 0; // byte offsets relative to the data section, end exclusive
    uint64_t end = 0;

    uint64_t byteSize() const { return end - begin; }
    // F32/F16/BF16 map to DType; any other dtype string gives nullopt.
    std::optional<DType> floatDType() const;
};

struct SafetensorsHeader
{
    uint64_t headerLength = 0; // N, the JSON length including padding
    uint64_t dataOffset = 0; // 8 + N: where the data section starts in the file
    uint64_t dataSize = 0; // file size - dataOffset
    std::map<std::string, std::string> metadata; // "__metadata__"
    std::vector<SafetensorsEntry> tensors; // in data order (sorted by offsets)

    const SafetensorsEntry *find(const std::string &name) const;

    std::map<std::string, size_t> index; // name -> position in tensors
};

class Safetensors
{
public:
    static constexpr uint64_t kMaxHeaderLength = 100'000'000; // safetensors' MAX_HEADER_SIZE

    // Validates a safetensors header as the reference reader does (formats.md 1.3), with messages that
    // name fileForErrors and the tensor at fault. bytes holds the first `size` bytes of a file of fileSize
    // bytes; it must cover at least the 8-byte length and the header (a fuzzer passes the whole input with
    // fileSize == size). Throws Error on any violation.
    static SafetensorsHeader parseHeader(
        const uint8_t *bytes, size_t size, uint64_t fileSize, const std::string &fileForErrors);

    // Maps the file and parses its header; tensor data is not touched. Errors name the file's name.
    static std::shared_ptr<const Safetensors> open(const std::string &path);

    const std::string &path() const { return m_path; }
    const std::string &fileName() const { return m_fileName; } // for error messages
    const SafetensorsHeader &header() const { return m_header; }
    const std::vector<SafetensorsEntry> &tensors() const { return m_header.tensors; }
    const SafetensorsEntry *find(const std::string &name) const { return m_header.find(name); }

    // Start of the tensor's bytes inside the mapping (not necessarily aligned).
    const uint8_t *tensorBytes(const SafetensorsEntry &info) const;

private:
    Safetensors() = default;
    std::shared_ptr<const MappedFile> m_file;
    std::string m_path;
    std::string m_fileName;
    SafetensorsHeader m_header;
};

// True when [data, data + size) is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool isValidUtf8(const uint8_t *data, size_t size);
// Offset of the first byte that starts an ill-formed sequence, or size when all is well-formed.
size_t firstInvalidUtf8(const uint8_t *data, size_t size);

} // namespace qs::core
