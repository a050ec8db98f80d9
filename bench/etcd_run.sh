#!/usr/bin/env bash
# tokenmgr on STORE=etcd against etcd's own write ceiling, on 127.0.0.1 only: per round,
# lock+release cycles/s with 1 and 50 clients through tokenmgr, and etcd's 1-client put rate on
# the same member (the bound: put/2 for 1 client, put for 50-client handoffs). First on one etcd
# member, then on three. With one member, the first rounds also measure `etcdctl lock` and
# tokenmgr's embedded store (older references).
# Usage: bench/etcd_run.sh [--quick]   (--quick: 2 short rounds, for CI; default: 10 rounds of
#        3 s per cluster, for docs/benchmarks.md). ROUNDS=N ROUND_SECONDS=S override either.
# Binaries come from $LM_BUILD_DIR (default build/release): src/bin/tokenmgr and bench/lock_bench
# (--cycles drives tokenmgr, --etcd-put drives etcd); etcd and etcdctl from PATH (Debian
# etcd-server, etcd-client). tokenmgr runs with its defaults (ETCD_COMPACT=auto), as
# docs/operations.md recommends. Everything is stopped by PID on exit; the measuring and the
# tables are bench/etcd_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
source bench/lib.sh "$@"
require_etcd
extra=()
[ -n "${ROUNDS:-}" ] && extra+=(--rounds "$ROUNDS")
[ -n "${ROUND_SECONDS:-}" ] && extra+=(--seconds "$ROUND_SECONDS")

echo "bench: $(etcd --version | head -1), tokenmgr $("$tokenmgr" --version)," \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
start_tokenmgr tm-embedded
tm_embedded_port=$tm_port
for size in 1 3; do
  start_cluster "$size"
  start_tokenmgr "tm-etcd$size" --store etcd --etcd-endpoints "$endpoints" \
    --etcd-prefix /bench/tokenmgr/
  tm_etcd_pid=$tm_pid
  await_tokenmgr_ready "tm-etcd$size"
  older=()
  if [ "$size" = 1 ]; then
    older=(--etcdctl "$(command -v etcdctl)" --etcd-endpoints "$endpoints"
           --embedded-tm-port "$tm_embedded_port")
  fi
  python3 bench/etcd_bench.py "${mode[@]}" "${extra[@]}" --lock-bench "$driver" \
    --etcd-tm-port "$tm_port" --etcd-port "$first_port" --members "$size" "${older[@]}"
  stop_pids "$tm_etcd_pid" "${cluster_pids[@]}"
done
