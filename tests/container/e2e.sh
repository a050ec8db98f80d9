#!/usr/bin/env bash
# Container end-to-end test (issue 5): the real images under podman, the way a cluster runs them.
# One tokenmgr container (its own state dir) and three flexdirect containers, each with its own
# host dir at /etc/bitfusionio and the shared pool at /mnt/bitfusionio, with the security options
# of the manifests (read-only root, no capabilities, no new privileges; tokenmgr as uid 65532).
# Checks: each node gets a distinct license and the right servers.conf; a holder stopped and
# started again keeps its license and host files; tokenmgr stopped and started again loses
# nothing (held lease, fencing token, holders' licenses); `license-holder release` via exec.
# The three holders reach tokenmgr by IP, by /etc/hosts, and by DNS through a Kubernetes-style
# resolv.conf (search domains, ndots:5), which exercises name resolution of the static binary.
#
# Usage: tests/container/e2e.sh              builds the images with `make` first
#        SKIP_BUILD=1 tests/container/e2e.sh  uses the images as they are
# Runs as root (podman, and UDP port 53 on a loopback address for the DNS stub); installs podman
# and runc with apt when they are missing. Until the license-holder target exists, only the
# tokenmgr part runs. Prints "N passed, M failed" last; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/container
VERSION=${VERSION:-1.0.0}
TOKENMGR_IMAGE=${TOKENMGR_IMAGE:-tokenmgr:$VERSION}
FLEXDIRECT_IMAGE=${FLEXDIRECT_IMAGE:-flexdirect:$VERSION}
BUILD_DIR=${BUILD_DIR:-build/static}
# runc: crun is not installed here; the fixed ulimits: the sandbox refuses the runtime's defaults.
RUN=(podman run --runtime runc --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
SECURE=(--read-only --cap-drop ALL --security-opt no-new-privileges)
HEARTBEAT=2
TTL=10

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
bad() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
note() { echo "# $*"; }

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  note "installing podman and runc"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc
fi

# --- images -----------------------------------------------------------------------------------
holder_built() {
  cmake --build "$BUILD_DIR" --target help 2>/dev/null | grep -q '^license-holder:'
}
with_holder=0
if [ -z "${SKIP_BUILD:-}" ]; then
  make --no-print-directory "$BUILD_DIR/build.ninja" >/dev/null
  if holder_built; then
    make --no-print-directory images
    with_holder=1
  else
    make --no-print-directory tcontainer
  fi
elif podman image exists "$FLEXDIRECT_IMAGE"; then
  with_holder=1
fi
[ "$with_holder" = 1 ] || note "license-holder is not built yet: only the tokenmgr part runs"

# --- fixtures ---------------------------------------------------------------------------------
work=$(mktemp -d /tmp/lm-container-e2e.XXXXXX)
prefix="lm-e2e-$$"
containers=()
dns_pid=""
cleanup() {
  local rc=$?
  if [ "${#containers[@]}" -gt 0 ]; then
    if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
      for c in "${containers[@]}"; do
        echo "--- logs of $(podman inspect --format '{{.Name}}' "$c" 2>/dev/null || echo "$c")"
        podman logs --tail 30 "$c" 2>&1 || true
      done
    fi
    podman rm -f -t 0 "${containers[@]}" >/dev/null 2>&1 || true
  fi
  if [ -n "$dns_pid" ]; then kill "$dns_pid" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" || true; }
wait_code() {  # wait_code URL CODE SECONDS
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(http_code "$1")" = "$2" ] && return 0
    sleep 0.5
  done
  return 1
}
json() {  # json FIELD < body
  python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$1"
}
rss_kib() {  # rss_kib CONTAINER: peak resident memory of its main process
  awk '/^VmHWM:/ {print $2}' "/proc/$(podman inspect --format '{{.State.Pid}}' "$1")/status"
}
stop_timed() {  # stop_timed CONTAINER -> sets stop_ms and stop_rc
  local t0
  t0=$(date +%s%N)
  podman stop -t 10 "$1" >/dev/null
  stop_ms=$((($(date +%s%N) - t0) / 1000000))
  stop_rc=$(podman inspect --format '{{.State.ExitCode}}' "$1")
}

# A sample pool as the seed lays it out: one license per directory, lic/host_id inside.
pool=$work/pool/bitfusionio
for n in 1 2 3 4 5; do
  mkdir -p "$pool/license$n/lic"
  printf 'HOSTID-%04d\n' "$n" >"$pool/license$n/lic/host_id"
  printf 'license file %d\n' "$n" >"$pool/license$n/lic/license.txt"
done
mkdir -p "$work/state"
chown 65532:65532 "$work/state"

# --- tokenmgr ---------------------------------------------------------------------------------
tm_port=$(free_port)
tm=http://127.0.0.1:$tm_port
tm_api=$tm/api/token
tm_id=$("${RUN[@]}" -d --name "$prefix-tokenmgr" --user 65532:65532 "${SECURE[@]}" \
  -e LISTENPORT="$tm_port" -e BIND_ADDRESS=127.0.0.1 -e LOCKDURATION=10 \
  -e STATE_FILE=/var/lib/tokenmgr/state.json -e POOL_DIR=/mnt/bitfusionio \
  -v "$work/state:/var/lib/tokenmgr" -v "$pool:/mnt/bitfusionio:ro" "$TOKENMGR_IMAGE")
containers+=("$tm_id")
check "tokenmgr container becomes ready as uid 65532 on a read-only root" \
  wait_code "$tm/readyz" 200 15
check "tokenmgr /healthz answers 200" test "$(http_code "$tm/healthz")" = 200
check "tokenmgr /metrics exports lock metrics" \
  bash -c "curl -s -m 5 '$tm/metrics' | grep -q '^tokenmgr_lock_grants_total '"
case "$(http_code "$tm/html/tmpl/index")" in
  200) ok "tokenmgr web page /html/tmpl/index is served" ;;
  404) note "SKIP web page: /html/tmpl/index is not served by this tokenmgr build" ;;
  *) bad "tokenmgr web page /html/tmpl/index" ;;
