#include "train/EfficientQat.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include <omp.h>

#include "common/Error.h"
#include "common/OmpScopes.h"

namespace qs::core::train {

namespace {

using MatF = Mat<float>;
using VecF = Vec<float>;
using ConstMapF = Eigen::Map<const MatF>;

// The per-epoch order of the samples: Fisher–Yates with mt19937_64 and plain modulo (std::shuffle's
// algorithm is unspecified, this one is the same everywhere).
std::vector<size_t> sampleOrder(size_t n, uint64_t seed, int epoch)
{
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i)
        order[i] = i;
    std::mt19937_64 rng(seed * 1000003u + uint64_t(epoch) + 1u);
    for (size_t i = n; i > 1; --i)
        std::swap(order[i - 1], order[size_t(rng() % i)]);
    return order;
}

double blockMultiplyAdds(const BlockShape &s, int64_t tokens)
{
    const double linears = double(s.hidden) * double(s.qDim() + 2 * s.kvDim()) + double(s.qDim()) * double(s.hidden) +
                           3.0 * double(s.hidden) * double(s.intermediate);
    return double(tokens) * (linears + double(s.heads) * double(s.headDim) * double(tokens));
}

void emit(const TrainingLossCallback &cb, const char *phase, int block, int epoch, int step, int total, double loss,
          double lr, TrainingLossKind kind)
{
    if (!cb)
        return;
    TrainingLossEvent e;
    e.phase = phase;
    e.block = block;
    e.epoch = epoch;
    e.step = step;
    e.totalSteps = total;
    e.loss = loss;
    e.lr = lr;
    e.kind = kind;
    cb(e);
}

std::string lossText(double loss)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", loss);
    return buf;
}

} // namespace

// ---------------------------------------------------------------------------------------------------
// Block-AP

