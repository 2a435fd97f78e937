#pragma once
// The learnable group quantizer of EfficientQAT (specs/algorithms.md §7.1, §7.2) and AdamW.
//
// One scale s and zero point z per (row, group of groupSize input columns), row-major [row·numGroups + k].
// Block-AP fake quantization (straight-through estimator, LSQ-style gradients, as the reference):
//     s' = clamp(s, 1e-4, 1e4)              ordinary clamp: no gradient to s outside the range
//     z' = ⌊clamp(z, 0, qmax)⌉              STE clamp and STE round: ∂z'/∂z = 1
//     q  = clamp(⌊w/s'⌉ + z', 0, qmax)      STE round; the clamp is ordinary
//     ŵ  = (q − z')·s'
// which gives, per element, in range (0 ≤ ⌊w/s'⌉ + z' ≤ qmax):  ∂ŵ/∂w = 1, ∂ŵ/∂s = ⌊w/s'⌉ − w/s', ∂ŵ/∂z = 0;
// clamped to c ∈ {0, qmax}:                                      ∂ŵ/∂w = 0, ∂ŵ/∂s = c − z',        ∂ŵ/∂z = −s'.
// Symmetric quantizers keep z fixed at 2^(b−1) (grid sym_gptq) and train s only.
//
// E2E-QP (dequant only, codes frozen): ŵ = (q − z')·s', ∂ŵ/∂s = q − z' (exact, no STE).
//
// Initialisation (min–max, the EfficientQAT variant of §1.1): asymmetric s = max(max − min, 1e-5)/qmax,
// z = ⌊−min/s⌉ (clamped where used); symmetric s = 2·absmax/qmax (absmax 0 → 1). With s inside the clamp
// range (always, for real weights) the codes and dequantized values are then exactly those of
// quantizeRtn with grid minmax_awq (asymmetric) or sym_gptq (symmetric).

#include <cstdint>
#include <string>
#include <vector>

#include "quant/QuantizedTensor.h"
#include "train/TrainOps.h"

namespace qs::core::train {

constexpr double kMinScale = 1e-4;
constexpr double kMaxScale = 1e4;

template <class S> class GroupQuantizer
{
public:
    GroupQuantizer() = default;
    // groupSize −1: one group per row.
    GroupQuantizer(int64_t rows, int64_t cols, int bits, int groupSize, bool symmetric);

    int64_t rows() const { return m_rows; }
    int64_t cols() const { return m_cols; }
    int bits() const { return m_bits; }
    int qmax() const { return m_qmax; }
    int groupSize() const { return m_groupSize; }
    bool symmetric() const { return m_symmetric; }
    int numGroups() const { return m_numGroups; }
    int groupOf(int64_t col) const { return m_groupSize > 0 ? int(col / m_groupSize) : 0; }

    // Min–max initialisation from w (rows × cols).
    void init(const Mat<S> &w);

    // The values the forward pass uses for one group.
    S effectiveScale(int64_t row, int group) const;
    S effectiveZero(int64_t row, int group) const;

    // Block-AP: ŵ = fake-quant(w).
    void fakeQuant(const Mat<S> &w, Mat<S> &what) const;
    // Block-AP backward from dŵ: dw (overwritten), ds and dz (numGroups·rows, overwritten; dz stays 0
    // for symmetric quantizers).
    void fakeQuantBackward(const Mat<S> &w, const Mat<S> &dwhat, Mat<S> &dw, Vec<S> &ds, Vec<S> &dz) const;
    // Integer codes of w (the q above), rows × cols.
    std::vector<uint8_t> codes(const Mat<S> &w) const;

    // E2E-QP: ŵ = (q − z')·s' from frozen codes; backward ds = Σ_group dŵ·(q − z') (zero where s is clamped).
    void dequantize(const std::vector<uint8_t> &codes, Mat<S> &what) const;
    void dequantizeBackward(const std::vector<uint8_t> &codes, const Mat<S> &dwhat, Vec<S> &ds) const;

    // The result type of the quantization engine: codes of w, effective scales and (integer) zeros,
    // natural g_idx, dequantized exactly as dequantizeCode. Grid minmax_awq (asymmetric) or sym_gptq.
    QuantizedTensor toQuantized(const Mat<S> &w, const std::string &name) const;
    // Takes scales and zeros from a QuantizedTensor with the same shape and group layout (E2E-QP start).
    void fromQuantized(const QuantizedTensor &t);

    Vec<S> scale; // raw (trainable) values, rows·numGroups
    Vec<S> zero;

private:
    int64_t m_rows = 0, m_cols = 0;
    int m_bits = 0, m_qmax = 0, m_groupSize = -1, m_numGroups = 1;
    bool m_symmetric = false;
};

// ---- AdamW (PyTorch torch.optim.AdamW semantics, bias-corrected moments) ----
//   p ← p − lr·wd·p;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
//   p ← p − lr·(m/(1 − β1^t)) / (sqrt(v/(1 − β2^t)) + eps)
struct AdamWOptions
{
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weightDecay = 0.0;
};

template <class S> struct AdamWState
{
    std::vector<double> m, v;
    int64_t step = 0;
};

// One update of n parameters with learning rate lr (moments kept in double).
template <class S>
void adamwStep(S *param, const S *grad, int64_t n, AdamWState<S> &state, const AdamWOptions &options, double lr);

// Learning-rate schedules. Cosine from lr to lrMin over totalSteps (step 0 gives lr); with warm-up, lr
// rises linearly over the first warmupSteps (step 0 gives lr/warmupSteps) and then follows the cosine.
double cosineLr(double lr, double lrMin, int64_t step, int64_t totalSteps, int64_t warmupSteps = 0);

} // namespace qs::core::train
