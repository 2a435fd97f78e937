#include "model/Forward.h"

#include <algorithm>
#include <cstring>

#include <Eigen/Core>
#include <omp.h>

#include "common/Error.h"
#include "stats/ParallelChunks.h"

namespace qs::core {

namespace {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::OuterStride<>;
using MapRM = Eigen::Map<MatRM>;
using ConstMapRM = Eigen::Map<const MatRM>;
using StridedMap = Eigen::Map<MatRM, 0, Strided>;
using RowVec = Eigen::Map<const Eigen::Matrix<float, 1, Eigen::Dynamic>>;

// Multiply-adds below which a GEMM runs on one thread. Eigen would split products from about 50k
// multiply-adds per thread, where the spin synchronisation between threads costs more than it saves (and
// on a machine with other load, a lot more); below ~16M (a few milliseconds on one core) one thread wins.
constexpr double kParallelGemmMinWork = double(1 << 24);

// Converted rows per loading task: big enough to amortise the call, small enough to spread a block over
// all threads.
constexpr int64_t kLoadChunkElements = int64_t(1) << 16;

// Sets the calling thread's OpenMP thread count (which Eigen's GEMMs also follow) and restores it.
class OmpThreadsScope
{
public:
    explicit OmpThreadsScope(int threads)
        : m_saved(omp_get_max_threads())
    {
        omp_set_num_threads(threads);
    }
    ~OmpThreadsScope() { omp_set_num_threads(m_saved); }
    OmpThreadsScope(const OmpThreadsScope &) = delete;
    OmpThreadsScope &operator=(const OmpThreadsScope &) = delete;

private:
    int m_saved;
};

// dst = (or +=) x · wᵀ for row-major x [m, k] and w [n, k], on one thread when the product is small.
template <class F> void gemm(int64_t m, int64_t n, int64_t k, F &&product)
{
    if (double(m) * double(n) * double(k) < kParallelGemmMinWork) {
        OmpThreadsScope one(1);
        product();
    } else {
        product();
    }
}

// Row ranges of tensors to convert into float32 destinations, run in parallel.
class LoadPlan
{
public:
    explicit LoadPlan(const Model &model)
        : m_model(model)
    { }

    // Rows [firstRow, firstRow + rows) of t into dst (rows × t.cols floats).
    void add(const Tensor &t, float *dst, int64_t firstRow = 0, int64_t rows = -1)
    {
        if (rows < 0)
            rows = t.rows - firstRow;
        const int64_t step = detail::rowsPerChunk(t.cols, kLoadChunkElements);
        for (int64_t r = 0; r < rows; r += step)
            m_tasks.push_back({ &t, firstRow + r, std::min(step, rows - r), dst + r * t.cols });
    }

    void run()
    {
        detail::ChunkErrors errors;
        const int64_t n = int64_t(m_tasks.size());
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
        for (int64_t i = 0; i < n; ++i)
            errors.run([&] {
                const Task &task = m_tasks[size_t(i)];
                m_model.readRows(*task.tensor, task.firstRow, task.rows, task.dst);
            });
        errors.rethrow();
    }

private:
    struct Task
    {
        const Tensor *tensor;
        int64_t firstRow;
        int64_t rows;
        float *dst;
    };
    const Model &m_model;
    std::vector<Task> m_tasks;
};

const Tensor *findBias(const Model &m, int block, TensorRole role)
{
    return m.find(layerName(block, role) + ".bias");
}

// A float array that is not zero-filled when allocated: converted weights are written by the parallel
// loading tasks, so those also take the first-touch page faults instead of one thread zeroing gigabytes
// (which dominated the conversion of blocks that do not fit the cache).
class FloatBuffer
{
public:
    void allocate(int64_t n)
    {
        m_data = std::make_unique_for_overwrite<float[]>(size_t(n));
        m_size = n;
    }
    void zeros(int64_t n)
    {
        allocate(n);
        std::fill_n(m_data.get(), n, 0.0f);
    }
    float *data() { return m_data.get(); }
    const float *data() const { return m_data.get(); }
    bool empty() const { return m_size == 0; }
    uint64_t bytes() const { return uint64_t(m_size) * sizeof(float); }

private:
    std::unique_ptr<float[]> m_data;
    int64_t m_size = 0;
};

int32_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (v[i] > v[best])
            best = i;
    return int32_t(best);
}

} // namespace

