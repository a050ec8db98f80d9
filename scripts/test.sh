#!/usr/bin/env bash
# Builds and runs every test: unit tests (ctest) and end-to-end tests on the real binaries
# (pytest). Usage: scripts/test.sh [preset]   (default: release; also debug, asan-ubsan, tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/install-deps.sh --with-test-tools
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset" -j2
export LM_BUILD_DIR="$PWD/build/$preset"
case "$preset" in
  asan-ubsan) export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
  tsan) export TSAN_OPTIONS=halt_on_error=1 ;;
esac
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
