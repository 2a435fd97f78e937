#include "Commands.h"

namespace qs::cli {

Command inspectCommand();
Command makeDemoCommand();
Command benchCommand();
Command evalCommand();
Command calibrateCommand();
Command quantizeCommand();
Command exportCommand();

const std::vector<Command> &commands()
{
    static const std::vector<Command> table = {
        inspectCommand(),
        makeDemoCommand(),
        evalCommand(),
        calibrateCommand(),
        quantizeCommand(),
        exportCommand(),
        benchCommand(),
    };
    return table;
}

} // namespace qs::cli
