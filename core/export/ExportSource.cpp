#include "export/ExportSource.h"

#include <filesystem>

#include "common/Error.h"
#include "io/FormatRegistry.h"

namespace qs::core {

const QuantizedTensor *ExportSource::quantized(const std::string &name) const
{
    if (!run) {
        return nullptr;
    }
    for (const QuantizedTensor &t : run->tensors) {
        if (t.name == name) {
            return &t;
        }
    }
    return nullptr;
}

ExportSource openExportSource(const std::string &path, Progress &progress)
{
    ExportSource source;
    source.path = path;
    progress.message("opening " + path);
    source.model = openModel(path);
    if (isRunDir(path)) {
        progress.message("reading run " + path);
        source.run = std::make_shared<const RunDirContents>(readRunDir(path));
    }
    return source;
}

nlohmann::ordered_json ExportSummary::toJson() const
{
    nlohmann::ordered_json j;
    j["format"] = format;
    j["out"] = path;
    j["bytes"] = bytes;
    j["seconds"] = seconds;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const ExportedTensor &t : tensors) {
        nlohmann::ordered_json e;
        e["name"] = t.name;
        e["type"] = t.type;
        e["source"] = t.source;
        if (!t.note.empty()) {
            e["note"] = t.note;
        }
        list.push_back(std::move(e));
    }
    j["tensors"] = std::move(list);
    j["notes"] = notes;
    return j;
}

uint64_t pathBytes(const std::string &path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
        return fs::file_size(path, ec);
    }
    uint64_t total = 0;
    for (const auto &entry : fs::directory_iterator(path, ec)) {
        if (entry.is_regular_file(ec)) {
            total += entry.file_size(ec);
        }
    }
    return total;
}

} // namespace qs::core
