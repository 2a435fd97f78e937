#include "export/GgufExport.h"

#include "common/Error.h"

namespace qs::core {

ExportSummary exportGguf(const ExportSource &source, const GgufExportOptions &, const std::string &out, Progress &)
{
    fail(out, "export of " + source.path + " in this format is not implemented yet");
}

} // namespace qs::core