// One block's weights in float32, with q|k|v and gate|up fused row-wise so that each pair or triple is one
// GEMM. Bias vectors are empty when the model has none for that projection.
struct ForwardEngine::BlockWeights
{
    FloatBuffer attnNorm, mlpNorm;
    FloatBuffer qkv, qkvBias; // [qDim + 2·kvDim, H]
    FloatBuffer o, oBias; // [H, qDim]
    FloatBuffer gateUp, gateUpBias; // [2I, H]
    FloatBuffer down, downBias; // [H, I]

    uint64_t bytes() const
    {
        return attnNorm.bytes() + mlpNorm.bytes() + qkv.bytes() + qkvBias.bytes() + o.bytes() + oBias.bytes()
            + gateUp.bytes() + gateUpBias.bytes() + down.bytes() + downBias.bytes();
    }
};

struct ForwardEngine::HeadWeights
{
    FloatBuffer lmHead; // [V, H]
};

// Where a block keeps keys and values: rows 0 .. posOffset+n−1 of kvStride floats (KV head g at g·headDim).
// Null pointers mean a fresh context: attention then reads k and v straight out of the fused q|k|v output.
struct ForwardEngine::KvView
{
    float *k = nullptr;
    float *v = nullptr;
    int64_t stride = 0;
};

// Activations of one pass, n rows each. Uninitialised: every element is written before it is read, and
// zero-filling them costs a few percent of a small model's pass.
struct ForwardEngine::Scratch
{
    struct Buffer
    {
        explicit Buffer(int64_t n)
            : p(std::make_unique_for_overwrite<float[]>(size_t(n)))
        { }
        float *data() { return p.get(); }
        std::unique_ptr<float[]> p;
    };
    Scratch(const HyperParams &h, int64_t n)
        : qDim(int64_t(h.numHeads) * h.headDim)
        , kvDim(int64_t(h.numKvHeads) * h.headDim)
        , qkvCols(qDim + 2 * kvDim)
        , xn(n * h.hiddenSize)
        , qkv(n * qkvCols)
        , attn(n * qDim)
        , gateUp(n * 2 * h.intermediateSize)
        , act(n * h.intermediateSize)
    { }
    int64_t qDim, kvDim, qkvCols;
    Buffer xn, qkv, attn, gateUp, act;
};

ForwardEngine::ForwardEngine(std::shared_ptr<const Model> model, ForwardOptions options)
    : m_model(std::move(model))
    , m_options(options)
{
    if (!m_model)
        throw Error("forward pass: no model");
    m_threads = m_options.threads > 0 ? m_options.threads : omp_get_max_threads();
    if (!m_options.inputTransform)
        m_options.inputTransform = m_model->inputTransform; // a quantized run's activation quantization
    const HyperParams &h = m_model->hparams;
    if (h.hiddenSize <= 0 || h.numLayers <= 0 || h.numHeads <= 0 || h.numKvHeads <= 0 || h.headDim <= 0
        || h.headDim % 2 != 0 || h.numHeads % h.numKvHeads != 0 || h.vocabSize <= 0 || h.intermediateSize <= 0)
        fail(m_model->path, "hyper-parameters unsuitable for the Llama forward pass");
    // Fail now, not in the middle of an evaluation, for missing tensors and unsupported RoPE types.
    (void)kernels::ropeInverseFrequencies(h, 1);
    for (int b = 0; b < h.numLayers; ++b) {
        for (TensorRole r : { TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::O, TensorRole::Gate,
                 TensorRole::Up, TensorRole::Down })
            (void)m_model->tensor(layerName(b, r));
        (void)m_model->tensor("model.layers." + std::to_string(b) + ".input_layernorm");
        (void)m_model->tensor("model.layers." + std::to_string(b) + ".post_attention_layernorm");
    }
    (void)m_model->tensor("model.embed_tokens");
    (void)m_model->tensor("lm_head");
    m_finalNorm = m_model->readMatrix(m_model->tensor("model.norm"));
}

