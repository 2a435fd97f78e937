#include "eval/Pareto.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qs::core {

std::vector<int> paretoFront(const std::vector<ParetoPoint> &points)
{
    std::vector<int> order;
    for (int i = 0; i < int(points.size()); ++i)
        if (!std::isnan(points[size_t(i)].cost) && !std::isnan(points[size_t(i)].loss))
            order.push_back(i);
    // By cost, then loss: a point is on the front when its loss is below every cheaper point's.
    std::sort(order.begin(), order.end(), [&](int a, int b) {
        const ParetoPoint &pa = points[size_t(a)], &pb = points[size_t(b)];
        return pa.cost != pb.cost ? pa.cost < pb.cost : pa.loss < pb.loss;
    });
    std::vector<int> front;
    double bestLoss = INFINITY;
    for (int i : order) {
        if (points[size_t(i)].loss < bestLoss) {
            front.push_back(i);
            bestLoss = points[size_t(i)].loss;
        }
    }
    return front;
}

} // namespace qs::core
