#pragma once
// One layer, several quantization configurations side by side (issue #5: "compare their errors and
// histograms before committing to a plan"). Quantizes one block linear (q/k/v/o/gate/up/down) of a model
// with each MethodConfig through the same per-layer entry points the pipeline calls (quantizeRtn,
// quantizeZeroQuantWeight, computeSmoothingScales + quantizeSmoothedWeight, prepareGptqHessian +
// quantizeGptq, runAwq), measures each result as the pipeline measures a layer (LayerResult: weight MSE,
// ‖WX − ŴX‖/‖WX‖ via H, SQNR, GPTQ loss, bits per weight, seconds) and bins the weight error and the
// resulting weights on shared bins so the histograms overlay.
//
// Calibration inputs. The calibration samples are drawn exactly as runQuantization draws them (same text,
// tokenizer, windows/documents, seed). Each sample is embedded and run through the FLOAT blocks 0 … b−1
// and block b up to the layer's input (ForwardEngine::embed/runBlock with an observer that stops the pass
// there), one sample at a time; only the statistics the methods need are kept: H = Σ xxᵀ (double), per-
// channel max|x| and mean|x|, and for AWQ whole sequences up to awqCacheTokens tokens (the pipeline's
// rule). Memory: one sample's hidden states, H (cols² doubles), the AWQ cache, the layer's weights and
// one QuantizedTensor (5 bytes per weight) per configuration.
//
// What is identical to a full pipeline run (runQuantization) and what is not:
//   * identical: the calibration samples; the accumulation of H, max|x| and mean|x| (same order, same
//     thread settings); every method's per-layer call and options; the metric formulas (effective weights
//     against the original W, the layer's own H). For a layer whose pipeline inputs are float — every layer
//     of block 0 that reads the embeddings or float siblings, i.e. whenever nothing before the layer in the
//     model is quantized — a config gives the same codes and metrics as a pipeline run (tests check GPTQ on
//     block 0 and AWQ on o/down_proj against runQuantization).
//   * not identical in general: the pipeline feeds block b the output of the QUANTIZED blocks before it (and,
//     with GPTQ's true_sequential, the quantized earlier sub-steps of block b); here every input comes from
//     the float model. The comparison ranks methods on the same float inputs; the pipeline's figures for
//     later layers include the upstream error.
//   * rtn / zeroquant: no calibration; codes identical to the pipeline's for the same weights. ZeroQuant's
//     simulated activation quantization is reported (activationBits) but, as in the pipeline's per-layer
//     metrics, not applied to the output error.
//   * gptq: identical given H. The pipeline uses H in the scaled basis when a SmoothQuant/AWQ sibling folds
//     scales into the shared input; here the layer is alone, so no scaling.
//   * smoothquant: s from max|x| and the column maxima over ALL the linears reading the input (q/k/v or
//     gate/up, read from the model), exactly as the pipeline computes it when the siblings are still float;
//     the layer is quantized W·diag(s) and measured with its effective weights. o/down_proj: W8 without
//     smoothing (no norm in front), as the pipeline. Activation quantization is not simulated in the error.
//   * awq: the scale search runs over this layer ALONE with its own output ‖X·Wᵀ‖ as the loss
//     (linearOutputsModule). That is the pipeline's search for o_proj and down_proj; for q/k/v and gate/up
//     the pipeline searches one s for all awq layers of the group with the attention / SwiGLU MLP output as
//     the loss, so the chosen α (and the result) can differ. o_proj with grouped-query attention gets no
//     scaling (clip search only), as in the pipeline; folds into v/up rows are assumed possible (the
//     pipeline skips them when that sibling uses ZeroQuant row groups).
// Methods the pipeline does not run per layer (anything outside rtn/zeroquant/gptq/smoothquant/awq) are
// rejected before any work.
//
// Progress: "capturing" phase with one unit per calibration sample, then one unit per configuration;
// cancellable between samples, blocks, configurations and inside GPTQ/AWQ (throws Cancelled). A config
// that fails on this layer (e.g. GPTQ cannot factorize) does not stop the others: its entry carries the
// error. Threads: OpenMP, options.threads (0 = all) for the duration.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "common/Progress.h"
#include "eval/Calibration.h"
#include "model/ActivationObserver.h"
#include "model/Model.h"
#include "quant/MethodRegistry.h"
#include "quant/Pipeline.h"
#include "quant/QuantizedTensor.h"
#include "stats/WeightStats.h"