ForwardEngine::~ForwardEngine() = default;

// ---- weight cache ----

std::shared_ptr<const void> ForwardEngine::cacheLookup(int key)
{
    std::lock_guard lock(m_cacheMutex);
    for (auto it = m_cache.begin(); it != m_cache.end(); ++it)
        if (it->key == key) {
            m_cache.splice(m_cache.begin(), m_cache, it);
            return m_cache.front().data;
        }
    return nullptr;
}

void ForwardEngine::cacheInsert(int key, std::shared_ptr<const void> entry, uint64_t bytes)
{
    if (bytes > m_options.weightCacheBytes)
        return;
    std::lock_guard lock(m_cacheMutex);
    for (const CacheEntry &e : m_cache)
        if (e.key == key)
            return; // another thread loaded it meanwhile
    // Evict from the most recently used end (see the header: passes scan blocks cyclically).
    while (!m_cache.empty() && m_cacheBytes + bytes > m_options.weightCacheBytes) {
        m_cacheBytes -= m_cache.front().bytes;
        m_cache.pop_front();
    }
    m_cache.push_front({ key, std::move(entry), bytes });
    m_cacheBytes += bytes;
}

uint64_t ForwardEngine::cachedBytes() const
{
    std::lock_guard lock(m_cacheMutex);
    return m_cacheBytes;
}

void ForwardEngine::clearCache()
{
    std::lock_guard lock(m_cacheMutex);
    m_cache.clear();
    m_cacheBytes = 0;
}

std::shared_ptr<const ForwardEngine::BlockWeights> ForwardEngine::blockWeights(int block)
{
    if (auto hit = cacheLookup(block))
        return std::static_pointer_cast<const BlockWeights>(hit);

    const Model &m = *m_model;
    const HyperParams &h = m.hparams;
    const int64_t H = h.hiddenSize, I = h.intermediateSize;
    const int64_t qDim = int64_t(h.numHeads) * h.headDim, kvDim = int64_t(h.numKvHeads) * h.headDim;
    const std::string prefix = "model.layers." + std::to_string(block) + ".";

    auto w = std::make_shared<BlockWeights>();
    w->attnNorm.allocate(H);
    w->mlpNorm.allocate(H);
    w->qkv.allocate((qDim + 2 * kvDim) * H);
    w->o.allocate(H * qDim);
    w->gateUp.allocate(2 * I * H);
    w->down.allocate(H * I);

    LoadPlan plan(m);
    plan.add(m.tensor(prefix + "input_layernorm"), w->attnNorm.data());
    plan.add(m.tensor(prefix + "post_attention_layernorm"), w->mlpNorm.data());
    plan.add(m.tensor(layerName(block, TensorRole::Q)), w->qkv.data());
    plan.add(m.tensor(layerName(block, TensorRole::K)), w->qkv.data() + qDim * H);
    plan.add(m.tensor(layerName(block, TensorRole::V)), w->qkv.data() + (qDim + kvDim) * H);
    plan.add(m.tensor(layerName(block, TensorRole::O)), w->o.data());
    plan.add(m.tensor(layerName(block, TensorRole::Gate)), w->gateUp.data());
    plan.add(m.tensor(layerName(block, TensorRole::Up)), w->gateUp.data() + I * H);
    plan.add(m.tensor(layerName(block, TensorRole::Down)), w->down.data());

    // Biases: whichever the model has (Llama with attention_bias: q/k/v/o; Qwen2: q/k/v). A missing one
    // in a fused group stays zero.
    const Tensor *qb = findBias(m, block, TensorRole::Q), *kb = findBias(m, block, TensorRole::K),
                 *vb = findBias(m, block, TensorRole::V);
    if (qb || kb || vb) {
        w->qkvBias.zeros(qDim + 2 * kvDim);
        if (qb)
            plan.add(*qb, w->qkvBias.data());
        if (kb)
            plan.add(*kb, w->qkvBias.data() + qDim);
        if (vb)
            plan.add(*vb, w->qkvBias.data() + qDim + kvDim);
    }
    if (const Tensor *ob = findBias(m, block, TensorRole::O)) {
        w->oBias.allocate(H);
        plan.add(*ob, w->oBias.data());
    }
    const Tensor *gb = findBias(m, block, TensorRole::Gate), *ub = findBias(m, block, TensorRole::Up);
    if (gb || ub) {
        w->gateUpBias.zeros(2 * I);
        if (gb)
            plan.add(*gb, w->gateUpBias.data());
        if (ub)
            plan.add(*ub, w->gateUpBias.data() + I);
    }
    if (const Tensor *db = findBias(m, block, TensorRole::Down)) {
        w->downBias.allocate(H);
        plan.add(*db, w->downBias.data());
    }
    plan.run();

    cacheInsert(block, w, w->bytes());
    return w;
}

