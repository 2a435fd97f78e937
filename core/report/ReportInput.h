#pragma once
// What a report is made of before anything is drawn or written: the runs (ReportRun), the weight
// statistics of the layers whose histograms it shows, and notes about what could not be included.
// Pure data; loading it is the slow part (reading RUN_DIRs, opening the original model, two statistics
// passes per histogram layer), so front ends run it as a job (GUI) or with a console progress (CLI).

#include <string>
#include <vector>

#include "common/Progress.h"
#include "model/Model.h"
#include "report/ReportTables.h"
#include "stats/WeightStats.h"

namespace qs::core {

struct ReportInput
{
    std::vector<ReportRun> runs;
    std::vector<WeightStats> histograms; // original weights of the histogram layers, in chosen order
    std::string histogramModel; // the model path the histograms were computed from ("" when none)
    std::vector<std::string> notes; // shown in README.md: skipped histograms, mixed evaluation settings
};

struct ReportInputOptions
{
    // Layers whose original weight histogram (with outlier bins) the report shows. Empty: the
    // autoHistograms layers with the highest relative output error in any run.
    std::vector<std::string> histogramLayers;
    int autoHistograms = 3;
    StatsOptions stats = StatsOptions::defaults(); // bins and the outlier threshold k·σ

    static ReportInputOptions defaults() { return {}; }
};

// The count layers with the highest rel. output error over all runs (each layer once, worst first).
std::vector<std::string> pickHistogramLayers(const std::vector<ReportRun> &runs, int count);

// The input of a report: `runs` (in-memory runs, e.g. the GUI's), then every RUN_DIR read (Error
// "<RUN_DIR>: ..." for one that is missing or malformed, before anything else is done); labels made
// unique; comparability notes; then histograms (addHistograms) from `model` when given, else from the
// first run's original model when it can be found (a note otherwise). Progress: one unit per RUN_DIR,
// then the statistics; cancellable between runs and statistics chunks.
ReportInput loadReportInput(std::vector<ReportRun> runs, const std::vector<std::string> &runDirs, const Model *model,
    const ReportInputOptions &options, Progress &progress);

// Computes the statistics of the histogram layers of `model` (the original model of input.runs) into
// input.histograms. A named layer the model lacks is Error (the user asked for it); an automatic one
// is skipped with a note.
void addHistograms(ReportInput &input, const Model &model, const ReportInputOptions &options, Progress &progress);

// Notes for runs that are not comparable on one chart: different models (SHA-256) or different
// evaluation settings (text, protocol, context, chunks). Called by loadReportInput; the GUI calls it too.
void addComparabilityNotes(ReportInput &input);

} // namespace qs::core
