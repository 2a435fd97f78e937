#include "quant/Plan.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/AtomicFile.h"
#include "common/Error.h"

namespace qs::core {

namespace {

const char *const kPlanContext = "plan";

std::string ruleContext(size_t index)
{
    return std::string(kPlanContext) + ": rules[" + std::to_string(index) + "]";
}

ParamValue paramFromJson(const nlohmann::json &v, const std::string &context, const std::string &key)
{
    if (v.is_boolean())
        return v.get<bool>();
    if (v.is_number_integer())
        return v.get<int64_t>();
    if (v.is_number())
        return v.get<double>();
    if (v.is_string())
        return v.get<std::string>();
    throw Error(context + ": " + key + ": expected a number, true/false or a string, got " + v.dump());
}

nlohmann::json paramToJson(const ParamValue &v)
{
    struct V
    {
        nlohmann::json operator()(int64_t i) const { return i; }
        nlohmann::json operator()(double d) const { return d; }
        nlohmann::json operator()(bool b) const { return b; }
        nlohmann::json operator()(const std::string &s) const { return s; }
    };
    return std::visit(V {}, v);
}

// Sets one rule parameter on a config, converting as MethodConfig::fromJson does (an integral double is
// accepted for an int parameter). Errors: "<context>: <key>: ...".
void applyParam(MethodConfig &config, const std::string &key, const ParamValue &value, const std::string &context)
{
    const ParamSpec *spec = config.info().param(key);
    if (!spec)
        throw Error(context + ": " + key + ": method '" + config.method() + "' has no such parameter");
    ParamValue v = value;
    if (spec->type == ParamType::Int && std::holds_alternative<double>(v)) {
        const double d = std::get<double>(v);
        if (!(std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9e15))
            throw Error(context + ": " + key + ": expected an integer, got " + paramToJson(v).dump());
        v = int64_t(d);
    }
    try {
        config.set(key, v);
    } catch (const Error &e) {
        // set() says "<key>: expected ..." already.
        throw Error(context + ": " + e.what());
    }
}

bool isParamOfAnyMethod(const std::string &key)
{
    for (const MethodInfo &m : quantMethods())
        if (m.param(key))
            return true;
    return false;
}

bool coversByDefault(TensorRole role)
{
    switch (role) {
    case TensorRole::Q:
    case TensorRole::K:
    case TensorRole::V:
    case TensorRole::O:
    case TensorRole::Gate:
    case TensorRole::Up:
    case TensorRole::Down:
        return true;
    default:
        return false;
    }
}

bool isPlannable(TensorRole role)
{
    return coversByDefault(role) || role == TensorRole::Embed || role == TensorRole::LmHead;
}

} // namespace

// ---------------------------------------------------------------------------------------------------

bool globMatch(std::string_view pattern, std::string_view name)
{
    // Iterative wildcard matching with backtracking to the last '*' (linear in practice, no recursion).
    size_t p = 0, n = 0;
    size_t starP = std::string_view::npos, starN = 0;
    while (n < name.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
            ++p;
            ++n;
        } else if (p < pattern.size() && pattern[p] == '*') {
            starP = p++;
            starN = n;
        } else if (starP != std::string_view::npos) {
            p = starP + 1;
            n = ++starN;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

NamePattern::NamePattern(std::string pattern, const std::string &context, const std::string &what)
    : m_text(std::move(pattern))
{
    if (m_text.empty())
        throw Error(context + ": " + what + ": empty pattern");
    if (m_text.rfind("re:", 0) == 0) {
        const std::string re = m_text.substr(3);
        try {
            m_regex = std::make_shared<const std::regex>(re, std::regex::ECMAScript);
        } catch (const std::regex_error &e) {
            throw Error(context + ": " + what + ": bad regular expression '" + re + "': " + e.what());
        }
    }
}

bool NamePattern::matches(std::string_view name) const
{
    if (m_regex)
        return std::regex_match(name.begin(), name.end(), *m_regex);
    return globMatch(m_text, name);
}

// ---------------------------------------------------------------------------------------------------

Plan::Plan()
    : m_default(MethodConfig::defaults("rtn"))
{
    m_skip.emplace_back("lm_head");
    m_skip.emplace_back("model.embed_tokens");
}

void Plan::setDefault(const MethodConfig &config)
{
    config.validate(std::string(kPlanContext) + ": default");
    m_default = config;
}

void Plan::checkRule(const PlanRule &rule, const std::string &context) const
{
    if (rule.match.text().empty())
        throw Error(context + ": match: missing");
    if (!rule.method.empty()) {
        if (!findQuantMethod(rule.method))
            throw Error(context + ": method: unknown quantization method '" + rule.method
                + "' (known: " + quantMethodNames() + ")");
        MethodConfig c = MethodConfig::defaults(rule.method);
        for (const auto &[key, value] : rule.params)
            applyParam(c, key, value, context);
        c.validate(context);
        return;
    }
    // No method: check against the default's method when every key belongs to it (the common case);
    // otherwise the keys must at least exist somewhere, and resolve() checks each matched layer.
    bool allInDefault = true;
    for (const auto &[key, value] : rule.params) {
        if (!isParamOfAnyMethod(key))
            throw Error(context + ": " + key + ": no quantization method has such a parameter");
        if (!m_default.info().param(key))
            allInDefault = false;
    }
    if (allInDefault) {
        MethodConfig c = m_default;
        for (const auto &[key, value] : rule.params)
            applyParam(c, key, value, context);
        c.validate(context);
    }
}

void Plan::addRule(const PlanRule &rule)
{
    checkRule(rule, ruleContext(m_rules.size()));
    m_rules.push_back(rule);
}

void Plan::addSkip(const std::string &pattern)
{
    m_skip.emplace_back(pattern, kPlanContext, "skip[" + std::to_string(m_skip.size()) + "]");
}

Plan Plan::fromJson(const nlohmann::json &j)
{
    const std::string pre = kPlanContext;
    if (!j.is_object())
        throw Error(pre + ": expected a JSON object with \"default\", \"rules\" and \"skip\"");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "default" && it.key() != "rules" && it.key() != "skip")
            throw Error(pre + ": " + it.key() + ": unknown key (expected default, rules, skip)");

    Plan plan;
    const auto dit = j.find("default");
    if (dit == j.end())
        throw Error(pre + ": default: missing (e.g. {\"method\": \"rtn\", \"bits\": 8})");
    plan.m_default = MethodConfig::fromJson(*dit, pre + ": default", {});

    plan.m_skip.clear();
    if (const auto sit = j.find("skip"); sit != j.end()) {
        if (!sit->is_array())
            throw Error(pre + ": skip: expected a list of name patterns");
        for (size_t i = 0; i < sit->size(); ++i) {
            const nlohmann::json &s = (*sit)[i];
            const std::string what = "skip[" + std::to_string(i) + "]";
            if (!s.is_string())
                throw Error(pre + ": " + what + ": expected a name pattern string, got " + s.dump());
            plan.m_skip.emplace_back(s.get<std::string>(), pre, what);
        }
    }

    if (const auto rit = j.find("rules"); rit != j.end()) {
        if (!rit->is_array())
            throw Error(pre + ": rules: expected a list of rule objects");
        for (size_t i = 0; i < rit->size(); ++i) {
            const nlohmann::json &r = (*rit)[i];
            const std::string ctx = ruleContext(i);
            if (!r.is_object())
                throw Error(ctx + ": expected an object with \"match\" and parameters");
            const auto mit = r.find("match");
            if (mit == r.end())
                throw Error(ctx + ": match: missing");
            if (!mit->is_string())
                throw Error(ctx + ": match: expected a name pattern string, got " + mit->dump());
            PlanRule rule;
            rule.match = NamePattern(mit->get<std::string>(), ctx, "match");
            for (auto it = r.begin(); it != r.end(); ++it) {
                if (it.key() == "match")
                    continue;
                if (it.key() == "method") {
                    if (!it->is_string())
                        throw Error(ctx + ": method: expected a string, got " + it->dump());
                    rule.method = it->get<std::string>();
                    if (rule.method.empty())
                        throw Error(ctx + ": method: empty (known: " + quantMethodNames() + ")");
                    continue;
                }
                rule.params[it.key()] = paramFromJson(it.value(), ctx, it.key());
            }
            plan.checkRule(rule, ctx);
            plan.m_rules.push_back(std::move(rule));
        }
    }
    return plan;
}

Plan Plan::load(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(path, "cannot open the plan file");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error &e) {
        fail(path, std::string("not valid JSON: ") + e.what());
    }
    try {
        return fromJson(j);
    } catch (const Error &e) {
        // "plan: rules[1]: ..." -> "<path>: rules[1]: ..."
        std::string msg = e.what();
        const std::string prefix = std::string(kPlanContext) + ": ";
        if (msg.rfind(prefix, 0) == 0)
            msg = msg.substr(prefix.size());
        fail(path, msg);
    }
}

nlohmann::json Plan::toJson() const
{
    nlohmann::json j = nlohmann::json::object();
    j["default"] = m_default.toJson();
    nlohmann::json rules = nlohmann::json::array();
    for (const PlanRule &r : m_rules) {
        nlohmann::json o = nlohmann::json::object();
        o["match"] = r.match.text();
        if (!r.method.empty())
            o["method"] = r.method;
        for (const auto &[key, value] : r.params)
            o[key] = paramToJson(value);
        rules.push_back(std::move(o));
    }
    j["rules"] = std::move(rules);
    nlohmann::json skip = nlohmann::json::array();
    for (const NamePattern &s : m_skip)
        skip.push_back(s.text());
    j["skip"] = std::move(skip);
    return j;
}

void Plan::save(const std::string &path) const
{
    writeFileAtomically(path, toJson().dump(2) + "\n");
}

PlannedLayer Plan::resolveLayer(const std::string &name, TensorRole role) const
{
    PlannedLayer layer;
    layer.name = name;
    layer.role = role;
    for (const NamePattern &s : m_skip)
        if (s.matches(name)) {
            layer.reason = "skip: " + s.text();
            return layer;
        }
    MethodConfig config = m_default;
    bool matched = false;
    for (size_t i = 0; i < m_rules.size(); ++i) {
        const PlanRule &r = m_rules[i];
        if (!r.match.matches(name))
            continue;
        matched = true;
        layer.rules.push_back(int(i));
        const std::string ctx = ruleContext(i);
        try {
            if (!r.method.empty() && r.method != config.method())
                config = MethodConfig::defaults(r.method);
            for (const auto &[key, value] : r.params)
                applyParam(config, key, value, ctx);
            config.validate(ctx);
        } catch (const Error &e) {
            throw Error(std::string(e.what()) + " (layer " + name + ")");
        }
    }
    if (!coversByDefault(role) && !matched) {
        layer.reason = "not matched by a rule (embed and lm_head are quantized only when a rule matches them)";
        return layer;
    }
    layer.quantize = true;
    layer.config = std::move(config);
    return layer;
}

std::vector<PlannedLayer> Plan::resolve(const Model &model) const
{
    std::vector<PlannedLayer> out;
    for (const Tensor &t : model.tensors) {
        if (!isPlannable(t.role))
            continue;
        PlannedLayer layer = resolveLayer(t.name, t.role);
        layer.block = t.block;
        layer.rows = t.rows;
        layer.cols = t.cols;
        out.push_back(std::move(layer));
    }
    return out;
}

} // namespace qs::core
