#include "quant/Pipeline.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "common/Error.h"
#include "common/CancelOnlyProgress.h"
#include "common/OmpScopes.h"
#include "common/Sha256.h"
#include "common/Version.h"
#include "eval/TextSource.h"
#include "model/ActivationObserver.h"
#include "model/Forward.h"
#include "model/ForwardKernels.h"
#include "quant/Awq.h"
#include "quant/Gptq.h"
#include "quant/QuantMetrics.h"
#include "quant/Rtn.h"
#include "quant/RunDir.h"
#include "quant/SmoothQuant.h"
#include "quant/ZeroQuant.h"
#include "train/EfficientQat.h"
#include "tokenizer/Tokenizer.h"

namespace qs::core {

namespace {

using Clock = std::chrono::steady_clock;
using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<RowMatrixF>;
using ConstMapF = Eigen::Map<const RowMatrixF>;

double secondsSince(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Float rows held in memory (quantized weights as dequantized, folded norms).
class FloatTensorData final : public TensorData
{
public:
    FloatTensorData(std::shared_ptr<const std::vector<float>> data, int64_t rows, int64_t cols)
        : m_data(std::move(data))
        , m_rows(rows)
        , m_cols(cols)
    { }
    void readRows(int64_t firstRow, int64_t rowCount, float *out) const override
    {
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > m_rows)
            throw Error("in-memory tensor: rows [" + std::to_string(firstRow) + ", "
                + std::to_string(firstRow + rowCount) + ") outside " + std::to_string(m_rows));
        std::memcpy(out, m_data->data() + firstRow * m_cols, size_t(rowCount * m_cols) * sizeof(float));
    }
    const uint8_t *storedData() const override { return reinterpret_cast<const uint8_t *>(m_data->data()); }

private:
    std::shared_ptr<const std::vector<float>> m_data;
    int64_t m_rows;
    int64_t m_cols;
};

void replaceTensor(Model &m, const std::string &name, std::vector<float> values)
{
    for (Tensor &t : m.tensors)
        if (t.name == name) {
            if (int64_t(values.size()) != t.numel())
                throw Error(name + ": replacement has " + std::to_string(values.size()) + " values for "
                    + std::to_string(t.numel()));
            t.data = std::make_shared<FloatTensorData>(
                std::make_shared<const std::vector<float>>(std::move(values)), t.rows, t.cols);
            t.dtype = DType::F32;
            t.storedBytes = uint64_t(t.numel()) * sizeof(float);
            t.tied = false;
            return;
        }
    throw Error("quantized model: the original has no tensor " + name);
}

constexpr std::array<LinearInput, 4> kBlockInputs
    = { LinearInput::AttnIn, LinearInput::AttnOut, LinearInput::MlpIn, LinearInput::MlpAct };

int inputIndex(LinearInput in)
{
    switch (in) {
    case LinearInput::AttnIn:
        return 0;
    case LinearInput::AttnOut:
        return 1;
    case LinearInput::MlpIn:
        return 2;
    case LinearInput::MlpAct:
        return 3;
    default:
        return -1;
    }
}

std::string normName(int block, LinearInput in)
{
    return "model.layers." + std::to_string(block)
        + (in == LinearInput::AttnIn ? ".input_layernorm" : ".post_attention_layernorm");
}

// ---- calibration statistics of one linear input ----

struct InputStats
{
    int64_t cols = 0;
    int64_t tokens = 0;
    Eigen::MatrixXd H; // Σ x xᵀ; lower triangle while accumulating, full after finish()
    std::vector<float> absMax;
    std::vector<double> sumAbs;
    bool cacheWanted = false;
    int64_t cacheBudget = 0;
    std::vector<float> cache; // whole sequences, one row per token
    std::vector<int64_t> cacheLengths;

    void reset(int64_t c, bool wantCache, int64_t budget)
    {
        cols = c;
        tokens = 0;
        H = Eigen::MatrixXd::Zero(c, c);
        absMax.assign(size_t(c), 0.0f);
        sumAbs.assign(size_t(c), 0.0);
        cacheWanted = wantCache;
        cacheBudget = budget;
        cache.clear();
        cacheLengths.clear();
    }

    int64_t cachedTokens() const { return int64_t(cache.size()) / std::max<int64_t>(cols, 1); }

    void add(const float *x, int64_t n)
    {
        const Eigen::MatrixXd X = ConstMapF(x, n, cols).cast<double>();
        {
            SmallWorkScope small(0.5 * double(n) * double(cols) * double(cols));
            H.selfadjointView<Eigen::Lower>().rankUpdate(X.transpose());
        }
        for (int64_t t = 0; t < n; ++t) {
            const float *row = x + t * cols;
            for (int64_t c = 0; c < cols; ++c) {
                const float a = std::fabs(row[c]);
                absMax[size_t(c)] = std::max(absMax[size_t(c)], a);
                sumAbs[size_t(c)] += a;
            }
        }
        tokens += n;
        // Whole sequences only (the attention loss module needs them); always at least one.
        if (cacheWanted && (cacheLengths.empty() || cachedTokens() + n <= cacheBudget)) {
            cache.insert(cache.end(), x, x + n * cols);
            cacheLengths.push_back(n);
        }
    }

    void finish() { H.triangularView<Eigen::StrictlyUpper>() = H.transpose(); }

