#pragma once
// The tables of a report comparing quantization runs (docs/reports.md), as plain values, and their two
// text forms: CSV (RFC 4180) and Markdown (GitHub tables). The GUI's File › Export report and
// `quantscope-cli report` both build them from ReportRun values; charts are drawn from the same values
// (ui/report), so a table and the chart beside it always show the same numbers.
//
// Numbers stay numbers in the table: CSV writes them in the shortest form that reads back to the same
// double (std::to_chars), so a spreadsheet or script gets full precision; Markdown rounds them to the
// column's significant digits for reading. A missing value (a layer a run did not quantize, a run without
// evaluation) is an empty cell in both; an infinite SQNR (exact weights) is "inf".

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "quant/Pipeline.h"
#include "quant/Plan.h"

namespace qs::core {

struct RunDirContents;

// One run as a report sees it: a label, where it came from, and its results (no tensor data).
struct ReportRun
{
    std::string name; // label in tables and charts: the RUN_DIR's folder name, or the GUI's run name
    std::string path; // the RUN_DIR; empty for a run that exists only in memory (GUI)
    Plan plan;
    RunProvenance provenance;
    std::vector<LayerResult> layers; // model order
    std::vector<BlockResult> blocks; // cumulative error per block (NaN when not measured)
    double bitsPerWeight = 0.0;
    std::optional<RunEvaluation> evaluation;

    static ReportRun fromRunDir(const RunDirContents &contents); // blocks from run.json's "blocks"
    static ReportRun fromQuantRun(const QuantRun &run, std::string name, std::string path = {});
};

// "rtn 8-bit g128 sym; model.layers.*.mlp.down_proj: gptq 4-bit g32; skip lm_head, model.embed_tokens":
// the default method, every rule (its match and the method, bits and group size it sets), the skip list.
std::string planSummary(const Plan &plan);

struct ReportColumn
{
    std::string name;
    int digits = 0; // significant digits in Markdown for numbers; 0: shortest exact form (counts, bits)
};

using ReportValue = std::variant<std::monostate, std::string, double>; // empty, text, number

struct ReportTable
{
    std::string name; // file stem: "layers", "runs"
    std::string title; // one line, for README.md
    std::vector<ReportColumn> columns;
    std::vector<std::vector<ReportValue>> rows; // each row has columns.size() values
};

// Per layer (rows: every layer any run quantized, in model order; runs of different models append their
// extra layers): "layer", then for every run "<run>: method", "bits", "group", "weight MSE",
// "rel. output error", "SQNR (dB)", "seconds". A run that kept a layer in float has empty cells there.
ReportTable perLayerTable(const std::vector<ReportRun> &runs);

// One row per run: "run", "plan", "bits/weight", "perplexity", "original perplexity", "KLD mean",
// "top-1 agreement", "Pareto front (perplexity)", "Pareto front (KLD)" ("yes"/"no"; empty for a run
// without that evaluation). The fronts are paretoFront() over the runs that have the loss.
ReportTable runSummaryTable(const std::vector<ReportRun> &runs);

enum class ReportLoss : uint8_t { Perplexity, Kld };
// For every run: whether it is on the Pareto front of bits per weight against the loss; nullopt for a run
// without that loss (not evaluated, or no KLD).
std::vector<std::optional<bool>> paretoMembership(const std::vector<ReportRun> &runs, ReportLoss loss);
// The loss of a run, or nullopt (see above).
std::optional<double> reportLoss(const ReportRun &run, ReportLoss loss);

// RFC 4180: a header line, then one line per row, lines ended by CRLF; a field is quoted when it holds a
// comma, a double quote, CR or LF (or starts or ends with a space), with double quotes doubled.
std::string toCsv(const ReportTable &table);
std::string csvField(std::string_view text);

// A GitHub-flavoured Markdown table (header, alignment row: numbers right-aligned, one line per row).
// Cell text is escaped (markdownCell) so names with '|', '*', '_' or '<' stay literal and in their cell.
std::string toMarkdown(const ReportTable &table);
// Backslash-escapes \ ` * _ [ ] < > | and turns CR/LF into spaces (a table row is one line).
std::string markdownCell(std::string_view text);

// How a value is written: CSV (exact) or Markdown (rounded to digits significant digits; 0 = exact).
std::string formatReportValue(const ReportValue &value, int markdownDigits, bool forCsv);

// A file-name-safe form of a label: [A-Za-z0-9._-] kept, runs of anything else become one '-', trimmed;
// "run" when nothing is left. Used for chart file names ("layer-error-<slug>.png").
std::string fileSlug(std::string_view label);

} // namespace qs::core
