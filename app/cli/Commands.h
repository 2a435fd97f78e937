#pragma once
// The table of quantscope-cli commands. Each command lives in its own file and returns its entry here;
// main() dispatches and prints help from this table.

#include <functional>
#include <string>
#include <vector>

#include "CliSupport.h"

namespace qs::cli {

struct Command
{
    std::string name;
    std::string usage;   // "inspect MODEL [--json] [--outlier-sigma K]"
    std::string summary; // one line
    std::vector<OptionSpec> options;
    std::function<int(const Args &)> run; // returns the exit code; throws UsageError / core::Error
};

const std::vector<Command> &commands();

} // namespace qs::cli
