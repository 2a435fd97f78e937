#include "Commands.h"

namespace qs::cli {

Command inspectCommand();
Command makeDemoCommand();
Command benchCommand();

const std::vector<Command> &commands()
{
    static const std::vector<Command> table = {
        inspectCommand(),
        makeDemoCommand(),
        benchCommand(),
    };
    return table;
}

} // namespace qs::cli
