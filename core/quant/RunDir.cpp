#include "quant/RunDir.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/AtomicFile.h"
#include "common/AtomicFolder.h"
#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "io/Safetensors.h"
#include "io/SafetensorsWriter.h"

namespace qs::core {

namespace fs = std::filesystem;

namespace {

constexpr const char *kFormatName = "quantscope-run";

GridId parseGrid(const std::string &name, const std::string &context)
{
    if (const GridInfo *g = findGrid(name))
        return g->id;
    throw Error(context + ": unknown grid '" + name + "'");
}

SymConvention parseConvention(const std::string &name, const std::string &context)
{
    for (SymConvention c : { SymConvention::None, SymConvention::Restricted, SymConvention::FullSigned,
             SymConvention::GptqMidpoint, SymConvention::SignedMax })
        if (name == symConventionName(c))
            return c;
    throw Error(context + ": unknown convention '" + name + "'");
}

RoundingMode parseRounding(const std::string &name, const std::string &context)
{
    for (RoundingMode m : { RoundingMode::HalfToEven, RoundingMode::HalfAwayFromZero, RoundingMode::HalfUp })
        if (name == roundingModeName(m))
            return m;
    throw Error(context + ": unknown rounding '" + name + "'");
}

ZeroPointKind parseZeroKind(const std::string &name, const std::string &context)
{
    for (ZeroPointKind k : { ZeroPointKind::Implicit, ZeroPointKind::Integer, ZeroPointKind::Float })
        if (name == zeroPointKindName(k))
            return k;
    throw Error(context + ": unknown zero kind '" + name + "'");
}

TensorRole parseRole(const std::string &name)
{
    for (TensorRole r :
        { TensorRole::Embed, TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::O, TensorRole::Gate,
            TensorRole::Up, TensorRole::Down, TensorRole::Norm, TensorRole::LmHead, TensorRole::Bias })
        if (name == roleName(r))
            return r;
    return TensorRole::Q;
}

nlohmann::json quantizedEntry(const QuantizedTensor &t)
{
    nlohmann::ordered_json j;
    j["name"] = t.name;
    j["method"] = t.method;
    j["rows"] = t.rows;
    j["cols"] = t.cols;
    j["bits"] = t.bits;
    j["group_size"] = t.groupSize;
    j["row_group_size"] = t.rowGroupSize;
    j["num_groups"] = t.numGroups();
    j["grid"] = gridInfo(t.grid).name;
    j["symmetric"] = t.symmetric;
    j["convention"] = symConventionName(t.convention);
    j["rounding"] = roundingModeName(t.rounding);
    j["zero_kind"] = zeroPointKindName(t.zeroKind);
    j["act_order_groups"] = t.actOrderGroups();
    j["input_scales"] = t.inputScalesSource.empty() && !t.inputScales.empty() ? "unknown" : t.inputScalesSource;
    j["bits_per_weight"] = t.bitsPerWeight();
    return nlohmann::json(j);
}

struct ParsedRun
{
    nlohmann::json j;
    RunProvenance provenance;
    ActivationQuantPlan activationQuant;
    std::shared_ptr<const Safetensors> tensors;
};

ParsedRun parseRun(const std::string &path)
{
    const fs::path dir(path);
    const fs::path jsonPath = dir / kRunJsonFile;
    std::ifstream in(jsonPath, std::ios::binary);
    if (!in)
        fail(path, std::string("not a run directory (no readable ") + kRunJsonFile + ")");
    std::stringstream ss;
    ss << in.rdbuf();
    ParsedRun p;
    try {
        p.j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error &e) {
        fail(jsonPath.string(), std::string("not valid JSON: ") + e.what());
    }
    if (!p.j.is_object() || p.j.value("format", std::string()) != kFormatName)
        fail(jsonPath.string(), std::string("not a QuantScope run (\"format\" is not \"") + kFormatName + "\")");
    const int version = p.j.value("format_version", 0);
    if (version < 1 || version > kRunFormatVersion)
        fail(jsonPath.string(),
            "unsupported run format version " + std::to_string(version) + " (this build reads up to "
                + std::to_string(kRunFormatVersion) + ")");
    try {
        p.provenance = RunProvenance::fromJson(p.j.at("provenance"));
        p.activationQuant = ActivationQuantPlan::fromJson(p.j.value("activation_quant", nlohmann::json::array()));
    } catch (const nlohmann::json::exception &e) {
        fail(jsonPath.string(), e.what());
    } catch (const Error &e) {
        fail(jsonPath.string(), e.what());
    }
    const std::string file = p.j.contains("tensors") ? p.j["tensors"].value("file", std::string(kRunTensorsFile))
                                                     : std::string(kRunTensorsFile);
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
        fail(jsonPath.string(), "tensors.file must be a file name inside the run directory");
    p.tensors = Safetensors::open((dir / file).string());
    return p;
}

const SafetensorsEntry &entryOf(const Safetensors &st, const std::string &name, const char *dtype, uint64_t numel)
{
    const SafetensorsEntry *e = st.find(name);
    if (!e)
        fail(st.fileName(), "tensor " + name + " is missing");
    if (e->dtype != dtype || e->numel != numel)
        fail(st.fileName(),
            "tensor " + name + " is " + e->dtype + " with " + std::to_string(e->numel) + " elements, expected " + dtype
                + " with " + std::to_string(numel));
    return *e;
}

template <class T>
std::vector<T> readVector(const Safetensors &st, const std::string &name, const char *dtype, uint64_t numel)
{
    const SafetensorsEntry &e = entryOf(st, name, dtype, numel);
    std::vector<T> v(static_cast<size_t>(numel));
    if (numel > 0)
        std::memcpy(v.data(), st.tensorBytes(e), size_t(numel) * sizeof(T));
    return v;
}

// Dequantizes rows from codes in the mapping and (small, copied) scales, zeros and g_idx:
// scale·(q − zero) through dequantizeCode, so the values equal QuantizedTensor::dequantized bit for bit.
class DequantTensorData final : public TensorData
{
public:
    DequantTensorData(std::shared_ptr<const Safetensors> keepAlive, const uint8_t *codes, int64_t rows, int64_t cols,
        int numGroups, std::vector<float> scales, std::vector<float> zeros, std::vector<int32_t> gIdx, std::string name)
        : m_keepAlive(std::move(keepAlive))
        , m_codes(codes)
        , m_rows(rows)
        , m_cols(cols)
        , m_numGroups(numGroups)
        , m_scales(std::move(scales))
        , m_zeros(std::move(zeros))
        , m_gIdx(std::move(gIdx))
        , m_name(std::move(name))
    { }
    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override
    {
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > m_rows)
            throw Error(m_name + ": rows [" + std::to_string(firstRow) + ", " + std::to_string(firstRow + rowCount)
                + ") outside " + std::to_string(m_rows));
        for (int64_t r = 0; r < rowCount; ++r) {
            const int64_t row = firstRow + r;
            const float *s = m_scales.data() + row * m_numGroups;
            const float *z = m_zeros.data() + row * m_numGroups;
            const uint8_t *q = m_codes + row * m_cols;
            float *o = out + r * m_cols;
            for (int64_t c = 0; c < m_cols; ++c) {
                const int32_t k = m_gIdx[size_t(c)];
                o[c] = dequantizeCode(q[c], s[k], z[k]);
            }
        }
    }

private:
    std::shared_ptr<const Safetensors> m_keepAlive;
    const uint8_t *m_codes;
    int64_t m_rows, m_cols;
    int m_numGroups;
    std::vector<float> m_scales, m_zeros;
    std::vector<int32_t> m_gIdx;
    std::string m_name;
};

class VectorTensorData final : public TensorData
{
public:
    VectorTensorData(std::vector<float> data, int64_t rows, int64_t cols)
        : m_data(std::move(data))
        , m_rows(rows)
        , m_cols(cols)
    { }
    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override
    {
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > m_rows)
            throw Error("run tensor: rows out of range");
        std::memcpy(out, m_data.data() + firstRow * m_cols, size_t(rowCount * m_cols) * sizeof(float));
    }
    const uint8_t *storedData() const override { return reinterpret_cast<const uint8_t *>(m_data.data()); }

private:
    std::vector<float> m_data;
    int64_t m_rows, m_cols;
};

