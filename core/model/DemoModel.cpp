#include "model/DemoModel.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/AtomicFile.h"
#include "common/Error.h"
#include "common/Half.h"
#include "io/SafetensorsWriter.h"

// The generator's bytes must not depend on the compiler fusing a*b+c into one rounding.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace qs::core {

namespace fs = std::filesystem;

namespace {

// ---- deterministic random numbers ----

uint64_t splitmix64(uint64_t &state)
{
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string &s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (const unsigned char ch : s) {
        h ^= ch;
        h *= 0x100000001B3ull;
    }
    return h;
}

// Natural log from +, -, ×, ÷ and exact exponent extraction only, so every IEEE machine gets the same
// bits (libm's log may differ in the last place between libraries). x must be positive and finite.
double portableLog(double x)
{
    int e = 0;
    double m = std::frexp(x, &e); // exact: x = m·2^e, m in [0.5, 1)
    if (m < 0.70710678118654752) {
        m *= 2.0; // exact
        --e;
    }
    // m in [0.707, 1.414): ln m = 2·atanh(s), s = (m-1)/(m+1), |s| < 0.172; the series to s^23 is
    // accurate to below 1e-19.
    const double s = (m - 1.0) / (m + 1.0);
    const double s2 = s * s;
    double p = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2)
        p = p * s2 + 1.0 / double(k);
    return 2.0 * s * p + double(e) * 0.69314718055994530942;
}

class Rng
{
public:
    explicit Rng(uint64_t seed)
    {
        for (uint64_t &w : m_s)
            w = splitmix64(seed);
    }

    uint64_t next() // xoshiro256**
    {
        const uint64_t result = rotl(m_s[1] * 5, 7) * 9;
        const uint64_t t = m_s[1] << 17;
        m_s[2] ^= m_s[0];
        m_s[3] ^= m_s[1];
        m_s[1] ^= m_s[2];
        m_s[0] ^= m_s[3];
        m_s[2] ^= t;
        m_s[3] = rotl(m_s[3], 45);
        return result;
    }

    double uniform() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; } // in (0, 1), never 0 or 1

    double normal() // Marsaglia polar method; caches the second value of each pair
    {
        if (m_haveSpare) {
            m_haveSpare = false;
            return m_spare;
        }
        for (;;) {
            const double u = 2.0 * uniform() - 1.0;
            const double v = 2.0 * uniform() - 1.0;
            const double s = u * u + v * v;
            if (s >= 1.0 || s == 0.0)
                continue;
            const double f = std::sqrt(-2.0 * portableLog(s) / s); // sqrt is exactly rounded everywhere
            m_spare = v * f;
            m_haveSpare = true;
            return u * f;
        }
    }

    // Student-t with 5 degrees of freedom scaled to unit variance (its variance is 5/3): a normal over
    // sqrt(chi²(5)/5), with chi²(5) = Z² + chi²(4) and chi²(4) = -2·ln(U1·U2).
    double studentT5()
    {
        const double z = normal();
        const double w = normal();
        const double chi2 = w * w - 2.0 * portableLog(uniform() * uniform());
        return z / std::sqrt(chi2 / 5.0) * 0.77459666924148338; // sqrt(3/5)
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t m_s[4];
    double m_spare = 0.0;
    bool m_haveSpare = false;
};

uint64_t rowSeed(uint64_t seed, uint64_t tensorHash, uint64_t row)
{
    uint64_t st = seed ^ (tensorHash * 0xD1B54A32D192ED03ull) ^ (row * 0x9E3779B97F4A7C15ull);
    return splitmix64(st);
}

// ---- the tensors of a preset ----

enum class Init { Weight, Norm };

struct Plan
{
    std::string name; // HF name with ".weight"
    std::vector<uint64_t> shape;
    int64_t rows = 0;
    int64_t cols = 0;
    Init init = Init::Weight;
    double sigma = 0.0;
    const std::vector<float> *columnScale = nullptr; // per column, or null
    const std::vector<float> *rowScale = nullptr; // per row, or null
};