std::shared_ptr<const ForwardEngine::HeadWeights> ForwardEngine::headWeights()
{
    constexpr int kHeadKey = -1;
    if (auto hit = cacheLookup(kHeadKey))
        return std::static_pointer_cast<const HeadWeights>(hit);
    const Tensor &t = m_model->tensor("lm_head");
    const uint64_t bytes = uint64_t(t.numel()) * sizeof(float);
    if (bytes > m_options.weightCacheBytes)
        return nullptr; // streamed in vocabulary tiles by computeLogits
    auto w = std::make_shared<HeadWeights>();
    w->lmHead.allocate(t.numel());
    LoadPlan plan(*m_model);
    plan.add(t, w->lmHead.data());
    plan.run();
    cacheInsert(kHeadKey, w, bytes);
    return w;
}

// ---- the pass ----

void ForwardEngine::checkTokens(const int32_t *tokens, int64_t n) const
{
    const int vocab = hparams().vocabSize;
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            throw Error("forward pass: token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i)
                + " is outside the vocabulary of " + std::to_string(vocab));
}

void ForwardEngine::embed(const int32_t *tokens, int64_t n, float *x) const
{
    checkTokens(tokens, n);
    const Tensor &e = m_model->tensor("model.embed_tokens");
    detail::ChunkErrors errors;
#pragma omp parallel for schedule(static) if (n * e.cols > (int64_t(1) << 15))
    for (int64_t t = 0; t < n; ++t)
        errors.run([&] { m_model->readRows(e, tokens[t], 1, x + t * e.cols); });
    errors.rethrow();
}

