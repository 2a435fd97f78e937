// quantscope-cli make-demo OUTDIR [--preset tiny|small|1b] [--seed N] [--dtype f32|f16|bf16]
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "Commands.h"
#include "model/DemoModel.h"

namespace qs::cli {

namespace {

int runMakeDemo(const Args &args)
{
    const std::string out = args.requirePositional(0, "OUTDIR");
    core::DemoOptions options;
    options.preset = args.value("preset", "tiny");
    if (!core::findDemoPreset(options.preset)) {
        std::string names;
        for (const core::DemoPreset &p : core::demoPresets())
            names += (names.empty() ? "" : ", ") + p.name;
        throw UsageError("make-demo: unknown --preset '" + options.preset + "' (one of: " + names + ")");
    }
    options.dtype = args.value("dtype", "f16");
    if (options.dtype != "f32" && options.dtype != "f16" && options.dtype != "bf16")
        throw UsageError("make-demo: --dtype must be f32, f16 or bf16, got '" + options.dtype + "'");
    options.seed = uint64_t(args.intValue("seed", 1, 0, 2147483647));

    ConsoleProgress progress(args.has("quiet"));
    const auto t0 = std::chrono::steady_clock::now();
    core::writeDemoModel(out, options, progress);
    progress.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (args.has("json")) {
        nlohmann::ordered_json j{{"path", out}, {"preset", options.preset}, {"dtype", options.dtype},
                                 {"seed", options.seed}, {"seconds", seconds}};
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("wrote synthetic %s demo model (%s, seed %llu) to %s in %.1f s\n", options.preset.c_str(),
                    options.dtype.c_str(), static_cast<unsigned long long>(options.seed), out.c_str(), seconds);
    }
    return 0;
}

} // namespace

Command makeDemoCommand()
{
    return {"make-demo",
            "make-demo OUTDIR [--preset tiny|small|1b] [--seed N] [--dtype f32|f16|bf16] [--json]",
            "Write a synthetic Llama-shaped Hugging Face folder (labelled synthetic) for demos and benchmarks",
            {{"preset", true, "tiny (default), small, or 1b (TinyLlama-1.1B dimensions)"},
             {"seed", true, "random seed (default 1)"},
             {"dtype", true, "f32, f16 (default) or bf16"},
             {"json", false, "print one JSON object"}},
            runMakeDemo};
}

} // namespace qs::cli
