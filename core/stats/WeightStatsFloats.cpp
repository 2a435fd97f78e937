// Weight statistics through float32 rows: F32, GGUF block types, permuted q/k (see WeightStats.h).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <optional>

#include "stats/ParallelChunks.h"
#include "stats/WeightStatsDetail.h"

namespace qs::core::detail {

namespace {

// ---------------------------------------------------------------------------------------------------
// Any other tensor: float32 rows, two passes (see WeightStats.h).

bool isFiniteBits(float x)
{
    return (std::bit_cast<uint32_t>(x) & 0x7F800000u) != 0x7F800000u;
}

// Stored F32 tensors in canonical row order are read in place (no copy into a buffer); the same
// conditions as for 16-bit codes, plus 4-byte alignment of the mapped data.
const float *storedFloatRows(const Model &model, const Tensor &t)
{
    if (t.dtype != DType::F32 || !t.data || t.storedBytes != uint64_t(t.rows) * uint64_t(t.cols) * 4u)
        return nullptr;
    const bool mayBePermuted = t.role == TensorRole::Q || t.role == TensorRole::K || t.role == TensorRole::Bias;
    if (mayBePermuted && model.format != "safetensors")
        return nullptr;
    const uint8_t *p = t.data->storedData();
    if (!p || reinterpret_cast<uintptr_t>(p) % alignof(float) != 0)
        return nullptr;
    const float *rows = reinterpret_cast<const float *>(p);
    const int64_t check = std::min<int64_t>(t.rows, 8);
    std::vector<float> viaReader(size_t(check * t.cols));
    model.readRows(t, 0, check, viaReader.data());
    if (std::memcmp(viaReader.data(), rows, viaReader.size() * sizeof(float)) != 0)
        return nullptr;
    return rows;
}

// Symmetric-log bins by table lookup for big float tensors: the top 16 bits of a float (sign, exponent,
// 7 mantissa bits) select a contiguous range of values, and the table holds the lowest bin of that range
// when the range spans at most two bins. The bin is then base + (x >= E[base + 1]): exact by the edge
// rule, since E[base + 1] is the only edge inside the range. Ranges spanning three or more bins (very
// narrow bins) are marked and take the exact binary search. Only the entries between min and max are
// filled (a few 10,000 binary searches), so the table pays off from some 10^5 values on.
class SymlogTable
{
public:
    static constexpr uint32_t kExact = std::numeric_limits<uint32_t>::max();

    SymlogTable(const SymlogBinner &exact, double mn, double mx)
        : m_exact(exact)
        , m_base(size_t(1) << 16, kExact)
        , m_next(exact.edges.size() + 1, std::numeric_limits<double>::infinity())
    {
        // m_next[b] = the edge a value must reach to be in bin b (b >= 1); +inf past the last bin.
        for (int64_t b = 1; b <= exact.last; ++b)
            m_next[size_t(b)] = exact.edges[size_t(b)];
        if (!std::signbit(mx)) // positive floats from idx(max(mn, +0)) to idx(mx)
            fill(std::signbit(mn) ? 0u : std::bit_cast<uint32_t>(float(mn)) >> 16,
                std::bit_cast<uint32_t>(float(mx)) >> 16);
        if (std::signbit(mn)) // negative floats (-0 included) from idx(min(mx, -0)) to idx(mn)
            fill(std::signbit(mx) ? std::bit_cast<uint32_t>(float(mx)) >> 16 : 0x8000u,
                std::bit_cast<uint32_t>(float(mn)) >> 16);
    }

    int64_t bin(float x) const
    {
        const uint32_t base = m_base[std::bit_cast<uint32_t>(x) >> 16];
        if (base == kExact)
            return m_exact.bin(x);
        return int64_t(base) + (double(x) >= m_next[base + 1] ? 1 : 0);
    }

private:
    void fill(uint32_t from, uint32_t to)
    {
        for (uint32_t i = from; i <= to; ++i) {
            const int64_t a = exactBin(std::bit_cast<float>(i << 16));
            const int64_t b = exactBin(std::bit_cast<float>((i << 16) | 0xFFFFu));
            const int64_t lo = std::min(a, b), hi = std::max(a, b);
            m_base[i] = hi - lo <= 1 ? uint32_t(lo) : kExact;
        }
    }

