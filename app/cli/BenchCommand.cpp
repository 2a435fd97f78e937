// quantscope-cli bench stats|forward|gptq [MODEL] [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "Commands.h"
#include "model/ForwardBench.h"
#include "quant/QuantBench.h"
#include "stats/StatsBench.h"

namespace qs::cli {

namespace {

int benchStatsCommand(const Args &args)
{
    const std::string path = args.requirePositional(1, "MODEL for 'bench stats'");
    ConsoleProgress progress(args.has("quiet"));
    const core::StatsBenchResult r = core::benchStats(path, progress);
    progress.finish();
    const double ratio = r.readGBps > 0 ? r.statsGBps / r.readGBps : 0.0;
    const double fileRatio = r.fileReadGBps > 0 ? r.statsGBps / r.fileReadGBps : 0.0;
    // CPU time per value: steadier than wall time on a shared machine.
    const auto nsPerValue = [&r](double cpuSeconds) {
        return r.totalValues > 0 ? cpuSeconds * 1e9 / double(r.totalValues) : 0.0;
    };
    if (args.has("json")) {
        nlohmann::ordered_json j{{"benchmark", "stats"},
                                 {"model", path},
                                 {"format", r.format},
                                 {"threads", r.threads},
                                 {"tensors", r.tensors},
                                 {"bytes", r.totalBytes},
                                 {"values", r.totalValues},
                                 {"open_seconds", r.openSeconds},
                                 {"first_read_gbps", r.firstReadGBps},
                                 {"read_gbps", r.readGBps},
                                 {"decode_gbps", r.decodeGBps},
                                 {"stats_seconds", r.statsSeconds},
                                 {"stats_gbps", r.statsGBps},
                                 {"read_cpu_seconds", r.readCpuSeconds},
                                 {"decode_cpu_seconds", r.decodeCpuSeconds},
                                 {"stats_cpu_seconds", r.statsCpuSeconds},
                                 {"stats_cpu_ns_per_value", nsPerValue(r.statsCpuSeconds)},
                                 {"stats_to_read_ratio", ratio}};
        if (r.fileBytes > 0) {
            j["file_read_gbps"] = r.fileReadGBps;
            j["file_read_cpu_seconds"] = r.fileReadCpuSeconds;
            j["stats_to_file_read_ratio"] = fileRatio;
        }
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("bench stats: %s (%s), %d tensors, %s, %d threads\n", path.c_str(), r.format.c_str(), r.tensors,
                formatBytes(double(r.totalBytes)).c_str(), r.threads);
    std::printf("  open                 %8.3f s\n", r.openSeconds);
    if (r.rawReadAvailable) {
        std::printf("  plain read (first)   %8.3f s  %7.2f GB/s\n", r.firstReadSeconds, r.firstReadGBps);
        std::printf("  plain read (warm)    %8.3f s  %7.2f GB/s  %6.2f CPU ns/value   <- baseline\n", r.readSeconds,
                    r.readGBps, nsPerValue(r.readCpuSeconds));
    }
    if (r.fileBytes > 0)
        std::printf("  file read, pread(2)  %8.3f s  %7.2f GB/s  %6.2f CPU ns/value   (context)\n", r.fileReadSeconds,
                    r.fileReadGBps, nsPerValue(r.fileReadCpuSeconds));
    std::printf("  decode to float32    %8.3f s  %7.2f GB/s  %6.2f CPU ns/value\n", r.decodeSeconds, r.decodeGBps,
                nsPerValue(r.decodeCpuSeconds));
    std::printf("  statistics           %8.3f s  %7.2f GB/s  %6.2f CPU ns/value\n", r.statsSeconds, r.statsGBps,
                nsPerValue(r.statsCpuSeconds));
    if (r.rawReadAvailable)
        std::printf("  statistics / plain read = %.2f (goal >= 0.5)\n", ratio);
    if (r.fileBytes > 0)
        std::printf("  statistics / file read  = %.2f\n", fileRatio);
    return 0;
}

int benchForwardCommand(const Args &args)
{
    const std::string path = args.requirePositional(1, "MODEL for 'bench forward'");
    core::ForwardBenchOptions options;
    options.threads = args.intValue("threads", 0, 0, 1024);
    ConsoleProgress progress(args.has("quiet"));
    const core::ForwardBenchResult r = core::benchForward(path, options, progress);
    progress.finish();
    if (args.has("json")) {
        nlohmann::ordered_json j{{"benchmark", "forward"}, {"model", path}, {"format", r.format},
                                 {"threads", r.threads}, {"parameters", r.parameters},
                                 {"open_seconds", r.openSeconds}, {"peak_rss_bytes", r.peakRssBytes},
                                 {"weight_cache_bytes", r.weightCacheBytes}, {"cached_bytes", r.cachedBytes}};
        nlohmann::json points = nlohmann::json::array();
        for (const core::ForwardBenchPoint &p : r.points)
            points.push_back({{"ctx", p.ctx}, {"runs", p.runs}, {"tokens_per_second", p.tokensPerSecond},
                              {"first_pass_seconds", p.firstPassSeconds}});
        j["prompt_processing"] = points;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("bench forward: %s (%s), %lld parameters, %d threads\n", path.c_str(), r.format.c_str(),
                static_cast<long long>(r.parameters), r.threads);
    for (const core::ForwardBenchPoint &p : r.points)
        std::printf("  prompt processing ctx %4d: %10.1f tokens/s  (%d runs; first pass %.3f s)\n", p.ctx,
                    p.tokensPerSecond, p.runs, p.firstPassSeconds);
    std::printf("  peak memory %s (weight cache %s of %s budget)\n", formatBytes(double(r.peakRssBytes)).c_str(),
                formatBytes(double(r.cachedBytes)).c_str(), formatBytes(double(r.weightCacheBytes)).c_str());
    return 0;
}

int benchGptqCommand(const Args &args)
{
    core::QuantBenchOptions options;
    options.tokens = args.intValue("tokens", options.tokens, 16, 1 << 20);
    ConsoleProgress progress(args.has("quiet"));
    const core::QuantBenchResult r = core::benchGptq(options, progress);
    progress.finish();
    if (args.has("json")) {
        nlohmann::ordered_json j{{"benchmark", "gptq"}, {"threads", r.threads}, {"bits", r.bits},
                                 {"group_size", r.groupSize}, {"grid", r.grid}};
        nlohmann::json layers = nlohmann::json::array();
        for (const core::GptqBenchLayer &l : r.layers)
            layers.push_back({{"rows", l.rows}, {"cols", l.cols}, {"tokens", l.tokens},
                              {"seconds_per_layer", l.seconds}, {"hessian_seconds", l.hessianSeconds},
                              {"rel_error_gptq", l.relErrorGptq}, {"rel_error_rtn", l.relErrorRtn}});
        j["layers"] = layers;
        j["rtn_gbps"] = r.rtnGBps;
        j["rtn_fake_quant_gbps"] = r.rtnFakeGBps;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("bench gptq: %d-bit, group %d, %s grid, %d threads\n", r.bits, r.groupSize, r.grid.c_str(), r.threads);
    for (const core::GptqBenchLayer &l : r.layers)
        std::printf("  %5lld x %5lld, %d tokens: %7.2f s per layer (H %.2f s, prepare %.2f s, quantize %.2f s); "
                    "rel. output error GPTQ %.4g vs RTN %.4g\n",
                    static_cast<long long>(l.rows), static_cast<long long>(l.cols), l.tokens, l.seconds,
                    l.hessianSeconds, l.prepareSeconds, l.quantizeSeconds, l.relErrorGptq, l.relErrorRtn);
    std::printf("  RTN: %lld x %lld in %.3f s = %.2f GB/s of float weights\n", static_cast<long long>(r.rtnRows),
                static_cast<long long>(r.rtnCols), r.rtnSeconds, r.rtnGBps);
    std::printf("  RTN fake-quant into a reused buffer: %.2f GB/s\n", r.rtnFakeGBps);
    return 0;
}

int runBench(const Args &args)
{
    const std::string what = args.requirePositional(0, "benchmark name (stats, forward or gptq)");
    if (what == "stats")
        return benchStatsCommand(args);
    if (what == "forward")
        return benchForwardCommand(args);
    if (what == "gptq")
        return benchGptqCommand(args);
    throw UsageError("bench: unknown benchmark '" + what + "' (available: stats, forward, gptq)");
}

} // namespace

Command benchCommand()
{
    return {"bench",
            "bench stats|forward MODEL [--json] | bench gptq [--tokens N] [--json]",
            "Measure performance figures against a baseline taken in the same run",
            {{"json", false, "print one JSON object"},
             {"threads", true, "forward: threads (default all)"},
             {"tokens", true, "gptq: calibration tokens (default 2048)"}},
            runBench};
}

} // namespace qs::cli
