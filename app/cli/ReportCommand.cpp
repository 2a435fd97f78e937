// quantscope-cli report RUN_DIR [RUN_DIR...] --out DIR: charts and tables comparing runs (specs/cli.md,
// docs/reports.md). Charts are drawn with the GUI's plot classes (qs_ui), so this is the one command that
// starts Qt: a QApplication on the offscreen platform when there is no display, created only here and
// only when charts are asked for, so every other command stays free of Qt at run time.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "Commands.h"
#include "common/Error.h"
#include "report/ReportFolder.h"
#include "report/ReportInput.h"

#ifdef QS_CLI_WITH_CHARTS
#include <QApplication>

#include "report/ReportWriter.h"
#endif

namespace qs::cli {

namespace {

std::vector<std::string> splitList(const std::string &text)
{
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.push_back(item);
    return out;
}

core::ReportOptions reportOptions(const Args &args)
{
    core::ReportOptions o;
    if (args.has("formats")) {
        o.png = o.svg = o.pdf = o.csv = o.markdown = false;
        for (const std::string &f : splitList(args.value("formats"))) {
            if (f == "png")
                o.png = true;
            else if (f == "svg")
                o.svg = true;
            else if (f == "pdf")
                o.pdf = true;
            else if (f == "csv")
                o.csv = true;
            else if (f == "md" || f == "markdown")
                o.markdown = true;
            else
                throw UsageError("report: --formats: '" + f + "' is not one of png, svg, pdf, csv, md");
        }
    }
    if (args.has("pdf"))
        o.pdf = true;
    o.width = args.intValue("width", o.width, 100, 10000);
    o.height = args.intValue("height", o.height, 100, 10000);
    o.dpi = args.intValue("dpi", o.dpi, 24, 1200);
    try {
        o.validate();
    } catch (const core::Error &e) {
        throw UsageError(std::string(e.what()) + " (--formats)");
    }
    return o;
}

#ifdef QS_CLI_WITH_CHARTS
// The QApplication for drawing: offscreen unless a display is there (set before Qt reads it).
std::unique_ptr<QApplication> startQt()
{
    if (!std::getenv("QT_QPA_PLATFORM") && !std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY"))
        setenv("QT_QPA_PLATFORM", "offscreen", 1);
    static int argc = 1;
    static char name[] = "quantscope-cli";
    static char *argv[] = { name, nullptr };
    return std::make_unique<QApplication>(argc, argv);
}
#endif

int runReport(const Args &args)
{
    if (args.positional().empty())
        throw UsageError("report: missing RUN_DIR (usage: report RUN_DIR [RUN_DIR...] --out DIR)");
    const std::string out = args.requireValue("out");
    core::ReportOptions options = reportOptions(args);
    core::ReportInputOptions inputOptions;
    inputOptions.autoHistograms = args.intValue("histograms", inputOptions.autoHistograms, 0, 100);
    if (args.has("layers"))
        inputOptions.histogramLayers = splitList(args.value("layers"));
    inputOptions.stats.outlierSigma = args.doubleValue("outlier-sigma", inputOptions.stats.outlierSigma, 0.5, 100.0);
    core::checkReportTarget(out); // a bad --out fails before any work

    const bool charts = options.png || options.svg || options.pdf;
    std::vector<std::string> warnings;
#ifndef QS_CLI_WITH_CHARTS
    if (charts) {
        warnings.push_back("this quantscope-cli was built without Qt (QS_BUILD_GUI=OFF): no charts, tables only");
        options.png = options.svg = options.pdf = false;
        if (!options.csv && !options.markdown)
            throw UsageError("report: --formats: only tables (csv, md) can be written by this build");
    }
#endif
    ConsoleProgress progress(args.has("quiet"));
    const core::ReportInput input = core::loadReportInput({}, args.positional(), nullptr, inputOptions, progress);

    std::vector<std::string> files;
#ifdef QS_CLI_WITH_CHARTS
    std::unique_ptr<QApplication> app = charts ? startQt() : nullptr;
    files = ui::writeReport(input, options, out, progress);
#else
    const std::vector<core::ReportFile> written = core::reportTextFiles(input, {}, options);
    core::writeReportFolder(out, written, progress);
    for (const core::ReportFile &f : written)
        files.push_back(f.path);
#endif
    progress.finish();
    for (const std::string &w : warnings)
        std::fprintf(stderr, "quantscope-cli: warning: %s\n", w.c_str());

    if (args.has("json")) {
        nlohmann::ordered_json j;
        j["out"] = out;
        nlohmann::ordered_json runs = nlohmann::ordered_json::array();
        for (const core::ReportRun &r : input.runs)
            runs.push_back({ { "name", r.name }, { "path", r.path } });
        j["runs"] = runs;
        j["files"] = files;
        j["png_width"] = options.png ? options.pixelWidth() : 0;
        j["png_height"] = options.png ? options.pixelHeight() : 0;
        j["notes"] = input.notes;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("wrote %s (%zu files, %zu runs)\n", out.c_str(), files.size(), input.runs.size());
    for (const std::string &f : files)
        std::printf("  %s\n", f.c_str());
    for (const std::string &n : input.notes)
        std::printf("note: %s\n", n.c_str());
    return 0;
}

} // namespace

Command reportCommand()
{
    return { "report",
        "report RUN_DIR [RUN_DIR...] --out DIR [--pdf] [--formats LIST] [--width PX] [--height PX] [--dpi N] "
        "[--histograms N] [--layers NAMES] [--json]",
        "Charts (PNG, SVG, PDF) and tables (CSV, Markdown) comparing quantization runs, with a README.md",
        { { "out", true, "the report folder to write (replaced atomically; an existing non-report folder is refused)" },
            { "pdf", false, "also write every chart as PDF" },
            { "formats", true, "comma-separated subset of png,svg,pdf,csv,md (default png,svg,csv,md)" },
            { "width", true, "chart width in CSS pixels (1/96 inch), default 800" },
            { "height", true, "chart height in CSS pixels, default 500" },
            { "dpi", true, "PNG resolution: width·dpi/96 × height·dpi/96 pixels, default 150" },
            { "histograms", true, "weight histograms of the N layers with the highest error (default 3, 0: none)" },
            { "layers", true, "comma-separated layer names for the weight histograms instead" },
            { "outlier-sigma", true, "outlier threshold k in |w - mean| > k·σ for the histograms (default 6)" },
            { "json", false, "print one JSON object: out, runs, files, png_width, png_height, notes" } },
        runReport };
}

} // namespace qs::cli
