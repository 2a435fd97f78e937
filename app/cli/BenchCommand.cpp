// quantscope-cli bench stats|forward|gptq [MODEL] [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "Commands.h"
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
                                 {"stats_to_read_ratio", ratio}};
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("bench stats: %s (%s), %d tensors, %s, %d threads\n", path.c_str(), r.format.c_str(), r.tensors,
                formatBytes(double(r.totalBytes)).c_str(), r.threads);
    std::printf("  open                 %8.3f s\n", r.openSeconds);
    if (r.rawReadAvailable) {
        std::printf("  plain read (first)   %8.3f s  %7.2f GB/s\n", r.firstReadSeconds, r.firstReadGBps);
        std::printf("  plain read (warm)    %8.3f s  %7.2f GB/s   <- baseline\n", r.readSeconds, r.readGBps);
    }
    std::printf("  decode to float32    %8.3f s  %7.2f GB/s\n", r.decodeSeconds, r.decodeGBps);
    std::printf("  statistics           %8.3f s  %7.2f GB/s\n", r.statsSeconds, r.statsGBps);
    if (r.rawReadAvailable)
        std::printf("  statistics / plain read = %.2f (goal >= 0.5)\n", ratio);
    return 0;
}

int runBench(const Args &args)
{
    const std::string what = args.requirePositional(0, "benchmark name (stats)");
    if (what == "stats")
        return benchStatsCommand(args);
    throw UsageError("bench: unknown benchmark '" + what + "' (available: stats)");
}

} // namespace

Command benchCommand()
{
    return {"bench",
            "bench stats MODEL [--json]",
            "Measure performance figures against a baseline taken in the same run",
            {{"json", false, "print one JSON object"}},
            runBench};
}

} // namespace qs::cli
