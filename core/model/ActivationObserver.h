#pragma once
// Hooks into a forward pass (issue: model execution). The forward pass calls an observer with the input
// of every linear layer and the output of every block, a chunk of tokens at a time, so accumulators
// (activation histograms, per-channel absmax / mean square, GPTQ Hessians, outlier channels) can stream
// without keeping activations. Calls for one pass come from the thread that runs the forward pass, in
// model order; the observer may use OpenMP internally.

#include <cstdint>
#include <vector>

#include "model/Model.h"

namespace qs::core {

// Linear layers that read the same input share it: q/k/v read the attention norm's output, gate/up read
// the MLP norm's output. o_proj reads the attention output; down_proj reads silu(gate)·up; lm_head reads
// the final norm's output.
enum class LinearInput : uint8_t { AttnIn /*q,k,v*/, AttnOut /*o*/, MlpIn /*gate,up*/, MlpAct /*down*/, Head /*lm_head*/ };

const char *linearInputName(LinearInput in); // "attn_in", "attn_out", "mlp_in", "mlp_act", "head"
LinearInput linearInputOf(TensorRole role);  // Q/K/V -> AttnIn, O -> AttnOut, Gate/Up -> MlpIn, Down -> MlpAct, LmHead -> Head
// The inverse: the roles that read an input, in block order (AttnIn -> Q, K, V; Head -> LmHead).
const std::vector<TensorRole> &rolesReading(LinearInput in);

class ActivationObserver
{
public:
    virtual ~ActivationObserver() = default;

    // x: tokens × cols, row-major (one row per token). block = -1 for the lm_head input.
    virtual void onLinearInput(int block, LinearInput input, const float *x, int64_t tokens, int64_t cols) = 0;
    // y: tokens × hidden, the residual stream after the block.
    virtual void onBlockOutput(int block, const float *y, int64_t tokens, int64_t hidden)
    {
        (void)block;
        (void)y;
        (void)tokens;
        (void)hidden;
    }
    // Whether the forward pass needs to call onLinearInput for this block at all (lets callers observe
    // only a few blocks cheaply).
    virtual bool wantsBlock(int block) const
    {
        (void)block;
        return true;
    }
};

} // namespace qs::core
