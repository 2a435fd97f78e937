#pragma once
// The block-by-block quantization pipeline (specs/algorithms.md §1.3): quantizes every layer of a model as
// its Plan says, measures each layer as it goes, and optionally evaluates the result against the original.
// The GUI's quantize job and `quantscope-cli quantize` both call runQuantization(); writeRunDir()
// (quant/RunDir.h) then stores the result as a RUN_DIR that openModel() opens like any model.
//
// Steps:
//  1. Resolve the plan (Plan::resolve; errors before any work). Tokenize the calibration text with the
//     model's tokenizer and draw the samples (eval/Calibration.h: seeded windows by default).
//  2. Embed every sample: the hidden states X (samples × seqLen × hidden floats, kept for the whole run:
//     32 × 256 × 4096 × 4 B = 128 MiB for a 7B model; 2× with the cumulative error, see below). An embedding
//     quantized by the plan (rtn/zeroquant only) is quantized first, and X comes from the quantized table.
//  3. For each block b, in sub-steps over its linear inputs
//        [q,k,v] (attn_in) -> [o] (attn_out) -> [gate,up] (mlp_in) -> [down] (mlp_act):
//     a. gather: run the block on every sample with hooks and accumulate, for the sub-step's inputs, the
//        Hessian H = Σ xxᵀ (double; for every quantized layer: GPTQ needs it, and every layer's
//        rel_output_error uses it), per-channel max|x| (SmoothQuant) and mean|x| (AWQ), and for AWQ groups
//        whole cached sequences (at most PipelineOptions::awqCacheTokens tokens: the attention loss module
//        needs whole sequences for RoPE and the causal mask).
//        True-sequential (GPTQ's true_sequential, §3.2): when any GPTQ layer of the block has it (the
//        default), each sub-step gathers again with the earlier sub-steps already quantized (4 gather
//        passes per block). Otherwise one gather pass over the float block serves all four sub-steps,
//        which is also what the SmoothQuant and AWQ references do.
//     b. quantize the sub-step's layers (below), update the block's weights and folded norms;
//     c. after the last sub-step, run the quantized block (with its activation quantization) on X to
//        get the next block's inputs. This is the GPTQ convention for every method: errors propagate and
//        later blocks are calibrated on what they will really see. The AWQ reference instead feeds the
//        FLOAT block's output forward (its scaling is output-preserving; §1.3 table); we chose one
//        convention for all methods so that mixed plans are well defined, and it is the one that lets
//        later layers compensate (GPTQ) and calibrates AWQ's searches on quantized-prefix activations.
//  4. lm_head, when the plan quantizes it (rtn, zeroquant or gptq): from the final norm of X.
//  5. Assemble the quantized model (original tensors, quantized linears as dequantized weights, folded
//     norms, activation quantization) and, with PipelineOptions::evalText, evaluate it: perplexity of
//     the quantized and the original model, and KL divergence / top-1 agreement against the original
//     (eval/Evaluate.h, same chunks).
//
// Methods in a shared-input group (q/k/v, gate/up):
//   * smoothquant: s from max|x| (a) and the column maxima over ALL the group's linears (every consumer
//     of the norm, whatever its method, because folding 1/s into the norm changes all of them), 1/s folded
//     into input_layernorm (q/k/v) or post_attention_layernorm (gate/up) γ, every linear's columns scaled
//     by s; the smoothquant layers are then quantized W8 (the method's grid, default per channel), the
//     others with their own method on W·diag(s) (GPTQ with H' = S⁻¹HS⁻¹, exact). All smoothquant layers of
//     one group must share alpha (Error otherwise). o_proj/down_proj have no norm in front: smoothquant
//     there quantizes W8 without smoothing (as the reference, which smooths only LN→QKV and LN→FC1).
//   * awq: scale search over the group's awq layers (which must share their AWQ parameters; Error
//     otherwise) with the real module as loss (attention with RoPE and causal mask + the float o_proj for
//     q/k/v; the whole SwiGLU MLP for gate/up; the linear alone for o and down), 1/s folded into the
//     norm (q/k/v, gate/up), into the rows of v_proj (o_proj; only without GQA, i.e. heads == kv heads,
//     otherwise o gets no scaling but still the clip search) or of up_proj (down_proj). A fold into an
//     already quantized v/up divides that tensor's per-row scales (exact: codes unchanged); one with row
//     groups (ZeroQuant row_groups) cannot take per-row factors, so the scaling is then skipped. Non-awq
//     layers of the group are scaled by s and quantized with their own method.
//   * smoothquant and awq in one group: Error (two different foldings of one norm).
//   * activation quantization: see quant/ActivationSim.h (a shared input is fake-quantized when any of its
//     consumers quantizes activations).
//
// EfficientQAT (train/EfficientQat.h): its layers are skipped by the sub-steps above; after them the block's
// efficientqat linears (plus the RMSNorm γ in front of them) are trained together by Block-AP against the
// float block's output on the float stack's inputs (so the float stack m_xfp runs whenever the plan has
// efficientqat layers, cumulativeError or not), with the block's other layers fixed as quantized; their
// figures then come from a gather pass over the trained block. After all blocks (and lm_head), E2E-QP
// trains the scales of every efficientqat layer on the LM loss over the calibration sequences, and their
// weight figures are updated (rel_output_error stays the Block-AP one). All efficientqat layers share their
// training parameters; activation-quantizing methods cannot be mixed in, nor awq in an efficientqat block.
// Loss curves: PipelineCallbacks::onTrainingLoss; QuantRun::trainingSummary keeps the before/after losses.
//
// Metrics (LayerResult): weight figures compare the layer's effective weights (smoothing divided back out)
// with the original W; the output figures use the layer's Hessian from its gather pass:
//     rel_output_error = sqrt( tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) ) = ‖WX − ŴX‖_F / ‖WX‖_F  (exact for H = Σ xxᵀ, no
//     damping; a ratio of norms like the cumulative error below; square it for the GPTQ-objective ratio)
//     sqnr_db          = 10·log10(‖W‖² / ‖W − Ŵ‖²)  of the weights (+inf when exact)
// Cumulative error per block (onBlockDone): ‖Y_q − Y_fp‖ / ‖Y_fp‖ over all calibration tokens, where Y_q
// is the residual stream after block b of the quantized stack (fed by its own quantized outputs) and Y_fp
// that of the float stack. Cost: one extra float block pass per block and a second copy of the hidden
// states; PipelineOptions::cumulativeError = false skips it.
//
// Memory: besides X (and its float copy), only the current block's weights (float copies being quantized),
// its Hessians (cols² doubles per input: 0.97 GB for an 11008-wide down_proj) and the AWQ caches are held;
// other blocks are read from the original model when needed. The results hold every QuantizedTensor
// (codes and dequantized floats: 5 bytes per weight); keepDequantized = false drops the floats once a
// block is done (QuantizedTensor::dequantize() recomputes them; writeRunDir needs only the codes).
//
// Threads: OpenMP, PipelineOptions::threads (0 = all) for the calling thread during the run. Progress:
// setTotal(number of blocks [+1 for lm_head]) and advance(1) per block, then the evaluation's own phase;
// messages name the block and sub-step. Cancellable between samples, layers and evaluation chunks
// (throws Cancelled). Callbacks are called from the thread running runQuantization().

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp> // RunProvenance holds a json value

