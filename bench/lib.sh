# Shared by bench/run.sh, bench/etcd_run.sh and bench/holder_run.sh (sourced, not run): a temp
# work dir, servers started in the background and stopped by PID on exit, and readiness polling.
# Source it with the script's arguments: it parses [--quick] into $mode (and $quick, 0 or 1) and
# checks the binaries ($tokenmgr and $driver = bench/$bench_driver, default lock_bench, from
# $LM_BUILD_DIR, default build/release; require_binaries checks more).
# Set before sourcing: bench_driver (the driver's name). After: cleanup_dirs+=(dir) removes dir on
# exit too.

mode=()
quick=0
case "${1:-}" in
  --quick) mode=(--quick); quick=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

build="${LM_BUILD_DIR:-build/release}"
tokenmgr="$build/src/bin/tokenmgr"
driver="$build/bench/${bench_driver:-lock_bench}"
require_binaries() {  # paths: exits 2 naming the first one missing
  local bin
  for bin in "$@"; do
    if [ ! -x "$bin" ]; then
      echo "bench: $bin not found; build first, e.g. cmake --preset release &&" \
           "cmake --build --preset release (needs libhiredis-dev for lock_bench)" >&2
      exit 2
    fi
  done
}
require_binaries "$tokenmgr" "$driver"

work="$(mktemp -d /tmp/lm-bench.XXXXXX)"
pids=()
cleanup_dirs=()
cleanup() {
  # A process stopped by a start barrier (holder_run.sh's tokenmgr) would not end on SIGTERM.
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work" "${cleanup_dirs[@]}"
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

start_tokenmgr() {  # name, then extra tokenmgr flags; sets tm_port/tm_pid
  # tm_max_connections (default 4096) sets --max-connections.
  local dir="$work/$1"; shift
  mkdir -p "$dir"
  "$tokenmgr" --bind-address 127.0.0.1 --listen-port 0 --port-file "$dir/port" \
    --max-wait 60 --max-connections "${tm_max_connections:-4096}" "$@" \
    2>"$dir/tokenmgr.log" >&2 &
  tm_pid=$!
  pids+=("$tm_pid")
  await_ready "$tm_pid" "$dir/tokenmgr.log" "test -s $dir/port"
  tm_port="$(cat "$dir/port")"
}
