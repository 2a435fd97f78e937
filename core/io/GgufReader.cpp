#include "io/GgufReader.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/Error.h"
#include "io/GgufBlocks.h"
#include "io/GgufFile.h"
#include "io/MappedFile.h"

namespace qs::core {

namespace {

enum class Permute { None, Rows, Columns };

// Rows of one GGUF tensor as float32. Stateless apart from read-only pointers, so any number of threads
// may read at once; the shared mapping keeps the bytes alive as long as the model.
class GgufTensorData final : public TensorData
{
public:
    GgufTensorData(std::shared_ptr<const MappedFile> owner, const uint8_t *bytes, const GgmlTypeInfo &type,
        int64_t rows, int64_t cols, Permute permute, int headDim, std::string file, std::string name)
        : m_owner(std::move(owner))
        , m_bytes(bytes)
        , m_type(type)
        , m_rows(rows)
        , m_cols(cols)
        , m_rowBytes(ggmlBytesFor(type, uint64_t(cols)))
        , m_permute(permute)
        , m_headDim(headDim)
        , m_file(std::move(file))
        , m_name(std::move(name))
    { }

    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override
    {
        if (firstRow < 0 || rowCount < 0 || firstRow > m_rows - rowCount)
            fail(m_file,
                "tensor '" + m_name + "': rows " + std::to_string(firstRow) + "+" + std::to_string(rowCount)
                    + " out of range (" + std::to_string(m_rows) + " rows)");
        for (int64_t i = 0; i < rowCount; ++i) {
            const int64_t row = firstRow + i;
            float *dst = out + i * m_cols;
            if (m_permute == Permute::Columns) {
                // A q/k bias is one row whose elements follow the rows of its weight.
                std::vector<float> stored(static_cast<size_t>(m_cols));
                m_type.dequantize(m_bytes + uint64_t(row) * m_rowBytes, stored.data(), m_cols);
                for (int64_t c = 0; c < m_cols; ++c)
                    dst[c] = stored[size_t(hfRowToMetaRow(c, m_headDim))];
                continue;
            }
            const int64_t stored = m_permute == Permute::Rows ? hfRowToMetaRow(row, m_headDim) : row;
            m_type.dequantize(m_bytes + uint64_t(stored) * m_rowBytes, dst, m_cols);
        }
    }

    const uint8_t *storedData() const override { return m_bytes; }

private:
    std::shared_ptr<const MappedFile> m_owner;
    const uint8_t *m_bytes;
    const GgmlTypeInfo &m_type;
    int64_t m_rows;
    int64_t m_cols;
    uint64_t m_rowBytes;
    Permute m_permute;
    int m_headDim;
    std::string m_file;
    std::string m_name;
};

// GGUF llama tensor names (formats.md 2.8) and what they are in the canonical model. Block tensors are
// "blk.N.<gguf>"; their canonical name is "model.layers.N.<canonical>". Table order is the order of
// tensors inside a block in the model.
struct TensorNameMapping
{
    const char *gguf;
    const char *canonical;
    TensorRole role;
    Permute permute;
};

const std::vector<TensorNameMapping> &blockTensorNames()
{
    static const std::vector<TensorNameMapping> names = {
        { "attn_norm.weight", "input_layernorm", TensorRole::Norm, Permute::None },
        { "attn_q.weight", "self_attn.q_proj", TensorRole::Q, Permute::Rows },
        { "attn_q.bias", "self_attn.q_proj.bias", TensorRole::Bias, Permute::Columns },
        { "attn_k.weight", "self_attn.k_proj", TensorRole::K, Permute::Rows },
        { "attn_k.bias", "self_attn.k_proj.bias", TensorRole::Bias, Permute::Columns },
        { "attn_v.weight", "self_attn.v_proj", TensorRole::V, Permute::None },
        { "attn_v.bias", "self_attn.v_proj.bias", TensorRole::Bias, Permute::None },
        { "attn_output.weight", "self_attn.o_proj", TensorRole::O, Permute::None },
        { "attn_output.bias", "self_attn.o_proj.bias", TensorRole::Bias, Permute::None },
        { "ffn_norm.weight", "post_attention_layernorm", TensorRole::Norm, Permute::None },
        { "ffn_gate.weight", "mlp.gate_proj", TensorRole::Gate, Permute::None },
        { "ffn_gate.bias", "mlp.gate_proj.bias", TensorRole::Bias, Permute::None },
        { "ffn_up.weight", "mlp.up_proj", TensorRole::Up, Permute::None },
        { "ffn_up.bias", "mlp.up_proj.bias", TensorRole::Bias, Permute::None },
        { "ffn_down.weight", "mlp.down_proj", TensorRole::Down, Permute::None },
        { "ffn_down.bias", "mlp.down_proj.bias", TensorRole::Bias, Permute::None },
    };
    return names;
}

// Outside blocks; the first comes before the blocks in the model, the others after.
const std::vector<TensorNameMapping> &globalTensorNames()
{
    static const std::vector<TensorNameMapping> names = {
        { "token_embd.weight", "model.embed_tokens", TensorRole::Embed, Permute::None },
        { "output_norm.weight", "model.norm", TensorRole::Norm, Permute::None },
        { "output.weight", "lm_head", TensorRole::LmHead, Permute::None },
    };
    return names;
}

// Tensors llama GGUF files may carry that the canonical model has no place for.
bool isKnownExtraTensor(const std::string &name)
{
    return name == "rope_freqs.weight";
}

class ModelBuilder
{
public:
    ModelBuilder(const GgufFile &file, const std::string &path)
        : m_file(file)
        , m_name(file.fileName())
    {
        m_model = std::make_unique<Model>();
        m_model->format = "gguf";
        m_model->path = path;
        m_model->tokenizerPath = path;
    }