struct DTypeChoice
{
    SafetensorsDType dtype;
    const char *torchName;
};

DTypeChoice parseDType(const std::string &d)
{
    if (d == "f32")
        return { SafetensorsDType::F32, "float32" };
    if (d == "f16")
        return { SafetensorsDType::F16, "float16" };
    if (d == "bf16")
        return { SafetensorsDType::BF16, "bfloat16" };
    fail("demo model", "unknown dtype '" + d + "' (expected f32, f16 or bf16)");
}

const DemoPreset &presetOrFail(const std::string &name)
{
    if (const DemoPreset *p = findDemoPreset(name))
        return *p;
    std::string names;
    for (const DemoPreset &p : demoPresets())
        names += (names.empty() ? "" : ", ") + p.name;
    fail("demo model", "unknown preset '" + name + "' (expected one of: " + names + ")");
}

// In Hugging Face state-dict order (module registration order), which is the order shards are filled.
std::vector<Plan> planTensors(
    const DemoPreset &p, const std::vector<float> &colScale, const std::vector<float> &rowScale)
{
    const int64_t H = p.hiddenSize, I = p.intermediateSize, V = p.vocabSize;
    const int64_t headDim = H / p.numHeads;
    const int64_t qDim = p.numHeads * headDim, kvDim = p.numKvHeads * headDim;
    std::vector<Plan> plans;
    auto weight = [&](std::string name, int64_t rows, int64_t cols, const std::vector<float> *cs,
                      const std::vector<float> *rs) {
        plans.push_back({ std::move(name) + ".weight", { uint64_t(rows), uint64_t(cols) }, rows, cols, Init::Weight,
            1.0 / std::sqrt(double(cols)), cs, rs });
    };
    auto norm = [&](std::string name) {
        plans.push_back({ std::move(name) + ".weight", { uint64_t(H) }, 1, H, Init::Norm, 0.05, nullptr, nullptr });
    };
    weight("model.embed_tokens", V, H, nullptr, nullptr);
    for (int b = 0; b < p.numLayers; ++b) {
        const std::string l = "model.layers." + std::to_string(b) + ".";
        weight(l + "self_attn.q_proj", qDim, H, &colScale, nullptr);
        weight(l + "self_attn.k_proj", kvDim, H, &colScale, nullptr);
        weight(l + "self_attn.v_proj", kvDim, H, &colScale, nullptr);
        weight(l + "self_attn.o_proj", H, qDim, nullptr, &rowScale);
        weight(l + "mlp.gate_proj", I, H, &colScale, nullptr);
        weight(l + "mlp.up_proj", I, H, &colScale, nullptr);
        weight(l + "mlp.down_proj", H, I, nullptr, &rowScale);
        norm(l + "input_layernorm");
        norm(l + "post_attention_layernorm");
    }
    norm("model.norm");
    weight("lm_head", V, H, nullptr, nullptr);
    return plans;
}

void storeValue(float v, SafetensorsDType dtype, uint8_t *out)
{
    switch (dtype) {
    case SafetensorsDType::F32:
        std::memcpy(out, &v, 4);
        return;
    case SafetensorsDType::F16: {
        const uint16_t h = floatToHalf(v);
        std::memcpy(out, &h, 2);
        return;
    }
    case SafetensorsDType::BF16: {
        const uint16_t b = floatToBf16(v);
        std::memcpy(out, &b, 2);
        return;
    }
    default:
        return;
    }
}

