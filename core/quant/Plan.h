#pragma once
// A quantization plan (specs/cli.md "Plan files"): which method and parameters each layer of a model gets.
//
//   {
//     "default": {"method": "rtn", "bits": 8, "group_size": 128, "symmetric": true},
//     "rules": [{"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32},
//               {"match": "re:model\\.layers\\.[0-3]\\..*", "bits": 3}],
//     "skip": ["lm_head", "model.embed_tokens"]
//   }
//
// Matching. "match" (and every "skip" entry) is a glob over canonical layer names (Model.h): '*' matches any
// run of characters INCLUDING dots (so "model.layers.*.q_proj" matches every block), '?' exactly one
// character, everything else itself; the whole name must match. A "re:" prefix makes the rest an ECMAScript
// regular expression that must match the whole name (std::regex_match).
//
// Which layers a plan covers. The linear layers q/k/v/o/gate/up/down of every block start from the
// default. model.embed_tokens and lm_head are quantized only when at least one rule matches them (the
// default alone never applies to them, so {"match": "model.layers.*"}-style plans and the cli.md example
// leave them in float); norms, biases and everything else are never quantized. A layer matched by any
// "skip" entry stays in float whatever the rules say (skip wins over rules).
//
// Merge rule (resolve): the layer's config starts as the default block's config. Then every rule whose
// pattern matches the name is applied in file order (later rules win):
//   1. when the rule names a "method" different from the method in effect, the config is reset to that
//      method's registry defaults (nothing carries over from the default block or earlier rules, since
//      parameters of different methods do not mean the same thing);
//   2. when the rule names the same method, or none, the config in effect is kept (so the default block's
//      values, or an earlier rule's, are inherited);
//   3. the rule's parameters are then set on the config one by one.
// The result is validated (MethodConfig::validate). Examples, with default {"method":"rtn","bits":8}:
//   {"match":"*down_proj","bits":4}                   -> rtn, 4 bits, other values from the default block
//   {"match":"*down_proj","method":"gptq"}            -> gptq with gptq's defaults (4 bits, g128, ...)
//   {"match":"*","method":"gptq"}, {"match":"*q_proj","act_order":true} -> gptq with act_order on q_proj
//
// Validation and errors. fromJson checks the structure, every pattern (bad regex), every rule that names
// a method (its parameters exist for that method, types, ranges, cross-parameter rules, exactly as
// MethodConfig::fromJson) and the default block; a rule without "method" is checked against the default's
// method when all its keys belong to it, otherwise each key must be a parameter of some method and the
// definitive check happens in resolve() for the layers it matches. Messages name the place and the
// parameter: "plan: rules[2]: bits: 9 is outside 2..8", "plan: rules[0]: method: unknown quantization
// method 'foo' (known: ...)", "plan: default: group_size: ...", and resolve() adds the layer:
// "plan: rules[1]: act_order: method 'rtn' has no such parameter (layer model.layers.0.mlp.up_proj)".
//
// "rules" and "skip" may be omitted (empty lists); "default" is required.
//
// Saving. toJson() writes "default" as the full default config (every parameter), each rule exactly as
// given (match, method when given, and its parameters), and "skip"; fromJson(toJson()) == *this.

#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/Model.h"
#include "quant/MethodRegistry.h"

namespace qs::core {

// '*' any run of characters (dots included), '?' one character; whole-string match.
bool globMatch(std::string_view pattern, std::string_view name);

// A "match" or "skip" pattern: a glob, or "re:<regex>" (whole-name ECMAScript match).
class NamePattern
{
public:
    NamePattern() = default;
    // Throws Error("<context>: <what>: bad regular expression '...': <reason>") for a bad regex or an empty
    // pattern.
    NamePattern(std::string pattern, const std::string &context = "plan", const std::string &what = "match");

    bool matches(std::string_view name) const;
    const std::string &text() const { return m_text; }
    bool isRegex() const { return m_regex != nullptr; }

    bool operator==(const NamePattern &o) const { return m_text == o.m_text; }

private:
    std::string m_text;
    std::shared_ptr<const std::regex> m_regex; // set for "re:" patterns
};

struct PlanRule
{
    NamePattern match;
    std::string method; // empty: keeps the method in effect (see the merge rule)
    std::map<std::string, ParamValue, std::less<>> params; // as written (JSON integers are int64_t, other
                                                           // numbers double; converted on apply)

    bool operator==(const PlanRule &) const = default;
};

// One layer of a model under a plan.
struct PlannedLayer
{
    std::string name; // canonical
    int block = -1;
    TensorRole role = TensorRole::Q;
    int64_t rows = 0;
    int64_t cols = 0;
    bool quantize = false; // false: stays in float
    std::string reason; // why it is in float: "skip: lm_head", "embed and lm_head need a rule", ...
    MethodConfig config; // the resolved config when quantize
    std::vector<int> rules; // indices of the matching rules, in order (applied ones)
};

class Plan
{
public:
    // A plan with default RTN (registry defaults), no rules, and skip ["lm_head", "model.embed_tokens"].
    Plan();

    // Parses and validates a plan object (see the header comment). Throws Error("plan: ...").
    static Plan fromJson(const nlohmann::json &j);
    // Reads a plan file. Errors name the file: "<path>: rules[1]: bits: ...", "<path>: not valid JSON: ...".
    static Plan load(const std::string &path);
    nlohmann::json toJson() const;
    // Writes toJson() (indented) atomically. Throws Error naming path.
    void save(const std::string &path) const;

    const MethodConfig &defaultConfig() const { return m_default; }
    void setDefault(const MethodConfig &config); // validates (Error "plan: default: ...")
    const std::vector<PlanRule> &rules() const { return m_rules; }
    // Appends a rule after validating it as fromJson would (Error "plan: rules[i]: ...").
    void addRule(const PlanRule &rule);
    void clearRules() { m_rules.clear(); }
    const std::vector<NamePattern> &skip() const { return m_skip; }
    void addSkip(const std::string &pattern); // Error for a bad "re:" pattern
    void clearSkip() { m_skip.clear(); }

    // The layers of the model the plan is about (every block linear, plus embed and lm_head), in model
    // order, each with its resolved config or the reason it stays in float. Throws Error naming the rule,
    // the parameter and the layer when a rule does not apply to a layer it matches.
    std::vector<PlannedLayer> resolve(const Model &model) const;
    // Resolves one layer by name and role (for GUI previews; embed/lm_head need a matching rule).
    PlannedLayer resolveLayer(const std::string &name, TensorRole role) const;

    bool operator==(const Plan &) const = default;

private:
    void checkRule(const PlanRule &rule, const std::string &context) const;

    MethodConfig m_default;
    std::vector<PlanRule> m_rules;
    std::vector<NamePattern> m_skip;
};

} // namespace qs::core
