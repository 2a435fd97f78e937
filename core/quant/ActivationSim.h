#pragma once
// The simulated activation quantization of a quantized model (W8A8 SmoothQuant, ZeroQuant): which linear
// inputs are fake-quantized, and how, as plain data that a run directory stores (run.json
// "activation_quant") and that becomes a LinearInputTransform for the forward pass.
//
// Shared inputs: q/k/v read one buffer and gate/up another (the forward pass fuses their GEMMs, and a
// deployed INT8 kernel would quantize the shared input once too), so an input is fake-quantized as soon as
// ANY of its consumers uses a method that quantizes activations; its other consumers (e.g. a GPTQ k_proj
// beside a SmoothQuant q_proj) then read the quantized input as well. When several consumers ask for
// different settings, the first one in role order (q, k, v / gate, up) wins and the pipeline reports a
// warning. o_proj and down_proj have inputs of their own.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/ActivationObserver.h"
#include "quant/SmoothQuant.h"

namespace qs::core {

struct InputQuantSpec
{
    int block = 0; // −1: the LM head's input
    LinearInput input = LinearInput::AttnIn;
    int bits = 8; // 2..8
    ActivationScheme scheme = ActivationScheme::PerToken;
    SymConvention convention = SymConvention::Restricted; // Restricted (a) or FullSigned (b)
    float staticAbsMax = -1.0f; // PerTensorStatic: the calibrated absmax (after smoothing)
    std::string source; // the method that asked for it: "smoothquant" | "zeroquant"
    std::vector<std::string> consumers; // layers whose method quantizes this input

    bool operator==(const InputQuantSpec &) const = default;
};

class ActivationQuantPlan
{
public:
    bool empty() const { return m_inputs.empty(); }
    const std::vector<InputQuantSpec> &inputs() const { return m_inputs; }
    const InputQuantSpec *find(int block, LinearInput input) const;
    // Adds, or replaces the spec of the same (block, input).
    void set(const InputQuantSpec &spec);
    void remove(int block, LinearInput input);

    // Applies one spec to x (tokens × cols) in place.
    static void apply(const InputQuantSpec &spec, float *x, int64_t tokens, int64_t cols);
    // A transform for ForwardOptions/Model::inputTransform holding a copy of the plan; empty when empty().
    LinearInputTransform transform() const;

    // [{"block", "input" (linearInputName), "bits", "scheme" (activationSchemeName), "convention"
    // (symConventionName), "static_absmax" (per_tensor_static only), "source", "consumers"}]
    nlohmann::json toJson() const;
    // Throws Error("<context>: ...") on unknown names or bad values.
    static ActivationQuantPlan fromJson(const nlohmann::json &j, const std::string &context = "activation_quant");

    bool operator==(const ActivationQuantPlan &) const = default;

private:
    std::vector<InputQuantSpec> m_inputs;
};

} // namespace qs::core
