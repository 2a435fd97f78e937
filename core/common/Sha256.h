#pragma once
// SHA-256 (FIPS 180-4) of byte buffers and files, for provenance: a calibration set, a run or an exported
// file records the hash of the data it came from, so a result can be traced to the exact bytes and two
// runs can be told apart even when the file names match. Output is lowercase hex, the same text
// `sha256sum` prints, so users can check a recorded hash with standard tools.
//
// Own implementation rather than OpenSSL: the core must not grow a crypto dependency for one checksum,
// and hashing speed (a few hundred MB/s) is far from the bottleneck of any job that needs it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qs::core {

class Progress;

// Incremental hasher: update() any number of times, then finish() once. Splitting the input differently
// gives the same digest.
class Sha256
{
public:
    using Digest = std::array<uint8_t, 32>;

    Sha256();
    void update(const void *data, size_t bytes);
    void update(std::string_view text) { update(text.data(), text.size()); }
    // Pads, returns the digest and resets the hasher so it can be reused for new data.
    Digest finish();
    std::string finishHex() { return toHex(finish()); }

    static std::string toHex(const Digest &digest);

private:
    void reset();
    void compress(const uint8_t *block);

    std::array<uint32_t, 8> m_state {};
    std::array<uint8_t, 64> m_buffer {};
    size_t m_used = 0; // bytes waiting in m_buffer
    uint64_t m_length = 0; // total bytes hashed, for the padding
};

std::string sha256Hex(const void *data, size_t bytes);
std::string sha256Hex(std::string_view text);

// Streams the file in 1 MiB reads (never maps or loads it whole). Throws Error("<path>: ...") when it
// cannot be opened or read. With a progress, reports setTotal(file size) and advance(bytes) per read and
// throws Cancelled between reads, since model files can take seconds to hash.
std::string sha256FileHex(const std::string &path, Progress *progress = nullptr);

} // namespace qs::core
