#include "io/HfConfig.h"

#include <climits>
#include <cmath>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/Error.h"

namespace qs::core {

namespace {

using nlohmann::json;

json parseObject(std::string_view text, const std::string &file)
{
    // nlohmann-json stops at a NUL byte and would ignore whatever follows it.
    if (text.find('\0') != std::string_view::npos)
        fail(file, "contains a NUL byte; not a JSON text file");
    json root;
    try {
        root = json::parse(text.begin(), text.end());
    } catch (const json::exception &e) {
        fail(file, std::string("not valid JSON: ") + e.what());
    }
    if (!root.is_object())
        fail(file, "not a JSON object");
    return root;
}

// Reads keys of one JSON object, with messages naming the file and the key's path ("rope_scaling.factor").
class Keys
{
public:
    Keys(const json &object, const std::string &file, std::string prefix = {})
        : m_obj(object)
        , m_file(file)
        , m_prefix(std::move(prefix))
    { }

    // null counts as absent: transformers writes null for "use the default".
    const json *get(const char *key) const
    {
        const auto it = m_obj.find(key);
        return it == m_obj.end() || it->is_null() ? nullptr : &*it;
    }
    bool has(const char *key) const { return get(key) != nullptr; }
    std::string path(const char *key) const { return "'" + m_prefix + key + "'"; }

    [[noreturn]] void bad(const char *key, const std::string &what) const { fail(m_file, path(key) + " " + what); }

    std::optional<int64_t> integer(const char *key, int64_t min, int64_t max) const
    {
        const json *v = get(key);
        if (!v)
            return std::nullopt;
        int64_t out = 0;
        if (v->is_number_unsigned()) {
            const uint64_t u = v->get<uint64_t>();
            if (u > uint64_t(max))
                bad(key, "is " + std::to_string(u) + ", above the plausible maximum " + std::to_string(max));
            out = int64_t(u);
        } else if (v->is_number_integer()) {
            out = v->get<int64_t>();
        } else if (v->is_number_float()) {
            // Some exporters write integral values as 4096.0; accept those, nothing fractional.
            const double d = v->get<double>();
            if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15)
                bad(key, "must be an integer, found " + v->dump());
            out = int64_t(d);
        } else {
            bad(key, std::string("must be an integer, found a JSON ") + v->type_name());
        }
        if (out < min || out > max)
            bad(key,
                "is " + std::to_string(out) + ", outside the plausible range " + std::to_string(min) + " to "
                    + std::to_string(max));
        return out;
    }
    int requiredInt(const char *key, int64_t min, int64_t max) const
    {
        const auto v = integer(key, min, max);
        if (!v)
            fail(m_file, "missing required key " + path(key));
        return int(*v);
    }

    std::optional<double> number(const char *key) const
    {
        const json *v = get(key);
        if (!v)
            return std::nullopt;
        if (!v->is_number())
            bad(key, std::string("must be a number, found a JSON ") + v->type_name());
        const double d = v->get<double>();
        if (!std::isfinite(d))
            bad(key, "is not a finite number");
        return d;
    }
    std::optional<double> positiveNumber(const char *key) const
    {
        const auto d = number(key);
        if (d && !(*d > 0.0))
            bad(key, "must be positive, found " + get(key)->dump());
        return d;
    }

    std::optional<bool> boolean(const char *key) const
    {
        const json *v = get(key);
        if (!v)
            return std::nullopt;
        if (!v->is_boolean())
            bad(key, std::string("must be true or false, found a JSON ") + v->type_name());
        return v->get<bool>();
    }

    std::optional<std::string> string(const char *key) const
    {
        const json *v = get(key);
        if (!v)
            return std::nullopt;
        if (!v->is_string())
            bad(key, std::string("must be a string, found a JSON ") + v->type_name());
        return v->get<std::string>();
    }

    // A token id: an integer, or a list of them (eos_token_id of chat models); the first one is kept.
    std::optional<int> tokenId(const char *key) const
    {
        const json *v = get(key);
        if (!v)
            return std::nullopt;
        if (v->is_array()) {
            if (v->empty())
                return std::nullopt;
            for (const json &e : *v)
                if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT_MAX)
                    bad(key, "must hold non-negative integer token ids, found " + e.dump().substr(0, 40));
            return int((*v)[0].get<int64_t>());
        }
        return int(*integer(key, 0, INT_MAX));
    }

private:
    const json &m_obj;
    const std::string &m_file;
    std::string m_prefix;
};

