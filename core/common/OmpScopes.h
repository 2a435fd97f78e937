#pragma once
// OpenMP thread-count scopes shared by the pipeline, the per-layer comparison and training, so the same
// work runs with the same thread counts (and gives the same bits) wherever it is started from.

#include <omp.h>

namespace qs::core {

// Sets the calling thread's OpenMP thread count for a scope (Eigen and the layer algorithms follow it);
// threads ≤ 0 leaves it unchanged.
class OmpThreadsScope
{
public:
    explicit OmpThreadsScope(int threads)
        : m_saved(omp_get_max_threads())
    {
        if (threads > 0)
            omp_set_num_threads(threads);
    }
    ~OmpThreadsScope() { omp_set_num_threads(m_saved); }
    OmpThreadsScope(const OmpThreadsScope &) = delete;
    OmpThreadsScope &operator=(const OmpThreadsScope &) = delete;

private:
    int m_saved;
};

// Runs small Eigen products on the calling thread: below a few million multiply-adds the OpenMP team's
// spin synchronisation costs more than it saves, and much more on a loaded machine (measured: the AWQ
// searches of a 260K-parameter model took 4x longer on 2 threads than on 1). Same threshold idea as
// ForwardEngine's GEMMs. Training relies on it for thread-count-independent results on small models.
class SmallWorkScope
{
public:
    explicit SmallWorkScope(double multiplyAdds, double threshold = double(1 << 24))
        : m_saved(omp_get_max_threads())
        , m_active(multiplyAdds < threshold && m_saved > 1)
    {
        if (m_active)
            omp_set_num_threads(1);
    }
    ~SmallWorkScope()
    {
        if (m_active)
            omp_set_num_threads(m_saved);
    }
    SmallWorkScope(const SmallWorkScope &) = delete;
    SmallWorkScope &operator=(const SmallWorkScope &) = delete;

private:
    int m_saved;
    bool m_active;
};

} // namespace qs::core
