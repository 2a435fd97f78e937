#pragma once
// Float rows held in memory, for tests that build models by hand instead of reading files.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/Model.h"

namespace qs::test {

class VectorTensorData final : public qs::core::TensorData
{
public:
    VectorTensorData(std::vector<float> values, int64_t cols) : m_values(std::move(values)), m_cols(cols) {}
    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override
    {
        std::copy_n(m_values.data() + firstRow * m_cols, rowCount * m_cols, out);
    }

private:
    std::vector<float> m_values;
    int64_t m_cols;
};

} // namespace qs::test