struct QuantizedMeta
{
    QuantizedTensor t; // everything but the arrays
    std::string context;
};

QuantizedMeta parseQuantizedEntry(const nlohmann::json &e, size_t index)
{
    QuantizedMeta m;
    m.context = std::string("run.json: tensors.quantized[") + std::to_string(index) + "]";
    try {
        QuantizedTensor &t = m.t;
        t.name = e.at("name").get<std::string>();
        t.method = e.value("method", std::string());
        t.rows = e.at("rows").get<int64_t>();
        t.cols = e.at("cols").get<int64_t>();
        t.bits = e.at("bits").get<int>();
        t.groupSize = e.at("group_size").get<int>();
        t.rowGroupSize = e.value("row_group_size", 1);
        t.grid = parseGrid(e.at("grid").get<std::string>(), m.context);
        t.symmetric = e.value("symmetric", false);
        t.convention = parseConvention(e.value("convention", std::string("none")), m.context);
        t.rounding = parseRounding(e.value("rounding", std::string("half_to_even")), m.context);
        t.zeroKind = parseZeroKind(e.value("zero_kind", std::string("integer")), m.context);
        t.inputScalesSource = e.value("input_scales", std::string());
        if (t.rows <= 0 || t.cols <= 0 || t.bits < 1 || t.bits > 8 || t.groupSize == 0 || t.groupSize < -1)
            throw Error(m.context + ": bad shape, bits or group size");
    } catch (const nlohmann::json::exception &ex) {
        throw Error(m.context + ": " + ex.what());
    }
    return m;
}