void generateRow(
    const Plan &plan, uint64_t seed, uint64_t tensorHash, int64_t row, SafetensorsDType dtype, uint8_t *out)
{
    Rng rng(rowSeed(seed, tensorHash, uint64_t(row)));
    const size_t esize = safetensorsDTypeSize(dtype);
    const double rowFactor = plan.rowScale ? double((*plan.rowScale)[size_t(row)]) : 1.0;
    for (int64_t c = 0; c < plan.cols; ++c) {
        double v;
        if (plan.init == Init::Norm) {
            v = 1.0 + plan.sigma * rng.normal();
        } else {
            v = plan.sigma * rng.studentT5() * rowFactor;
            if (plan.columnScale)
                v *= double((*plan.columnScale)[size_t(c)]);
        }
        storeValue(float(v), dtype, out + size_t(c) * esize);
    }
}

// Streams one tensor into the writer in row chunks of about 4 MiB, rows generated in parallel.
void writeTensor(
    SafetensorsStreamWriter &writer, const Plan &plan, uint64_t seed, SafetensorsDType dtype, Progress &progress)
{
    const size_t esize = safetensorsDTypeSize(dtype);
    const size_t rowBytes = size_t(plan.cols) * esize;
    const int64_t chunkRows = std::max<int64_t>(1, int64_t((size_t(4) << 20) / std::max<size_t>(rowBytes, 1)));
    const uint64_t tensorHash = fnv1a(plan.name);
    std::vector<uint8_t> buffer;
    for (int64_t first = 0; first < plan.rows; first += chunkRows) {
        progress.throwIfCancelled();
        const int64_t count = std::min(chunkRows, plan.rows - first);
        buffer.resize(size_t(count) * rowBytes);
        uint8_t *base = buffer.data();
        // Pure arithmetic inside: nothing here can throw, so no exception can cross the OpenMP region.
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < count; ++r)
            generateRow(plan, seed, tensorHash, first + r, dtype, base + size_t(r) * rowBytes);
        writer.append(plan.name, buffer.data(), buffer.size());
        progress.advance(double(buffer.size()));
    }
}

uint64_t planBytes(const Plan &p, SafetensorsDType dtype)
{
    return uint64_t(p.rows) * uint64_t(p.cols) * safetensorsDTypeSize(dtype);
}

std::string shardName(size_t i, size_t n)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i, n);
    return buf;
}

bool isEmptyDir(const fs::path &dir)
{
    std::error_code ec;
    return fs::is_directory(dir, ec) && fs::directory_iterator(dir, ec) == fs::directory_iterator();
}

// A fresh directory "<base><tag>XXXXXX" beside base.
fs::path makeSiblingDir(const fs::path &base, const char *tag)
{
    std::string templ = base.string() + tag + "XXXXXX";
    if (!::mkdtemp(templ.data()))
        fail(base.string(), std::string("cannot create a temporary folder beside it: ") + std::strerror(errno));
    // mkdtemp makes it private (0700); the finished model should be readable like any folder.
    fs::permissions(templ,
        fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read
            | fs::perms::others_exec);
    return templ;
}

// Removes the temporary folder unless released (on errors and cancellation).
class TempDirGuard
{
public:
    explicit TempDirGuard(fs::path dir)
        : m_dir(std::move(dir))
    { }
    ~TempDirGuard()
    {
        if (!m_dir.empty()) {
            std::error_code ec;
            fs::remove_all(m_dir, ec);
        }
    }
    void release() { m_dir.clear(); }
    const fs::path &path() const { return m_dir; }

private:
    fs::path m_dir;
};

void checkTarget(const fs::path &out)
{
    std::error_code ec;
    const fs::file_status st = fs::status(out, ec);
    if (!fs::exists(st))
        return;
    if (!fs::is_directory(st))
        fail(out.string(), "exists and is not a folder");
    if (!isEmptyDir(out) && !isDemoModelFolder(out.string()))
        fail(out.string(), "folder is not empty and does not hold a QuantScope demo model; not overwriting it");
}

