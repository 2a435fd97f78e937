#pragma once
// One calibration run: tokenize a text with the model's tokenizer, draw samples (seeded windows or whole
// documents), run them through the model and collect activation statistics per linear input.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/Progress.h"
#include "eval/Calibration.h"
#include "model/Model.h"
#include "stats/ActivationStats.h"

namespace qs::core {

struct CalibrationRunOptions
{
    int samples = 128;
    int seqLen = 512;
    uint64_t seed = 0;
    CalibrationMode mode = CalibrationMode::Windows;
    std::string documentSeparator = "<|endoftext|>"; // documents mode; "" splits on blank lines
    ActivationStatsOptions stats = ActivationStatsOptions::defaults();
    int threads = 0; // forward pass threads; 0 = all

    static CalibrationRunOptions defaults() { return {}; }
};

struct CalibrationRunResult
{
    CalibrationSet calibration; // samples and provenance
    std::vector<InputActivationStats> stats;
    double seconds = 0.0;
    std::string modelPath;
};

// Progress: one unit per sample after tokenizing. Throws Error (text too short, unreadable, no tokenizer),
// Cancelled.
CalibrationRunResult runCalibration(const std::shared_ptr<const Model> &model, const std::string &textPath,
                                    const CalibrationRunOptions &options, Progress &progress);

} // namespace qs::core
