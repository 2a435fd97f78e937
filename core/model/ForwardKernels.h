#pragma once
// The numerical building blocks of the Llama forward pass (ForwardEngine), exposed so that tests can hold
// each of them against a plain double-precision reference on small random shapes. All buffers are
// row-major float32, one row per token. Kernels that parallelise use OpenMP with the calling thread's
// thread count (ForwardEngine sets it for the duration of a pass); none of them throws.

#include <cstdint>
#include <vector>

#include "model/Model.h"

namespace qs::core::kernels {

// out[t, :] = w ⊙ x[t, :] / sqrt(mean(x[t, :]²) + eps). The mean square is accumulated in double so
// that a hidden size of several thousand does not lose digits. out may equal x.
void rmsNorm(const float *x, const float *w, int64_t rows, int64_t cols, double eps, float *out);

// silu(gate) ⊙ up, reading gate and up from the fused [rows, 2·cols] output of gate_proj|up_proj.
void swiglu(const float *gateUp, int64_t rows, int64_t cols, float *out);

// RoPE inverse frequencies θ_j, j < headDim/2, as the Hugging Face Llama implementation computes them:
// base^(−2j/d), then rope_scaling applied: "linear" divides by factor, "llama3" applies the Llama 3.1
// wavelength-dependent adjustment (low frequencies divided by factor, high ones kept, a smooth blend
// between), "dynamic" (NTK) enlarges the base when seqLen exceeds originalMaxPositions. "yarn" and
// "longrope" throw Error (their attention scaling is not implemented, and silently ignoring it would give
// plausible but wrong numbers).
std::vector<double> ropeInverseFrequencies(const HyperParams &h, int64_t seqLen);

// cos/sin of position·θ_j for positions [firstPosition, firstPosition + count), computed in double and
// stored as float: cos[(p − firstPosition)·half + j].
struct RopeTable
{
    int64_t firstPosition = 0;
    int64_t count = 0;
    int half = 0; // headDim / 2
    std::vector<float> cos;
    std::vector<float> sin;
};
RopeTable makeRopeTable(const std::vector<double> &inverseFrequencies, int64_t firstPosition, int64_t count);

// Rotates `heads` heads of headDim values per row in place, Hugging Face rotate-half pairing (j, j + d/2):
// x'_j = x_j·cos − x_{j+d/2}·sin, x'_{j+d/2} = x_{j+d/2}·cos + x_j·sin. Row t sits at position
// firstPosition + t, which must lie inside the table. rowStride is in floats (≥ heads·headDim).
void applyRope(
    float *x, int64_t rows, int64_t rowStride, int heads, int headDim, int64_t firstPosition, const RopeTable &table);

// Causal grouped-query attention for `rows` queries at positions posOffset .. posOffset+rows−1 over keys
// and values at positions 0 .. posOffset+rows−1 (a KV cache holding earlier positions, or a fresh context
// when posOffset = 0). Query head h reads KV head h / (numHeads / numKvHeads). Scores are float32,
// scaled by 1/sqrt(headDim), softmax subtracts the row maximum. Parallel over (head, block of queries);
// each block only touches the keys its queries can see.
// q: rows × qStride (head h at columns h·headDim); k, v: (posOffset+rows) × kvStride (KV head g at
// g·headDim); out: rows × outStride (head h at h·headDim).
struct AttentionShape
{
    int numHeads = 0;
    int numKvHeads = 0;
    int headDim = 0;
};
void causalAttention(const AttentionShape &shape, const float *q, int64_t qStride, const float *k, const float *v,
    int64_t kvStride, int64_t rows, int64_t posOffset, float *out, int64_t outStride);

} // namespace qs::core::kernels
