#include "io/GptqTensorData.h"

#include <algorithm>
#include <cstring>

#include "common/Error.h"
#include "common/Half.h"
#include "io/GptqPacking.h"
#include "io/Safetensors.h"

namespace qs::core {

namespace {

std::string shapeText(const std::vector<uint64_t> &shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

const SafetensorsEntry &need(const GptqTensorPart &p, const std::string &module, const char *suffix,
    const std::string &otherFile)
{
    if (!p.entry || !p.file)
        fail(otherFile,
            "GPTQ linear '" + module + "' has a qweight but no '" + module + "." + suffix
                + "' tensor (a GPTQ checkpoint stores qweight, qzeros, scales and g_idx together)");
    return *p.entry;
}

int32_t loadI32(const uint8_t *p)
{
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

} // namespace

GptqTensorData::GptqTensorData(const GptqLinearParts &parts, const GptqLayout &layout)
    : m_keepAlive(parts.qweight.file)
    , m_bits(layout.bits)
{
    const std::string &module = parts.module;
    if (!parts.qweight.entry || !parts.qweight.file)
        fail(parts.scales.file ? parts.scales.file->fileName() : module,
            "GPTQ linear '" + module + "' has no '" + module + ".qweight' tensor");
    const SafetensorsEntry &qw = *parts.qweight.entry;
    m_file = parts.qweight.file->fileName();
    m_name = module;
    const SafetensorsEntry &qz = need(parts.qzeros, module, "qzeros", m_file);
    const SafetensorsEntry &sc = need(parts.scales, module, "scales", m_file);
    const SafetensorsEntry &gi = need(parts.gIdx, module, "g_idx", m_file);
    const std::string &qzFile = parts.qzeros.file->fileName();
    const std::string &scFile = parts.scales.file->fileName();
    const std::string &giFile = parts.gIdx.file->fileName();

    if (!gptqBitsSupported(m_bits))
        fail(m_file, "GPTQ linear '" + module + "': " + std::to_string(m_bits) + "-bit weights are not supported (2, 3, 4 or 8)");
    const auto expectDType = [&](const SafetensorsEntry &e, const std::string &file, const char *want) {
        if (e.dtype != want)
            fail(file, "tensor '" + e.name + "' has dtype " + e.dtype + "; a GPTQ checkpoint stores it as " + want);
    };
    const auto expectRank = [&](const SafetensorsEntry &e, const std::string &file, size_t rank) {
        if (e.shape.size() != rank)
            fail(file,
                "tensor '" + e.name + "' has shape " + shapeText(e.shape) + "; expected " + std::to_string(rank)
                    + (rank == 1 ? " dimension" : " dimensions"));
    };
    expectDType(qw, m_file, "I32");
    expectDType(qz, qzFile, "I32");
    expectDType(gi, giFile, "I32");
    if (sc.dtype != "F16" && sc.dtype != "BF16" && sc.dtype != "F32")
        fail(scFile, "tensor '" + sc.name + "' has dtype " + sc.dtype + "; GPTQ scales are F16, BF16 or F32");
    expectRank(qw, m_file, 2);
    expectRank(qz, qzFile, 2);
    expectRank(sc, scFile, 2);
    expectRank(gi, giFile, 1);

    constexpr uint64_t kMaxDim = uint64_t(1) << 31;
    m_k = int64_t(std::min<uint64_t>(gi.shape[0], kMaxDim));
    m_n = int64_t(std::min<uint64_t>(qw.shape[1], kMaxDim));
    if (gi.shape[0] == 0 || gi.shape[0] >= kMaxDim || qw.shape[1] == 0 || qw.shape[1] >= kMaxDim)
        fail(m_file, "GPTQ linear '" + module + "' has an empty or implausible shape (qweight " + shapeText(qw.shape)
                + ", g_idx " + shapeText(gi.shape) + ")");
    const int64_t unit = gptqPackUnit(m_bits);
    if (m_k % unit != 0)
        fail(giFile,
            "GPTQ linear '" + module + "': " + std::to_string(m_k) + " input channels (g_idx length) are not a multiple of "
                + std::to_string(unit) + ", so " + std::to_string(m_bits) + "-bit values do not fill whole qweight words");
    m_wordRows = gptqPackedWords(m_k, m_bits);
    if (int64_t(qw.shape[0]) != m_wordRows)
        fail(m_file,
            "tensor '" + qw.name + "' has shape " + shapeText(qw.shape) + " but " + std::to_string(m_k)
                + " input channels at " + std::to_string(m_bits) + " bits need [" + std::to_string(m_wordRows) + ", "
                + std::to_string(m_n) + "]");
    if (layout.groupSize > 0)
        m_groups = (m_k + layout.groupSize - 1) / layout.groupSize;
    else
        m_groups = 1;
    if (sc.shape[0] != uint64_t(m_groups) || sc.shape[1] != uint64_t(m_n))
        fail(scFile,
            "tensor '" + sc.name + "' has shape " + shapeText(sc.shape) + "; expected [" + std::to_string(m_groups)
                + ", " + std::to_string(m_n) + "] (" + std::to_string(m_k) + " input channels in groups of "
                + std::to_string(layout.groupSize) + ", " + std::to_string(m_n) + " outputs)");
    if (m_n % unit != 0)
        fail(qzFile,
            "GPTQ linear '" + module + "': " + std::to_string(m_n) + " output channels are not a multiple of "
                + std::to_string(unit) + ", so " + std::to_string(m_bits) + "-bit zeros do not fill whole qzeros words");
    const int64_t zeroWords = gptqPackedWords(m_n, m_bits);
    if (qz.shape[0] != uint64_t(m_groups) || qz.shape[1] != uint64_t(zeroWords))
        fail(qzFile,
            "tensor '" + qz.name + "' has shape " + shapeText(qz.shape) + "; expected [" + std::to_string(m_groups)
                + ", " + std::to_string(zeroWords) + "]");
    m_storedBytes = qw.byteSize() + qz.byteSize() + sc.byteSize() + gi.byteSize();

    // g_idx
    const uint8_t *giBytes = parts.gIdx.file->tensorBytes(gi);
    m_gIdx.resize(size_t(m_k));
    for (int64_t k = 0; k < m_k; ++k) {
        const int32_t g = loadI32(giBytes + 4 * k);
        if (g < 0 || g >= m_groups)
            fail(giFile,
                "tensor '" + gi.name + "': g_idx[" + std::to_string(k) + "] = " + std::to_string(g)
                    + " is outside the " + std::to_string(m_groups) + " groups [0, " + std::to_string(m_groups - 1) + "]");
        m_gIdx[size_t(k)] = g;
    }

    // zeros, in the true-zero convention
    const uint8_t *qzBytes = parts.qzeros.file->tensorBytes(qz);
    std::vector<int32_t> row(static_cast<size_t>(zeroWords));
    const uint32_t mask = (uint32_t(1) << m_bits) - 1u;
    m_zeros.resize(size_t(m_groups * m_n));
    for (int64_t g = 0; g < m_groups; ++g) {
        std::memcpy(row.data(), qzBytes + 4 * g * zeroWords, size_t(zeroWords) * 4);
        for (int64_t n = 0; n < m_n; ++n) {
            const uint32_t stored = gptqUnpackField(row.data(), 1, n, m_bits);
            m_zeros[size_t(g * m_n + n)] = uint16_t(layout.v2Zeros ? stored : (stored + 1u) & mask);
        }
    }

    // scales
    const uint8_t *scBytes = parts.scales.file->tensorBytes(sc);
    m_scales.resize(size_t(m_groups * m_n));
    for (size_t i = 0; i < m_scales.size(); ++i) {
        float s = 0.0f;
        if (sc.dtype == "F32") {
            std::memcpy(&s, scBytes + 4 * i, 4);
        } else {
            uint16_t h;
            std::memcpy(&h, scBytes + 2 * i, 2);
            s = sc.dtype == "F16" ? halfToFloat(h) : bf16ToFloat(h);
        }
        m_scales[i] = s;
    }
    m_qweight = parts.qweight.file->tensorBytes(qw);
}

void GptqTensorData::columnWords(int64_t n, int32_t *words) const
{
    for (int64_t w = 0; w < m_wordRows; ++w)
        words[w] = loadI32(m_qweight + 4 * (w * m_n + n));
}

uint32_t GptqTensorData::code(int64_t n, int64_t k) const
{
    std::vector<int32_t> words(static_cast<size_t>(m_wordRows));
    columnWords(n, words.data());
    return gptqUnpackField(words.data(), 1, k, m_bits);
}

void GptqTensorData::readRows(int64_t firstRow, int64_t rowCount, float *out) const
{
    if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > m_n)
        fail(m_file,
            "GPTQ linear '" + m_name + "': rows [" + std::to_string(firstRow) + ", "
                + std::to_string(firstRow + rowCount) + ") outside its " + std::to_string(m_n) + " rows");
    // Gather the words of up to kChunk output columns word row by word row (contiguous reads of the
    // [K·b/32, N] matrix), then decode each column's bit stream.
    constexpr int64_t kChunk = 64;
    std::vector<int32_t> words(static_cast<size_t>(std::min(rowCount, kChunk) * m_wordRows));
    for (int64_t c0 = 0; c0 < rowCount; c0 += kChunk) {
        const int64_t count = std::min(kChunk, rowCount - c0);
        const int64_t n0 = firstRow + c0;
        for (int64_t w = 0; w < m_wordRows; ++w) {
            const uint8_t *src = m_qweight + 4 * (w * m_n + n0);
            for (int64_t i = 0; i < count; ++i)
                words[size_t(i * m_wordRows + w)] = loadI32(src + 4 * i);
        }
        for (int64_t i = 0; i < count; ++i) {
            const int64_t n = n0 + i;
            const int32_t *col = words.data() + i * m_wordRows;
            float *dst = out + (c0 + i) * m_k;
            for (int64_t k = 0; k < m_k; ++k) {
                const size_t gi = size_t(int64_t(m_gIdx[size_t(k)]) * m_n + n);
                const uint32_t q = gptqUnpackField(col, 1, k, m_bits);
                dst[k] = m_scales[gi] * (float(q) - float(m_zeros[gi]));
            }
        }
    }
}

} // namespace qs::core
