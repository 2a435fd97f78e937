#include "common/Sha256.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "common/Error.h"
#include "common/Progress.h"

namespace qs::core {

namespace {

// clang-format off
constexpr std::array<uint32_t, 64> kRound = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
// clang-format on

inline uint32_t rotr(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

} // namespace

Sha256::Sha256()
{
    reset();
}

void Sha256::reset()
{
    m_state = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    m_used = 0;
    m_length = 0;
}

void Sha256::compress(const uint8_t *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
        w[i] = (uint32_t(block[4 * i]) << 24) | (uint32_t(block[4 * i + 1]) << 16) | (uint32_t(block[4 * i + 2]) << 8)
            | uint32_t(block[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
        const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = m_state[0], b = m_state[1], c = m_state[2], d = m_state[3];
    uint32_t e = m_state[4], f = m_state[5], g = m_state[6], h = m_state[7];
    for (int i = 0; i < 64; ++i) {
        const uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const uint32_t ch = (e & f) ^ (~e & g);
        const uint32_t t1 = h + s1 + ch + kRound[size_t(i)] + w[i];
        const uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        const uint32_t t2 = s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    m_state[0] += a;
    m_state[1] += b;
    m_state[2] += c;
    m_state[3] += d;
    m_state[4] += e;
    m_state[5] += f;
    m_state[6] += g;
    m_state[7] += h;
}

void Sha256::update(const void *data, size_t bytes)
{
    const uint8_t *p = static_cast<const uint8_t *>(data);
    m_length += bytes;
    if (m_used > 0) {
        const size_t take = std::min(bytes, m_buffer.size() - m_used);
        std::memcpy(m_buffer.data() + m_used, p, take);
        m_used += take;
        p += take;
        bytes -= take;
        if (m_used < m_buffer.size())
            return;
        compress(m_buffer.data());
        m_used = 0;
    }
    // Whole blocks straight from the caller's memory: no copy for large inputs.
    while (bytes >= 64) {
        compress(p);
        p += 64;
        bytes -= 64;
    }
    if (bytes > 0) {
        std::memcpy(m_buffer.data(), p, bytes);
        m_used = bytes;
    }
}

Sha256::Digest Sha256::finish()
{
    const uint64_t bitLength = m_length * 8;
    // Padding: 0x80, zeros up to 56 mod 64, then the message length in bits, big-endian.
    uint8_t pad[72] = { 0x80 };
    const size_t padBytes = (m_used < 56 ? 56 - m_used : 120 - m_used);
    uint8_t lengthBytes[8];
    for (int i = 0; i < 8; ++i)
        lengthBytes[i] = uint8_t(bitLength >> (56 - 8 * i));
    update(pad, padBytes);
    update(lengthBytes, 8);
    Digest digest;
    for (size_t i = 0; i < 8; ++i) {
        digest[4 * i] = uint8_t(m_state[i] >> 24);
        digest[4 * i + 1] = uint8_t(m_state[i] >> 16);
        digest[4 * i + 2] = uint8_t(m_state[i] >> 8);
        digest[4 * i + 3] = uint8_t(m_state[i]);
    }
    reset();
    return digest;
}

std::string Sha256::toHex(const Digest &digest)
{
    static const char hex[] = "0123456789abcdef";
    std::string s(64, '0');
    for (size_t i = 0; i < digest.size(); ++i) {
        s[2 * i] = hex[digest[i] >> 4];
        s[2 * i + 1] = hex[digest[i] & 15];
    }
    return s;
}

std::string sha256Hex(const void *data, size_t bytes)
{
    Sha256 h;
    h.update(data, bytes);
    return h.finishHex();
}

std::string sha256Hex(std::string_view text)
{
    return sha256Hex(text.data(), text.size());
}

std::string sha256FileHex(const std::string &path, Progress *progress)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(path, std::string("cannot open for hashing: ") + std::strerror(errno));
    // Closes the descriptor on every exit, including Cancelled and Error.
    struct FdCloser
    {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer { fd };

    struct stat st
    {
    };
    if (::fstat(fd, &st) != 0)
        fail(path, std::string("cannot stat: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode))
        fail(path, "is a folder, not a file");
    if (progress)
        progress->setTotal(double(st.st_size));

    std::vector<uint8_t> buffer(size_t(1) << 20);
    Sha256 h;
    for (;;) {
        if (progress)
            progress->throwIfCancelled();
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail(path, std::string("cannot read: ") + std::strerror(errno));
        }
        if (n == 0)
            break;
        h.update(buffer.data(), size_t(n));
        if (progress)
            progress->advance(double(n));
    }
    return h.finishHex();
}

} // namespace qs::core