esac

# A lease taken before the restart must still be held after it, with the same fencing token.
grant=$(curl -s -m 5 "$tm_api/lock/0?ttl=600&holder=e2e-before-restart")
lease_id=$(json id <<<"$grant")
lease_token=$(json token <<<"$grant")
check "tokenmgr grants a lease" test -n "$lease_id"
stop_timed "$tm_id"
check "tokenmgr stops on SIGTERM within 2 s (${stop_ms} ms) with exit code 0 (got $stop_rc)" \
  test "$stop_ms" -lt 2500 -a "$stop_rc" = 0
check "tokenmgr state file is on the bind-mounted state dir" test -s "$work/state/state.json"
podman start "$tm_id" >/dev/null
check "tokenmgr is ready again after podman start" wait_code "$tm/readyz" 200 15
status=$(curl -s -m 5 "$tm_api/status")
check "after the restart the lease is still held by the same holder and token" \
  test "$(json held <<<"$status") $(json holder <<<"$status") $(json token <<<"$status")" \
  = "true e2e-before-restart $lease_token"
check "after the restart a second lock is refused (409) while the lease is held" \
  test "$(http_code "$tm_api/lock/0")" = 409
check "after the restart the old lease id releases it" \
  test "$(http_code -X POST "$tm_api/release/$lease_id")" = 200
rss=$(rss_kib "$tm_id")
check "tokenmgr's resident memory (${rss} KiB) is under its 16 MiB request" test "$rss" -lt 16384
grant2=$(curl -s -m 5 "$tm_api/lock/0?holder=e2e-after-restart")
check "the next fencing token is larger than the one before the restart" \
  test "$(json token <<<"$grant2")" -gt "$lease_token"
