#!/usr/bin/env bash
# Runs holder_bench: N simultaneously started license holders against one real tokenmgr, on
# 127.0.0.1 only, each N next to its lower bound (N x one critical section measured in the same
# run, on the same tokenmgr and the same pool), plus the critical section on pools of 100 and
# 5,000 licenses and the holders' resident memory. Prints a Markdown table at the end.
# Usage: bench/holder_run.sh [--quick]
#   full:    100 and 500 license-holder processes, 5,000 simulated holders (a few minutes)
#   --quick: 50 processes, 500 simulated holders (< 60 s; CI runs this so it does not rot)
# Binaries come from $LM_BUILD_DIR (default build/release): src/bin/tokenmgr,
# src/bin/license-holder and bench/holder_bench. SETTLE_MS (default 100) is the holders' settle,
# HEARTBEAT_S (default 10, the product default; 1 with --quick) their heartbeat.
# "Simultaneously started": the holders start behind a barrier (processes: the tokenmgr is
# SIGSTOPped until all N first lock requests wait in its accept queue; simulated: a gate in the
# driver's client until all N have chosen their candidates). Time counts from the barrier;
# spawning and start-up are printed apart, as is the time from the first fork.
# LM_STATIC_HOLDER=path/to/a/static/license-holder adds a memory row for that binary (20 processes;
# the container image ships the static build).
# STORE=etcd runs it all on a tokenmgr on STORE=etcd (its defaults) backed by a one-member etcd
# this script starts on a free 127.0.0.1 port with its data dir under its temp dir (etcd and
# etcdctl from PATH); the critical section, and so the lower bound, is measured on that
# tokenmgr in the same run. Without STORE (or STORE=embedded): a memory-only tokenmgr.
# Everything lives in one temp dir on local disk; every process is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

store="${STORE:-embedded}"
case "$store" in
  embedded|etcd) ;;
  *) echo "bench: STORE must be 'embedded' or 'etcd', not '$store'" >&2; exit 2 ;;
esac
bench_driver=holder_bench
# shellcheck source=bench/lib.sh
source bench/lib.sh "$@"
holder="$(realpath -m "$build/src/bin/license-holder")"
require_binaries "$holder"

settle="${SETTLE_MS:-100}"
# Full runs use the product's default heartbeat (10 s); --quick uses 1 s, because the memory row
# waits two heartbeats after the last holder is licensed.
if [ "$quick" = 1 ]; then heartbeat="${HEARTBEAT_S:-1}"; else heartbeat="${HEARTBEAT_S:-10}"; fi
# Worker threads stepping the simulated agents. A worker is busy for the whole settle (100 ms,
# really slept), so T workers claim at most T per settle: 64 capped the run at 640 claims/s, below
# the mutex's rate, and measured the thread pool. 1,024 leaves room for the ~100-150 agents
# settling at once plus a full mutex queue; one thread per agent (SIM_THREADS=N) collapsed at
# N = 5,000 on 2 cores (see docs/benchmarks.md).
sim_threads="${SIM_THREADS:-1024}"
if [ "$quick" = 1 ]; then
  procs_ns=(50); sim_ns=(500); cs_runs=15; timeout=40
else
  procs_ns=(100 500); sim_ns=(5000); cs_runs=100; timeout=300
fi

# 500 holder processes each need a few threads and descriptors; the simulated holders share one
# HTTP client per worker thread (about 4 descriptors each: epoll, eventfd, timerfd, socket), and
# tokenmgr holds the other ends. Root may raise the hard limit too; where it cannot (this sandbox:
# 20,000, EPERM), the soft limit goes to the hard one.
want_files=65536
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_files" ]; then
  ulimit -Hn "$want_files" 2>/dev/null || true
  ulimit -n "$want_files" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "bench: open-file limit $(ulimit -n), process limit $(ulimit -u)" >&2

