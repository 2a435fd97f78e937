#include "export/GgufExport.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "common/Version.h"
#include "export/GgufQuantize.h"
#include "export/GgufWriter.h"
#include "io/GgufFile.h"
#include "tokenizer/Tokenizer.h"

namespace qs::core {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

enum class Permute { None, Rows, Columns };

// Canonical block tensor suffix → GGUF name suffix (formats.md §2.8), and the q/k permutation.
struct NameMapping
{
    const char *canonical;
    const char *gguf;
    Permute permute;
};

const std::vector<NameMapping> &blockNames()
{
    static const std::vector<NameMapping> names = {
        { "input_layernorm", "attn_norm.weight", Permute::None },
        { "self_attn.q_proj", "attn_q.weight", Permute::Rows },
        { "self_attn.q_proj.bias", "attn_q.bias", Permute::Columns },
        { "self_attn.k_proj", "attn_k.weight", Permute::Rows },
        { "self_attn.k_proj.bias", "attn_k.bias", Permute::Columns },
        { "self_attn.v_proj", "attn_v.weight", Permute::None },
        { "self_attn.v_proj.bias", "attn_v.bias", Permute::None },
        { "self_attn.o_proj", "attn_output.weight", Permute::None },
        { "self_attn.o_proj.bias", "attn_output.bias", Permute::None },
        { "post_attention_layernorm", "ffn_norm.weight", Permute::None },
        { "mlp.gate_proj", "ffn_gate.weight", Permute::None },
        { "mlp.gate_proj.bias", "ffn_gate.bias", Permute::None },
        { "mlp.up_proj", "ffn_up.weight", Permute::None },
        { "mlp.up_proj.bias", "ffn_up.bias", Permute::None },
        { "mlp.down_proj", "ffn_down.weight", Permute::None },
        { "mlp.down_proj.bias", "ffn_down.bias", Permute::None },
    };
    return names;
}

// The GGUF name of a canonical tensor and its permutation; nullopt for names llama GGUF has no place for.
std::optional<std::pair<std::string, Permute>> ggufNameOf(const Tensor &t)
{
    if (t.name == "model.embed_tokens")
        return std::make_pair(std::string("token_embd.weight"), Permute::None);
    if (t.name == "model.norm")
        return std::make_pair(std::string("output_norm.weight"), Permute::None);
    if (t.name == "lm_head")
        return std::make_pair(std::string("output.weight"), Permute::None);
    const std::string prefix = "model.layers." + std::to_string(t.block) + ".";
    if (t.block >= 0 && t.name.rfind(prefix, 0) == 0) {
        const std::string rest = t.name.substr(prefix.size());
        for (const NameMapping &m : blockNames())
            if (rest == m.canonical)
                return std::make_pair("blk." + std::to_string(t.block) + "." + m.gguf, m.permute);
    }
    return std::nullopt;
}

// LlamaFileType of the "mostly" type (formats.md §2.7; not the ggml type id).
uint32_t fileTypeOf(const std::string &type)
{
    static const std::map<std::string, uint32_t> ids = { { "F32", 0 }, { "F16", 1 }, { "Q4_0", 2 }, { "Q4_1", 3 },
        { "Q8_0", 7 }, { "Q5_0", 8 }, { "Q5_1", 9 }, { "Q4_K", 14 }, { "Q6_K", 18 }, { "BF16", 32 } };
    const auto it = ids.find(type);
    return it == ids.end() ? 1 : it->second;
}

bool isQuantizedType(const GgmlTypeInfo &t)
{
    return t.blockSize > 1;
}

// llama.cpp's fallback when a row does not fill whole blocks (llama-quant.cpp): Q4_K → Q5_0, Q6_K → Q8_0,
// then F16 for anything whose blocks still do not fit.
const GgmlTypeInfo &fitType(const GgmlTypeInfo &want, uint64_t rowLength, std::string &note)
{
    const GgmlTypeInfo *t = &want;
    if (rowLength % t->blockSize != 0 && t->blockSize == 256) {
        const char *next = std::string_view(t->name) == "Q4_K" ? "Q5_0" : "Q8_0";
        note = "row length " + std::to_string(rowLength) + " is not a multiple of 256: " + t->name + " -> " + next;
        t = findGgmlType(std::string_view(next));
    }
    if (rowLength % t->blockSize != 0) {
        note += std::string(note.empty() ? "" : "; ") + "row length " + std::to_string(rowLength)
            + " is not a multiple of " + std::to_string(t->blockSize) + ": " + t->name + " -> F16";
        t = findGgmlType(std::string_view("F16"));
    }
    return *t;
}

// The block type nearest to a run layer's bit width (it is re-encoded from the run's weights).
const GgmlTypeInfo &nearestBlockType(const QuantizedTensor &q, std::string &note)
{
    const char *name = "Q8_0";
    if (q.bits >= 8)
        name = "Q8_0";
    else if (q.bits >= 6)
        name = "Q6_K";
    else if (q.bits == 5)
        name = q.symmetric ? "Q5_0" : "Q5_1";
    else if (q.bits == 4)
        name = q.symmetric ? "Q4_0" : "Q4_1";
    else {
        name = "Q4_K";
        note = std::to_string(q.bits) + "-bit layer: QuantScope writes no 2/3-bit GGUF type, stored as Q4_K";
    }
    return *findGgmlType(std::string_view(name));
}

struct PlannedTensor
{
    const Tensor *tensor = nullptr;
    std::string name;
    std::vector<uint64_t> ne;
    const GgmlTypeInfo *type = nullptr;
    Permute permute = Permute::None;
    const QuantizedTensor *codes = nullptr; // set: pack the run's codes unchanged
    std::string source;
    std::string note;
};

// True when the packed blocks of every row decode to the tensor's dequantized weights bit for bit.
bool packedDecodesExactly(const QuantizedTensor &q)
{
    const GgmlTypeInfo &type = *ggmlTypeOfGrid(q);
    std::vector<uint8_t> blocks(size_t(ggmlBytesFor(type, uint64_t(q.cols))));
    std::vector<float> row(size_t(q.cols));
    for (int64_t r = 0; r < q.rows; ++r) {
        packQuantizedRow(q, r, blocks.data());
        type.dequantize(blocks.data(), row.data(), q.cols);
        if (std::memcmp(row.data(), q.dequantized.data() + r * q.cols, size_t(q.cols) * 4) != 0)
            return false;
    }
    return true;
}

std::string upper(std::string s)
{
    for (char &c : s)
        c = char(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// ---------------------------------------------------------------------------------------------------
// Tokenizer metadata (formats.md §2.7).

struct VocabOut
{
    std::string model; // "llama" | "gpt2"
    std::string pre;
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    std::vector<std::string> merges;
    std::optional<bool> addSpacePrefix;
    int32_t unkId = -1;
    std::string chatTemplate;
    std::optional<bool> addEos;
};

enum TokType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

bool isByteToken(const std::string &p)
{
    return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::isxdigit(static_cast<unsigned char>(p[3]))
        && std::isxdigit(static_cast<unsigned char>(p[4]));
}

std::string replaceAll(std::string s, std::string_view from, std::string_view to)
{
    size_t pos = 0;
    while ((pos = s.find(from, pos)) != std::string::npos) {
        s.replace(pos, from.size(), to);
        pos += to.size();
    }
    return s;
}

// Does any object in a tokenizer.json subtree have "type": name?
bool hasStepType(const json &j, const std::string &name)
{
    if (j.is_object()) {
        const auto it = j.find("type");
        if (it != j.end() && it->is_string() && it->get<std::string>() == name)
            return true;
        for (const auto &[k, v] : j.items())
            if (hasStepType(v, name))
                return true;
    } else if (j.is_array()) {
        for (const json &v : j)
            if (hasStepType(v, name))
                return true;
    }
    return false;
}

VocabOut vocabFromTokenizerJson(const std::string &path, const Model &model, std::vector<std::string> &notes)
{
    const std::string name = fs::path(path).filename().string();
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(path, "cannot read the tokenizer");
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception &e) {
        fail(path, std::string("not valid JSON: ") + e.what());
    }
    const json &m = j.value("model", json::object());
    if (m.value("type", std::string()) != "BPE")
        fail(path, "only BPE tokenizer.json models can be converted to GGUF tokenizer metadata");
    const json &vocab = m.value("vocab", json::object());
    if (!vocab.is_object())
        fail(path, "model.vocab is not an object");

    VocabOut v;
    size_t size = size_t(std::max(0, model.hparams.vocabSize));
    std::map<int32_t, std::string> byId;
    for (const auto &[piece, id] : vocab.items())
        if (id.is_number_integer())
            byId[id.get<int32_t>()] = piece;
    std::map<int32_t, bool> added; // id → special
    if (const auto it = j.find("added_tokens"); it != j.end() && it->is_array())
        for (const json &a : *it)
            if (a.is_object() && a.contains("id") && a["id"].is_number_integer()) {
                const int32_t id = a["id"].get<int32_t>();
                byId[id] = a.value("content", std::string());
                added[id] = a.value("special", false);
            }
    if (!byId.empty())
        size = std::max(size, size_t(byId.rbegin()->first) + 1);
    if (model.hparams.vocabSize > 0 && size > size_t(model.hparams.vocabSize))
        fail(path, "the tokenizer has " + std::to_string(size) + " tokens but the model's embedding has "
            + std::to_string(model.hparams.vocabSize) + " rows");
    v.tokens.resize(size);
    v.types.assign(size, Normal);
    size_t padded = 0;
    for (size_t i = 0; i < size; ++i) {
        const auto it = byId.find(int32_t(i));
        if (it == byId.end()) {
            v.tokens[i] = "[PAD" + std::to_string(i) + "]"; // as convert_hf_to_gguf.py fills holes
            v.types[i] = Unused;
            ++padded;
        } else {
            v.tokens[i] = it->second;
        }
    }
    if (padded > 0)
        notes.push_back("tokenizer: " + std::to_string(padded) + " ids without a token were filled with [PADn] (unused)");

    const std::string unk = m.value("unk_token", json()).is_string() ? m["unk_token"].get<std::string>() : "";
    const bool byteLevel = hasStepType(j.value("pre_tokenizer", json()), "ByteLevel")
        || hasStepType(j.value("decoder", json()), "ByteLevel");
    for (size_t i = 0; i < size; ++i) {
        if (v.types[i] == Unused)
            continue;
        if (const auto a = added.find(int32_t(i)); a != added.end())
            v.types[i] = a->second ? Control : UserDefined;
        else if (!unk.empty() && v.tokens[i] == unk)
            v.types[i] = Unknown;
        else if (!byteLevel && isByteToken(v.tokens[i]))
            v.types[i] = Byte;
    }
    for (size_t i = 0; i < size; ++i)
        if (v.types[i] == Unknown)
            v.unkId = int32_t(i);

    std::vector<std::pair<std::string, std::string>> merges;
    if (const auto it = m.find("merges"); it != m.end() && it->is_array())
        for (const json &x : *it) {
            if (x.is_string()) {
                const std::string s = x.get<std::string>();
                const size_t sp = s.find(' ', 1);
                if (sp == std::string::npos)
                    fail(path, "merge '" + s + "' is not \"left right\"");
                merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
            } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
                merges.emplace_back(x[0].get<std::string>(), x[1].get<std::string>());
            } else {
                fail(path, "a merge is neither \"left right\" nor [left, right]");
            }
        }

    if (byteLevel) {
        v.model = "gpt2";
        const std::unique_ptr<Tokenizer> tok = loadTokenizerFromFile(path);
        const std::string kind = tok->name();
        v.pre = kind.rfind("llama3", 0) == 0 ? "llama-bpe" : kind.rfind("qwen2", 0) == 0 ? "qwen2" : "gpt-2";
        for (const auto &[l, r] : merges)
            v.merges.push_back(l + " " + r);
        notes.push_back("tokenizer: byte-level BPE 'gpt2' vocabulary (pre-tokenizer '" + v.pre + "') with "
            + std::to_string(v.merges.size()) + " merges, derived from " + name);
    } else {
        // SentencePiece-style BPE: llama.cpp merges the adjacent pair whose merged piece has the highest score.
        // Score each piece by the rank of the merge that makes it (first merge highest); pieces no merge makes
        // rank below all of them, so the "llama" tokenizer picks merges in the order the BPE model does.
        v.model = "llama";
        std::map<std::string, int32_t> idOf;
        for (size_t i = 0; i < size; ++i)
            idOf.emplace(v.tokens[i], int32_t(i));
        v.scores.assign(size, 0.0f);
        std::vector<bool> scored(size, false);
        for (size_t r = 0; r < merges.size(); ++r) {
            const auto it = idOf.find(merges[r].first + merges[r].second);
            if (it != idOf.end() && !scored[size_t(it->second)]) {
                v.scores[size_t(it->second)] = -float(r);
                scored[size_t(it->second)] = true;
            }
        }
        for (size_t i = 0; i < size; ++i)
            if (!scored[i] && v.types[i] == Normal && v.tokens[i].size() > 1)
                v.scores[i] = -float(merges.size() + i);
        const json &norm = j.value("normalizer", json());
        const json &pre = j.value("pre_tokenizer", json());
        v.addSpacePrefix = hasStepType(norm, "Prepend") || hasStepType(pre, "Metaspace");
        notes.push_back("tokenizer: SentencePiece-style 'llama' vocabulary derived from " + name
            + " (scores from the " + std::to_string(merges.size()) + " merge ranks, byte tokens <0xXX> typed as bytes)");
    }

    // tokenizer_config.json beside it: chat template and add_eos_token.
    const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
    std::ifstream cin(config, std::ios::binary);
    if (cin) {
        try {
            const json c = json::parse(cin);
            if (c.contains("chat_template") && c["chat_template"].is_string())
                v.chatTemplate = c["chat_template"].get<std::string>();
            if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean())
                v.addEos = c["add_eos_token"].get<bool>();
        } catch (const json::exception &) {
            notes.push_back("tokenizer: tokenizer_config.json is not valid JSON and was ignored");
        }
    }
    return v;
}

