// quantscope-cli: the headless front end on the same core as the GUI. Contract: ../shared/specs/cli.md.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "CliSupport.h"
#include "Commands.h"
#include "common/Error.h"
#include "common/Version.h"

using namespace qs;

namespace {

void printHelp()
{
    std::printf("quantscope-cli %s - inspect, quantize, evaluate and export LLMs without a GUI\n\n",
                core::quantscopeVersion().c_str());
    std::printf("Usage: quantscope-cli COMMAND [ARGS] [--json] [--quiet]\n"
                "       quantscope-cli --version | --help\n\nCommands:\n");
    for (const cli::Command &c : cli::commands())
        std::printf("  %-12s %s\n", c.name.c_str(), c.summary.c_str());
    if (cli::commands().empty())
        std::printf("  (none yet in this build)\n");
    std::printf("\nRun 'quantscope-cli COMMAND --help' for a command's options.\n"
                "Exit codes: 0 success, 1 user error (bad file or flag), 2 internal error.\n");
}

void printCommandHelp(const cli::Command &c)
{
    std::printf("Usage: quantscope-cli %s\n\n%s\n\nOptions:\n", c.usage.c_str(), c.summary.c_str());
    for (const cli::OptionSpec &o : c.options)
        std::printf("  --%-18s %s\n", (o.name + (o.takesValue ? " V" : "")).c_str(), o.help.c_str());
    std::printf("  --%-18s %s\n", "help", "show this help");
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        printHelp();
        return 1;
    }
    const std::string first = argv[1];
    if (first == "--help" || first == "-h" || first == "help") {
        printHelp();
        return 0;
    }
    if (first == "--version" || first == "-V") {
        std::printf("quantscope-cli %s (Eigen %s, HDF5 %s, %s)\n", core::quantscopeVersion().c_str(),
                    core::eigenVersion().c_str(), core::hdf5Version().c_str(), core::compilerVersion().c_str());
        return 0;
    }
    const cli::Command *command = nullptr;
    for (const cli::Command &c : cli::commands())
        if (c.name == first)
            command = &c;
    if (!command) {
        std::fprintf(stderr, "quantscope-cli: unknown command '%s' (see quantscope-cli --help)\n", first.c_str());
        return 1;
    }
    for (int i = 2; i < argc; ++i)
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            printCommandHelp(*command);
            return 0;
        }

    cli::installSignalHandlers();
    try {
        std::vector<cli::OptionSpec> options = command->options;
        options.push_back({"quiet", false, "no progress output on stderr"});
        const cli::Args args(command->name, argc, argv, 2, options);
        return command->run(args);
    } catch (const cli::UsageError &e) {
        std::fprintf(stderr, "quantscope-cli: %s\n", e.what());
        return 1;
    } catch (const core::Cancelled &) {
        std::fprintf(stderr, "quantscope-cli: interrupted; no output was written\n");
        return 1;
    } catch (const core::Error &e) {
        std::fprintf(stderr, "quantscope-cli: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "quantscope-cli: internal error: %s\n", e.what());
        return 2;
    }
}