    std::unique_ptr<Model> build();

private:
    [[noreturn]] void failFile(const std::string &what) const { fail(m_name, what); }

    std::string key(const char *suffix) const { return m_arch + "." + suffix; }
    int toInt(int64_t v, const std::string &key) const
    {
        if (v < 0 || v > INT_MAX)
            failFile("metadata '" + key + "' value " + std::to_string(v) + " is out of range");
        return int(v);
    }
    std::optional<int> perLayerOrScalar(const std::string &key) const;
    int required(const std::string &key) const;
    void readHyperParams();
    void addTensor(const GgufTensorInfo &info, const TensorNameMapping &mapping, int block, std::string name);

    const GgufFile &m_file;
    std::string m_name;
    std::string m_arch;
    std::unique_ptr<Model> m_model;
};

std::optional<int> ModelBuilder::perLayerOrScalar(const std::string &k) const
{
    const GgufValue *v = m_file.find(k);
    if (!v)
        return std::nullopt;
    if (!v->isArray())
        return toInt(*m_file.getInteger(k), k);
    // Newer files may give one value per layer; the canonical model has one value for all layers.
    const std::vector<int64_t> values = *m_file.getIntegerArray(k);
    if (values.empty())
        failFile("metadata '" + k + "' is an empty array");
    for (int64_t x : values)
        if (x != values.front())
            failFile("metadata '" + k + "' differs between layers (" + std::to_string(values.front()) + " and "
                + std::to_string(x) + "); QuantScope needs the same value for every layer");
    return toInt(values.front(), k);
}

int ModelBuilder::required(const std::string &k) const
{
    const std::optional<int> v = perLayerOrScalar(k);
    if (!v)
        failFile("missing metadata '" + k + "' required by the " + m_arch + " architecture");
    return *v;
}

void ModelBuilder::readHyperParams()
{
    HyperParams &h = m_model->hparams;
    h.architecture = m_arch;
    h.maxPositions = required(key("context_length"));
    h.hiddenSize = required(key("embedding_length"));
    h.numLayers = required(key("block_count"));
    h.intermediateSize = required(key("feed_forward_length"));
    h.numHeads = required(key("attention.head_count"));
    h.numKvHeads = perLayerOrScalar(key("attention.head_count_kv")).value_or(h.numHeads);
    if (h.numHeads <= 0)
        failFile("metadata '" + key("attention.head_count") + "' is 0");

    if (const std::optional<int64_t> kl = m_file.getInteger(key("attention.key_length"))) {
        h.headDim = toInt(*kl, key("attention.key_length"));
    } else {
        if (h.hiddenSize % h.numHeads != 0)
            failFile("embedding length " + std::to_string(h.hiddenSize) + " is not a multiple of the head count "
                + std::to_string(h.numHeads) + " and no attention.key_length is given");
        h.headDim = h.hiddenSize / h.numHeads;
    }
    if (const std::optional<int64_t> vl = m_file.getInteger(key("attention.value_length")); vl && *vl != h.headDim)
        failFile("value head length " + std::to_string(*vl) + " differs from key head length "
            + std::to_string(h.headDim) + "; not supported");
    if (const std::optional<int64_t> rot = m_file.getInteger(key("rope.dimension_count")); rot && *rot != h.headDim)
        failFile("rope.dimension_count " + std::to_string(*rot) + " differs from the head dimension "
            + std::to_string(h.headDim) + "; partial rotary embeddings are not supported");

    const std::optional<double> eps = m_file.getFloat(key("attention.layer_norm_rms_epsilon"));
    if (!eps)
        failFile("missing metadata '" + key("attention.layer_norm_rms_epsilon") + "' required by the " + m_arch
            + " architecture");
    h.rmsEps = *eps;
    h.ropeTheta = m_file.getFloat(key("rope.freq_base")).value_or(10000.0);

    // RoPE scaling: the type string, else the factor alone (older files wrote rope.scale_linear).
    const std::optional<double> factor = m_file.has(key("rope.scaling.factor"))
        ? m_file.getFloat(key("rope.scaling.factor"))
        : m_file.getFloat(key("rope.scale_linear"));
    if (const std::optional<std::string> type = m_file.getString(key("rope.scaling.type")))
        h.ropeScaling.type = *type;
    else if (factor && *factor != 1.0)
        h.ropeScaling.type = "linear";
    if (factor)
        h.ropeScaling.factor = *factor;
    if (const std::optional<int64_t> orig = m_file.getInteger(key("rope.scaling.original_context_length")))
        h.ropeScaling.originalMaxPositions = toInt(*orig, key("rope.scaling.original_context_length"));

    // Vocabulary: the tokenizer's token list is authoritative, then the explicit key, then the embedding.
    if (const std::optional<uint64_t> n = m_file.getArraySize("tokenizer.ggml.tokens"))
        h.vocabSize = toInt(int64_t(*n), "tokenizer.ggml.tokens");
    else if (const std::optional<int64_t> v = m_file.getInteger(key("vocab_size")))
        h.vocabSize = toInt(*v, key("vocab_size"));
    else if (const GgufTensorInfo *embd = m_file.findTensor("token_embd.weight"); embd && embd->ne.size() >= 2)
        h.vocabSize = toInt(int64_t(std::min<uint64_t>(embd->ne[1], uint64_t(INT_MAX) + 1)), "token_embd.weight");

    // Token ids: llama.cpp writes 0xFFFFFFFF for "none"; anything beyond int range becomes -1.
    auto tokenId = [&](const char *k, int fallback) {
        const std::optional<int64_t> v = m_file.getInteger(k);
        if (!v)
            return fallback;
        return *v > INT_MAX ? -1 : int(*v);
    };
    h.bosTokenId = tokenId("tokenizer.ggml.bos_token_id", h.bosTokenId);
    h.eosTokenId = tokenId("tokenizer.ggml.eos_token_id", h.eosTokenId);
    if (const std::optional<bool> addBos = m_file.getBool("tokenizer.ggml.add_bos_token"))
        h.addBos = *addBos;
    else if (const std::optional<std::string> tokenizer = m_file.getString("tokenizer.ggml.model"))
        h.addBos = *tokenizer == "llama"; // SentencePiece vocabularies add BOS by default, BPE ones do not
}

void ModelBuilder::addTensor(const GgufTensorInfo &info, const TensorNameMapping &mapping, int block, std::string name)
{
    if (!info.type->dequantize)
        failFile("tensor '" + info.name + "' is stored as " + info.type->name
            + ", which QuantScope cannot decode (supported: " + decodableGgmlTypeNames() + ")");
    // Trailing dimensions of 1 are harmless (old writers kept them); anything else is not a matrix.
    for (size_t d = 2; d < info.ne.size(); ++d)
        if (info.ne[d] != 1)
            failFile("tensor '" + info.name + "' has " + std::to_string(info.ne.size())
                + " dimensions; a llama model needs matrices and vectors");
    const int64_t cols = int64_t(info.rowLength());
    const int64_t rows = info.ne.size() >= 2 ? int64_t(info.ne[1]) : 1;

    const int headDim = m_model->hparams.headDim;
    if (mapping.permute == Permute::Rows && (headDim <= 0 || rows % headDim != 0))
        failFile("tensor '" + info.name + "' has " + std::to_string(rows) + " rows, not a whole number of heads of "
            + std::to_string(headDim));
    if (mapping.permute == Permute::Columns && (headDim <= 0 || cols % headDim != 0 || rows != 1))
        failFile("tensor '" + info.name + "' has shape [" + std::to_string(rows) + ", " + std::to_string(cols)
            + "], not a bias over whole heads of " + std::to_string(headDim));

    Tensor t;
    t.name = std::move(name);
    t.sourceName = info.name;
    t.role = mapping.role;
    t.block = block;
    t.rows = rows;
    t.cols = cols;
    t.dtype = *info.type->dtype;
    t.storedBytes = info.nbytes;
    t.data = std::make_shared<GgufTensorData>(
        m_file.mapping(), m_file.tensorData(info), *info.type, rows, cols, mapping.permute, headDim, m_name, info.name);
    m_model->tensors.push_back(std::move(t));
}

std::unique_ptr<Model> ModelBuilder::build()
{
    if (m_file.tensors().empty())
        failFile("contains no tensors (a vocabulary-only GGUF?), so it is not a model");
    const std::optional<std::string> arch = m_file.getString("general.architecture");
    if (!arch)
        failFile("missing metadata 'general.architecture'");
    if (*arch != "llama")
        failFile("unsupported architecture '" + *arch + "' (QuantScope reads llama GGUF models)");
    m_arch = *arch;
    readHyperParams();
    const int numLayers = m_model->hparams.numLayers;

    // Sort the file's tensors into model order: embedding, blocks (table order inside each), the rest.
    struct Placed
    {
        int group; // 0 embedding, 1 blocks, 2 after the blocks
        int block;
        size_t order;
        const GgufTensorInfo *info;
        const TensorNameMapping *mapping;
        std::string name;
    };
    std::vector<Placed> placed;
    for (const GgufTensorInfo &info : m_file.tensors()) {
        bool found = false;
        const auto &globals = globalTensorNames();
        for (size_t i = 0; i < globals.size() && !found; ++i)
            if (info.name == globals[i].gguf) {
                placed.push_back({ i == 0 ? 0 : 2, -1, i, &info, &globals[i], globals[i].canonical });
                found = true;
            }
        if (!found && info.name.rfind("blk.", 0) == 0) {
            const size_t dot = info.name.find('.', 4);
            const std::string digits = info.name.substr(4, dot == std::string::npos ? 0 : dot - 4);
            const bool numeric = !digits.empty() && digits.size() <= 6
                && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (numeric) {
                const int block = std::stoi(digits);
                const std::string rest = info.name.substr(dot + 1);
                const auto &names = blockTensorNames();
                for (size_t i = 0; i < names.size() && !found; ++i)
                    if (rest == names[i].gguf) {
                        if (block >= numLayers)
                            failFile("tensor '" + info.name + "' belongs to block " + std::to_string(block)
                                + " but the file declares " + std::to_string(numLayers) + " blocks");
                        placed.push_back({ 1, block, i, &info, &names[i],
                            "model.layers." + std::to_string(block) + "." + names[i].canonical });
                        found = true;
                    }
            }
        }
        if (!found)
            m_model->warnings.push_back("tensor '" + info.name + "' "
                + (isKnownExtraTensor(info.name) ? std::string("(precomputed RoPE frequency factors) is not used")
                                                 : std::string("is not part of a llama model and is ignored")));
    }
    std::stable_sort(placed.begin(), placed.end(), [](const Placed &a, const Placed &b) {
        if (a.group != b.group)
            return a.group < b.group;
        if (a.block != b.block)
            return a.block < b.block;
        return a.order < b.order;
    });

    for (const Placed &p : placed) {
        addTensor(*p.info, *p.mapping, p.block, p.name);
        if (p.info->name.find(".attn_q.bias") != std::string::npos)
            m_model->hparams.attentionBias = true;
    }

    // Without output.weight the embedding doubles as the output layer (formats.md 2.8).
    if (!m_model->find("lm_head")) {
        if (const Tensor *embed = m_model->find("model.embed_tokens")) {
            Tensor head = *embed;
            head.name = "lm_head";
            head.role = TensorRole::LmHead;
            head.tied = true;
            m_model->tensors.push_back(std::move(head));
            m_model->hparams.tiedEmbeddings = true;
        }
    }

    validateLlamaModel(*m_model, m_name);
    return std::move(m_model);
}

} // namespace

bool GgufReader::probe(const std::string &path)
{
    return GgufFile::hasMagic(path);
}

std::unique_ptr<Model> GgufReader::open(const std::string &path)
{
    const GgufFile file = GgufFile::open(path);
    return build(file, path);
}

std::unique_ptr<Model> GgufReader::build(const GgufFile &file, const std::string &path)
{
    return ModelBuilder(file, path).build();
}

} // namespace qs::core
