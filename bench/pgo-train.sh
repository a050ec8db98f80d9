#!/usr/bin/env bash
# The training run of a profile-guided build (scripts/build-pgo.sh): drives the (instrumented)
# tokenmgr of $LM_BUILD_DIR (default build/release) on 127.0.0.1 with the work it is optimized
# for, then stops it with SIGTERM so that it writes its profile. lock_bench is the load.
# Usage: LM_BUILD_DIR=build/release-pgo bench/pgo-train.sh
# Work: 1-client lock+release cycles (memory-only, then with a state file), 50 contending
# clients, and the read-only endpoints once each (text logs, the default).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] || { echo "usage: [LM_BUILD_DIR=dir] $0" >&2; exit 2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh  # $tokenmgr, $driver, $work, start_tokenmgr; stops what it started at exit

train() {  # seconds of 1-client cycles, a name, then extra tokenmgr flags
  local seconds=$1; shift
  start_tokenmgr "$@"
  "$driver" --cycles --tm-port="$tm_port" --clients=1 --seconds="$seconds" --warmup=0.2
  "$driver" --cycles --tm-port="$tm_port" --clients=50 --seconds=1 --warmup=0.2
  python3 - "$tm_port" <<'EOF'
import socket, sys
port = int(sys.argv[1])
for path in ["/api/token/status", "/api/stats", "/metrics", "/healthz", "/readyz",
             "/html/tmpl/index", "/api/token/lock/x", "/api/token/release/nope", "/nope"]:
    method = "POST" if "release" in path else "GET"
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        while s.recv(65536):
            pass
EOF
  kill -TERM "$tm_pid"
  local rc=0
  wait "$tm_pid" || rc=$?
  [ "$rc" -eq 0 ] || { echo "pgo-train: tokenmgr exited with $rc" >&2; exit 1; }
}

train 3 memory
train 1 file --state-file "$work/file/state.json"
echo "pgo-train: done" >&2