curl -s -m 5 -X POST "$tm_api/release/$(json id <<<"$grant2")" >/dev/null

# --- license holders --------------------------------------------------------------------------
if [ "$with_holder" = 1 ]; then
  # A DNS server for node3, answering only the Kubernetes service name of tokenmgr.
  dns_addr=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).53
  python3 "$here/dns_stub.py" "$dns_addr" tokenmgr.bitfusion.svc.cluster.local 127.0.0.1 \
    >"$work/dns.log" 2>&1 &
  dns_pid=$!
  printf 'search bitfusion.svc.cluster.local svc.cluster.local cluster.local\nnameserver %s\noptions ndots:5\n' \
    "$dns_addr" >"$work/resolv.conf"
  for _ in $(seq 20); do grep -q listening "$work/dns.log" && break; sleep 0.1; done
  if ! grep -q listening "$work/dns.log"; then
    note "DNS stub did not start ($(head -c 200 "$work/dns.log")); node3 uses /etc/hosts instead"
    dns_pid=""
  fi

  declare -A hport hid
  start_node() {  # start_node N [ARGS]: creates and starts the container of node N
    local n=$1 url name_opts=()
    shift
    case "$n" in
      1) url=$tm_api ;;
      3) url=http://tokenmgr.bitfusion:$tm_port/api/token
         if [ -n "$dns_pid" ]; then name_opts=(-v "$work/resolv.conf:/etc/resolv.conf:ro")
         else name_opts=(--add-host tokenmgr.bitfusion:127.0.0.1); fi ;;
      *) url=http://tokenmgr.bitfusion:$tm_port/api/token
         name_opts=(--add-host tokenmgr.bitfusion:127.0.0.1) ;;
    esac
    mkdir -p "$work/node$n"
    hport[$n]=${hport[$n]:-$(free_port)}
    hid[$n]=$("${RUN[@]}" -d --name "$prefix-node$n" --user 0:0 "${SECURE[@]}" "${name_opts[@]}" \
      -e NODE_NAME="node$n" -e POD_NAME="flexdirect-node$n" -e HEALTH_PORT="${hport[$n]}" \
      -e TOKENMGR_URL="$url" -e HEARTBEAT_SECONDS=$HEARTBEAT -e CLAIM_TTL_SECONDS=$TTL \
      -e GPUTYPES='K80_servers v100_servers' -e K80_servers_1=127.0.1.1:56001 \
      -e K80_servers_2=127.0.1.2:56001 -e v100_servers_1=127.0.2.1:53334 \
      -v "$work/node$n:/etc/bitfusionio" -v "$pool:/mnt/bitfusionio" "$@" "$FLEXDIRECT_IMAGE" \
      "${node_args[@]}")
    containers+=("${hid[$n]}")
  }
  node_ready() { wait_code "http://127.0.0.1:${hport[$1]}/readyz" 200 "${2:-60}"; }
  host_id() { cat "$work/node$1/lic/host_id" 2>/dev/null || true; }
  claimant() {  # claimant LICENSE_DIR: the node named by its lockedby, if any
    python3 - "$1/lockedby" <<'EOF'
import json, sys
try:
    print(json.load(open(sys.argv[1])).get("node", ""))
except Exception:
    print("")
EOF
  }
  license_of() {  # license_of N: the pool directory whose host_id node N has installed
    local d
    for d in "$pool"/license*; do
      [ "$(cat "$d/lic/host_id")" = "$(host_id "$1")" ] && { echo "$d"; return; }
    done
  }
  printf '### K80_servers.conf\n127.0.1.1:56001\n127.0.1.2:56001\n\n### v100_servers.conf\n127.0.2.1:53334\n\n' \
    >"$work/servers.conf.expected"

  node_args=()
  for n in 1 2 3; do start_node "$n"; done
  for n in 1 2 3; do
    check "node$n becomes ready (license installed, claim verified)" node_ready "$n"
  done
  ids=$(for n in 1 2 3; do host_id "$n"; done)
  check "each node has a license installed" test "$(grep -c HOSTID <<<"$ids")" = 3
  check "the three nodes hold three different licenses" \
    test "$(sort -u <<<"$ids" | grep -c HOSTID)" = 3
  for n in 1 2 3; do
    lic=$(license_of "$n")
    check "node$n's license is a copy of a pool license ($(basename "${lic:-none}"))" \
      bash -c "[ -n '$lic' ] && diff -r '$lic/lic' '$work/node$n/lic' >/dev/null"
    check "node$n's pool claim (lockedby) names node$n" test "$(claimant "$lic")" = "node$n"
    check "node$n's servers.conf is in the seed's format" \
      cmp -s "$work/servers.conf.expected" "$work/node$n/servers.conf"
    check "node$n's host dir holds no claim record" test ! -e "$work/node$n/lockedby"
    check "node$n serves /healthz and /metrics" bash -c \
      "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${hport[$n]}/healthz) = 200 ] &&
       [ -n \"\$(curl -s http://127.0.0.1:${hport[$n]}/metrics)\" ]"
  done
  if [ -n "$dns_pid" ]; then
    check "node3 resolved tokenmgr.bitfusion through DNS search domains (static binary)" \
      grep -q 'query tokenmgr.bitfusion.svc.cluster.local 1$' "$work/dns.log"
  fi

  for n in 1 2 3; do
    rss=$(rss_kib "${hid[$n]}")
    check "node$n's resident memory (${rss} KiB) is under its 16 MiB request" test "$rss" -lt 16384
  done

  # Stop and start a holder: same license, host files untouched.
  before_id=$(host_id 2)
  before_stat=$(stat -c '%i %Y' "$work/node2/lic/host_id")
  stop_timed "${hid[2]}"
  check "node2 stops on SIGTERM within 2 s (${stop_ms} ms) with exit code 0 (got $stop_rc)" \
    test "$stop_ms" -lt 2500 -a "$stop_rc" = 0
  check "node2's license stays installed while its container is stopped" \
    test "$(host_id 2)" = "$before_id"
  podman start "${hid[2]}" >/dev/null
  check "node2 is ready again after podman start" node_ready 2
  check "node2 keeps the same license after the restart" test "$(host_id 2)" = "$before_id"
  check "node2's installed files were not rewritten by the restart" \
    test "$(stat -c '%i %Y' "$work/node2/lic/host_id")" = "$before_stat"

  # Stop and start tokenmgr under running holders: nothing is lost.
  before_ids=$ids
  stop_timed "$tm_id"
  sleep $((HEARTBEAT * 2))
  podman start "$tm_id" >/dev/null
  check "tokenmgr is ready again after a second restart" wait_code "$tm/readyz" 200 15
  sleep $((HEARTBEAT * 2))
  for n in 1 2 3; do
    check "node$n is still ready after the tokenmgr restart" node_ready "$n" 15
  done
  check "no node's license changed across the tokenmgr restart" \
    test "$(for n in 1 2 3; do host_id "$n"; done)" = "$before_ids"

  # Decommission path: release node1 through exec, then a new node can take a license.
  lic1=$(license_of 1)
  check "license-holder release via podman exec succeeds" \
    podman exec "${hid[1]}" /license-holder release
  check "after release node1's host dir no longer holds a license" \
    test ! -e "$work/node1/lic/host_id"
  check "after release node1's pool license is not claimed by node1" \
    test "$(claimant "$lic1")" != node1
  # node4 runs the seed's DaemonSet command, ["/start", "daemonset"].
  node_args=(daemonset)
  start_node 4 --entrypoint /start
  check "a fourth node started with the seed's /start daemonset gets a license" node_ready 4
  ids4=$(for n in 2 3 4; do host_id "$n"; done)
  check "nodes 2, 3 and 4 hold three different licenses" \
    test "$(sort -u <<<"$ids4" | grep -c HOSTID)" = 3
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
