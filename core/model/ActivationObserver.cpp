#include "model/ActivationObserver.h"

namespace qs::core {

const char *linearInputName(LinearInput in)
{
    switch (in) {
    case LinearInput::AttnIn: return "attn_in";
    case LinearInput::AttnOut: return "attn_out";
    case LinearInput::MlpIn: return "mlp_in";
    case LinearInput::MlpAct: return "mlp_act";
    case LinearInput::Head: return "head";
    }
    return "?";
}

LinearInput linearInputOf(TensorRole role)
{
    switch (role) {
    case TensorRole::Q:
    case TensorRole::K:
    case TensorRole::V: return LinearInput::AttnIn;
    case TensorRole::O: return LinearInput::AttnOut;
    case TensorRole::Gate:
    case TensorRole::Up: return LinearInput::MlpIn;
    case TensorRole::Down: return LinearInput::MlpAct;
    default: return LinearInput::Head;
    }
}

const std::vector<TensorRole> &rolesReading(LinearInput in)
{
    static const std::vector<TensorRole> attnIn = { TensorRole::Q, TensorRole::K, TensorRole::V };
    static const std::vector<TensorRole> attnOut = { TensorRole::O };
    static const std::vector<TensorRole> mlpIn = { TensorRole::Gate, TensorRole::Up };
    static const std::vector<TensorRole> mlpAct = { TensorRole::Down };
    static const std::vector<TensorRole> head = { TensorRole::LmHead };
    switch (in) {
    case LinearInput::AttnIn: return attnIn;
    case LinearInput::AttnOut: return attnOut;
    case LinearInput::MlpIn: return mlpIn;
    case LinearInput::MlpAct: return mlpAct;
    default: return head;
    }
}

} // namespace qs::core
