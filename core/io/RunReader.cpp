#include "io/RunReader.h"

#include "quant/RunDir.h"

namespace qs::core::RunReader {

bool probe(const std::string &path)
{
    return isRunDir(path);
}

std::unique_ptr<Model> open(const std::string &path, const OpenOptions &options)
{
    (void)options; // the original model is opened with its own defaults
    return openRunDirModel(path);
}

} // namespace qs::core::RunReader
