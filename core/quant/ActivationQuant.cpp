#include "quant/ActivationQuant.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/Error.h"

namespace qs::core {

namespace {

Grid activationGrid(const ActQuantOptions &o)
{
    if (o.convention == SymConvention::Restricted)
        return Grid(GridId::Sym, o.bits);
    if (o.convention == SymConvention::FullSigned)
        return Grid(GridId::SymFull, o.bits);
    throw Error(std::string("activation quantization supports the restricted and full_signed conventions, not ") +
                symConventionName(o.convention));
}

} // namespace

void fakeQuantPerToken(float *x, int64_t tokens, int64_t channels, const ActQuantOptions &options,
                       std::vector<float> *tokenScales)
{
    const Grid grid = activationGrid(options);
    if (tokenScales)
        tokenScales->assign(size_t(std::max<int64_t>(tokens, 0)), 0.0f);
#pragma omp parallel for schedule(static) if (tokens * channels > (int64_t(1) << 15))
    for (int64_t t = 0; t < tokens; ++t) {
        float *row = x + t * channels;
        RangeStats s;
        for (int64_t c = 0; c < channels; ++c)
            s.absmax = std::max(s.absmax, std::fabs(row[c]));
        const GroupParams p = grid.params(s);
        grid.quantizeSpan(row, channels, p, nullptr, row);
        if (tokenScales)
            (*tokenScales)[size_t(t)] = p.scale;
    }
}

float fakeQuantPerTensor(float *x, int64_t tokens, int64_t channels, const ActQuantOptions &options,
                         float staticAbsMax)
{
    const Grid grid = activationGrid(options);
    const int64_t n = tokens * channels;
    RangeStats s;
    if (staticAbsMax >= 0.0f) {
        s.absmax = staticAbsMax;
    } else {
        for (int64_t i = 0; i < n; ++i)
            s.absmax = std::max(s.absmax, std::fabs(x[i]));
    }
    const GroupParams p = grid.params(s);
    grid.quantizeSpan(x, n, p, nullptr, x);
    return p.scale;
}

} // namespace qs::core
