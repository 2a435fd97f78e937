#pragma once
// A quantization run on disk (RUN_DIR, docs/run-dir.md): run.json (plan, provenance, per-layer metrics,
// evaluation, activation quantization, tensor index) and quantized.safetensors (codes, scales, zeros,
// g_idx of every quantized layer, and the float tensors the run modified). The original model is
// referenced by path and SHA-256, never copied.
//
// Writing is atomic: everything goes into "<path>.tmp-XXXXXX" beside the target, which is renamed onto
// path at the end (an existing RUN_DIR there is replaced only then). Cancellation or any error removes the
// temporary folder, so there is either the complete new RUN_DIR or none.
//
// Opening a RUN_DIR as a model (format "run" in the format registry, io/RunReader.h): opens the original
// model (the absolute path recorded, else the path as given, else relative to the run directory), checks
// its SHA-256, and replaces the quantized linears by TensorData that dequantizes scale·(q − zero) from the
// mapped tensors on readRows (bit-identical to QuantizedTensor::dequantized), the modified tensors by
// their stored floats, and sets Model::inputTransform from the run's activation quantization.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/Progress.h"
#include "model/Model.h"
#include "quant/ActivationSim.h"
#include "quant/Pipeline.h"
#include "quant/QuantizedTensor.h"

namespace qs::core {

inline constexpr const char *kRunJsonFile = "run.json";
inline constexpr const char *kRunTensorsFile = "quantized.safetensors";
inline constexpr int kRunFormatVersion = 1;

// What a model opened from a RUN_DIR carries in Model::runInfo.
struct RunInfo
{
    std::string runPath;
    std::string originalPath; // the model path that was opened
    std::string originalSha256;
    ActivationQuantPlan activationQuant;
    std::vector<std::string> quantizedLayers;
    std::vector<std::string> modifiedTensors;
    double bitsPerWeight = 0.0;
};

// run.json as the pipeline result describes it (no tensor data).
nlohmann::ordered_json runJson(const QuantRun &run);

// Throws Error naming path when a run could not be written there: its folder is missing, or path exists
// and is neither a run directory (which a new run replaces) nor an empty folder. writeRunDir() checks the
// same; front ends call it before a long run so a bad --out fails at once.
void checkRunDirTarget(const std::string &path);

// Writes RUN_DIR atomically (see above). Progress: setTotal(bytes of tensor data), cancellable.
// Throws Error naming path, or Cancelled; neither leaves anything behind.
void writeRunDir(const QuantRun &run, const std::string &path, Progress &progress);

// True when path is a folder holding run.json (cheap; used as the format probe).
bool isRunDir(const std::string &path);

// A RUN_DIR read back, for exporters and reports.
struct RunDirContents
{
    std::string path;
    nlohmann::json runJson;
    Plan plan;
    RunProvenance provenance;
    std::vector<LayerResult> layers;
    std::vector<QuantizedTensor> tensors; // codes, scales, zeros, gIdx, input scales, grid fields, dequantized
    std::map<std::string, std::vector<float>> modifiedTensors;
    ActivationQuantPlan activationQuant;
    double bitsPerWeight = 0.0;
    std::optional<RunEvaluation> evaluation;
};

// Throws Error("<path>: ...") for a missing or malformed run.json / tensor file; every tensor is
// validated (QuantizedTensor::validate).
RunDirContents readRunDir(const std::string &path);

// Opens RUN_DIR as a model (see above). Throws Error naming the run and the original model when that is
// missing or its SHA-256 differs from the recorded one.
std::unique_ptr<Model> openRunDirModel(const std::string &path);

} // namespace qs::core
