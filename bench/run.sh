#!/usr/bin/env bash
# Runs lock_bench: tokenmgr against Redis, on 127.0.0.1 only, in one run.
# Usage: bench/run.sh [--quick]      (--quick: < 30 s, for CI; default: full, for docs/benchmarks.md)
# Binaries come from $LM_BUILD_DIR (default build/release): src/bin/tokenmgr and bench/lock_bench.
# Starts two tokenmgr (memory-only, --state-file) and two redis-server (no persistence,
# appendonly+appendfsync always), each in its own temp dir, and stops them by PID on exit.
# For the 1-client rows each server and the driver share one CPU (PIN_CPU, default the last;
# PIN_CPU=-1 leaves placement to the scheduler): see "Placement" in bench/lock_bench.cc.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
source bench/lib.sh "$@"
command -v redis-server >/dev/null || { echo "bench: redis-server not installed (apt-get install redis-server)" >&2; exit 2; }

# 1,000 idle connections on each side plus the contending clients need file descriptors.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
  ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "bench: open-file limit $(ulimit -n)" >&2


start_redis() {  # name, then extra redis-server flags; sets redis_port/redis_pid
  local dir="$work/$1"; shift
  mkdir -p "$dir"
  redis_port="$(free_port)"
  redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize no --dir "$dir" \
    --protected-mode yes --logfile "$dir/redis.log" --maxclients 10000 "$@" &
  redis_pid=$!
  pids+=("$redis_pid")
  await_ready "$redis_pid" "$dir/redis.log" \
    "redis-cli -h 127.0.0.1 -p $redis_port ping 2>/dev/null | grep -q PONG"
}

start_redis redis-plain --save "" --appendonly no
redis_plain_port=$redis_port redis_plain_pid=$redis_pid
start_redis redis-aof --save "" --appendonly yes --appendfsync always
redis_aof_port=$redis_port redis_aof_pid=$redis_pid
start_tokenmgr tm-memory
tm_mem_port=$tm_port tm_mem_pid=$tm_pid
start_tokenmgr tm-file --state-file "$work/tm-file/state.json"
tm_file_port=$tm_port tm_file_pid=$tm_pid

echo "bench: $(redis-server --version | cut -d' ' -f1-3), tokenmgr $("$tokenmgr" --version)," \
     "$(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)" >&2
"$driver" "${mode[@]}" --tm-port="$tm_mem_port" --tm-pid="$tm_mem_pid" \
  --tm-file-port="$tm_file_port" --redis-port="$redis_plain_port" --redis-pid="$redis_plain_pid" \
  --redis-aof-port="$redis_aof_port" --tm-file-pid="$tm_file_pid" --redis-aof-pid="$redis_aof_pid" \
  --pin-cpu="${PIN_CPU:-$(( $(nproc) - 1 ))}"
