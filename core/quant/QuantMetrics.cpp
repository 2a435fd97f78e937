#include "quant/QuantMetrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/Error.h"

namespace qs::core {

LayerError layerError(const float *w, const float *wq, int64_t rows, int64_t cols, const Eigen::MatrixXd *H,
                      int64_t maxRows)
{
    LayerError e;
    const int64_t n = rows * cols;
    if (n <= 0)
        return e;
    double sw = 0.0, sd = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = double(w[i]) - double(wq[i]);
        sw += double(w[i]) * double(w[i]);
        sd += d * d;
    }
    e.weightMse = sd / double(n);
    e.sqnrDb = sd > 0.0 ? 10.0 * std::log10(sw / sd) : std::numeric_limits<double>::infinity();
    if (!H)
        return e;
    if (H->rows() != cols || H->cols() != cols)
        throw Error("layer error: H is " + std::to_string(H->rows()) + " x " + std::to_string(H->cols()) + " for " +
                    std::to_string(cols) + " columns");
    using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const int64_t r = maxRows > 0 ? std::min(rows, maxRows) : rows;
    const Eigen::MatrixXd W = Eigen::Map<const RowMatrixF>(w, r, cols).cast<double>();
    const Eigen::MatrixXd D = W - Eigen::Map<const RowMatrixF>(wq, r, cols).cast<double>();
    e.outputError = (D * (*H)).cwiseProduct(D).sum();
    e.outputEnergy = (W * (*H)).cwiseProduct(W).sum();
    e.relOutputError = e.outputEnergy > 0.0 ? e.outputError / e.outputEnergy : 0.0;
    return e;
}

} // namespace qs::core
