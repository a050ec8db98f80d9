#!/usr/bin/env bash
# The operator's console at scale (issue 17): /api/nodes, /api/events and /api/usage with 5,000
# nodes and 1,000,000 events of history, p50/p99 against /api/licenses on the same pool in the
# same run; tokenmgr's memory; and what the agents' status reports cost (5,000 nodes every 10 s).
# Usage: bench/console_run.sh [--quick]   (--quick: 500 nodes, 20,000 events, short runs, for
#        CI). tokenmgr from $LM_BUILD_DIR (default build/release). The measuring, the tables and
#        the clean-up by PID are bench/console_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${LM_BUILD_DIR:-build/release}"
tokenmgr="$build/src/bin/tokenmgr"
[ -x "$tokenmgr" ] || { echo "bench: $tokenmgr not found; build first (cmake --preset release &&" \
  "cmake --build --preset release)" >&2; exit 2; }
case "${1:-}" in
  --quick) exec python3 bench/console_bench.py --tokenmgr "$tokenmgr" --nodes 500 \
             --events 20000 --requests 30 --report-seconds 3 ;;
  "") exec python3 bench/console_bench.py --tokenmgr "$tokenmgr" ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
