#pragma once
// The HDF5 project file (docs/hdf5-project.md): model reference, plan, calibration provenance, per-layer
// statistics and histograms, runs with metrics and evaluations, optionally the quantized tensors.

#include <string>

#include "export/ExportSource.h"

namespace qs::core {

struct ProjectExportOptions
{
    bool includeTensors = true; // codes, scales, zeros, g_idx of the run's quantized layers
};

// `quantscope-cli export MODEL|RUN_DIR --format hdf5`: writes out atomically. Throws Error naming the
// file, or Cancelled; neither leaves anything behind.
ExportSummary exportProjectH5(const ExportSource &source, const ProjectExportOptions &options,
                              const std::string &out, Progress &progress);

} // namespace qs::core
