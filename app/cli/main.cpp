#include <cstdio>
#include <string>
#include "common/Version.h"
int main(int argc, char **argv)
{
    if (argc > 1 && std::string(argv[1]) == "--version") {
        std::printf("quantscope-cli %s\n", qs::core::quantscopeVersion().c_str());
        return 0;
    }
    return 0;
}
