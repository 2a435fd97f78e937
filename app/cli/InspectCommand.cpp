// quantscope-cli inspect MODEL [--json] [--outlier-sigma K]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "Commands.h"
#include "io/FormatRegistry.h"
#include "stats/WeightStats.h"

namespace qs::cli {

namespace {

int runInspect(const Args &args)
{
    const std::string path = args.requirePositional(0, "MODEL (a Hugging Face folder, .gguf or llama2.c .bin)");
    core::StatsOptions options;
    options.outlierSigma = args.doubleValue("outlier-sigma", 6.0, 0.1, 1000.0);
    core::OpenOptions openOptions;
    openOptions.tokenizerPath = args.value("tokenizer");

    ConsoleProgress progress(args.has("quiet"));
    const std::unique_ptr<core::Model> model = core::openModel(path, openOptions);
    progress.message("statistics");
    const std::vector<core::WeightStats> stats = core::computeModelStats(*model, options, progress);
    progress.finish();
    const core::HyperParams &h = model->hparams;

    std::vector<std::string> warnings = model->warnings;
    for (const core::WeightStats &s : stats)
        if (s.nanCount || s.infCount)
            warnings.push_back("tensor '" + s.name + "': " + std::to_string(s.nanCount) + " NaN and " +
                               std::to_string(s.infCount) + " infinite values");

    if (args.has("json")) {
        nlohmann::ordered_json j;
        j["format"] = model->format;
        j["architecture"] = h.architecture;
        j["hidden_size"] = h.hiddenSize;
        j["intermediate_size"] = h.intermediateSize;
        j["num_layers"] = h.numLayers;
        j["num_heads"] = h.numHeads;
        j["num_kv_heads"] = h.numKvHeads;
        j["vocab_size"] = h.vocabSize;
        j["head_dim"] = h.headDim;
        j["parameters"] = model->parameterCount();
        j["synthetic"] = h.synthetic;
        j["rope_theta"] = h.ropeTheta;
        j["rms_norm_eps"] = h.rmsEps;
        j["tied_embeddings"] = h.tiedEmbeddings;
        j["outlier_sigma"] = options.outlierSigma;
        nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
        for (size_t i = 0; i < model->tensors.size(); ++i) {
            const core::Tensor &t = model->tensors[i];
            const core::WeightStats &s = stats[i];
            nlohmann::ordered_json e;
            e["name"] = t.name;
            e["role"] = core::roleName(t.role);
            e["block"] = t.block;
            e["shape"] = {t.rows, t.cols};
            e["dtype"] = core::dtypeName(t.dtype);
            e["tied"] = t.tied;
            e["stats"] = {{"min", s.min},
                          {"max", s.max},
                          {"mean", s.mean},
                          {"std", s.stddev},
                          {"kurtosis", s.kurtosis},
                          {"outliers", s.outlierCount},
                          {"outlier_fraction", s.outlierFraction},
                          {"nan", s.nanCount},
                          {"inf", s.infCount}};
            tensors.push_back(std::move(e));
        }
        j["tensors"] = std::move(tensors);
        j["warnings"] = warnings;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }

    std::printf("%s  (%s%s)\n", path.c_str(), model->format.c_str(), h.synthetic ? ", SYNTHETIC demo model" : "");
    std::printf("architecture %s: hidden %d, ffn %d, layers %d, heads %d (kv %d), head dim %d, vocab %d, "
                "rope theta %g, eps %g%s\n",
                h.architecture.c_str(), h.hiddenSize, h.intermediateSize, h.numLayers, h.numHeads, h.numKvHeads,
                h.headDim, h.vocabSize, h.ropeTheta, h.rmsEps, h.tiedEmbeddings ? ", tied embeddings" : "");
    std::printf("parameters %lld\n\n", static_cast<long long>(model->parameterCount()));
    std::printf("%-42s %-7s %-14s %-5s %10s %10s %10s %9s %9s\n", "tensor", "role", "shape", "dtype", "min", "max",
                "std", "kurtosis", "outl.(\u2030)");
    for (size_t i = 0; i < model->tensors.size(); ++i) {
        const core::Tensor &t = model->tensors[i];
        const core::WeightStats &s = stats[i];
        const std::string shape = std::to_string(t.rows) + "x" + std::to_string(t.cols);
        std::printf("%-42s %-7s %-14s %-5s %10.4g %10.4g %10.4g %9.3g %9.3f%s\n", t.name.c_str(),
                    core::roleName(t.role), shape.c_str(), core::dtypeName(t.dtype), s.min, s.max, s.stddev,
                    s.kurtosis, s.outlierFraction * 1000.0, t.tied ? "  (tied)" : "");
    }
    for (const std::string &w : warnings)
        std::fprintf(stderr, "warning: %s\n", w.c_str());
    return 0;
}

} // namespace

Command inspectCommand()
{
    return {"inspect",
            "inspect MODEL [--json] [--outlier-sigma K] [--tokenizer FILE]",
            "Show a model's hyper-parameters and per-tensor weight statistics",
            {{"json", false, "print one JSON object"},
             {"outlier-sigma", true, "outliers are |x - mean| > K standard deviations (default 6)"},
             {"tokenizer", true, "llama2.c: tokenizer.bin when not beside the model"}},
            runInspect};
}

} // namespace qs::cli
