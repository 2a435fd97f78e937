#include "quant/MethodRegistry.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/Error.h"

namespace qs::core {

namespace {

constexpr double kMaxGroupSize = 1 << 20;

// ---------------------------------------------------------------------------------------------------
// Parameter builders shared by several methods.

ParamSpec intParam(std::string name, int64_t def, double min, double max, std::string help, bool advanced = false)
{
    ParamSpec p;
    p.name = std::move(name);
    p.type = ParamType::Int;
    p.defaultValue = def;
    p.min = min;
    p.max = max;
    p.help = std::move(help);
    p.advanced = advanced;
    return p;
}

ParamSpec doubleParam(std::string name, double def, double min, double max, std::string help, bool advanced = false)
{
    ParamSpec p = intParam(std::move(name), 0, min, max, std::move(help), advanced);
    p.type = ParamType::Double;
    p.defaultValue = def;
    return p;
}

ParamSpec boolParam(std::string name, bool def, std::string help, bool advanced = false)
{
    ParamSpec p;
    p.name = std::move(name);
    p.type = ParamType::Bool;
    p.defaultValue = def;
    p.help = std::move(help);
    p.advanced = advanced;
    return p;
}

ParamSpec choiceParam(std::string name, std::string def, std::vector<std::string> choices, std::string help,
                      bool advanced = false)
{
    ParamSpec p;
    p.name = std::move(name);
    p.type = ParamType::Choice;
    p.defaultValue = std::move(def);
    p.choices = std::move(choices);
    p.help = std::move(help);
    p.advanced = advanced;
    return p;
}

ParamSpec bitsParam(int64_t def, int min, int max)
{
    return intParam("bits", def, min, max, "weight bit width");
}

ParamSpec groupSizeParam(int64_t def, bool perTensor)
{
    return intParam("group_size", def, -1, kMaxGroupSize,
                    perTensor ? "input columns per scale; -1 = per output channel, 0 = one scale per tensor"
                              : "input columns per scale; -1 = per output channel");
}

ParamSpec symmetricParam(bool def, const char *autoGrids)
{
    return boolParam("symmetric", def, std::string("symmetric grid (no zero point); with grid 'auto' picks ") + autoGrids);
}

ParamSpec gridParam()
{
    std::vector<std::string> choices{ "auto" };
    std::string help = "quantization grid; 'auto' follows 'symmetric'. ";
    for (const GridInfo &g : gridTable()) {
        choices.emplace_back(g.name);
        help += std::string(g.name) + ": " + g.description + ". ";
    }
    return choiceParam("grid", "auto", std::move(choices), help, true);
}

std::vector<int> bitRange(int lo, int hi)
{
    std::vector<int> v;
    for (int b = lo; b <= hi; ++b)
        v.push_back(b);
    return v;
}

// ---------------------------------------------------------------------------------------------------
// One builder per method.

MethodInfo rtnMethod()
{
    MethodInfo m;
    m.name = "rtn";
    m.displayName = "RTN";
    m.description = "Round to nearest: every group gets its grid from its own weights. No calibration. The "
                    "GPTQ paper's RTN is per channel asymmetric (group_size -1), the AWQ paper's g128 asymmetric.";
    m.supportedBits = bitRange(2, 8);
    m.params = { bitsParam(4, 2, 8), groupSizeParam(128, true), symmetricParam(false, "sym_gptq / minmax"),
                 gridParam() };
    return m;
}

MethodInfo zeroQuantMethod()
{
    MethodInfo m;
    m.name = "zeroquant";
    m.displayName = "ZeroQuant";
    m.description = "Group-wise symmetric weights (DeepSpeed grid, scale absmax/2^(b-1)) and token-wise dynamic "
                    "activation quantization (simulated). Without distillation (LKD).";
    m.quantizesActivations = true;
    m.supportedBits = bitRange(2, 8);
    m.params = { bitsParam(8, 2, 8),
                 groupSizeParam(128, true),
                 symmetricParam(true, "sym_full / minmax"),
                 gridParam(),
                 boolParam("row_groups", false,
                           "DeepSpeed layout: groups of whole output rows instead of input-column groups "
                           "(group_size is then ignored)"),
                 intParam("rows_per_group", 1, 1, 1 << 20, "output rows sharing one scale with row_groups", true),
                 intParam("activation_bits", 8, 0, 8, "per-token activation bits; 0 = activations stay float"),
                 choiceParam("activation_grid", "sym", { "sym", "sym_full" },
                             "activation levels: sym = absmax/(2^(b-1)-1), sym_full = DeepSpeed absmax/2^(b-1)", true) };
    return m;
}

MethodInfo gptqMethod()
{
    MethodInfo m;
    m.name = "gptq";
    m.displayName = "GPTQ";
    m.description = "Second-order error compensation per layer from the input Hessian H = sum x x^T "
                    "(Frantar et al. 2023).";
    m.needsCalibration = true;
    m.calibration.hessian = true;
    m.supportedBits = bitRange(2, 8);
    m.params = {
        bitsParam(4, 2, 8),
        groupSizeParam(128, false),
        symmetricParam(false, "sym_gptq / minmax"),
        gridParam(),
        doubleParam("damp", 0.01, 0.0, 1.0, "relative damping: lambda = damp * mean(diag H)"),
        doubleParam("damp_increment", 0.0025, 1e-6, 1.0,
                    "added to damp after a failed Cholesky factorization (retried while damp <= 1)", true),
        intParam("block_size", 128, 1, 1 << 16, "columns per lazy batch update (speed only)", true),
        boolParam("act_order", false, "quantize columns by descending diag(H) (desc_act)"),
        boolParam("static_groups", false, "group scales from the original weights in natural order (act_order "
                                          "without g_idx indirection)"),
        boolParam("true_sequential", true, "pipeline: gather H of each sub-step (qkv, o, up/gate, down) after the "
                                           "earlier ones are quantized"),
        boolParam("double_precision", false, "run the column loop in double (slower; for verification)", true),
    };
    return m;
}

MethodInfo smoothQuantMethod()
{
    MethodInfo m;
    m.name = "smoothquant";
    m.displayName = "SmoothQuant";
    m.description = "Migrates activation outliers into the weights with per-channel scales folded into the "
                    "preceding norm, then W8A8 (simulated activations).";
    m.needsCalibration = true;
    m.calibration.activationAbsMax = true;
    m.calibration.sharedInputGroups = true;
    m.quantizesActivations = true;
    m.supportedBits = bitRange(4, 8);
    m.params = {
        doubleParam("alpha", 0.5, 0.0, 1.0,
                    "migration strength; 0.5 OPT/BLOOM, LLaMA 0.8, Llama-2/3 0.85, Mistral 0.8, Falcon 0.6-0.7"),
        bitsParam(8, 4, 8),
        groupSizeParam(-1, true),
        symmetricParam(true, "sym / minmax"),
        gridParam(),
        intParam("activation_bits", 8, 2, 8, "activation bits"),
        choiceParam("activation_scheme", "per_token", { "per_token", "per_tensor_dynamic", "per_tensor_static" },
                    "per_token (O1-style), per_tensor_dynamic (O2), per_tensor_static (O3, calibrated after "
                    "smoothing)"),
    };
    return m;
}

MethodInfo awqMethod()
{
    MethodInfo m;
    m.name = "awq";
    m.displayName = "AWQ";
    m.description = "Activation-aware scaling of salient input channels (grid search over alpha) and weight "
                    "clipping search, then group-wise RTN (Lin et al. 2024).";
    m.needsCalibration = true;
    m.calibration.activationMeanAbs = true;
    m.calibration.inputCache = true;
    m.calibration.sharedInputGroups = true;
    m.supportedBits = bitRange(2, 8);
    m.params = {
        bitsParam(4, 2, 8),
        groupSizeParam(128, false),
        symmetricParam(false, "sym / minmax_awq"),
        gridParam(),
        intParam("n_grid", 20, 1, 1000, "alpha grid size: alpha in {0, 1/n, ..., (n-1)/n}"),
        boolParam("clip", true, "search a clipping range per row and group"),
        doubleParam("max_shrink", 0.5, 0.0, 0.95, "largest clipping shrink tried (0.5: down to 0.55 of absmax)", true),
        intParam("clip_grid", 20, 1, 1000, "clipping steps: max_val = absmax * (1 - i/clip_grid)", true),
        intParam("clip_tokens", 512, 1, 1 << 20, "tokens sub-sampled for the clipping search", true),
        boolParam("clip_qk", false, "also clip q_proj/k_proj (the reference skips them)", true),
    };
    return m;
}

MethodInfo efficientQatMethod()
{
    MethodInfo m;
    m.name = "efficientqat";
    m.displayName = "EfficientQAT";
    m.description = "Block-AP (block-wise training of weights, norms, scales and zeros against the float block's "
                    "output) then E2E-QP (end-to-end training of the scales on the LM loss) (Chen et al. 2024). "
                    "Asymmetric min-max init (grid minmax_awq), integer zero points. Learning rates default to "
                    "the paper's 2-bit values for 4096 samples; with a few dozen samples raise them or the epochs.";
    m.needsCalibration = true;
    m.supportedBits = bitRange(2, 8);
    m.params = {
        bitsParam(2, 2, 8),
        groupSizeParam(64, false),
        symmetricParam(false, "sym_gptq (zero fixed at 2^(b-1), only scales trained) / minmax_awq"),
        choiceParam("phases", "both", { "both", "block_ap", "e2e_qp" },
                    "block_ap: block-wise training only; e2e_qp: min-max init then end-to-end scale training; both"),
        intParam("block_ap_epochs", 2, 0, 1000, "Block-AP epochs over the calibration samples (0 = RTN init)"),
        intParam("block_ap_batch", 2, 1, 4096, "Block-AP sequences per optimiser step"),
        doubleParam("block_ap_lr", 2e-5, 0.0, 1.0, "Block-AP learning rate of the weights and norms "
                                                   "(paper: 2e-5 at 2 bits, 1e-5 at 3/4 bits)"),
        doubleParam("qp_lr", 1e-4, 0.0, 1.0, "Block-AP learning rate of the scales and zero points"),
        doubleParam("block_ap_weight_decay", 0.0, 0.0, 1.0, "AdamW weight decay in Block-AP", true),
        boolParam("train_norms", true, "Block-AP also trains the RMSNorm weights in front of trained linears", true),
        intParam("e2e_epochs", 1, 0, 1000, "E2E-QP epochs over the calibration samples"),
        intParam("e2e_batch", 32, 1, 4096, "E2E-QP sequences per optimiser step (gradient accumulation)"),
        doubleParam("e2e_lr", 2e-5, 0.0, 1.0, "E2E-QP learning rate of the scales (paper: 2e-5 at 2 bits, 1e-5 "
                                              "at 3/4 bits)"),
        doubleParam("e2e_max_grad_norm", 0.3, 0.0, 1e6, "E2E-QP gradient-norm clipping (0 = none)", true),
        doubleParam("e2e_warmup_ratio", 0.03, 0.0, 1.0, "E2E-QP linear warm-up as a fraction of the steps", true),
        intParam("seed", 0, 0, 2147483647.0, "sample order per epoch", true),
    };
    return m;
}

// ---------------------------------------------------------------------------------------------------

std::string describe(const ParamValue &v)
{
    struct V
    {
        std::string operator()(int64_t i) const { return std::to_string(i); }
        std::string operator()(double d) const
        {
            std::ostringstream os;
            os << d;
            return os.str();
        }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(const std::string &s) const { return "'" + s + "'"; }
    };
    return std::visit(V{}, v);
}

std::string numberText(double d)
{
    std::ostringstream os;
    os << d;
    return os.str();
}

std::string join(const std::vector<std::string> &v)
{
    std::string s;
    for (const std::string &x : v)
        s += (s.empty() ? "" : ", ") + x;
    return s;
}

nlohmann::json toJsonValue(const ParamValue &v)
{
    struct V
    {
        nlohmann::json operator()(int64_t i) const { return i; }
        nlohmann::json operator()(double d) const { return d; }
        nlohmann::json operator()(bool b) const { return b; }
        nlohmann::json operator()(const std::string &s) const { return s; }
    };
    return std::visit(V{}, v);
}

ParamType typeOf(const ParamValue &v)
{
    switch (v.index()) {
    case 0:
        return ParamType::Int;
    case 1:
        return ParamType::Double;
    case 2:
        return ParamType::Bool;
    default:
        return ParamType::Choice;
    }
}

} // namespace

const char *paramTypeName(ParamType t)
{
    switch (t) {
    case ParamType::Int:
        return "int";
    case ParamType::Double:
        return "double";
    case ParamType::Bool:
        return "bool";
    case ParamType::Choice:
        return "choice";
    }
    return "?";
}

const ParamSpec *MethodInfo::param(std::string_view n) const
{
    for (const ParamSpec &p : params)
        if (p.name == n)
            return &p;
    return nullptr;
}

const std::vector<MethodInfo> &quantMethods()
{
    // The method table. To add a method (e.g. efficientqat, §7): write `MethodInfo efficientQatMethod()` in
    // quant/EfficientQat.cpp (declared in its header, with toEfficientQatOptions(const MethodConfig &)),
    // include the header here and append it below. Cross-parameter rules go in MethodConfig::validate().
    static const std::vector<MethodInfo> methods = {
        rtnMethod(), zeroQuantMethod(), gptqMethod(), smoothQuantMethod(), awqMethod(), efficientQatMethod(),
    };
    return methods;
}

const MethodInfo *findQuantMethod(std::string_view name)
{
    for (const MethodInfo &m : quantMethods())
        if (m.name == name)
            return &m;
    return nullptr;
}

std::string quantMethodNames()
{
    std::vector<std::string> names;
    for (const MethodInfo &m : quantMethods())
        names.push_back(m.name);
    return join(names);
}

const MethodInfo &quantMethod(std::string_view name)
{
    if (const MethodInfo *m = findQuantMethod(name))
        return *m;
    throw Error("unknown quantization method '" + std::string(name) + "' (known: " + quantMethodNames() + ")");
}

nlohmann::json methodTableJson()
{
    nlohmann::json list = nlohmann::json::array();
    for (const MethodInfo &m : quantMethods()) {
        nlohmann::json params = nlohmann::json::array();
        for (const ParamSpec &p : m.params) {
            nlohmann::json jp = { { "name", p.name },
                                  { "type", paramTypeName(p.type) },
                                  { "default", toJsonValue(p.defaultValue) },
                                  { "help", p.help },
                                  { "advanced", p.advanced } };
            if (p.type == ParamType::Int || p.type == ParamType::Double) {
                jp["min"] = p.min;
                jp["max"] = p.max;
            }
            if (p.type == ParamType::Choice)
                jp["choices"] = p.choices;
            params.push_back(std::move(jp));
        }
        list.push_back({ { "name", m.name },
                         { "display_name", m.displayName },
                         { "description", m.description },
                         { "needs_calibration", m.needsCalibration },
                         { "calibration",
                           { { "hessian", m.calibration.hessian },
                             { "activation_absmax", m.calibration.activationAbsMax },
                             { "activation_mean_abs", m.calibration.activationMeanAbs },
                             { "input_cache", m.calibration.inputCache },
                             { "shared_input_groups", m.calibration.sharedInputGroups } } },
                         { "quantizes_activations", m.quantizesActivations },
                         { "bits", m.supportedBits },
                         { "params", std::move(params) } });
    }
    return list;
}

// ---------------------------------------------------------------------------------------------------
// MethodConfig

MethodConfig MethodConfig::defaults(std::string_view method)
{
    const MethodInfo &m = quantMethod(method);
    MethodConfig c;
    c.m_method = m.name;
    for (const ParamSpec &p : m.params)
        c.m_values[p.name] = p.defaultValue;
    return c;
}

const ParamValue &MethodConfig::value(std::string_view name, ParamType type) const
{
    const auto it = m_values.find(name);
    if (it == m_values.end())
        throw Error("method '" + m_method + "' has no parameter '" + std::string(name) + "'");
    if (typeOf(it->second) != type)
        throw Error("method '" + m_method + "': parameter '" + std::string(name) + "' is " +
                    paramTypeName(typeOf(it->second)) + ", not " + paramTypeName(type));
    return it->second;
}

int64_t MethodConfig::getInt(std::string_view name) const
{
    return std::get<int64_t>(value(name, ParamType::Int));
}

double MethodConfig::getDouble(std::string_view name) const
{
    return std::get<double>(value(name, ParamType::Double));
}

bool MethodConfig::getBool(std::string_view name) const
{
    return std::get<bool>(value(name, ParamType::Bool));
}

const std::string &MethodConfig::getChoice(std::string_view name) const
{
    return std::get<std::string>(value(name, ParamType::Choice));
}

void MethodConfig::set(std::string_view name, const ParamValue &v)
{
    const MethodInfo &m = info();
    const ParamSpec *p = m.param(name);
    if (!p)
        throw Error("method '" + m_method + "' has no parameter '" + std::string(name) + "'");
    if (p->type == ParamType::Double && typeOf(v) == ParamType::Int) {
        m_values[p->name] = double(std::get<int64_t>(v));
        return;
    }
    if (typeOf(v) != p->type)
        throw Error(std::string(name) + ": expected " + paramTypeName(p->type) + ", got " + paramTypeName(typeOf(v)) +
                    " " + describe(v));
    m_values[p->name] = v;
}

GridId MethodConfig::grid() const
{
    if (m_method == "efficientqat") // fixed quantizer (§7.1), no "grid" parameter
        return getBool("symmetric") ? GridId::SymGptq : GridId::MinMaxAwq;
    const std::string &g = getChoice("grid");
    if (g != "auto") {
        const GridInfo *info = findGrid(g);
        if (!info)
            throw Error("grid: unknown grid '" + g + "' (known: auto, " + gridNames() + ")");
        return info->id;
    }
    const bool sym = getBool("symmetric");
    if (m_method == "awq")
        return sym ? GridId::Sym : GridId::MinMaxAwq;
    if (m_method == "zeroquant")
        return sym ? GridId::SymFull : GridId::MinMax;
    if (m_method == "smoothquant")
        return sym ? GridId::Sym : GridId::MinMax;
    return sym ? GridId::SymGptq : GridId::MinMax; // rtn, gptq, and the default for new methods
}

QuantSpec MethodConfig::quantSpec() const
{
    QuantSpec s;
    s.grid = grid();
    s.bits = int(getInt("bits"));
    s.groupSize = int(getInt("group_size"));
    s.rowGroupSize = 1;
    if (m_method == "zeroquant" && getBool("row_groups")) {
        s.groupSize = -1;
        s.rowGroupSize = int(getInt("rows_per_group"));
    }
    return s;
}

void MethodConfig::validate(const std::string &context) const
{
    const std::string pre = context.empty() ? std::string() : context + ": ";
    const MethodInfo *m = findQuantMethod(m_method);
    if (!m)
        throw Error(pre + "method: unknown quantization method '" + m_method + "' (known: " + quantMethodNames() + ")");
    for (const ParamSpec &p : m->params) {
        const auto it = m_values.find(p.name);
        if (it == m_values.end())
            throw Error(pre + p.name + ": missing");
        const ParamValue &v = it->second;
        if (typeOf(v) != p.type)
            throw Error(pre + p.name + ": expected " + paramTypeName(p.type) + ", got " + describe(v));
        if (p.type == ParamType::Int || p.type == ParamType::Double) {
            const double d = p.type == ParamType::Int ? double(std::get<int64_t>(v)) : std::get<double>(v);
            if (!(d >= p.min && d <= p.max))
                throw Error(pre + p.name + ": " + describe(v) + " is outside " + numberText(p.min) + ".." +
                            numberText(p.max));
        }
        if (p.type == ParamType::Choice) {
            const std::string &s = std::get<std::string>(v);
            if (std::find(p.choices.begin(), p.choices.end(), s) == p.choices.end())
                throw Error(pre + p.name + ": '" + s + "' is not one of " + join(p.choices));
        }
    }
    for (const auto &[name, v] : m_values)
        if (!m->param(name))
            throw Error(pre + name + ": method '" + m_method + "' has no such parameter");

    // Cross-parameter rules.
    const int bits = int(getInt("bits"));
    if (std::find(m->supportedBits.begin(), m->supportedBits.end(), bits) == m->supportedBits.end()) {
        std::vector<std::string> b;
        for (int x : m->supportedBits)
            b.push_back(std::to_string(x));
        throw Error(pre + "bits: " + m_method + " supports " + join(b) + " (got " + std::to_string(bits) + ")");
    }
    const int64_t gs = getInt("group_size");
    const bool perTensorAllowed = m_method == "rtn" || m_method == "zeroquant" || m_method == "smoothquant";
    if (gs == 0 && !perTensorAllowed)
        throw Error(pre + "group_size: 0 (per tensor) is not supported by " + m_method + "; use -1 or a group size");
    const GridId gid = grid();
    const GridInfo &g = gridInfo(gid);
    if (bits < g.minBits || bits > g.maxBits)
        throw Error(pre + "bits: grid '" + g.name + "' needs bits " +
                    (g.minBits == g.maxBits ? std::to_string(g.minBits)
                                            : std::to_string(g.minBits) + ".." + std::to_string(g.maxBits)) +
                    " (got " + std::to_string(bits) + ")");
    const QuantSpec spec = quantSpec();
    if (g.requiredGroupSize > 0 && spec.groupSize != g.requiredGroupSize)
        throw Error(pre + "group_size: grid '" + g.name + "' needs group_size " + std::to_string(g.requiredGroupSize) +
                    (spec.rowGroupSize > 1 ? " (and no row groups)" : "") + " (got " + std::to_string(gs) + ")");
    if (m_method == "gptq" && getBool("act_order") && !getBool("static_groups") && g.requiredGroupSize > 0)
        throw Error(pre + "act_order: grid '" + g.name + "' stores blocks in natural column order; set static_groups");
    if (m_method == "zeroquant") {
        const int64_t ab = getInt("activation_bits");
        if (ab == 1)
            throw Error(pre + "activation_bits: 1 is not supported (0 = float, or 2..8)");
    }
}

MethodConfig MethodConfig::fromJson(const nlohmann::json &j, const std::string &context,
                                    const std::vector<std::string> &ignoredKeys)
{
    const std::string pre = context.empty() ? std::string() : context + ": ";
    if (!j.is_object())
        throw Error(pre + "expected an object with \"method\" and its parameters");
    const auto mit = j.find("method");
    if (mit == j.end())
        throw Error(pre + "method: missing (known: " + quantMethodNames() + ")");
    if (!mit->is_string())
        throw Error(pre + "method: expected a string");
    const std::string method = mit->get<std::string>();
    if (!findQuantMethod(method))
        throw Error(pre + "method: unknown quantization method '" + method + "' (known: " + quantMethodNames() + ")");
    MethodConfig c = defaults(method);
    const MethodInfo &m = c.info();
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string &key = it.key();
        if (key == "method" || std::find(ignoredKeys.begin(), ignoredKeys.end(), key) != ignoredKeys.end())
            continue;
        const ParamSpec *p = m.param(key);
        if (!p) {
            std::vector<std::string> names;
            for (const ParamSpec &q : m.params)
                names.push_back(q.name);
            throw Error(pre + key + ": method '" + method + "' has no such parameter (parameters: " + join(names) + ")");
        }
        const nlohmann::json &v = it.value();
        switch (p->type) {
        case ParamType::Int:
            if (v.is_number_integer()) {
                c.m_values[key] = v.get<int64_t>();
            } else if (v.is_number_float() && std::isfinite(v.get<double>()) &&
                       v.get<double>() == std::trunc(v.get<double>()) && std::fabs(v.get<double>()) < 9e15) {
                c.m_values[key] = int64_t(v.get<double>());
            } else {
                throw Error(pre + key + ": expected an integer, got " + v.dump());
            }
            break;
        case ParamType::Double:
            if (!v.is_number())
                throw Error(pre + key + ": expected a number, got " + v.dump());
            c.m_values[key] = v.get<double>();
            break;
        case ParamType::Bool:
            if (!v.is_boolean())
                throw Error(pre + key + ": expected true or false, got " + v.dump());
            c.m_values[key] = v.get<bool>();
            break;
        case ParamType::Choice:
            if (!v.is_string())
                throw Error(pre + key + ": expected one of " + join(p->choices) + ", got " + v.dump());
            c.m_values[key] = v.get<std::string>();
            break;
        }
    }
    c.validate(context);
    return c;
}