LayerResult layerFromJson(const nlohmann::json &j)
{
    LayerResult r;
    r.name = j.value("name", std::string());
    r.block = j.value("block", -1);
    r.role = parseRole(j.value("role", std::string("q")));
    r.method = j.value("method", std::string());
    r.bits = j.value("bits", 0);
    r.groupSize = j.value("group_size", -1);
    r.weightMse = j.value("weight_mse", 0.0);
    r.relOutputError = j.value("rel_output_error", 0.0);
    r.sqnrDb = j.contains("sqnr_db") && j["sqnr_db"].is_number() ? j["sqnr_db"].get<double>()
                                                                 : std::numeric_limits<double>::infinity();
    r.seconds = j.value("seconds", 0.0);
    r.bitsPerWeight = j.value("bits_per_weight", 0.0);
    if (j.contains("gptq_loss"))
        r.gptqLoss = j["gptq_loss"].get<double>();
    if (j.contains("damp"))
        r.damp = j["damp"].get<double>();
    r.deadColumns = j.value("dead_columns", 0);
    r.activationBits = j.value("activation_bits", 0);
    r.inputScales = j.value("input_scales", std::string());
    r.note = j.value("note", std::string());
    return r;
}

} // namespace

// ---------------------------------------------------------------------------------------------------

nlohmann::ordered_json runJson(const QuantRun &run)
{
    nlohmann::ordered_json j;
    j["format"] = kFormatName;
    j["format_version"] = kRunFormatVersion;
    j["plan"] = run.plan.toJson();
    j["provenance"] = run.provenance.toJson();
    nlohmann::json layers = nlohmann::json::array();
    for (const LayerResult &l : run.layers)
        layers.push_back(l.toJson());
    j["layers"] = layers;
    nlohmann::json blocks = nlohmann::json::array();
    for (const BlockResult &b : run.blocks)
        blocks.push_back({ { "block", b.block },
            { "cumulative_error",
                std::isfinite(b.cumulativeError) ? nlohmann::json(b.cumulativeError) : nlohmann::json() },
            { "seconds", b.seconds } });
    j["blocks"] = blocks;
    j["bits_per_weight"] = run.bitsPerWeight;
    if (run.evaluation) {
        j["perplexity"] = run.evaluation->perplexity;
        if (run.evaluation->hasKld)
            j["kld_mean"] = run.evaluation->kldMean;
        j["evaluation"] = run.evaluation->toJson();
    }
    j["activation_quant"] = run.activationQuant.toJson();
    nlohmann::ordered_json tensors;
    tensors["file"] = kRunTensorsFile;
    nlohmann::json quantized = nlohmann::json::array();
    for (const QuantizedTensor &t : run.tensors)
        quantized.push_back(quantizedEntry(t));
    tensors["quantized"] = quantized;
    nlohmann::json modified = nlohmann::json::array();
    for (const auto &[name, values] : run.modifiedTensors)
        modified.push_back(name);
    tensors["modified"] = modified;
    j["tensors"] = tensors;
    j["warnings"] = run.warnings;
    j["seconds"] = run.seconds;
    return j;
}

