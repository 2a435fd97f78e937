#include "io/HfFolderReader.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "io/GptqTensorData.h"
#include "io/HfConfig.h"
#include "io/RawTensorData.h"
#include "io/Safetensors.h"

namespace qs::core {

namespace fs = std::filesystem;

namespace {

constexpr const char *kConfigName = "config.json";
constexpr const char *kSingleName = "model.safetensors";
constexpr const char *kIndexName = "model.safetensors.index.json";

bool isFile(const fs::path &p)
{
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

std::string readTextFile(const fs::path &path, const std::string &fileForErrors)
{
    // config and index files are small; anything huge is not what we think it is.
    constexpr uintmax_t kMaxBytes = 64u << 20;
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec)
        fail(fileForErrors, "cannot read: " + ec.message());
    if (size > kMaxBytes)
        fail(fileForErrors, "is " + std::to_string(size) + " bytes, too large for a JSON description file");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(fileForErrors, "cannot open for reading");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        fail(fileForErrors, "read error");
    return text.str();
}

// Where a tensor of the folder lives.
struct Source
{
    std::shared_ptr<const Safetensors> file;
    const SafetensorsEntry *info = nullptr;
};

// What a Hugging Face tensor name means in the canonical model.
struct Mapped
{
    enum Kind { Unknown, Ignored, Weight, Bias } kind = Unknown;
    std::string canonical;
    TensorRole role = TensorRole::Norm; // for Bias: the role of the weight it belongs to
    int block = -1;
    int slot = 0; // order inside a block
};

bool parseBlockIndex(const std::string &s, int &out)
{
    if (s.empty() || s.size() > 7 || (s.size() > 1 && s[0] == '0'))
        return false;
    out = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        out = out * 10 + (c - '0');
    }
    return true;
}

Mapped mapTensorName(const std::string &name)
{
    Mapped m;
    if (name == "model.embed_tokens.weight")
        return { Mapped::Weight, "model.embed_tokens", TensorRole::Embed, -1, 0 };
    if (name == "model.norm.weight")
        return { Mapped::Weight, "model.norm", TensorRole::Norm, -1, 0 };
    if (name == "lm_head.weight")
        return { Mapped::Weight, "lm_head", TensorRole::LmHead, -1, 0 };

    static const std::string prefix = "model.layers.";
    if (name.compare(0, prefix.size(), prefix) != 0)
        return m;
    const size_t dot = name.find('.', prefix.size());
    int block = 0;
    if (dot == std::string::npos || !parseBlockIndex(name.substr(prefix.size(), dot - prefix.size()), block))
        return m;
    const std::string rest = name.substr(dot + 1);
    const std::string base = name.substr(0, dot + 1);

    struct Entry
    {
        const char *module;
        TensorRole role;
        int slot;
    };
    static const Entry entries[] = {
        { "input_layernorm", TensorRole::Norm, 0 },
        { "self_attn.q_proj", TensorRole::Q, 1 },
        { "self_attn.k_proj", TensorRole::K, 3 },
        { "self_attn.v_proj", TensorRole::V, 5 },
        { "self_attn.o_proj", TensorRole::O, 7 },
        { "post_attention_layernorm", TensorRole::Norm, 9 },
        { "mlp.gate_proj", TensorRole::Gate, 10 },
        { "mlp.up_proj", TensorRole::Up, 12 },
        { "mlp.down_proj", TensorRole::Down, 14 },
    };
    if (rest == "self_attn.rotary_emb.inv_freq") // old checkpoints keep this recomputable buffer
        return { Mapped::Ignored, {}, TensorRole::Norm, block, 0 };
    for (const Entry &e : entries) {
        const std::string module = e.module;
        if (rest == module + ".weight")
            return { Mapped::Weight, base + module, e.role, block, e.slot };
        if (rest == module + ".bias" && e.role != TensorRole::Norm)
            return { Mapped::Bias, base + module + ".bias", e.role, block, e.slot + 1 };
    }
    return m;
}

bool biasExpected(const HyperParams &h, TensorRole weightRole)
{
    if (!h.attentionBias)
        return false;
    if (weightRole == TensorRole::Q || weightRole == TensorRole::K || weightRole == TensorRole::V)
        return true;
    return weightRole == TensorRole::O && h.architecture != "qwen2";
}

struct Folder
{
    fs::path dir;
    std::string explicitWeights; // a .safetensors file the user picked, else empty
};

Folder resolve(const std::string &path)
{
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec))
        return { p, {} };
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    const std::string name = p.filename().string();
    if (name == kConfigName || name == kIndexName)
        return { dir, {} };
    if (p.extension() == ".safetensors")
        return { dir, name };
    fail(path, "not a Hugging Face model folder, config.json or .safetensors file");
}

