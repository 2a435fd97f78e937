#pragma once
// GPTQ for one linear layer (algorithms.md §3.3): quantize the columns of W one at a time in a fixed
// order, spreading each column's rounding error over the not-yet-quantized columns with the upper
// Cholesky factor U of the damped inverse Hessian, in blocks of B columns with one GEMM per block.
//
// Conventions (each one is a choice the spec leaves open; tests pin them down):
// * H is Σ x xᵀ over calibration tokens up to any positive factor (2XXᵀ, a mean, a sum — §3.5: Q does not
//   change, only the reported loss scales). It is taken in double.
// * Dead columns: H[j, j] == 0 exactly → H[j, j] := 1 and W[:, j] := 0 (the column quantizes to 0).
//   Their count is reported (the pipeline logs it: harmless on the calibration data, risky outside it).
// * Damping is relative: λ = percDamp · mean(diag H) (after the dead-column fix), H_λ = H + λI.
//   The factorization is done in double. It counts as failed when Eigen's LLT reports failure, when a
//   pivot² falls below 1e-12 · max diag(H_λ) (numerically singular) or when U is not finite; then
//   percDamp grows by dampIncrement (GPTQModel's auto-increment, 0.0025) and the factorization is
//   retried while percDamp ≤ maxPercDamp (1.0). The damping finally used is recorded in the result. There
//   is never a silent fallback to RTN: if no damping works, Error names the layer.
// * U is computed as the inverse of the reversed Cholesky factor of H_λ: with J the reversal
//   permutation, chol(J H_λ J) = L' gives H_λ⁻¹ = UᵀU with U = J L'⁻¹ J. This is the same unique factor
//   as chol_upper(L⁻ᵀL⁻¹) of §3.3 with one factorization instead of two and no explicit inverse (tests
//   check both agree: gptqInverseFactorReference()).
// * Group parameters, "always fresh": a group's (scale, zero) come from the group's weights as they are
//   when its first column is reached, with every update from earlier columns applied — including the
//   pending lazy-batch updates when the group runs past the current block. Q therefore does not depend on
//   the block size B for any B and g (up to floating-point summation order). The reference instead reads
//   a group that starts inside a block from the global W, which lacks that block's pending updates, so
//   it equals this convention only when every group start is a block start (g a multiple of B, e.g.
//   g = B = 128); compare with reference goldens in that setting.
//   groupSize −1: one parameter set per row from the initial (dead-zeroed) W, as the reference.
// * Static groups: every group's parameters are computed up front on the original (dead-zeroed) W in
//   natural column order, so g_idx stays c / g even with act-order (and the grid equals RTN's).
// * Act-order: columns processed by diag(H) descending (stable sort, so ties keep column order); without
//   static groups groups are formed in processing order and gIdx[c] = (position of c) / g.
//   GGUF grids need natural-order blocks: with them act-order requires static groups (Error otherwise).
// * Precision: W, the error block and U are float (fast GEMM) unless doublePrecision is set; grid
//   parameters and codes are always computed from float values. Factorization is always double.
// * Loss: Σ ½ e² over all rows and columns, e = (w − q)/U_jj, accumulated in double. It equals
//   ½ tr((W − Q) H_λ (W − Q)ᵀ) exactly in exact arithmetic (§3.6 #1).

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "common/Progress.h"
#include "quant/QuantizedTensor.h"
#include "quant/Rtn.h"

namespace qs::core {

struct GptqOptions
{
    QuantSpec spec;                // grid, bits, groupSize (−1 or > 0; per tensor is not supported)
    double percDamp = 0.01;        // λ = percDamp · mean(diag H)
    double dampIncrement = 0.0025; // added to percDamp after a failed factorization
    double maxPercDamp = 1.0;      // give up (Error) once percDamp would exceed this
    int blockSize = 128;           // B, columns per lazy batch
    bool actOrder = false;
    bool staticGroups = false;
    bool doublePrecision = false;  // run W/E/U in double (tests of exact identities; ~2× slower)

    static GptqOptions defaults() { return {}; }
};

// Everything that depends only on H (and the damping/act-order options): shared by the linears that read
// the same input (q/k/v, gate/up), so the factorization runs once for all of them.
struct GptqHessian
{
    int64_t cols = 0;
    std::vector<int32_t> perm;  // processing order: perm[j] = original column processed j-th
    std::vector<uint8_t> dead;  // per original column: 1 when H[c, c] was 0
    int deadColumns = 0;
    double meanDiag = 0.0;      // mean(diag H) after the dead-column fix
    double percDampUsed = 0.0;  // the relative damping that factorized
    double lambda = 0.0;        // the absolute λ added to the diagonal
    int dampRetries = 0;        // failed factorizations before success
    bool actOrder = false;
    bool doublePrecision = false;
    Eigen::MatrixXf uFloat;     // upper factor of H_λ⁻¹ in processing order (one of the two is filled)
    Eigen::MatrixXd uDouble;
    double prepareSeconds = 0.0;
};

struct GptqResult
{
    QuantizedTensor tensor;
    double loss = 0.0;          // Σ ½ e² (in the units of H)
    double percDampUsed = 0.0;
    double lambda = 0.0;
    int dampRetries = 0;
    int deadColumns = 0;
    std::vector<int32_t> perm;  // processing order (identity without act-order)
    double seconds = 0.0;       // quantization (excluding a shared prepare step)
};

// Validates H (square, cols × cols, finite, non-negative diagonal), applies the dead-column fix, the
// act-order permutation and damping, and factorizes with retries. Throws Error naming `layer`.
GptqHessian prepareGptqHessian(const Eigen::MatrixXd &H, const GptqOptions &options, const std::string &layer = {});

// Quantizes W (row-major rows × cols) with a prepared Hessian. options must match the ones given to
// prepareGptqHessian for actOrder and doublePrecision (Error otherwise). Checks cancellation between
// column blocks and advances progress by one per block (setTotal is left to the caller).
GptqResult quantizeGptq(const WeightView &w, const GptqHessian &hessian, const GptqOptions &options,
                        Progress &progress, const std::string &layer = {});

// Both steps in one call.
GptqResult quantizeGptq(const WeightView &w, const Eigen::MatrixXd &H, const GptqOptions &options,
                        Progress &progress, const std::string &layer = {});

// The literal §3.3 recipe for the inverse factor: L = chol(H), H⁻¹ = L⁻ᵀL⁻¹, U = chol_upper(H⁻¹), in
// double. Slow (explicit inverse); for tests that check the fast path. Returns false when a factorization
// fails.
bool gptqInverseFactorReference(const Eigen::MatrixXd &hDamped, Eigen::MatrixXd &u);

// The fast path on its own (used by prepareGptqHessian): U with H⁻¹ = UᵀU, or false on failure.
bool gptqInverseFactor(const Eigen::MatrixXd &hDamped, Eigen::MatrixXd &u);

} // namespace qs::core
