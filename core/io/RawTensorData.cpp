#include "io/RawTensorData.h"

#include <cstring>

#include "common/Error.h"
#include "common/Half.h"
#include "common/HalfRows.h"

namespace qs::core {

RawTensorData::RawTensorData(std::shared_ptr<const void> keepAlive, const uint8_t *bytes, DType dtype, int64_t rows,
    int64_t cols, std::string fileForErrors, std::string nameForErrors, int permuteHeadDim)
    : m_keepAlive(std::move(keepAlive))
    , m_bytes(bytes)
    , m_dtype(dtype)
    , m_rows(rows)
    , m_cols(cols)
    , m_file(std::move(fileForErrors))
    , m_name(std::move(nameForErrors))
    , m_permuteHeadDim(permuteHeadDim)
{
    if (!supports(dtype))
        fail(m_file, "tensor '" + m_name + "': dtype " + dtypeName(dtype) + " cannot be read as float here");
    if (permuteHeadDim > 0 && (permuteHeadDim % 2 != 0 || rows % permuteHeadDim != 0))
        fail(m_file,
            "tensor '" + m_name + "': " + std::to_string(rows) + " rows do not split into heads of "
                + std::to_string(permuteHeadDim) + " rows");
}

int RawTensorData::bytesPerElement(DType dtype)
{
    return dtype == DType::F32 ? 4 : 2;
}

void RawTensorData::convertRow(const uint8_t *src, float *dst) const
{
    // memcpy everywhere: safetensors data need not be aligned (formats.md 1.4.5), and llama2.c arrays
    // follow a 28-byte header.
    switch (m_dtype) {
    case DType::F32:
        std::memcpy(dst, src, size_t(m_cols) * 4);
        break;
    case DType::F16:
        halfRowToFloat(src, dst, m_cols);
        break;
    case DType::BF16:
        bf16RowToFloat(src, dst, m_cols);
        break;
    default:
        break; // rejected in the constructor
    }
}

void RawTensorData::readRows(int64_t firstRow, int64_t rowCount, float *out) const
{
    if (firstRow < 0 || rowCount < 0 || firstRow > m_rows || rowCount > m_rows - firstRow)
        fail(m_file,
            "tensor '" + m_name + "': rows " + std::to_string(firstRow) + "+" + std::to_string(rowCount)
                + " out of range (" + std::to_string(m_rows) + " rows)");
    const size_t rowBytes = size_t(m_cols) * size_t(bytesPerElement(m_dtype));
    for (int64_t i = 0; i < rowCount; ++i) {
        const int64_t row = firstRow + i;
        const int64_t stored = m_permuteHeadDim > 0 ? hfRowToMetaRow(row, m_permuteHeadDim) : row;
        convertRow(m_bytes + size_t(stored) * rowBytes, out + size_t(i) * size_t(m_cols));
    }
}

} // namespace qs::core
