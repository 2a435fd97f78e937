#!/usr/bin/env bash
# Installs dependencies, builds QuantScope and runs the whole test suite; exits non-zero on any failure.
# Usage: packaging/test.sh [asan]   (asan: the same suite under AddressSanitizer + UBSan, build/asan)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
preset="${1:-dev}"
packaging/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
export QT_QPA_PLATFORM=offscreen
ctest --preset "$preset"
