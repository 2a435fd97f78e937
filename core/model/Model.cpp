#include "model/Model.h"

#include <set>

#include "common/Error.h"

namespace qs::core {

const char *dtypeName(DType t)
{
    switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_1: return "Q4_1";
    case DType::Q5_0: return "Q5_0";
    case DType::Q5_1: return "Q5_1";
    case DType::Q4_K: return "Q4_K";
    case DType::Q6_K: return "Q6_K";
    case DType::GPTQ: return "GPTQ";
    }
    return "?";
}

const char *roleName(TensorRole r)
{
    switch (r) {
    case TensorRole::Embed: return "embed";
    case TensorRole::Q: return "q";
    case TensorRole::K: return "k";
    case TensorRole::V: return "v";
    case TensorRole::O: return "o";
    case TensorRole::Gate: return "gate";
    case TensorRole::Up: return "up";
    case TensorRole::Down: return "down";
    case TensorRole::Norm: return "norm";
    case TensorRole::LmHead: return "lm_head";
    case TensorRole::Bias: return "bias";
    }
    return "?";
}

bool isLinearRole(TensorRole r)
{
    switch (r) {
    case TensorRole::Q:
    case TensorRole::K:
    case TensorRole::V:
    case TensorRole::O:
    case TensorRole::Gate:
    case TensorRole::Up:
    case TensorRole::Down:
    case TensorRole::LmHead:
        return true;
    default:
        return false;
    }
}

const Tensor *Model::find(const std::string &name) const
{
    for (const Tensor &t : tensors)
        if (t.name == name)
            return &t;
    return nullptr;
}

const Tensor &Model::tensor(const std::string &name) const
{
    if (const Tensor *t = find(name))
        return *t;
    fail(path, "no tensor named '" + name + "'");
}

int64_t Model::parameterCount() const
{
    int64_t n = 0;
    for (const Tensor &t : tensors)
        if (!t.tied)
            n += t.numel();
    return n;
}

void Model::readRows(const Tensor &t, int64_t firstRow, int64_t rowCount, float *out) const
{
    if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > t.rows)
        fail(path, "tensor '" + t.name + "': rows " + std::to_string(firstRow) + "+" + std::to_string(rowCount) +
                       " out of range (" + std::to_string(t.rows) + " rows)");
    if (!t.data)
        fail(path, "tensor '" + t.name + "' has no data");
    t.data->readRows(firstRow, rowCount, out);
}

std::vector<float> Model::readMatrix(const Tensor &t) const
{
    std::vector<float> out(size_t(t.numel()));
    readRows(t, 0, t.rows, out.data());
    return out;
}

std::string layerName(int block, TensorRole role)
{
    const std::string prefix = "model.layers." + std::to_string(block) + ".";
    switch (role) {
    case TensorRole::Q: return prefix + "self_attn.q_proj";
    case TensorRole::K: return prefix + "self_attn.k_proj";
    case TensorRole::V: return prefix + "self_attn.v_proj";
    case TensorRole::O: return prefix + "self_attn.o_proj";
    case TensorRole::Gate: return prefix + "mlp.gate_proj";
    case TensorRole::Up: return prefix + "mlp.up_proj";
    case TensorRole::Down: return prefix + "mlp.down_proj";
    case TensorRole::Embed: return "model.embed_tokens";
    case TensorRole::LmHead: return "lm_head";
    case TensorRole::Norm:
    case TensorRole::Bias:
        break;
    }
    return {};
}

int64_t metaRowToHfRow(int64_t metaRow, int headDim)
{
    const int64_t head = metaRow / headDim;
    const int64_t r = metaRow % headDim; // r = 2j + s
    const int64_t j = r / 2;
    const int64_t s = r % 2;
    return head * headDim + s * (headDim / 2) + j;
}

int64_t hfRowToMetaRow(int64_t hfRow, int headDim)
{
    const int64_t head = hfRow / headDim;
    const int64_t r = hfRow % headDim; // r = s*(d/2) + j
    const int64_t half = headDim / 2;
    const int64_t s = r / half;
    const int64_t j = r % half;
    return head * headDim + 2 * j + s;
}

namespace {

void expectShape(const Model &m, const std::string &file, const std::string &name, int64_t rows, int64_t cols)
{
    const Tensor *t = m.find(name);
    if (!t)
        fail(file, "missing tensor '" + name + "' required by the " + m.hparams.architecture + " architecture");
    if (t->rows != rows || t->cols != cols)
        fail(file, "tensor '" + name + "' (" + t->sourceName + ") has shape [" + std::to_string(t->rows) + ", " +
                       std::to_string(t->cols) + "] but the configuration implies [" + std::to_string(rows) +
                       ", " + std::to_string(cols) + "]");
}

} // namespace

void validateLlamaModel(const Model &m, const std::string &file)
{
    const HyperParams &h = m.hparams;
    auto positive = [&](int v, const char *what) {
        if (v <= 0 || v > (1 << 24))
            fail(file, std::string("implausible ") + what + " " + std::to_string(v));
    };
    positive(h.hiddenSize, "hidden size");
    positive(h.intermediateSize, "intermediate size");
    positive(h.numLayers, "number of layers");
    positive(h.numHeads, "number of attention heads");
    positive(h.numKvHeads, "number of key/value heads");
    positive(h.headDim, "head dimension");
    positive(h.vocabSize, "vocabulary size");
    if (h.numHeads % h.numKvHeads != 0)
        fail(file, "attention heads (" + std::to_string(h.numHeads) + ") not a multiple of key/value heads (" +
                       std::to_string(h.numKvHeads) + ")");
    if (h.headDim % 2 != 0)
        fail(file, "head dimension " + std::to_string(h.headDim) + " is odd; RoPE needs pairs");

    const int64_t H = h.hiddenSize, I = h.intermediateSize, V = h.vocabSize;
    const int64_t qDim = int64_t(h.numHeads) * h.headDim, kvDim = int64_t(h.numKvHeads) * h.headDim;
    expectShape(m, file, "model.embed_tokens", V, H);
    for (int b = 0; b < h.numLayers; ++b) {
        const std::string p = "model.layers." + std::to_string(b) + ".";
        expectShape(m, file, p + "input_layernorm", 1, H);
        expectShape(m, file, p + "post_attention_layernorm", 1, H);
        expectShape(m, file, layerName(b, TensorRole::Q), qDim, H);
        expectShape(m, file, layerName(b, TensorRole::K), kvDim, H);
        expectShape(m, file, layerName(b, TensorRole::V), kvDim, H);
        expectShape(m, file, layerName(b, TensorRole::O), H, qDim);
        expectShape(m, file, layerName(b, TensorRole::Gate), I, H);
        expectShape(m, file, layerName(b, TensorRole::Up), I, H);
        expectShape(m, file, layerName(b, TensorRole::Down), H, I);
    }
    expectShape(m, file, "model.norm", 1, H);
    expectShape(m, file, "lm_head", V, H);

    std::set<std::string> seen;
    for (const Tensor &t : m.tensors)
        if (!seen.insert(t.name).second)
            fail(file, "tensor '" + t.name + "' appears twice");
}

} // namespace qs::core
