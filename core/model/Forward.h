#pragma once
// The float32 Llama forward pass (issue: model execution): embedding, per block RMSNorm → q/k/v (+bias)
// → RoPE → causal grouped-query attention → o_proj (+bias) → residual, RMSNorm → SwiGLU MLP → residual,
// then the final norm and the LM head. Works on any Model the readers build (Llama, Mistral, Qwen2
// layouts; q/k rows in Hugging Face rotate-half order, see Model.h), whatever the stored dtype: weights
// are converted to float32 through TensorData::readRows.
//
// Numerics: float32 weights and activations, Eigen GEMMs (X · Wᵀ over row-major maps), float32
// attention scores with max-subtracted softmax, RMSNorm mean squares in double, RoPE angles in double.
// q/k/v are one fused GEMM and gate/up another, which changes nothing numerically (each output is the
// same dot product) but halves the number of GEMM calls.
//
// Threads: OpenMP. Eigen's GEMMs use the calling thread's OpenMP thread count, which forward() sets to
// ForwardOptions::threads for its duration (and restores); products under ~16M multiply-adds run on one
// thread (Eigen's spin synchronisation costs more than it saves there). Attention is parallel over
// (head, block of 32 queries), row-wise steps over rows when large. Results are deterministic for a
// given thread count (bit-identical passes, so KLD(model, model) is exactly 0), but the GEMM blocking,
// and so the last bits, may change with the thread count.
//
// Weight memory and the cache trade-off: every pass needs each block's weights as float32. Converting
// them is cheap for F32 sources but not for BF16/F16/GGUF-quantized ones, and evaluation runs one pass
// per chunk, so converted blocks are kept in a cache of at most ForwardOptions::weightCacheBytes (the LM
// head counts as one more entry). Small models therefore convert once and then run from memory. A model
// larger than the budget re-reads the blocks that do not fit on every pass, so memory stays bounded by
// the budget plus one block (or one vocabulary tile of the LM head) plus activations, at the cost of one
// conversion per block per chunk; raise the budget when the memory is there (TinyLlama-1.1B shapes from
// F16 on 16 cores: 265 tokens/s at ctx 512 with all 3.9 GB cached, 206 with the 1 GiB default). Eviction takes the most
// recently used entry: passes visit blocks cyclically, where least-recently-used eviction would throw out
// exactly the block needed next and never hit, whereas this keeps a fixed set of blocks resident and still
// keeps a block that one caller runs again and again (calibration) once it has been loaded.
//
// Thread safety: one engine may be used from several threads at once (the cache is locked, everything
// else is per call), though each pass already uses all configured threads. The Model must not change
// while an engine uses it.

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "common/Progress.h"
#include "model/ActivationObserver.h"
#include "model/ForwardKernels.h"
#include "model/Model.h"

namespace qs::core {

struct ForwardOptions
{
    int threads = 0; // OpenMP threads for a pass; 0 = omp_get_max_threads() when the engine is made
    uint64_t weightCacheBytes = uint64_t(1) << 30; // float32 weights kept between passes; 0 = none
    // Called on the input of each linear layer (q/k/v share one, gate/up share one; block −1 is the LM head)
    // after the producing op and before the linears and the observer read it; may change it in place
    // (simulated activation quantization). Empty: Model::inputTransform is used (set for quantized runs).
    LinearInputTransform inputTransform;
    // Size of the LM head's working tiles (streamed logits rows; vocabulary rows of an LM head read past
    // the cache), so that a large vocabulary never needs a [positions × vocab] or whole [vocab × hidden]
    // float32 buffer. Tests lower it to exercise the tiling.
    uint64_t headTileBytes = uint64_t(64) << 20;

    static ForwardOptions defaults() { return {}; }
};

// Which positions' logits a pass produces, and where they go. Positions [first, last) of the chunk; each
// is a row of vocabSize floats. Either `data` receives all of them ((last − first) × vocab, row-major), or
// `sink` is called with consecutive tiles of rows (firstPosition, count, rows), so that a caller that
// reduces logits at once (perplexity) never holds more than one tile. An empty range computes no LM head
// at all (for calibration passes that only observe activations).
struct Logits
{
    int64_t first = 0;
    int64_t last = 0;
    float *data = nullptr;
    std::function<void(int64_t firstPosition, int64_t count, const float *rows)> sink;