nlohmann::json MethodConfig::toJson() const
{
    nlohmann::json j = nlohmann::json::object();
    j["method"] = m_method;
    for (const auto &[name, v] : m_values)
        j[name] = toJsonValue(v);
    return j;
}

// ---------------------------------------------------------------------------------------------------
// Converters

namespace {

void expectMethod(const MethodConfig &c, const char *method)
{
    if (c.method() != method)
        throw Error("expected a '" + std::string(method) + "' configuration, got '" + c.method() + "'");
}

} // namespace

EfficientQatOptions toEfficientQatOptions(const MethodConfig &c)
{
    expectMethod(c, "efficientqat");
    EfficientQatOptions o;
    o.bits = int(c.getInt("bits"));
    o.groupSize = int(c.getInt("group_size"));
    o.symmetric = c.getBool("symmetric");
    const std::string &phases = c.getChoice("phases");
    o.blockAp = phases != "e2e_qp";
    o.e2eQp = phases != "block_ap";
    o.blockApEpochs = int(c.getInt("block_ap_epochs"));
    o.blockApBatch = int(c.getInt("block_ap_batch"));
    o.blockApLr = c.getDouble("block_ap_lr");
    o.blockApQpLr = c.getDouble("qp_lr");
    o.blockApWeightDecay = c.getDouble("block_ap_weight_decay");
    o.trainNorms = c.getBool("train_norms");
    o.e2eEpochs = int(c.getInt("e2e_epochs"));
    o.e2eBatch = int(c.getInt("e2e_batch"));
    o.e2eLr = c.getDouble("e2e_lr");
    o.e2eMaxGradNorm = c.getDouble("e2e_max_grad_norm");
    o.e2eWarmupRatio = c.getDouble("e2e_warmup_ratio");
    o.seed = uint64_t(c.getInt("seed"));
    return o;
}

