#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a fixed time.
#   fuzz/run.sh [seconds-per-target] [target ...]     (default: 20 s, all targets)
# Env: BUILD_DIR (default build/fuzz), WORK_DIR (default: a temp dir; new corpus entries and
# crash artifacts go there, the checked-in seeds are only read), JOBS (build parallelism).
# Exits non-zero if a target crashes, leaks, hangs or fails to build. Prints one summary line
# per target: runs, seconds, corpus size, result.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-20}
shift || true
BUILD_DIR=${BUILD_DIR:-build/fuzz}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/lm-fuzz.XXXXXX)}
ALL=(http_server_fuzzer http_codec_fuzzer query_fuzzer claim_fuzzer state_file_fuzzer manifest_fuzzer
     servers_conf_fuzzer lock_response_fuzzer http_url_fuzzer etcd_record_fuzzer etcd_proto_fuzzer
     console_fuzzer)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

command -v clang++ >/dev/null || { echo "fuzz/run.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
if [ ! -f "$BUILD_DIR/build.ninja" ] && [ ! -f "$BUILD_DIR/Makefile" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLM_FUZZ=ON -DLM_BUILD_TESTS=OFF -DLM_BUILD_BENCH=OFF -DCMAKE_UNITY_BUILD=ON \
    -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 >/dev/null
fi
cmake --build "$BUILD_DIR" --target fuzzers -j "${JOBS:-2}"

failed=0
printf '%-22s %10s %6s %8s  %s\n' target runs secs corpus result
for t in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/fuzz/$t"
  mkdir -p "$WORK_DIR/corpus/$t" "$WORK_DIR/artifacts"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  log="$WORK_DIR/$t.log"
  set +e
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 "${dict[@]}" -artifact_prefix="$WORK_DIR/artifacts/$t-" \
    "$WORK_DIR/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$WORK_DIR/corpus/$t" | wc -l)
  if [ $rc -eq 0 ]; then result=ok; else result="FAILED (rc $rc, log $log)"; failed=1; fi
  printf '%-22s %10s %6s %8s  %s\n' "$t" "${runs:-?}" "${SECONDS_PER_TARGET}" "$corpus" "$result (${secs:-?}/s)"
  if [ $rc -ne 0 ]; then
    grep -E "ERROR|SUMMARY|property violated|http_server_fuzzer:|Test unit written" "$log" | head -8 >&2 || true
  fi
done
echo "work dir: $WORK_DIR"
exit $failed
