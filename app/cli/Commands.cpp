#include "Commands.h"

namespace qs::cli {

Command inspectCommand();
Command makeDemoCommand();
Command benchCommand();
Command evalCommand();
Command calibrateCommand();

const std::vector<Command> &commands()
{
    static const std::vector<Command> table = {
        inspectCommand(),
        makeDemoCommand(),
        evalCommand(),
        calibrateCommand(),
        benchCommand(),
    };
    return table;
}

} // namespace qs::cli
