#pragma once
// EfficientQAT on CPU (Chen et al. 2024; specs/algorithms.md §7): Block-AP then E2E-QP.
//
// Block-AP (runBlockAp): for one block, the linears quantized by EfficientQAT are wrapped in the STE
// fake-quantizer (train/FakeQuant.h, min–max initialisation) and trained together with their scales and
// zeros and the RMSNorm γ in front of them, to minimise MSE(QBlock(x_q), FPBlock(x_fp)): x_q are the
// outputs of the already-quantized earlier blocks, the targets the float block's outputs on the float
// stack's inputs (the caller computes them). AdamW, lr for W/γ and for s/z, cosine to lr/20, batches of
// whole sequences (gradients of a batch summed in sample order), sample order shuffled per epoch from the
// seed. Other linears of the block stay fixed at the weights given (e.g. already GPTQ-quantized).
// Afterwards W is baked: codes = clamp(⌊W/s⌉ + ⌊z⌉), zero points ROUNDED TO INTEGERS (the forward pass
// only ever used ⌊z⌉, so nothing changes; ZeroPointKind::Integer, 2.28 bpw at w2g64 as the paper), and
// every QuantizedTensor's dequantized values are exactly dequantizeCode(code, scale, zero) = what the last
// forward pass used. Zero epochs give exactly RTN on grid minmax_awq (sym_gptq when symmetric).
//
// E2E-QP (runE2eQp): the whole model (embedding, every block, final norm, LM head, next-token cross-
// entropy over the calibration sequences) with the EfficientQAT layers as ŵ = (q − z)·s, codes and zeros
// frozen, only s trained (one per group), AdamW with warm-up + cosine and global gradient-norm clipping.
// All other tensors are fixed at the values of the model given (the quantized model so far).
//
// Memory: Block-AP keeps one sample's block activations (attention probabilities heads × n² included) at a
// time plus the calibration inputs and targets. E2E-QP keeps every block's activations of ONE sequence at
// a time (≈ layers × n × (8·hidden + 4·intermediate + heads·n) floats, plus n × vocab logits); fine for the
// small models this CPU trainer is meant for (for a 7B model at n = 2048 it would be ~30 GB: use the GPU
// reference there).
//
// Determinism: fixed reduction order everywhere (samples in order within a batch, sums in loops of fixed
// order). Eigen products whose size is below ~16M multiply-adds run on one thread (all of them for the test
// models), so results are bit-identical for a given seed whatever the thread count; larger products
// follow the calling thread's OpenMP count and can then differ in the last bits between thread counts.
//
// Cancellation: Progress::throwIfCancelled() before every sample of every step. Progress units are the
// caller's (the pipeline counts blocks); messages name the phase, block, epoch and loss.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/Progress.h"
#include "model/Model.h"
#include "quant/QuantizedTensor.h"
#include "train/EfficientQatOptions.h"
#include "train/TrainBlock.h"

namespace qs::core::train {

struct BlockApLinear
{
    std::string name;          // canonical layer name
    std::vector<float> weight; // rows × cols: the start value (float weights for quantized ones)
    std::vector<float> bias;   // empty: none
    int64_t rows = 0, cols = 0;
    bool quantize = false;     // trained by Block-AP, returned as a QuantizedTensor
    int bits = 2;
    int groupSize = 64;
    bool symmetric = false;
};

struct BlockApProblem
{
    int block = 0;
    BlockShape shape;
    std::array<BlockApLinear, kBlockLinears> linears; // q, k, v, o, gate, up, down
    std::vector<float> attnNorm, mlpNorm;
    bool trainAttnNorm = false, trainMlpNorm = false;
    const std::vector<std::vector<float>> *inputs = nullptr;  // x_q per sample (len × hidden)
    const std::vector<std::vector<float>> *targets = nullptr; // the float block's outputs per sample
    const std::vector<int64_t> *lengths = nullptr;
};

struct BlockApResult
{
    std::vector<QuantizedTensor> tensors; // the quantized linears, in slot order
    std::vector<int> slots;               // their slots (index in kBlockRoles)
    std::vector<float> attnNorm, mlpNorm; // after training (unchanged when not trained)
    double initialLoss = 0.0;             // RTN-initialised block, all samples
    double finalLoss = 0.0;               // baked block, all samples
    std::vector<double> stepLosses;
    int steps = 0;
};

// Throws Error for inconsistent shapes, Cancelled.
BlockApResult runBlockAp(const BlockApProblem &problem, const EfficientQatOptions &options,
                         const TrainingLossCallback &onLoss, Progress &progress);

struct E2eQpProblem
{
    std::shared_ptr<const Model> model;     // every tensor at its current (quantized) value
    std::vector<QuantizedTensor *> tensors; // block linears whose scales are trained (updated in place)
    const std::vector<std::vector<int32_t>> *tokens = nullptr; // calibration sequences
};

struct E2eQpResult
{
    double initialLoss = 0.0; // mean next-token cross-entropy over all sequences before training
    double finalLoss = 0.0;   // after
    std::vector<double> stepLosses;
    int steps = 0;
};

// Throws Error (a model with an activation transform, a tensor that is not a block linear or whose layout
// the quantizer cannot represent), Cancelled. On success the tensors' scales and dequantized values
// are updated (codes and zeros unchanged; validate() holds).
E2eQpResult runE2eQp(const E2eQpProblem &problem, const EfficientQatOptions &options,
                     const TrainingLossCallback &onLoss, Progress &progress);

} // namespace qs::core::train
