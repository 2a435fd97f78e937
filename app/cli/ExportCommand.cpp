// quantscope-cli export RUN_DIR|MODEL --format gguf|gptq|hdf5 --out PATH [--type TYPE] [--no-tensors] [--json]
#include <cctype>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "Commands.h"
#include "common/Error.h"
#include "export/ExportSource.h"
#include "export/GgufExport.h"
#include "export/GgufQuantize.h"
#include "export/GptqExport.h"
#include "export/ProjectH5.h"

namespace qs::cli {

namespace {

std::string upperCase(std::string s)
{
    for (char &c : s) {
        c = char(std::toupper(static_cast<unsigned char>(c)));
    }
    return s;
}

int runExport(const Args &args)
{
    const std::string path = args.requirePositional(0, "RUN_DIR|MODEL");
    const std::string format = args.requireValue("format");
    const std::string out = args.requireValue("out");
    if (format != "gguf" && format != "gptq" && format != "hdf5") {
        throw UsageError("export: --format: '" + format + "' is not one of gguf, gptq, hdf5");
    }
    if (args.has("checkpoint-format") && format != "gptq") {
        throw UsageError("export: --checkpoint-format applies to --format gptq only");
    }
    if (args.has("checkpoint-format") && args.value("checkpoint-format") != "gptq" &&
        args.value("checkpoint-format") != "gptq_v2") {
        throw UsageError("export: --checkpoint-format: '" + args.value("checkpoint-format") +
                         "' is not one of gptq, gptq_v2");
    }
    if (args.has("type") && format != "gguf") {
        throw UsageError("export: --type applies to --format gguf only");
    }
    if (args.has("type") && !core::findWritableGgmlType(upperCase(args.value("type")))) {
        throw UsageError("export: --type: '" + args.value("type") + "' is not one of " + core::ggufWritableTypeList());
    }
    ConsoleProgress progress(args.has("quiet"));
    const auto t0 = std::chrono::steady_clock::now();
    const core::ExportSource source = core::openExportSource(path, progress);

    core::ExportSummary summary;
    if (format == "gguf") {
        core::GgufExportOptions options;
        options.type = args.value("type");
        summary = core::exportGguf(source, options, out, progress);
    } else if (format == "gptq") {
        core::GptqExportOptions options;
        options.checkpointFormat = args.value("checkpoint-format", options.checkpointFormat);
        summary = core::exportGptq(source, options, out, progress);
    } else {
        core::ProjectExportOptions options;
        options.includeTensors = !args.has("no-tensors");
        summary = core::exportProjectH5(source, options, out, progress);
    }
    progress.finish();
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    if (args.has("json")) {
        nlohmann::ordered_json j = summary.toJson();
        j["model"] = path;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("wrote %s (%s, %s) in %.2f s\n", summary.path.c_str(), summary.format.c_str(),
                formatBytes(double(summary.bytes)).c_str(), summary.seconds);
    if (!summary.tensors.empty()) {
        std::printf("%-44s %-16s %-12s %s\n", "tensor", "type", "source", "note");
        for (const core::ExportedTensor &t : summary.tensors) {
            std::printf("%-44s %-16s %-12s %s\n", t.name.c_str(), t.type.c_str(), t.source.c_str(), t.note.c_str());
        }
    }
    for (const std::string &note : summary.notes) {
        std::printf("note: %s\n", note.c_str());
    }
    return 0;
}

} // namespace

Command exportCommand()
{
    return {"export",
            "export RUN_DIR|MODEL --format gguf|gptq|hdf5 --out PATH [--type TYPE] [--checkpoint-format gptq|gptq_v2] [--no-tensors] [--json]",
            "Write a model or quantization run as GGUF (llama.cpp), a GPTQ checkpoint folder or an HDF5 project",
            {{"format", true, "gguf, gptq or hdf5"},
             {"out", true, "the file (gguf, hdf5) or folder (gptq) to write; replaced atomically"},
             {"type", true, "gguf: one type for every matrix (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, "
                            "Q6_K) instead of the run's per-tensor types"},
             {"checkpoint-format", true, "gptq: gptq (v1, zeros stored minus one; default, loads everywhere) or "
                                         "gptq_v2 (true zeros; GPTQModel)"},
             {"no-tensors", false, "hdf5: leave out the quantized tensors (codes, scales, zeros)"},
             {"json", false, "print one JSON object"}},
            runExport};
}

} // namespace qs::cli
