#include "Commands.h"

namespace qs::cli {

Command inspectCommand();
Command makeDemoCommand();
Command benchCommand();
Command evalCommand();
Command calibrateCommand();
Command quantizeCommand();
Command exportCommand();
Command reportCommand();

const std::vector<Command> &commands()
{
    static const std::vector<Command> table = {
        inspectCommand(),
        makeDemoCommand(),
        evalCommand(),
        calibrateCommand(),
        quantizeCommand(),
        exportCommand(),
        reportCommand(),
        benchCommand(),
    };
    return table;
}

} // namespace qs::cli
