# shellcheck shell=bash disable=SC2034  # sourced: mode, quick, first_port are for the scripts
# Shared by bench/run.sh, bench/etcd_run.sh, bench/etcd_long.sh and bench/holder_run.sh (sourced,
# not run): a temp work dir, servers started in the background and stopped by PID on exit,
# readiness polling, and etcd clusters on 127.0.0.1 (start_cluster).
# Source it with the script's arguments: it parses [--quick] into $mode (and $quick, 0 or 1) and
# checks the binaries ($tokenmgr and $driver = bench/$bench_driver, default lock_bench, from
# $LM_BUILD_DIR, default build/release; require_binaries checks more). A script with other
# arguments parses them itself and sources this with none (`set --` first).
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

await_tokenmgr_ready() {  # after start_tokenmgr NAME: polls /readyz (an etcd store has synced)
  await_ready "$tm_pid" "$work/$1/tokenmgr.log" \
    "curl -fsS http://127.0.0.1:$tm_port/readyz >/dev/null 2>&1"
}

require_etcd() {  # etcd and etcdctl on PATH, or exit 2
  local tool
  for tool in etcd etcdctl; do
    command -v "$tool" >/dev/null ||
      { echo "bench: $tool not installed (apt-get install etcd-server etcd-client)" >&2; exit 2; }
  done
}

start_cluster() {  # size, then extra etcd flags for every member; sets endpoints, first_port,
  # cluster_pids. Members on free 127.0.0.1 ports, data dirs under $work/etcd<size>/ (fsync on).
  local size=$1 initial="" i
  shift
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
      --initial-cluster "$initial" --initial-cluster-token "bench-$size" --log-level warn "$@" \
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

stop_pids() {  # pids: SIGTERM, then wait for each
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
