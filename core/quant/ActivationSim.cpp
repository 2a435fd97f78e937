#include "quant/ActivationSim.h"

#include <algorithm>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "quant/ActivationQuant.h"

namespace qs::core {

namespace {

LinearInput parseLinearInput(const std::string &s, const std::string &context)
{
    for (LinearInput in :
        { LinearInput::AttnIn, LinearInput::AttnOut, LinearInput::MlpIn, LinearInput::MlpAct, LinearInput::Head })
        if (s == linearInputName(in))
            return in;
    throw Error(context + ": input: unknown linear input '" + s + "' (attn_in, attn_out, mlp_in, mlp_act, head)");
}

ActivationScheme parseScheme(const std::string &s, const std::string &context)
{
    for (ActivationScheme a :
        { ActivationScheme::PerToken, ActivationScheme::PerTensorDynamic, ActivationScheme::PerTensorStatic })
        if (s == activationSchemeName(a))
            return a;
    throw Error(
        context + ": scheme: unknown activation scheme '" + s + "' (per_token, per_tensor_dynamic, per_tensor_static)");
}

SymConvention parseConvention(const std::string &s, const std::string &context)
{
    if (s == symConventionName(SymConvention::Restricted))
        return SymConvention::Restricted;
    if (s == symConventionName(SymConvention::FullSigned))
        return SymConvention::FullSigned;
    throw Error(context + ": convention: '" + s + "' is not supported for activations (restricted, full_signed)");
}

} // namespace

const InputQuantSpec *ActivationQuantPlan::find(int block, LinearInput input) const
{
    for (const InputQuantSpec &s : m_inputs)
        if (s.block == block && s.input == input)
            return &s;
    return nullptr;
}

void ActivationQuantPlan::set(const InputQuantSpec &spec)
{
    for (InputQuantSpec &s : m_inputs)
        if (s.block == spec.block && s.input == spec.input) {
            s = spec;
            return;
        }
    m_inputs.push_back(spec);
}

void ActivationQuantPlan::remove(int block, LinearInput input)
{
    std::erase_if(m_inputs, [&](const InputQuantSpec &s) { return s.block == block && s.input == input; });
}

void ActivationQuantPlan::apply(const InputQuantSpec &spec, float *x, int64_t tokens, int64_t cols)
{
    const ActQuantOptions o { spec.bits, spec.convention };
    switch (spec.scheme) {
    case ActivationScheme::PerToken:
        fakeQuantPerToken(x, tokens, cols, o);
        break;
    case ActivationScheme::PerTensorDynamic:
        fakeQuantPerTensor(x, tokens, cols, o, -1.0f);
        break;
    case ActivationScheme::PerTensorStatic:
        fakeQuantPerTensor(x, tokens, cols, o, std::max(spec.staticAbsMax, 0.0f));
        break;
    }
}

LinearInputTransform ActivationQuantPlan::transform() const
{
    if (m_inputs.empty())
        return {};
    auto plan = std::make_shared<const ActivationQuantPlan>(*this);
    return [plan](int block, LinearInput input, float *x, int64_t tokens, int64_t cols) {
        if (const InputQuantSpec *s = plan->find(block, input))
            apply(*s, x, tokens, cols);
    };
}

nlohmann::json ActivationQuantPlan::toJson() const
{
    nlohmann::json list = nlohmann::json::array();
    for (const InputQuantSpec &s : m_inputs) {
        nlohmann::ordered_json o;
        o["block"] = s.block;
        o["input"] = linearInputName(s.input);
        o["bits"] = s.bits;
        o["scheme"] = activationSchemeName(s.scheme);
        o["convention"] = symConventionName(s.convention);
        if (s.scheme == ActivationScheme::PerTensorStatic)
            o["static_absmax"] = s.staticAbsMax;
        o["source"] = s.source;
        o["consumers"] = s.consumers;
        list.push_back(nlohmann::json(o));
    }
    return list;
}

ActivationQuantPlan ActivationQuantPlan::fromJson(const nlohmann::json &j, const std::string &context)
{
    if (!j.is_array())
        throw Error(context + ": expected a list");
    ActivationQuantPlan plan;
    for (size_t i = 0; i < j.size(); ++i) {
        const std::string ctx = context + "[" + std::to_string(i) + "]";
        const nlohmann::json &o = j[i];
        try {
            InputQuantSpec s;
            s.block = o.at("block").get<int>();
            s.input = parseLinearInput(o.at("input").get<std::string>(), ctx);
            s.bits = o.at("bits").get<int>();
            if (s.bits < 2 || s.bits > 8)
                throw Error(ctx + ": bits: " + std::to_string(s.bits) + " is outside 2..8");
            s.scheme = parseScheme(o.at("scheme").get<std::string>(), ctx);
            s.convention = parseConvention(o.value("convention", std::string("restricted")), ctx);
            if (s.scheme == ActivationScheme::PerTensorStatic)
                s.staticAbsMax = o.at("static_absmax").get<float>();
            s.source = o.value("source", std::string());
            s.consumers = o.value("consumers", std::vector<std::string> {});
            plan.set(s);
        } catch (const nlohmann::json::exception &e) {
            throw Error(ctx + ": " + e.what());
        }
    }
    return plan;
}

} // namespace qs::core