std::string displayName(const fs::path &dir)
{
    const fs::path clean = dir.lexically_normal();
    std::string name = clean.filename().string();
    if (name.empty() || name == ".")
        name = clean.parent_path().filename().string();
    return name.empty() ? dir.string() : name;
}

} // namespace

bool HfFolderReader::probe(const std::string &path)
{
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec))
        return isFile(p / kConfigName) && (isFile(p / kSingleName) || isFile(p / kIndexName));
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    const std::string name = p.filename().string();
    if (name == kConfigName || name == kIndexName)
        return isFile(p);
    return p.extension() == ".safetensors" && isFile(p) && isFile(dir / kConfigName);
}

std::unique_ptr<Model> HfFolderReader::open(const std::string &path, const OpenOptions &)
{
    const Folder folder = resolve(path);
    const fs::path configPath = folder.dir / kConfigName;
    std::error_code ec;
    if (fs::exists(configPath, ec) && !isFile(configPath))
        fail(kConfigName, "is not a regular file");
    if (!isFile(configPath))
        fail(folder.explicitWeights.empty() ? displayName(folder.dir) : folder.explicitWeights,
            "no config.json beside the weights (a Hugging Face model folder needs one)");
    HfConfig config = parseHfConfig(readTextFile(configPath, kConfigName), kConfigName);

    auto model = std::make_unique<Model>();
    model->format = "safetensors";
    model->path = path;
    model->warnings = config.warnings;

    const fs::path generationPath = folder.dir / "generation_config.json";
    if ((!config.hasBosTokenId || !config.hasEosTokenId) && isFile(generationPath)) {
        try {
            applyGenerationConfig(
                readTextFile(generationPath, "generation_config.json"), "generation_config.json", config);
        } catch (const Error &e) {
            model->warnings.push_back(std::string(e.what()) + " (token ids left at their defaults)");
        }
    }
    const fs::path tokenizerConfigPath = folder.dir / "tokenizer_config.json";
    if (isFile(tokenizerConfigPath)) {
        // Only add_bos_token matters here, and a broken tokenizer config must not stop the weights opening.
        try {
            const auto j = nlohmann::json::parse(readTextFile(tokenizerConfigPath, "tokenizer_config.json"));
            if (j.is_object())
                if (const auto it = j.find("add_bos_token"); it != j.end() && it->is_boolean())
                    config.hparams.addBos = it->get<bool>();
        } catch (const std::exception &e) {
            model->warnings.push_back(std::string("tokenizer_config.json: ignored (") + e.what() + ")");
        }
    }
    if (config.hparams.bosTokenId < 0)
        config.hparams.addBos = false;
    model->hparams = config.hparams;
    const HyperParams &h = model->hparams;

    // Which safetensors files, and which tensor lives where.
    std::map<std::string, Source> sources; // HF name -> location
    std::string weightsName; // names the weights in model-level errors
    const fs::path indexPath = folder.dir / kIndexName;
    bool sharded = false;
    std::optional<HfShardIndex> index;
    if (isFile(indexPath) && (folder.explicitWeights.empty() ? !isFile(folder.dir / kSingleName) : true)) {
        index = parseHfShardIndex(readTextFile(indexPath, kIndexName), kIndexName);
        sharded = folder.explicitWeights.empty();
        for (const auto &[tensor, shard] : index->weightMap)
            if (shard == folder.explicitWeights)
                sharded = true; // the user picked one shard: open the whole sharded model
    }
    if (sharded) {
        weightsName = kIndexName;
        std::map<std::string, std::shared_ptr<const Safetensors>> shards;
        for (const auto &[tensor, shard] : index->weightMap) {
            if (shards.count(shard))
                continue;
            const fs::path shardPath = folder.dir / shard;
            if (!isFile(shardPath))
                fail(kIndexName,
                    "shard '" + shard + "' (listed for tensor '" + tensor + "') does not exist in the model folder");
            shards.emplace(shard, Safetensors::open(shardPath.string()));
        }
        for (const auto &[tensor, shard] : index->weightMap) {
            const auto &file = shards.at(shard);
            const SafetensorsEntry *info = file->find(tensor);
            if (!info)
                fail(shard,
                    "does not contain tensor '" + tensor + "', which " + std::string(kIndexName)
                        + " places in this shard");
            sources[tensor] = { file, info };
        }
        for (const auto &[shardName, file] : shards)
            for (const SafetensorsEntry &t : file->tensors())
                if (!index->weightMap.count(t.name))
                    model->warnings.push_back(
                        shardName + ": tensor '" + t.name + "' is not listed in " + kIndexName + "; ignored");
    } else {
        weightsName = folder.explicitWeights.empty() ? std::string(kSingleName) : folder.explicitWeights;
        const fs::path single = folder.dir / weightsName;
        if (!isFile(single) && !folder.explicitWeights.empty())
            fail(folder.explicitWeights, "does not exist");
        if (!isFile(single))
            fail(displayName(folder.dir),
                std::string("no ") + kSingleName + " or " + kIndexName + " in the model folder");
        auto file = Safetensors::open(single.string());
        for (const SafetensorsEntry &t : file->tensors())
            sources[t.name] = { file, &t };
    }

    // GPTQ checkpoints (formats.md §3): <module>.qweight/.qzeros/.scales/.g_idx become one dequantizing
    // tensor per linear; the rest of the folder (embeddings, norms, float linears, biases) reads as usual.
    std::map<std::string, GptqLinearParts> gptqLinears;
    if (config.gptq) {
        static const std::pair<std::string, GptqTensorPart GptqLinearParts::*> parts[] = {
            { ".qweight", &GptqLinearParts::qweight },
            { ".qzeros", &GptqLinearParts::qzeros },
            { ".scales", &GptqLinearParts::scales },
            { ".g_idx", &GptqLinearParts::gIdx },
        };
        for (auto it = sources.begin(); it != sources.end();) {
            bool taken = false;
            for (const auto &[suffix, member] : parts) {
                const std::string &name = it->first;
                if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
                    const std::string module = name.substr(0, name.size() - suffix.size());
                    GptqLinearParts &linear = gptqLinears[module];
                    linear.module = module;
                    linear.*member = { it->second.file, it->second.info };
                    taken = true;
                    break;
                }
            }
            it = taken ? sources.erase(it) : std::next(it);
        }
        if (gptqLinears.empty())
            model->warnings.push_back(
                std::string(kConfigName) + ": quantization_config says GPTQ but the weights hold no qweight tensors");
    }

    // Map names, check dtypes and shapes of every tensor the model needs.
    struct Pending
    {
        int group; // 0 embed, 1 blocks, 2 final norm, 3 lm_head
        int block;
        int slot;
        Tensor tensor;
    };
    std::vector<Pending> pending;
    for (const auto &[hfName, src] : sources) {
        const Mapped m = mapTensorName(hfName);
        const std::string &file = src.file->fileName();
        if (m.kind == Mapped::Ignored)
            continue;
        if (m.kind == Mapped::Unknown) {
            model->warnings.push_back(
                file + ": tensor '" + hfName + "' is not part of a " + h.architecture + " model; ignored");
            continue;
        }
        if (m.block >= h.numLayers) {
            model->warnings.push_back(file + ": tensor '" + hfName + "' belongs to layer " + std::to_string(m.block)
                + " but config.json has " + std::to_string(h.numLayers) + " layers; ignored");
            continue;
        }
        if (m.kind == Mapped::Bias && !biasExpected(h, m.role)) {
            const bool attention = m.role == TensorRole::Q || m.role == TensorRole::K || m.role == TensorRole::V
                || m.role == TensorRole::O;
            const std::string why = !attention ? "MLP biases are not part of these architectures"
                : !h.attentionBias             ? "attention_bias is false"
                                               : "qwen2 has no o_proj bias";
            model->warnings.push_back(file + ": tensor '" + hfName + "' is a bias the " + h.architecture
                + " configuration does not use (" + why + "); ignored");
            continue;
        }
        if (m.role == TensorRole::LmHead && h.tiedEmbeddings) {
            model->warnings.push_back(file
                + ": 'lm_head.weight' is stored although tie_word_embeddings is true; "
                  "the embedding is used as transformers does");
            continue;
        }
        const SafetensorsEntry &info = *src.info;
        const std::optional<DType> dtype = info.floatDType();
        if (!dtype)
            fail(file,
                "tensor '" + hfName + "' has dtype " + info.dtype
                    + "; only F32, F16 and BF16 tensors can be read (is this a quantized checkpoint?)");
        if (info.shape.empty() || info.shape.size() > 2)
            fail(file,
                "tensor '" + hfName + "' has " + std::to_string(info.shape.size())
                    + " dimensions; a weight must have 1 or 2");
        for (uint64_t d : info.shape)
            if (d > (uint64_t(1) << 40))
                fail(file, "tensor '" + hfName + "' has an implausible dimension " + std::to_string(d));
        Tensor t;
        t.name = m.canonical;
        t.sourceName = hfName;
        t.role = m.kind == Mapped::Bias ? TensorRole::Bias : m.role;
        t.block = m.block;
        t.rows = info.shape.size() == 2 ? int64_t(info.shape[0]) : 1;
        t.cols = int64_t(info.shape.back());
        t.dtype = *dtype;
        t.storedBytes = info.byteSize();
        t.data = std::make_shared<RawTensorData>(
            src.file, src.file->tensorBytes(info), *dtype, t.rows, t.cols, file, hfName);
        const int group = m.role == TensorRole::Embed ? 0 : m.block >= 0 ? 1 : m.role == TensorRole::Norm ? 2 : 3;
        pending.push_back({ group, m.block, m.slot, std::move(t) });
    }
    if (config.gptq) {
        const GptqLayout layout { config.gptq->bits, config.gptq->groupSize, config.gptq->checkpointFormat == "gptq_v2" };
        for (const auto &[module, parts] : gptqLinears) {
            const GptqTensorPart &any = parts.qweight.file ? parts.qweight
                : parts.scales.file                      ? parts.scales
                : parts.qzeros.file                      ? parts.qzeros
                                                         : parts.gIdx;
            const std::string &file = any.file->fileName();
            const Mapped m = mapTensorName(module + ".weight");
            if (m.kind != Mapped::Weight || m.block >= h.numLayers) {
                model->warnings.push_back(
                    file + ": GPTQ tensors of '" + module + "' are not part of a " + h.architecture + " model; ignored");
                continue;
            }
            if (m.role == TensorRole::Embed || m.role == TensorRole::Norm)
                fail(file, "'" + module + "' is stored as GPTQ tensors, but only linear layers can be GPTQ-quantized");
            if (m.role == TensorRole::LmHead && h.tiedEmbeddings) {
                model->warnings.push_back(
                    file + ": a GPTQ 'lm_head' is stored although tie_word_embeddings is true; the embedding is used");
                continue;
            }
            for (const Pending &p : pending)
                if (p.tensor.name == m.canonical)
                    fail(file, "'" + module + "' is stored both as GPTQ tensors and as a float weight");
            auto data = std::make_shared<GptqTensorData>(parts, layout);
            Tensor t;
            t.name = m.canonical;
            t.sourceName = module + ".qweight";
            t.role = m.role;
            t.block = m.block;
            t.rows = data->rows();
            t.cols = data->cols();
            t.dtype = DType::GPTQ;
            t.storedBytes = data->storedBytes();
            t.data = std::move(data);
            const int group = m.block >= 0 ? 1 : 3;
            pending.push_back({ group, m.block, m.slot, std::move(t) });
        }
    }
    std::sort(pending.begin(), pending.end(), [](const Pending &a, const Pending &b) {
        return std::tie(a.group, a.block, a.slot) < std::tie(b.group, b.block, b.slot);
    });
    for (Pending &p : pending)
        model->tensors.push_back(std::move(p.tensor));

    if (h.tiedEmbeddings) {
        if (const Tensor *embed = model->find("model.embed_tokens")) {
            Tensor head = *embed;
            head.name = "lm_head";
            head.role = TensorRole::LmHead;
            head.tied = true;
            head.storedBytes = 0; // shares the embedding's bytes
            model->tensors.push_back(std::move(head));
        }
    }

    validateLlamaModel(*model, weightsName);

    // Biases the configuration requires: present, and one value per output row of their weight.
    for (int b = 0; b < h.numLayers; ++b) {
        for (TensorRole role : { TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::O }) {
            if (!biasExpected(h, role))
                continue;
            const std::string weight = layerName(b, role);
            const std::string bias = weight + ".bias";
            const Tensor *t = model->find(bias);
            if (!t)
                fail(weightsName,
                    "missing tensor '" + bias + "' (" + h.architecture
                        + (h.architecture == "qwen2" ? " always has q/k/v biases)" : " with attention_bias: true)"));
            const int64_t out = model->tensor(weight).rows;
            if (t->rows != 1 || t->cols != out)
                fail(weightsName,
                    "tensor '" + bias + "' has shape [" + std::to_string(t->rows) + ", " + std::to_string(t->cols)
                        + "] but its weight has " + std::to_string(out) + " output rows");
        }
    }

    const fs::path tokenizer = folder.dir / "tokenizer.json";
    if (isFile(tokenizer))
        model->tokenizerPath = tokenizer.string();
    else
        model->warnings.push_back(displayName(folder.dir) + ": no tokenizer.json; text evaluation needs a tokenizer");
    return model;
}

} // namespace qs::core