void ForwardEngine::runBlockImpl(int block, const BlockWeights &w, float *x, int64_t n, int64_t posOffset,
    const KvView &kv, const kernels::RopeTable &rope, Scratch &s, ActivationObserver *observer)
{
    const HyperParams &h = hparams();
    const int64_t H = h.hiddenSize, I = h.intermediateSize;
    const int64_t qDim = s.qDim, kvDim = s.kvDim, qkvCols = s.qkvCols;
    const bool observe = observer && observer->wantsBlock(block);

    MapRM X(x, n, H);

    // Attention.
    kernels::rmsNorm(x, w.attnNorm.data(), n, H, h.rmsEps, s.xn.data());
    if (m_options.inputTransform)
        m_options.inputTransform(block, LinearInput::AttnIn, s.xn.data(), n, H);
    if (observe)
        observer->onLinearInput(block, LinearInput::AttnIn, s.xn.data(), n, H);
    MapRM QKV(s.qkv.data(), n, qkvCols);
    gemm(n, qkvCols, H,
        [&] { QKV.noalias() = ConstMapRM(s.xn.data(), n, H) * ConstMapRM(w.qkv.data(), qkvCols, H).transpose(); });
    if (!w.qkvBias.empty())
        QKV.rowwise() += RowVec(w.qkvBias.data(), qkvCols);
    kernels::applyRope(s.qkv.data(), n, qkvCols, h.numHeads, h.headDim, posOffset, rope);
    kernels::applyRope(s.qkv.data() + qDim, n, qkvCols, h.numKvHeads, h.headDim, posOffset, rope);

    const float *kPtr = s.qkv.data() + qDim;
    const float *vPtr = s.qkv.data() + qDim + kvDim;
    int64_t kvStride = qkvCols;
    if (kv.k) {
        for (int64_t t = 0; t < n; ++t) {
            std::memcpy(kv.k + (posOffset + t) * kv.stride, kPtr + t * qkvCols, size_t(kvDim) * sizeof(float));
            std::memcpy(kv.v + (posOffset + t) * kv.stride, vPtr + t * qkvCols, size_t(kvDim) * sizeof(float));
        }
        kPtr = kv.k;
        vPtr = kv.v;
        kvStride = kv.stride;
    }
    kernels::causalAttention({ h.numHeads, h.numKvHeads, h.headDim }, s.qkv.data(), qkvCols, kPtr, vPtr, kvStride, n,
        posOffset, s.attn.data(), qDim);
    if (m_options.inputTransform)
        m_options.inputTransform(block, LinearInput::AttnOut, s.attn.data(), n, qDim);
    if (observe)
        observer->onLinearInput(block, LinearInput::AttnOut, s.attn.data(), n, qDim);
    gemm(n, H, qDim,
        [&] { X.noalias() += ConstMapRM(s.attn.data(), n, qDim) * ConstMapRM(w.o.data(), H, qDim).transpose(); });
    if (!w.oBias.empty())
        X.rowwise() += RowVec(w.oBias.data(), H);

    // MLP.
    kernels::rmsNorm(x, w.mlpNorm.data(), n, H, h.rmsEps, s.xn.data());
    if (m_options.inputTransform)
        m_options.inputTransform(block, LinearInput::MlpIn, s.xn.data(), n, H);
    if (observe)
        observer->onLinearInput(block, LinearInput::MlpIn, s.xn.data(), n, H);
    MapRM GU(s.gateUp.data(), n, 2 * I);
    gemm(n, 2 * I, H,
        [&] { GU.noalias() = ConstMapRM(s.xn.data(), n, H) * ConstMapRM(w.gateUp.data(), 2 * I, H).transpose(); });
    if (!w.gateUpBias.empty())
        GU.rowwise() += RowVec(w.gateUpBias.data(), 2 * I);
    kernels::swiglu(s.gateUp.data(), n, I, s.act.data());
    if (m_options.inputTransform)
        m_options.inputTransform(block, LinearInput::MlpAct, s.act.data(), n, I);
    if (observe)
        observer->onLinearInput(block, LinearInput::MlpAct, s.act.data(), n, I);
    gemm(n, H, I, [&] { X.noalias() += ConstMapRM(s.act.data(), n, I) * ConstMapRM(w.down.data(), H, I).transpose(); });
    if (!w.downBias.empty())
        X.rowwise() += RowVec(w.downBias.data(), H);

    if (observe)
        observer->onBlockOutput(block, x, n, H);
}