nlohmann::ordered_json makeConfig(
    const DemoPreset &p, const DemoOptions &o, const char *torchDType, const std::vector<DemoOutlierChannel> &outliers)
{
    nlohmann::ordered_json c;
    c["architectures"] = { "LlamaForCausalLM" };
    c["model_type"] = "llama";
    c["vocab_size"] = p.vocabSize;
    c["hidden_size"] = p.hiddenSize;
    c["intermediate_size"] = p.intermediateSize;
    c["num_hidden_layers"] = p.numLayers;
    c["num_attention_heads"] = p.numHeads;
    c["num_key_value_heads"] = p.numKvHeads;
    c["head_dim"] = p.hiddenSize / p.numHeads;
    c["hidden_act"] = "silu";
    c["max_position_embeddings"] = p.maxPositions;
    c["initializer_range"] = 0.02;
    c["rms_norm_eps"] = 1e-5;
    c["rope_theta"] = 10000.0;
    c["rope_scaling"] = nullptr;
    c["tie_word_embeddings"] = false;
    c["attention_bias"] = false;
    c["attention_dropout"] = 0.0;
    c["mlp_bias"] = false;
    c["pretraining_tp"] = 1;
    c["bos_token_id"] = 1;
    c["eos_token_id"] = 2;
    c["use_cache"] = true;
    c["torch_dtype"] = torchDType;
    c["quantscope_synthetic"] = true;
    c["quantscope_preset"] = p.name;
    c["quantscope_seed"] = o.seed;
    nlohmann::ordered_json channels = nlohmann::ordered_json::array();
    for (const DemoOutlierChannel &ch : outliers)
        channels.push_back(ch.channel);
    c["quantscope_outlier_channels"] = channels;
    return c;
}

} // namespace

const std::vector<DemoPreset> &demoPresets()
{
    static const std::vector<DemoPreset> presets = {
        { "tiny", 64, 2, 4, 2, 176, 256, 2048, "Tiny Llama-shaped model for tests (about 0.1 M parameters)" },
        { "small", 256, 4, 8, 4, 688, 2048, 2048, "Small Llama-shaped model (about 4 M parameters)" },
        { "1b", 2048, 22, 32, 4, 5632, 32000, 2048, "TinyLlama 1.1B dimensions (2.2 GB in F16)" },
    };
    return presets;
}

const DemoPreset *findDemoPreset(const std::string &name)
{
    for (const DemoPreset &p : demoPresets())
        if (p.name == name)
            return &p;
    return nullptr;
}

std::vector<DemoOutlierChannel> demoOutlierChannels(const DemoOptions &options)
{
    const DemoPreset &p = presetOrFail(options.preset);
    // A handful, growing slowly with width: tiny 2, small 3, 1b 6 (Llama-class models show a few).
    const int wanted = std::max(2, int(std::lround(std::log2(double(p.hiddenSize)))) - 5);
    Rng rng(options.seed ^ 0x6F75746C69657273ull); // "outliers"
    std::set<int> chosen;
    std::map<int, float> scales;
    while (int(chosen.size()) < wanted) {
        const int ch = int(rng.next() % uint64_t(p.hiddenSize));
        if (chosen.insert(ch).second)
            scales[ch] = float(10.0 + 20.0 * rng.uniform());
    }
    std::vector<DemoOutlierChannel> out;
    for (const auto &[ch, scale] : scales)
        out.push_back({ ch, scale, scale / 3.0f });
    return out;
}

bool isDemoModelFolder(const std::string &dir)
{
    std::ifstream in(fs::path(dir) / "config.json");
    if (!in)
        return false;
    const nlohmann::json c = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!c.is_object())
        return false;
    const auto it = c.find("quantscope_synthetic");
    return it != c.end() && it->is_boolean() && it->get<bool>();
}