    std::vector<float> meanAbs() const
    {
        std::vector<float> m(size_t(cols), 0.0f);
        for (int64_t c = 0; c < cols; ++c)
            m[size_t(c)] = tokens > 0 ? float(sumAbs[size_t(c)] / double(tokens)) : 0.0f;
        return m;
    }
};

// Thrown by GatherObserver once it has seen the last input it needs: the rest of the block pass is
// wasted work (a q/k/v sub-step needs only the attention norm, not attention and MLP). The observer is
// called on the thread running the pass, outside any parallel region, and everything the pass holds is
// RAII, so unwinding out of ForwardEngine::runBlock is safe (cancellation does the same).
struct StopPass
{
};

class GatherObserver final : public ActivationObserver
{
public:
    GatherObserver(int block, std::array<InputStats *, 4> stats)
        : m_block(block)
        , m_stats(stats)
    {
        for (int i = 0; i < 4; ++i)
            if (m_stats[size_t(i)])
                m_last = i;
    }
    void onLinearInput(int block, LinearInput input, const float *x, int64_t tokens, int64_t cols) override
    {
        const int i = inputIndex(input);
        if (block != m_block || i < 0 || !m_stats[size_t(i)])
            return;
        if (cols != m_stats[size_t(i)]->cols)
            throw Error("pipeline: unexpected width " + std::to_string(cols) + " of " + linearInputName(input));
        m_stats[size_t(i)]->add(x, tokens);
        if (i == m_last)
            throw StopPass {};
    }
    bool wantsBlock(int block) const override { return block == m_block; }

private:
    int m_block;
    std::array<InputStats *, 4> m_stats;
    int m_last = -1;
};

// ---- the block being quantized ----

struct BlockState
{
    int block = 0;
    std::map<TensorRole, std::vector<float>> original; // as read
    std::map<TensorRole, std::vector<float>> weights; // what the forward pass uses now
    std::map<TensorRole, std::vector<float>> biases; // the model's biases, possibly rescaled by folds
    std::set<TensorRole> changedBiases;
    std::set<TensorRole> changedFloatWeights; // unquantized linears rescaled by a fold
    std::vector<float> attnNorm, mlpNorm;
    bool attnNormChanged = false, mlpNormChanged = false;
    std::map<TensorRole, int64_t> rows, cols;
};

struct GroupMember
{
    TensorRole role;
    const PlannedLayer *layer = nullptr; // null when the plan does not mention it (cannot happen for blocks)
    bool quantize = false;
    std::string method;
    std::vector<float> w; // working weights (in the group's scaled basis)
};

std::string isoDateUtc()
{
    const std::time_t now = std::time(nullptr);
    std::tm tm {};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

class Runner
{
public:
    Runner(std::shared_ptr<const Model> model, QuantRun &run, const PipelineOptions &options,
        PipelineCallbacks &callbacks, Progress &progress)
        : m_model(std::move(model))
        , m_h(m_model->hparams)
        , m_run(run)
        , m_options(options)
        , m_callbacks(callbacks)
        , m_progress(progress)
        , m_cancel(progress)
    {
        for (const PlannedLayer &l : m_run.layersPlanned)
            m_layers[l.name] = &l;
    }

    void checkPlan();
    void run(const CalibrationSet &calibration);

private:
    const PlannedLayer *layer(int block, TensorRole role) const
    {
        const auto it = m_layers.find(layerName(block, role));
        return it == m_layers.end() ? nullptr : it->second;
    }
    const PlannedLayer *layerNamed(const std::string &name) const
    {
        const auto it = m_layers.find(name);
        return it == m_layers.end() ? nullptr : it->second;
    }
    bool quantized(int block, TensorRole role) const
    {
        const PlannedLayer *l = layer(block, role);
        return l && l->quantize;
    }

    void warn(const std::string &text)
    {
        m_run.warnings.push_back(text);
        if (m_callbacks.onWarning)
            m_callbacks.onWarning(text);
    }

    ForwardOptions forwardOptions(const LinearInputTransform &transform) const
    {
        ForwardOptions fo;
        fo.threads = m_options.threads;
        fo.weightCacheBytes = m_blockBytes * 2 + (uint64_t(1) << 20); // this block only
        fo.inputTransform = transform;
        return fo;
    }

    BlockState loadBlock(int b) const;
    std::shared_ptr<const Model> stageModel(const BlockState &st) const;
    void gather(BlockState &st, const std::vector<LinearInput> &inputs, std::map<LinearInput, InputStats> &stats);
    void quantizeGroup(BlockState &st, LinearInput in, InputStats &stats);
    bool foldIntoRows(BlockState &st, TensorRole role, const std::vector<float> &factor, bool apply);
    AwqModuleFn awqModule(LinearInput in, const BlockState &st, const std::vector<TensorRole> &candidateRoles,
        const InputStats &stats) const;
    void processBlock(int b);
    void processEmbedding(const CalibrationSet &calibration);
    void processHead();
    // EfficientQAT (train/EfficientQat.h): Block-AP of the block's efficientqat linears after its other
    // layers are quantized, and E2E-QP over the whole model after all blocks.
    void trainBlockAp(BlockState &st, const std::vector<LinearInput> &inputs);
    void trainE2eQp(const CalibrationSet &calibration);
    const PlannedLayer *firstQatLayer() const;
    TrainingLossCallback lossRecorder();
    void emit(LayerResult &lr, QuantizedTensor &&t);
    LayerResult makeResult(const PlannedLayer &l, const QuantizedTensor &t, const float *originalW,
        const Eigen::MatrixXd *H, double seconds) const;

    std::shared_ptr<const Model> m_model;
    const HyperParams &m_h;
    QuantRun &m_run;
    const PipelineOptions &m_options;
    PipelineCallbacks &m_callbacks;
    Progress &m_progress;
    CancelOnlyProgress m_cancel;
    std::map<std::string, const PlannedLayer *> m_layers;
    uint64_t m_blockBytes = 0;

    std::vector<std::vector<float>> m_x; // hidden states of the quantized stack, one per sample
    std::vector<std::vector<float>> m_xfp; // of the float stack (cumulative error)
    std::vector<int64_t> m_lengths;
    std::unique_ptr<ForwardEngine> m_fpEngine;
    bool m_qat = false; // the plan has efficientqat layers: the float stack (m_xfp) is kept for Block-AP targets
};

void Runner::checkPlan()
{
    for (const PlannedLayer &l : m_run.layersPlanned) {
        if (!l.quantize)
            continue;
        const std::string &m = l.config.method();
        if (l.role == TensorRole::Embed && m != "rtn" && m != "zeroquant")
            throw Error("plan: " + l.name + ": method '" + m
                + "' cannot quantize the embedding (it has no input activations); use rtn or zeroquant");
        if (l.role == TensorRole::LmHead && m != "rtn" && m != "zeroquant" && m != "gptq")
            throw Error("plan: " + l.name + ": method '" + m + "' is not supported for lm_head (rtn, zeroquant, gptq)");
        if (m != "rtn" && m != "zeroquant" && m != "gptq" && m != "smoothquant" && m != "awq" && m != "efficientqat")
            throw Error("plan: " + l.name + ": method '" + m + "' is not supported by the pipeline yet");
        if (m == "efficientqat")
            m_qat = true;
    }
    if (m_qat) {
        // One Block-AP per block and one E2E-QP per model: the training parameters must agree. The trainer
        // has no activation quantization and no folded input scales, so those methods cannot be mixed in.
        const PlannedLayer *first = firstQatLayer();
        auto training = [](const MethodConfig &c) {
            nlohmann::json j = c.toJson();
            j.erase("bits");
            j.erase("group_size");
            j.erase("symmetric");
            return j;
        };
        for (const PlannedLayer &l : m_run.layersPlanned) {
            if (!l.quantize)
                continue;
            const std::string &m = l.config.method();
            if (m == "efficientqat" && training(l.config) != training(first->config))
                throw Error("plan: " + l.name + " and " + first->name
                    + " are trained together by efficientqat: their training parameters must be equal (bits, "
                      "group_size and symmetric may differ)");
            if (m == "smoothquant" || (m == "zeroquant" && l.config.getInt("activation_bits") > 0))
                throw Error("plan: " + l.name + ": method '" + m
                    + "' quantizes activations, which efficientqat's trainer does not model; use weight-only methods");
            if (m == "awq") {
                bool qatBlock = false;
                for (TensorRole r : train::kBlockRoles) {
                    const PlannedLayer *o = layer(l.block, r);
                    qatBlock = qatBlock || (o && o->quantize && o->config.method() == "efficientqat");
                }
                if (qatBlock)
                    throw Error("plan: " + l.name + ": block " + std::to_string(l.block)
                        + " is trained by efficientqat; its other layers may use rtn, gptq or zeroquant only");
            }
        }
    }
    for (int b = 0; b < m_h.numLayers; ++b)
        for (LinearInput in : kBlockInputs) {
            const PlannedLayer *firstSq = nullptr, *firstAwq = nullptr;
            for (TensorRole r : rolesReading(in)) {
                const PlannedLayer *l = layer(b, r);
                if (!l || !l->quantize)
                    continue;
                const std::string &m = l->config.method();
                if (m == "smoothquant") {
                    if (!firstSq)
                        firstSq = l;
                    else if (l->config.getDouble("alpha") != firstSq->config.getDouble("alpha"))
                        throw Error("plan: " + l->name + " and " + firstSq->name
                            + " read the same input and are smoothed into one norm: their smoothquant alpha "
                              "must be equal");
                }
                if (m == "awq") {
                    if (!firstAwq)
                        firstAwq = l;
                    else if (toAwqOptions(l->config).spec.bits != toAwqOptions(firstAwq->config).spec.bits
                        || l->config.toJson() != firstAwq->config.toJson())
                        throw Error("plan: " + l->name + " and " + firstAwq->name
                            + " read the same input and share one AWQ scale search: their awq parameters "
                              "must be equal");
                }
            }
            if (firstSq && firstAwq && (in == LinearInput::AttnIn || in == LinearInput::MlpIn))
                throw Error("plan: " + firstSq->name + " (smoothquant) and " + firstAwq->name
                    + " (awq) read the same input: both would fold scales into its norm; use one of them");
        }
}

BlockState Runner::loadBlock(int b) const
{
    BlockState st;
    st.block = b;
    for (LinearInput in : kBlockInputs)
        for (TensorRole r : rolesReading(in)) {
            const Tensor &t = m_model->tensor(layerName(b, r));
            st.original[r] = m_model->readMatrix(t);
            st.weights[r] = st.original[r];
            st.rows[r] = t.rows;
            st.cols[r] = t.cols;
            if (const Tensor *bias = m_model->find(layerName(b, r) + ".bias"))
                st.biases[r] = m_model->readMatrix(*bias);
        }
    st.attnNorm = m_model->readMatrix(m_model->tensor(normName(b, LinearInput::AttnIn)));
    st.mlpNorm = m_model->readMatrix(m_model->tensor(normName(b, LinearInput::MlpIn)));
    return st;
}

std::shared_ptr<const Model> Runner::stageModel(const BlockState &st) const
{
    auto m = std::make_shared<Model>(*m_model);
    m->inputTransform = nullptr; // the stage's transform comes through ForwardOptions
    m->runInfo.reset();
    for (const auto &[role, w] : st.weights)
        replaceTensor(*m, layerName(st.block, role), w);
    for (const auto &[role, bias] : st.biases)
        replaceTensor(*m, layerName(st.block, role) + ".bias", bias);
    replaceTensor(*m, normName(st.block, LinearInput::AttnIn), st.attnNorm);
    replaceTensor(*m, normName(st.block, LinearInput::MlpIn), st.mlpNorm);
    return m;
}

void Runner::gather(BlockState &st, const std::vector<LinearInput> &inputs, std::map<LinearInput, InputStats> &stats)
{
    std::array<InputStats *, 4> slots {};
    for (LinearInput in : inputs) {
        bool wantCache = false;
        for (TensorRole r : rolesReading(in)) {
            const PlannedLayer *l = layer(st.block, r);
            wantCache = wantCache || (l && l->quantize && l->config.method() == "awq");
        }
        InputStats &s = stats[in];
        s.reset(st.cols[rolesReading(in).front()], wantCache, m_options.awqCacheTokens);
        slots[size_t(inputIndex(in))] = &s;
    }
    std::string names;
    for (LinearInput in : inputs)
        names += (names.empty() ? "" : ", ") + std::string(linearInputName(in));
    m_progress.message("block " + std::to_string(st.block) + ": calibration pass (" + names + ")");

    ForwardEngine engine(stageModel(st), forwardOptions(m_run.activationQuant.transform()));
    GatherObserver observer(st.block, slots);
    std::vector<float> x;
    for (size_t s = 0; s < m_x.size(); ++s) {
        m_progress.throwIfCancelled();
        x = m_x[s];
        try {
            engine.runBlock(st.block, x.data(), m_lengths[s], &observer);
        } catch (const StopPass &) {
            // seen everything this pass is for
        }
    }
    for (LinearInput in : inputs)
        stats[in].finish();
}

bool Runner::foldIntoRows(BlockState &st, TensorRole role, const std::vector<float> &factor, bool apply)
{
    // The producer's output row r is multiplied by factor[r]. A quantized producer takes it in its per-row
    // scales (w = scale·(q − zero), codes unchanged), which needs one scale set per row.
    const std::string name = layerName(st.block, role);
    QuantizedTensor *t = nullptr;
    for (QuantizedTensor &q : m_run.tensors)
        if (q.name == name)
            t = &q;
    if (int64_t(factor.size()) != st.rows[role])
        return false;
    if (t && t->rowGroupSize != 1)
        return false;
    if (!apply)
        return true;
    const int64_t cols = st.cols[role];
    if (t) {
        const int ng = t->numGroups();
        for (int64_t r = 0; r < t->rows; ++r)
            for (int g = 0; g < ng; ++g)
                t->scales[size_t(r * ng + g)] *= factor[size_t(r)];
        t->dequantized = t->dequantize();
        st.weights[role] = t->dequantized;
    } else {
        std::vector<float> &w = st.weights[role];
        for (int64_t r = 0; r < st.rows[role]; ++r)
            for (int64_t c = 0; c < cols; ++c)
                w[size_t(r * cols + c)] *= factor[size_t(r)];
        st.changedFloatWeights.insert(role);
    }
    if (auto it = st.biases.find(role); it != st.biases.end()) {
        for (size_t r = 0; r < it->second.size(); ++r)
            it->second[r] *= factor[r];
        st.changedBiases.insert(role);
    }
    return true;
}

AwqModuleFn Runner::awqModule(
    LinearInput in, const BlockState &st, const std::vector<TensorRole> &candidateRoles, const InputStats &stats) const
{
    if (in == LinearInput::AttnOut || in == LinearInput::MlpAct)
        return {}; // the linear alone (linearOutputsModule)
    // Weights the module uses: the candidates for the AWQ layers, the block's current ones for the rest.
    auto weightOf = [&st, candidateRoles](TensorRole r, const std::vector<std::vector<float>> &cand) -> const float * {
        for (size_t i = 0; i < candidateRoles.size(); ++i)
            if (candidateRoles[i] == r)
                return cand[i].data();
        return st.weights.at(r).data();
    };
    auto biasOf = [&st](TensorRole r) -> const float * {
        const auto it = st.biases.find(r);
        return it == st.biases.end() ? nullptr : it->second.data();
    };
    const HyperParams &h = m_h;
    const int64_t H = h.hiddenSize, I = h.intermediateSize;
    const float *x = stats.cache.data();
    const std::vector<int64_t> lengths = stats.cacheLengths;
    const int64_t tokens = stats.cachedTokens();

    if (in == LinearInput::MlpIn) {
        // The whole SwiGLU MLP with the float down_proj: down(silu(gate x) ⊙ up x).
        return [=](const std::vector<std::vector<float>> &cand) {
            const float *wg = weightOf(TensorRole::Gate, cand), *wu = weightOf(TensorRole::Up, cand);
            const float *wd = st.weights.at(TensorRole::Down).data();
            RowMatrixF gu(tokens, 2 * I);
            const ConstMapF X(x, tokens, H);
            gu.leftCols(I).noalias() = X * ConstMapF(wg, I, H).transpose();
            gu.rightCols(I).noalias() = X * ConstMapF(wu, I, H).transpose();
            if (const float *b = biasOf(TensorRole::Gate))
                gu.leftCols(I).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, I);
            if (const float *b = biasOf(TensorRole::Up))
                gu.rightCols(I).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, I);
            std::vector<float> act(size_t(tokens * I));
            kernels::swiglu(gu.data(), tokens, I, act.data());
            std::vector<float> out(size_t(tokens * H));
            MapF(out.data(), tokens, H).noalias() = ConstMapF(act.data(), tokens, I) * ConstMapF(wd, H, I).transpose();
            if (const float *b = biasOf(TensorRole::Down))
                MapF(out.data(), tokens, H).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, H);
            return out;
        };
    }
    // Attention: q/k/v → RoPE → causal GQA attention → float o_proj, per cached sequence (positions from 0,
    // exactly as the forward pass runs a calibration sample).
    return [=](const std::vector<std::vector<float>> &cand) {
        const int64_t qDim = int64_t(h.numHeads) * h.headDim, kvDim = int64_t(h.numKvHeads) * h.headDim;
        const int64_t qkvCols = qDim + 2 * kvDim;
        const float *wq = weightOf(TensorRole::Q, cand), *wk = weightOf(TensorRole::K, cand),
                    *wv = weightOf(TensorRole::V, cand);
        const float *wo = st.weights.at(TensorRole::O).data();
        std::vector<float> out(size_t(tokens * H));
        int64_t offset = 0;
        for (int64_t n : lengths) {
            const ConstMapF X(x + offset * H, n, H);
            RowMatrixF qkv(n, qkvCols);
            qkv.leftCols(qDim).noalias() = X * ConstMapF(wq, qDim, H).transpose();
            qkv.middleCols(qDim, kvDim).noalias() = X * ConstMapF(wk, kvDim, H).transpose();
            qkv.rightCols(kvDim).noalias() = X * ConstMapF(wv, kvDim, H).transpose();
            if (const float *b = biasOf(TensorRole::Q))
                qkv.leftCols(qDim).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, qDim);
            if (const float *b = biasOf(TensorRole::K))
                qkv.middleCols(qDim, kvDim).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, kvDim);
            if (const float *b = biasOf(TensorRole::V))
                qkv.rightCols(kvDim).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, kvDim);
            const kernels::RopeTable rope = kernels::makeRopeTable(kernels::ropeInverseFrequencies(h, n), 0, n);
            kernels::applyRope(qkv.data(), n, qkvCols, h.numHeads, h.headDim, 0, rope);
            kernels::applyRope(qkv.data() + qDim, n, qkvCols, h.numKvHeads, h.headDim, 0, rope);
            std::vector<float> attn(size_t(n * qDim));
            kernels::causalAttention({ h.numHeads, h.numKvHeads, h.headDim }, qkv.data(), qkvCols, qkv.data() + qDim,
                qkv.data() + qDim + kvDim, qkvCols, n, 0, attn.data(), qDim);
            MapF Y(out.data() + offset * H, n, H);
            Y.noalias() = ConstMapF(attn.data(), n, qDim) * ConstMapF(wo, H, qDim).transpose();
            if (const float *b = biasOf(TensorRole::O))
                Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b, H);
            offset += n;
        }
        return out;
    };
}

