// Report tables (core/report): CSV quoting (RFC 4180), Markdown escaping, the contents of the per-layer
// and run tables (model order, missing layers, Pareto membership), plan summaries, and the atomic report
// folder (replace a previous report, refuse other folders, cancel and errors leave nothing behind).
#include <QTest>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "TestData.h"
#include "common/Error.h"
#include "report/ReportFolder.h"
#include "report/ReportTables.h"

using namespace qs::core;
namespace fs = std::filesystem;

namespace {

LayerResult layer(const std::string &name, const std::string &method, int bits, int group, double err)
{
    LayerResult l;
    l.name = name;
    l.method = method;
    l.bits = bits;
    l.groupSize = group;
    l.weightMse = err * err / 7.0;
    l.relOutputError = err;
    l.sqnrDb = 10.0 / err;
    l.seconds = 0.125;
    return l;
}

ReportRun run(const std::string &name, double bpw, std::optional<double> ppl, std::optional<double> kld)
{
    ReportRun r;
    r.name = name;
    r.bitsPerWeight = bpw;
    if (ppl) {
        RunEvaluation e;
        e.perplexity = *ppl;
        e.originalPerplexity = 9.5;
        e.protocol = "llamacpp";
        e.ctx = 128;
        if (kld) {
            e.hasKld = true;
            e.kldMean = *kld;
            e.top1Agreement = 0.9;
        }
        r.evaluation = e;
    }
    return r;
}

// Splits RFC 4180 CSV (quoted fields with doubled quotes and embedded CRLF) into records of fields.
std::vector<std::vector<std::string>> parseCsv(const std::string &csv)
{
    std::vector<std::vector<std::string>> records(1);
    std::string field;
    bool quoted = false, wasQuoted = false;
    for (size_t i = 0; i < csv.size(); ++i) {
        const char c = csv[i];
        if (quoted) {
            if (c == '"' && i + 1 < csv.size() && csv[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"' && field.empty() && !wasQuoted) {
            quoted = wasQuoted = true;
        } else if (c == ',') {
            records.back().push_back(field);
            field.clear();
            wasQuoted = false;
        } else if (c == '\r' && i + 1 < csv.size() && csv[i + 1] == '\n') {
            records.back().push_back(field);
            field.clear();
            wasQuoted = false;
            records.emplace_back();
            ++i;
        } else {
            field += c;
        }
    }
    if (records.back().empty() && field.empty())
        records.pop_back();
    return records;
}

// Cells of one Markdown table row, split at unescaped pipes.
std::vector<std::string> markdownCells(const std::string &line)
{
    std::vector<std::string> cells;
    std::string cell;
    for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) {
            cell += line[i + 1];
            ++i;
        } else if (line[i] == '|') {
            cells.push_back(cell);
            cell.clear();
        } else {
            cell += line[i];
        }
    }
    // A row starts and ends with '|': drop the empty outer pieces, trim the padding.
    if (!cells.empty())
        cells.erase(cells.begin());
    for (std::string &c : cells) {
        while (!c.empty() && c.front() == ' ')
            c.erase(c.begin());
        while (!c.empty() && c.back() == ' ')
            c.pop_back();
    }
    return cells;
}

std::vector<std::string> lines(const std::string &text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        out.push_back(l);
    return out;
}

std::string readFile(const fs::path &p)
{
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> leftovers(const fs::path &dir, const std::string &stem)
{
    std::vector<std::string> out;
    for (const fs::directory_entry &e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind(stem + ".tmp-", 0) == 0)
            out.push_back(e.path().string());
    return out;
}

class CancelAfter final : public Progress
{
public:
    explicit CancelAfter(double after) : m_after(after) { }
    void setTotal(double) override { }
    void advance(double a) override { m_done += a; }
    void message(std::string_view) override { }
    bool isCancelled() const override { return m_done >= m_after; }

private:
    double m_after;
    double m_done = 0;
};

} // namespace

class TestReportTables : public QObject
{
    Q_OBJECT

    fs::path m_dir;

private slots:
    void initTestCase()
    {
        m_dir = fs::path(qs::test::outputDir().toStdString()) / "tst_report_tables";
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }

    void csvQuoting_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("plain") << "model.layers.0.mlp.down_proj" << "model.layers.0.mlp.down_proj";
        QTest::newRow("comma") << "rtn 8-bit, g128" << "\"rtn 8-bit, g128\"";
        QTest::newRow("quote") << "the \"best\" run" << "\"the \"\"best\"\" run\"";
        QTest::newRow("newline") << "a\nb" << "\"a\nb\"";
        QTest::newRow("cr") << "a\rb" << "\"a\rb\"";
        QTest::newRow("leading space") << " x" << "\" x\"";
        QTest::newRow("empty") << "" << "";
        QTest::newRow("semicolon stays") << "a;b" << "a;b";
    }
    void csvQuoting()
    {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QCOMPARE(QString::fromStdString(csvField(text.toStdString())), expected);
    }

    void markdownEscaping_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("pipe") << "a|b" << "a\\|b";
        QTest::newRow("glob") << "model.layers.*.mlp.*" << "model.layers.\\*.mlp.\\*";
        QTest::newRow("underscore") << "down_proj" << "down\\_proj";
        QTest::newRow("html") << "<b>x</b>" << "\\<b\\>x\\</b\\>";
        QTest::newRow("backslash") << "a\\b" << "a\\\\b";
        QTest::newRow("newline") << "a\r\nb" << "a  b";
        QTest::newRow("brackets") << "[x](y)" << "\\[x\\](y)";
    }
    void markdownEscaping()
    {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QCOMPARE(QString::fromStdString(markdownCell(text.toStdString())), expected);
    }

    void csvRoundTripsNumbersAndNames()
    {
        ReportRun a = run("run, \"a\"", 8.25, 10.0, 0.01);
        a.layers = { layer("model.layers.0.self_attn.q_proj", "rtn", 8, 128, 0.1 / 3.0),
            layer("model.layers.0.mlp.down_proj", "gptq", 4, -1, 0.2) };
        const ReportTable t = perLayerTable({ a });
        const auto records = parseCsv(toCsv(t));
        QCOMPARE(records.size(), size_t(3)); // header + 2 layers
        QCOMPARE(records[0].size(), size_t(1 + 7));
        QCOMPARE(records[0][1], std::string("run, \"a\": method"));
        QCOMPARE(records[1][0], std::string("model.layers.0.self_attn.q_proj"));
        QCOMPARE(records[2][3], std::string("per channel"));
        // The shortest exact form: parsing gives back the same double.
        double parsed = 0;
        const std::string &s = records[1][5];
        std::from_chars(s.data(), s.data() + s.size(), parsed);
        QCOMPARE(parsed, 0.1 / 3.0);
        // Every line ends with CRLF.
        const std::string csv = toCsv(t);
        QVERIFY(csv.size() > 2 && csv.substr(csv.size() - 2) == "\r\n");
        QCOMPARE(size_t(std::count(csv.begin(), csv.end(), '\n')), size_t(3));
    }

    void perLayerTableModelOrderAndMissing()
    {
        ReportRun a = run("a", 8, 10.0, 0.01), b = run("b", 4, 12.0, 0.05);
        a.layers = { layer("L0.q", "rtn", 8, 128, 0.01), layer("L0.down", "rtn", 8, 128, 0.02),
            layer("L1.q", "rtn", 8, 128, 0.03) };
        // b also quantized L0.k (between L0.q and L0.down in model order) and kept L1.q in float.
        b.layers = { layer("L0.q", "gptq", 4, 32, 0.1), layer("L0.k", "gptq", 4, 32, 0.2),
            layer("L0.down", "gptq", 4, 32, 0.3) };
        const ReportTable t = perLayerTable({ a, b });
        QCOMPARE(t.columns.size(), size_t(1 + 2 * 7));
        std::vector<std::string> names;
        for (const auto &row : t.rows)
            names.push_back(std::get<std::string>(row[0]));
        QCOMPARE(names, (std::vector<std::string> { "L0.q", "L0.k", "L0.down", "L1.q" }));
        // L0.k: empty for a, values for b; L1.q: the reverse.
        QVERIFY(std::holds_alternative<std::monostate>(t.rows[1][1]));
        QCOMPARE(std::get<std::string>(t.rows[1][8]), std::string("gptq"));
        QCOMPARE(std::get<double>(t.rows[1][12]), 0.2); // b: rel. output error
        QVERIFY(std::holds_alternative<std::monostate>(t.rows[3][8]));
        QCOMPARE(std::get<double>(t.rows[3][5]), 0.03);

        // Markdown: header, alignment, one line per layer, every line with the same number of cells.
        const std::vector<std::string> md = lines(toMarkdown(t));
        QCOMPARE(md.size(), size_t(2 + 4));
        for (const std::string &l : md)
            QCOMPARE(markdownCells(l).size(), t.columns.size());
        QCOMPARE(markdownCells(md[0])[1], std::string("a: method"));
        QVERIFY(md[1].find("---:") != std::string::npos); // numeric columns right-aligned
        QCOMPARE(markdownCells(md[2])[0], std::string("L0.q"));
        QCOMPARE(markdownCells(md[2])[12], std::string("0.1")); // 4 significant digits
    }

    void runSummaryParetoMembership()
    {
        // b dominates c (fewer bits, lower loss); a is the most accurate; d has no evaluation; e has no KLD.
        std::vector<ReportRun> runs = { run("a", 8.5, 10.0, 0.001), run("b", 4.5, 12.0, 0.02),
            run("c", 5.0, 13.0, 0.03), run("d", 3.0, std::nullopt, std::nullopt), run("e", 2.5, 30.0, std::nullopt) };
        const ReportTable t = runSummaryTable(runs);
        QCOMPARE(t.rows.size(), size_t(5));
        QCOMPARE(t.columns.size(), size_t(9));
        auto cell = [&](size_t row, size_t col) { return formatReportValue(t.rows[row][col], 0, true); };
        QCOMPARE(cell(0, 7), std::string("yes"));
        QCOMPARE(cell(1, 7), std::string("yes"));
        QCOMPARE(cell(2, 7), std::string("no"));
        QCOMPARE(cell(3, 7), std::string(""));
        QCOMPARE(cell(4, 7), std::string("yes")); // cheapest evaluated run
        QCOMPARE(cell(4, 8), std::string("")); // no KLD
        QCOMPARE(cell(2, 8), std::string("no"));
        QCOMPARE(cell(3, 3), std::string(""));
        QCOMPARE(cell(1, 2), std::string("4.5"));
        const auto csv = parseCsv(toCsv(t));
        QCOMPARE(csv.size(), size_t(6));
        for (const auto &rec : csv)
            QCOMPARE(rec.size(), size_t(9));
    }

    void planSummaryText()
    {
        const Plan plan = Plan::fromJson(nlohmann::json::parse(R"({
            "default": {"method": "rtn", "bits": 8, "group_size": 128, "symmetric": true},
            "rules": [{"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32},
                      {"match": "lm_head", "bits": 6}],
            "skip": ["model.embed_tokens"]})"));
        const std::string s = planSummary(plan);
        QVERIFY2(s.rfind("rtn 8-bit g128 sym; ", 0) == 0, s.c_str());
        QVERIFY2(s.find("model.layers.*.mlp.down_proj: gptq 4-bit g32") != std::string::npos, s.c_str());
        QVERIFY2(s.find("lm_head: 6-bit") != std::string::npos, s.c_str());
        QVERIFY2(s.find("skip model.embed_tokens") != std::string::npos, s.c_str());
    }

    void slugs()
    {
        QCOMPARE(fileSlug("Run 1: rtn 8-bit"), std::string("Run-1-rtn-8-bit"));
        QCOMPARE(fileSlug("../x/y"), std::string("x-y"));
        QCOMPARE(fileSlug("***"), std::string("run"));
    }

    void chartsAndReadme()
    {
        ReportInput in;
        in.runs = { run("a|1", 8, 10.0, 0.01), run("b", 4, 12.0, std::nullopt), run("c", 4, std::nullopt, std::nullopt) };
        in.runs[0].layers = { layer("L0.q", "rtn", 8, 128, 0.01) };
        in.runs[1].layers = { layer("L0.q", "rtn", 4, 128, 0.1) };
        const std::vector<ReportChart> charts = planReportCharts(in);
        std::vector<std::string> stems;
        for (const ReportChart &c : charts)
            stems.push_back(c.stem);
        QCOMPARE(stems, (std::vector<std::string> { "layer-error-a-1", "layer-error-b", "layer-error-comparison",
                            "pareto-perplexity", "pareto-kld" }));
        ReportOptions o;
        o.pdf = true;
        const std::string readme = reportReadme(in, charts, o);
        QVERIFY(readme.find("![Bits per weight against perplexity](charts/pareto-perplexity.png)") != std::string::npos);
        QVERIFY(readme.find("[pdf](charts/pareto-kld.pdf)") != std::string::npos);
        QVERIFY(readme.find("[CSV](tables/layers.csv)") != std::string::npos);
        QVERIFY(readme.find("### a\\|1") != std::string::npos);
        const auto files = reportTextFiles(in, charts, o);
        std::vector<std::string> paths;
        for (const ReportFile &f : files)
            paths.push_back(f.path);
        QCOMPARE(paths, (std::vector<std::string> { "tables/runs.csv", "tables/runs.md", "tables/layers.csv",
                            "tables/layers.md", "README.md", "report.json" }));
        const auto manifest = nlohmann::json::parse(files.back().bytes);
        QCOMPARE(manifest["format"].get<std::string>(), std::string("quantscope-report"));
        QCOMPARE(manifest["files"].size(), size_t(5 * 3 + 6));
        QCOMPARE(manifest["options"]["png_width"].get<int>(), 1250); // 800 · 150 / 96
    }

    void optionsValidate()
    {
        ReportOptions o;
        o.dpi = 10;
        QVERIFY_THROWS_EXCEPTION(Error, o.validate());
        o = {};
        o.png = o.svg = o.pdf = o.csv = o.markdown = false;
        QVERIFY_THROWS_EXCEPTION(Error, o.validate());
        o = {};
        o.width = 1000;
        o.height = 333;
        o.dpi = 300;
        QCOMPARE(o.pixelWidth(), 3125);
        QCOMPARE(o.pixelHeight(), 1041); // 1040.6 rounded
    }

    void folderIsAtomicAndReplacesOnlyReports()
    {
        const fs::path dir = m_dir / "report";
        ReportInput in;
        in.runs = { run("a", 8, 10.0, 0.01) };
        std::vector<ReportFile> files = reportTextFiles(in, {}, ReportOptions {});
        files.push_back({ "charts/x.png", std::string("\x89PNG", 4) });
        NullProgress progress;
        writeReportFolder(dir.string(), files, progress);
        for (const ReportFile &f : files)
            QCOMPARE(readFile(dir / f.path), f.bytes);
        QVERIFY(leftovers(m_dir, "report").empty());
        // A report is for sharing: 0755 whatever the umask (not mkdtemp's 0700).
        QCOMPARE(fs::status(dir).permissions() & fs::perms::mask,
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read
                | fs::perms::others_exec);

        // A second report replaces the first one whole (no stale chart left).
        files.pop_back();
        writeReportFolder(dir.string(), files, progress);
        QVERIFY(!fs::exists(dir / "charts/x.png"));
        QVERIFY(fs::exists(dir / "README.md"));
        QVERIFY(leftovers(m_dir, "report").empty());

        // Cancelling after the first file: the previous report stays as it was, nothing else is left.
        const std::string before = readFile(dir / "README.md");
        std::vector<ReportFile> changed = files;
        for (ReportFile &f : changed)
            f.bytes += "changed";
        CancelAfter cancel(1);
        QVERIFY_THROWS_EXCEPTION(Cancelled, writeReportFolder(dir.string(), changed, cancel));
        QCOMPARE(readFile(dir / "README.md"), before);
        QVERIFY(leftovers(m_dir, "report").empty());

        // Never replaces a folder that is not a report.
        const fs::path other = m_dir / "notes";
        fs::create_directories(other);
        std::ofstream(other / "keep.txt") << "mine";
        try {
            writeReportFolder(other.string(), files, progress);
            QFAIL("expected Error");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).find(other.string()) != std::string::npos, e.what());
            QVERIFY2(std::string(e.what()).find("not a QuantScope report") != std::string::npos, e.what());
        }
        QCOMPARE(readFile(other / "keep.txt"), std::string("mine"));
        // A missing parent folder is named.
        try {
            checkReportTarget((m_dir / "missing" / "r").string());
            QFAIL("expected Error");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).find("does not exist") != std::string::npos, e.what());
        }
        // Bad relative names are refused.
        QVERIFY_THROWS_EXCEPTION(Error, writeReportFolder((m_dir / "r2").string(), { { "../evil", "x" } }, progress));
        QVERIFY(!fs::exists(m_dir / "r2"));
        QVERIFY(leftovers(m_dir, "r2").empty());
    }
};

QTEST_GUILESS_MAIN(TestReportTables)
#include "tst_report_tables.moc"