bool isRunDir(const std::string &path)
{
    std::error_code ec;
    return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / kRunJsonFile, ec);
}

namespace {

fs::path runTarget(const std::string &path)
{
    if (path.empty())
        throw Error("run directory: no path given");
    fs::path target = fs::path(path);
    if (target.filename().empty())
        target = target.parent_path(); // "runs/x/" -> "runs/x"
    return target;
}

} // namespace

void checkRunDirTarget(const std::string &path)
{
    const fs::path target = runTarget(path);
    std::error_code ec;
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    if (!fs::is_directory(parent, ec))
        fail(path, "the folder " + parent.string() + " does not exist");
    if (fs::exists(target, ec)) {
        // Replace only what is safe to replace: a previous run, or an empty folder.
        if (!fs::is_directory(target, ec))
            fail(path, "exists and is not a folder");
        if (!isRunDir(target.string()) && !fs::is_empty(target, ec))
            fail(path, "exists and is not a run directory (refusing to replace it)");
    }
}

void writeRunDir(const QuantRun &run, const std::string &path, Progress &progress)
{
    checkRunDirTarget(path);
    AtomicFolder folder(runTarget(path).string(), path, "run");
    const fs::path tmp(folder.tempPath());

    // Tensors: per quantized layer codes, scales, zeros, g_idx (and input scales), then modified floats.
    std::vector<SafetensorsTensorInfo> infos;
    std::map<std::string, std::pair<const void *, size_t>> data;
    auto add = [&](const std::string &name, SafetensorsDType dtype, std::vector<uint64_t> shape, const void *p,
                   size_t bytes) {
        infos.push_back({ name, dtype, std::move(shape) });
        data[name] = { p, bytes };
    };
    for (const QuantizedTensor &t : run.tensors) {
        t.validate();
        const int64_t ng = t.numGroups();
        add(t.name + ".qcodes", SafetensorsDType::U8, { uint64_t(t.rows), uint64_t(t.cols) }, t.codes.data(),
            t.codes.size());
        add(t.name + ".scales", SafetensorsDType::F32, { uint64_t(t.rows), uint64_t(ng) }, t.scales.data(),
            t.scales.size() * sizeof(float));
        add(t.name + ".zeros", SafetensorsDType::F32, { uint64_t(t.rows), uint64_t(ng) }, t.zeros.data(),
            t.zeros.size() * sizeof(float));
        add(t.name + ".g_idx", SafetensorsDType::I32, { uint64_t(t.cols) }, t.gIdx.data(),
            t.gIdx.size() * sizeof(int32_t));
        if (!t.inputScales.empty())
            add(t.name + ".input_scales", SafetensorsDType::F32, { uint64_t(t.cols) }, t.inputScales.data(),
                t.inputScales.size() * sizeof(float));
    }
    for (const auto &[name, values] : run.modifiedTensors)
        add(name, SafetensorsDType::F32, { uint64_t(values.size()) }, values.data(), values.size() * sizeof(float));

    SafetensorsMetadata meta;
    meta["quantscope_run"] = std::to_string(kRunFormatVersion);
    meta["model_sha256"] = run.provenance.modelSha256;
    {
        uint64_t total = 0;
        for (const SafetensorsTensorInfo &i : infos)
            total += i.byteSize();
        progress.setTotal(double(total));
        progress.message("writing " + path);
        SafetensorsStreamWriter writer((tmp / kRunTensorsFile).string(), infos, meta);
        for (const SafetensorsTensorInfo &i : writer.writeOrder()) {
            progress.throwIfCancelled();
            const auto &[p, bytes] = data.at(i.name);
            writer.append(i.name, p, bytes);
            progress.advance(double(bytes));
        }
        writer.finish();
    }
    progress.throwIfCancelled();
    writeFileAtomically((tmp / kRunJsonFile).string(), runJson(run).dump(2) + "\n");
    progress.throwIfCancelled();

    folder.commit();
}