LayerResult Runner::makeResult(const PlannedLayer &l, const QuantizedTensor &t, const float *originalW,
    const Eigen::MatrixXd *H, double seconds) const
{
    LayerResult r;
    r.name = l.name;
    r.block = l.block;
    r.role = l.role;
    r.method = l.config.method();
    r.bits = t.bits;
    // As planned (0 = per tensor, −1 = per channel; ZeroQuant row groups report −1).
    r.groupSize = int(l.config.getInt("group_size"));
    if (r.method == "zeroquant" && l.config.getBool("row_groups"))
        r.groupSize = -1;
    const std::vector<float> effective = t.inputScales.empty() ? std::vector<float>() : t.effectiveWeights();
    const float *wq = t.inputScales.empty() ? t.dequantized.data() : effective.data();
    SmallWorkScope small(2.0 * double(t.rows) * double(t.cols) * double(t.cols));
    const LayerError e = layerError(originalW, wq, t.rows, t.cols, H);
    r.weightMse = e.weightMse;
    r.sqnrDb = e.sqnrDb;
    r.relOutputError = std::sqrt(std::max(0.0, e.relOutputError));
    r.bitsPerWeight = t.bitsPerWeight();
    r.seconds = seconds;
    r.inputScales = t.inputScalesSource;
    return r;
}

