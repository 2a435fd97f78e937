#pragma once
// Shared pieces of quantscope-cli: argument parsing with named errors, the terminal progress reporter,
// Ctrl-C handling and the exit-code contract of specs/cli.md (0 ok, 1 user error, 2 internal error).

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/Progress.h"

namespace qs::cli {

// A mistake by the user (bad flag, bad value): exit code 1.
class UsageError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

struct OptionSpec
{
    std::string name;   // without leading dashes
    bool takesValue;
    std::string help;
};

class Args
{
public:
    // Parses argv (after the command name) against the command's options. Throws UsageError naming the flag.
    Args(const std::string &command, int argc, char **argv, int first, const std::vector<OptionSpec> &options);

    const std::vector<std::string> &positional() const { return m_positional; }
    bool has(const std::string &name) const { return m_values.count(name) > 0; }
    std::string value(const std::string &name, const std::string &fallback = {}) const;
    int intValue(const std::string &name, int fallback, int min, int max) const;
    double doubleValue(const std::string &name, double fallback, double min, double max) const;
    std::string requireValue(const std::string &name) const;
    std::string requirePositional(size_t index, const std::string &what) const;

private:
    std::string m_command;
    std::vector<std::string> m_positional;
    std::map<std::string, std::string> m_values;
};

// Progress on stderr: a redrawn bar on a terminal, plain lines (at most one per second) otherwise, nothing
// with --quiet. Cancelled after SIGINT/SIGTERM (installSignalHandlers()).
class ConsoleProgress final : public core::Progress
{
public:
    explicit ConsoleProgress(bool quiet);
    ~ConsoleProgress() override;
    void setTotal(double total) override;
    void advance(double amount) override;
    void message(std::string_view text) override;
    bool isCancelled() const override;
    void finish(); // clears the bar line

private:
    void draw(bool force);
    struct State;
    State *m_state;
};

void installSignalHandlers();
bool interrupted();

std::string formatBytes(double bytes);

} // namespace qs::cli