namespace qs::core {

struct LayerCompareOptions
{
    // Calibration, with the meaning of PipelineOptions (the GUI passes the same settings to both).
    std::string calibrationText;
    int samples = 32;
    int seqLen = 256;
    uint64_t seed = 0;
    CalibrationMode calibrationMode = CalibrationMode::Windows;
    std::string documentSeparator = "<|endoftext|>";

    int threads = 0; // 0 = all
    int64_t awqCacheTokens = 8192; // as PipelineOptions::awqCacheTokens
    int histogramBins = 80; // bins of the shared error and weight histograms

    static LayerCompareOptions defaults() { return {}; }
};

// Whether compareLayerMethods can run a method per layer ("rtn", "zeroquant", "gptq", "smoothquant", "awq").
bool layerCompareSupports(std::string_view method);

// The calibration statistics of one layer's input (float model).
struct LayerInputs
{
    std::string layer;
    int block = 0;
    TensorRole role = TensorRole::Q;
    LinearInput input = LinearInput::AttnIn;
    int64_t cols = 0;
    int64_t tokens = 0;
    Eigen::MatrixXd H; // Σ x xᵀ over all calibration tokens, full symmetric
    std::vector<float> absMax; // per channel max |x|
    std::vector<float> meanAbs; // per channel mean |x|
    std::vector<float> cache; // whole sequences (tokens × cols), at most awqCacheTokens tokens (≥ 1 sequence)
    std::vector<int64_t> cacheLengths;

    int64_t cachedTokens() const { return cols > 0 ? int64_t(cache.size()) / cols : 0; }
};

// Draws the calibration samples as runQuantization does (tokenizing options.calibrationText with the model's
// tokenizer). Throws Error (unreadable or too short text, no tokenizer) or Cancelled.
CalibrationSet makeLayerCompareCalibration(const Model &model, const LayerCompareOptions &options, Progress &progress);

// Runs the samples through the float model up to `layer`'s input and accumulates its statistics. withCache:
// keep the AWQ sequence cache. Progress: setTotal(samples), advance(1) per sample. Throws Error for a name
// that is not a block linear of the model.
LayerInputs captureLayerInputs(const std::shared_ptr<const Model> &model, const std::string &layer,
    const CalibrationSet &calibration, const LayerCompareOptions &options, bool withCache, Progress &progress);

struct LayerCompareEntry
{
    MethodConfig config;
    std::string label; // "GPTQ 4-bit g128", "RTN 8-bit per channel sym"
    std::string error; // non-empty: this config failed on the layer (metrics and tensor empty)
    LayerResult metrics; // as the pipeline reports a layer (name, method, bits, group, errors, bpw, seconds, note)
    QuantizedTensor tensor;
    Histogram errorHistogram; // of effective − original weights, on LayerComparison's shared error bins
    Histogram weightHistogram; // of the effective weights, on the shared weight bins
};

struct LayerComparison
{
    std::string layer;
    int block = 0;
    TensorRole role = TensorRole::Q;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t calibrationTokens = 0;
    nlohmann::json calibration; // CalibrationSet::toJson() (provenance)
    Histogram originalHistogram; // of W, on the shared weight bins
    std::vector<LayerCompareEntry> entries; // in the order of the configs given
    double captureSeconds = 0.0;
    double seconds = 0.0;

    // Index of the successful entry with the smallest relative output error (ties: the first); −1 if none.
    int bestIndex() const;
};

// A short human label for a config: display name, bits, group ("g128", "per channel", "per tensor"),
// "sym" when symmetric, and non-default parameters other than bits/group/symmetric/grid in brackets.
std::string methodConfigLabel(const MethodConfig &config);

// Quantizes one layer with one config given its captured inputs; W is the layer's original weights
// (rows × cols, row-major). The error histograms are left empty (compareLayerMethods bins all entries
// together). Throws Error when the method cannot run on this layer, Cancelled.
LayerCompareEntry quantizeLayerWithConfig(const Model &model, const LayerInputs &inputs, const std::vector<float> &W,
    const MethodConfig &config, Progress &progress);

// The whole comparison: validates every config (Error "layer compare: <label>: ..."), draws the calibration
// samples, captures the layer's inputs, quantizes with each config and bins the histograms.
LayerComparison compareLayerMethods(const std::shared_ptr<const Model> &model, const std::string &layer,
    const std::vector<MethodConfig> &configs, const LayerCompareOptions &options, Progress &progress);

} // namespace qs::core