void Runner::emit(LayerResult &lr, QuantizedTensor &&t)
{
    m_run.layers.push_back(lr);
    m_run.tensors.push_back(std::move(t));
    if (m_callbacks.onLayerDone)
        m_callbacks.onLayerDone(lr);
}

void Runner::quantizeGroup(BlockState &st, LinearInput in, InputStats &stats)
{
    const int b = st.block;
    std::vector<GroupMember> members;
    for (TensorRole r : rolesReading(in)) {
        GroupMember m;
        m.role = r;
        m.layer = layer(b, r);
        m.quantize = m.layer && m.layer->quantize;
        m.method = m.quantize ? m.layer->config.method() : std::string();
        m.w = st.weights[r];
        members.push_back(std::move(m));
    }
    const int64_t cols = stats.cols;
    const Eigen::MatrixXd &H = stats.H;

    std::vector<float> s; // input scales applied to every member (empty: none)
    std::string sSource;
    std::map<TensorRole, QuantizedTensor> done;
    std::map<TensorRole, double> seconds;
    std::map<TensorRole, std::string> notes;

    // SmoothQuant: fold into the norm in front (q/k/v, gate/up only).
    std::vector<GroupMember *> sq, awq;
    for (GroupMember &m : members) {
        if (m.method == "smoothquant")
            sq.push_back(&m);
        if (m.method == "awq")
            awq.push_back(&m);
    }
    const bool hasNorm = in == LinearInput::AttnIn || in == LinearInput::MlpIn;
    std::vector<float> &norm = in == LinearInput::AttnIn ? st.attnNorm : st.mlpNorm;
    if (!sq.empty() && hasNorm) {
        const auto t0 = Clock::now();
        std::vector<WeightView> views;
        for (const GroupMember &m : members)
            views.push_back({ m.w.data(), st.rows[m.role], cols });
        const SmoothingScales sc = computeSmoothingScales(
            stats.absMax, views, sq.front()->layer->config.getDouble("alpha"), normName(b, in));
        s = sc.scales;
        sSource = "smoothquant";
        for (size_t j = 0; j < norm.size(); ++j)
            norm[j] *= sc.normFold[j];
        (in == LinearInput::AttnIn ? st.attnNormChanged : st.mlpNormChanged) = true;
        for (GroupMember &m : members)
            applyInputScales(m.w.data(), st.rows[m.role], cols, s);
        const double dt = secondsSince(t0) / double(sq.size());
        for (GroupMember *m : sq)
            seconds[m->role] += dt;
    } else if (!sq.empty()) {
        for (GroupMember *m : sq)
            notes[m->role] = "no norm in front of this input: W8 without smoothing (as the SmoothQuant reference)";
    }

    // AWQ: scale search over the group's awq layers, fold into the producer, clip, quantize.
    if (!awq.empty()) {
        const auto t0 = Clock::now();
        AwqOptions ao = toAwqOptions(awq.front()->layer->config);
        std::string foldNote;
        bool canFold = true;
        const std::vector<float> ones(size_t(cols), 1.0f);
        if (in == LinearInput::AttnOut) {
            if (m_h.numHeads != m_h.numKvHeads) {
                canFold = false;
                foldNote = "AWQ scaling skipped: o_proj's input cannot be folded into v_proj rows with grouped-query "
                           "attention (clip search only)";
            } else if (!foldIntoRows(st, TensorRole::V, ones, false)) {
                canFold = false;
                foldNote = "AWQ scaling skipped: v_proj uses row groups and cannot take per-row factors";
            }
        } else if (in == LinearInput::MlpAct && !foldIntoRows(st, TensorRole::Up, ones, false)) {
            canFold = false;
            foldNote = "AWQ scaling skipped: up_proj uses row groups and cannot take per-row factors";
        }
        if (!canFold)
            ao.nGrid = 1; // α = 0 only: s ≡ 1
        m_progress.message("block " + std::to_string(b) + ": AWQ search (" + linearInputName(in) + ")");
        const ActivationView xv { stats.cache.data(), stats.cachedTokens(), cols };
        std::vector<AwqLinear> linears;
        std::vector<TensorRole> roles;
        for (GroupMember *m : awq) {
            linears.push_back({ WeightView { m->w.data(), st.rows[m->role], cols }, m->role, m->layer->name });
            roles.push_back(m->role);
        }
        const std::vector<float> meanAbs = stats.meanAbs();
        // One candidate costs about tokens × cols × Σrows multiply-adds (more with attention); the whole
        // search runs single-threaded when that is small (see SmallWorkScope).
        double rowsTotal = 0.0;
        for (const AwqLinear &l : linears)
            rowsTotal += double(l.weight.rows);
        SmallWorkScope small(double(xv.tokens) * double(cols) * rowsTotal, double(1 << 28));
        AwqResult r = runAwq(xv, linears, ao, awqModule(in, st, roles, stats), m_cancel, meanAbs);
        if (canFold) {
            s = r.search.scales;
            sSource = "awq";
            if (hasNorm) {
                for (size_t j = 0; j < norm.size(); ++j)
                    norm[j] *= r.normFold[j];
                (in == LinearInput::AttnIn ? st.attnNormChanged : st.mlpNormChanged) = true;
            } else {
                foldIntoRows(st, in == LinearInput::AttnOut ? TensorRole::V : TensorRole::Up, r.normFold, true);
            }
            for (GroupMember &m : members)
                if (m.method != "awq")
                    applyInputScales(m.w.data(), st.rows[m.role], cols, s);
        }
        const double dt = secondsSince(t0) / double(awq.size());
        for (size_t i = 0; i < awq.size(); ++i) {
            QuantizedTensor &t = r.tensors[i];
            if (!canFold) {
                t.inputScales.clear();
                t.inputScalesSource.clear();
                notes[awq[i]->role] = foldNote;
            } else {
                char buf[64];
                std::snprintf(buf, sizeof buf, "awq alpha %.2f", r.search.bestAlpha);
                notes[awq[i]->role] = buf;
            }
            done[awq[i]->role] = std::move(t);
            seconds[awq[i]->role] += dt;
        }
    }

    // The Hessian in the scaled basis: x' = x / s, so H' = S⁻¹ H S⁻¹ (exact).
    Eigen::MatrixXd hScaled;
    const Eigen::MatrixXd *hq = &H;
    if (!s.empty()) {
        const Eigen::VectorXd inv = Eigen::Map<const Eigen::VectorXf>(s.data(), cols).cast<double>().cwiseInverse();
        hScaled = inv.asDiagonal() * H * inv.asDiagonal();
        hq = &hScaled;
    }

    std::map<std::string, GptqHessian> prepared; // shared factorization per distinct damping options
    std::map<TensorRole, GptqResult> gptqResults;
    for (GroupMember &m : members) {
        if (!m.quantize || done.count(m.role) || m.method == "efficientqat") // efficientqat: trainBlockAp
            continue;
        m_progress.throwIfCancelled();
        const auto t0 = Clock::now();
        const MethodConfig &cfg = m.layer->config;
        const WeightView view { m.w.data(), st.rows[m.role], cols };
        QuantizedTensor t;
        if (m.method == "rtn") {
            t = quantizeRtn(view, toRtnSpec(cfg), m.layer->name);
        } else if (m.method == "zeroquant") {
            t = quantizeZeroQuantWeight(view, toZeroQuantOptions(cfg), m.layer->name);
        } else if (m.method == "smoothquant") {
            t = quantizeSmoothedWeight(view,
                sSource == "smoothquant" ? std::span<const float>(s) : std::span<const float>(),
                toSmoothQuantOptions(cfg).weightSpec, m.layer->name);
        } else if (m.method == "gptq") {
            const GptqOptions go = toGptqOptions(cfg);
            const std::string key = std::to_string(go.percDamp) + "/" + std::to_string(go.dampIncrement) + "/"
                + std::to_string(go.maxPercDamp) + "/" + (go.actOrder ? "a" : "-") + (go.doublePrecision ? "d" : "-");
            auto it = prepared.find(key);
            if (it == prepared.end())
                it = prepared.emplace(key, prepareGptqHessian(*hq, go, m.layer->name)).first;
            GptqResult gr = quantizeGptq(view, it->second, go, m_cancel, m.layer->name);
            if (gr.deadColumns > 0)
                notes[m.role] = std::to_string(gr.deadColumns) + " dead input columns zeroed";
            t = std::move(gr.tensor);
            gr.tensor = QuantizedTensor();
            gptqResults[m.role] = std::move(gr);
        } else {
            throw Error(m.layer->name + ": method '" + m.method + "' is not supported by the pipeline");
        }
        if (!s.empty() && t.inputScales.empty()) {
            t.inputScales = s;
            t.inputScalesSource = sSource;
        }
        seconds[m.role] += secondsSince(t0);
        done[m.role] = std::move(t);
    }

    // Activation quantization of this input (quant/ActivationSim.h: any consumer asking for it decides).
    std::optional<InputQuantSpec> spec;
    for (GroupMember &m : members) {
        if (!m.quantize)
            continue;
        InputQuantSpec cand;
        cand.block = b;
        cand.input = in;
        cand.source = m.method;
        if (m.method == "smoothquant") {
            const SmoothQuantOptions so = toSmoothQuantOptions(m.layer->config);
            cand.bits = so.activationBits;
            cand.scheme = so.activationScheme;
            cand.convention = SymConvention::Restricted;
            if (cand.scheme == ActivationScheme::PerTensorStatic) {
                float a = 0.0f; // absmax after smoothing: a_j / s_j
                for (int64_t j = 0; j < cols; ++j)
                    a = std::max(a, s.empty() ? stats.absMax[size_t(j)] : stats.absMax[size_t(j)] / s[size_t(j)]);
                cand.staticAbsMax = a;
            }
        } else if (m.method == "zeroquant") {
            const ZeroQuantOptions zo = toZeroQuantOptions(m.layer->config);
            if (zo.activationBits <= 0)
                continue;
            cand.bits = zo.activationBits;
            cand.scheme = ActivationScheme::PerToken;
            cand.convention = zo.activationConvention;
        } else {
            continue;
        }
        if (!spec) {
            spec = cand;
        } else if (spec->bits != cand.bits || spec->scheme != cand.scheme || spec->convention != cand.convention) {
            warn(m.layer->name + ": reads the same input as " + spec->consumers.front()
                + " with different activation quantization; the input is quantized as " + spec->consumers.front()
                + " asks (" + std::to_string(spec->bits) + " bits, " + activationSchemeName(spec->scheme) + ")");
        }
        spec->consumers.push_back(m.layer->name);
    }
    if (spec)
        m_run.activationQuant.set(*spec);

    // Results, in role order; the block now runs on the quantized weights.
    for (GroupMember &m : members) {
        if (m.method == "efficientqat")
            continue;
        if (!m.quantize) {
            if (!s.empty()) {
                st.weights[m.role] = m.w; // float, rescaled for the folded norm
                st.changedFloatWeights.insert(m.role);
            }
            continue;
        }
        QuantizedTensor &t = done.at(m.role);
        t.name = m.layer->name;
        t.method = m.method;
        LayerResult lr = makeResult(*m.layer, t, st.original[m.role].data(), &H, seconds[m.role]);
        if (const auto it = gptqResults.find(m.role); it != gptqResults.end()) {
            lr.gptqLoss = it->second.loss;
            lr.damp = it->second.percDampUsed;
            lr.deadColumns = it->second.deadColumns;
        }
        if (spec)
            lr.activationBits = spec->bits;
        if (const auto it = notes.find(m.role); it != notes.end())
            lr.note = it->second;
        st.weights[m.role] = t.dequantized;
        emit(lr, std::move(t));
    }
}