#include "common/Progress.h"
#include "eval/Calibration.h"
#include "eval/Evaluate.h"
#include "model/Model.h"
#include "quant/ActivationSim.h"
#include "quant/Plan.h"
#include "quant/QuantizedTensor.h"
#include "train/EfficientQatOptions.h"

namespace qs::core {

struct PipelineOptions
{
    // Calibration (specs/cli.md quantize --calib/--samples/--seqlen/--seed).
    std::string calibrationText; // required when any quantized layer needs data or metrics (always, in practice)
    int samples = 32;
    int seqLen = 256;
    uint64_t seed = 0;
    CalibrationMode calibrationMode = CalibrationMode::Windows;
    std::string documentSeparator = "<|endoftext|>"; // documents mode

    // Evaluation after quantization (empty evalText: none).
    std::string evalText;
    EvalOptions eval = EvalOptions::defaults(); // ctx 512, llamacpp protocol, all chunks
    bool evalKld = true; // also KLD/top-1 against the original (runs both models chunk by chunk)

    int threads = 0; // 0 = all
    int64_t awqCacheTokens = 8192; // whole calibration sequences cached per AWQ input group
    bool cumulativeError = true; // run the float stack alongside (see the header comment)
    bool keepDequantized = true; // false: QuantizedTensor::dequantized cleared after each block

    static PipelineOptions defaults() { return {}; }
};

struct LayerResult
{
    std::string name; // canonical layer name
    int block = -1;
    TensorRole role = TensorRole::Q;
    std::string method;
    int bits = 0;
    int groupSize = -1;
    double weightMse = 0.0;
    double relOutputError = 0.0; // ‖ΔW X‖/‖W X‖ on the calibration inputs (via H, see above)
    double sqnrDb = 0.0; // of the weights; +inf when exact
    std::optional<double> gptqLoss; // Σ ½e² (GPTQ only)
    std::optional<double> damp; // relative damping that factorized (GPTQ only)
    int deadColumns = 0; // GPTQ: input channels never active in calibration (zeroed)
    double bitsPerWeight = 0.0; // incl. scales and zeros (QuantizedTensor::bitsPerWeight)
    double seconds = 0.0; // this layer's quantization (a shared search/factorization split evenly)
    int activationBits = 0; // > 0: the layer's input is fake-quantized (W8A8 / ZeroQuant)
    std::string inputScales; // "smoothquant" | "awq" | "": the weights were scaled by a folded s
    std::string note; // e.g. "AWQ scaling skipped for o_proj (GQA)"

