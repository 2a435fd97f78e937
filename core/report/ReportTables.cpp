#include "report/ReportTables.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "eval/Pareto.h"
#include "quant/RunDir.h"

namespace qs::core {

ReportRun ReportRun::fromRunDir(const RunDirContents &contents)
{
    ReportRun r;
    std::filesystem::path p(contents.path);
    if (p.filename().empty())
        p = p.parent_path(); // "runs/a/" names the run "a"
    r.name = p.filename().string();
    if (r.name.empty())
        r.name = contents.path;
    r.path = contents.path;
    r.plan = contents.plan;
    r.provenance = contents.provenance;
    r.layers = contents.layers;
    r.bitsPerWeight = contents.bitsPerWeight;
    r.evaluation = contents.evaluation;
    if (contents.runJson.contains("blocks") && contents.runJson["blocks"].is_array())
        for (const nlohmann::json &b : contents.runJson["blocks"]) {
            BlockResult br;
            br.block = b.value("block", 0);
            const auto it = b.find("cumulative_error");
            br.cumulativeError = it != b.end() && it->is_number() ? it->get<double>() : NAN;
            br.seconds = b.value("seconds", 0.0);
            r.blocks.push_back(br);
        }
    return r;
}

ReportRun ReportRun::fromQuantRun(const QuantRun &run, std::string name, std::string path)
{
    ReportRun r;
    r.name = std::move(name);
    r.path = std::move(path);
    r.plan = run.plan;
    r.provenance = run.provenance;
    r.layers = run.layers;
    r.blocks = run.blocks;
    r.bitsPerWeight = run.bitsPerWeight;
    r.evaluation = run.evaluation;
    return r;
}

namespace {

// A parameter as written in a plan file (JSON): 4, 0.01, true, "auto".
std::string paramText(const ParamValue &v)
{
    return std::visit([](const auto &x) { return nlohmann::json(x).dump(); }, v);
}

// "gptq 4-bit g32" from a method name and the parameters a config or rule sets.
std::string configText(const std::string &method, const std::map<std::string, ParamValue, std::less<>> &params)
{
    std::string s = method;
    if (const auto it = params.find("bits"); it != params.end())
        s += (s.empty() ? "" : " ") + paramText(it->second) + "-bit";
    if (const auto it = params.find("group_size"); it != params.end()) {
        const std::string g = paramText(it->second);
        s += (s.empty() ? "" : " ") + (g == "-1" ? std::string("per channel") : "g" + g);
    }
    if (const auto it = params.find("symmetric"); it != params.end() && std::holds_alternative<bool>(it->second))
        s += std::get<bool>(it->second) ? " sym" : " asym";
    return s.empty() ? std::string("(as default)") : s;
}

} // namespace

std::string planSummary(const Plan &plan)
{
    const MethodConfig &d = plan.defaultConfig();
    std::string s = configText(d.method(), d.values());
    for (const PlanRule &rule : plan.rules())
        s += "; " + rule.match.text() + ": " + configText(rule.method, rule.params);
    if (!plan.skip().empty()) {
        s += "; skip ";
        for (size_t i = 0; i < plan.skip().size(); ++i)
            s += (i ? ", " : "") + plan.skip()[i].text();
    }
    return s;
}

std::optional<double> reportLoss(const ReportRun &run, ReportLoss loss)
{
    if (!run.evaluation)
        return std::nullopt;
    if (loss == ReportLoss::Perplexity)
        return run.evaluation->perplexity;
    if (!run.evaluation->hasKld)
        return std::nullopt;
    return run.evaluation->kldMean;
}

std::vector<std::optional<bool>> paretoMembership(const std::vector<ReportRun> &runs, ReportLoss loss)
{
    std::vector<ParetoPoint> points;
    std::vector<size_t> runOf;
    for (size_t i = 0; i < runs.size(); ++i)
        if (const std::optional<double> l = reportLoss(runs[i], loss)) {
            points.push_back({ runs[i].bitsPerWeight, *l });
            runOf.push_back(i);
        }
    std::vector<std::optional<bool>> member(runs.size());
    for (size_t i : runOf)
        member[i] = false;
    for (int k : paretoFront(points))
        member[runOf[size_t(k)]] = true;
    return member;
}

ReportTable perLayerTable(const std::vector<ReportRun> &runs)
{
    ReportTable t;
    t.name = "layers";
    t.title = "Per-layer results";
    t.columns.push_back({ "layer", 0 });
    for (const ReportRun &r : runs)
        for (const auto &[column, digits] : std::initializer_list<std::pair<const char *, int>> { { "method", 0 },
                 { "bits", 0 }, { "group", 0 }, { "weight MSE", 4 }, { "rel. output error", 4 }, { "SQNR (dB)", 4 },
                 { "seconds", 3 } })
            t.columns.push_back({ r.name + ": " + column, digits });

    // Model order: the first run's layers, then any layer a later run adds (another model, or a layer
    // the first run kept in float), each after the layer it follows in that run.
    std::vector<std::string> order;
    for (const ReportRun &r : runs) {
        auto insertAt = order.begin();
        for (const LayerResult &l : r.layers) {
            const auto it = std::find(order.begin(), order.end(), l.name);
            insertAt = it != order.end() ? it + 1 : order.insert(insertAt, l.name) + 1;
        }
    }
    for (const std::string &name : order) {
        std::vector<ReportValue> row { name };
        for (const ReportRun &r : runs) {
            const LayerResult *l = nullptr;
            for (const LayerResult &x : r.layers)
                if (x.name == name)
                    l = &x;
            if (!l) {
                row.insert(row.end(), 7, std::monostate {});
                continue;
            }
            row.emplace_back(l->method);
            row.emplace_back(double(l->bits));
            row.emplace_back(l->groupSize < 0 ? ReportValue(std::string("per channel")) : ReportValue(double(l->groupSize)));
            row.emplace_back(l->weightMse);
            row.emplace_back(l->relOutputError);
            row.emplace_back(l->sqnrDb);
            row.emplace_back(l->seconds);
        }
        t.rows.push_back(std::move(row));
    }
    return t;
}

ReportTable runSummaryTable(const std::vector<ReportRun> &runs)
{
    ReportTable t;
    t.name = "runs";
    t.title = "Runs";
    t.columns = { { "run", 0 }, { "plan", 0 }, { "bits/weight", 4 }, { "perplexity", 5 }, { "original perplexity", 5 },
        { "KLD mean", 4 }, { "top-1 agreement", 4 }, { "Pareto front (perplexity)", 0 }, { "Pareto front (KLD)", 0 } };
    const auto ppl = paretoMembership(runs, ReportLoss::Perplexity);
    const auto kld = paretoMembership(runs, ReportLoss::Kld);
    auto yesNo = [](const std::optional<bool> &b) -> ReportValue {
        if (!b)
            return std::monostate {};
        return std::string(*b ? "yes" : "no");
    };
    for (size_t i = 0; i < runs.size(); ++i) {
        const ReportRun &r = runs[i];
        const RunEvaluation *e = r.evaluation ? &*r.evaluation : nullptr;
        const bool hasKld = e && e->hasKld;
        t.rows.push_back({ r.name, planSummary(r.plan), r.bitsPerWeight,
            e ? ReportValue(e->perplexity) : ReportValue(), e ? ReportValue(e->originalPerplexity) : ReportValue(),
            hasKld ? ReportValue(e->kldMean) : ReportValue(), hasKld ? ReportValue(e->top1Agreement) : ReportValue(),
            yesNo(ppl[i]), yesNo(kld[i]) });
    }
    return t;
}

std::string formatReportValue(const ReportValue &value, int markdownDigits, bool forCsv)
{
    if (const auto *s = std::get_if<std::string>(&value))
        return *s;
    const double *d = std::get_if<double>(&value);
    if (!d || std::isnan(*d))
        return {};
    if (std::isinf(*d))
        return *d > 0 ? "inf" : "-inf";
    char buf[64];
    if (forCsv || markdownDigits <= 0) {
        const auto res = std::to_chars(buf, buf + sizeof buf, *d);
        return std::string(buf, res.ptr);
    }
    std::snprintf(buf, sizeof buf, "%.*g", markdownDigits, *d);
    return buf;
}

std::string csvField(std::string_view text)
{
    const bool quote = text.find_first_of(",\"\r\n") != std::string_view::npos
        || (!text.empty() && (text.front() == ' ' || text.back() == ' '));
    if (!quote)
        return std::string(text);
    std::string s = "\"";
    for (char c : text) {
        if (c == '"')
            s += '"';
        s += c;
    }
    s += '"';
    return s;
}

std::string toCsv(const ReportTable &table)
{
    std::string out;
    for (size_t c = 0; c < table.columns.size(); ++c)
        out += (c ? "," : "") + csvField(table.columns[c].name);
    out += "\r\n";
    for (const std::vector<ReportValue> &row : table.rows) {
        for (size_t c = 0; c < table.columns.size(); ++c)
            out += (c ? "," : "") + csvField(c < row.size() ? formatReportValue(row[c], 0, true) : std::string());
        out += "\r\n";
    }
    return out;
}

std::string markdownCell(std::string_view text)
{
    std::string s;
    s.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '\\': case '`': case '*': case '_': case '[': case ']': case '<': case '>': case '|':
            s += '\\';
            s += c;
            break;
        case '\r': case '\n':
            s += ' ';
            break;
        default:
            s += c;
        }
    }
    return s;
}

