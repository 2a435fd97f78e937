#include "common/Error.h"

namespace qs::core {

void fail(const std::string &file, const std::string &what)
{
    throw Error(file.empty() ? what : file + ": " + what);
}

} // namespace qs::core
