#pragma once
// The Pareto front of (cost, loss) points where both are to be minimised, e.g. bits per weight against
// perplexity or KL divergence over quantization runs.

#include <vector>

namespace qs::core {

struct ParetoPoint
{
    double cost = 0.0;
    double loss = 0.0;
};

// Indices of the points no other point dominates (another point with cost <= and loss <=, one strictly),
// ordered by cost ascending. Points with a NaN coordinate are never on the front.
std::vector<int> paretoFront(const std::vector<ParetoPoint> &points);

} // namespace qs::core
