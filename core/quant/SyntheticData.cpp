#include "quant/SyntheticData.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace qs::core {

uint64_t SyntheticRng::nextU64()
{
    uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double SyntheticRng::uniform()
{
    return double(nextU64() >> 11) * (1.0 / 9007199254740992.0);
}

double SyntheticRng::normal()
{
    if (m_hasSpare) {
        m_hasSpare = false;
        return m_spare;
    }
    double u1 = uniform();
    while (u1 <= 0.0)
        u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 6.283185307179586 * u2;
    m_spare = r * std::sin(a);
    m_hasSpare = true;
    return r * std::cos(a);
}

std::vector<int64_t> syntheticOutlierChannels(const SyntheticInputOptions &o)
{
    std::vector<int64_t> v;
    for (int k = 0; k < o.outlierChannels; ++k)
        v.push_back((k + 1) * o.channels / (o.outlierChannels + 2));
    return v;
}

std::vector<int64_t> syntheticDeadChannels(const SyntheticInputOptions &o)
{
    std::vector<int64_t> v;
    for (int k = 0; k < o.deadChannels; ++k)
        v.push_back(o.channels - 1 - k);
    return v;
}

std::vector<float> syntheticInputs(const SyntheticInputOptions &o)
{
    const int64_t n = o.channels;
    std::vector<float> x(size_t(o.tokens * n));
    std::vector<double> scale(size_t(n), 1.0);
    for (int64_t c : syntheticOutlierChannels(o))
        scale[size_t(c)] = o.outlierScale;
    for (int64_t c : syntheticDeadChannels(o))
        scale[size_t(c)] = 0.0;
    const double rho = o.correlation;
    const double innov = std::sqrt(std::max(0.0, 1.0 - rho * rho));
    SyntheticRng rng(o.seed);
    for (int64_t t = 0; t < o.tokens; ++t) {
        const double common = rng.normal();
        double prev = rng.normal();
        for (int64_t j = 0; j < n; ++j) {
            const double v = j == 0 ? prev : rho * prev + innov * rng.normal();
            prev = v;
            x[size_t(t * n + j)] = float(scale[size_t(j)] * (v + o.commonFactor * common));
        }
    }
    return x;
}

std::vector<float> syntheticWeights(int64_t rows, int64_t cols, uint64_t seed, double stddev)
{
    std::vector<float> w(size_t(rows * cols));
    SyntheticRng rng(seed ^ 0x5DEECE66Dull);
    for (float &v : w)
        v = float(stddev * rng.normal());
    return w;
}

Eigen::MatrixXd gramMatrix(const float *x, int64_t tokens, int64_t channels)
{
    // Blocked over 64 × 64 tiles of the lower triangle: a tile stays in cache while all tokens stream
    // through it, and the inner loop is a contiguous multiply-add the compiler vectorises. Plain loops
    // rather than Eigen so that tests in unoptimised (sanitizer) builds stay fast too.
    constexpr int64_t kTile = 64;
    const int64_t n = channels;
    const int64_t tiles = (n + kTile - 1) / kTile;
    Eigen::MatrixXd h = Eigen::MatrixXd::Zero(n, n);
    std::vector<std::pair<int64_t, int64_t>> pairs; // (row tile, col tile) with col ≤ row
    for (int64_t a = 0; a < tiles; ++a)
        for (int64_t b = 0; b <= a; ++b)
            pairs.emplace_back(a, b);
#pragma omp parallel for schedule(dynamic, 1) if (n * n * tokens > (int64_t(1) << 22))
    for (int64_t p = 0; p < int64_t(pairs.size()); ++p) {
        const int64_t i0 = pairs[size_t(p)].first * kTile, i1 = std::min(n, i0 + kTile);
        const int64_t j0 = pairs[size_t(p)].second * kTile, j1 = std::min(n, j0 + kTile);
        const int64_t nj = j1 - j0;
        double acc[kTile][kTile] = {};
        double xj[kTile];
        for (int64_t t = 0; t < tokens; ++t) {
            const float *row = x + t * n;
            for (int64_t j = 0; j < nj; ++j)
                xj[j] = double(row[j0 + j]);
            for (int64_t i = i0; i < i1; ++i) {
                const double xi = double(row[i]);
                double *a = acc[i - i0];
                for (int64_t j = 0; j < nj; ++j)
                    a[j] += xi * xj[j];
            }
        }
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = j0; j < j1 && j <= i; ++j) {
                h(i, j) = acc[i - i0][j - j0];
                h(j, i) = acc[i - i0][j - j0];
            }
    }
    return h;
}

} // namespace qs::core
