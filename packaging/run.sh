#!/usr/bin/env bash
# Installs dependencies, builds QuantScope (Release, tuned for this CPU) and starts the GUI.
# Usage: packaging/run.sh [MODEL]   (without MODEL it opens the built-in synthetic demo model)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
packaging/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
if [[ $# -gt 0 ]]; then
  exec build/release/app/gui/quantscope "$@"
else
  exec build/release/app/gui/quantscope --demo
fi
