#pragma once
// Deterministic synthetic calibration data for the quantization benchmark and tests: correlated
// normal inputs with a few outlier channels and dead channels (the shape of the algorithms.md §3.6
// harness), random weights, and H = XᵀX. The generator is our own (splitmix64 + Box–Muller), so the
// numbers are identical on every platform and standard library.

#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace qs::core {

class SyntheticRng
{
public:
    explicit SyntheticRng(uint64_t seed) : m_state(seed) {}
    uint64_t nextU64();
    double uniform(); // [0, 1)
    double normal();  // standard normal

private:
    uint64_t m_state;
    double m_spare = 0.0;
    bool m_hasSpare = false;
};

struct SyntheticInputOptions
{
    int64_t tokens = 4096;
    int64_t channels = 256;
    uint64_t seed = 1;
    double correlation = 0.8;   // AR(1) correlation between neighbouring channels
    double commonFactor = 0.5;  // weight of one factor shared by all channels of a token
    int outlierChannels = 3;    // channels scaled by outlierScale
    double outlierScale = 20.0;
    int deadChannels = 1;       // channels that are exactly zero on every token
};

// tokens × channels, row-major. Outlier channel k sits at (k + 1)·channels/(outliers + 2); dead channels
// at channels − 1 − k.
std::vector<float> syntheticInputs(const SyntheticInputOptions &o);
std::vector<int64_t> syntheticOutlierChannels(const SyntheticInputOptions &o);
std::vector<int64_t> syntheticDeadChannels(const SyntheticInputOptions &o);

// rows × cols, row-major, normal with the given standard deviation.
std::vector<float> syntheticWeights(int64_t rows, int64_t cols, uint64_t seed, double stddev = 1.0);

// H = XᵀX in double for row-major X (tokens × channels).
Eigen::MatrixXd gramMatrix(const float *x, int64_t tokens, int64_t channels);

} // namespace qs::core
