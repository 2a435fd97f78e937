#pragma once
// Forward and backward passes of the Llama building blocks, for training (EfficientQAT, issue #7).
// Every op is a template over the scalar type and instantiated for float (training) and double (tests
// hold each backward against central finite differences in float64). Buffers are Eigen row-major
// matrices with one row per token, exactly the layout of ForwardEngine (model/Forward.h); the forward
// ops compute the same functions as model/ForwardKernels.h (RMSNorm, rotate-half RoPE, causal grouped-
// query attention with 1/sqrt(d) scaling, SwiGLU), written plainly rather than tuned.
//
// Conventions: a forward op returns what its backward needs (a cache struct, or the caller keeps the
// inputs); a backward op takes the upstream gradient dy and ADDS parameter gradients into the given
// accumulators (so gradients of several samples sum in the caller's fixed order) while input gradients
// are written (overwritten). None of them threads or allocates more than its outputs; Eigen products
// follow the calling thread's OpenMP thread count (the training drivers run small products on one thread,
// see EfficientQat.h on determinism).

#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace qs::core::train {

template <class S> using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S> using Vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;

// ---- RMSNorm: y[t, i] = g[i] · x[t, i] · r[t],  r[t] = (mean_i x[t, i]² + eps)^(−1/2) ----
// The mean square is accumulated in double (as kernels::rmsNorm). invRms receives r (rows).
template <class S> void rmsNormForward(const Mat<S> &x, const Vec<S> &g, double eps, Mat<S> &y, Vec<S> &invRms);
// dx = r·(g ⊙ dy) − x·r³·⟨g ⊙ dy, x⟩/cols per row; dg (when not null) += Σ_t dy ⊙ x·r.
template <class S>
void rmsNormBackward(const Mat<S> &x, const Vec<S> &g, const Vec<S> &invRms, const Mat<S> &dy, Mat<S> &dx, Vec<S> *dg);

// ---- Linear: y = x·wᵀ + b  (w: out × in, PyTorch layout; b empty = none) ----
template <class S> void linearForward(const Mat<S> &x, const Mat<S> &w, const Vec<S> &b, Mat<S> &y);
// dx (when not null) = dy·w; dw (when not null) += dyᵀ·x; db (when not null) += column sums of dy.
template <class S>
void linearBackward(const Mat<S> &x, const Mat<S> &w, const Mat<S> &dy, Mat<S> *dx, Mat<S> *dw, Vec<S> *db);

// ---- RoPE, Hugging Face rotate-half pairing (j, j + d/2), positions 0 .. rows−1 ----
template <class S> struct RopeTable
{
    int half = 0;
    Mat<S> cos, sin; // rows × half
};
// Angles position·θ_j in double (θ from kernels::ropeInverseFrequencies).
template <class S> RopeTable<S> makeRopeTable(const std::vector<double> &inverseFrequencies, int64_t rows);
// In place on `heads` heads of headDim columns starting at column `firstColumn`.
template <class S> void ropeForward(Mat<S> &x, int64_t firstColumn, int heads, int headDim, const RopeTable<S> &t);
// The transpose of the rotation (angle −θ), in place on the gradient.
template <class S> void ropeBackward(Mat<S> &dx, int64_t firstColumn, int heads, int headDim, const RopeTable<S> &t);

// ---- Causal grouped-query attention ----
// q: rows × heads·d, k, v: rows × kvHeads·d; query head h reads KV head h / (heads / kvHeads).
// out: rows × heads·d; probs[h]: rows × rows softmax weights (zero above the diagonal).
struct AttentionShape
{
    int heads = 0;
    int kvHeads = 0;
    int headDim = 0;
};
template <class S>
void attentionForward(const AttentionShape &shape, const Mat<S> &q, const Mat<S> &k, const Mat<S> &v, Mat<S> &out,
                      std::vector<Mat<S>> &probs);
// dq, dk, dv are overwritten (sized as q, k, v).
template <class S>
void attentionBackward(const AttentionShape &shape, const Mat<S> &q, const Mat<S> &k, const Mat<S> &v,
                       const std::vector<Mat<S>> &probs, const Mat<S> &dout, Mat<S> &dq, Mat<S> &dk, Mat<S> &dv);

// ---- SwiGLU: y = silu(gate) ⊙ up ----
template <class S> void swigluForward(const Mat<S> &gate, const Mat<S> &up, Mat<S> &y);
template <class S>
void swigluBackward(const Mat<S> &gate, const Mat<S> &up, const Mat<S> &dy, Mat<S> &dgate, Mat<S> &dup);

// ---- Losses (returned in double) ----
// Mean squared error over all elements; dy (when not null) += weight · ∂loss/∂y = weight·2(y − t)/numel.
template <class S> double mseLoss(const Mat<S> &y, const Mat<S> &t, Mat<S> *dy, double weight = 1.0);
// Mean cross-entropy of logits row r against targets[r] over the rows whose target is ≥ 0 (log-softmax
// in double, max subtracted); dlogits (when not null) += weight·(softmax − onehot)/scored on those rows.
template <class S>
double crossEntropy(const Mat<S> &logits, const std::vector<int32_t> &targets, Mat<S> *dlogits, double weight = 1.0);

} // namespace qs::core::train
