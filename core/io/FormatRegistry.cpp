#include "io/FormatRegistry.h"

#include <filesystem>

#include "common/Error.h"
#include "io/GgufReader.h"
#include "io/HfFolderReader.h"
#include "io/Llama2cReader.h"
#include "io/RunReader.h"

namespace qs::core {

const std::vector<ModelFormat> &modelFormats()
{
    // One entry per format; order matters only when two probes could both accept a path.
    static const std::vector<ModelFormat> formats = {
        {"run", "QuantScope quantization run (folder with run.json)", {"run.json"}, &RunReader::probe,
         &RunReader::open},
        {"safetensors", "Hugging Face folder (config.json + safetensors)", {"config.json", "*.safetensors"},
         &HfFolderReader::probe, &HfFolderReader::open},
        {"llama2c", "llama2.c checkpoint (.bin)", {"*.bin"}, &Llama2cReader::probe, &Llama2cReader::open},
        {"gguf", "GGUF file (llama.cpp)", {"*.gguf"}, [](const std::string &path) { return GgufReader::probe(path); },
         [](const std::string &path, const OpenOptions &) { return GgufReader::open(path); }},
    };
    return formats;
}

std::unique_ptr<Model> openModel(const std::string &path, const OpenOptions &options)
{
    if (!std::filesystem::exists(path))
        fail(path, "no such file or folder");
    for (const ModelFormat &f : modelFormats())
        if (f.probe(path))
            return f.open(path, options);
    std::string names;
    for (const ModelFormat &f : modelFormats())
        names += (names.empty() ? "" : ", ") + f.description;
    fail(path, "not a recognised model (expected one of: " + names + ")");
}

} // namespace qs::core