# $work (lib.sh) is in /tmp, on local disk here (ext4): the pool lives there.
# Host dirs stand for each node's own disk: on a real cluster they never share a filesystem (or its
# journal and fsyncs) with the pool. Here they go to tmpfs when there is one, so 5,000 installs do
# not slow the pool's fsyncs under the mutex; HOSTS_ROOT overrides.
hosts_root="${HOSTS_ROOT:-/dev/shm}"
[ -d "$hosts_root" ] && [ -w "$hosts_root" ] || hosts_root=/tmp
hosts="$(mktemp -d "$hosts_root/lm-hbench-hosts.XXXXXX")"
cleanup_dirs+=("$hosts")

# The start barrier of `holder_bench procs` stops tokenmgr (SIGSTOP) while N holders spawn (a few
# seconds at N = 500). On STORE=etcd its session lease (5 s, renewed every ~1.7 s) would expire
# meanwhile, and every holder queued at the barrier would get 503 "lost the etcd session" at the
# start (measured: a 3 s stop, all granted; an 8 s stop, all 503). That is the barrier's doing, not
# the store's: while tokenmgr is stopped, this renews its leases as tokenmgr would (etcdctl, once
# a second), except a lease a lock key is bound to (that would stretch a held lock; none is held
# at the barrier); while it runs, it only reads the process state (5 times a second, no process
# started).
etcd_prefix=/bench/holders/
keep_leases_while_stopped() {  # tokenmgr's pid; runs until that process is gone
  local state id keys
  while read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null; do
    if [ "$state" != T ]; then sleep 0.2; continue; fi
    for id in $(etcdctl --endpoints="$endpoints" lease list 2>/dev/null | sed 1d); do
      keys="$(etcdctl --endpoints="$endpoints" lease timetolive --keys "$id" 2>/dev/null)" || continue
      [[ "$keys" == *"${etcd_prefix}lock/"* ]] && continue
      etcdctl --endpoints="$endpoints" lease keep-alive --once "$id" >/dev/null 2>&1 || true
    done
    sleep 1
  done
}

# One memory-only tokenmgr for the whole run (see docs/benchmarks.md for why not --state-file),
# or with STORE=etcd one on a one-member etcd.
if [ "$store" = etcd ]; then
  require_etcd
  start_cluster 1
  tm_max_connections=12000 start_tokenmgr tm --max-waiters 20000 --store etcd \
    --etcd-endpoints "$endpoints" --etcd-prefix "$etcd_prefix"
  await_tokenmgr_ready tm
  store_desc="STORE=etcd, one etcd member ($(etcd --version | head -1)) at $endpoints"
  keep_leases_while_stopped "$tm_pid" &
  pids+=("$!")
else
  tm_max_connections=12000 start_tokenmgr tm --max-waiters 20000
  store_desc="memory-only"
fi
port="$tm_port"

echo "bench: tokenmgr $("$tokenmgr" --version) ($store_desc) on 127.0.0.1:$port, $(nproc) CPUs," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), settle ${settle} ms," \
     "pool under $work ($(stat -f -c %T "$work")), host dirs under $hosts ($(stat -f -c %T "$hosts"))" >&2

results="$work/results"
: >"$results"
# Runs the driver in the background (so a signal reaches the trap) and keeps its RESULT line.
drive() {
  local rc=0
  "$driver" "$@" --tm-port="$port" >"$work/out" &
  local pid=$!
  pids+=("$pid")
  wait "$pid" || rc=$?
  tee -a "$results.log" <"$work/out"
  return "$rc"
}
mkpool() {  # size -> pool dir
  local dir="$work/pool-$1-$RANDOM"
  "$driver" mkpool --pool="$dir" --n="$1"
  # Flush the new pool (and earlier runs' deletions) now: otherwise the first claim fsyncs under
  # the mutex pay for writing back thousands of fresh files (ext4 commits them together).
  sync -f "$dir"
  echo "$dir"
}
field() {  # line key
  sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}