std::string toMarkdown(const ReportTable &table)
{
    // A column is numeric (right-aligned) when every non-empty value in it is a number.
    std::vector<bool> numeric(table.columns.size(), true);
    for (const std::vector<ReportValue> &row : table.rows)
        for (size_t c = 0; c < row.size() && c < numeric.size(); ++c)
            if (std::holds_alternative<std::string>(row[c]))
                numeric[c] = false;
    std::string out = "|";
    for (const ReportColumn &col : table.columns)
        out += " " + markdownCell(col.name) + " |";
    out += "\n|";
    for (size_t c = 0; c < table.columns.size(); ++c)
        out += numeric[c] ? " ---: |" : " --- |";
    out += "\n";
    for (const std::vector<ReportValue> &row : table.rows) {
        out += "|";
        for (size_t c = 0; c < table.columns.size(); ++c) {
            const std::string v = c < row.size() ? formatReportValue(row[c], table.columns[c].digits, false) : "";
            out += " " + markdownCell(v) + " |";
        }
        out += "\n";
    }
    return out;
}

std::string fileSlug(std::string_view label)
{
    std::string s;
    bool gap = false;
    for (char c : label) {
        const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'
            || c == '_' || c == '-';
        if (keep) {
            if (gap && !s.empty())
                s += '-';
            s += c;
            gap = false;
        } else {
            gap = true;
        }
    }
    while (!s.empty() && (s.front() == '.' || s.front() == '-'))
        s.erase(s.begin());
    while (!s.empty() && s.back() == '-')
        s.pop_back();
    return s.empty() ? std::string("run") : s;
}

} // namespace qs::core
