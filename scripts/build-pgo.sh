#!/usr/bin/env bash
# Builds with profile-guided optimization (GCC), in one build directory: an instrumented build
# of tokenmgr, a training run on 127.0.0.1 (bench/pgo-train.sh, with lock_bench as the load),
# then the whole build again, optimized with the profile and link-time optimization. lock_bench
# itself is built plainly in every build directory (bench/CMakeLists.txt), so the benchmark's
# driver treats tokenmgr and Redis alike.
# Usage: scripts/build-pgo.sh [preset] [build-dir]   (default: release, build/<preset>-pgo)
# Then, e.g.: LM_BUILD_DIR=build/release-pgo bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
dir="${2:-build/${preset}-pgo}"
profile="$PWD/$dir/pgo-profile"

rm -rf "$profile"
cmake --preset "$preset" -B "$dir" -DLM_PGO=generate -DLM_PGO_DIR="$profile" \
  -DLM_BUILD_BENCH=ON -DLM_BUILD_TESTS=OFF -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF >/dev/null
cmake --build "$dir" --target tokenmgr lock_bench
LM_BUILD_DIR="$dir" bench/pgo-train.sh
cmake "$dir" -DLM_PGO=use -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=ON >/dev/null
cmake --build "$dir"
echo "build-pgo: optimized build in $dir" >&2
