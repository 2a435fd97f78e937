#pragma once
// Per-layer error figures of a quantized weight against the original (the run's per-layer metrics:
// weight_mse, rel_output_error, sqnr_db). Compare like with like: for SmoothQuant/AWQ results pass
// QuantizedTensor::effectiveWeights() (the smoothing divided back out), not dequantized.

#include <cstdint>

#include <Eigen/Core>

namespace qs::core {

struct LayerError
{
    double weightMse = 0.0;      // mean (w − ŵ)²
    double sqnrDb = 0.0;         // 10·log10(Σw² / Σ(w − ŵ)²); +inf when exact
    double outputError = 0.0;    // tr(ΔW H ΔWᵀ) = ‖ΔW X‖² when H = XᵀX (0 without H)
    double outputEnergy = 0.0;   // tr(W H Wᵀ) = ‖W X‖²
    double relOutputError = 0.0; // outputError / outputEnergy
};

// w, wq: row-major rows × cols. H (cols × cols) may be null: output figures stay 0. maxRows > 0 limits
// the output figures to the first maxRows rows (they cost rows·cols² flops).
LayerError layerError(const float *w, const float *wq, int64_t rows, int64_t cols, const Eigen::MatrixXd *H = nullptr,
                      int64_t maxRows = 0);

} // namespace qs::core
