#include "export/GptqExport.h"

#include "common/Error.h"

namespace qs::core {

ExportSummary exportGptq(const ExportSource &source, const GptqExportOptions &, const std::string &out, Progress &)
{
    fail(out, "export of " + source.path + " in this format is not implemented yet");
}

} // namespace qs::core
