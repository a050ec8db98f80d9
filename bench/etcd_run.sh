#!/usr/bin/env bash
# tokenmgr on STORE=etcd against `etcdctl lock` on the same etcd, with tokenmgr's embedded store as
# a reference, in one run on 127.0.0.1 only: lock+release cycles/s and p99, 1 and 50 clients.
# Usage: bench/etcd_run.sh [--quick]   (--quick: < 30 s, for CI; default: full, for docs/benchmarks.md)
# Binaries come from $LM_BUILD_DIR (default build/release): src/bin/tokenmgr and bench/lock_bench
# (its --cycles mode drives tokenmgr); etcd and etcdctl from PATH (Debian etcd-server,
# etcd-client). Starts one etcd member (data dir in a temp dir) and two tokenmgr, stops them by
# PID on exit. The measuring and the table are bench/etcd_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
source bench/lib.sh "$@"
for tool in etcd etcdctl; do
  command -v "$tool" >/dev/null ||
    { echo "bench: $tool not installed (apt-get install etcd-server etcd-client)" >&2; exit 2; }
done


etcd_port="$(free_port)"
etcd_peer="$(free_port)"
etcd_url="http://127.0.0.1:$etcd_port"
mkdir -p "$work/etcd"
etcd --name bench --data-dir "$work/etcd/data" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "bench=http://127.0.0.1:$etcd_peer" --log-level warn \
  >"$work/etcd/etcd.log" 2>&1 &
etcd_pid=$!
pids+=("$etcd_pid")
await_ready "$etcd_pid" "$work/etcd/etcd.log" \
  "etcdctl --endpoints=$etcd_url endpoint health >/dev/null 2>&1"

start_tokenmgr tm-etcd --store etcd --etcd-endpoints "$etcd_url" --etcd-prefix /bench/tokenmgr/
tm_etcd_port=$tm_port
await_ready "$tm_pid" "$work/tm-etcd/tokenmgr.log" \
  "curl -fsS http://127.0.0.1:$tm_etcd_port/readyz >/dev/null 2>&1"
start_tokenmgr tm-embedded
tm_embedded_port=$tm_port

echo "bench: $(etcd --version | head -1), tokenmgr $("$tokenmgr" --version)," \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
python3 bench/etcd_bench.py "${mode[@]}" --lock-bench "$driver" --etcdctl "$(command -v etcdctl)" \
  --etcd-endpoints "$etcd_url" --etcd-tm-port "$tm_etcd_port" --embedded-tm-port "$tm_embedded_port"
