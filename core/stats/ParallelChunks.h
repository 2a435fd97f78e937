#pragma once
// Internal helper for OpenMP loops over row chunks whose bodies may throw (reader errors, Cancelled).
// An exception must not leave an OpenMP region, so each chunk body runs through ChunkErrors::run(): the
// first exception is kept, the remaining chunks are skipped, and rethrow() raises it after the region.
// Not part of the public core API (no Qt, no OpenMP in the signature, so any core file may include it).

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace qs::core::detail {

class ChunkErrors
{
public:
    // Runs f() unless an earlier chunk failed; never throws.
    template <class F> void run(F &&f) noexcept
    {
        if (m_stop.load(std::memory_order_relaxed))
            return;
        try {
            f();
        } catch (...) {
            std::lock_guard lock(m_mutex);
            if (!m_first)
                m_first = std::current_exception();
            m_stop.store(true, std::memory_order_relaxed);
        }
    }

    bool failed() const { return m_stop.load(std::memory_order_relaxed); }

    // Call after the parallel region, from the thread that started it.
    void rethrow()
    {
        if (m_first)
            std::rethrow_exception(m_first);
    }

private:
    std::atomic<bool> m_stop { false };
    std::mutex m_mutex;
    std::exception_ptr m_first;
};

// Rows per chunk so that a chunk holds about targetElements values (at least one row). The chunking
// depends only on the tensor shape, never on the thread count, so results merged in chunk order are
// identical whatever OMP_NUM_THREADS is.
inline int64_t rowsPerChunk(int64_t cols, int64_t targetElements)
{
    if (cols <= 0)
        return 1;
    const int64_t r = targetElements / cols;
    return r < 1 ? 1 : r;
}

} // namespace qs::core::detail
