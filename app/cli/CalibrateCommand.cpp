// quantscope-cli calibrate MODEL --text FILE [--samples N] [--seqlen L] [--seed S] --out STATS.h5 [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "Commands.h"
#include "common/Sha256.h"
#include "eval/CalibrationRun.h"
#include "io/FormatRegistry.h"
#include "stats/ActivationStatsH5.h"

namespace qs::cli {

namespace {

int runCalibrate(const Args &args)
{
    const std::string path = args.requirePositional(0, "MODEL");
    const std::string textPath = args.requireValue("text");
    const std::string out = args.requireValue("out");
    core::CalibrationRunOptions options;
    options.samples = args.intValue("samples", 128, 1, 1 << 20);
    options.seqLen = args.intValue("seqlen", 512, 2, 1 << 20);
    options.seed = uint64_t(args.intValue("seed", 0, 0, 2147483647));
    const std::string mode = args.value("mode", "windows");
    if (mode == "documents")
        options.mode = core::CalibrationMode::Documents;
    else if (mode != "windows")
        throw UsageError("calibrate: --mode must be windows or documents, got '" + mode + "'");
    options.stats.outlierFactor = args.doubleValue("outlier-factor", options.stats.outlierFactor, 1.0, 1e6);
    if (args.has("hessians"))
        options.stats.collectHessians = true;

    ConsoleProgress progress(args.has("quiet"));
    const std::shared_ptr<const core::Model> model = core::openModel(path);
    const core::CalibrationRunResult result = core::runCalibration(model, textPath, options, progress);
    nlohmann::json provenance = result.calibration.toJson();
    provenance["model_path"] = path;
    progress.message("writing " + out);
    core::writeActivationStatsH5(out, result.stats, provenance, &progress);
    progress.finish();

    if (args.has("json")) {
        nlohmann::ordered_json j;
        j["model"] = path;
        j["out"] = out;
        j["calibration"] = provenance;
        j["seconds"] = result.seconds;
        nlohmann::json layers = nlohmann::json::array();
        for (const core::InputActivationStats &s : result.stats)
            layers.push_back(core::summarizeActivations(s).toJson());
        j["layers"] = layers;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("calibrated %s on %zu samples of %d tokens from %s in %.1f s -> %s\n", path.c_str(),
                result.calibration.samples.size(), options.seqLen, textPath.c_str(), result.seconds, out.c_str());
    std::printf("%-6s %-9s %8s %10s %10s %8s  %s\n", "block", "input", "tokens", "absmax", "median ch", "outl.ch",
                "top outlier channels (x median)");
    for (const core::InputActivationStats &s : result.stats) {
        const core::ActivationSummary sum = core::summarizeActivations(s, 4);
        std::string top;
        for (const auto &c : sum.topOutliers) {
            char buf[48];
            std::snprintf(buf, sizeof buf, "%s%d (%.0fx)", top.empty() ? "" : ", ", c.channel, c.ratio);
            top += buf;
        }
        std::printf("%-6d %-9s %8llu %10.4g %10.4g %8d  %s\n", sum.block, sum.input.c_str(),
                    static_cast<unsigned long long>(sum.tokens), sum.absMax, sum.medianChannelAbsMax,
                    sum.outlierCount, top.c_str());
    }
    return 0;
}

} // namespace

Command calibrateCommand()
{
    return {"calibrate",
            "calibrate MODEL --text FILE [--samples N] [--seqlen L] [--seed S] --out STATS.h5 [--json]",
            "Run calibration text through the model and store per-layer activation statistics (HDF5)",
            {{"text", true, "calibration text file"},
             {"samples", true, "number of samples (default 128)"},
             {"seqlen", true, "tokens per sample (default 512)"},
             {"seed", true, "random seed for the sample windows (default 0)"},
             {"mode", true, "windows (random windows, GPTQ style; default) or documents"},
             {"outlier-factor", true, "outlier channels have absmax > K x the median channel (default 20)"},
             {"hessians", false, "also store the GPTQ Hessians X^T X (large: hidden^2 doubles per input)"},
             {"out", true, "output HDF5 file"},
             {"json", false, "print one JSON object"}},
            runCalibrate};
}

} // namespace qs::cli
