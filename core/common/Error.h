#pragma once
// The one exception type the core throws for user-visible failures, and the cancellation signal.
// Messages name the file (or object) and what is wrong, so the job boundary can show them as they are.

#include <stdexcept>
#include <string>

namespace qs::core {

class Error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

// Thrown by Progress::throwIfCancelled(); the job boundary reports it as "cancelled", not as a failure.
class Cancelled : public std::runtime_error
{
public:
    Cancelled() : std::runtime_error("cancelled") {}
};

// Throws Error("<file>: <what>"). Use the file's name (not its full path) when the path is long;
// callers pass what the user will recognise.
[[noreturn]] void fail(const std::string &file, const std::string &what);

} // namespace qs::core