constexpr int64_t kMaxDim = int64_t(1) << 24; // same bound as validateLlamaModel

struct ArchDefaults
{
    const char *modelType;
    const char *architectureClass;
    int maxPositions;
    int bos;
    int eos;
};

// transformers class defaults (formats.md 1.8); qwen2 has no bos/eos default (null -> -1 here).
constexpr ArchDefaults kArchitectures[] = {
    { "llama", "LlamaForCausalLM", 2048, 1, 2 },
    { "mistral", "MistralForCausalLM", 131072, 1, 2 },
    { "qwen2", "Qwen2ForCausalLM", 32768, -1, -1 },
};

const ArchDefaults &architectureOf(const Keys &keys, const std::string &file)
{
    const std::optional<std::string> modelType = keys.string("model_type");
    std::string classes;
    if (const json *archs = keys.get("architectures"); archs && archs->is_array())
        for (const json &a : *archs)
            if (a.is_string())
                classes += (classes.empty() ? "" : ", ") + a.get<std::string>();
    if (modelType) {
        for (const ArchDefaults &a : kArchitectures)
            if (*modelType == a.modelType)
                return a;
        fail(file,
            "unsupported architecture: model_type '" + modelType->substr(0, 80) + "'"
                + (classes.empty() ? "" : " (" + classes.substr(0, 120) + ")")
                + "; QuantScope reads llama, mistral and qwen2 checkpoints");
    }
    // Very old exports lack model_type; the architectures list still says what the model is.
    if (const json *archs = keys.get("architectures"); archs && archs->is_array())
        for (const json &name : *archs)
            for (const ArchDefaults &a : kArchitectures)
                if (name.is_string() && name.get<std::string>() == a.architectureClass)
                    return a;
    fail(file,
        classes.empty() ? std::string("missing 'model_type' (cannot tell the architecture)")
                        : "unsupported architecture " + classes.substr(0, 120)
                + "; QuantScope reads llama, mistral and qwen2 checkpoints");
}

void parseRopeType(const Keys &keys, const char *typeKey, HfConfig &cfg)
{
    RopeScaling &rs = cfg.hparams.ropeScaling;
    std::string type = keys.string(typeKey).value_or("default");
    if (type == "default" || type == "none") {
        rs = RopeScaling {};
        return;
    }
    if (type != "linear" && type != "dynamic" && type != "yarn" && type != "longrope" && type != "llama3")
        keys.bad(typeKey,
            "names the RoPE type '" + type.substr(0, 40)
                + "', which QuantScope does not support (default, linear, dynamic, yarn, longrope, llama3)");
    rs.type = type;
    const auto factor = keys.positiveNumber("factor");
    rs.factor = factor.value_or(1.0);
    if (type == "llama3") {
        const auto low = keys.positiveNumber("low_freq_factor");
        const auto high = keys.positiveNumber("high_freq_factor");
        const auto original = keys.integer("original_max_position_embeddings", 1, INT_MAX);
        if (!factor || !low || !high || !original)
            keys.bad("factor",
                "and low_freq_factor, high_freq_factor, original_max_position_embeddings are all "
                "required for llama3 RoPE scaling");
        if (!(*high > *low))
            keys.bad("high_freq_factor", "must be larger than low_freq_factor");
        rs.lowFreqFactor = *low;
        rs.highFreqFactor = *high;
        rs.originalMaxPositions = int(*original);
    } else {
        if (!factor && type != "longrope")
            keys.bad("factor", "is required for " + type + " RoPE scaling");
        rs.originalMaxPositions
            = int(keys.integer("original_max_position_embeddings", 1, INT_MAX).value_or(cfg.hparams.maxPositions));
    }
}

