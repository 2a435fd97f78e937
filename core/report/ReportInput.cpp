#include "report/ReportInput.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "quant/RunDir.h"

namespace qs::core {

namespace fs = std::filesystem;

std::vector<std::string> pickHistogramLayers(const std::vector<ReportRun> &runs, int count)
{
    std::map<std::string, double> worst;
    std::vector<std::string> order; // first appearance, for stable ties
    for (const ReportRun &r : runs)
        for (const LayerResult &l : r.layers) {
            const double e = std::isfinite(l.relOutputError) ? l.relOutputError : 0.0;
            const auto [it, inserted] = worst.emplace(l.name, e);
            if (inserted)
                order.push_back(l.name);
            else
                it->second = std::max(it->second, e);
        }
    std::stable_sort(order.begin(), order.end(), [&](const std::string &a, const std::string &b) {
        return worst[a] > worst[b];
    });
    if (count >= 0 && order.size() > size_t(count))
        order.resize(size_t(count));
    return order;
}

namespace {

// Where a run's original model is, as openRunDirModel looks for it: the absolute path recorded, the path
// as given, or relative to the run directory or its parent. Empty when none exists.
std::string locateOriginal(const ReportRun &run)
{
    const RunProvenance &p = run.provenance;
    std::vector<fs::path> candidates;
    if (!p.modelAbsolutePath.empty())
        candidates.emplace_back(p.modelAbsolutePath);
    if (!p.modelPath.empty()) {
        candidates.emplace_back(p.modelPath);
        if (fs::path(p.modelPath).is_relative() && !run.path.empty()) {
            candidates.push_back(fs::path(run.path) / p.modelPath);
            candidates.push_back(fs::path(run.path).parent_path() / p.modelPath);
        }
    }
    std::error_code ec;
    for (const fs::path &c : candidates)
        if (fs::exists(c, ec))
            return c.string();
    return {};
}

} // namespace

void addHistograms(ReportInput &input, const Model &model, const ReportInputOptions &options, Progress &progress)
{
    const bool automatic = options.histogramLayers.empty();
    const std::vector<std::string> names
        = automatic ? pickHistogramLayers(input.runs, options.autoHistograms) : options.histogramLayers;
    input.histograms.clear();
    input.histogramModel = model.path;
    for (const std::string &name : names) {
        const Tensor *tensor = nullptr;
        for (const Tensor &t : model.tensors)
            if (t.name == name)
                tensor = &t;
        if (!tensor) {
            if (!automatic)
                fail(model.path, "no layer named '" + name + "' for a weight histogram");
            input.notes.push_back("No weight histogram of " + name + ": the model " + model.path + " has no such layer.");
            continue;
        }
        progress.message("statistics of " + name);
        input.histograms.push_back(computeWeightStats(model, *tensor, options.stats, progress));
    }
}

void addComparabilityNotes(ReportInput &input)
{
    const std::vector<ReportRun> &runs = input.runs;
    for (size_t i = 1; i < runs.size(); ++i)
        if (runs[i].provenance.modelSha256 != runs[0].provenance.modelSha256) {
            input.notes.push_back("The runs quantize different models (" + runs[0].name + " and " + runs[i].name
                + " differ in model SHA-256); their numbers compare the models as well as the quantizations.");
            break;
        }
    const RunEvaluation *first = nullptr;
    const ReportRun *firstRun = nullptr;
    for (const ReportRun &r : runs) {
        if (!r.evaluation)
            continue;
        const RunEvaluation &e = *r.evaluation;
        if (!first) {
            first = &e;
            firstRun = &r;
            continue;
        }
        if (e.textSha256 != first->textSha256 || e.protocol != first->protocol || e.ctx != first->ctx
            || e.chunks != first->chunks) {
            input.notes.push_back("The runs were evaluated differently (" + firstRun->name + ": " + first->protocol
                + ", ctx " + std::to_string(first->ctx) + ", " + std::to_string(first->chunks) + " chunks; " + r.name
                + ": " + e.protocol + ", ctx " + std::to_string(e.ctx) + ", " + std::to_string(e.chunks)
                + " chunks, or another text): their perplexity and KLD are not comparable.");
            break;
        }
    }
}

ReportInput loadReportInput(std::vector<ReportRun> runs, const std::vector<std::string> &runDirs, const Model *model,
    const ReportInputOptions &options, Progress &progress)
{
    if (runs.empty() && runDirs.empty())
        throw Error("report: no runs to report on");
    ReportInput input;
    input.runs = std::move(runs);
    progress.setTotal(double(runDirs.size()));
    for (const std::string &dir : runDirs) {
        progress.throwIfCancelled();
        progress.message("reading " + dir);
        input.runs.push_back(ReportRun::fromRunDir(readRunDir(dir)));
        progress.advance(1);
    }
    // Two runs with the same label (RUN_DIRs "a/run" and "b/run") get distinct ones.
    std::map<std::string, int> seen;
    for (ReportRun &r : input.runs)
        if (const int n = ++seen[r.name]; n > 1)
            r.name += " (" + std::to_string(n) + ")";
    addComparabilityNotes(input);

    const bool wanted = !options.histogramLayers.empty() || options.autoHistograms > 0;
    if (!wanted)
        return input;
    if (model) {
        addHistograms(input, *model, options, progress);
        return input;
    }
    const ReportRun &first = input.runs.front();
    const std::string original = locateOriginal(first);
    if (original.empty()) {
        if (!options.histogramLayers.empty())
            fail(first.path.empty() ? first.name : first.path,
                "the original model " + first.provenance.modelPath
                    + " is missing, so there are no weights for the histograms asked for");
        input.notes.push_back("No weight histograms: the original model " + first.provenance.modelPath + " of "
            + first.name + " was not found.");
        return input;
    }
    progress.message("opening " + original);
    const std::unique_ptr<Model> opened = openModel(original);
    addHistograms(input, *opened, options, progress);
    return input;
}

} // namespace qs::core
