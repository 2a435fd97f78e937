#pragma once
// TensorData over plain row-major F32/F16/BF16 bytes inside a read-only mapping (safetensors, llama2.c).
// Rows are converted to float32 on demand; nothing is copied at open time.

#include <cstdint>
#include <memory>
#include <string>

#include "model/Model.h"

namespace qs::core {

class RawTensorData final : public TensorData
{
public:
    // keepAlive owns the memory that bytes points into (the mapping, or an object holding it).
    // bytes need not be aligned. When permuteHeadDim > 0, the stored rows are in Meta (interleaved RoPE)
    // order and readRows() returns them in HF order: canonical row r is stored row hfRowToMetaRow(r, d).
    // fileForErrors and nameForErrors only feed error messages.
    RawTensorData(std::shared_ptr<const void> keepAlive, const uint8_t *bytes, DType dtype, int64_t rows, int64_t cols,
        std::string fileForErrors, std::string nameForErrors, int permuteHeadDim = 0);

    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override;
    // The bytes in file order (for permuted q/k that is Meta row order).
    const uint8_t *storedData() const override { return m_bytes; }

    static bool supports(DType dtype) { return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16; }
    static int bytesPerElement(DType dtype); // 4 or 2 for the supported types

private:
    void convertRow(const uint8_t *src, float *dst) const;

    std::shared_ptr<const void> m_keepAlive;
    const uint8_t *m_bytes;
    DType m_dtype;
    int64_t m_rows;
    int64_t m_cols;
    std::string m_file;
    std::string m_name;
    int m_permuteHeadDim;
};

} // namespace qs::core
