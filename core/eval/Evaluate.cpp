#include "eval/Evaluate.h"

#include <algorithm>
#include <cmath>

#include "common/Error.h"

namespace qs::core {

namespace {

// log Σ exp(x_v) in double, max subtracted.
double logSumExp(const float *x, int64_t n)
{
    float maxValue = x[0];
    for (int64_t i = 1; i < n; ++i)
        maxValue = std::max(maxValue, x[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i)
        sum += std::exp(double(x[i]) - double(maxValue));
    return double(maxValue) + std::log(sum);
}

int64_t argmaxOf(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best])
            best = i;
    return best;
}

// Linear interpolation between order statistics (numpy's default, and llama.cpp's percentiles).
double percentile(const std::vector<double> &sorted, double fraction)
{
    if (sorted.empty())
        return 0.0;
    const double pos = fraction * double(sorted.size() - 1);
    const size_t lo = size_t(pos);
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    const double delta = pos - double(lo);
    return (1.0 - delta) * sorted[lo] + delta * sorted[hi];
}

struct MeanAndError
{
    double mean = 0.0;
    double stdError = 0.0;
};

// Summed in the order given, so results do not depend on the thread count.
MeanAndError meanAndError(const std::vector<double> &values)
{
    MeanAndError r;
    if (values.empty())
        return r;
    double sum = 0.0, sumSq = 0.0;
    for (double v : values) {
        sum += v;
        sumSq += v * v;
    }
    const double n = double(values.size());
    r.mean = sum / n;
    if (values.size() > 1)
        r.stdError = std::sqrt(std::max(0.0, sumSq / n - r.mean * r.mean) / (n - 1.0));
    return r;
}

PerplexityResult perplexityOf(const std::vector<double> &nll, const EvalOptions &options, int64_t chunks)
{
    PerplexityResult r;
    r.protocol = evalProtocolName(options.protocol);
    r.ctx = options.ctx;
    r.chunks = chunks;
    r.tokensScored = int64_t(nll.size());
    const MeanAndError m = meanAndError(nll);
    r.meanNll = m.mean;
    r.meanNllStdError = m.stdError;
    r.perplexity = std::exp(m.mean);
    return r;
}

// The checked plan shared by both evaluations.
struct ChunkPlan
{
    int64_t chunks = 0;
    ScoredRange scored;
    bool replaceFirstWithBos = false;
    int32_t bos = 1;
};

ChunkPlan planChunks(const HyperParams &h, const std::vector<int32_t> &tokens, const EvalOptions &options)
{
    if (options.ctx < 2)
        throw Error("evaluation: context length " + std::to_string(options.ctx) + " is too short");
    if (options.maxChunks < 0)
        throw Error("evaluation: negative chunk limit");
    ChunkPlan p;
    p.scored = scoredRange(options.protocol, options.ctx);
    if (p.scored.count <= 0)
        throw Error("evaluation: context length " + std::to_string(options.ctx) + " leaves no token to score under the "
            + evalProtocolName(options.protocol) + " protocol");
    p.chunks = evalChunkCount(int64_t(tokens.size()), options);
    if (p.chunks == 0)
        throw Error("evaluation: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of "
            + std::to_string(options.ctx));
    // Check every token that will run before the first chunk does, rather than failing an hour in.
    const int64_t used = p.chunks * options.ctx;
    for (int64_t i = 0; i < used; ++i)
        if (tokens[size_t(i)] < 0 || tokens[size_t(i)] >= h.vocabSize)
            throw Error("evaluation: token id " + std::to_string(tokens[size_t(i)]) + " at position "
                + std::to_string(i) + " is outside the vocabulary of " + std::to_string(h.vocabSize));
    p.replaceFirstWithBos = options.protocol == EvalProtocol::LlamaCpp && h.addBos;
    p.bos = h.bosTokenId;
    if (p.replaceFirstWithBos && (p.bos < 0 || p.bos >= h.vocabSize))
        throw Error("evaluation: BOS id " + std::to_string(p.bos) + " is outside the vocabulary");
    return p;
}

std::vector<int32_t> chunkTokens(const std::vector<int32_t> &tokens, const ChunkPlan &plan, int ctx, int64_t chunk)
{
    std::vector<int32_t> c(tokens.begin() + chunk * ctx, tokens.begin() + (chunk + 1) * ctx);
    if (plan.replaceFirstWithBos)
        c[0] = plan.bos;
    return c;
}

} // namespace

