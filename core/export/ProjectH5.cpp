#include "export/ProjectH5.h"

#include "common/Error.h"

namespace qs::core {

ExportSummary exportProjectH5(const ExportSource &source, const ProjectExportOptions &, const std::string &out, Progress &)
{
    fail(out, "export of " + source.path + " in this format is not implemented yet");
}

} // namespace qs::core