RunDirContents readRunDir(const std::string &path)
{
    ParsedRun p = parseRun(path);
    RunDirContents c;
    c.path = path;
    c.runJson = p.j;
    c.provenance = p.provenance;
    c.activationQuant = p.activationQuant;
    const Safetensors &st = *p.tensors;
    try {
        c.plan = Plan::fromJson(p.j.at("plan"));
        for (const nlohmann::json &l : p.j.value("layers", nlohmann::json::array()))
            c.layers.push_back(layerFromJson(l));
        c.bitsPerWeight = p.j.value("bits_per_weight", 0.0);
        if (p.j.contains("evaluation"))
            c.evaluation = RunEvaluation::fromJson(p.j["evaluation"]);
        const nlohmann::json &tj = p.j.at("tensors");
        const nlohmann::json quantized = tj.value("quantized", nlohmann::json::array());
        for (size_t i = 0; i < quantized.size(); ++i) {
            QuantizedMeta m = parseQuantizedEntry(quantized[i], i);
            QuantizedTensor &t = m.t;
            const uint64_t ng = uint64_t(t.numGroups());
            t.codes = readVector<uint8_t>(st, t.name + ".qcodes", "U8", uint64_t(t.rows * t.cols));
            t.scales = readVector<float>(st, t.name + ".scales", "F32", uint64_t(t.rows) * ng);
            t.zeros = readVector<float>(st, t.name + ".zeros", "F32", uint64_t(t.rows) * ng);
            t.gIdx = readVector<int32_t>(st, t.name + ".g_idx", "I32", uint64_t(t.cols));
            if (st.find(t.name + ".input_scales"))
                t.inputScales = readVector<float>(st, t.name + ".input_scales", "F32", uint64_t(t.cols));
            for (int32_t g : t.gIdx)
                if (g < 0 || uint64_t(g) >= ng)
                    fail(st.fileName(), t.name + ".g_idx: group " + std::to_string(g) + " out of range");
            t.dequantized = t.dequantize();
            t.validate();
            c.tensors.push_back(std::move(t));
        }
        for (const nlohmann::json &n : tj.value("modified", nlohmann::json::array())) {
            const std::string name = n.get<std::string>();
            const SafetensorsEntry *e = st.find(name);
            if (!e)
                fail(st.fileName(), "tensor " + name + " is missing");
            c.modifiedTensors[name] = readVector<float>(st, name, "F32", e->numel);
        }
    } catch (const nlohmann::json::exception &e) {
        fail(path, std::string("run.json: ") + e.what());
    }
    return c;
}

