#pragma once
// A report folder (docs/reports.md): which charts it holds, its text files (tables, README.md,
// report.json) and the atomic write of the whole folder. Charts are drawn by ui/report (QCustomPlot);
// the core decides which charts there are and how README.md presents them, and writes the bytes it is
// given, so the CLI and the GUI write the same folder.
//
//   DIR/README.md          summary: provenance of each run, the run table, the charts embedded
//   DIR/report.json        manifest: format, version, options, runs, every file written
//   DIR/charts/<stem>.png|svg|pdf
//   DIR/tables/layers.csv|md, tables/runs.csv|md
//
// Writing is atomic: everything goes into "DIR.tmp-XXXXXX" beside DIR and is renamed onto DIR at the
// end. A previous report at DIR (a folder with a report.json of this format) is replaced only then; any
// other non-empty folder is never touched. Cancellation or an error (disk full, no permission) removes
// the temporary folder: there is either the complete new report or the old state.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/Progress.h"
#include "report/ReportInput.h"

namespace qs::core {

inline constexpr const char *kReportManifestFile = "report.json";
inline constexpr int kReportFormatVersion = 1;

struct ReportOptions
{
    // Chart size in CSS pixels (1/96 inch): the layout size, in which fonts and lines are measured.
    int width = 800;
    int height = 500;
    // Resolution of the PNG files: they have round(width·dpi/96) × round(height·dpi/96) pixels and carry
    // dpi in their pHYs chunk. SVG and PDF are vector, width/96 × height/96 inches.
    int dpi = 150;
    bool png = true;
    bool svg = true;
    bool pdf = false;
    bool csv = true;
    bool markdown = true;

    static ReportOptions defaults() { return {}; }
    std::vector<std::string> chartFormats() const; // "png", "svg", "pdf" as chosen
    // Error naming the bad value: sizes 100..10000, dpi 24..1200, at least one format.
    void validate() const;
    int pixelWidth() const;  // of the PNG files
    int pixelHeight() const;
};

struct ReportChart
{
    enum class Kind : uint8_t { LayerError, LayerErrorComparison, Pareto, Histogram };
    Kind kind = Kind::LayerError;
    std::vector<int> runs; // LayerError: the run; comparison: the runs side by side
    ReportLoss loss = ReportLoss::Perplexity; // Pareto
    int histogram = -1; // Histogram: index into ReportInput::histograms
    std::string stem; // file name without extension, unique in the report
    std::string title; // drawn above the chart and used as the image's alt text
    std::string caption; // a sentence under the chart in README.md
};

// The charts of a report: per-layer error of each run; the two side by side when two runs have them;
// bits per weight against perplexity and against KLD (when at least one run has it); the histograms.
std::vector<ReportChart> planReportCharts(const ReportInput &input);

struct ReportFile
{
    std::string path; // relative to the report folder, '/'-separated: "charts/pareto-perplexity.png"
    std::string bytes;
};

// tables/*.csv|md as chosen, README.md and report.json, for charts rendered in options.chartFormats().
std::vector<ReportFile> reportTextFiles(
    const ReportInput &input, const std::vector<ReportChart> &charts, const ReportOptions &options);

std::string reportReadme(
    const ReportInput &input, const std::vector<ReportChart> &charts, const ReportOptions &options);

// Error naming dir when a report cannot go there: its parent folder is missing, or dir exists and is
// neither a previous report nor an empty folder. writeReportFolder() checks the same; front ends call it
// first so a bad --out fails before any work.
void checkReportTarget(const std::string &dir);

// Writes files (README.md, report.json, charts, tables) as described above. Progress: setTotal(bytes),
// cancellable between files. Throws Error naming dir (and the file and reason: "disk full", "Permission
// denied") or Cancelled; neither leaves anything behind.
void writeReportFolder(const std::string &dir, const std::vector<ReportFile> &files, Progress &progress);

} // namespace qs::core
