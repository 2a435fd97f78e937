#pragma once
// Versions of QuantScope and of the libraries the core is built on (for About, provenance and --version).

#include <string>

namespace qs::core {

std::string quantscopeVersion();
std::string eigenVersion();
std::string hdf5Version();    // of the library linked at run time
std::string compilerVersion();

} // namespace qs::core
