#include "train/TrainBlock.h"

#include "common/Error.h"
#include "model/ForwardKernels.h"

namespace qs::core::train {

int blockSlot(TensorRole role)
{
    for (int i = 0; i < kBlockLinears; ++i)
        if (kBlockRoles[size_t(i)] == role)
            return i;
    return -1;
}

BlockShape BlockShape::fromHyperParams(const HyperParams &h)
{
    BlockShape s;
    s.hidden = h.hiddenSize;
    s.intermediate = h.intermediateSize;
    s.heads = h.numHeads;
    s.kvHeads = h.numKvHeads;
    s.headDim = h.headDim;
    s.eps = h.rmsEps;
    if (s.hidden <= 0 || s.heads <= 0 || s.kvHeads <= 0 || s.headDim <= 0 || s.headDim % 2 != 0 ||
        s.heads % s.kvHeads != 0 || s.intermediate <= 0)
        throw Error("training: hyper-parameters unsuitable for the Llama block");
    // Dynamic NTK depends on the sequence length only beyond the trained context; training sequences are
    // shorter, so one table serves (kernels::ropeInverseFrequencies at length 1).
    s.ropeInverseFrequencies = kernels::ropeInverseFrequencies(h, 1);
    return s;
}

template <class S> void TrainLinear<S>::prepare()
{
    switch (mode) {
    case LinearMode::Fixed:
    case LinearMode::Float:
        weff = w;
        break;
    case LinearMode::FakeQuant:
        quant.fakeQuant(w, weff);
        break;
    case LinearMode::FrozenCodes:
        quant.dequantize(codes, weff);
        break;
    }
}

template <class S> void TrainBlock<S>::prepare()
{
    for (TrainLinear<S> &l : lin)
        l.prepare();
}

template <class S> Mat<S> TrainBlock<S>::forward(const Mat<S> &x, Cache *cache) const
{
    Cache local;
    Cache &c = cache ? *cache : local;
    const int64_t n = x.rows();
    c.x = x;
    c.rope = makeRopeTable<S>(shape.ropeInverseFrequencies, n);
    rmsNormForward<S>(x, attnNorm, shape.eps, c.a, c.r1);
    linearForward<S>(c.a, lin[0].weff, lin[0].bias, c.q);
    linearForward<S>(c.a, lin[1].weff, lin[1].bias, c.k);
    linearForward<S>(c.a, lin[2].weff, lin[2].bias, c.v);
    ropeForward<S>(c.q, 0, shape.heads, shape.headDim, c.rope);
    ropeForward<S>(c.k, 0, shape.kvHeads, shape.headDim, c.rope);
    const AttentionShape as { shape.heads, shape.kvHeads, shape.headDim };
    attentionForward<S>(as, c.q, c.k, c.v, c.attn, c.probs);
    Mat<S> o;
    linearForward<S>(c.attn, lin[3].weff, lin[3].bias, o);
    c.x1 = x + o;
    rmsNormForward<S>(c.x1, mlpNorm, shape.eps, c.m, c.r2);
    linearForward<S>(c.m, lin[4].weff, lin[4].bias, c.gate);
    linearForward<S>(c.m, lin[5].weff, lin[5].bias, c.up);
    swigluForward<S>(c.gate, c.up, c.act);
    Mat<S> y;
    linearForward<S>(c.act, lin[6].weff, lin[6].bias, y);
    y += c.x1;
    return y;
}

template <class S> void TrainBlock<S>::zeroGrads(BlockGrads<S> &g) const
{
    for (int i = 0; i < kBlockLinears; ++i) {
        if (lin[size_t(i)].trained())
            g.dweff[size_t(i)].setZero(lin[size_t(i)].weff.rows(), lin[size_t(i)].weff.cols());
        else
            g.dweff[size_t(i)].resize(0, 0);
    }
    g.dAttnNorm.setZero(trainAttnNorm ? shape.hidden : 0);
    g.dMlpNorm.setZero(trainMlpNorm ? shape.hidden : 0);
}

template <class S>
Mat<S> TrainBlock<S>::backward(const Cache &c, const Mat<S> &dy, BlockGrads<S> &g, bool wantInputGrad) const
{
    auto dW = [&](int i) -> Mat<S> * { return lin[size_t(i)].trained() ? &g.dweff[size_t(i)] : nullptr; };
    // MLP.
    Mat<S> dact, dgate, dup, dm, tmp;
    linearBackward<S>(c.act, lin[6].weff, dy, &dact, dW(6), nullptr);
    swigluBackward<S>(c.gate, c.up, dact, dgate, dup);
    linearBackward<S>(c.m, lin[4].weff, dgate, &dm, dW(4), nullptr);
    linearBackward<S>(c.m, lin[5].weff, dup, &tmp, dW(5), nullptr);
    dm += tmp;
    Mat<S> dx1;
    rmsNormBackward<S>(c.x1, mlpNorm, c.r2, dm, dx1, trainMlpNorm ? &g.dMlpNorm : nullptr);
    dx1 += dy;
    // Attention.
    Mat<S> dattn, dq, dk, dv;
    linearBackward<S>(c.attn, lin[3].weff, dx1, &dattn, dW(3), nullptr);
    const AttentionShape as { shape.heads, shape.kvHeads, shape.headDim };
    attentionBackward<S>(as, c.q, c.k, c.v, c.probs, dattn, dq, dk, dv);
    ropeBackward<S>(dq, 0, shape.heads, shape.headDim, c.rope);
    ropeBackward<S>(dk, 0, shape.kvHeads, shape.headDim, c.rope);
    if (!wantInputGrad && !trainAttnNorm) {
        // Only the weight gradients of q/k/v are left.
        for (int i = 0; i < 3; ++i)
            if (Mat<S> *d = dW(i))
                d->noalias() += (i == 0 ? dq : i == 1 ? dk : dv).transpose() * c.a;
        return {};
    }
    Mat<S> da;
    linearBackward<S>(c.a, lin[0].weff, dq, &da, dW(0), nullptr);
    linearBackward<S>(c.a, lin[1].weff, dk, &tmp, dW(1), nullptr);
    da += tmp;
    linearBackward<S>(c.a, lin[2].weff, dv, &tmp, dW(2), nullptr);
    da += tmp;
    Mat<S> dx;
    rmsNormBackward<S>(c.x, attnNorm, c.r1, da, dx, trainAttnNorm ? &g.dAttnNorm : nullptr);
    if (!wantInputGrad)
        return {};
    dx += dx1;
    return dx;
}

template <class S> LinearParamGrads<S> TrainBlock<S>::parameterGradients(int slot, const BlockGrads<S> &g) const
{
    const TrainLinear<S> &l = lin[size_t(slot)];
    LinearParamGrads<S> out;
    switch (l.mode) {
    case LinearMode::Fixed:
        break;
    case LinearMode::Float:
        out.dw = g.dweff[size_t(slot)];
        break;
    case LinearMode::FakeQuant:
        l.quant.fakeQuantBackward(l.w, g.dweff[size_t(slot)], out.dw, out.ds, out.dz);
        break;
    case LinearMode::FrozenCodes:
        l.quant.dequantizeBackward(l.codes, g.dweff[size_t(slot)], out.ds);
        break;
    }
    return out;
}

template struct TrainLinear<float>;
template struct TrainLinear<double>;
template class TrainBlock<float>;
template class TrainBlock<double>;

} // namespace qs::core::train
