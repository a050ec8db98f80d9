#!/usr/bin/env bash
# Runs lock_bench: tokenmgr against Redis, on 127.0.0.1 only, in one run.
# Usage: bench/run.sh [--quick]      (--quick: < 30 s, for CI; default: full, for docs/benchmarks.md)
# Binaries come from $LM_BUILD_DIR (default build/release): src/bin/tokenmgr and bench/lock_bench.
# Starts two tokenmgr (memory-only, --state-file) and two redis-server (no persistence,
# appendonly+appendfsync always), each in its own temp dir, and stops them by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=()
case "${1:-}" in
  --quick) mode=(--quick) ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

build="${LM_BUILD_DIR:-build/release}"
tokenmgr="$build/src/bin/tokenmgr"
driver="$build/bench/lock_bench"
for bin in "$tokenmgr" "$driver"; do
  if [ ! -x "$bin" ]; then
    echo "bench: $bin not found; build first, e.g. cmake --preset release &&" \
         "cmake --build --preset release (needs libhiredis-dev for lock_bench)" >&2
    exit 2
  fi
done
command -v redis-server >/dev/null || { echo "bench: redis-server not installed (apt-get install redis-server)" >&2; exit 2; }

# 1,000 idle connections on each side plus the contending clients need file descriptors.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
  ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "bench: open-file limit $(ulimit -n)" >&2

work="$(mktemp -d /tmp/lm-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {  # a currently free loopback port (the kernel's pick)
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

await_ready() {  # pid, log file, readiness check: polls for up to 5 s
  for _ in $(seq 100); do
    eval "$3" && return 0
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: server (pid $1) did not start; its log $2:" >&2
  cat "$2" >&2 || true
  exit 1
}

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

start_tokenmgr() {  # name, then extra tokenmgr flags; sets tm_port/tm_pid
  local dir="$work/$1"; shift
  mkdir -p "$dir"
  "$tokenmgr" --bind-address 127.0.0.1 --listen-port 0 --port-file "$dir/port" \
    --max-wait 60 --max-connections 4096 "$@" 2>"$dir/tokenmgr.log" &
  tm_pid=$!
  pids+=("$tm_pid")
  await_ready "$tm_pid" "$dir/tokenmgr.log" "test -s $dir/port"
  tm_port="$(cat "$dir/port")"
}

start_redis redis-plain --save "" --appendonly no
redis_plain_port=$redis_port redis_plain_pid=$redis_pid
start_redis redis-aof --save "" --appendonly yes --appendfsync always
redis_aof_port=$redis_port
start_tokenmgr tm-memory
tm_mem_port=$tm_port tm_mem_pid=$tm_pid
start_tokenmgr tm-file --state-file "$work/tm-file/state.json"
tm_file_port=$tm_port

echo "bench: $(redis-server --version | cut -d' ' -f1-3), tokenmgr $("$tokenmgr" --version)," \
     "$(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)" >&2
"$driver" "${mode[@]}" --tm-port="$tm_mem_port" --tm-pid="$tm_mem_pid" \
  --tm-file-port="$tm_file_port" --redis-port="$redis_plain_port" --redis-pid="$redis_plain_pid" \
  --redis-aof-port="$redis_aof_port"