void writeDemoModel(const std::string &outDir, const DemoOptions &options, Progress &progress)
{
    const DemoPreset &preset = presetOrFail(options.preset);
    const DTypeChoice dt = parseDType(options.dtype);
    if (outDir.empty())
        fail("demo model", "no output folder given");

    fs::path out = fs::path(outDir);
    if (!out.has_filename())
        out = out.parent_path(); // "dir/" names "dir"
    checkTarget(out);
    std::error_code ec;
    const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
    fs::create_directories(parent, ec);
    if (ec)
        fail(parent.string(), "cannot create folder: " + ec.message());

    const std::vector<DemoOutlierChannel> outliers = demoOutlierChannels(options);
    std::vector<float> colScale(size_t(preset.hiddenSize), 1.0f), rowScale(size_t(preset.hiddenSize), 1.0f);
    for (const DemoOutlierChannel &ch : outliers) {
        colScale[size_t(ch.channel)] = ch.columnScale;
        rowScale[size_t(ch.channel)] = ch.rowScale;
    }
    const std::vector<Plan> plans = planTensors(preset, colScale, rowScale);

    // Greedy sharding in state-dict order, as huggingface_hub does; a tensor over the limit gets a shard.
    std::vector<std::vector<const Plan *>> shards(1);
    uint64_t shardBytes = 0, totalBytes = 0;
    for (const Plan &p : plans) {
        const uint64_t b = planBytes(p, dt.dtype);
        if (options.maxShardBytes > 0 && !shards.back().empty() && shardBytes + b > options.maxShardBytes) {
            shards.emplace_back();
            shardBytes = 0;
        }
        shards.back().push_back(&p);
        shardBytes += b;
        totalBytes += b;
    }

    TempDirGuard temp(makeSiblingDir(out, ".tmp-"));
    progress.setTotal(double(totalBytes));

    nlohmann::ordered_json weightMap = nlohmann::ordered_json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
        const std::string file = shards.size() == 1 ? "model.safetensors" : shardName(s + 1, shards.size());
        progress.message("Writing " + file);
        std::vector<SafetensorsTensorInfo> infos;
        std::map<std::string, const Plan *> byName;
        for (const Plan *p : shards[s]) {
            infos.push_back({ p->name, dt.dtype, p->shape });
            byName[p->name] = p;
            weightMap[p->name] = file;
        }
        SafetensorsStreamWriter writer((temp.path() / file).string(), std::move(infos));
        for (const SafetensorsTensorInfo &info : writer.writeOrder())
            writeTensor(writer, *byName.at(info.name), options.seed, dt.dtype, progress);
        writer.finish();
    }
    if (shards.size() > 1) {
        nlohmann::ordered_json index;
        index["metadata"] = { { "total_size", totalBytes } };
        index["weight_map"] = weightMap;
        writeFileAtomically((temp.path() / "model.safetensors.index.json").string(), index.dump(2) + "\n");
    }
    writeFileAtomically(
        (temp.path() / "config.json").string(), makeConfig(preset, options, dt.torchName, outliers).dump(2) + "\n");
    nlohmann::ordered_json gen;
    gen["bos_token_id"] = 1;
    gen["eos_token_id"] = 2;
    writeFileAtomically((temp.path() / "generation_config.json").string(), gen.dump(2) + "\n");

    // Swap into place. The target is checked again: it may have changed during a long generation.
    progress.throwIfCancelled();
    checkTarget(out);
    if (fs::exists(out) && !isEmptyDir(out)) {
        // An earlier demo: move it aside first so a failed rename can put it back.
        TempDirGuard old(makeSiblingDir(out, ".old-"));
        fs::rename(out, old.path(), ec);
        if (ec)
            fail(out.string(), "cannot move the earlier demo model aside: " + ec.message());
        fs::rename(temp.path(), out, ec);
        if (ec) {
            std::error_code ignored;
            fs::rename(old.path(), out, ignored);
            old.release();
            fail(out.string(), "cannot rename the generated folder into place: " + ec.message());
        }
        temp.release();
        return; // old's guard deletes the earlier demo
    }
    fs::rename(temp.path(), out, ec); // replaces an empty folder
    if (ec)
        fail(out.string(), "cannot rename the generated folder into place: " + ec.message());
    temp.release();
}

} // namespace qs::core