// quantization_config of a GPTQ checkpoint (formats.md §3.5). bits, group_size and desc_act are required
// (as vLLM requires them); sym defaults to true as AutoGPTQ does; checkpoint_format (or its newer name
// "format") must be "gptq" (v1) or "gptq_v2": marlin-repacked weights have another layout.
GptqQuantConfig parseGptqQuantConfig(const json &q, const std::string &file, std::vector<std::string> &warnings)
{
    const Keys keys(q, file, "quantization_config.");
    GptqQuantConfig g;
    g.bits = keys.requiredInt("bits", 1, 64);
    if (g.bits != 2 && g.bits != 3 && g.bits != 4 && g.bits != 8)
        keys.bad("bits", "is " + std::to_string(g.bits) + "; GPTQ checkpoints use 2, 3, 4 or 8 bits");
    g.groupSize = keys.requiredInt("group_size", -1, int64_t(1) << 30);
    if (g.groupSize == 0)
        keys.bad("group_size", "is 0; it must be positive or -1 (one group per output column)");
    const auto descAct = keys.boolean("desc_act");
    if (!descAct)
        fail(file, "missing required key " + keys.path("desc_act") + " (GPTQ act-order flag)");
    g.descAct = *descAct;
    if (const auto sym = keys.boolean("sym"))
        g.sym = *sym;
    else
        warnings.push_back(file + ": " + keys.path("sym") + " is absent; assuming true as AutoGPTQ does");
    const auto legacy = keys.string("checkpoint_format");
    const auto current = keys.string("format");
    if (legacy && current && *legacy != *current)
        keys.bad("format", "is '" + current->substr(0, 40) + "' but checkpoint_format is '" + legacy->substr(0, 40) + "'");
    const std::string format = current ? *current : legacy ? *legacy : "gptq";
    if (format != "gptq" && format != "gptq_v2")
        keys.bad(current ? "format" : "checkpoint_format",
            "is '" + format.substr(0, 40) + "'; only \"gptq\" (v1) and \"gptq_v2\" checkpoints can be read");
    g.checkpointFormat = format;
    return g;
}

} // namespace

HfConfig parseHfConfig(std::string_view text, const std::string &file)
{
    const json root = parseObject(text, file);
    const Keys keys(root, file);
    HfConfig cfg;
    HyperParams &h = cfg.hparams;

    const ArchDefaults &arch = architectureOf(keys, file);
    h.architecture = arch.modelType;

    if (const json *q = keys.get("quantization_config")) {
        std::string method = "unknown";
        if (q->is_object())
            if (const auto m = q->find("quant_method"); m != q->end() && m->is_string())
                method = m->get<std::string>().substr(0, 40);
        if (method != "gptq")
            fail(file,
                "quantized checkpoint (quantization_config, method '" + method
                    + "'); this reader opens unquantized F32/F16/BF16 models and GPTQ checkpoints");
        cfg.gptq = parseGptqQuantConfig(*q, file, cfg.warnings);
    }
    if (const auto act = keys.string("hidden_act"); act && *act != "silu")
        keys.bad("hidden_act", "is '" + act->substr(0, 40) + "'; llama-family models use 'silu'");
    if (keys.boolean("mlp_bias").value_or(false))
        keys.bad("mlp_bias", "is true; MLP biases are not supported");

    h.hiddenSize = keys.requiredInt("hidden_size", 1, kMaxDim);
    h.intermediateSize = keys.requiredInt("intermediate_size", 1, kMaxDim);
    h.numLayers = keys.requiredInt("num_hidden_layers", 1, kMaxDim);
    h.numHeads = keys.requiredInt("num_attention_heads", 1, kMaxDim);
    h.vocabSize = keys.requiredInt("vocab_size", 1, kMaxDim);
    h.numKvHeads = int(keys.integer("num_key_value_heads", 1, kMaxDim).value_or(h.numHeads));
    if (h.numHeads % h.numKvHeads != 0)
        keys.bad("num_key_value_heads",
            "(" + std::to_string(h.numKvHeads) + ") does not divide num_attention_heads (" + std::to_string(h.numHeads)
                + ")");
    if (const auto headDim = keys.integer("head_dim", 1, kMaxDim)) {
        h.headDim = int(*headDim);
    } else {
        if (h.hiddenSize % h.numHeads != 0)
            keys.bad("hidden_size",
                "(" + std::to_string(h.hiddenSize) + ") is not a multiple of num_attention_heads ("
                    + std::to_string(h.numHeads) + ") and no head_dim is given");
        h.headDim = h.hiddenSize / h.numHeads;
    }
    if (h.headDim % 2 != 0)
        fail(file, "head dimension " + std::to_string(h.headDim) + " is odd; RoPE needs pairs");
    h.maxPositions = int(keys.integer("max_position_embeddings", 1, INT_MAX).value_or(arch.maxPositions));

    h.rmsEps = keys.positiveNumber("rms_norm_eps").value_or(1e-6);
    if (h.rmsEps >= 1.0)
        keys.bad("rms_norm_eps", "is implausibly large");

    // RoPE: transformers v5 moves everything into rope_parameters (formats.md 1.8); v4 uses rope_theta and
    // rope_scaling at the top level. Prefer the v5 form when both are present, it is the newer truth.
    h.ropeTheta = keys.positiveNumber("rope_theta").value_or(10000.0);
    if (const json *params = keys.get("rope_parameters")) {
        if (!params->is_object())
            keys.bad("rope_parameters", "must be an object");
        const json *flat = params;
        std::string prefix = "rope_parameters.";
        if (!params->contains("rope_type") && !params->contains("rope_theta")) {
            // Per layer type ({"full_attention": {...}, "sliding_attention": {...}}): llama-family layers
            // are all full attention.
            const auto full = params->find("full_attention");
            if (full == params->end() || !full->is_object())
                keys.bad("rope_parameters", "has neither rope_type/rope_theta nor a 'full_attention' entry");
            flat = &*full;
            prefix += "full_attention.";
        }
        const Keys ropeKeys(*flat, file, prefix);
        h.ropeTheta = ropeKeys.positiveNumber("rope_theta").value_or(h.ropeTheta);
        parseRopeType(ropeKeys, "rope_type", cfg);
    } else if (const json *scaling = keys.get("rope_scaling")) {
        if (!scaling->is_object())
            keys.bad("rope_scaling", "must be an object or null");
        const Keys scalingKeys(*scaling, file, "rope_scaling.");
        // Older files spell the key "type".
        parseRopeType(scalingKeys, scalingKeys.has("rope_type") ? "rope_type" : "type", cfg);
    }

    cfg.dtype = keys.string("torch_dtype").value_or(keys.string("dtype").value_or(std::string()));
    h.tiedEmbeddings = keys.boolean("tie_word_embeddings").value_or(false);
    // Qwen2 always has q/k/v biases (and none on o_proj) whatever the config says.
    h.attentionBias = h.architecture == "qwen2" ? true : keys.boolean("attention_bias").value_or(false);
    if (h.architecture == "qwen2" && keys.boolean("use_sliding_window").value_or(false))
        cfg.warnings.push_back(file + ": use_sliding_window is true; QuantScope evaluates with full attention");

    const auto bos = keys.tokenId("bos_token_id");
    const auto eos = keys.tokenId("eos_token_id");
    cfg.hasBosTokenId = bos.has_value();
    cfg.hasEosTokenId = eos.has_value();
    h.bosTokenId = bos.value_or(arch.bos);
    h.eosTokenId = eos.value_or(arch.eos);
    h.addBos = h.architecture != "qwen2"; // Qwen2 tokenizers add no BOS; tokenizer_config.json may override
    h.synthetic = keys.boolean("quantscope_synthetic").value_or(false);
    return cfg;
}