BlockApResult runBlockAp(const BlockApProblem &p, const EfficientQatOptions &o, const TrainingLossCallback &onLoss,
                         Progress &progress)
{
    const BlockShape &shape = p.shape;
    if (!p.inputs || !p.targets || !p.lengths || p.inputs->size() != p.targets->size() ||
        p.inputs->size() != p.lengths->size() || p.inputs->empty())
        throw Error("Block-AP: block " + std::to_string(p.block) + ": no calibration inputs or targets");
    const size_t nSamples = p.inputs->size();
    int64_t maxLen = 0;
    for (size_t s = 0; s < nSamples; ++s) {
        const int64_t n = (*p.lengths)[s];
        if (n <= 0 || int64_t((*p.inputs)[s].size()) != n * shape.hidden ||
            int64_t((*p.targets)[s].size()) != n * shape.hidden)
            throw Error("Block-AP: block " + std::to_string(p.block) + ": sample " + std::to_string(s) +
                        " has inconsistent sizes");
        maxLen = std::max(maxLen, n);
    }
    if (o.blockApEpochs < 0 || o.blockApBatch < 1)
        throw Error("Block-AP: epochs must be >= 0 and the batch >= 1");
    SmallWorkScope small(blockMultiplyAdds(shape, maxLen));

    TrainBlock<float> blk;
    blk.shape = shape;
    for (int i = 0; i < kBlockLinears; ++i) {
        const BlockApLinear &l = p.linears[size_t(i)];
        TrainLinear<float> &t = blk.lin[size_t(i)];
        if (int64_t(l.weight.size()) != l.rows * l.cols || l.rows <= 0)
            throw Error(l.name + ": Block-AP got " + std::to_string(l.weight.size()) + " weights for " +
                        std::to_string(l.rows) + " x " + std::to_string(l.cols));
        t.w = ConstMapF(l.weight.data(), l.rows, l.cols);
        if (!l.bias.empty())
            t.bias = Eigen::Map<const VecF>(l.bias.data(), int64_t(l.bias.size()));
        if (l.quantize) {
            checkFinite(l.weight.data(), l.rows, l.cols, l.name);
            t.mode = LinearMode::FakeQuant;
            t.quant = GroupQuantizer<float>(l.rows, l.cols, l.bits, l.groupSize, l.symmetric);
            t.quant.init(t.w);
        }
    }
    blk.attnNorm = Eigen::Map<const VecF>(p.attnNorm.data(), int64_t(p.attnNorm.size()));
    blk.mlpNorm = Eigen::Map<const VecF>(p.mlpNorm.data(), int64_t(p.mlpNorm.size()));
    blk.trainAttnNorm = p.trainAttnNorm && o.trainNorms;
    blk.trainMlpNorm = p.trainMlpNorm && o.trainNorms;

    auto input = [&](size_t s) { return ConstMapF((*p.inputs)[s].data(), (*p.lengths)[s], shape.hidden); };
    auto target = [&](size_t s) { return ConstMapF((*p.targets)[s].data(), (*p.lengths)[s], shape.hidden); };
    // Mean over samples of the per-sample MSE (equal-length samples: the MSE over all elements).
    auto evaluate = [&]() {
        blk.prepare();
        double sum = 0.0;
        for (size_t s = 0; s < nSamples; ++s) {
            progress.throwIfCancelled();
            const MatF y = blk.forward(MatF(input(s)), nullptr);
            sum += mseLoss<float>(y, MatF(target(s)), nullptr);
        }
        return sum / double(nSamples);
    };

    BlockApResult r;
    const int batch = std::min<int>(o.blockApBatch, int(nSamples));
    const int stepsPerEpoch = int((nSamples + size_t(batch) - 1) / size_t(batch));
    const int total = o.blockApEpochs * stepsPerEpoch;
    r.steps = total;
    r.initialLoss = evaluate();
    emit(onLoss, "block_ap", p.block, 0, -1, total, r.initialLoss, o.blockApLr, TrainingLossKind::Initial);

    AdamWOptions ao;
    ao.weightDecay = o.blockApWeightDecay;
    std::array<AdamWState<float>, kBlockLinears> stW, stS, stZ;
    AdamWState<float> stAttn, stMlp;
    TrainBlock<float>::Cache cache;
    BlockGrads<float> grads;
    MatF dy;
    int step = 0;
    for (int epoch = 0; epoch < o.blockApEpochs; ++epoch) {
        const std::vector<size_t> order = sampleOrder(nSamples, o.seed, epoch);
        double epochLoss = 0.0;
        for (int si = 0; si < stepsPerEpoch; ++si, ++step) {
            const size_t first = size_t(si) * size_t(batch);
            const size_t count = std::min(size_t(batch), nSamples - first);
            blk.prepare();
            blk.zeroGrads(grads);
            double loss = 0.0;
            for (size_t j = 0; j < count; ++j) {
                progress.throwIfCancelled();
                const size_t s = order[first + j];
                const MatF y = blk.forward(MatF(input(s)), &cache);
                dy.setZero(y.rows(), y.cols());
                loss += mseLoss<float>(y, MatF(target(s)), &dy, 1.0 / double(count)) / double(count);
                blk.backward(cache, dy, grads, false);
            }
            const double lrW = cosineLr(o.blockApLr, o.blockApLr / 20.0, step, total);
            const double lrQ = cosineLr(o.blockApQpLr, o.blockApQpLr / 20.0, step, total);
            for (int i = 0; i < kBlockLinears; ++i) {
                TrainLinear<float> &l = blk.lin[size_t(i)];
                if (l.mode != LinearMode::FakeQuant)
                    continue;
                LinearParamGrads<float> g = blk.parameterGradients(i, grads);
                adamwStep(l.w.data(), g.dw.data(), l.w.size(), stW[size_t(i)], ao, lrW);
                adamwStep(l.quant.scale.data(), g.ds.data(), l.quant.scale.size(), stS[size_t(i)], ao, lrQ);
                if (!l.quant.symmetric())
                    adamwStep(l.quant.zero.data(), g.dz.data(), l.quant.zero.size(), stZ[size_t(i)], ao, lrQ);
            }
            if (blk.trainAttnNorm)
                adamwStep(blk.attnNorm.data(), grads.dAttnNorm.data(), blk.attnNorm.size(), stAttn, ao, lrW);
            if (blk.trainMlpNorm)
                adamwStep(blk.mlpNorm.data(), grads.dMlpNorm.data(), blk.mlpNorm.size(), stMlp, ao, lrW);
            r.stepLosses.push_back(loss);
            epochLoss += loss;
            emit(onLoss, "block_ap", p.block, epoch, step, total, loss, lrW, TrainingLossKind::Step);
        }
        progress.message("block " + std::to_string(p.block) + ": Block-AP epoch " + std::to_string(epoch + 1) + "/" +
                         std::to_string(o.blockApEpochs) + ", mean loss " + lossText(epochLoss / stepsPerEpoch));
    }

    // Bake: the final fake-quant weights are the quantized tensors (codes from the trained W, s and z).
    r.finalLoss = evaluate();
    emit(onLoss, "block_ap", p.block, std::max(0, o.blockApEpochs - 1), total, total, r.finalLoss,
         cosineLr(o.blockApLr, o.blockApLr / 20.0, total, total), TrainingLossKind::Final);
    for (int i = 0; i < kBlockLinears; ++i) {
        const TrainLinear<float> &l = blk.lin[size_t(i)];
        if (l.mode != LinearMode::FakeQuant)
            continue;
        QuantizedTensor t = l.quant.toQuantized(l.w, p.linears[size_t(i)].name);
        t.validate();
        r.tensors.push_back(std::move(t));
        r.slots.push_back(i);
    }
    r.attnNorm.assign(blk.attnNorm.data(), blk.attnNorm.data() + blk.attnNorm.size());
    r.mlpNorm.assign(blk.mlpNorm.data(), blk.mlpNorm.data() + blk.mlpNorm.size());
    return r;
}