// llama2.c tokenizer.bin (formats.md §7.3): u32 max_token_length, then per token f32 score, i32 length, bytes.
VocabOut vocabFromLlama2c(const std::string &path, const Model &model, std::vector<std::string> &notes)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(path, "cannot read the tokenizer");
    const int32_t n = model.hparams.vocabSize;
    uint32_t maxLen = 0;
    if (!in.read(reinterpret_cast<char *>(&maxLen), 4))
        fail(path, "truncated header");
    VocabOut v;
    v.model = "llama";
    v.addSpacePrefix = true; // run.c adds a dummy " " prefix
    for (int32_t i = 0; i < n; ++i) {
        float score = 0;
        int32_t len = 0;
        if (!in.read(reinterpret_cast<char *>(&score), 4) || !in.read(reinterpret_cast<char *>(&len), 4) || len < 0
            || uint32_t(len) > std::max<uint32_t>(maxLen, 64) * 4)
            fail(path, "token " + std::to_string(i) + " is truncated or malformed");
        std::string piece(size_t(len), '\0');
        if (len > 0 && !in.read(piece.data(), len))
            fail(path, "token " + std::to_string(i) + " is truncated");
        // llama2.c's export wrote BOS/EOS as "\n<s>\n" / "\n</s>\n" and "▁" as " ".
        if (piece == "\n<s>\n" || piece == "\n</s>\n")
            piece = piece.substr(1, piece.size() - 2);
        if (!isByteToken(piece))
            piece = replaceAll(piece, " ", "\xE2\x96\x81");
        int32_t type = Normal;
        if (i == 0)
            type = Unknown;
        else if (i == 1 || i == 2)
            type = Control;
        else if (isByteToken(piece))
            type = Byte;
        v.tokens.push_back(std::move(piece));
        v.scores.push_back(score);
        v.types.push_back(type);
    }
    v.unkId = 0;
    notes.push_back("tokenizer: SentencePiece-style 'llama' vocabulary derived from llama2.c "
        + fs::path(path).filename().string() + " (scores kept, spaces as U+2581, ids 0/1/2 unknown/BOS/EOS)");
    return v;
}