last_result() { grep '^RESULT' "$results.log" | tail -1; }

# 1. The critical section must not grow with the pool: 100 vs 5,000 licenses, the runs
# alternating between the two pools (the disk's fsync latency drifts several-fold within
# minutes here; alternating puts the drift on both).
pool_small="$(mkpool 100)"
pool_big="$(mkpool 5000)"
drive cs --pool="$pool_small" --pool2="$pool_big" --work="$hosts/cs-pools" --runs="$cs_runs" \
  --tag="cspools"
echo "cspool 100 $(grep '^RESULT mode=cs pool=100 ' "$results.log" | tail -1)" >>"$results"
echo "cspool 5000 $(grep '^RESULT mode=cs pool=5000 ' "$results.log" | tail -1)" >>"$results"
rm -rf "$pool_small" "$pool_big"

# 2. N holders, each N next to N x the critical section measured just before on its pool.
status=0
run_n() {  # procs|sim N
  local how=$1 n=$2 pool
  pool="$(mkpool "$n")"
  drive cs --pool="$pool" --work="$hosts/cs-run-$how-$n" --runs="$cs_runs" --tag="pre$how$n"
  echo "cs $how $n $(last_result)" >>"$results"
  if [ "$how" = procs ]; then
    drive procs --pool="$pool" --work="$work/run-$how-$n" --hosts="$hosts/$how-$n" --n="$n" \
      --holder="$holder" --settle-ms="$settle" --heartbeat-s="$heartbeat" --timeout-s="$timeout" \
      --tm-pid="$tm_pid" || status=1
  else
    drive sim --pool="$pool" --work="$work/run-$how-$n" --hosts="$hosts/$how-$n" --n="$n" \
      --threads="$sim_threads" --settle-ms="$settle" --heartbeat-s="$heartbeat" \
      --timeout-s="$timeout" || status=1
  fi
  echo "run $how $n $(last_result)" >>"$results"
  echo "bench: load average after $how $n: $(cut -d' ' -f1-3 /proc/loadavg), ${SECONDS}s since start" >&2
  rm -rf "$pool" "$work/run-$how-$n" "$hosts/$how-$n"
}
for n in "${procs_ns[@]}"; do run_n procs "$n"; done
for n in "${sim_ns[@]}"; do run_n sim "$n"; done
if [ -n "${LM_STATIC_HOLDER:-}" ]; then
  pool="$(mkpool 20)"
  drive procs --pool="$pool" --work="$work/run-static" --hosts="$hosts/static" --n=20 --holder="$(realpath "$LM_STATIC_HOLDER")" \
    --settle-ms="$settle" --heartbeat-s="$heartbeat" --timeout-s="$timeout" || status=1
  echo "static procs 20 $(last_result)" >>"$results"
fi

# 3. The table.
echo
if [ "$store" = etcd ]; then
  echo "Store: tokenmgr on $store_desc (critical section and runs measured on it)."
  echo