    // Number of interior edges E[1..last] that are <= x (the edge rule).
    int64_t exactBin(float x) const
    {
        const auto first = m_exact.edges.begin() + 1;
        return int64_t(std::upper_bound(first, first + m_exact.last, double(x)) - first);
    }

    const SymlogBinner &m_exact;
    std::vector<uint32_t> m_base;
    std::vector<double> m_next;
};

// Pass 1 over a chunk without NaN/Inf: vectorised (omp simd) extremes, per-channel absmax, sum and
// zero count, then the moments about the chunk mean in a second sweep over the same (cached) values.
void pass1Finite(const float *buf, int64_t count, int64_t cols, Pass1Chunk &p, float *rowAbsOut, float *colAbs)
{
    float mnf = std::numeric_limits<float>::infinity();
    float mxf = -std::numeric_limits<float>::infinity();
    double sum = 0.0;
    int64_t zeros = 0;
    for (int64_t r = 0; r < count; ++r) {
        const float *row = buf + r * cols;
        float rowAbs = 0.0f;
        int64_t rowZeros = 0;
#pragma omp simd reduction(max : rowAbs, mxf) reduction(min : mnf) reduction(+ : sum, rowZeros)
        for (int64_t c = 0; c < cols; ++c) {
            const float x = row[c];
            const float a = std::fabs(x);
            rowAbs = a > rowAbs ? a : rowAbs;
            colAbs[c] = a > colAbs[c] ? a : colAbs[c];
            mnf = x < mnf ? x : mnf;
            mxf = x > mxf ? x : mxf;
            sum += double(x);
            rowZeros += x == 0.0f ? 1 : 0;
        }
        rowAbsOut[r] = rowAbs;
        zeros += rowZeros;
    }
    const int64_t n = count * cols;
    const double m = sum / double(n);
    double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
#pragma omp simd reduction(+ : s1, s2, s3, s4)
    for (int64_t i = 0; i < n; ++i) {
        const double d = double(buf[i]) - m;
        const double d2 = d * d;
        s1 += d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    }
    p.moments = momentsAbout(m, double(n), s1, s2, s3, s4);
    p.min = mnf;
    p.max = mxf;
    p.zero = uint64_t(zeros);
}

// Pass 1 over a chunk with NaN/Inf: the same, skipping them, one value at a time.
void pass1WithNonFinite(const float *buf, int64_t count, int64_t cols, Pass1Chunk &p, float *rowAbsOut, float *colAbs)
{
    uint64_t n = 0;
    double sum = 0.0;
    for (int64_t r = 0; r < count; ++r) {
        const float *row = buf + r * cols;
        float rowAbs = 0.0f;
        for (int64_t c = 0; c < cols; ++c) {
            const float x = row[c];
            if (!std::isfinite(x)) {
                if (std::isnan(x))
                    ++p.nan;
                else
                    ++p.inf;
                continue;
            }
            ++n;
            sum += x;
            p.min = std::min(p.min, double(x));
            p.max = std::max(p.max, double(x));
            p.zero += x == 0.0f;
            const float a = std::fabs(x);
            rowAbs = std::max(rowAbs, a);
            colAbs[c] = std::max(colAbs[c], a);
        }
        rowAbsOut[r] = rowAbs;
    }
    if (n == 0)
        return;
    const double m = sum / double(n);
    double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
    for (int64_t i = 0; i < count * cols; ++i) {
        const float x = buf[i];
        if (!std::isfinite(x))
            continue;
        const double d = double(x) - m;
        const double d2 = d * d;
        s1 += d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    }
    p.moments = momentsAbout(m, double(n), s1, s2, s3, s4);
}

// 64-byte aligned storage for the float path's per-thread buffers: vectorised reductions may peel
// iterations to reach alignment, and the summation order must not depend on where a thread's buffer
// happened to land (results are identical for any thread count).
template <class T> struct Aligned64
{
    using value_type = T;
    Aligned64() = default;
    template <class U> Aligned64(const Aligned64<U> &) { }
    T *allocate(size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <class U> bool operator==(const Aligned64<U> &) const { return true; }
};
using FloatBuffer = std::vector<float, Aligned64<float>>;

} // namespace

void computeFromFloats(
    WeightStats &s, const Model &model, const Tensor &tensor, const StatsOptions &options, Progress &progress)
{
    const int64_t rows = tensor.rows;
    const int64_t cols = tensor.cols;
    const int64_t chunkRows = detail::rowsPerChunk(cols, options.chunkElements);
    const int64_t chunks = (rows + chunkRows - 1) / chunkRows;
    const float *stored = storedFloatRows(model, tensor);
    // This chunk's rows: in place for stored F32, else decoded by the reader into the thread's buffer.
    const auto chunkRowsOf = [&](int64_t first, int64_t count, FloatBuffer &buffer) -> const float * {
        if (stored)
            return stored + first * cols;
        buffer.resize(size_t(count * cols));
        model.readRows(tensor, first, count, buffer.data());
        return buffer.data();
    };

    // ---- pass 1: moments, extremes, counts, per-channel absmax ----
    std::vector<Pass1Chunk> partial(static_cast<size_t>(chunks));
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel
        {
            FloatBuffer buffer;
            FloatBuffer colAbs(size_t(cols), 0.0f);
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    const float *buf = chunkRowsOf(first, count, buffer);
                    const int64_t n = count * cols;
                    int64_t nonFinite = 0;
#pragma omp simd reduction(+ : nonFinite)
                    for (int64_t i = 0; i < n; ++i)
                        nonFinite += isFiniteBits(buf[i]) ? 0 : 1;
                    Pass1Chunk &p = partial[size_t(chunk)];
                    float *rowAbs = s.rowAbsMax.data() + first; // rows are disjoint between chunks
                    if (nonFinite == 0)
                        pass1Finite(buf, count, cols, p, rowAbs, colAbs.data());
                    else
                        pass1WithNonFinite(buf, count, cols, p, rowAbs, colAbs.data());
                    progress.advance(double(n));
                });
            }
            std::lock_guard lock(mergeMutex);
            for (int64_t c = 0; c < cols; ++c)
                s.colAbsMax[size_t(c)] = std::max(s.colAbsMax[size_t(c)], colAbs[size_t(c)]);
        }
        errors.rethrow();
    }

    // Merge in chunk order: the same arithmetic whatever the thread count.
    Moments total;
    double mn = std::numeric_limits<double>::infinity();
    double mx = -std::numeric_limits<double>::infinity();
    for (const Pass1Chunk &p : partial) {
        total = mergeMoments(total, p.moments);
        mn = std::min(mn, p.min);
        mx = std::max(mx, p.max);
        s.nanCount += p.nan;
        s.infCount += p.inf;
        s.zeroCount += p.zero;
    }
    s.count = uint64_t(total.n);
    if (s.count == 0) {
        s.symlogHistogram.scale = 1.0;
        progress.advance(double(rows * cols)); // pass 2 has nothing to look at
        return;
    }
    setMoments(s, total, mn, mx);

    // ---- pass 2: histograms and outliers ----
    const Binners bins = prepareHistograms(s, options);
    const Binner &linBin = bins.linear;
    const SymlogBinner &logBin = bins.symlog;
    std::optional<SymlogTable> logTable;
    if (logBin.middle < 0 && rows * cols >= options.binTableMinElements)
        logTable.emplace(logBin, mn, mx);
    const auto symlogBinOf = [&](float x) { return logTable ? logTable->bin(x) : logBin.bin(x); };
    const bool findOutliers = s.stddev > 0.0;
    const double threshold = s.outlierThreshold;
    const double mean = s.mean;
    const double linLo = linBin.lo, linScale = linBin.scale, linLast = double(linBin.last);
    std::vector<Candidate> candidates;
    {
        detail::ChunkErrors errors;
        std::mutex mergeMutex;
#pragma omp parallel
        {
            FloatBuffer buffer;
            std::vector<int32_t> linIndex(static_cast<size_t>(cols));
            // Four interleaved copies of each histogram (counter 4·bin + col % 4): most values fall in a
            // few central bins, and increments of one counter in a row wait on each other through memory.
            // One copy for very many bins (memory: copies × bins × 8 bytes per thread and histogram).
            const size_t nbins = size_t(options.histogramBins);
            const size_t copies = nbins <= 4096 ? 4 : 1;
            const size_t o1 = (copies - 1) & 1u, o2 = (copies - 1) & 2u, o3 = copies - 1; // lane offsets
            std::vector<uint64_t> lin(copies * nbins, 0);
            std::vector<uint64_t> lg(copies * nbins, 0);
            uint64_t outliers = 0;
            TopOutliers top(size_t(options.topOutliers));
            // Offers the row's outliers for the top-N list; counts them too when asked.
            const auto offerRow = [&](const float *row, int64_t r, bool count) {
                for (int64_t col = 0; col < cols; ++col) {
                    const float x = row[col];
                    if (!isFiniteBits(x))
                        continue;
                    const double dev = std::fabs(double(x) - mean);
                    if (dev > threshold) {
                        outliers += count ? 1 : 0;
                        top.offer({ dev, r, col, x });
                    }
                }
            };
#pragma omp for schedule(dynamic, 1)
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                errors.run([&] {
                    progress.throwIfCancelled();
                    const int64_t first = chunk * chunkRows;
                    const int64_t count = std::min(chunkRows, rows - first);
                    const float *buf = chunkRowsOf(first, count, buffer);
                    const Pass1Chunk &p = partial[size_t(chunk)];
                    const bool allFinite = p.nan == 0 && p.inf == 0;
                    for (int64_t r = 0; r < count; ++r) {
                        const float *row = buf + r * cols;
                        if (!allFinite) {
                            for (int64_t col = 0; col < cols; ++col) {
                                const float x = row[col];
                                if (!isFiniteBits(x))
                                    continue;
                                ++lin[copies * size_t(linBin.bin(x))];
                                ++lg[copies * size_t(symlogBinOf(x))];
                            }
                            if (findOutliers)
                                offerRow(row, first + r, true);
                            continue;
                        }
                        // Binner::bin, branch-free so that it vectorises (the same arithmetic); the number
                        // of outliers in the row (counted in double: one vector type in the loop) and its
                        // largest deviation, so that rows which cannot enter the top-N list are not scanned.
                        double beyond = 0.0;
                        double rowDev = 0.0;
                        const double middle = double(std::max<int64_t>(linBin.middle, 0));
                        const bool degenerate = linBin.middle >= 0;
#pragma omp simd reduction(+ : beyond) reduction(max : rowDev)
                        for (int64_t col = 0; col < cols; ++col) {
                            const double x = double(row[col]);
                            double f = (x - linLo) * linScale;
                            f = f > 0.0 ? f : 0.0;
                            f = f < linLast ? f : linLast;
                            linIndex[size_t(col)] = int32_t(degenerate ? middle : f);
                            const double dev = std::fabs(x - mean);
                            beyond += dev > threshold ? 1.0 : 0.0;
                            rowDev = dev > rowDev ? dev : rowDev;
                        }
                        if (findOutliers && beyond > 0.0) {
                            outliers += uint64_t(beyond);
                            if (top.mayTake(rowDev))
                                offerRow(row, first + r, false);
                        }
                        int64_t col = 0;
                        for (; col + 4 <= cols; col += 4) {
                            ++lin[copies * size_t(linIndex[size_t(col)])];
                            ++lin[copies * size_t(linIndex[size_t(col + 1)]) + o1];
                            ++lin[copies * size_t(linIndex[size_t(col + 2)]) + o2];
                            ++lin[copies * size_t(linIndex[size_t(col + 3)]) + o3];
                        }
                        for (; col < cols; ++col)
                            ++lin[copies * size_t(linIndex[size_t(col)])];
                        if (logTable) {
                            const SymlogTable &table = *logTable;
                            for (col = 0; col + 4 <= cols; col += 4) {
                                ++lg[copies * size_t(table.bin(row[col]))];
                                ++lg[copies * size_t(table.bin(row[col + 1])) + o1];
                                ++lg[copies * size_t(table.bin(row[col + 2])) + o2];
                                ++lg[copies * size_t(table.bin(row[col + 3])) + o3];
                            }
                            for (; col < cols; ++col)
                                ++lg[copies * size_t(table.bin(row[col]))];
                        } else {
                            for (col = 0; col < cols; ++col)
                                ++lg[copies * size_t(logBin.bin(row[col]))];
                        }
                    }
                    progress.advance(double(count * cols));
                });
            }
            std::lock_guard lock(mergeMutex);
            for (size_t b = 0; b < nbins; ++b)
                for (size_t k = 0; k < copies; ++k) {
                    s.linearHistogram.counts[b] += lin[copies * b + k];
                    s.symlogHistogram.counts[b] += lg[copies * b + k];
                }
            s.outlierCount += outliers;
            candidates.insert(candidates.end(), top.items().begin(), top.items().end());
        }
        errors.rethrow();
    }
    keepTopOutliers(s, std::move(candidates), options.topOutliers);
}


} // namespace qs::core::detail
