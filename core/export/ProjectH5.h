#pragma once
// The HDF5 project file (docs/hdf5-project.md): a whole QuantScope session in one file that h5py reads
// without plugins: the model reference (path, format and SHA-256 of its files), the plan, calibration
// settings and provenance, per-layer weight statistics with histograms, the quantization runs with their
// per-layer and per-block metrics, evaluation and bits per weight, optionally each run's quantized tensors
// (codes, scales, zeros, g_idx, and the float tensors the run changed), and the GUI's state as JSON.
//
// The GUI's File › Save/Open project and `quantscope-cli export MODEL|RUN_DIR --format hdf5` write it;
// conventions from specs/formats.md §6. The recommended extension is ".qsproj.h5" (kProjectExtension):
// ".h5" tells people and tools that h5py opens it, ".qsproj" tells QuantScope that it is a project.
//
// Writing is atomic (common/AtomicFile.h): the file is built as "<path>.tmp-XXXXXX" beside the target
// and renamed when complete; cancellation, a full disk, a permission problem or any HDF5 failure removes
// the temporary, leaves an existing file at path untouched, and throws Error("<path>: ...") (or
// Cancelled). Reading validates every dataset's type and shape and throws Error("<path>: ...") naming the
// object for anything missing, misshapen, truncated or from a newer format version.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "export/ExportSource.h"
#include "quant/ActivationSim.h"
#include "quant/Pipeline.h"
#include "quant/QuantizedTensor.h"
#include "stats/WeightStats.h"

namespace qs::core {

constexpr int kProjectFormatVersion = 1;
inline constexpr const char *kProjectContent = "quantscope.project";
inline constexpr const char *kProjectExtension = ".qsproj.h5";

// True when path ends in ".qsproj.h5", ".qsproj", ".h5" or ".hdf5" (case-insensitive): how front ends
// decide, without reading it, that a dropped or recent file is a project rather than a model.
bool looksLikeProjectPath(const std::string &path);

struct ProjectModelRef
{
    std::string path;         // as the user opened it
    std::string absolutePath; // resolved when saved
    std::string format;       // format-table name: "safetensors", "gguf", "llama2c", "run", ...
    std::string sha256;       // hashModelFiles(): SHA-256 over "<sha256>  <file>\n" of files
    std::vector<ModelFileHash> files;
    int64_t parameters = 0; // for display; 0 when unknown
};

// Fills absolutePath, format (from the model when given), sha256 and files by hashing the model's files
// (RunProvenance's helper, so a project and a run of the same model record the same hash). Cancellable.
ProjectModelRef describeModel(const std::string &path, const std::string &format, Progress *progress = nullptr);

struct ProjectCalibration
{
    // What the user chose for calibration and evaluation, as a flat JSON object, e.g.
    // {"text": ..., "samples": 32, "seq_len": 256, "seed": 0, "eval_text": ..., "eval_ctx": 512,
    //  "eval_protocol": "llamacpp", "eval_max_chunks": 0}. Scalars are also written as attributes.
    nlohmann::json settings = nlohmann::json::object();
    // CalibrationSet::toJson() of the last calibration pass, or null when none ran.
    nlohmann::json provenance;

    bool operator==(const ProjectCalibration &) const = default;
};

struct ProjectRun
{
    std::string name;
    std::string runDir; // its RUN_DIR (docs/run-dir.md), or "" for a run kept only in the session
    nlohmann::json plan = nlohmann::json::object(); // Plan::toJson()
    RunProvenance provenance;
    std::vector<LayerResult> layers;
    std::vector<BlockResult> blocks;
    std::optional<RunEvaluation> evaluation;
    ActivationQuantPlan activationQuant;
    double bitsPerWeight = 0.0;
    double seconds = 0.0;
    std::vector<std::string> warnings;
    // Optional: the quantized layers (dequantized is recomputed on read) and the float tensors the run
    // changed. Empty when the project was written without tensors.
    std::vector<QuantizedTensor> tensors;
    std::map<std::string, std::vector<float>> modifiedTensors;
};

struct Project
{
    int formatVersion = kProjectFormatVersion; // as read; the writer always writes kProjectFormatVersion
    std::string createdBy;                     // as read ("QuantScope <version>")
    ProjectModelRef model;
    nlohmann::json plan; // Plan::toJson() / PlanModel::toPlanJson(); null when there is none
    ProjectCalibration calibration;
    std::vector<WeightStats> weightStats; // in model order (the order written)
    std::vector<ProjectRun> runs;
    nlohmann::json uiState = nlohmann::json::object(); // front-end state (selected layer, tab, ...)
};

// Builds a ProjectRun from a pipeline result (copies; includeTensors copies codes, scales, zeros).
ProjectRun projectRunFrom(const QuantRun &run, const std::string &name, const std::string &runDir,
                          bool includeTensors);
ProjectRun projectRunFrom(const RunDirContents &run, const std::string &name, bool includeTensors);
// The inverse for front ends that show runs: a QuantRun with layers, blocks, evaluation, provenance,
// plan (parsed; Error when invalid), tensors (dequantized recomputed) and modified tensors.
QuantRun quantRunFrom(const ProjectRun &run);

// Writes the project atomically (see the header comment). Progress: setTotal(statistics + tensors),
// advance(1) per statistics group and per run tensor; cancellable between them.
void writeProject(const Project &project, const std::string &path, Progress &progress);

// Reads a project; with loadTensors false the runs' tensors are skipped (their presence is not checked).
// Throws Error("<path>: ...") for anything that is not a valid project of a supported version.
Project readProject(const std::string &path, bool loadTensors = true);

struct ProjectExportOptions
{
    bool includeTensors = true; // codes, scales, zeros, g_idx of the run's quantized layers
};

// `quantscope-cli export MODEL|RUN_DIR --format hdf5`: a project with the model reference, statistics of
// every linear weight of the model (for a RUN_DIR: of the original model), and for a RUN_DIR its run.
// Writes out atomically. Throws Error naming the file, or Cancelled; neither leaves anything behind.
ExportSummary exportProjectH5(const ExportSource &source, const ProjectExportOptions &options,
                              const std::string &out, Progress &progress);

} // namespace qs::core