void applyGenerationConfig(std::string_view text, const std::string &file, HfConfig &cfg)
{
    const json root = parseObject(text, file);
    const Keys keys(root, file);
    const auto bos = keys.tokenId("bos_token_id");
    const auto eos = keys.tokenId("eos_token_id");
    if (!cfg.hasBosTokenId && bos) {
        cfg.hparams.bosTokenId = *bos;
        cfg.hasBosTokenId = true;
    }
    if (!cfg.hasEosTokenId && eos) {
        cfg.hparams.eosTokenId = *eos;
        cfg.hasEosTokenId = true;
    }
}

HfShardIndex parseHfShardIndex(std::string_view text, const std::string &file)
{
    const json root = parseObject(text, file);
    const auto map = root.find("weight_map");
    if (map == root.end() || !map->is_object())
        fail(file, "missing 'weight_map' object");
    if (map->empty())
        fail(file, "'weight_map' lists no tensors");
    HfShardIndex index;
    for (auto it = map->begin(); it != map->end(); ++it) {
        if (!it.value().is_string())
            fail(file, "'weight_map' entry for '" + it.key().substr(0, 200) + "' is not a string");
        const std::string shard = it.value().get<std::string>();
        // Shards live beside the index; anything with a directory part could point outside the folder.
        if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos
            || shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos)
            fail(file,
                "'weight_map' entry for '" + it.key().substr(0, 200) + "' names '" + shard.substr(0, 200)
                    + "', which is not a file name in the model folder");
        index.weightMap.emplace(it.key(), shard);
    }
    return index;
}

} // namespace qs::core
