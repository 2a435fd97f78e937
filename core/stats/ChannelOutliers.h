#pragma once
// Outlier channels: channels whose absolute maximum exceeds factor × the median channel absmax. The same
// rule serves weight columns/rows and (later) activation channels, as in LLM.int8() and SmoothQuant
// analyses where a handful of hidden dimensions carry values 10-100x the rest.

#include <vector>

namespace qs::core {

struct ChannelOutliers
{
    double median = 0.0;    // median of the channel absmax values
    double threshold = 0.0; // factor × median
    std::vector<int> channels; // ascending channel indices above the threshold
};

// Non-finite values are ignored when taking the median. An empty input gives an empty result.
ChannelOutliers findOutlierChannels(const std::vector<float> &channelAbsMax, double factor = 4.0);

} // namespace qs::core