void Runner::processBlock(int b)
{
    const auto t0 = Clock::now();
    BlockState st = loadBlock(b);

    // Inputs with at least one quantized consumer need statistics.
    std::vector<LinearInput> needed, qatInputs; // efficientqat layers are trained after the others
    bool sequential = false;
    for (LinearInput in : kBlockInputs) {
        bool any = false, qat = false;
        for (TensorRole r : rolesReading(in)) {
            const PlannedLayer *l = layer(b, r);
            if (!l || !l->quantize)
                continue;
            if (l->config.method() == "efficientqat") {
                qat = true;
                continue;
            }
            any = true;
            if (l->config.method() == "gptq" && l->config.getBool("true_sequential"))
                sequential = true;
        }
        if (any)
            needed.push_back(in);
        if (qat)
            qatInputs.push_back(in);
    }

    std::map<LinearInput, InputStats> stats;
    if (!sequential && !needed.empty())
        gather(st, needed, stats);
    for (LinearInput in : needed) {
        m_progress.throwIfCancelled();
        if (sequential)
            gather(st, { in }, stats);
        m_progress.message("block " + std::to_string(b) + ": quantizing " + linearInputName(in) + " layers");
        quantizeGroup(st, in, stats.at(in));
        stats.erase(in); // frees the Hessian
    }

    if (!qatInputs.empty())
        trainBlockAp(st, qatInputs);

    // The next block's inputs: this block with its quantized weights and activation quantization.
    m_progress.message("block " + std::to_string(b) + ": propagating");
    {
        ForwardEngine engine(stageModel(st), forwardOptions(m_run.activationQuant.transform()));
        for (size_t s = 0; s < m_x.size(); ++s) {
            m_progress.throwIfCancelled();
            engine.runBlock(b, m_x[s].data(), m_lengths[s]);
        }
    }
    BlockResult br;
    br.block = b;
    br.cumulativeError = std::numeric_limits<double>::quiet_NaN();
    if (m_fpEngine) {
        double num = 0.0, den = 0.0;
        for (size_t s = 0; s < m_xfp.size(); ++s) {
            m_progress.throwIfCancelled();
            m_fpEngine->runBlock(b, m_xfp[s].data(), m_lengths[s]);
            for (size_t i = 0; i < m_xfp[s].size(); ++i) {
                const double d = double(m_x[s][i]) - double(m_xfp[s][i]);
                num += d * d;
                den += double(m_xfp[s][i]) * double(m_xfp[s][i]);
            }
        }
        if (m_options.cumulativeError) // (the float stack may run for efficientqat's targets only)
            br.cumulativeError = den > 0.0 ? std::sqrt(num / den) : 0.0;
    }

    // What the block changed besides its quantized linears.
    if (st.attnNormChanged)
        m_run.modifiedTensors[normName(b, LinearInput::AttnIn)] = st.attnNorm;
    if (st.mlpNormChanged)
        m_run.modifiedTensors[normName(b, LinearInput::MlpIn)] = st.mlpNorm;
    for (TensorRole r : st.changedFloatWeights)
        if (!quantized(b, r))
            m_run.modifiedTensors[layerName(b, r)] = st.weights[r];
    for (TensorRole r : st.changedBiases)
        m_run.modifiedTensors[layerName(b, r) + ".bias"] = st.biases[r];
    if (!m_options.keepDequantized)
        for (QuantizedTensor &t : m_run.tensors)
            if (layerNamed(t.name) && layerNamed(t.name)->block == b) {
                t.dequantized.clear();
                t.dequantized.shrink_to_fit();
            }

    br.seconds = secondsSince(t0);
    m_run.blocks.push_back(br);
    if (m_callbacks.onBlockDone)
        m_callbacks.onBlockDone(b, br.cumulativeError);
}