    int64_t count() const { return last - first; }

    static Logits none() { return {}; }
    static Logits into(float *data, int64_t first, int64_t last)
    {
        Logits l;
        l.first = first;
        l.last = last;
        l.data = data;
        return l;
    }
    static Logits streamed(
        int64_t first, int64_t last, std::function<void(int64_t firstPosition, int64_t count, const float *rows)> sink)
    {
        Logits l;
        l.first = first;
        l.last = last;
        l.sink = std::move(sink);
        return l;
    }
};

class ForwardEngine
{
public:
    // Throws Error when the model lacks a tensor the pass needs or uses an unsupported RoPE scaling.
    explicit ForwardEngine(std::shared_ptr<const Model> model, ForwardOptions options = {});
    ~ForwardEngine();
    ForwardEngine(const ForwardEngine &) = delete;
    ForwardEngine &operator=(const ForwardEngine &) = delete;

    const Model &model() const { return *m_model; }
    const HyperParams &hparams() const { return m_model->hparams; }
    int threads() const { return m_threads; }

    // Runs the whole sequence tokens[0, n) as one chunk with a fresh context (positions 0 .. n−1) and
    // produces the logits `output` asks for. The observer, when given, sees every linear layer's input and
    // every block's output of the blocks it wants (wantsBlock(b)), and the LM head's input (all n rows)
    // when it wants block −1; see ActivationObserver.h. When no logits are asked for, the pass stops after
    // the last block the observer wants. `progress` is only polled for cancellation (between blocks); the
    // caller owns its totals. Throws Error for token ids outside the vocabulary or a bad range, Cancelled.
    void forward(const int32_t *tokens, int64_t n, Logits output, ActivationObserver *observer = nullptr,
        Progress *progress = nullptr);

    // Convenience for tests and small inputs: the logits of every position, n × vocab.
    std::vector<float> forwardAll(const std::vector<int32_t> &tokens, ActivationObserver *observer = nullptr);

    // Greedy decoding: processes the prompt in one batched pass, then appends `count` tokens one at a time
    // with a KV cache (argmax, lowest id on ties; EOS does not stop it). Returns the new tokens only.
    std::vector<int32_t> greedyGenerate(const std::vector<int32_t> &prompt, int count, Progress *progress = nullptr);

    // Lower-level steps, for callers that drive the blocks themselves (e.g. sequential calibration that
    // feeds a block the output of already-quantized earlier blocks). x is n × hidden, row-major.
    void embed(const int32_t *tokens, int64_t n, float *x) const;
    // Runs block `block` in place on x (fresh context, positions 0 .. n−1), reporting to the observer.
    void runBlock(int block, float *x, int64_t n, ActivationObserver *observer = nullptr);

    uint64_t cachedBytes() const;
    void clearCache();

private:
    struct BlockWeights;
    struct HeadWeights;
    struct KvView;
    struct Scratch;

    std::shared_ptr<const BlockWeights> blockWeights(int block);
    std::shared_ptr<const HeadWeights> headWeights(); // nullptr when the LM head exceeds the cache budget
    void runBlockImpl(int block, const BlockWeights &w, float *x, int64_t n, int64_t posOffset, const KvView &kv,
        const kernels::RopeTable &rope, Scratch &scratch, ActivationObserver *observer);
    void computeLogits(const HeadWeights *head, const float *xn, int64_t rows, float *out);
    void produceLogits(const float *xn, int64_t n, const Logits &output);
    void checkTokens(const int32_t *tokens, int64_t n) const;

    std::shared_ptr<const void> cacheLookup(int key);
    void cacheInsert(int key, std::shared_ptr<const void> entry, uint64_t bytes);

    std::shared_ptr<const Model> m_model;
    ForwardOptions m_options;
    int m_threads = 1;
    std::vector<float> m_finalNorm; // model.norm, read once

    struct CacheEntry
    {
        int key;
        std::shared_ptr<const void> data;
        uint64_t bytes;
    };
    mutable std::mutex m_cacheMutex;
    std::list<CacheEntry> m_cache; // front = most recently used
    uint64_t m_cacheBytes = 0;
};

} // namespace qs::core