void ForwardEngine::computeLogits(const HeadWeights *head, const float *xn, int64_t rows, float *out)
{
    const int64_t H = hparams().hiddenSize, V = hparams().vocabSize;
    const ConstMapRM Xn(xn, rows, H);
    if (head) {
        gemm(rows, V, H,
            [&] { MapRM(out, rows, V).noalias() = Xn * ConstMapRM(head->lmHead.data(), V, H).transpose(); });
        return;
    }
    // The LM head does not fit the cache: stream it in tiles of vocabulary rows.
    const Tensor &t = m_model->tensor("lm_head");
    const int64_t tileBytes = int64_t(m_options.headTileBytes);
    const int64_t tileRows = std::clamp<int64_t>(tileBytes / (H * int64_t(sizeof(float))), 1, V);
    FloatBuffer tile;
    tile.allocate(tileRows * H);
    for (int64_t v0 = 0; v0 < V; v0 += tileRows) {
        const int64_t r = std::min(tileRows, V - v0);
        LoadPlan plan(*m_model);
        plan.add(t, tile.data(), v0, r);
        plan.run();
        gemm(rows, r, H, [&] {
            StridedMap(out + v0, rows, r, Strided(V)).noalias() = Xn * ConstMapRM(tile.data(), r, H).transpose();
        });
    }
}

void ForwardEngine::produceLogits(const float *xn, int64_t n, const Logits &output)
{
    (void)n;
    const int64_t H = hparams().hiddenSize, V = hparams().vocabSize;
    const std::shared_ptr<const HeadWeights> head = headWeights();
    if (output.data) {
        computeLogits(head.get(), xn + output.first * H, output.count(), output.data);
        return;
    }
    const int64_t tileBytes = int64_t(m_options.headTileBytes);
    const int64_t tile = std::clamp<int64_t>(tileBytes / (V * int64_t(sizeof(float))), 1, output.count());
    FloatBuffer buffer;
    buffer.allocate(tile * V);
    for (int64_t p = output.first; p < output.last; p += tile) {
        const int64_t c = std::min(tile, output.last - p);
        computeLogits(head.get(), xn + p * H, c, buffer.data());
        output.sink(p, c, buffer.data());
    }
}

void ForwardEngine::forward(
    const int32_t *tokens, int64_t n, Logits output, ActivationObserver *observer, Progress *progress)
{
    if (n <= 0)
        throw Error("forward pass: empty token sequence");
    if (output.first < 0 || output.last < output.first || output.last > n)
        throw Error("forward pass: logits range [" + std::to_string(output.first) + ", " + std::to_string(output.last)
            + ") outside the " + std::to_string(n) + " positions");
    if (output.count() > 0 && !output.data && !output.sink)
        throw Error("forward pass: logits requested without a destination");
    checkTokens(tokens, n);

    const HyperParams &h = hparams();
    const bool observeHead = observer && observer->wantsBlock(-1);
    const bool needHead = output.count() > 0 || observeHead;
    int lastBlock = -1;
    if (needHead)
        lastBlock = h.numLayers - 1;
    else if (observer)
        for (int b = 0; b < h.numLayers; ++b)
            if (observer->wantsBlock(b))
                lastBlock = b;
    if (lastBlock < 0 && !needHead)
        return; // nothing asked for

    OmpThreadsScope threads(m_threads);
    const int64_t H = h.hiddenSize;
    std::vector<float> x(size_t(n * H));
    embed(tokens, n, x.data());
    Scratch scratch(h, n);
    const kernels::RopeTable rope = kernels::makeRopeTable(kernels::ropeInverseFrequencies(h, n), 0, n);
    for (int b = 0; b <= lastBlock; ++b) {
        if (progress)
            progress->throwIfCancelled();
        const std::shared_ptr<const BlockWeights> w = blockWeights(b);
        runBlockImpl(b, *w, x.data(), n, 0, KvView {}, rope, scratch, observer);
    }
    if (!needHead)
        return;
    if (progress)
        progress->throwIfCancelled();
    kernels::rmsNorm(x.data(), m_finalNorm.data(), n, H, h.rmsEps, scratch.xn.data());
    if (m_options.inputTransform)
        m_options.inputTransform(-1, LinearInput::Head, scratch.xn.data(), n, H);
    if (observeHead)
        observer->onLinearInput(-1, LinearInput::Head, scratch.xn.data(), n, H);
    if (output.count() > 0)
        produceLogits(scratch.xn.data(), n, output);
}

