#include "io/FormatRegistry.h"

#include <filesystem>

#include "common/Error.h"

namespace qs::core {

const std::vector<ModelFormat> &modelFormats()
{
    // One entry per format; order matters only when two probes could both accept a path.
    static const std::vector<ModelFormat> formats = {
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