QuantSpec toRtnSpec(const MethodConfig &c)
{
    expectMethod(c, "rtn");
    return c.quantSpec();
}

GptqOptions toGptqOptions(const MethodConfig &c)
{
    expectMethod(c, "gptq");
    GptqOptions o;
    o.spec = c.quantSpec();
    o.percDamp = c.getDouble("damp");
    o.dampIncrement = c.getDouble("damp_increment");
    o.blockSize = int(c.getInt("block_size"));
    o.actOrder = c.getBool("act_order");
    o.staticGroups = c.getBool("static_groups");
    o.doublePrecision = c.getBool("double_precision");
    return o;
}

AwqOptions toAwqOptions(const MethodConfig &c)
{
    expectMethod(c, "awq");
    AwqOptions o;
    o.spec = c.quantSpec();
    o.nGrid = int(c.getInt("n_grid"));
    o.clip = c.getBool("clip");
    o.maxShrink = c.getDouble("max_shrink");
    o.clipGrid = int(c.getInt("clip_grid"));
    o.clipTokens = int(c.getInt("clip_tokens"));
    o.clipQK = c.getBool("clip_qk");
    return o;
}

ZeroQuantOptions toZeroQuantOptions(const MethodConfig &c)
{
    expectMethod(c, "zeroquant");
    ZeroQuantOptions o;
    o.bits = int(c.getInt("bits"));
    o.grid = c.grid();
    o.groupSize = int(c.getInt("group_size"));
    o.rowGroups = c.getBool("row_groups");
    o.rowsPerGroup = int(c.getInt("rows_per_group"));
    o.activationBits = int(c.getInt("activation_bits"));
    o.activationConvention =
        c.getChoice("activation_grid") == "sym_full" ? SymConvention::FullSigned : SymConvention::Restricted;
    return o;
}

SmoothQuantOptions toSmoothQuantOptions(const MethodConfig &c)
{
    expectMethod(c, "smoothquant");
    SmoothQuantOptions o;
    o.alpha = c.getDouble("alpha");
    o.weightSpec = c.quantSpec();
    o.activationBits = int(c.getInt("activation_bits"));
    const std::string &scheme = c.getChoice("activation_scheme");
    o.activationScheme = scheme == "per_tensor_dynamic"  ? ActivationScheme::PerTensorDynamic
                         : scheme == "per_tensor_static" ? ActivationScheme::PerTensorStatic
                                                         : ActivationScheme::PerToken;
    return o;
}

} // namespace qs::core