std::vector<float> ForwardEngine::forwardAll(const std::vector<int32_t> &tokens, ActivationObserver *observer)
{
    const int64_t n = int64_t(tokens.size());
    std::vector<float> logits(size_t(n) * size_t(hparams().vocabSize));
    forward(tokens.data(), n, Logits::into(logits.data(), 0, n), observer);
    return logits;
}

void ForwardEngine::runBlock(int block, float *x, int64_t n, ActivationObserver *observer)
{
    const HyperParams &h = hparams();
    if (block < 0 || block >= h.numLayers)
        throw Error("forward pass: no block " + std::to_string(block));
    if (n <= 0)
        throw Error("forward pass: empty token sequence");
    OmpThreadsScope threads(m_threads);
    Scratch scratch(h, n);
    const kernels::RopeTable rope = kernels::makeRopeTable(kernels::ropeInverseFrequencies(h, n), 0, n);
    const std::shared_ptr<const BlockWeights> w = blockWeights(block);
    runBlockImpl(block, *w, x, n, 0, KvView {}, rope, scratch, observer);
}

std::vector<int32_t> ForwardEngine::greedyGenerate(const std::vector<int32_t> &prompt, int count, Progress *progress)
{
    if (prompt.empty())
        throw Error("generation: empty prompt");
    if (count <= 0)
        return {};
    checkTokens(prompt.data(), int64_t(prompt.size()));

    const HyperParams &h = hparams();
    const int64_t H = h.hiddenSize, V = h.vocabSize;
    const int64_t kvDim = int64_t(h.numKvHeads) * h.headDim;
    const int64_t promptLen = int64_t(prompt.size());
    const int64_t total = promptLen + count;

    OmpThreadsScope threads(m_threads);
    const kernels::RopeTable rope = kernels::makeRopeTable(kernels::ropeInverseFrequencies(h, total), 0, total);
    // KV cache of every block for all positions (small: generation is for small models and short texts).
    std::vector<float> kCache(size_t(h.numLayers) * size_t(total * kvDim));
    std::vector<float> vCache(kCache.size());
    auto kvOf = [&](int b) {
        return KvView { kCache.data() + int64_t(b) * total * kvDim, vCache.data() + int64_t(b) * total * kvDim, kvDim };
    };

    std::vector<float> logits(static_cast<size_t>(V));
    std::vector<float> lastNorm(static_cast<size_t>(H));
    // One step: run tokens [posOffset, posOffset + n) through every block and return the argmax after the
    // last of them.
    auto step = [&](const int32_t *tokens, int64_t n, int64_t posOffset) {
        std::vector<float> x(size_t(n * H));
        embed(tokens, n, x.data());
        Scratch scratch(h, n);
        for (int b = 0; b < h.numLayers; ++b) {
            if (progress)
                progress->throwIfCancelled();
            const std::shared_ptr<const BlockWeights> w = blockWeights(b);
            runBlockImpl(b, *w, x.data(), n, posOffset, kvOf(b), rope, scratch, nullptr);
        }
        kernels::rmsNorm(x.data() + (n - 1) * H, m_finalNorm.data(), 1, H, h.rmsEps, lastNorm.data());
        if (m_options.inputTransform)
            m_options.inputTransform(-1, LinearInput::Head, lastNorm.data(), 1, H);
        const std::shared_ptr<const HeadWeights> head = headWeights();
        computeLogits(head.get(), lastNorm.data(), 1, logits.data());
        return argmax(logits.data(), V);
    };

    std::vector<int32_t> out;
    out.reserve(size_t(count));
    out.push_back(step(prompt.data(), promptLen, 0));
    for (int i = 1; i < count; ++i) {
        const int32_t previous = out.back();
        out.push_back(step(&previous, 1, promptLen + i - 1));
    }
    return out;
}

} // namespace qs::core