const char *evalProtocolName(EvalProtocol p)
{
    switch (p) {
    case EvalProtocol::LlamaCpp:
        return "llamacpp";
    case EvalProtocol::Gptq:
        return "gptq";
    }
    return "?";
}

EvalProtocol parseEvalProtocol(const std::string &name)
{
    if (name == "llamacpp")
        return EvalProtocol::LlamaCpp;
    if (name == "gptq")
        return EvalProtocol::Gptq;
    throw Error("unknown evaluation protocol '" + name + "' (llamacpp or gptq)");
}

ScoredRange scoredRange(EvalProtocol protocol, int ctx)
{
    ScoredRange r;
    r.first = protocol == EvalProtocol::LlamaCpp ? ctx / 2 : 0;
    r.count = std::max<int64_t>(0, int64_t(ctx) - 1 - r.first); // positions first .. ctx−2
    return r;
}

int64_t evalChunkCount(int64_t nTokens, const EvalOptions &options)
{
    if (options.ctx <= 0)
        return 0;
    int64_t chunks = nTokens / options.ctx;
    if (options.maxChunks > 0)
        chunks = std::min(chunks, options.maxChunks);
    return chunks;
}

std::vector<int32_t> withLeadingBos(const HyperParams &hparams, std::vector<int32_t> tokens)
{
    if (hparams.addBos && (tokens.empty() || tokens.front() != hparams.bosTokenId))
        tokens.insert(tokens.begin(), hparams.bosTokenId);
    return tokens;
}

PerplexityResult evaluatePerplexity(
    ForwardEngine &engine, const std::vector<int32_t> &tokens, const EvalOptions &options, Progress &progress)
{
    const HyperParams &h = engine.hparams();
    const ChunkPlan plan = planChunks(h, tokens, options);
    const int64_t V = h.vocabSize;
    const int64_t perChunk = plan.scored.count;
    std::vector<double> nll(size_t(plan.chunks * perChunk));

    progress.setTotal(double(plan.chunks));
    progress.message(std::string("perplexity (") + evalProtocolName(options.protocol) + ", ctx "
        + std::to_string(options.ctx) + ", " + std::to_string(plan.chunks) + " chunks)");
    for (int64_t c = 0; c < plan.chunks; ++c) {
        progress.throwIfCancelled();
        const std::vector<int32_t> chunk = chunkTokens(tokens, plan, options.ctx, c);
        const int32_t *targets = tokens.data() + c * options.ctx + 1; // target of position p: targets[p]
        double *out = nll.data() + c * perChunk; // scored position p goes to out[p - first]
        auto sink = [&](int64_t firstPosition, int64_t count, const float *rows) {
#pragma omp parallel for schedule(static) num_threads(engine.threads()) if (count * V > (int64_t(1) << 16))
            for (int64_t i = 0; i < count; ++i) {
                const int64_t p = firstPosition + i;
                const float *row = rows + i * V;
                out[p - plan.scored.first] = logSumExp(row, V) - double(row[targets[p]]);
            }
        };
        engine.forward(chunk.data(), options.ctx,
            Logits::streamed(plan.scored.first, plan.scored.first + perChunk, sink), nullptr, &progress);
        progress.advance(1.0);
    }
    return perplexityOf(nll, options, plan.chunks);
}

