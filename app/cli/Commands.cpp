#include "Commands.h"

namespace qs::cli {

const std::vector<Command> &commands()
{
    static const std::vector<Command> table = {
    };
    return table;
}

} // namespace qs::cli
