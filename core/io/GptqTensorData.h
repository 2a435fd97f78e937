#pragma once
// One GPTQ-quantized linear of a Hugging Face checkpoint folder (formats.md §3) as a TensorData: the
// `<module>.qweight`, `.qzeros`, `.scales` and `.g_idx` tensors, validated once when opened, dequantized
// row by row on demand (rows = output channels n, cols = input channels k, our Model layout):
//
//     w[n][k] = scale[g][n] · (q[k][n] − z[g][n]),   g = g_idx[k]
//
// with z = (stored + 1) & (2^b − 1) for checkpoint_format "gptq" (v1, the AutoGPTQ form) and z = stored
// for "gptq_v2"; in float32 from the scale's stored value (F16/BF16/F32), so an F16-scale checkpoint
// gives exactly code·f16(scale) arithmetic. qweight stays in the mapping; g_idx, zeros and scales (small)
// are decoded at open time.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/Model.h"

namespace qs::core {

class Safetensors;
struct SafetensorsEntry;

struct GptqTensorPart
{
    std::shared_ptr<const Safetensors> file;
    const SafetensorsEntry *entry = nullptr; // nullptr: missing
};

struct GptqLinearParts
{
    std::string module; // e.g. "model.layers.0.self_attn.q_proj"
    GptqTensorPart qweight, qzeros, scales, gIdx;
};

struct GptqLayout
{
    int bits = 4;
    int groupSize = 128; // −1: one group
    bool v2Zeros = false; // checkpoint_format "gptq_v2": zeros stored as is
};

class GptqTensorData final : public TensorData
{
public:
    // Checks presence, dtypes (I32 words and g_idx, F16/BF16/F32 scales) and every shape against the
    // layout, and g_idx values in [0, G). Throws Error("<file>: tensor '<name>' ...") naming the problem.
    GptqTensorData(const GptqLinearParts &parts, const GptqLayout &layout);

    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override;

    int64_t rows() const { return m_n; } // out_features
    int64_t cols() const { return m_k; } // in_features
    int64_t groups() const { return m_groups; }
    uint64_t storedBytes() const { return m_storedBytes; }

    // The decoded pieces (tests and diagnostics).
    uint32_t code(int64_t n, int64_t k) const;
    uint32_t zero(int64_t g, int64_t n) const { return m_zeros[size_t(g * m_n + n)]; }
    float scale(int64_t g, int64_t n) const { return m_scales[size_t(g * m_n + n)]; }
    const std::vector<int32_t> &gIdx() const { return m_gIdx; }

private:
    void columnWords(int64_t n, int32_t *words) const; // the K·b/32 words of output column n

    std::shared_ptr<const Safetensors> m_keepAlive;
    const uint8_t *m_qweight = nullptr;
    std::string m_file;
    std::string m_name;
    int m_bits = 4;
    int64_t m_n = 0;
    int64_t m_k = 0;
    int64_t m_groups = 1;
    int64_t m_wordRows = 0;
    uint64_t m_storedBytes = 0;
    std::vector<int32_t> m_gIdx;
    std::vector<uint16_t> m_zeros; // [G][N], the true zero
    std::vector<float> m_scales;   // [G][N]
};

} // namespace qs::core