void addTokenizerMetadata(GgufWriter &w, const Model &model, std::vector<std::string> &notes)
{
    const std::string &path = model.tokenizerPath;
    const HyperParams &h = model.hparams;
    if (path.empty()) {
        w.addMetadata("tokenizer.ggml.model", GgufWriteValue::string("no_vocab"));
        notes.push_back("the model has no tokenizer: written with tokenizer.ggml.model = \"no_vocab\" (llama.cpp "
                        "loads it but cannot tokenize text)");
        return;
    }
    if (GgufFile::hasMagic(path)) {
        const GgufFile src = GgufFile::open(path);
        size_t copied = 0;
        for (const GgufKeyValue &kv : src.metadata())
            if (kv.key.rfind("tokenizer.", 0) == 0) {
                w.addMetadata(kv.key, GgufWriteValue::copyOf(kv.value));
                ++copied;
            }
        notes.push_back("tokenizer: " + std::to_string(copied) + " tokenizer.* keys copied from "
            + fs::path(path).filename().string());
        return;
    }
    const bool isJson = fs::path(path).extension() == ".json";
    const VocabOut v = isJson ? vocabFromTokenizerJson(path, model, notes) : vocabFromLlama2c(path, model, notes);
    w.addMetadata("tokenizer.ggml.model", GgufWriteValue::string(v.model));
    if (!v.pre.empty())
        w.addMetadata("tokenizer.ggml.pre", GgufWriteValue::string(v.pre));
    w.addMetadata("tokenizer.ggml.tokens", GgufWriteValue::stringArray(v.tokens));
    if (!v.scores.empty())
        w.addMetadata("tokenizer.ggml.scores", GgufWriteValue::f32Array(v.scores));
    w.addMetadata("tokenizer.ggml.token_type", GgufWriteValue::i32Array(v.types));
    if (!v.merges.empty())
        w.addMetadata("tokenizer.ggml.merges", GgufWriteValue::stringArray(v.merges));
    if (h.bosTokenId >= 0)
        w.addMetadata("tokenizer.ggml.bos_token_id", GgufWriteValue::u32(uint32_t(h.bosTokenId)));
    if (h.eosTokenId >= 0)
        w.addMetadata("tokenizer.ggml.eos_token_id", GgufWriteValue::u32(uint32_t(h.eosTokenId)));
    if (v.unkId >= 0)
        w.addMetadata("tokenizer.ggml.unknown_token_id", GgufWriteValue::u32(uint32_t(v.unkId)));
    w.addMetadata("tokenizer.ggml.add_bos_token", GgufWriteValue::boolean(h.addBos));
    if (v.addEos)
        w.addMetadata("tokenizer.ggml.add_eos_token", GgufWriteValue::boolean(*v.addEos));
    if (v.addSpacePrefix)
        w.addMetadata("tokenizer.ggml.add_space_prefix", GgufWriteValue::boolean(*v.addSpacePrefix));
    if (!v.chatTemplate.empty())
        w.addMetadata("tokenizer.chat_template", GgufWriteValue::string(v.chatTemplate));
}

