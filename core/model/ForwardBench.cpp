#include "model/ForwardBench.h"

#include <chrono>

#include <sys/resource.h>

#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "model/Forward.h"

namespace qs::core {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// A fixed token sequence (no tokenizer needed): an LCG over the vocabulary, avoiding ids 0–2 which are
// the special tokens of the Llama vocabularies.
std::vector<int32_t> benchTokens(int64_t n, int vocab)
{
    std::vector<int32_t> t(static_cast<size_t>(n));
    uint64_t state = 0x9E3779B97F4A7C15ull;
    const int span = vocab > 3 ? vocab - 3 : vocab;
    for (int64_t i = 0; i < n; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        t[size_t(i)] = int32_t((state >> 33) % uint64_t(span)) + (vocab > 3 ? 3 : 0);
    }
    return t;
}

} // namespace

uint64_t peakRssBytes()
{
    rusage usage {};
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0;
    return uint64_t(usage.ru_maxrss) * 1024; // Linux reports KiB
}

ForwardBenchResult benchForward(const std::string &modelPath, const ForwardBenchOptions &options, Progress &progress)
{
    ForwardBenchResult r;
    progress.message("Opening " + modelPath);
    const Clock::time_point openStart = Clock::now();
    std::shared_ptr<const Model> model = openModel(modelPath);
    r.openSeconds = secondsSince(openStart);
    r.format = model->format;
    r.parameters = model->parameterCount();

    ForwardOptions fo;
    fo.threads = options.threads;
    fo.weightCacheBytes = options.weightCacheBytes;
    ForwardEngine engine(model, fo);
    r.threads = engine.threads();
    r.weightCacheBytes = options.weightCacheBytes;

    const int vocab = model->hparams.vocabSize;
    std::vector<float> logits(static_cast<size_t>(vocab));
    progress.setTotal(double(options.contexts.size()));
    for (int ctx : options.contexts) {
        if (ctx <= 0)
            throw Error("bench forward: context length " + std::to_string(ctx) + " is not positive");
        progress.message("Forward pass, ctx " + std::to_string(ctx));
        const std::vector<int32_t> tokens = benchTokens(ctx, vocab);
        const Logits last = Logits::into(logits.data(), ctx - 1, ctx);

        ForwardBenchPoint p;
        p.ctx = ctx;
        const Clock::time_point warmStart = Clock::now();
        engine.forward(tokens.data(), ctx, last, nullptr, &progress);
        p.firstPassSeconds = secondsSince(warmStart);

        const Clock::time_point start = Clock::now();
        do {
            progress.throwIfCancelled();
            engine.forward(tokens.data(), ctx, last, nullptr, &progress);
            ++p.runs;
            p.seconds = secondsSince(start);
        } while (p.seconds < options.minSeconds || p.runs < options.minRuns);
        p.tokensPerSecond = double(ctx) * double(p.runs) / p.seconds;
        r.points.push_back(p);
        progress.advance(1.0);
    }
    r.cachedBytes = engine.cachedBytes();
    r.peakRssBytes = peakRssBytes();
    return r;
}

} // namespace qs::core