// ---------------------------------------------------------------------------------------------------
// E2E-QP

namespace {

struct FullModel
{
    const Model *model = nullptr;
    BlockShape shape;
    std::vector<TrainBlock<float>> blocks;
    VecF finalNorm;
    MatF head; // vocab × hidden
    const Tensor *embed = nullptr;
    int firstTrainedBlock = 0;

    MatF embedTokens(const std::vector<int32_t> &tokens) const
    {
        MatF x(int64_t(tokens.size()), shape.hidden);
        for (size_t t = 0; t < tokens.size(); ++t) {
            if (tokens[t] < 0 || tokens[t] >= int32_t(embed->rows))
                throw Error("E2E-QP: token id " + std::to_string(tokens[t]) + " outside the vocabulary");
            model->readRows(*embed, tokens[t], 1, x.row(int64_t(t)).data());
        }
        return x;
    }

    static std::vector<int32_t> nextTokenTargets(const std::vector<int32_t> &tokens)
    {
        std::vector<int32_t> t(tokens.size(), -1);
        for (size_t i = 0; i + 1 < tokens.size(); ++i)
            t[i] = tokens[i + 1];
        return t;
    }

    // Mean next-token cross-entropy of one sequence; with grads, accumulates weight·∂/∂ŵ into them.
    double run(const std::vector<int32_t> &tokens, std::vector<BlockGrads<float>> *grads, double weight,
               std::vector<TrainBlock<float>::Cache> &caches, Progress &progress) const
    {
        MatF x = embedTokens(tokens);
        for (size_t b = 0; b < blocks.size(); ++b) {
            progress.throwIfCancelled();
            x = blocks[b].forward(x, grads ? &caches[b] : nullptr);
        }
        MatF xn, logits;
        VecF r;
        rmsNormForward<float>(x, finalNorm, shape.eps, xn, r);
        logits.noalias() = xn * head.transpose();
        const std::vector<int32_t> targets = nextTokenTargets(tokens);
        if (!grads)
            return crossEntropy<float>(logits, targets, nullptr);
        MatF dlogits = MatF::Zero(logits.rows(), logits.cols());
        const double loss = crossEntropy<float>(logits, targets, &dlogits, weight);
        const MatF dxn = dlogits * head;
        MatF dx;
        rmsNormBackward<float>(x, finalNorm, r, dxn, dx, nullptr);
        for (int b = int(blocks.size()) - 1; b >= firstTrainedBlock; --b) {
            progress.throwIfCancelled();
            dx = blocks[size_t(b)].backward(caches[size_t(b)], dx, (*grads)[size_t(b)], b > firstTrainedBlock);
        }
        return loss;
    }
};

} // namespace