void Runner::processEmbedding(const CalibrationSet &calibration)
{
    const Tensor &e = m_model->tensor("model.embed_tokens");
    const int64_t H = m_h.hiddenSize;
    const PlannedLayer *l = layerNamed(e.name);
    std::vector<float> table; // the quantized table, when quantized
    if (l && l->quantize) {
        const auto t0 = Clock::now();
        m_progress.message("quantizing " + e.name);
        const std::vector<float> w = m_model->readMatrix(e);
        const WeightView view { w.data(), e.rows, e.cols };
        QuantizedTensor t = l->config.method() == "rtn"
            ? quantizeRtn(view, toRtnSpec(l->config), e.name)
            : quantizeZeroQuantWeight(view, toZeroQuantOptions(l->config), e.name);
        t.name = e.name;
        t.method = l->config.method();
        LayerResult lr = makeResult(*l, t, w.data(), nullptr, secondsSince(t0));
        // The embedding's "output" for a token is its row: ‖ΔE x‖/‖E x‖ over the calibration tokens, exactly.
        double num = 0.0, den = 0.0;
        for (const CalibrationSample &s : calibration.samples)
            for (int32_t tok : s.tokens)
                for (int64_t c = 0; c < H; ++c) {
                    const double a = w[size_t(tok * H + c)], q = t.dequantized[size_t(tok * H + c)];
                    num += (a - q) * (a - q);
                    den += a * a;
                }
        lr.relOutputError = den > 0.0 ? std::sqrt(num / den) : 0.0;
        table = t.dequantized;
        emit(lr, std::move(t));
    }
    ForwardEngine engine(m_model, forwardOptions({}));
    for (size_t s = 0; s < calibration.samples.size(); ++s) {
        const std::vector<int32_t> &tokens = calibration.samples[s].tokens;
        const int64_t n = int64_t(tokens.size());
        std::vector<float> x(size_t(n * H));
        engine.embed(tokens.data(), n, x.data()); // also checks the token ids
        if (m_options.cumulativeError || m_qat)
            m_xfp.push_back(x);
        if (!table.empty())
            for (int64_t t = 0; t < n; ++t)
                std::memcpy(x.data() + t * H, table.data() + int64_t(tokens[size_t(t)]) * H, size_t(H) * sizeof(float));
        m_x.push_back(std::move(x));
        m_lengths.push_back(n);
    }
}

void Runner::processHead()
{
    const PlannedLayer *l = layerNamed("lm_head");
    if (!l || !l->quantize)
        return;
    m_progress.message("quantizing lm_head");
    const Tensor &head = m_model->tensor("lm_head");
    const std::vector<float> normW = m_model->readMatrix(m_model->tensor("model.norm"));
    const int64_t H = m_h.hiddenSize;
    InputStats stats;
    stats.reset(H, false, 0);
    std::vector<float> xn;
    for (size_t s = 0; s < m_x.size(); ++s) {
        m_progress.throwIfCancelled();
        xn.resize(m_x[s].size());
        kernels::rmsNorm(m_x[s].data(), normW.data(), m_lengths[s], H, m_h.rmsEps, xn.data());
        stats.add(xn.data(), m_lengths[s]);
    }
    stats.finish();
    const auto t0 = Clock::now();
    const std::vector<float> w = m_model->readMatrix(head);
    const WeightView view { w.data(), head.rows, head.cols };
    const std::string &method = l->config.method();
    QuantizedTensor t;
    std::optional<GptqResult> gr;
    if (method == "rtn") {
        t = quantizeRtn(view, toRtnSpec(l->config), head.name);
    } else if (method == "zeroquant") {
        const ZeroQuantOptions zo = toZeroQuantOptions(l->config);
        t = quantizeZeroQuantWeight(view, zo, head.name);
        if (zo.activationBits > 0) {
            InputQuantSpec spec;
            spec.block = -1;
            spec.input = LinearInput::Head;
            spec.bits = zo.activationBits;
            spec.convention = zo.activationConvention;
            spec.source = "zeroquant";
            spec.consumers = { head.name };
            m_run.activationQuant.set(spec);
        }
    } else {
        gr = quantizeGptq(view, stats.H, toGptqOptions(l->config), m_cancel, head.name);
        t = std::move(gr->tensor);
    }
    t.name = head.name;
    t.method = method;
    LayerResult lr = makeResult(*l, t, w.data(), &stats.H, secondsSince(t0));
    if (gr) {
        lr.gptqLoss = gr->loss;
        lr.damp = gr->percDampUsed;
        lr.deadColumns = gr->deadColumns;
    }
    if (const InputQuantSpec *spec = m_run.activationQuant.find(-1, LinearInput::Head))
        lr.activationBits = spec->bits;
    emit(lr, std::move(t));
}

const PlannedLayer *Runner::firstQatLayer() const
{
    for (const PlannedLayer &l : m_run.layersPlanned)
        if (l.quantize && l.config.method() == "efficientqat")
            return &l;
    return nullptr;
}

TrainingLossCallback Runner::lossRecorder()
{
    return [this](const TrainingLossEvent &e) {
        if (e.kind != TrainingLossKind::Step)
            m_run.trainingSummary.push_back(e);
        if (m_callbacks.onTrainingLoss)
            m_callbacks.onTrainingLoss(e);
    };
}

void Runner::trainBlockAp(BlockState &st, const std::vector<LinearInput> &inputs)
{
    const auto t0 = Clock::now();
    const int b = st.block;
    EfficientQatOptions o = toEfficientQatOptions(firstQatLayer()->config);
    if (!o.blockAp)
        o.blockApEpochs = 0; // E2E-QP only: min-max initialisation (RTN) here
    train::BlockApProblem p;
    p.block = b;
    p.shape = train::BlockShape::fromHyperParams(m_h);
    for (int i = 0; i < train::kBlockLinears; ++i) {
        const TensorRole role = train::kBlockRoles[size_t(i)];
        const PlannedLayer *l = layer(b, role);
        train::BlockApLinear &bl = p.linears[size_t(i)];
        bl.name = layerName(b, role);
        bl.rows = st.rows[role];
        bl.cols = st.cols[role];
        bl.quantize = l && l->quantize && l->config.method() == "efficientqat";
        bl.weight = bl.quantize ? st.original[role] : st.weights[role]; // others: as quantized by their method
        if (const auto it = st.biases.find(role); it != st.biases.end())
            bl.bias = it->second;
        if (bl.quantize) {
            const EfficientQatOptions lo = toEfficientQatOptions(l->config);
            bl.bits = lo.bits;
            bl.groupSize = lo.groupSize;
            bl.symmetric = lo.symmetric;
            p.trainAttnNorm = p.trainAttnNorm || i < 3;
            p.trainMlpNorm = p.trainMlpNorm || i == 4 || i == 5;
        }
    }
    p.attnNorm = st.attnNorm;
    p.mlpNorm = st.mlpNorm;
    // Targets: the float block on the float stack's inputs (§7.1).
    std::vector<std::vector<float>> targets = m_xfp;
    for (size_t s = 0; s < targets.size(); ++s) {
        m_progress.throwIfCancelled();
        m_fpEngine->runBlock(b, targets[s].data(), m_lengths[s]);
    }
    p.inputs = &m_x;
    p.targets = &targets;
    p.lengths = &m_lengths;
    m_progress.message("block " + std::to_string(b) + ": EfficientQAT Block-AP");
    train::BlockApResult r = train::runBlockAp(p, o, lossRecorder(), m_progress);
    targets.clear();
    for (size_t k = 0; k < r.tensors.size(); ++k)
        st.weights[train::kBlockRoles[size_t(r.slots[k])]] = r.tensors[k].dequantized;
    if (p.trainAttnNorm && o.trainNorms && o.blockApEpochs > 0) {
        st.attnNorm = r.attnNorm;
        st.attnNormChanged = true;
    }
    if (p.trainMlpNorm && o.trainNorms && o.blockApEpochs > 0) {
        st.mlpNorm = r.mlpNorm;
        st.mlpNormChanged = true;
    }
    const double seconds = secondsSince(t0) / double(std::max<size_t>(1, r.tensors.size()));
    // Layer figures on the trained block's own inputs.
    std::map<LinearInput, InputStats> stats;
    gather(st, inputs, stats);
    char note[96];
    std::snprintf(note, sizeof note, "Block-AP loss %.4g -> %.4g (%d steps)", r.initialLoss, r.finalLoss, r.steps);
    for (size_t k = 0; k < r.tensors.size(); ++k) {
        const TensorRole role = train::kBlockRoles[size_t(r.slots[k])];
        const LinearInput in = role == TensorRole::O ? LinearInput::AttnOut
            : role == TensorRole::Down               ? LinearInput::MlpAct
            : (role == TensorRole::Gate || role == TensorRole::Up) ? LinearInput::MlpIn
                                                                   : LinearInput::AttnIn;
        LayerResult lr = makeResult(*layer(b, role), r.tensors[k], st.original[role].data(), &stats.at(in).H, seconds);
        lr.note = note;
        emit(lr, std::move(r.tensors[k]));
    }
}

