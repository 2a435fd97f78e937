#pragma once
// Activation statistics on disk: an HDF5 file that h5py and the GUI read (layout in
// docs/hdf5-activation-stats.md, conventions in specs/formats.md §6).
//
//   /                          attrs format_version (int), created_by (str), content = "quantscope.activation_stats"
//   /calibration               attrs: the scalar provenance entries; dataset provenance_json (str, the full JSON)
//   /activations/<block>/<input>   <block> = "0", "1", ... or "lm_head"; <input> = attn_in, attn_out, mlp_in,
//                              mlp_act, head. Datasets channel_absmax, channel_mean_abs, channel_mean_square,
//                              histogram_counts, histogram_edges, outlier_channels, outlier_token_share and,
//                              when collected, hessian (float64, cols × cols, chunked by rows).
//
// The writer builds the file beside the target under a temporary name and renames it when complete, so a
// reader never sees a half-written file; on any HDF5 failure (or Cancelled) the temporary is removed and
// Error("<path>: ...") is thrown. HDF5's own error printing is silenced for the duration of a call; its
// innermost message is appended to ours instead.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "stats/ActivationStats.h"

namespace qs::core {

class Progress;

constexpr int kActivationStatsFormatVersion = 1;
// Reader limit on an input's cols (far above any model's width); with it and the histogram's bin limit
// (kMaxActivationHistogramBins) a malformed file cannot make the reader allocate more than those bound.
constexpr int64_t kActivationStatsMaxCols = int64_t(1) << 24;

struct ActivationStatsFile
{
    int formatVersion = 0;
    std::string createdBy;
    std::string calibrationJson; // /calibration/provenance_json as written (parse with nlohmann::json::parse)
    std::vector<InputActivationStats> inputs; // in file order: blocks ascending, lm_head last; inputs in enum order
};

// Writes stats (any order; sorted in the file) and the calibration provenance (typically
// CalibrationSet::toJson(), to which the caller may add e.g. the model path and hash). Progress: setTotal
// (number of inputs), advance(1) per input; Cancelled between inputs.
void writeActivationStatsH5(const std::string &path, const std::vector<InputActivationStats> &stats,
    const nlohmann::json &calibration, Progress *progress = nullptr);

// Reads a file written by writeActivationStatsH5. Hessians are large: with loadHessians false they are
// skipped (hasHessian still tells which inputs have one; readActivationHessian loads one on demand).
// Throws Error("<path>: ...") for a missing file, a newer format_version, a missing or misshapen dataset, or
// values outside what the format allows (block, cols, channel indices, sizes beyond the limits above).
ActivationStatsFile readActivationStatsH5(const std::string &path, bool loadHessians = true);

// One Hessian (cols × cols). Throws Error naming the path when that input has none.
Eigen::MatrixXd readActivationHessian(const std::string &path, int block, LinearInput input);

// "/activations/3/attn_in", "/activations/lm_head/head".
std::string activationGroupPath(int block, LinearInput input);

} // namespace qs::core