std::unique_ptr<Model> openRunDirModel(const std::string &path)
{
    ParsedRun p = parseRun(path);
    const RunProvenance &prov = p.provenance;

    // Where the original model is: the absolute path recorded, the path as given (relative to the current
    // folder), or relative to the run directory or its parent (runs moved together with their model).
    std::vector<fs::path> candidates;
    if (!prov.modelAbsolutePath.empty())
        candidates.emplace_back(prov.modelAbsolutePath);
    candidates.emplace_back(prov.modelPath);
    if (fs::path(prov.modelPath).is_relative()) {
        candidates.push_back(fs::path(path) / prov.modelPath);
        candidates.push_back(fs::path(path).parent_path() / prov.modelPath);
    }
    std::string original;
    std::error_code ec;
    for (const fs::path &c : candidates)
        if (!c.empty() && fs::exists(c, ec)) {
            original = c.string();
            break;
        }
    if (original.empty())
        fail(path,
            "the original model " + (prov.modelAbsolutePath.empty() ? prov.modelPath : prov.modelAbsolutePath)
                + " is missing (a run references its model by path and SHA-256; put the model back there)");
    RunProvenance now;
    hashModelFiles(original, now);
    if (now.modelSha256 != prov.modelSha256)
        fail(path,
            "the original model " + original + " has changed since the run (SHA-256 " + now.modelSha256
                + ", the run recorded " + prov.modelSha256 + ")");

    std::unique_ptr<Model> model = openModel(original);
    const Safetensors &st = *p.tensors;
    auto info = std::make_shared<RunInfo>();
    info->runPath = path;
    info->originalPath = original;
    info->originalSha256 = prov.modelSha256;
    info->activationQuant = p.activationQuant;
    info->bitsPerWeight = p.j.value("bits_per_weight", 0.0);
    try {
        const nlohmann::json &tj = p.j.at("tensors");
        const nlohmann::json quantized = tj.value("quantized", nlohmann::json::array());
        for (size_t i = 0; i < quantized.size(); ++i) {
            const QuantizedMeta m = parseQuantizedEntry(quantized[i], i);
            const QuantizedTensor &t = m.t;
            Tensor *target = nullptr;
            for (Tensor &x : model->tensors)
                if (x.name == t.name)
                    target = &x;
            if (!target || target->rows != t.rows || target->cols != t.cols)
                fail(path,
                    t.name + ": not a " + std::to_string(t.rows) + " x " + std::to_string(t.cols)
                        + " tensor of the original model");
            const uint64_t ng = uint64_t(t.numGroups());
            const SafetensorsEntry &codes = entryOf(st, t.name + ".qcodes", "U8", uint64_t(t.rows * t.cols));
            std::vector<float> scales = readVector<float>(st, t.name + ".scales", "F32", uint64_t(t.rows) * ng);
            std::vector<float> zeros = readVector<float>(st, t.name + ".zeros", "F32", uint64_t(t.rows) * ng);
            std::vector<int32_t> gIdx = readVector<int32_t>(st, t.name + ".g_idx", "I32", uint64_t(t.cols));
            for (int32_t g : gIdx)
                if (g < 0 || uint64_t(g) >= ng)
                    fail(st.fileName(), t.name + ".g_idx: group " + std::to_string(g) + " out of range");
            target->data = std::make_shared<DequantTensorData>(p.tensors, st.tensorBytes(codes), t.rows, t.cols,
                int(ng), std::move(scales), std::move(zeros), std::move(gIdx), t.name);
            target->dtype = DType::F32; // dequantized on read; the codes are t.bits wide
            target->storedBytes = codes.byteSize() + 2 * ng * uint64_t(t.rows) * sizeof(float) + uint64_t(t.cols) * 4;
            target->tied = false;
            target->sourceName = t.name + ".qcodes";
            info->quantizedLayers.push_back(t.name);
        }
        for (const nlohmann::json &n : tj.value("modified", nlohmann::json::array())) {
            const std::string name = n.get<std::string>();
            Tensor *target = nullptr;
            for (Tensor &x : model->tensors)
                if (x.name == name)
                    target = &x;
            if (!target)
                fail(path, name + ": the original model has no such tensor");
            std::vector<float> v = readVector<float>(st, name, "F32", uint64_t(target->numel()));
            target->data = std::make_shared<VectorTensorData>(std::move(v), target->rows, target->cols);
            target->dtype = DType::F32;
            target->storedBytes = uint64_t(target->numel()) * sizeof(float);
            target->tied = false;
            target->sourceName = name;
            info->modifiedTensors.push_back(name);
        }
    } catch (const nlohmann::json::exception &e) {
        fail(path, std::string("run.json: ") + e.what());
    }
    model->format = "run";
    model->path = path;
    model->inputTransform = p.activationQuant.transform();
    model->runInfo = info;
    model->warnings.push_back(
        "quantized run of " + original + " (" + std::to_string(info->quantizedLayers.size()) + " quantized layers)");
    return model;
}

} // namespace qs::core
