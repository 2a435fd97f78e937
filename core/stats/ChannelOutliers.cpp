#include "stats/ChannelOutliers.h"

#include <algorithm>
#include <cmath>

namespace qs::core {

ChannelOutliers findOutlierChannels(const std::vector<float> &channelAbsMax, double factor)
{
    ChannelOutliers result;
    std::vector<float> finite;
    finite.reserve(channelAbsMax.size());
    for (float v : channelAbsMax)
        if (std::isfinite(v))
            finite.push_back(v);
    if (finite.empty())
        return result;
    const size_t mid = finite.size() / 2;
    std::nth_element(finite.begin(), finite.begin() + long(mid), finite.end());
    double median = finite[mid];
    if (finite.size() % 2 == 0) {
        const float below = *std::max_element(finite.begin(), finite.begin() + long(mid));
        median = 0.5 * (double(below) + median);
    }
    result.median = median;
    result.threshold = factor * median;
    for (size_t i = 0; i < channelAbsMax.size(); ++i)
        if (std::isfinite(channelAbsMax[i]) && double(channelAbsMax[i]) > result.threshold)
            result.channels.push_back(int(i));
    return result;
}

} // namespace qs::core