E2eQpResult runE2eQp(const E2eQpProblem &p, const EfficientQatOptions &o, const TrainingLossCallback &onLoss,
                     Progress &progress)
{
    if (!p.model || !p.tokens || p.tokens->empty())
        throw Error("E2E-QP: no model or no calibration sequences");
    const Model &m = *p.model;
    if (m.inputTransform)
        throw Error("E2E-QP: the model quantizes activations; EfficientQAT trains weight-only models");
    if (o.e2eEpochs < 0 || o.e2eBatch < 1)
        throw Error("E2E-QP: epochs must be >= 0 and the batch >= 1");
    const HyperParams &h = m.hparams;
    FullModel fm;
    fm.model = &m;
    fm.shape = BlockShape::fromHyperParams(h);
    fm.embed = &m.tensor("model.embed_tokens");
    fm.finalNorm = Eigen::Map<const VecF>(m.readMatrix(m.tensor("model.norm")).data(), h.hiddenSize);
    {
        const Tensor &head = m.tensor("lm_head");
        fm.head = ConstMapF(m.readMatrix(head).data(), head.rows, head.cols);
    }
    std::map<std::string, QuantizedTensor *> trained;
    for (QuantizedTensor *t : p.tensors)
        trained[t->name] = t;
    fm.firstTrainedBlock = h.numLayers;
    std::vector<std::pair<int, int>> trainedSlots; // (block, slot), model order
    std::vector<QuantizedTensor *> trainedTensors;
    fm.blocks.resize(size_t(h.numLayers));
    int64_t maxLen = 0;
    for (const std::vector<int32_t> &t : *p.tokens)
        maxLen = std::max<int64_t>(maxLen, int64_t(t.size()));
    for (int b = 0; b < h.numLayers; ++b) {
        TrainBlock<float> &blk = fm.blocks[size_t(b)];
        blk.shape = fm.shape;
        const std::string prefix = "model.layers." + std::to_string(b) + ".";
        blk.attnNorm = Eigen::Map<const VecF>(m.readMatrix(m.tensor(prefix + "input_layernorm")).data(), h.hiddenSize);
        blk.mlpNorm =
            Eigen::Map<const VecF>(m.readMatrix(m.tensor(prefix + "post_attention_layernorm")).data(), h.hiddenSize);
        for (int i = 0; i < kBlockLinears; ++i) {
            const std::string name = layerName(b, kBlockRoles[size_t(i)]);
            const Tensor &t = m.tensor(name);
            TrainLinear<float> &l = blk.lin[size_t(i)];
            if (const Tensor *bias = m.find(name + ".bias"))
                l.bias = Eigen::Map<const VecF>(m.readMatrix(*bias).data(), bias->numel());
            const auto it = trained.find(name);
            if (it == trained.end()) {
                l.w = ConstMapF(m.readMatrix(t).data(), t.rows, t.cols);
                continue;
            }
            const QuantizedTensor &q = *it->second;
            if (q.rows != t.rows || q.cols != t.cols || !q.inputScales.empty())
                throw Error(name + ": E2E-QP needs a plain quantized tensor of the model's shape");
            l.mode = LinearMode::FrozenCodes;
            l.quant = GroupQuantizer<float>(q.rows, q.cols, q.bits, q.groupSize, q.symmetric);
            l.quant.fromQuantized(q);
            l.codes = q.codes;
            fm.firstTrainedBlock = std::min(fm.firstTrainedBlock, b);
            trainedSlots.emplace_back(b, i);
            trainedTensors.push_back(it->second);
            trained.erase(it);
        }
    }
    if (!trained.empty())
        throw Error(trained.begin()->first + ": E2E-QP trains block linears only");
    SmallWorkScope small(blockMultiplyAdds(fm.shape, maxLen) + double(maxLen) * double(fm.head.size()));

    const size_t nSamples = p.tokens->size();
    auto evaluate = [&]() {
        for (TrainBlock<float> &blk : fm.blocks)
            blk.prepare();
        std::vector<TrainBlock<float>::Cache> none;
        double sum = 0.0;
        for (size_t s = 0; s < nSamples; ++s)
            sum += fm.run((*p.tokens)[s], nullptr, 1.0, none, progress);
        return sum / double(nSamples);
    };

    E2eQpResult r;
    const int batch = std::min<int>(o.e2eBatch, int(nSamples));
    const int stepsPerEpoch = int((nSamples + size_t(batch) - 1) / size_t(batch));
    const int total = o.e2eEpochs * stepsPerEpoch;
    const int warmup = int(std::ceil(o.e2eWarmupRatio * double(total)));
    r.steps = total;
    r.initialLoss = evaluate();
    emit(onLoss, "e2e_qp", -1, 0, -1, total, r.initialLoss, o.e2eLr, TrainingLossKind::Initial);

    AdamWOptions ao; // weight decay 0 (§7.2)
    std::vector<AdamWState<float>> states(trainedSlots.size());
    std::vector<BlockGrads<float>> grads(fm.blocks.size());
    std::vector<TrainBlock<float>::Cache> caches(fm.blocks.size());
    int step = 0;
    for (int epoch = 0; epoch < o.e2eEpochs; ++epoch) {
        const std::vector<size_t> order = sampleOrder(nSamples, o.seed, epoch);
        for (int si = 0; si < stepsPerEpoch; ++si, ++step) {
            const size_t first = size_t(si) * size_t(batch);
            const size_t count = std::min(size_t(batch), nSamples - first);
            for (size_t b = 0; b < fm.blocks.size(); ++b) {
                fm.blocks[b].prepare();
                fm.blocks[b].zeroGrads(grads[b]);
            }
            double loss = 0.0;
            for (size_t j = 0; j < count; ++j)
                loss += fm.run((*p.tokens)[order[first + j]], &grads, 1.0 / double(count), caches, progress) /
                        double(count);
            // Scale gradients, the global norm over all of them, clipping.
            std::vector<VecF> ds(trainedSlots.size());
            double norm2 = 0.0;
            for (size_t k = 0; k < trainedSlots.size(); ++k) {
                const auto [b, i] = trainedSlots[k];
                ds[k] = fm.blocks[size_t(b)].parameterGradients(i, grads[size_t(b)]).ds;
                for (int64_t e = 0; e < ds[k].size(); ++e)
                    norm2 += double(ds[k][e]) * double(ds[k][e]);
            }
            const double norm = std::sqrt(norm2);
            if (o.e2eMaxGradNorm > 0.0 && norm > o.e2eMaxGradNorm) {
                const float f = float(o.e2eMaxGradNorm / (norm + 1e-6));
                for (VecF &d : ds)
                    d *= f;
            }
            const double lr = cosineLr(o.e2eLr, 0.0, step, total, warmup);
            for (size_t k = 0; k < trainedSlots.size(); ++k) {
                const auto [b, i] = trainedSlots[k];
                GroupQuantizer<float> &q = fm.blocks[size_t(b)].lin[size_t(i)].quant;
                adamwStep(q.scale.data(), ds[k].data(), q.scale.size(), states[k], ao, lr);
            }
            r.stepLosses.push_back(loss);
            emit(onLoss, "e2e_qp", -1, epoch, step, total, loss, lr, TrainingLossKind::Step);
            progress.message("E2E-QP step " + std::to_string(step + 1) + "/" + std::to_string(total) + ", loss " +
                             lossText(loss));
        }
    }
    r.finalLoss = evaluate();
    emit(onLoss, "e2e_qp", -1, std::max(0, o.e2eEpochs - 1), total, total, r.finalLoss, 0.0, TrainingLossKind::Final);

    // Write the trained scales back (codes and zeros unchanged).
    for (size_t k = 0; k < trainedSlots.size(); ++k) {
        const auto [b, i] = trainedSlots[k];
        const GroupQuantizer<float> &q = fm.blocks[size_t(b)].lin[size_t(i)].quant;
        QuantizedTensor &t = *trainedTensors[k];
        const int ng = t.numGroups();
        for (int64_t row = 0; row < t.rows; ++row)
            for (int g = 0; g < ng; ++g)
                t.scales[size_t(row * ng + g)] = q.effectiveScale(row, g);
        t.dequantized = t.dequantize();
        t.validate();
    }
    return r;
}

} // namespace qs::core::train
