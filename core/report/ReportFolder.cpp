#include "report/ReportFolder.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/AtomicFile.h"
#include "common/AtomicFolder.h"
#include "common/Error.h"
#include "common/Version.h"

namespace qs::core {

namespace fs = std::filesystem;

std::vector<std::string> ReportOptions::chartFormats() const
{
    std::vector<std::string> f;
    if (png)
        f.push_back("png");
    if (svg)
        f.push_back("svg");
    if (pdf)
        f.push_back("pdf");
    return f;
}

void ReportOptions::validate() const
{
    if (width < 100 || width > 10000)
        throw Error("report: width " + std::to_string(width) + " is outside 100..10000");
    if (height < 100 || height > 10000)
        throw Error("report: height " + std::to_string(height) + " is outside 100..10000");
    if (dpi < 24 || dpi > 1200)
        throw Error("report: dpi " + std::to_string(dpi) + " is outside 24..1200");
    if (!png && !svg && !pdf && !csv && !markdown)
        throw Error("report: no format chosen (charts: png, svg, pdf; tables: csv, markdown)");
}

int ReportOptions::pixelWidth() const { return int(std::lround(width * dpi / 96.0)); }
int ReportOptions::pixelHeight() const { return int(std::lround(height * dpi / 96.0)); }

std::vector<ReportChart> planReportCharts(const ReportInput &input)
{
    std::vector<ReportChart> charts;
    std::set<std::string> stems;
    auto add = [&](ReportChart c) {
        std::string stem = c.stem;
        for (int n = 2; !stems.insert(stem).second; ++n)
            stem = c.stem + "-" + std::to_string(n);
        c.stem = stem;
        charts.push_back(std::move(c));
    };
    const int n = int(input.runs.size());
    for (int i = 0; i < n; ++i) {
        const ReportRun &r = input.runs[size_t(i)];
        if (r.layers.empty())
            continue;
        add({ ReportChart::Kind::LayerError, { i }, {}, -1, "layer-error-" + fileSlug(r.name),
            "Per-layer relative output error: " + r.name,
            "Bars: ‖WX − ŴX‖ / ‖WX‖ of each quantized layer on the calibration inputs, coloured by method, in "
            "model order. Line (right axis): the cumulative output error of the quantized block stack." });
    }
    std::vector<int> all; // the runs with per-layer results
    for (int i = 0; i < n; ++i)
        if (!input.runs[size_t(i)].layers.empty())
            all.push_back(i);
    if (all.size() == 2) { // LayerErrorPlot's comparison is of two runs (the second one lighter)
        add({ ReportChart::Kind::LayerErrorComparison, all, {}, -1, "layer-error-comparison",
            "Per-layer relative output error, runs side by side",
            "The bars of the two runs stand side by side per layer (the first run in full colour, the second "
            "lighter); lines: each run's cumulative block error." });
    }
    bool anyPpl = false, anyKld = false;
    for (const ReportRun &r : input.runs) {
        anyPpl = anyPpl || reportLoss(r, ReportLoss::Perplexity).has_value();
        anyKld = anyKld || reportLoss(r, ReportLoss::Kld).has_value();
    }
    if (anyPpl)
        add({ ReportChart::Kind::Pareto, {}, ReportLoss::Perplexity, -1, "pareto-perplexity",
            "Bits per weight against perplexity",
            "Every evaluated run; the red step line is the Pareto front (no other run has fewer bits and a lower "
            "perplexity); dashed: the original model." });
    if (anyKld)
        add({ ReportChart::Kind::Pareto, {}, ReportLoss::Kld, -1, "pareto-kld",
            "Bits per weight against KL divergence",
            "Mean KL divergence of the quantized model's next-token distribution from the original's, in nats; "
            "the red step line is the Pareto front." });
    for (size_t h = 0; h < input.histograms.size(); ++h) {
        const WeightStats &s = input.histograms[h];
        char sigma[32];
        std::snprintf(sigma, sizeof sigma, "%g", s.outlierSigma);
        add({ ReportChart::Kind::Histogram, {}, {}, int(h), "histogram-" + fileSlug(s.name),
            "Weight histogram: " + s.name,
            "Original weights of " + s.name + " (" + std::to_string(s.rows) + " × " + std::to_string(s.cols)
                + "), log-scale counts; red bins lie beyond the outlier threshold |w − mean| > " + sigma + "σ ("
                + std::to_string(s.outlierCount) + " outliers)." });
    }
    return charts;
}

namespace {

std::string isoNowUtc()
{
    const std::time_t t = std::time(nullptr);
    std::tm tm {};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string number(double v, int digits)
{
    return formatReportValue(ReportValue(v), digits, false);
}

std::string esc(const std::string &s) { return markdownCell(s); }

std::string provenanceLines(const ReportRun &r)
{
    std::ostringstream o;
    const RunProvenance &p = r.provenance;
    o << "- Run directory: " << (r.path.empty() ? std::string("not saved (a run of the GUI session)") : esc(r.path))
      << "\n";
    o << "- Model: " << esc(p.modelAbsolutePath.empty() ? p.modelPath : p.modelAbsolutePath);
    if (!p.modelFormat.empty())
        o << " (" << esc(p.modelFormat) << ")";
    o << ", SHA-256 " << esc(p.modelSha256) << "\n";
    o << "- Plan: " << esc(planSummary(r.plan)) << "\n";
    if (p.calibration.is_object()) {
        const nlohmann::json &c = p.calibration;
        auto str = [&](const char *key) {
            const auto it = c.find(key);
            return it != c.end() && it->is_string() ? it->get<std::string>() : std::string();
        };
        auto num = [&](const char *key) {
            const auto it = c.find(key);
            return it != c.end() && it->is_number() ? it->dump() : std::string("?");
        };
        o << "- Calibration: " << esc(str("text_path")) << " (SHA-256 " << esc(str("text_sha256")) << "), "
          << num("samples") << " samples × " << num("seq_len") << " tokens, seed " << num("seed");
        if (!str("mode").empty())
            o << ", " << esc(str("mode"));
        o << "\n";
    }
    if (r.evaluation) {
        const RunEvaluation &e = *r.evaluation;
        o << "- Evaluation: " << esc(e.textPath) << " (SHA-256 " << esc(e.textSha256) << "), protocol " << esc(e.protocol)
          << ", ctx " << e.ctx << ", " << e.chunks << " chunks, " << e.tokensScored << " tokens scored: perplexity "
          << number(e.perplexity, 6) << " (original " << number(e.originalPerplexity, 6) << ")";
        if (e.hasKld)
            o << ", KLD mean " << number(e.kldMean, 4) << " (median " << number(e.kldMedian, 4) << ", p99 "
              << number(e.kldP99, 4) << "), top-1 agreement " << number(e.top1Agreement, 4);
        o << "\n";
    } else {
        o << "- Evaluation: none\n";
    }
    o << "- Bits per weight: " << number(r.bitsPerWeight, 5) << " (quantized layers with their scales and zeros, "
      << "float layers at 16)\n";
    o << "- QuantScope " << esc(p.quantscopeVersion) << ", " << esc(p.date);
    if (p.threads > 0)
        o << ", " << p.threads << " threads";
    o << "\n";
    return o.str();
}

std::string chartPath(const ReportChart &c, const std::string &format) { return "charts/" + c.stem + "." + format; }

std::vector<ReportTable> reportTables(const ReportInput &input)
{
    return { runSummaryTable(input.runs), perLayerTable(input.runs) };
}

} // namespace

std::string reportReadme(const ReportInput &input, const std::vector<ReportChart> &charts, const ReportOptions &options)
{
    std::ostringstream o;
    o << "# Quantization report\n\n";
    o << "Generated by QuantScope " << quantscopeVersion() << " on " << isoNowUtc() << " from " << input.runs.size()
      << (input.runs.size() == 1 ? " run" : " runs") << ".\n\n";
    o << "## Summary\n\n" << toMarkdown(runSummaryTable(input.runs)) << "\n";
    if (!input.notes.empty()) {
        o << "## Notes\n\n";
        for (const std::string &n : input.notes)
            o << "- " << esc(n) << "\n";
        o << "\n";
    }
    const std::vector<std::string> formats = options.chartFormats();
    if (!charts.empty() && !formats.empty()) {
        o << "## Charts\n\n";
        for (const ReportChart &c : charts) {
            o << "### " << esc(c.title) << "\n\n";
            // PNG embeds everywhere; SVG where PNG was not written; PDF is linked only.
            const std::string embed = options.png ? "png" : options.svg ? "svg" : "";
            if (!embed.empty())
                o << "![" << esc(c.title) << "](" << chartPath(c, embed) << ")\n\n";
            o << esc(c.caption);
            std::string links;
            for (const std::string &f : formats)
                if (f != embed)
                    links += std::string(links.empty() ? "" : ", ") + "[" + f + "](" + chartPath(c, f) + ")";
            if (!links.empty())
                o << " Also as " << links << ".";
            o << "\n\n";
        }
    }
    if (options.csv || options.markdown) {
        o << "## Tables\n\n";
        for (const ReportTable &t : reportTables(input)) {
            o << "- " << esc(t.title) << ":";
            if (options.csv)
                o << " [CSV](tables/" << t.name << ".csv)";
            if (options.markdown)
                o << (options.csv ? "," : "") << " [Markdown](tables/" << t.name << ".md)";
            o << "\n";
        }
        o << "\n";
    }
    o << "## Runs\n\n";
    for (const ReportRun &r : input.runs)
        o << "### " << esc(r.name) << "\n\n" << provenanceLines(r) << "\n";
    o << "Charts are " << options.width << " × " << options.height << " px at 96 px per inch (PNG: "
      << options.pixelWidth() << " × " << options.pixelHeight() << " pixels at " << options.dpi
      << " DPI); see docs/reports.md in the QuantScope sources.\n";
    return o.str();
}

std::vector<ReportFile> reportTextFiles(
    const ReportInput &input, const std::vector<ReportChart> &charts, const ReportOptions &options)
{
    std::vector<ReportFile> files;
    for (const ReportTable &t : reportTables(input)) {
        if (options.csv)
            files.push_back({ "tables/" + t.name + ".csv", toCsv(t) });
        if (options.markdown)
            files.push_back({ "tables/" + t.name + ".md", "# " + t.title + "\n\n" + toMarkdown(t) });
    }
    files.push_back({ "README.md", reportReadme(input, charts, options) });

    nlohmann::ordered_json m;
    m["format"] = "quantscope-report";
    m["format_version"] = kReportFormatVersion;
    m["quantscope_version"] = quantscopeVersion();
    m["date"] = isoNowUtc();
    m["options"] = { { "width", options.width }, { "height", options.height }, { "dpi", options.dpi },
        { "png_width", options.pixelWidth() }, { "png_height", options.pixelHeight() },
        { "chart_formats", options.chartFormats() } };
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (const ReportRun &r : input.runs)
        runs.push_back({ { "name", r.name }, { "path", r.path }, { "model_sha256", r.provenance.modelSha256 } });
    m["runs"] = runs;
    nlohmann::ordered_json chartList = nlohmann::ordered_json::array();
    std::vector<std::string> all;
    for (const ReportChart &c : charts) {
        nlohmann::ordered_json cf = nlohmann::ordered_json::array();
        for (const std::string &f : options.chartFormats()) {
            cf.push_back(chartPath(c, f));
            all.push_back(chartPath(c, f));
        }
        chartList.push_back({ { "stem", c.stem }, { "title", c.title }, { "files", cf } });
    }
    m["charts"] = chartList;
    m["notes"] = input.notes;
    for (const ReportFile &f : files)
        all.push_back(f.path);
    all.push_back(kReportManifestFile);
    m["files"] = all;
    files.push_back({ kReportManifestFile, m.dump(2) + "\n" });
    return files;
}

namespace {

fs::path reportTarget(const std::string &dir)
{
    if (dir.empty())
        throw Error("report: no output folder given");
    fs::path target(dir);
    if (target.filename().empty())
        target = target.parent_path();
    return target;
}

bool isReportFolder(const fs::path &dir)
{
    std::ifstream in(dir / kReportManifestFile, std::ios::binary);
    if (!in)
        return false;
    try {
        const nlohmann::json j = nlohmann::json::parse(in);
        return j.is_object() && j.value("format", std::string()) == "quantscope-report";
    } catch (const nlohmann::json::exception &) {
        return false;
    }
}

} // namespace

void checkReportTarget(const std::string &dir)
{
    const fs::path target = reportTarget(dir);
    std::error_code ec;
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    if (!fs::is_directory(parent, ec))
        fail(dir, "the folder " + parent.string() + " does not exist");
    if (fs::exists(target, ec)) {
        if (!fs::is_directory(target, ec))
            fail(dir, "exists and is not a folder");
        if (!isReportFolder(target) && !fs::is_empty(target, ec))
            fail(dir, "exists and is not a QuantScope report (refusing to replace it)");
    }
}

void writeReportFolder(const std::string &dir, const std::vector<ReportFile> &files, Progress &progress)
{
    checkReportTarget(dir);
    AtomicFolder folder(reportTarget(dir).string(), dir, "report");
    const fs::path tmp(folder.tempPath());
    std::error_code ec;
    // AtomicFolder already gives it mkdir's permissions; a report is meant to be shared, so it has stayed
    // 0755 whatever the umask.
    fs::permissions(tmp, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read
            | fs::perms::others_exec, ec);

    double total = 0;
    for (const ReportFile &f : files)
        total += double(f.bytes.size());
    progress.setTotal(total);
    progress.message("writing " + dir);
    for (const ReportFile &f : files) {
        progress.throwIfCancelled();
        if (f.path.empty() || f.path.front() == '/' || f.path.find("..") != std::string::npos)
            fail(dir, "bad file name in report: '" + f.path + "'");
        const fs::path path = tmp / f.path;
        fs::create_directories(path.parent_path(), ec);
        if (ec)
            fail(dir, "cannot create " + fs::path(f.path).parent_path().string() + "/: " + ec.message());
        try {
            writeFileAtomically(path.string(), f.bytes);
        } catch (const Error &e) {
            // AtomicFile names the file inside the temporary folder; say which report file it was instead.
            std::string reason = e.what();
            const std::string prefix = path.string() + ": ";
            if (reason.rfind(prefix, 0) == 0)
                reason = reason.substr(prefix.size());
            fail(dir, "cannot write " + f.path + ": " + reason);
        }
        progress.advance(double(f.bytes.size()));
    }
    progress.throwIfCancelled();

    folder.commit();
}

} // namespace qs::core