fi
echo "| Measurement | N | result | lower bound (N x critical section) | ratio | target | verdict | lower bound + one settle | ratio to that |"
echo "|---|---:|---:|---:|---:|---|---|---:|---:|"
while read -r kind how n rest; do
  [ "$kind" = run ] || continue
  cs_line="$(grep "^cs $how $n " "$results")"
  cs_us="$(field "$cs_line" cs_mean_us)"
  total="$(field "$rest" total_ms)"
  unl="$(field "$rest" unlicensed)"
  probs="$(field "$rest" problems)"
  lb_ms="$(awk -v n="$n" -v c="$cs_us" 'BEGIN{printf "%.0f", n*c/1000}')"
  ratio="$(awk -v t="$total" -v l="$lb_ms" 'BEGIN{printf "%.2f", t/l}')"
  ok="$(awk -v r="$ratio" 'BEGIN{print (r<=2.0)?"met":"**NOT met**"}')"
  if [ "$unl" != 0 ] || [ "$probs" != 0 ]; then ok="**FAILED** ($unl unlicensed, $probs problems)"; fi
  # Every holder waits one settle after its claim before it installs; the last one's settle
  # cannot overlap anything, so N x CS + settle is the bound for this protocol.
  lbs_ms="$(awk -v l="$lb_ms" -v s="$settle" 'BEGIN{printf "%.0f", l+s}')"
  ratio_s="$(awk -v t="$total" -v l="$lbs_ms" 'BEGIN{printf "%.2f", t/l}')"
  if [ "$how" = procs ]; then
    what="$n license-holder processes: time from the start barrier until all hold distinct licenses, ms (settle $settle ms, heartbeat $heartbeat s; before the barrier: spawning $(field "$rest" spawn_ms) ms, then $(field "$rest" barrier_ms) ms until $(field "$rest" queued) lock requests were queued; $(field "$rest" from_fork_ms) ms from the first fork)"
  else
    what="$n simulated holders ($(field "$rest" threads) threads, one process): time from the start gate until all hold distinct licenses, ms (settle $settle ms, heartbeat $heartbeat s; start-up and candidate choice before the gate $(field "$rest" prep_ms) ms; $(field "$rest" grants) grants, $(field "$rest" wasted_grants) without a claim)"
  fi
  echo "| $what | $n | $total | $lb_ms (${cs_us} us x $n) | $ratio | <= 2x | $ok | $lbs_ms | $ratio_s |"
  # The same run, counted until the last claim record was written under the mutex (claimed_at_ms
  # in the pool's lockedby files, wall clock of this one machine): every license marked held by
  # a distinct node, before the settle and the install that follow outside the mutex.
  claimed="$(field "$rest" claimed_ms)"
  c_ratio="$(awk -v t="$claimed" -v l="$lb_ms" 'BEGIN{printf "%.2f", t/l}')"
  c_ok="$(awk -v r="$c_ratio" 'BEGIN{print (r<=2.0)?"met":"**NOT met**"}')"
  if [ "$unl" != 0 ] || [ "$probs" != 0 ]; then c_ok="**FAILED**"; fi
  echo "| ... same run: time until the last license was marked held (claim written under the mutex) | $n | $claimed | $lb_ms | $c_ratio | <= 2x | $c_ok | - | - |"
done <"$results"
cs100="$(field "$(grep '^cspool 100 ' "$results")" cs_p50_us)"
cs5000="$(field "$(grep '^cspool 5000 ' "$results")" cs_p50_us)"
growth="$(awk -v a="$cs100" -v b="$cs5000" 'BEGIN{printf "%.2f", b/a}')"
grow_ok="$(awk -v g="$growth" 'BEGIN{print (g<=1.5)?"met (no growth beyond noise)":"**NOT met**"}')"
echo "| Critical section, pool of 100 vs pool of 5,000 (median of $cs_runs uncontended runs each, alternating between the pools, us) | - | $cs100 / $cs5000 | - | $growth | does not grow with the pool | $grow_ok | - | - |"
while read -r kind how n rest; do
  [ "$how" = procs ] || continue
  case "$kind" in
    run) which="license-holder ($build)" ;;
    static) which="static license-holder ($LM_STATIC_HOLDER)" ;;
    *) continue ;;
  esac
  rss="$(field "$rest" rss_median_mib)"; rmax="$(field "$rest" rss_max_mib)"
  rss_ok="$(awk -v r="$rmax" 'BEGIN{print (r<5.0)?"met":"**NOT met**"}')"
  echo "| VmRSS of a $which holding a license, MiB (median / max of $n processes; median RssAnon $(field "$rest" rss_anon_mib), RssFile $(field "$rest" rss_file_mib)) | $n | $rss / $rmax | - | - | < 5 MiB | $rss_ok | - | - |"
done <"$results"
echo
echo "bench: done, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
exit "$status"