KldResult evaluateKld(ForwardEngine &model, ForwardEngine &reference, const std::vector<int32_t> &tokens,
    const EvalOptions &options, Progress &progress)
{
    const HyperParams &h = model.hparams();
    const HyperParams &hr = reference.hparams();
    if (h.vocabSize != hr.vocabSize)
        throw Error("KL divergence: the model's vocabulary (" + std::to_string(h.vocabSize)
            + ") differs from the reference's (" + std::to_string(hr.vocabSize) + ")");
    if (h.addBos != hr.addBos || (h.addBos && h.bosTokenId != hr.bosTokenId))
        throw Error("KL divergence: the model and the reference disagree on BOS");
    const ChunkPlan plan = planChunks(h, tokens, options);
    const int64_t V = h.vocabSize;
    const int64_t perChunk = plan.scored.count;
    const size_t scored = size_t(plan.chunks * perChunk);

    std::vector<double> kld(scored), nllModel(scored), nllRef(scored);
    std::vector<uint8_t> sameTop(scored);
    std::vector<float> logitsModel(size_t(perChunk * V)), logitsRef(size_t(perChunk * V));

    progress.setTotal(double(plan.chunks));
    progress.message(std::string("KL divergence (") + evalProtocolName(options.protocol) + ", ctx "
        + std::to_string(options.ctx) + ", " + std::to_string(plan.chunks) + " chunks)");
    const int64_t first = plan.scored.first;
    for (int64_t c = 0; c < plan.chunks; ++c) {
        progress.throwIfCancelled();
        const std::vector<int32_t> chunk = chunkTokens(tokens, plan, options.ctx, c);
        reference.forward(
            chunk.data(), options.ctx, Logits::into(logitsRef.data(), first, first + perChunk), nullptr, &progress);
        model.forward(
            chunk.data(), options.ctx, Logits::into(logitsModel.data(), first, first + perChunk), nullptr, &progress);
        const int32_t *targets = tokens.data() + c * options.ctx + 1;
        const size_t base = size_t(c * perChunk);
#pragma omp parallel for schedule(static) num_threads(model.threads()) if (perChunk * V > (int64_t(1) << 16))
        for (int64_t i = 0; i < perChunk; ++i) {
            const float *r = logitsRef.data() + i * V;
            const float *m = logitsModel.data() + i * V;
            const double lseR = logSumExp(r, V);
            const double lseM = logSumExp(m, V);
            double sum = 0.0;
            for (int64_t v = 0; v < V; ++v) {
                const double logPr = double(r[v]) - lseR;
                const double logPm = double(m[v]) - lseM;
                sum += std::exp(logPr) * (logPr - logPm);
            }
            const int32_t target = targets[first + i];
            kld[base + size_t(i)] = sum;
            nllRef[base + size_t(i)] = lseR - double(r[target]);
            nllModel[base + size_t(i)] = lseM - double(m[target]);
            sameTop[base + size_t(i)] = argmaxOf(r, V) == argmaxOf(m, V) ? 1 : 0;
        }
        progress.advance(1.0);
    }

    KldResult res;
    res.protocol = evalProtocolName(options.protocol);
    res.ctx = options.ctx;
    res.chunks = plan.chunks;
    res.tokensScored = int64_t(scored);
    const MeanAndError km = meanAndError(kld);
    res.kldMean = km.mean;
    res.kldStdError = km.stdError;
    std::vector<double> sorted = kld;
    std::sort(sorted.begin(), sorted.end());
    res.kldMedian = percentile(sorted, 0.5);
    res.kldP99 = percentile(sorted, 0.99);
    res.kldMax = sorted.back();
    int64_t agree = 0;
    for (uint8_t s : sameTop)
        agree += s;
    res.top1Agreement = double(agree) / double(scored);
    res.model = perplexityOf(nllModel, options, plan.chunks);
    res.reference = perplexityOf(nllRef, options, plan.chunks);
    res.perTokenKld = std::move(kld);
    return res;
}

} // namespace qs::core