    // {name, block, role, method, bits, group_size, weight_mse, rel_output_error, sqnr_db (null when
    // infinite), seconds, bits_per_weight, [gptq_loss, damp, dead_columns], [activation_bits],
    // [input_scales], [note]}: the cli.md keys plus extras.
    nlohmann::json toJson() const;
};

struct BlockResult
{
    int block = 0;
    double cumulativeError = 0.0; // NaN when PipelineOptions::cumulativeError is off
    double seconds = 0.0;
};

struct PipelineCallbacks
{
    std::function<void(const LayerResult &)> onLayerDone; // as each layer finishes
    std::function<void(int block, double cumulativeError)> onBlockDone; // NaN without cumulativeError
    std::function<void(const std::string &)> onWarning; // also kept in QuantRun::warnings
    // EfficientQAT training losses as they happen (train/EfficientQatOptions.h): every optimiser step
    // (kind Step) and the full-data loss before and after each phase/block (Initial, Final), for live
    // loss curves. Block-AP events carry the block, E2E-QP events block −1.
    TrainingLossCallback onTrainingLoss;
};

struct ModelFileHash
{
    std::string file; // relative to the model path ("" when the model path is the file itself)
    uint64_t bytes = 0;
    std::string sha256;
};

struct RunProvenance
{
    std::string modelPath; // as given
    std::string modelAbsolutePath; // resolved at run time
    std::string modelFormat;
    std::vector<ModelFileHash> modelFiles;
    // SHA-256 over the lines "<sha256>  <file>\n" of modelFiles in order (sha256sum's output format), so one
    // value identifies the model whatever its file count. Files hashed: the model path when it is a file;
    // for a folder, its regular files ending in .safetensors, .json, .gguf, .bin or .model.
    std::string modelSha256;
    nlohmann::json calibration; // CalibrationSet::toJson(): text path + SHA-256, tokenizer, seed, N, L, ...
    std::string quantscopeVersion;
    std::string date; // UTC, ISO 8601 ("2024-05-01T12:00:00Z")
    int threads = 0;

    nlohmann::json toJson() const;
    static RunProvenance fromJson(const nlohmann::json &j); // throws Error on missing keys
};

// Hashes the model's files as RunProvenance describes (progress: setTotal(bytes), cancellable).
void hashModelFiles(const std::string &modelPath, RunProvenance &provenance, Progress *progress = nullptr);

struct RunEvaluation
{
    std::string textPath;
    std::string textSha256;
    std::string protocol;
    int ctx = 0;
    int64_t chunks = 0;
    int64_t tokensScored = 0;
    double perplexity = 0.0; // quantized model
    double originalPerplexity = 0.0; // the original model, same chunks
    bool hasKld = false;
    double kldMean = 0.0;
    double kldMedian = 0.0;
    double kldP99 = 0.0;
    double kldMax = 0.0;
    double top1Agreement = 0.0;

    nlohmann::json toJson() const;
    static RunEvaluation fromJson(const nlohmann::json &j);
};

struct QuantRun
{
    Plan plan;
    std::vector<PlannedLayer> layersPlanned; // plan.resolve(model)
    RunProvenance provenance;
    std::vector<LayerResult> layers; // in quantization order (model order)
    std::vector<BlockResult> blocks;
    std::vector<QuantizedTensor> tensors; // every quantized layer, same order as layers
    // Float tensors the run changed: RMSNorm γ with folded 1/s ("model.layers.N.input_layernorm", ...),
    // and float (unquantized) weights or biases rescaled by a fold (rows × cols floats, Model layout).
    std::map<std::string, std::vector<float>> modifiedTensors;
    ActivationQuantPlan activationQuant;
    // Over all linear weights of the blocks (plus embed/lm_head when quantized): quantized layers at their
    // bitsPerWeight(), float ones at 16 (their fp16 deployment size, the papers' convention).
    double bitsPerWeight = 0.0;
    std::optional<RunEvaluation> evaluation;
    std::vector<std::string> warnings;
    // EfficientQAT: the Initial and Final loss events of every Block-AP block and of E2E-QP, in order.
    std::vector<TrainingLossEvent> trainingSummary;
    double seconds = 0.0;

    const QuantizedTensor *findTensor(const std::string &name) const;
    const LayerResult *findLayer(const std::string &name) const;
};

// Runs the pipeline. Throws Error (bad plan for this model, calibration text unreadable or too short,
// a method failing on a layer, naming it) or Cancelled.
QuantRun runQuantization(std::shared_ptr<const Model> model, const Plan &plan, const PipelineOptions &options,
    PipelineCallbacks &callbacks, Progress &progress);

// The quantized model of a run in memory: `original` with the quantized linears replaced by their
// dequantized weights, the modified tensors replaced, and the run's activation quantization as the
// model's inputTransform. Shares the original's tensor data for everything else.
std::shared_ptr<Model> quantizedModel(const std::shared_ptr<const Model> &original, const QuantRun &run);

// Evaluates a quantized model against its original as the pipeline does (perplexity of both, and KLD /
// top-1 when withKld). Progress: the evaluation's chunks.
RunEvaluation evaluateRun(const std::shared_ptr<const Model> &quantized, const std::shared_ptr<const Model> &original,
    const std::string &textPath, const EvalOptions &options, bool withKld, int threads, Progress &progress);

} // namespace qs::core
