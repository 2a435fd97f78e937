#pragma once
// A trainable Llama decoder block (the same function as ForwardEngine::runBlock: RMSNorm → q/k/v (+bias)
// → rotate-half RoPE → causal GQA attention → o (+bias) → residual, RMSNorm → SwiGLU → down (+bias) →
// residual) with a forward pass that keeps what its backward needs, and the backward pass.
//
// Each of the seven linears has a mode: Fixed (weights constant, no gradient), Float (float weights
// trained), FakeQuant (weights, scales and zeros trained through the STE quantizer: Block-AP) or
// FrozenCodes (integer codes and zeros fixed, scales trained: E2E-QP). prepare() computes the effective
// weights once per optimiser step; backward() accumulates ∂loss/∂(effective weights) of every sample, and
// parameterGradients() turns the sum into gradients of the trained parameters (the quantizer's backward is
// linear in ∂ŵ, so summing first and converting once is exact).

#include <array>
#include <cstdint>
#include <vector>

#include "model/Model.h"
#include "train/FakeQuant.h"
#include "train/TrainOps.h"

namespace qs::core::train {

// Linear slots of a block, in this order.
constexpr int kBlockLinears = 7;
constexpr std::array<TensorRole, kBlockLinears> kBlockRoles
    = { TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::O, TensorRole::Gate, TensorRole::Up, TensorRole::Down };
int blockSlot(TensorRole role); // index in kBlockRoles, −1 for others

struct BlockShape
{
    int64_t hidden = 0;
    int64_t intermediate = 0;
    int heads = 0;
    int kvHeads = 0;
    int headDim = 0;
    double eps = 1e-5;
    std::vector<double> ropeInverseFrequencies; // kernels::ropeInverseFrequencies

    static BlockShape fromHyperParams(const HyperParams &h); // throws Error for unsupported RoPE scaling
    int64_t qDim() const { return int64_t(heads) * headDim; }
    int64_t kvDim() const { return int64_t(kvHeads) * headDim; }
};

enum class LinearMode : uint8_t { Fixed, Float, FakeQuant, FrozenCodes };

template <class S> struct TrainLinear
{
    LinearMode mode = LinearMode::Fixed;
    Mat<S> w;                   // weights (unused for FrozenCodes)
    Vec<S> bias;                // empty: none (never trained)
    GroupQuantizer<S> quant;    // FakeQuant, FrozenCodes
    std::vector<uint8_t> codes; // FrozenCodes
    Mat<S> weff;                // effective weights, set by prepare()

    void prepare();
    bool trained() const { return mode != LinearMode::Fixed; }
};

// Gradients of one block, accumulated over the samples of a step.
template <class S> struct BlockGrads
{
    std::array<Mat<S>, kBlockLinears> dweff;
    Vec<S> dAttnNorm, dMlpNorm;
};

// Gradients of the trained parameters of one linear (empty when not trained in that form).
template <class S> struct LinearParamGrads
{
    Mat<S> dw;
    Vec<S> ds, dz;
};

template <class S> class TrainBlock
{
public:
    struct Cache
    {
        Mat<S> x, a, attn, x1, m, gate, up, act;
        Vec<S> r1, r2;
        std::vector<Mat<S>> probs;
        Mat<S> q, k, v; // after RoPE
        RopeTable<S> rope;
    };

    BlockShape shape;
    std::array<TrainLinear<S>, kBlockLinears> lin;
    Vec<S> attnNorm, mlpNorm;
    bool trainAttnNorm = false, trainMlpNorm = false;

    // Effective weights of every linear (call after each parameter update).
    void prepare();
    // y = block(x); x is rows × hidden. Keeps activations in cache when not null.
    Mat<S> forward(const Mat<S> &x, Cache *cache) const;
    // Accumulates gradients of the trained linears (effective weights) and norms into g; returns ∂/∂x when
    // wantInputGrad (otherwise an empty matrix).
    Mat<S> backward(const Cache &cache, const Mat<S> &dy, BlockGrads<S> &g, bool wantInputGrad) const;

    void zeroGrads(BlockGrads<S> &g) const;
    // ∂loss/∂(trained parameters) of linear `slot` from the accumulated ∂/∂ŵ.
    LinearParamGrads<S> parameterGradients(int slot, const BlockGrads<S> &g) const;
};

} // namespace qs::core::train
