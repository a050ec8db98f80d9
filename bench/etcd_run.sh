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
for tool in etcd etcdctl; do
  command -v "$tool" >/dev/null ||
    { echo "bench: $tool not installed (apt-get install etcd-server etcd-client)" >&2; exit 2; }
done
extra=()
[ -n "${ROUNDS:-}" ] && extra+=(--rounds "$ROUNDS")
[ -n "${ROUND_SECONDS:-}" ] && extra+=(--seconds "$ROUND_SECONDS")

start_cluster() {  # size; sets endpoints, first_port, cluster_pids
  local size=$1 initial="" i
  local -a names=() cports=() pports=()
  for ((i = 0; i < size; i++)); do
    names+=("m$size-$i"); cports+=("$(free_port)"); pports+=("$(free_port)")
    initial+="${initial:+,}m$size-$i=http://127.0.0.1:${pports[$i]}"
  done
  endpoints="" cluster_pids=()
  for ((i = 0; i < size; i++)); do
    local url="http://127.0.0.1:${cports[$i]}" dir="$work/etcd$size/${names[$i]}"
    mkdir -p "$dir"
    etcd --name "${names[$i]}" --data-dir "$dir/data" \
      --listen-client-urls "$url" --advertise-client-urls "$url" \
      --listen-peer-urls "http://127.0.0.1:${pports[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${pports[$i]}" \
      --initial-cluster "$initial" --initial-cluster-token "bench-$size" --log-level warn \
      >"$dir/etcd.log" 2>&1 &
    pids+=("$!"); cluster_pids+=("$!")
    endpoints+="${endpoints:+,}$url"
  done
  first_port=${cports[0]}
  for ((i = 0; i < 200; i++)); do  # up to 10 s for a quorum
    etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "bench: etcd cluster of $size did not become healthy; logs:" >&2
  cat "$work"/etcd"$size"/*/etcd.log >&2
  exit 1
}

stop_pids() {
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

echo "bench: $(etcd --version | head -1), tokenmgr $("$tokenmgr" --version)," \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
start_tokenmgr tm-embedded
tm_embedded_port=$tm_port
for size in 1 3; do
  start_cluster "$size"
  start_tokenmgr "tm-etcd$size" --store etcd --etcd-endpoints "$endpoints" \
    --etcd-prefix /bench/tokenmgr/
  tm_etcd_pid=$tm_pid
  await_ready "$tm_pid" "$work/tm-etcd$size/tokenmgr.log" \
    "curl -fsS http://127.0.0.1:$tm_port/readyz >/dev/null 2>&1"
  older=()
  if [ "$size" = 1 ]; then
    older=(--etcdctl "$(command -v etcdctl)" --etcd-endpoints "$endpoints"
           --embedded-tm-port "$tm_embedded_port")
  fi
  python3 bench/etcd_bench.py "${mode[@]}" "${extra[@]}" --lock-bench "$driver" \
    --etcd-tm-port "$tm_port" --etcd-port "$first_port" --members "$size" "${older[@]}"
  stop_pids "$tm_etcd_pid" "${cluster_pids[@]}"
done
