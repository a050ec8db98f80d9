#!/usr/bin/env bash
# The long run of issue 20, on 127.0.0.1 only: one etcd member and one tokenmgr on STORE=etcd,
# both with the settings docs/operations.md recommends, under continuous contended locking (50
# clients, `lock_bench --cycles`, one run for the whole time). Every interval it records the
# grants/s in that interval, etcd's revision and the history kept (revision - compacted
# revision), etcd's database size (file and in use), and the RSS of tokenmgr and etcd. At the
# end: a Markdown table and the verdicts (last interval's rate / first >= 0.9; database size
# bounded). The measuring and the tables are bench/etcd_long.py.
# Usage: bench/etcd_long.sh [--minutes M] [--interval S] [--clients N]
#        (default 30 minutes, a row every 60 s, 50 clients)
# Settings (docs/operations.md, "etcd history, space quota and compaction"): tokenmgr with its
# defaults (ETCD_COMPACT=auto, ETCD_COMPACT_INTERVAL=10); etcd with its defaults, the space
# quota given explicitly at etcd's default of 2 GiB (the value the docs call ample), no etcd
# auto-compaction (tokenmgr compacts). ETCD_FLAGS="..." adds etcd flags (word-split).
# Binaries come from $LM_BUILD_DIR (default build/release): src/bin/tokenmgr and
# bench/lock_bench; etcd and etcdctl from PATH. Everything is stopped by PID on exit, Ctrl-C too.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30 interval=60 clients=50
usage() { echo "usage: $0 [--minutes M] [--interval S] [--clients N]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:-}"; shift 2 || usage ;;
    --interval) interval="${2:-}"; shift 2 || usage ;;
    --clients) clients="${2:-}"; shift 2 || usage ;;
    *) usage ;;
  esac
done
for v in "$minutes" "$interval" "$clients"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "bench: '$v' is not a positive whole number" >&2; usage; }
done
set --
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_etcd

read -r -a etcd_flags <<<"--quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) ${ETCD_FLAGS:-}"
echo "bench: $(etcd --version | head -1), tokenmgr $("$tokenmgr" --version)," \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ);" \
     "etcd flags: ${etcd_flags[*]}" >&2
start_cluster 1 "${etcd_flags[@]}"
start_tokenmgr tm-etcd --store etcd --etcd-endpoints "$endpoints" --etcd-prefix /bench/tokenmgr/
await_tokenmgr_ready tm-etcd

# In the background, so that a signal reaches the trap (which stops it by PID too).
python3 bench/etcd_long.py --lock-bench "$driver" --tm-port "$tm_port" --tm-pid "$tm_pid" \
  --etcd-port "$first_port" --etcd-pid "${cluster_pids[0]}" --minutes "$minutes" \
  --interval "$interval" --clients "$clients" --etcd-flags="${etcd_flags[*]}" &
pids+=("$!")
wait "$!"
