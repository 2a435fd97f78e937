#pragma once
// The one table of quantization methods (house style, practice 5): names, descriptions, what calibration
// each needs, supported bit widths and typed parameters with defaults, ranges and help. The same table
// fills the GUI's method menus and forms, `quantscope-cli quantize --list-methods`, and validates plans.
//
// MethodConfig is a method name plus a value for every parameter of that method, in the plan-file
// vocabulary of specs/cli.md: {"method": "gptq", "bits": 4, "group_size": 128, "symmetric": false,
// "act_order": true, "damp": 0.01, ...}. group_size −1 = per output channel; 0 = per tensor where the
// method allows it. "grid" (default "auto") picks the quantization grid of Grid.h; "auto" resolves from
// "symmetric" per method (rtn/gptq: minmax | sym_gptq, awq: minmax_awq | sym, zeroquant: minmax | sym_full,
// smoothquant: minmax | sym); an explicit grid wins over "symmetric".
//
// Extension point: a new method (e.g. `efficientqat`) is one builder function returning its MethodInfo,
// declared in its own header and appended in quantMethods() (MethodRegistry.cpp, see the comment there),
// plus a to<Method>Options(const MethodConfig &) converter next to it. Nothing else switches on names.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "quant/Awq.h"
#include "quant/Gptq.h"
#include "quant/Rtn.h"
#include "quant/SmoothQuant.h"
#include "quant/ZeroQuant.h"
#include "train/EfficientQatOptions.h"

namespace qs::core {

enum class ParamType : uint8_t { Int, Double, Bool, Choice };
const char *paramTypeName(ParamType t); // "int", "double", "bool", "choice"

using ParamValue = std::variant<int64_t, double, bool, std::string>;

struct ParamSpec
{
    std::string name; // JSON key
    ParamType type = ParamType::Int;
    ParamValue defaultValue;
    double min = 0.0;                 // Int and Double, inclusive
    double max = 0.0;
    std::vector<std::string> choices; // Choice
    std::string help;
    bool advanced = false;            // the GUI may fold it away
};

// What the pipeline must collect before calling the method (algorithms.md §2).
struct CalibrationNeeds
{
    bool hessian = false;           // H = Σ x xᵀ per linear input (GPTQ)
    bool activationAbsMax = false;  // per-channel max |x| (SmoothQuant)
    bool activationMeanAbs = false; // per-channel mean |x| (AWQ)
    bool inputCache = false;        // sub-sampled inputs themselves (AWQ searches)
    bool sharedInputGroups = false; // works on all linears reading one input together (SmoothQuant, AWQ)
};

struct MethodInfo
{
    std::string name;        // plan value of "method"
    std::string displayName; // for menus
    std::string description;
    bool needsCalibration = false;
    CalibrationNeeds calibration;
    bool quantizesActivations = false; // simulated W·A· (SmoothQuant, ZeroQuant)
    std::vector<int> supportedBits;    // weight bits
    std::vector<ParamSpec> params;     // in display order

    const ParamSpec *param(std::string_view name) const;
};

// All methods, in display order.
const std::vector<MethodInfo> &quantMethods();
const MethodInfo *findQuantMethod(std::string_view name);
// Throws Error("unknown quantization method 'x' (known: rtn, ...)").
const MethodInfo &quantMethod(std::string_view name);
std::string quantMethodNames(); // "rtn, zeroquant, gptq, smoothquant, awq"

// The table as JSON (for `--list-methods --json` and the GUI): a list of {name, display_name,
// description, needs_calibration, calibration: {...}, quantizes_activations, bits: [...], params:
// [{name, type, default, min, max, choices, help, advanced}]}.
nlohmann::json methodTableJson();

class MethodConfig
{
public:
    MethodConfig() = default;

    // Every parameter at its default. Throws Error on an unknown method.
    static MethodConfig defaults(std::string_view method);
    // Parses a plan object. "method" is required; every other key must be a parameter of that method
    // (values type-checked; missing ones take defaults), except the keys in ignoredKeys (plan-level keys such
    // as "match"). Validates. Errors read "<context>: <parameter>: <problem>".
    static MethodConfig fromJson(const nlohmann::json &j, const std::string &context = "plan",
                                 const std::vector<std::string> &ignoredKeys = { "match" });
    // {"method": ..., every parameter: value}; fromJson(toJson()) == *this.
    nlohmann::json toJson() const;

    const std::string &method() const { return m_method; }
    const MethodInfo &info() const { return quantMethod(m_method); }
    const std::map<std::string, ParamValue, std::less<>> &values() const { return m_values; }

    // Typed getters; throw Error when the method has no such parameter or it has another type.
    int64_t getInt(std::string_view name) const;
    double getDouble(std::string_view name) const;
    bool getBool(std::string_view name) const;
    const std::string &getChoice(std::string_view name) const;

    // Sets one parameter (type-checked; an int is accepted for a double). Call validate() afterwards.
    void set(std::string_view name, const ParamValue &value);

    // Ranges, choices, supported bits, and cross-parameter rules (grid versus bits and group size,
    // act-order with GGUF grids, per tensor only where allowed). Throws Error("<context>: <param>: ...").
    void validate(const std::string &context = "plan") const;

    GridId grid() const;        // "grid" with "auto" resolved
    QuantSpec quantSpec() const; // grid, bits, group_size (and ZeroQuant row groups)

    bool operator==(const MethodConfig &) const = default;

private:
    const ParamValue &value(std::string_view name, ParamType type) const;

    std::string m_method;
    std::map<std::string, ParamValue, std::less<>> m_values;
};

// Converters to the options structs the method functions take. Throw Error when the config's method
// is another one.
GptqOptions toGptqOptions(const MethodConfig &c);
AwqOptions toAwqOptions(const MethodConfig &c);
ZeroQuantOptions toZeroQuantOptions(const MethodConfig &c);
SmoothQuantOptions toSmoothQuantOptions(const MethodConfig &c);
QuantSpec toRtnSpec(const MethodConfig &c);
// Block-AP runs only in "both"/"block_ap", E2E-QP only in "both"/"e2e_qp" (phases).
EfficientQatOptions toEfficientQatOptions(const MethodConfig &c);

} // namespace qs::core