void addModelMetadata(GgufWriter &w, const ExportSource &source, const std::string &fileType, bool quantized,
    std::vector<std::string> &notes)
{
    const Model &model = *source.model;
    const HyperParams &h = model.hparams;
    const std::string a = "llama.";
    std::string name = fs::path(source.path).filename().string();
    if (name.empty())
        name = fs::path(source.path).parent_path().filename().string();
    w.addMetadata("general.architecture", GgufWriteValue::string("llama"));
    w.addMetadata("general.type", GgufWriteValue::string("model"));
    w.addMetadata("general.name", GgufWriteValue::string(name));
    w.addMetadata("general.file_type", GgufWriteValue::u32(fileTypeOf(fileType)));
    if (quantized)
        w.addMetadata("general.quantization_version", GgufWriteValue::u32(2));
    w.addMetadata(a + "context_length", GgufWriteValue::u32(uint32_t(h.maxPositions)));
    w.addMetadata(a + "embedding_length", GgufWriteValue::u32(uint32_t(h.hiddenSize)));
    w.addMetadata(a + "block_count", GgufWriteValue::u32(uint32_t(h.numLayers)));
    w.addMetadata(a + "feed_forward_length", GgufWriteValue::u32(uint32_t(h.intermediateSize)));
    w.addMetadata(a + "rope.dimension_count", GgufWriteValue::u32(uint32_t(h.headDim)));
    w.addMetadata(a + "attention.head_count", GgufWriteValue::u32(uint32_t(h.numHeads)));
    w.addMetadata(a + "attention.head_count_kv", GgufWriteValue::u32(uint32_t(h.numKvHeads)));
    if (h.numHeads > 0 && h.headDim * h.numHeads != h.hiddenSize) {
        w.addMetadata(a + "attention.key_length", GgufWriteValue::u32(uint32_t(h.headDim)));
        w.addMetadata(a + "attention.value_length", GgufWriteValue::u32(uint32_t(h.headDim)));
    }
    w.addMetadata(a + "attention.layer_norm_rms_epsilon", GgufWriteValue::f32(float(h.rmsEps)));
    w.addMetadata(a + "rope.freq_base", GgufWriteValue::f32(float(h.ropeTheta)));
    w.addMetadata(a + "vocab_size", GgufWriteValue::u32(uint32_t(h.vocabSize)));
    const RopeScaling &rs = h.ropeScaling;
    if (rs.type == "linear" || rs.type == "yarn" || rs.type == "longrope") {
        w.addMetadata(a + "rope.scaling.type", GgufWriteValue::string(rs.type));
        w.addMetadata(a + "rope.scaling.factor", GgufWriteValue::f32(float(rs.factor)));
        if (rs.originalMaxPositions > 0)
            w.addMetadata(
                a + "rope.scaling.original_context_length", GgufWriteValue::u32(uint32_t(rs.originalMaxPositions)));
    } else if (rs.type != "none") {
        notes.push_back("rope scaling '" + rs.type + "' is not written (llama.cpp would need a rope_freqs tensor or "
            "a scaling type it knows); the GGUF uses plain RoPE");
    }
    // Provenance (extra keys are allowed; llama.cpp ignores them).
    w.addMetadata("quantscope.version", GgufWriteValue::string(quantscopeVersion()));
    w.addMetadata("quantscope.source", GgufWriteValue::string(source.path));
    w.addMetadata("quantscope.source_format", GgufWriteValue::string(model.format));
    if (source.run) {
        w.addMetadata("quantscope.run.model_sha256", GgufWriteValue::string(source.run->provenance.modelSha256));
        w.addMetadata("quantscope.run.model_path", GgufWriteValue::string(source.run->provenance.modelPath));
        w.addMetadata("quantscope.run.bits_per_weight", GgufWriteValue::f32(float(source.run->bitsPerWeight)));
    }
}

