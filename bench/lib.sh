# Shared by bench/run.sh and bench/etcd_run.sh (sourced, not run): a temp work dir, servers
# started in the background and stopped by PID on exit, and readiness polling.
# Source it with the script's arguments: it parses [--quick] into $mode and checks the binaries
# ($tokenmgr, $driver = lock_bench, from $LM_BUILD_DIR, default build/release).

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

start_tokenmgr() {  # name, then extra tokenmgr flags; sets tm_port/tm_pid
  local dir="$work/$1"; shift
  mkdir -p "$dir"
  "$tokenmgr" --bind-address 127.0.0.1 --listen-port 0 --port-file "$dir/port" \
    --max-wait 60 --max-connections 4096 "$@" 2>"$dir/tokenmgr.log" >&2 &
  tm_pid=$!
  pids+=("$tm_pid")
  await_ready "$tm_pid" "$dir/tokenmgr.log" "test -s $dir/port"
  tm_port="$(cat "$dir/port")"
}
