#pragma once
// A streaming GGUF v3 writer (formats.md §2.1–2.3): metadata of every value type (arrays included, never
// arrays of arrays), tensor infos, and tensor data appended tensor by tensor, so a model never has to be in
// memory at once. Everything the ggml reader insists on holds by construction: keys non-empty and unique,
// general.alignment written as u32 (a power of two, multiple of 8), tensor names unique and shorter than
// 64 bytes, ne[0] a multiple of the type's block size, offsets packed tightly in tensor-info order
// (offset_i = Σ_{j<i} PAD(nbytes_j)), the data section starting at PAD(end of tensor infos), zero padding
// after every tensor including the last.
//
// The file is written through AtomicFile ("<path>.tmp-XXXXXX" beside the target, renamed by finish()).
// Any error (disk full, permission, a short tensor) or an exception such as Cancelled between the first
// write and finish() removes the temporary: there is either the complete file or nothing.
//
// Use: add metadata and tensor infos, then beginData(), then for each tensor in order writeTensorData()
// until its nbytes are written, then finish().

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/GgufBlocks.h"
#include "io/GgufFile.h"

namespace qs::core {

class AtomicFile;

// One metadata value ready to be written: its type and its encoded bytes (everything after the u32 type).
class GgufWriteValue
{
public:
    static GgufWriteValue u8(uint8_t v);
    static GgufWriteValue i8(int8_t v);
    static GgufWriteValue u16(uint16_t v);
    static GgufWriteValue i16(int16_t v);
    static GgufWriteValue u32(uint32_t v);
    static GgufWriteValue i32(int32_t v);
    static GgufWriteValue u64(uint64_t v);
    static GgufWriteValue i64(int64_t v);
    static GgufWriteValue f32(float v);
    static GgufWriteValue f64(double v);
    static GgufWriteValue boolean(bool v);
    static GgufWriteValue string(std::string_view v);
    static GgufWriteValue stringArray(const std::vector<std::string> &v);
    static GgufWriteValue f32Array(const std::vector<float> &v);
    static GgufWriteValue i32Array(const std::vector<int32_t> &v);
    static GgufWriteValue u32Array(const std::vector<uint32_t> &v);
    // Any numeric element type (not STRING, BOOL counts as numeric): count elements of elementSize bytes each.
    static GgufWriteValue numericArray(GgufType elementType, const void *data, uint64_t count);
    // A copy of a value read by GgufFile (any type), e.g. to carry tokenizer.ggml.* over.
    static GgufWriteValue copyOf(const GgufValue &value);

    GgufType type() const { return m_type; }
    const std::string &bytes() const { return m_bytes; }

private:
    GgufType m_type = GgufType::UInt8;
    std::string m_bytes;
};

class GgufWriter
{
public:
    // alignment: power of two and a multiple of 8 (Error otherwise). Nothing is created until beginData().
    explicit GgufWriter(std::string path, uint32_t alignment = GgufFile::kDefaultAlignment);
    ~GgufWriter(); // discards the temporary unless finish() succeeded
    GgufWriter(const GgufWriter &) = delete;
    GgufWriter &operator=(const GgufWriter &) = delete;

    // Throws Error naming the file for an empty/duplicate/overlong key; "general.alignment" is written by
    // the writer itself (from the constructor's alignment) and may not be given here.
    void addMetadata(const std::string &key, GgufWriteValue value);
    bool hasMetadata(std::string_view key) const;

    // ne innermost first (a Linear [out, in] is {in, out}; a vector {n}); 1..4 dimensions. Throws Error for
    // a duplicate or too long name, or ne[0] not a multiple of the type's block size.
    void addTensor(const std::string &name, std::vector<uint64_t> ne, const GgmlTypeInfo &type);

    // Creates the temporary and writes header, metadata, tensor infos and the padding before the data.
    void beginData();
    // Appends bytes of the current tensor (tensors in the order added). A tensor may be written in any
    // number of pieces; padding follows automatically once its nbytes are complete. Error on overflow.
    void writeTensorData(const void *data, size_t bytes);
    // Checks that every tensor is complete, flushes and renames into place. Throws Error naming the file.
    void finish();

    const std::string &path() const { return m_path; }
    uint32_t alignment() const { return m_alignment; }
    uint64_t bytesWritten() const;
    uint64_t dataBytes() const { return m_dataBytes; } // Σ padded tensor bytes
    size_t tensorCount() const { return m_tensors.size(); }
    // Bytes of the tensor currently expected by writeTensorData (0 when all are complete).
    uint64_t currentTensorBytes() const;

private:
    struct Tensor
    {
        std::string name;
        std::vector<uint64_t> ne;
        const GgmlTypeInfo *type;
        uint64_t offset;
        uint64_t nbytes;
    };
    [[noreturn]] void failHere(const std::string &what) const;
    void padTo(uint64_t multiple);

    std::string m_path;
    uint32_t m_alignment;
    std::vector<std::pair<std::string, GgufWriteValue>> m_metadata;
    std::vector<Tensor> m_tensors;
    uint64_t m_dataBytes = 0;
    std::unique_ptr<AtomicFile> m_file;
    size_t m_current = 0;      // index of the tensor being written
    uint64_t m_currentDone = 0; // its bytes written so far
    bool m_finished = false;
};

} // namespace qs::core
