// quantscope-cli quantize MODEL --plan PLAN.json --calib FILE [--samples N] [--seqlen L] [--seed S]
//                         --out RUN_DIR [--eval-text FILE] [--ctx N] [--json]
// quantscope-cli quantize --list-methods [--json]
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "Commands.h"
#include "io/FormatRegistry.h"
#include "quant/MethodRegistry.h"
#include "quant/Pipeline.h"
#include "quant/Plan.h"
#include "quant/RunDir.h"

namespace qs::cli {

namespace {

std::string defaultText(const core::ParamValue &v)
{
    struct V
    {
        std::string operator()(int64_t i) const { return std::to_string(i); }
        std::string operator()(double d) const
        {
            char b[32];
            std::snprintf(b, sizeof b, "%g", d);
            return b;
        }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(const std::string &s) const { return s; }
    };
    return std::visit(V {}, v);
}

int listMethods(const Args &args)
{
    if (args.has("json")) {
        std::printf("%s\n", core::methodTableJson().dump(2).c_str());
        return 0;
    }
    for (const core::MethodInfo &m : core::quantMethods()) {
        std::string bits;
        for (int b : m.supportedBits)
            bits += (bits.empty() ? "" : ",") + std::to_string(b);
        std::string needs;
        if (m.calibration.hessian)
            needs += " hessian";
        if (m.calibration.activationAbsMax)
            needs += " act-absmax";
        if (m.calibration.activationMeanAbs)
            needs += " act-mean|x|";
        if (m.calibration.inputCache)
            needs += " input-cache";
        std::printf("%-12s %s\n", m.name.c_str(), m.displayName.c_str());
        std::printf("  %s\n", m.description.c_str());
        std::printf("  bits %s; calibration:%s; activations %s\n", bits.c_str(),
            needs.empty() ? " none" : needs.c_str(), m.quantizesActivations ? "quantized (simulated)" : "float");
        for (const core::ParamSpec &p : m.params) {
            std::string range;
            if (p.type == core::ParamType::Int || p.type == core::ParamType::Double) {
                char b[64];
                std::snprintf(b, sizeof b, " [%g..%g]", p.min, p.max);
                range = b;
            } else if (p.type == core::ParamType::Choice) {
                range = " {";
                for (size_t i = 0; i < p.choices.size(); ++i)
                    range += (i ? "|" : "") + p.choices[i];
                range += "}";
            }
            std::printf("    %-16s %-7s default %-10s%s\n", p.name.c_str(), core::paramTypeName(p.type),
                defaultText(p.defaultValue).c_str(), range.c_str());
        }
        std::printf("\n");
    }
    return 0;
}

void printLayerHeader()
{
    std::printf("%-40s %-11s %4s %6s %11s %10s %8s %6s %7s\n", "layer", "method", "bits", "group", "weight_mse",
        "rel_out", "sqnr_dB", "bpw", "seconds");
}

void printLayer(const core::LayerResult &l)
{
    char sqnr[32];
    if (std::isfinite(l.sqnrDb))
        std::snprintf(sqnr, sizeof sqnr, "%8.2f", l.sqnrDb);
    else
        std::snprintf(sqnr, sizeof sqnr, "%8s", "inf");
    std::printf("%-40s %-11s %4d %6d %11.3e %10.3e %s %6.3f %7.2f\n", l.name.c_str(), l.method.c_str(), l.bits,
        l.groupSize, l.weightMse, l.relOutputError, sqnr, l.bitsPerWeight, l.seconds);
    std::fflush(stdout);
}

int runQuantize(const Args &args)
{
    if (args.has("list-methods"))
        return listMethods(args);

    const std::string modelPath = args.requirePositional(0, "MODEL (or --list-methods)");
    const std::string planPath = args.requireValue("plan");
    const std::string calib = args.requireValue("calib");
    const std::string out = args.requireValue("out");
    core::PipelineOptions options;
    options.calibrationText = calib;
    options.samples = args.intValue("samples", options.samples, 1, 1 << 20);
    options.seqLen = args.intValue("seqlen", options.seqLen, 2, 1 << 20);
    options.seed = uint64_t(args.intValue("seed", 0, 0, 2147483647));
    options.threads = args.intValue("threads", 0, 0, 4096);
    options.evalText = args.value("eval-text");
    options.eval.ctx = args.intValue("ctx", options.eval.ctx, 8, 1 << 20);
    options.eval.maxChunks = args.intValue("max-chunks", 0, 0, 1 << 30);
    options.evalKld = !args.has("no-kld");
    try {
        options.eval.protocol = core::parseEvalProtocol(args.value("protocol", "llamacpp"));
    } catch (const core::Error &e) {
        throw UsageError(std::string("quantize: --protocol: ") + e.what());
    }

    // Everything the user can get wrong is checked before the (long) run.
    core::Plan plan;
    try {
        plan = core::Plan::load(planPath);
    } catch (const core::Error &e) {
        throw UsageError(std::string("quantize: --plan ") + e.what());
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(calib, ec))
        throw UsageError("quantize: --calib " + calib + ": no such file");
    if (!options.evalText.empty() && !std::filesystem::is_regular_file(options.evalText, ec))
        throw UsageError("quantize: --eval-text " + options.evalText + ": no such file");
    try {
        core::checkRunDirTarget(out);
    } catch (const core::Error &e) {
        throw UsageError(std::string("quantize: --out ") + e.what());
    }

    const bool json = args.has("json");
    ConsoleProgress progress(args.has("quiet"));
    const std::shared_ptr<const core::Model> model = core::openModel(modelPath);
    try {
        (void)plan.resolve(*model);
    } catch (const core::Error &e) {
        throw UsageError(std::string("quantize: --plan ") + planPath + ": " + e.what());
    }

    core::PipelineCallbacks callbacks;
    bool headerPrinted = false;
    if (!json) {
        callbacks.onLayerDone = [&](const core::LayerResult &l) {
            if (!headerPrinted) {
                printLayerHeader();
                headerPrinted = true;
            }
            printLayer(l);
        };
    }
    callbacks.onWarning = [&](const std::string &w) { progress.message("warning: " + w); };

    const core::QuantRun run = core::runQuantization(model, plan, options, callbacks, progress);
    core::writeRunDir(run, out, progress);
    progress.finish();

    if (json) {
        nlohmann::ordered_json j;
        j["model"] = modelPath;
        j["out"] = out;
        nlohmann::json layers = nlohmann::json::array();
        for (const core::LayerResult &l : run.layers)
            layers.push_back(l.toJson());
        j["layers"] = layers;
        j["bits_per_weight"] = run.bitsPerWeight;
        if (run.evaluation) {
            j["perplexity"] = run.evaluation->perplexity;
            if (run.evaluation->hasKld)
                j["kld_mean"] = run.evaluation->kldMean;
            j["evaluation"] = run.evaluation->toJson();
        }
        nlohmann::json blocks = nlohmann::json::array();
        for (const core::BlockResult &b : run.blocks)
            blocks.push_back({ { "block", b.block },
                { "cumulative_error",
                    std::isfinite(b.cumulativeError) ? nlohmann::json(b.cumulativeError) : nlohmann::json() } });
        j["blocks"] = blocks;
        j["provenance"] = run.provenance.toJson();
        j["warnings"] = run.warnings;
        j["seconds"] = run.seconds;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }

    std::printf("\n%zu layers quantized, %.3f bits per weight over the linear weights, %.1f s\n", run.layers.size(),
        run.bitsPerWeight, run.seconds);
    for (const core::BlockResult &b : run.blocks)
        if (std::isfinite(b.cumulativeError))
            std::printf("block %d: cumulative output error %.4e\n", b.block, b.cumulativeError);
    if (run.evaluation) {
        const core::RunEvaluation &e = *run.evaluation;
        std::printf("perplexity %.4f (original %.4f; %s, ctx %d, %lld chunks)\n", e.perplexity, e.originalPerplexity,
            e.protocol.c_str(), e.ctx, static_cast<long long>(e.chunks));
        if (e.hasKld)
            std::printf("KLD mean %.6f, median %.6f, p99 %.6f; top-1 agreement %.4f\n", e.kldMean, e.kldMedian,
                e.kldP99, e.top1Agreement);
    }
    for (const std::string &w : run.warnings)
        std::printf("warning: %s\n", w.c_str());
    std::printf("wrote %s\n", out.c_str());
    return 0;
}

} // namespace

Command quantizeCommand()
{
    return { "quantize",
        "quantize MODEL --plan PLAN.json --calib FILE [--samples N] [--seqlen L] [--seed S] --out RUN_DIR "
        "[--eval-text FILE] [--ctx N] [--json] | quantize --list-methods [--json]",
        "Quantize a model layer by layer as a plan says and write a run directory (eval/export accept it as MODEL)",
        { { "plan", true, "plan file (JSON: default, rules, skip; see specs/cli.md)" },
            { "calib", true, "calibration text file" }, { "samples", true, "calibration samples (default 32)" },
            { "seqlen", true, "tokens per calibration sample (default 256)" },
            { "seed", true, "seed of the calibration windows (default 0)" },
            { "out", true, "run directory to write (replaced atomically when it holds a previous run)" },
            { "eval-text", true, "evaluate the quantized model on this text (perplexity, KLD against the original)" },
            { "ctx", true, "evaluation context length (default 512)" },
            { "protocol", true, "evaluation protocol: llamacpp (default) or gptq" },
            { "max-chunks", true, "evaluate at most N chunks (default all)" },
            { "no-kld", false, "evaluate perplexity only (no KL divergence against the original)" },
            { "threads", true, "threads (default all)" },
            { "list-methods", false, "list the quantization methods and their parameters" },
            { "json", false, "print one JSON object" } },
        runQuantize };
}

} // namespace qs::cli