void Runner::trainE2eQp(const CalibrationSet &calibration)
{
    const EfficientQatOptions o = toEfficientQatOptions(firstQatLayer()->config);
    m_progress.message("EfficientQAT E2E-QP");
    std::vector<QuantizedTensor *> tensors;
    for (QuantizedTensor &t : m_run.tensors)
        if (t.method == "efficientqat") {
            if (t.dequantized.empty())
                t.dequantized = t.dequantize();
            tensors.push_back(&t);
        }
    std::vector<std::vector<int32_t>> tokens;
    for (const CalibrationSample &s : calibration.samples)
        tokens.push_back(s.tokens);
    train::E2eQpProblem p;
    p.model = quantizedModel(m_model, m_run);
    p.tensors = tensors;
    p.tokens = &tokens;
    const train::E2eQpResult r = train::runE2eQp(p, o, lossRecorder(), m_progress);
    // Weight figures of the new scales; rel_output_error stays the Block-AP one (no Hessian any more).
    char note[96];
    std::snprintf(note, sizeof note, "; E2E-QP loss %.4g -> %.4g (weight figures after it)", r.initialLoss,
        r.finalLoss);
    for (QuantizedTensor *t : tensors) {
        for (LayerResult &lr : m_run.layers)
            if (lr.name == t->name) {
                const std::vector<float> w = m_model->readMatrix(m_model->tensor(t->name));
                const LayerError e = layerError(w.data(), t->dequantized.data(), t->rows, t->cols, nullptr);
                lr.weightMse = e.weightMse;
                lr.sqnrDb = e.sqnrDb;
                lr.note += note;
            }
        if (!m_options.keepDequantized) {
            t->dequantized.clear();
            t->dequantized.shrink_to_fit();
        }
    }
}

void Runner::run(const CalibrationSet &calibration)
{
    const int blocks = m_h.numLayers;
    const bool head = layerNamed("lm_head") && layerNamed("lm_head")->quantize;
    for (TensorRole r : { TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::O, TensorRole::Gate, TensorRole::Up,
             TensorRole::Down })
        m_blockBytes += uint64_t(m_model->tensor(layerName(0, r)).numel()) * sizeof(float);
    m_blockBytes += uint64_t(4 * m_h.hiddenSize) * sizeof(float);

    processEmbedding(calibration);
    if (m_options.cumulativeError || m_qat)
        m_fpEngine = std::make_unique<ForwardEngine>(m_model, forwardOptions({}));

    const PlannedLayer *qat = firstQatLayer();
    const bool e2e = qat && toEfficientQatOptions(qat->config).e2eQp;
    m_progress.setTotal(double(blocks + (head ? 1 : 0) + (e2e ? 1 : 0)));
    for (int b = 0; b < blocks; ++b) {
        m_progress.throwIfCancelled();
        processBlock(b);
        m_progress.advance(1.0);
    }
    m_fpEngine.reset();
    m_xfp.clear();
    if (head) {
        processHead();
        m_progress.advance(1.0);
    }
    if (e2e) {
        trainE2eQp(calibration);
        m_progress.advance(1.0);
    }
}

bool isBlockLinear(TensorRole r)
{
    return r == TensorRole::Q || r == TensorRole::K || r == TensorRole::V || r == TensorRole::O || r == TensorRole::Gate
        || r == TensorRole::Up || r == TensorRole::Down;
}

} // namespace

// ---------------------------------------------------------------------------------------------------

nlohmann::json LayerResult::toJson() const
{
    nlohmann::ordered_json j;
    j["name"] = name;
    j["block"] = block;
    j["role"] = roleName(role);
    j["method"] = method;
    j["bits"] = bits;
    j["group_size"] = groupSize;
    j["weight_mse"] = weightMse;
    j["rel_output_error"] = relOutputError;
    j["sqnr_db"] = std::isfinite(sqnrDb) ? nlohmann::ordered_json(sqnrDb) : nlohmann::ordered_json(nullptr);
    j["seconds"] = seconds;
    j["bits_per_weight"] = bitsPerWeight;
    if (gptqLoss)
        j["gptq_loss"] = *gptqLoss;
    if (damp)
        j["damp"] = *damp;
    if (deadColumns > 0)
        j["dead_columns"] = deadColumns;
    if (activationBits > 0)
        j["activation_bits"] = activationBits;
    if (!inputScales.empty())
        j["input_scales"] = inputScales;
    if (!note.empty())
        j["note"] = note;
    return nlohmann::json(j);
}

nlohmann::json RunProvenance::toJson() const
{
    nlohmann::ordered_json j;
    j["model_path"] = modelPath;
    j["model_absolute_path"] = modelAbsolutePath;
    j["model_format"] = modelFormat;
    j["model_sha256"] = modelSha256;
    nlohmann::json files = nlohmann::json::array();
    for (const ModelFileHash &f : modelFiles)
        files.push_back({ { "file", f.file }, { "bytes", f.bytes }, { "sha256", f.sha256 } });
    j["model_files"] = files;
    j["calibration"] = calibration;
    j["quantscope_version"] = quantscopeVersion;
    j["date"] = date;
    j["threads"] = threads;
    return nlohmann::json(j);
}

RunProvenance RunProvenance::fromJson(const nlohmann::json &j)
{
    RunProvenance p;
    try {
        p.modelPath = j.at("model_path").get<std::string>();
        p.modelAbsolutePath = j.value("model_absolute_path", std::string());
        p.modelFormat = j.value("model_format", std::string());
        p.modelSha256 = j.at("model_sha256").get<std::string>();
        for (const nlohmann::json &f : j.value("model_files", nlohmann::json::array()))
            p.modelFiles.push_back(
                { f.at("file").get<std::string>(), f.at("bytes").get<uint64_t>(), f.at("sha256").get<std::string>() });
        p.calibration = j.value("calibration", nlohmann::json::object());
        p.quantscopeVersion = j.value("quantscope_version", std::string());
        p.date = j.value("date", std::string());
        p.threads = j.value("threads", 0);
    } catch (const nlohmann::json::exception &e) {
        throw Error(std::string("provenance: ") + e.what());
    }
    return p;
}

void hashModelFiles(const std::string &modelPath, RunProvenance &provenance, Progress *progress)
{
    namespace fs = std::filesystem;
    provenance.modelFiles.clear();
    std::error_code ec;
    const fs::path root(modelPath);
    std::vector<std::pair<std::string, fs::path>> files; // (relative name, path)
    if (fs::is_directory(root, ec)) {
        for (const fs::directory_entry &e : fs::directory_iterator(root, ec)) {
            if (!e.is_regular_file())
                continue;
            const std::string ext = e.path().extension().string();
            if (ext == ".safetensors" || ext == ".json" || ext == ".gguf" || ext == ".bin" || ext == ".model")
                files.emplace_back(e.path().filename().string(), e.path());
        }
        std::sort(files.begin(), files.end());
    } else if (fs::is_regular_file(root, ec)) {
        files.emplace_back(std::string(), root);
    } else {
        fail(modelPath, "no such model file or folder");
    }
    Sha256 all;
    for (const auto &[name, path] : files) {
        ModelFileHash h;
        h.file = name;
        h.bytes = fs::file_size(path, ec);
        h.sha256 = sha256FileHex(path.string(), progress);
        all.update(h.sha256 + "  " + (name.empty() ? path.filename().string() : name) + "\n");
        provenance.modelFiles.push_back(std::move(h));
    }
    provenance.modelSha256 = all.finishHex();
}

