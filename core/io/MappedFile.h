#pragma once
// A read-only memory map of a whole file. Opening maps; nothing is read until pages are touched.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qs::core {

class MappedFile
{
public:
    // Throws Error("<path>: ...") if the file cannot be opened or mapped. An empty file maps to size 0.
    static std::shared_ptr<const MappedFile> open(const std::string &path);

    ~MappedFile();
    MappedFile(const MappedFile &) = delete;
    MappedFile &operator=(const MappedFile &) = delete;

    const std::string &path() const { return m_path; }
    const uint8_t *data() const { return m_data; }
    uint64_t size() const { return m_size; }

private:
    MappedFile() = default;
    std::string m_path;
    const uint8_t *m_data = nullptr;
    uint64_t m_size = 0;
};

} // namespace qs::core
