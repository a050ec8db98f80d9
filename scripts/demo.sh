#!/usr/bin/env bash
# The local demo: installs dependencies, builds, then runs tokenmgr and several simulated nodes
# (license-holder processes, each with its own host dir) on a generated sample pool, and prints
# which node got which license, what happens when a node dies, and the web page address.
# Usage: scripts/demo.sh [--keep-running]     Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep-running" ] && keep=1

scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target tokenmgr license-holder | grep -v "^\[" || true
bin=build/release/src/bin

work=$(mktemp -d /tmp/license-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

nodes=4
licenses=3
echo "== sample pool: $licenses licenses for $nodes nodes in $work/pool"
for i in $(seq 1 $licenses); do
  mkdir -p "$work/pool/license$i/lic"
  echo "HOSTID-license$i" > "$work/pool/license$i/lic/host_id"
done

CLAIM_TTL_SECONDS=5 "$bin/tokenmgr" --bind-address 127.0.0.1 --listen-port 0 --port-file "$work/tokenmgr.port" \
  --state-file "$work/tokenmgr.state" --pool-dir "$work/pool" >"$work/tokenmgr.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/tokenmgr.port" ] && break; sleep 0.1; done
port=$(cat "$work/tokenmgr.port")
echo "== tokenmgr on http://127.0.0.1:$port (web page: http://127.0.0.1:$port/html/tmpl/index)"

declare -A holder_pid
start_node() {
  local n=$1
  mkdir -p "$work/node$n/etc-bitfusionio"
  NODE_NAME="node$n" POD_NAME="flexdirect-node$n" POOL_DIR="$work/pool" \
  HOST_DIR="$work/node$n/etc-bitfusionio" TOKENMGR_URL="http://127.0.0.1:$port/api/token" \
  HEARTBEAT_SECONDS=1 CLAIM_TTL_SECONDS=5 HEALTH_PORT=0 HEALTH_BIND=127.0.0.1 \
  GPUTYPES="K80_servers" K80_servers_1="10.0.0.1:56001" K80_servers_2="10.0.0.2:56001" \
    "$bin/license-holder" --port-file "$work/node$n.port" >"$work/node$n.log" 2>&1 &
  holder_pid[$n]=$!
  pids+=($!)
}
show() {
  for n in $(seq 1 $nodes); do
    local lic; lic=$(cat "$work/node$n/etc-bitfusionio/lic/host_id" 2>/dev/null || echo "-")
    local state="running"; kill -0 "${holder_pid[$n]}" 2>/dev/null || state="dead"
    printf "   node%-2s %-8s license: %s\n" "$n" "$state" "$lic"
  done
}
wait_licensed() {  # until $1 nodes have a license installed
  for _ in $(seq 1 200); do
    local c=0
    for n in $(seq 1 $nodes); do [ -s "$work/node$n/etc-bitfusionio/lic/host_id" ] && c=$((c+1)); done
    [ "$c" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

for n in $(seq 1 $nodes); do start_node "$n"; done
wait_licensed $licenses
sleep 1.5  # let the fourth node report "no license available" once
echo "== $nodes nodes started; $licenses licenses: one node waits (stays up, not ready)"
show
echo "== servers.conf on node1:"; sed 's/^/   /' "$work/node1/etc-bitfusionio/servers.conf"
echo "== lock status:"; curl -s "http://127.0.0.1:$port/api/token/status"; echo

victim=""
for n in $(seq 1 $nodes); do [ -s "$work/node$n/etc-bitfusionio/lic/host_id" ] && { victim=$n; break; }; done
echo "== kill -9 node$victim; its license goes to the waiting node after the claim TTL (5 s) + a heartbeat"
kill -9 "${holder_pid[$victim]}"
wait "${holder_pid[$victim]}" 2>/dev/null || true
rm -rf "$work/node$victim/etc-bitfusionio"   # the dead node's disk is gone with it
start=$(date +%s.%N)
wait_licensed $licenses
printf "   reassigned after %.1f s\n" "$(echo "$(date +%s.%N) - $start" | bc)"
show
echo "== pool as tokenmgr sees it:"; curl -s "http://127.0.0.1:$port/api/licenses" | head -c 600; echo
if [ "$keep" = 1 ]; then
  echo "== running; open http://127.0.0.1:$port/html/tmpl/index  (Ctrl-C to stop)"
  wait
fi
echo "== stopping (SIGTERM keeps claims; see docs/operations.md for 'license-holder release')"
