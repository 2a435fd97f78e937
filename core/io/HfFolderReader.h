#pragma once
// Opens a Hugging Face model folder: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json (formats.md 1.6-1.9). Accepts the folder, its config.json, or one of its
// .safetensors files. Tensors stay in the memory maps; F32/F16/BF16 rows are converted on demand.

#include <memory>
#include <string>

#include "io/FormatRegistry.h"
#include "model/Model.h"

namespace qs::core {

class HfFolderReader
{
public:
    // Cheap: looks at names only (a folder with config.json and weights, a config.json, a .safetensors
    // file beside a config.json).
    static bool probe(const std::string &path);

    // Throws Error naming the file at fault (config.json, the index, a shard) on any problem.
    static std::unique_ptr<Model> open(const std::string &path, const OpenOptions &options = {});
};

} // namespace qs::core
