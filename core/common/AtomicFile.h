#pragma once
// Write-to-temporary-then-rename, so a reader never sees a half-written file and a failed or cancelled
// write leaves nothing behind (house style, practice 6). Every exporter writes through this.
//
// The temporary is "<path>.tmp-XXXXXX" in the same folder (rename is only atomic within one file system).
// It is created with mode 0666 minus the umask, like any ordinary file. Writes are buffered; on any
// failure (disk full, permission, I/O error) the temporary is removed and Error("<path>: <reason>") is
// thrown, naming the final path the user asked for. The destructor removes an uncommitted temporary, so
// an exception (including Cancelled) thrown between open and commit cleans up by itself.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qs::core {

class AtomicFile
{
public:
    explicit AtomicFile(std::string path); // creates the temporary; throws Error when it cannot
    ~AtomicFile(); // discards unless committed
    AtomicFile(const AtomicFile &) = delete;
    AtomicFile &operator=(const AtomicFile &) = delete;

    void write(const void *data, size_t bytes);
    void write(std::string_view text) { write(text.data(), text.size()); }

    // Flushes, syncs and renames the temporary onto path(), replacing any file there. After commit() the
    // object does nothing more. Throws Error (and removes the temporary) on failure.
    void commit();
    // Removes the temporary now; safe to call more than once.
    void discard() noexcept;

    const std::string &path() const { return m_path; }
    const std::string &tempPath() const { return m_tempPath; }
    uint64_t bytesWritten() const { return m_written; }

private:
    void flushBuffer();
    [[noreturn]] void failAndDiscard(const std::string &what, int err);

    std::string m_path;
    std::string m_tempPath;
    int m_fd = -1;
    bool m_done = false;
    uint64_t m_written = 0;
    std::vector<char> m_buffer;
    size_t m_used = 0;
};

// Whole-file convenience: writes contents to path atomically.
void writeFileAtomically(const std::string &path, std::string_view contents);

} // namespace qs::core
