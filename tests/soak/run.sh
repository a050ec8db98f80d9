#!/usr/bin/env bash
# Soak test of a real tokenmgr under hostile load (see soak.py for what runs and what is checked).
#   tests/soak/run.sh --quick         CI: 5 s warm-up + 25 s measured (about 40 s in all)
#   tests/soak/run.sh --seconds 300   by hand: five minutes measured
#   tests/soak/run.sh --seconds 60 --idle 2000 --clients 8    any soak.py option passes through
# Binaries from LM_BUILD_DIR (default build/release). Exits 1 on any violation.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export LM_BUILD_DIR=${LM_BUILD_DIR:-$here/../../build/release}
args=()
for a in "$@"; do
  if [ "$a" = --quick ]; then args+=(--seconds 25 --warmup 5); else args+=("$a"); fi
done
exec /usr/bin/python3 "$here/soak.py" "${args[@]}"