nlohmann::json RunEvaluation::toJson() const
{
    nlohmann::ordered_json j;
    j["text"] = textPath;
    j["text_sha256"] = textSha256;
    j["protocol"] = protocol;
    j["ctx"] = ctx;
    j["chunks"] = chunks;
    j["tokens_scored"] = tokensScored;
    j["perplexity"] = perplexity;
    j["original_perplexity"] = originalPerplexity;
    if (hasKld) {
        j["kld_mean"] = kldMean;
        j["kld_median"] = kldMedian;
        j["kld_p99"] = kldP99;
        j["kld_max"] = kldMax;
        j["top1_agreement"] = top1Agreement;
    }
    return nlohmann::json(j);
}

RunEvaluation RunEvaluation::fromJson(const nlohmann::json &j)
{
    RunEvaluation e;
    try {
        e.textPath = j.value("text", std::string());
        e.textSha256 = j.value("text_sha256", std::string());
        e.protocol = j.at("protocol").get<std::string>();
        e.ctx = j.at("ctx").get<int>();
        e.chunks = j.value("chunks", int64_t(0));
        e.tokensScored = j.value("tokens_scored", int64_t(0));
        e.perplexity = j.at("perplexity").get<double>();
        e.originalPerplexity = j.value("original_perplexity", 0.0);
        e.hasKld = j.contains("kld_mean");
        if (e.hasKld) {
            e.kldMean = j.at("kld_mean").get<double>();
            e.kldMedian = j.value("kld_median", 0.0);
            e.kldP99 = j.value("kld_p99", 0.0);
            e.kldMax = j.value("kld_max", 0.0);
            e.top1Agreement = j.value("top1_agreement", 0.0);
        }
    } catch (const nlohmann::json::exception &ex) {
        throw Error(std::string("evaluation: ") + ex.what());
    }
    return e;
}

const QuantizedTensor *QuantRun::findTensor(const std::string &name) const
{
    for (const QuantizedTensor &t : tensors)
        if (t.name == name)
            return &t;
    return nullptr;
}

const LayerResult *QuantRun::findLayer(const std::string &name) const
{
    for (const LayerResult &l : layers)
        if (l.name == name)
            return &l;
    return nullptr;
}

std::shared_ptr<Model> quantizedModel(const std::shared_ptr<const Model> &original, const QuantRun &run)
{
    auto m = std::make_shared<Model>(*original);
    for (const QuantizedTensor &t : run.tensors)
        replaceTensor(*m, t.name, t.dequantized.empty() ? t.dequantize() : t.dequantized);
    for (const auto &[name, values] : run.modifiedTensors)
        replaceTensor(*m, name, values);
    m->inputTransform = run.activationQuant.transform();
    auto info = std::make_shared<RunInfo>();
    info->originalPath = original->path;
    info->originalSha256 = run.provenance.modelSha256;
    info->activationQuant = run.activationQuant;
    for (const QuantizedTensor &t : run.tensors)
        info->quantizedLayers.push_back(t.name);
    for (const auto &[name, values] : run.modifiedTensors)
        info->modifiedTensors.push_back(name);
    info->bitsPerWeight = run.bitsPerWeight;
    m->runInfo = info;
    return m;
}

RunEvaluation evaluateRun(const std::shared_ptr<const Model> &quantized, const std::shared_ptr<const Model> &original,
    const std::string &textPath, const EvalOptions &options, bool withKld, int threads, Progress &progress)
{
    progress.message("evaluating on " + textPath);
    const TokenizedText text = tokenizeTextFile(*original, textPath, progress);
    ForwardOptions fo;
    fo.threads = threads;
    ForwardEngine q(quantized, fo);
    ForwardEngine o(original, fo);
    RunEvaluation e;
    e.textPath = textPath;
    e.textSha256 = text.sha256;
    if (withKld) {
        const KldResult r = evaluateKld(q, o, text.tokens, options, progress);
        e.protocol = r.protocol;
        e.ctx = r.ctx;
        e.chunks = r.chunks;
        e.tokensScored = r.tokensScored;
        e.perplexity = r.model.perplexity;
        e.originalPerplexity = r.reference.perplexity;
        e.hasKld = true;
        e.kldMean = r.kldMean;
        e.kldMedian = r.kldMedian;
        e.kldP99 = r.kldP99;
        e.kldMax = r.kldMax;
        e.top1Agreement = r.top1Agreement;
    } else {
        const PerplexityResult r = evaluatePerplexity(q, text.tokens, options, progress);
        const PerplexityResult ro = evaluatePerplexity(o, text.tokens, options, progress);
        e.protocol = r.protocol;
        e.ctx = r.ctx;
        e.chunks = r.chunks;
        e.tokensScored = r.tokensScored;
        e.perplexity = r.perplexity;
        e.originalPerplexity = ro.perplexity;
    }
    return e;
}

QuantRun runQuantization(std::shared_ptr<const Model> model, const Plan &plan, const PipelineOptions &options,
    PipelineCallbacks &callbacks, Progress &progress)
{
    const auto t0 = Clock::now();
    if (!model)
        throw Error("quantize: no model");
    OmpThreadsScope threads(options.threads);

    QuantRun run;
    run.plan = plan;
    run.layersPlanned = plan.resolve(*model);
    Runner runner(model, run, options, callbacks, progress);
    runner.checkPlan();

    if (options.calibrationText.empty())
        throw Error("quantize: no calibration text given");
    if (options.samples <= 0 || options.seqLen < 2)
        throw Error("quantize: calibration needs at least one sample of two or more tokens");

    // Provenance first: a model that cannot be hashed cannot be referenced by a run.
    progress.message("hashing model files");
    RunProvenance &prov = run.provenance;
    prov.modelPath = model->path;
    {
        std::error_code ec;
        prov.modelAbsolutePath = std::filesystem::absolute(model->path, ec).lexically_normal().string();
    }
    prov.modelFormat = model->format;
    hashModelFiles(model->path, prov, &progress);
    prov.quantscopeVersion = quantscopeVersion();
    prov.date = isoDateUtc();
    prov.threads = options.threads > 0 ? options.threads : omp_get_max_threads();

    // Calibration samples.
    progress.message("tokenizing " + options.calibrationText);
    CalibrationSet calibration;
    if (options.calibrationMode == CalibrationMode::Windows) {
        const TokenizedText text = tokenizeTextFile(*model, options.calibrationText, progress);
        calibration = makeCalibrationWindows(
            text.tokens, options.samples, options.seqLen, options.seed, options.calibrationText);
        describeCalibrationText(calibration, options.calibrationText, text.tokenizer);
    } else {
        const std::string text = readTextFile(options.calibrationText);
        const std::unique_ptr<Tokenizer> tokenizer = loadTokenizer(*model);
        std::vector<std::vector<int32_t>> documents;
        for (const std::string &doc : splitDocuments(text, options.documentSeparator))
            documents.push_back(encodeWithSpecials(*tokenizer, doc, model->hparams.addBos));
        calibration = makeCalibrationDocuments(
            documents, options.samples, options.seqLen, options.seed, options.calibrationText);
        describeCalibrationText(calibration, options.calibrationText, tokenizer->name());
        calibration.separator = options.documentSeparator;
    }
    prov.calibration = calibration.toJson();

    runner.run(calibration);

    // Bits per weight over the linear weights.
    double bits = 0.0, weights = 0.0;
    for (const Tensor &t : model->tensors) {
        const QuantizedTensor *q = run.findTensor(t.name);
        if (!q && !isBlockLinear(t.role))
            continue;
        bits += double(t.numel()) * (q ? q->bitsPerWeight() : 16.0);
        weights += double(t.numel());
    }
    run.bitsPerWeight = weights > 0.0 ? bits / weights : 0.0;

    if (!options.evalText.empty()) {
        progress.throwIfCancelled();
        const std::shared_ptr<const Model> qm = quantizedModel(model, run);
        run.evaluation
            = evaluateRun(qm, model, options.evalText, options.eval, options.evalKld, options.threads, progress);
    }
    run.seconds = secondsSince(t0);
    return run;
}

} // namespace qs::core
