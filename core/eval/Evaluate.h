#pragma once
// Perplexity and KL divergence over a token stream, with the two protocols of specs/algorithms.md §10.
// Numbers from different protocols are not comparable; every result carries its protocol and context.
//
// Input: `tokens` is the whole evaluation text tokenized once, as the model's tokenizer does it, i.e.
// with the single leading BOS when the model adds one (withLeadingBos() does that for callers holding
// tokens without it). Chunks are tokens[i·ctx, (i+1)·ctx) for i < floor(N / ctx) (tail dropped, no
// overlap, optionally only the first maxChunks), each run alone with a fresh context.
//
// - llamacpp (llama-perplexity, §10.2): when the model adds BOS, the first token of every chunk is
//   replaced by BOS for the forward pass; positions ctx/2 .. ctx−2 are scored against the next token of
//   the original stream: ctx − 1 − ctx/2 tokens per chunk (255 at ctx 512).
// - gptq (GPTQ-style, §10.1): no per-chunk BOS (only the stream's own leading one); positions 0 .. ctx−2
//   are scored: ctx − 1 tokens per chunk.
// PPL = exp(mean NLL over all scored tokens). Log-softmax is computed in double from the float32 logits
// (max subtracted), and all sums are in double.
//
// KL divergence (llama.cpp --kl-divergence, §10.3): the model and the reference model run chunk by chunk
// in lockstep on the same chunks (no logits files), and for every scored position
// KLD = Σ_v p_ref(v)·(log p_ref(v) − log p_model(v)). Both perplexities come with it.
//
// Memory: perplexity streams the logits in tiles (bounded whatever the vocabulary); KLD keeps both
// models' logits for the scored positions of one chunk (2 × scored × vocab floats) and one double per
// scored token.

#include <cstdint>
#include <string>
#include <vector>

#include "common/Progress.h"
#include "model/Forward.h"

namespace qs::core {

enum class EvalProtocol : uint8_t { LlamaCpp, Gptq };

const char *evalProtocolName(EvalProtocol p); // "llamacpp" | "gptq"
// Throws Error naming the accepted values for anything else.
EvalProtocol parseEvalProtocol(const std::string &name);

struct EvalOptions
{
    int ctx = 512;
    int64_t maxChunks = 0; // 0 = all chunks
    EvalProtocol protocol = EvalProtocol::LlamaCpp;

    static EvalOptions defaults() { return {}; }
};

// Scored positions of one chunk under a protocol: [first, first + count) predicting the next token.
struct ScoredRange
{
    int64_t first = 0;
    int64_t count = 0;
};
ScoredRange scoredRange(EvalProtocol protocol, int ctx);

// The number of chunks the options give for a stream of n tokens.
int64_t evalChunkCount(int64_t nTokens, const EvalOptions &options);

// tokens with hparams.bosTokenId prepended when the model adds BOS and the stream does not start with it.
std::vector<int32_t> withLeadingBos(const HyperParams &hparams, std::vector<int32_t> tokens);

struct PerplexityResult
{
    std::string protocol; // "llamacpp" | "gptq"
    int ctx = 0;
    int64_t chunks = 0;
    int64_t tokensScored = 0;
    double meanNll = 0.0;
    double meanNllStdError = 0.0; // standard error of the mean NLL (Gaussian), as llama-perplexity's ±
    double perplexity = 0.0;
};

struct KldResult
{
    std::string protocol;
    int ctx = 0;
    int64_t chunks = 0;
    int64_t tokensScored = 0;
    double kldMean = 0.0;
    double kldStdError = 0.0;
    double kldMedian = 0.0;
    double kldP99 = 0.0; // percentiles interpolate linearly between order statistics
    double kldMax = 0.0;
    double top1Agreement = 0.0; // fraction of scored positions where both argmaxes are equal
    PerplexityResult model;
    PerplexityResult reference;
    std::vector<double> perTokenKld; // in chunk order, scored positions only
};

// Progress: setTotal(chunks), advance(1) per chunk; cancellable between chunks and blocks.
// Throws Error when the stream is shorter than one chunk, ctx leaves nothing to score, or a token is
// outside the vocabulary; Cancelled.
PerplexityResult evaluatePerplexity(
    ForwardEngine &engine, const std::vector<int32_t> &tokens, const EvalOptions &options, Progress &progress);

// Chunks and BOS handling follow `model`'s hyper-parameters; both models must share the vocabulary size
// and BOS (Error otherwise). The llamacpp protocol is llama.cpp's KLD mode; gptq is accepted and labelled.
KldResult evaluateKld(ForwardEngine &model, ForwardEngine &reference, const std::vector<int32_t> &tokens,
    const EvalOptions &options, Progress &progress);

} // namespace qs::core
