#include "common/AtomicFile.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

#include "common/Error.h"

namespace qs::core {

namespace {

constexpr size_t kBufferBytes = size_t(1) << 20;

std::string errnoText(int err)
{
    if (err == ENOSPC)
        return "disk full (" + std::string(std::strerror(err)) + ")";
    return std::strerror(err);
}

// Six characters from [a-z0-9]; different for each call in this process and across processes.
std::string randomSuffix()
{
    static std::atomic<uint64_t> counter { 0 };
    static const uint64_t processSalt = [] {
        std::random_device rd;
        return (uint64_t(rd()) << 32) ^ rd() ^ uint64_t(::getpid());
    }();
    uint64_t x = processSalt ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull)
        ^ uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    // splitmix64 finaliser to spread the bits
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string s(6, 'a');
    for (char &ch : s) {
        ch = alphabet[x % 36];
        x /= 36;
    }
    return s;
}

} // namespace

AtomicFile::AtomicFile(std::string path)
    : m_path(std::move(path))
{
    if (m_path.empty())
        fail("", "cannot write a file with an empty name");
    for (int attempt = 0; attempt < 100; ++attempt) {
        m_tempPath = m_path + ".tmp-" + randomSuffix();
        // O_EXCL: never reuse or follow someone else's file; 0666 so the umask decides, as for any file.
        m_fd = ::open(m_tempPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (m_fd >= 0)
            break;
        if (errno != EEXIST) {
            const int err = errno;
            m_done = true;
            fail(m_path, "cannot create temporary file: " + errnoText(err));
        }
    }
    if (m_fd < 0) {
        m_done = true;
        fail(m_path, "cannot create a unique temporary file beside it");
    }
    m_buffer.resize(kBufferBytes);
}

AtomicFile::~AtomicFile()
{
    discard();
}

void AtomicFile::discard() noexcept
{
    if (m_fd >= 0) {
        ::close(m_fd);
        m_fd = -1;
    }
    if (!m_done) {
        ::unlink(m_tempPath.c_str());
        m_done = true;
    }
}

void AtomicFile::failAndDiscard(const std::string &what, int err)
{
    discard();
    fail(m_path, what + ": " + errnoText(err));
}

void AtomicFile::write(const void *data, size_t bytes)
{
    if (m_done)
        fail(m_path, "write after the file was committed or discarded");
    if (bytes == 0)
        return; // data may be null for an empty tensor
    const char *p = static_cast<const char *>(data);
    if (bytes >= m_buffer.size()) {
        // Large blocks go straight to the file; buffering them would only add a copy.
        flushBuffer();
        while (bytes > 0) {
            const ssize_t n = ::write(m_fd, p, bytes);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                failAndDiscard("cannot write", errno);
            }
            p += n;
            bytes -= size_t(n);
            m_written += uint64_t(n);
        }
        return;
    }
    if (m_used + bytes > m_buffer.size())
        flushBuffer();
    std::memcpy(m_buffer.data() + m_used, p, bytes);
    m_used += bytes;
    m_written += bytes;
}

void AtomicFile::flushBuffer()
{
    const char *p = m_buffer.data();
    size_t left = m_used;
    while (left > 0) {
        const ssize_t n = ::write(m_fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            failAndDiscard("cannot write", errno);
        }
        p += n;
        left -= size_t(n);
    }
    m_used = 0;
}

void AtomicFile::commit()
{
    if (m_done)
        fail(m_path, "commit after the file was committed or discarded");
    flushBuffer();
    // fsync before rename: otherwise a crash can leave the new name pointing at an empty file.
    if (::fsync(m_fd) != 0 && errno != EINVAL)
        failAndDiscard("cannot flush to disk", errno);
    const int fd = m_fd;
    m_fd = -1;
    if (::close(fd) != 0)
        failAndDiscard("cannot close", errno);
    if (::rename(m_tempPath.c_str(), m_path.c_str()) != 0)
        failAndDiscard("cannot rename " + m_tempPath + " into place", errno);
    m_done = true;
    m_buffer.clear();
    m_buffer.shrink_to_fit();
}

void writeFileAtomically(const std::string &path, std::string_view contents)
{
    AtomicFile file(path);
    file.write(contents);
    file.commit();
}

} // namespace qs::core
