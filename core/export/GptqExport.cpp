#include "export/GptqExport.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/AtomicFile.h"
#include "common/AtomicFolder.h"
#include "common/Error.h"
#include "common/Half.h"
#include "common/Version.h"
#include "io/GptqPacking.h"
#include "io/SafetensorsWriter.h"

namespace qs::core {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char *kWeightsFile = "model.safetensors";
constexpr float kHalfMax = 65504.0f;

// Files of a Hugging Face source folder carried over unchanged.
const char *const kCopiedFiles[] = { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "tokenizer.model", "added_tokens.json", "chat_template.jinja", "generation_config.json" };

std::string listed(const std::vector<std::string> &names, size_t max = 4)
{
    std::string s;
    for (size_t i = 0; i < names.size() && i < max; ++i)
        s += (i ? ", " : "") + names[i];
    if (names.size() > max)
        s += " and " + std::to_string(names.size() - max) + " more";
    return s;
}

std::string joined(const std::vector<std::string> &parts, const char *sep)
{
    std::string s;
    for (size_t i = 0; i < parts.size(); ++i)
        s += (i ? sep : "") + parts[i];
    return s;
}

std::string sci(double v)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

bool isBlockLinear(TensorRole r)
{
    return r == TensorRole::Q || r == TensorRole::K || r == TensorRole::V || r == TensorRole::O
        || r == TensorRole::Gate || r == TensorRole::Up || r == TensorRole::Down;
}

// "model.layers.3.self_attn.q_proj" -> "self_attn.q_proj"
std::string moduleInBlock(const std::string &name)
{
    static const std::string prefix = "model.layers.";
    if (name.compare(0, prefix.size(), prefix) != 0)
        return name;
    const size_t dot = name.find('.', prefix.size());
    return dot == std::string::npos ? name : name.substr(dot + 1);
}

std::string fileTensorName(const Tensor &t)
{
    return t.role == TensorRole::Bias ? t.name : t.name + ".weight";
}

std::string readSmallFile(const fs::path &p)
{
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A previous GPTQ export (or any GPTQ checkpoint folder) that a new export may replace.
bool isGptqFolder(const fs::path &dir)
{
    std::error_code ec;
    if (!fs::is_regular_file(dir / "config.json", ec) || !fs::is_regular_file(dir / kWeightsFile, ec))
        return false;
    try {
        const auto j = nlohmann::json::parse(readSmallFile(dir / "config.json"));
        const auto &q = j.at("quantization_config");
        return q.at("quant_method").get<std::string>() == "gptq";
    } catch (const std::exception &) {
        return false;
    }
}

fs::path exportTarget(const std::string &out)
{
    if (out.empty())
        throw Error("export: no output folder given");
    fs::path target(out);
    if (target.filename().empty())
        target = target.parent_path();
    std::error_code ec;
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    if (!fs::is_directory(parent, ec))
        fail(out, "the folder " + parent.string() + " does not exist");
    if (fs::exists(target, ec)) {
        if (!fs::is_directory(target, ec))
            fail(out, "exists and is not a folder");
        if (!fs::is_empty(target, ec) && !isGptqFolder(target))
            fail(out, "exists and is not a GPTQ checkpoint folder (refusing to replace it)");
    }
    return target;
}

// The source model's folder when it is a Hugging Face folder (config.json beside the weights), else empty.
fs::path hfSourceFolder(const ExportSource &source)
{
    std::string path = source.model->runInfo ? source.model->runInfo->originalPath : source.model->path;
    std::error_code ec;
    fs::path p(path);
    if (!fs::is_directory(p, ec))
        p = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (fs::is_regular_file(p / "config.json", ec))
        return p;
    return {};
}

// config.json of a llama-family model from hyper-parameters (GGUF and llama2.c sources).
ojson synthesizedConfig(const HyperParams &h)
{
    ojson c;
    const std::string arch = h.architecture.empty() ? std::string("llama") : h.architecture;
    c["architectures"] = { arch == "qwen2" ? "Qwen2ForCausalLM" : arch == "mistral" ? "MistralForCausalLM"
                                                                                     : "LlamaForCausalLM" };
    c["model_type"] = arch;
    c["vocab_size"] = h.vocabSize;
    c["hidden_size"] = h.hiddenSize;
    c["intermediate_size"] = h.intermediateSize;
    c["num_hidden_layers"] = h.numLayers;
    c["num_attention_heads"] = h.numHeads;
    c["num_key_value_heads"] = h.numKvHeads;
    c["head_dim"] = h.headDim > 0 ? h.headDim : h.hiddenSize / std::max(1, h.numHeads);
    c["hidden_act"] = "silu";
    c["max_position_embeddings"] = h.maxPositions;
    c["rms_norm_eps"] = h.rmsEps;
    c["rope_theta"] = h.ropeTheta;
    if (h.ropeScaling.type != "none") {
        ojson r;
        r["rope_type"] = h.ropeScaling.type;
        r["factor"] = h.ropeScaling.factor;
        if (h.ropeScaling.type == "llama3") {
            r["low_freq_factor"] = h.ropeScaling.lowFreqFactor;
            r["high_freq_factor"] = h.ropeScaling.highFreqFactor;
        }
        if (h.ropeScaling.originalMaxPositions > 0)
            r["original_max_position_embeddings"] = h.ropeScaling.originalMaxPositions;
        c["rope_scaling"] = r;
    } else {
        c["rope_scaling"] = nullptr;
    }
    c["tie_word_embeddings"] = h.tiedEmbeddings;
    if (arch == "llama") {
        c["attention_bias"] = h.attentionBias;
        c["mlp_bias"] = false;
    }
    c["bos_token_id"] = h.bosTokenId;
    c["eos_token_id"] = h.eosTokenId;
    return c;
}

// One GPTQ linear, checked: its run tensor and the model tensor it replaces.
struct Linear
{
    const Tensor *tensor = nullptr;
    const QuantizedTensor *q = nullptr;
};

struct Producer
{
    std::function<std::vector<uint8_t>()> bytes;
};

template <class T>
std::vector<uint8_t> asBytes(const std::vector<T> &v)
{
    std::vector<uint8_t> b(v.size() * sizeof(T));
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

} // namespace

ExportSummary exportGptq(const ExportSource &source, const GptqExportOptions &options, const std::string &out,
    Progress &progress)
{
    const auto t0 = std::chrono::steady_clock::now();
    if (options.checkpointFormat != "gptq" && options.checkpointFormat != "gptq_v2")
        fail(out, "checkpoint format '" + options.checkpointFormat + "' is not one of gptq, gptq_v2");
    const bool v2 = options.checkpointFormat == "gptq_v2";
    if (!source.run)
        fail(source.path,
            "is not a quantization run directory; a GPTQ checkpoint is written from a run's codes "
            "(quantscope-cli quantize MODEL --plan PLAN --out RUN_DIR, then export RUN_DIR)");
    const Model &model = *source.model;
    const RunDirContents &run = *source.run;
    const fs::path target = exportTarget(out);

    // What GPTQ checkpoints cannot hold: refuse, naming every layer at fault.
    if (!run.activationQuant.empty()) {
        std::vector<std::string> consumers;
        for (const InputQuantSpec &s : run.activationQuant.inputs())
            for (const std::string &c : s.consumers)
                consumers.push_back(c);
        fail(source.path,
            "the run quantizes activations (" + std::to_string(run.activationQuant.inputs().size())
                + " linear inputs, e.g. for " + listed(consumers, 3)
                + "); GPTQ checkpoints are weight-only, so the exported model would not be the one this run evaluated");
    }
    std::vector<std::string> problems;
    std::map<std::pair<int, int>, std::vector<std::string>> configs; // (bits, group) -> layers
    std::map<std::string, Linear> linears;
    for (const QuantizedTensor &q : run.tensors) {
        const Tensor *t = model.find(q.name);
        if (!t) {
            problems.push_back(q.name + ": not a tensor of the model");
            continue;
        }
        if (!isBlockLinear(t->role)) {
            problems.push_back(q.name
                + ": GPTQ checkpoints quantize only the linear layers of the blocks (leave embeddings and lm_head "
                  "in float with the plan's \"skip\")");
            continue;
        }
        if (q.zeroKind == ZeroPointKind::Float)
            problems.push_back(q.name + ": fractional zero points; GPTQ stores integer zeros");
        if (!gptqBitsSupported(q.bits))
            problems.push_back(q.name + ": " + std::to_string(q.bits) + "-bit codes; GPTQ holds 2, 3, 4 or 8 bits");
        else {
            const int unit = gptqPackUnit(q.bits);
            if (q.cols % unit != 0)
                problems.push_back(q.name + ": " + std::to_string(q.cols) + " input channels are not a multiple of "
                    + std::to_string(unit) + " (" + std::to_string(q.bits) + "-bit qweight packs whole int32 words)");
            if (q.rows % unit != 0)
                problems.push_back(q.name + ": " + std::to_string(q.rows) + " output channels are not a multiple of "
                    + std::to_string(unit) + " (" + std::to_string(q.bits) + "-bit qzeros packs whole int32 words)");
        }
        configs[{ q.bits, q.groupSize }].push_back(q.name);
        linears[q.name] = { t, &q };
    }
    if (configs.size() > 1) {
        std::vector<std::string> parts;
        for (const auto &[cfg, names] : configs)
            parts.push_back(std::to_string(cfg.first) + "-bit group " + std::to_string(cfg.second) + ": " + listed(names, 2));
        problems.insert(problems.begin(), "one bits/group_size for the whole checkpoint is required (transformers, AutoGPTQ and vLLM "
                           "read one quantization_config), the run mixes " + joined(parts, "; "));
    }
    if (linears.empty() && problems.empty())
        problems.push_back("the run quantized no linear layer");

    // Float linears inside the blocks: expressible only as one modules_in_block_to_quantize list for all blocks.
    std::vector<std::string> floatLinears;
    std::map<int, std::set<std::string>> quantizedPerBlock;
    std::set<std::string> allInBlock;
    for (const Tensor &t : model.tensors) {
        if (!isBlockLinear(t.role))
            continue;
        allInBlock.insert(moduleInBlock(t.name));
        quantizedPerBlock[t.block]; // every block appears
        if (linears.count(t.name))
            quantizedPerBlock[t.block].insert(moduleInBlock(t.name));
        else
            floatLinears.push_back(t.name);
    }
    std::set<std::string> pattern;
    if (!quantizedPerBlock.empty()) {
        pattern = quantizedPerBlock.begin()->second;
        for (const auto &[block, set] : quantizedPerBlock)
            if (set != pattern) {
                problems.push_back("block " + std::to_string(block) + " quantizes other linears than block "
                    + std::to_string(quantizedPerBlock.begin()->first)
                    + "; a GPTQ checkpoint keeps the same linears in float in every block "
                      "(modules_in_block_to_quantize)");
                break;
            }
    }
    if (!problems.empty()) {
        // Per-layer problems repeat across blocks: the first few say it, the count says how far it goes.
        constexpr size_t kShown = 6;
        if (problems.size() > kShown) {
            const size_t more = problems.size() - kShown;
            problems.resize(kShown);
            problems.push_back("and " + std::to_string(more) + " more");
        }
        fail(source.path, "cannot be written as a GPTQ checkpoint: " + joined(problems, "; "));
    }

    const int bits = configs.begin()->first.first;
    const int groupSize = configs.begin()->first.second;
    const uint32_t mask = (uint32_t(1) << bits) - 1u;
    const uint32_t symZero = uint32_t(1) << (bits - 1);
    bool sym = true;
    bool descAct = false;
    bool rowGroups = false;
    int64_t zeroZeros = 0;
    for (const auto &[name, l] : linears) {
        descAct = descAct || l.q->actOrderGroups();
        rowGroups = rowGroups || l.q->rowGroupSize > 1;
        for (float z : l.q->zeros) {
            sym = sym && uint32_t(z) == symZero;
            zeroZeros += z == 0.0f ? 1 : 0;
        }
    }

    ExportSummary summary;
    summary.format = "gptq";
    summary.path = target.string();

    // Declare every tensor (model order), with a producer that makes its bytes when the writer wants them.
    std::vector<SafetensorsTensorInfo> infos;
    std::map<std::string, Producer> producers;
    double maxScaleDelta = 0.0; // max |f16(s)·(q − z) − s·(q − z)| over all quantized weights
    std::string maxScaleDeltaLayer;
    double maxFloatDelta = 0.0;
    std::string maxFloatDeltaTensor;
    const auto u = [](int64_t v) { return uint64_t(v); };
    for (const Tensor &t : model.tensors) {
        if (t.tied)
            continue; // tie_word_embeddings: stored once, as the embedding
        if (const auto it = linears.find(t.name); it != linears.end()) {
            const QuantizedTensor &q = *it->second.q;
            const int64_t n = q.rows, k = q.cols, g = q.numGroups();
            const std::string &name = q.name;
            infos.push_back({ name + ".qweight", SafetensorsDType::I32, { u(gptqPackedWords(k, bits)), u(n) } });
            infos.push_back({ name + ".qzeros", SafetensorsDType::I32, { u(g), u(gptqPackedWords(n, bits)) } });
            infos.push_back({ name + ".scales", SafetensorsDType::F16, { u(g), u(n) } });
            infos.push_back({ name + ".g_idx", SafetensorsDType::I32, { u(k) } });
            producers[name + ".qweight"] = { [&q, bits, n, k] {
                std::vector<int32_t> words(size_t(gptqPackedWords(k, bits) * n));
                gptqPackQweight(q.codes.data(), n, k, bits, words.data());
                return asBytes(words);
            } };
            producers[name + ".qzeros"] = { [&q, bits, n, g, v2, mask] {
                std::vector<uint32_t> stored(size_t(g * n));
                for (int64_t gi = 0; gi < g; ++gi)
                    for (int64_t o = 0; o < n; ++o) {
                        const uint32_t z = uint32_t(q.zero(o, int(gi)));
                        stored[size_t(gi * n + o)] = v2 ? z : (z - 1u) & mask;
                    }
                std::vector<int32_t> words(size_t(g * gptqPackedWords(n, bits)));
                gptqPackQzeros(stored.data(), g, n, bits, words.data());
                return asBytes(words);
            } };
            producers[name + ".scales"] = { [&q, n, g, &maxScaleDelta, &maxScaleDeltaLayer, name] {
                std::vector<uint16_t> half(size_t(g * n));
                for (int64_t gi = 0; gi < g; ++gi)
                    for (int64_t o = 0; o < n; ++o) {
                        const float s = q.scale(o, int(gi));
                        const uint16_t h = floatToHalf(s);
                        if (!std::isfinite(halfToFloat(h)))
                            fail(name, "scale " + sci(s) + " (row " + std::to_string(o) + ", group "
                                    + std::to_string(gi) + ") does not fit F16");
                        half[size_t(gi * n + o)] = h;
                    }
                // What the F16 rounding does to the weights: exact over every element.
                for (int64_t o = 0; o < n; ++o)
                    for (int64_t c = 0; c < q.cols; ++c) {
                        const int gi = q.gIdx[size_t(c)];
                        const float s16 = halfToFloat(half[size_t(gi * n + o)]);
                        const uint8_t code = q.codes[size_t(o * q.cols + c)];
                        const float z = q.zero(o, gi);
                        const double d = std::fabs(double(dequantizeCode(code, s16, z))
                            - double(dequantizeCode(code, q.scale(o, gi), z)));
                        if (d > maxScaleDelta) {
                            maxScaleDelta = d;
                            maxScaleDeltaLayer = name;
                        }
                    }
                return asBytes(half);
            } };
            producers[name + ".g_idx"] = { [&q] { return asBytes(q.gIdx); } };
            ExportedTensor e;
            e.name = name;
            e.type = "int" + std::to_string(bits) + (groupSize > 0 ? " g" + std::to_string(groupSize) : " per-channel")
                + (q.actOrderGroups() ? " act-order" : "") + " (GPTQ)";
            e.source = "codes";
            e.note = q.method + (q.inputScales.empty() ? "" : ", codes in the " + q.inputScalesSource + "-smoothed basis");
            summary.tensors.push_back(std::move(e));
            continue;
        }
        // Float tensors: F16, 1-D for norms and biases as Hugging Face stores them.
        const std::string fileName = fileTensorName(t);
        const bool oneD = t.rows == 1 && (t.role == TensorRole::Norm || t.role == TensorRole::Bias);
        infos.push_back({ fileName, SafetensorsDType::F16,
            oneD ? std::vector<uint64_t> { u(t.cols) } : std::vector<uint64_t> { u(t.rows), u(t.cols) } });
        producers[fileName] = { [&model, &t, fileName, &maxFloatDelta, &maxFloatDeltaTensor] {
            const std::vector<float> w = model.readMatrix(t);
            std::vector<uint16_t> half(w.size());
            for (size_t i = 0; i < w.size(); ++i) {
                if (!(std::fabs(w[i]) <= kHalfMax))
                    fail(fileName, "value " + sci(w[i]) + " at element " + std::to_string(i)
                            + " does not fit F16 (GPTQ checkpoints keep float tensors in F16)");
                half[i] = floatToHalf(w[i]);
                const double d = std::fabs(double(halfToFloat(half[i])) - double(w[i]));
                if (d > maxFloatDelta) {
                    maxFloatDelta = d;
                    maxFloatDeltaTensor = fileName;
                }
            }
            return asBytes(half);
        } };
        ExportedTensor e;
        e.name = fileName;
        e.type = "F16";
        const bool modified = run.modifiedTensors.count(t.name) > 0;
        e.source = modified ? "modified" : "float";
        if (modified)
            e.note = "changed by the run (folded input scales)";
        else if (isBlockLinear(t.role))
            e.note = "not quantized by the run";
        summary.tensors.push_back(std::move(e));
    }

    // config.json and quantize_config.json
    ojson qc;
    qc["quant_method"] = "gptq";
    qc["bits"] = bits;
    qc["group_size"] = groupSize;
    qc["desc_act"] = descAct;
    qc["sym"] = sym;
    {
        // Quantization-time settings, when the plan gave every GPTQ layer the same value.
        std::optional<double> damp;
        std::optional<bool> trueSequential, staticGroups;
        bool dampMixed = false, seqMixed = false, staticMixed = false, allGptq = true;
        try {
            for (const PlannedLayer &p : run.plan.resolve(model)) {
                if (!p.quantize)
                    continue;
                if (p.config.method() != "gptq") {
                    allGptq = false;
                    continue;
                }
                const double d = p.config.getDouble("damp");
                const bool ts = p.config.getBool("true_sequential");
                const bool sg = p.config.getBool("static_groups");
                dampMixed = dampMixed || (damp && *damp != d);
                seqMixed = seqMixed || (trueSequential && *trueSequential != ts);
                staticMixed = staticMixed || (staticGroups && *staticGroups != sg);
                damp = d;
                trueSequential = ts;
                staticGroups = sg;
            }
        } catch (const Error &) {
            damp.reset(); // a plan that no longer resolves on the opened model: leave the extras out
            trueSequential.reset();
            staticGroups.reset();
        }
        if (allGptq && damp && !dampMixed)
            qc["damp_percent"] = *damp;
        if (allGptq && trueSequential && !seqMixed)
            qc["true_sequential"] = *trueSequential;
        qc["static_groups"] = allGptq && staticGroups && !staticMixed ? *staticGroups : false;
    }
    qc["lm_head"] = false;
    qc["checkpoint_format"] = options.checkpointFormat;
    qc["format"] = options.checkpointFormat;
    qc["model_file_base_name"] = "model";
    if (!floatLinears.empty()) {
        // One list per sub-step, as optimum writes it; unlisted linears stay nn.Linear.
        ojson groups = ojson::array();
        const std::vector<std::vector<std::string>> order = { { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" },
            { "self_attn.o_proj" }, { "mlp.gate_proj", "mlp.up_proj" }, { "mlp.down_proj" } };
        for (const auto &step : order) {
            ojson list = ojson::array();
            for (const std::string &m : step)
                if (pattern.count(m))
                    list.push_back(m);
            if (!list.empty())
                groups.push_back(list);
        }
        qc["modules_in_block_to_quantize"] = groups;
    }
    std::set<std::string> methods;
    for (const auto &[name, l] : linears)
        methods.insert(l.q->method);
    ojson meta;
    meta["quantizer"] = { "quantscope:" + quantscopeVersion() };
    meta["methods"] = std::vector<std::string>(methods.begin(), methods.end());
    meta["run"] = run.path;
    meta["model_sha256"] = run.provenance.modelSha256;
    qc["meta"] = meta;

    const fs::path hfFolder = hfSourceFolder(source);
    ojson config;
    if (!hfFolder.empty()) {
        try {
            config = ojson::parse(readSmallFile(hfFolder / "config.json"));
        } catch (const std::exception &e) {
            fail((hfFolder / "config.json").string(), std::string("cannot be copied: not valid JSON (") + e.what() + ")");
        }
        if (!config.is_object())
            fail((hfFolder / "config.json").string(), "cannot be copied: not a JSON object");
        config.erase("quantization_config");
        if (config.contains("dtype"))
            config["dtype"] = "float16";
    } else {
        config = synthesizedConfig(model.hparams);
    }
    config["torch_dtype"] = "float16";
    config["quantization_config"] = qc;

    // Notes the user should read.
    summary.notes.push_back(std::string("checkpoint_format \"") + options.checkpointFormat + "\": qzeros hold "
        + (v2 ? "the true zero (GPTQModel loads gptq_v2)" : "zero − 1 (v1, what transformers, AutoGPTQ, GPTQModel and vLLM load)"));
    if (!floatLinears.empty())
        summary.notes.push_back(std::to_string(floatLinears.size()) + " block linears stay F16 (" + listed(floatLinears, 3)
            + "): quantization_config.modules_in_block_to_quantize lists the quantized ones (transformers/optimum "
              "honour it; other loaders may expect every linear quantized)");
    if (!v2 && !sym && zeroZeros > 0)
        summary.notes.push_back(std::to_string(zeroZeros) + " zero points are 0 and stored as " + std::to_string(mask)
            + " (v1 zero − 1, masked): transformers/AutoGPTQ read them back as 0, vLLM's gptq kernels as "
            + std::to_string(mask + 1) + "; export with checkpoint format gptq_v2 for GPTQModel if that matters");
    if (rowGroups)
        summary.notes.push_back("row-group / per-tensor scales are written per output column (GPTQ has no row groups)");
    if (descAct)
        summary.notes.push_back("act-order: g_idx is non-monotonic and scales/qzeros rows follow the processing order");
    bool anySmoothed = false;
    for (const auto &[name, l] : linears)
        anySmoothed = anySmoothed || !l.q->inputScales.empty();
    if (anySmoothed)
        summary.notes.push_back("input-scaled (AWQ/SmoothQuant) layers are stored in their smoothed basis together "
                                "with the run's modified norms, so the checkpoint computes the model the run evaluated");
    if (hfFolder.empty())
        summary.notes.push_back("config.json synthesised from the hyper-parameters (the source is not a Hugging Face "
                                "folder); no tokenizer files were copied");

    // Write everything into the temporary folder, then rename it into place.
    AtomicFolder folder(target.string(), out, "checkpoint", "folder");
    const fs::path tmp(folder.tempPath());
    uint64_t total = 0;
    for (const SafetensorsTensorInfo &i : infos)
        total += i.byteSize();
    progress.setTotal(double(total));
    progress.message("writing " + target.string());
    {
        SafetensorsMetadata meta2;
        meta2["quantscope_gptq"] = "1";
        SafetensorsStreamWriter writer((tmp / kWeightsFile).string(), infos, meta2);
        for (const SafetensorsTensorInfo &i : writer.writeOrder()) {
            progress.throwIfCancelled();
            const std::vector<uint8_t> bytes = producers.at(i.name).bytes();
            writer.append(i.name, bytes.data(), bytes.size());
            progress.advance(double(bytes.size()));
        }
        progress.throwIfCancelled();
        writer.finish();
    }
    // The producers measured what F16 does while writing.
    summary.notes.push_back("scales rounded to F16: max |Δw| " + sci(maxScaleDelta)
        + (maxScaleDeltaLayer.empty() ? std::string() : " (" + maxScaleDeltaLayer + ")")
        + " against the run's float32 scales");
    summary.notes.push_back("float tensors (embeddings, norms, lm_head, biases) written as F16, norms too as "
                            "Hugging Face does: max |Δ| " + sci(maxFloatDelta)
        + (maxFloatDeltaTensor.empty() ? std::string() : " (" + maxFloatDeltaTensor + ")"));

    writeFileAtomically((tmp / "config.json").string(), config.dump(2) + "\n");
    writeFileAtomically((tmp / "quantize_config.json").string(), qc.dump(2) + "\n");
    if (!hfFolder.empty()) {
        for (const char *name : kCopiedFiles) {
            progress.throwIfCancelled();
            const fs::path from = hfFolder / name;
            std::error_code ec;
            if (!fs::is_regular_file(from, ec))
                continue;
            fs::copy_file(from, tmp / name, ec);
            if (ec)
                fail(out, std::string("cannot copy ") + from.string() + ": " + ec.message());
        }
    }
    progress.throwIfCancelled();

    folder.commit();

    summary.bytes = pathBytes(target.string());
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return summary;
}

} // namespace qs::core