// Rows [first, first + count) of the tensor in GGUF order, as float32 (count·cols values into out).
void readFileRows(const Model &model, const PlannedTensor &p, int headDim, int64_t first, int64_t count, float *out,
    std::vector<float> &scratch)
{
    const Tensor &t = *p.tensor;
    const int64_t cols = t.cols;
    if (p.permute == Permute::Rows) {
        // Chunks start at a head boundary and hold whole heads, so the permutation stays inside them.
        scratch.resize(size_t(count * cols));
        model.readRows(t, first, count, scratch.data());
        for (int64_t i = 0; i < count; ++i) {
            const int64_t src = metaRowToHfRow(first + i, headDim) - first;
            std::memcpy(out + i * cols, scratch.data() + src * cols, size_t(cols) * 4);
        }
    } else if (p.permute == Permute::Columns) {
        scratch.resize(size_t(cols));
        model.readRows(t, first, count, scratch.data());
        for (int64_t c = 0; c < cols; ++c)
            out[c] = scratch[size_t(metaRowToHfRow(c, headDim))];
    } else {
        model.readRows(t, first, count, out);
    }
}

} // namespace

ExportSummary exportGguf(const ExportSource &source, const GgufExportOptions &options, const std::string &out,
    Progress &progress)
{
    const auto t0 = std::chrono::steady_clock::now();
    const Model &model = *source.model;
    const HyperParams &h = model.hparams;
    if (h.architecture != "llama" && h.architecture != "mistral")
        fail(out, "GGUF export writes the llama architecture; '" + h.architecture + "' models (" + source.path
            + ") use another RoPE layout and are not supported");
    if (h.headDim <= 0 || h.headDim % 2 != 0)
        fail(out, "head dimension " + std::to_string(h.headDim) + " cannot carry the q/k RoPE permutation");

    const GgmlTypeInfo *forced = nullptr;
    if (!options.type.empty()) {
        forced = findWritableGgmlType(upper(options.type));
        if (!forced)
            fail(out, "type '" + options.type + "' is not a GGUF type QuantScope writes (" + ggufWritableTypeList() + ")");
    }

    const GgmlTypeInfo *floatType = findWritableGgmlType(upper(options.floatType));
    if (!floatType || isQuantizedType(*floatType))
        fail(out, "float type '" + options.floatType + "' is not one of F32, F16, BF16");

    ExportSummary summary;
    summary.format = "gguf";
    summary.path = out;

    // Plan every tensor: name, shape, type, where its bytes come from.
    std::vector<PlannedTensor> plan;
    const GgmlTypeInfo &f32 = *findGgmlType(std::string_view("F32"));
    std::map<std::string, uint64_t> elementsByType;
    bool anyQuantized = false;
    int fallbacks = 0;
    for (const Tensor &t : model.tensors) {
        const Tensor *embed = model.find("model.embed_tokens");
        if (t.tied && embed && embed->data == t.data) {
            summary.notes.push_back("lm_head is tied to the embedding: no output.weight is written (llama.cpp reuses "
                                    "token_embd.weight)");
            continue;
        }
        const auto mapped = ggufNameOf(t);
        if (!mapped)
            fail(out, "tensor '" + t.name + "' of " + source.path + " has no place in a llama GGUF");
        PlannedTensor p;
        p.tensor = &t;
        p.name = mapped->first;
        p.permute = mapped->second;
        const bool vector = t.role == TensorRole::Norm || t.role == TensorRole::Bias || t.rows == 1;
        p.ne = vector ? std::vector<uint64_t> { uint64_t(t.numel()) } : std::vector<uint64_t> { uint64_t(t.cols), uint64_t(t.rows) };
        const QuantizedTensor *q = source.quantized(t.name);
        if (vector) {
            p.type = &f32;
            p.source = "float";
        } else {
            // The run's codes go in unchanged when its grid is this block type and they decode exactly.
            std::string packProblem;
            const GgmlTypeInfo *gridType = q ? ggmlTypeOfGrid(*q) : nullptr;
            if (q && gridType && (!forced || forced == gridType)) {
                packProblem = ggufPackProblem(*q);
                if (packProblem.empty() && !packedDecodesExactly(*q))
                    packProblem = "its blocks would not decode to the run's weights bit for bit";
                if (packProblem.empty()) {
                    p.type = gridType;
                    p.codes = q;
                    p.source = "codes";
                }
            }
            if (!p.codes) {
                std::string note;
                const GgmlTypeInfo *want = forced;
                if (!want)
                    want = q ? &nearestBlockType(*q, note) : floatType;
                std::string fitNote;
                p.type = &fitType(*want, uint64_t(t.cols), fitNote);
                if (!fitNote.empty()) {
                    note += std::string(note.empty() ? "" : "; ") + fitNote;
                    ++fallbacks;
                }
                if (q) {
                    p.source = "requantized";
                    const std::string why = !packProblem.empty() ? packProblem
                        : gridType                               ? std::string("--type asks for another type")
                                                                 : std::string("grid '") + gridInfo(q->grid).name
                                + "' is not a GGUF block grid";
                    note = "re-encoded from the run's " + std::to_string(q->bits) + "-bit weights (" + why + ")"
                        + (note.empty() ? "" : "; " + note);
                } else {
                    p.source = "float";
                }
                p.note = note;
            }
            elementsByType[p.type->name] += uint64_t(t.numel());
            anyQuantized = anyQuantized || isQuantizedType(*p.type);
        }
        plan.push_back(std::move(p));
    }
    if (fallbacks > 0)
        summary.notes.push_back(std::to_string(fallbacks) + " tensor(s) got another type because their rows do not fill "
            "whole blocks (llama.cpp's fallback: Q4_K -> Q5_0, Q6_K -> Q8_0, then F16); see the tensor notes");
    std::string mostly = "F32";
    uint64_t most = 0;
    for (const auto &[type, n] : elementsByType)
        if (n > most) {
            most = n;
            mostly = type;
        }

    if (source.run) {
        if (!source.run->activationQuant.empty())
            summary.notes.push_back("the run's simulated activation quantization (W8A8) cannot be stored in GGUF: "
                                    "llama.cpp runs these layers with its own activation handling");
        if (!source.run->modifiedTensors.empty())
            summary.notes.push_back(std::to_string(source.run->modifiedTensors.size())
                + " tensors modified by the run (folded SmoothQuant/AWQ scales) are written as the run stores them, "
                  "consistent with the quantized codes");
    }

    GgufWriter writer(out);
    addModelMetadata(writer, source, mostly, anyQuantized, summary.notes);
    addTokenizerMetadata(writer, model, summary.notes);
    for (const PlannedTensor &p : plan)
        writer.addTensor(p.name, p.ne, *p.type);

    uint64_t totalElements = 0;
    for (const PlannedTensor &p : plan)
        totalElements += uint64_t(p.tensor->numel());
    progress.message("writing " + out);
    progress.setTotal(double(totalElements));
    progress.throwIfCancelled();
    writer.beginData();

    std::vector<float> rows;
    std::vector<float> scratch;
    std::vector<uint8_t> bytes;
    for (const PlannedTensor &p : plan) {
        const Tensor &t = *p.tensor;
        const bool vector = p.ne.size() == 1;
        const int64_t fileRows = vector ? 1 : t.rows;
        const int64_t cols = vector ? t.numel() : t.cols;
        const uint64_t rowBytes = ggmlBytesFor(*p.type, uint64_t(cols));
        // About 1 MiB of floats per chunk, whole heads for permuted tensors.
        const int64_t unit = p.permute == Permute::Rows ? h.headDim : 1;
        int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(cols, 1));
        chunk = std::max<int64_t>(unit, chunk / unit * unit);
        for (int64_t first = 0; first < fileRows; first += chunk) {
            progress.throwIfCancelled();
            const int64_t count = std::min(chunk, fileRows - first);
            bytes.resize(size_t(rowBytes * uint64_t(count)));
            if (p.codes) {
                for (int64_t i = 0; i < count; ++i) {
                    const int64_t row = p.permute == Permute::Rows ? metaRowToHfRow(first + i, h.headDim) : first + i;
                    packQuantizedRow(*p.codes, row, bytes.data() + uint64_t(i) * rowBytes);
                }
            } else {
                rows.resize(size_t(count * cols));
                if (vector)
                    readFileRows(model, p, h.headDim, 0, 1, rows.data(), scratch);
                else
                    readFileRows(model, p, h.headDim, first, count, rows.data(), scratch);
                const GgmlTypeInfo &type = *p.type;
#pragma omp parallel for schedule(dynamic, 4) if (count * cols >= (int64_t(1) << 16) && isQuantizedType(type))
                for (int64_t i = 0; i < count; ++i)
                    quantizeGgufRow(type, rows.data() + i * cols, bytes.data() + uint64_t(i) * rowBytes, cols);
            }
            writer.writeTensorData(bytes.data(), bytes.size());
            progress.advance(double(count * cols));
        }
        ExportedTensor e;
        e.name = p.name;
        e.type = p.type->name;
        e.source = p.source;
        e.note = p.note;
        summary.tensors.push_back(std::move(e));
    }
    progress.throwIfCancelled();
    writer.finish();
    summary.bytes = writer.bytesWritten();
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return summary;
}

} // namespace qs::core
