// quantscope-cli eval MODEL --text FILE [--ctx N] [--protocol llamacpp|gptq] [--max-chunks N]
//                         [--reference MODEL2] [--json]
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "Commands.h"
#include "eval/Evaluate.h"
#include "eval/TextSource.h"
#include "io/FormatRegistry.h"
#include "model/Forward.h"

namespace qs::cli {

namespace {

int runEval(const Args &args)
{
    const std::string path = args.requirePositional(0, "MODEL");
    const std::string textPath = args.requireValue("text");
    core::EvalOptions options;
    options.ctx = args.intValue("ctx", 512, 8, 1 << 20);
    options.maxChunks = args.intValue("max-chunks", 0, 0, 1 << 30);
    try {
        options.protocol = core::parseEvalProtocol(args.value("protocol", "llamacpp"));
    } catch (const core::Error &e) {
        throw UsageError(std::string("eval: --protocol: ") + e.what());
    }
    ConsoleProgress progress(args.has("quiet"));
    const auto t0 = std::chrono::steady_clock::now();
    const std::shared_ptr<const core::Model> model = core::openModel(path);
    const core::TokenizedText text = core::tokenizeTextFile(*model, textPath, progress);
    core::ForwardEngine engine(model);

    nlohmann::ordered_json j;
    j["model"] = path;
    j["text"] = textPath;
    j["text_sha256"] = text.sha256;
    j["tokenizer"] = text.tokenizer;
    j["tokens"] = text.tokens.size();
    if (args.has("reference")) {
        const std::shared_ptr<const core::Model> refModel = core::openModel(args.value("reference"));
        core::ForwardEngine reference(refModel);
        progress.message("KL divergence");
        const core::KldResult r = core::evaluateKld(engine, reference, text.tokens, options, progress);
        progress.finish();
        j["perplexity"] = r.model.perplexity;
        j["protocol"] = r.protocol;
        j["ctx"] = r.ctx;
        j["chunks"] = r.chunks;
        j["tokens_scored"] = r.tokensScored;
        j["reference"] = args.value("reference");
        j["reference_perplexity"] = r.reference.perplexity;
        j["kld_mean"] = r.kldMean;
        j["kld_std_error"] = r.kldStdError;
        j["kld_median"] = r.kldMedian;
        j["kld_p99"] = r.kldP99;
        j["kld_max"] = r.kldMax;
        j["top1_agreement"] = r.top1Agreement;
    } else {
        progress.message("perplexity");
        const core::PerplexityResult r = core::evaluatePerplexity(engine, text.tokens, options, progress);
        progress.finish();
        j["perplexity"] = r.perplexity;
        j["protocol"] = r.protocol;
        j["ctx"] = r.ctx;
        j["chunks"] = r.chunks;
        j["tokens_scored"] = r.tokensScored;
        j["mean_nll"] = r.meanNll;
        j["mean_nll_std_error"] = r.meanNllStdError;
    }
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    if (args.has("json")) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("%s on %s (%s tokenizer, %zu tokens)\n", path.c_str(), textPath.c_str(), text.tokenizer.c_str(),
                text.tokens.size());
    std::printf("protocol %s, ctx %d, %lld chunks, %lld tokens scored\n", j["protocol"].get<std::string>().c_str(),
                options.ctx, static_cast<long long>(j["chunks"].get<int64_t>()),
                static_cast<long long>(j["tokens_scored"].get<int64_t>()));
    std::printf("perplexity %.4f\n", j["perplexity"].get<double>());
    if (j.contains("kld_mean")) {
        std::printf("reference perplexity %.4f\n", j["reference_perplexity"].get<double>());
        std::printf("KLD mean %.6f ± %.6f, median %.6f, p99 %.6f, max %.6f\n", j["kld_mean"].get<double>(),
                    j["kld_std_error"].get<double>(), j["kld_median"].get<double>(), j["kld_p99"].get<double>(),
                    j["kld_max"].get<double>());
        std::printf("top-1 agreement %.4f\n", j["top1_agreement"].get<double>());
    }
    return 0;
}

} // namespace

Command evalCommand()
{
    return {"eval",
            "eval MODEL --text FILE [--ctx N] [--protocol llamacpp|gptq] [--max-chunks N] [--reference MODEL2] [--json]",
            "Perplexity of a model on a text; with --reference also KL divergence and top-1 agreement",
            {{"text", true, "evaluation text file (e.g. wiki.test.raw)"},
             {"ctx", true, "context length per chunk (default 512)"},
             {"protocol", true, "llamacpp (score the second half of each chunk; default) or gptq (score every token)"},
             {"max-chunks", true, "evaluate at most N chunks (default all)"},
             {"reference", true, "the original model to compare against (KL divergence, top-1 agreement)"},
             {"json", false, "print one JSON object"}},
            runEval};
}

} // namespace qs::cli
