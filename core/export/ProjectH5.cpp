// The HDF5 project file (export/ProjectH5.h): conversions between runs and project runs, and the exporter.
// The file itself is written in ProjectH5Writer.cpp and read in ProjectH5Reader.cpp.
#include "export/ProjectH5.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>

#include "common/Error.h"
#include "common/Progress.h"
#include "io/FormatRegistry.h"

namespace qs::core {

namespace fs = std::filesystem;

namespace {

// Statistics of each linear weight, with one progress bar across all of them.
class ForwardingProgress final : public Progress
{
public:
    explicit ForwardingProgress(Progress &outer)
        : m_outer(outer)
    { }
    void setTotal(double) override { }
    void advance(double amount) override { m_outer.advance(amount); }
    void message(std::string_view text) override { m_outer.message(text); }
    bool isCancelled() const override { return m_outer.isCancelled(); }

private:
    Progress &m_outer;
};

} // namespace

bool looksLikeProjectPath(const std::string &path)
{
    std::string lower(path);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    for (const char *ext : { ".qsproj.h5", ".qsproj", ".h5", ".hdf5" }) {
        const size_t n = std::strlen(ext);
        if (lower.size() > n && lower.compare(lower.size() - n, n, ext) == 0)
            return true;
    }
    return false;
}

ProjectModelRef describeModel(const std::string &path, const std::string &format, Progress *progress)
{
    ProjectModelRef m;
    m.path = path;
    std::error_code ec;
    const fs::path abs = fs::absolute(path, ec);
    m.absolutePath = ec ? path : abs.lexically_normal().string();
    m.format = format;
    RunProvenance p;
    hashModelFiles(path, p, progress);
    m.sha256 = p.modelSha256;
    m.files = p.modelFiles;
    return m;
}

ProjectRun projectRunFrom(const QuantRun &run, const std::string &name, const std::string &runDir, bool includeTensors)
{
    ProjectRun r;
    r.name = name;
    r.runDir = runDir;
    r.plan = run.plan.toJson();
    r.provenance = run.provenance;
    r.layers = run.layers;
    r.blocks = run.blocks;
    r.evaluation = run.evaluation;
    r.activationQuant = run.activationQuant;
    r.bitsPerWeight = run.bitsPerWeight;
    r.seconds = run.seconds;
    r.warnings = run.warnings;
    if (includeTensors) {
        r.tensors = run.tensors;
        for (QuantizedTensor &t : r.tensors)
            t.dequantized.clear(); // recomputed on read; not written
        r.modifiedTensors = run.modifiedTensors;
    }
    return r;
}

ProjectRun projectRunFrom(const RunDirContents &run, const std::string &name, bool includeTensors)
{
    ProjectRun r;
    r.name = name;
    // Absolute, so the project finds the run again whatever the working directory when it is opened.
    std::error_code ec;
    const fs::path abs = fs::absolute(run.path, ec);
    r.runDir = ec ? run.path : abs.lexically_normal().string();
    if (r.runDir.size() > 1 && r.runDir.back() == '/')
        r.runDir.pop_back();
    r.plan = run.plan.toJson();
    r.provenance = run.provenance;
    r.layers = run.layers;
    // run.json's blocks, warnings and seconds are not part of RunDirContents' typed fields.
    for (const nlohmann::json &b : run.runJson.value("blocks", nlohmann::json::array())) {
        BlockResult br;
        br.block = b.value("block", 0);
        const auto it = b.find("cumulative_error");
        br.cumulativeError = it != b.end() && it->is_number() ? it->get<double>()
                                                              : std::numeric_limits<double>::quiet_NaN();
        br.seconds = b.value("seconds", 0.0);
        r.blocks.push_back(br);
    }
    for (const nlohmann::json &wj : run.runJson.value("warnings", nlohmann::json::array()))
        if (wj.is_string())
            r.warnings.push_back(wj.get<std::string>());
    const auto sec = run.runJson.find("seconds");
    r.seconds = sec != run.runJson.end() && sec->is_number() ? sec->get<double>() : 0.0;
    r.evaluation = run.evaluation;
    r.activationQuant = run.activationQuant;
    r.bitsPerWeight = run.bitsPerWeight;
    if (includeTensors) {
        r.tensors = run.tensors;
        for (QuantizedTensor &t : r.tensors)
            t.dequantized.clear();
        r.modifiedTensors = run.modifiedTensors;
    }
    return r;
}

QuantRun quantRunFrom(const ProjectRun &run)
{
    QuantRun q;
    q.plan = Plan::fromJson(run.plan);
    q.provenance = run.provenance;
    q.layers = run.layers;
    q.blocks = run.blocks;
    q.tensors = run.tensors;
    for (QuantizedTensor &t : q.tensors)
        if (t.dequantized.empty())
            t.dequantized = t.dequantize();
    q.modifiedTensors = run.modifiedTensors;
    q.activationQuant = run.activationQuant;
    q.bitsPerWeight = run.bitsPerWeight;
    q.evaluation = run.evaluation;
    q.warnings = run.warnings;
    q.seconds = run.seconds;
    return q;
}

ExportSummary exportProjectH5(const ExportSource &source, const ProjectExportOptions &options, const std::string &out,
    Progress &progress)
{
    const auto t0 = std::chrono::steady_clock::now();
    Project project;
    ExportSummary summary;
    summary.format = "hdf5";
    summary.path = out;

    // The model the project is about: for a RUN_DIR the original (already hashed and checked when the run
    // was opened), otherwise the model itself.
    std::shared_ptr<const Model> statsModel = source.model;
    if (source.run) {
        const RunProvenance &prov = source.run->provenance;
        project.model.path = prov.modelPath;
        project.model.absolutePath = prov.modelAbsolutePath;
        project.model.format = prov.modelFormat;
        project.model.sha256 = prov.modelSha256;
        project.model.files = prov.modelFiles;
        const std::string original = source.model->runInfo && !source.model->runInfo->originalPath.empty()
            ? source.model->runInfo->originalPath
            : prov.modelAbsolutePath;
        progress.message("opening the original model " + original);
        statsModel = openModel(original);
        project.plan = source.run->plan.toJson();
        project.calibration.provenance = prov.calibration;
        const nlohmann::json &c = prov.calibration;
        if (c.is_object()) {
            for (const char *key : { "text_path", "samples", "seq_len", "seed", "mode", "separator" })
                if (c.contains(key))
                    project.calibration.settings[key] = c[key];
        }
    } else {
        progress.message("hashing " + source.path);
        project.model = describeModel(source.path, source.model->format, &progress);
    }
    project.model.parameters = statsModel->parameterCount();

    // Statistics of every linear weight.
    std::vector<const Tensor *> linears;
    double values = 0.0;
    for (const Tensor &t : statsModel->tensors)
        if (isLinearRole(t.role)) {
            linears.push_back(&t);
            values += 2.0 * double(t.numel());
        }
    progress.setTotal(values);
    ForwardingProgress inner(progress);
    for (size_t i = 0; i < linears.size(); ++i) {
        progress.throwIfCancelled();
        progress.message("statistics " + linears[i]->name + " (" + std::to_string(i + 1) + "/"
            + std::to_string(linears.size()) + ")");
        project.weightStats.push_back(computeWeightStats(*statsModel, *linears[i], StatsOptions::defaults(), inner));
    }
    summary.notes.push_back("statistics of " + std::to_string(linears.size()) + " linear weights");

    if (source.run) {
        const std::string name = fs::path(source.run->path).filename().string();
        project.runs.push_back(projectRunFrom(*source.run, name.empty() ? source.run->path : name, options.includeTensors));
        if (options.includeTensors) {
            for (const QuantizedTensor &t : source.run->tensors) {
                const std::string type = "int" + std::to_string(t.bits)
                    + (t.groupSize > 0 ? " g" + std::to_string(t.groupSize) : std::string(" per channel"));
                summary.tensors.push_back({ "/runs/000/tensors/" + t.name, type, "codes", "" });
            }
            for (const auto &[name, v] : source.run->modifiedTensors)
                summary.tensors.push_back({ "/runs/000/modified/" + name, "F32", "float", "" });
        } else {
            summary.notes.push_back("--no-tensors: the run's quantized tensors were left out (metrics only)");
        }
    } else {
        summary.notes.push_back("not a run directory: the project holds the model reference and statistics only");
    }

    writeProject(project, out, progress);
    summary.bytes = pathBytes(out);
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return summary;
}

} // namespace qs::core
