#!/usr/bin/env bash
# The training run of a profile-guided build (scripts/build-pgo.sh): drives an instrumented
# tokenmgr on 127.0.0.1 with the work it is optimized for, then stops it with SIGTERM so that
# it writes its profile. Usage: bench/pgo-train.sh TOKENMGR LOCK_BENCH
# Work: 1-client lock+release cycles (memory-only, then with a state file), 50 contending
# clients, and the read-only endpoints once each (text logs, the default).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TOKENMGR LOCK_BENCH" >&2; exit 2; }
tokenmgr=$1 driver=$2
for bin in "$tokenmgr" "$driver"; do
  [ -x "$bin" ] || { echo "pgo-train: $bin is not an executable" >&2; exit 2; }
done
work="$(mktemp -d /tmp/lm-pgo.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

train() {  # extra tokenmgr flags...
  rm -f "$work/port"
  "$tokenmgr" --bind-address 127.0.0.1 --listen-port 0 --port-file "$work/port" \
    --max-wait 60 "$@" 2>>"$work/tokenmgr.log" &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
  [ -s "$work/port" ] || { echo "pgo-train: tokenmgr did not start" >&2; cat "$work/tokenmgr.log" >&2; exit 1; }
  local port; port=$(cat "$work/port")
  "$driver" --cycles --tm-port="$port" --clients=1 --seconds="${SECONDS_1:-3}" --warmup=0.2
  "$driver" --cycles --tm-port="$port" --clients=50 --seconds=1 --warmup=0.2
  python3 - "$port" <<'EOF'
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
  kill -TERM "$pid"
  local rc=0; wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { echo "pgo-train: tokenmgr exited with $rc" >&2; exit 1; }
  pid=""
}

train
SECONDS_1=1 train --state-file "$work/state.json"
echo "pgo-train: done" >&2
