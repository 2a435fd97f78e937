#include "quant/ZeroQuant.h"

#include "common/Error.h"

namespace qs::core {

QuantSpec ZeroQuantOptions::weightSpec() const
{
    QuantSpec s;
    s.grid = grid;
    s.bits = bits;
    if (rowGroups) {
        s.groupSize = -1;
        s.rowGroupSize = rowsPerGroup;
    } else {
        s.groupSize = groupSize;
        s.rowGroupSize = 1;
    }
    return s;
}

QuantizedTensor quantizeZeroQuantWeight(const WeightView &w, const ZeroQuantOptions &o, const std::string &name)
{
    if (o.rowGroups && o.rowsPerGroup < 1)
        throw Error((name.empty() ? std::string("weight") : name) + ": rows_per_group must be at least 1 (got " +
                    std::to_string(o.rowsPerGroup) + ")");
    QuantizedTensor t = quantizeRtn(w, o.weightSpec(), name);
    t.method = "zeroquant";
    return t;
}

void fakeQuantTokenwise(float *x, int64_t tokens, int64_t channels, const ZeroQuantOptions &o,
                        std::vector<float> *tokenScales)
{
    if (o.activationBits == 0) {
        if (tokenScales)
            tokenScales->clear();
        return;
    }
    fakeQuantPerToken(x, tokens, channels, ActQuantOptions{o.activationBits, o.activationConvention}, tokenScales);
}

} // namespace qs::core
