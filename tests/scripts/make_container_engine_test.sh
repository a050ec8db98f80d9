#!/usr/bin/env bash
# Regression test for issue 15 item 17: `make` on a machine without podman or docker must stop
# before building anything, exit non-zero and say how to install one; with either on PATH it
# uses it. Runs `make -n` or stops at parse time, so it builds nothing and needs no root.
# PATH is rebuilt from the current one as symlinks, minus podman and docker, with a cmake that
# only records that it was called.
# Usage: tests/scripts/make_container_engine_test.sh   (prints "N passed, M failed"; exit 1 on failure)
set -euo pipefail
cd "$(dirname "$0")/../.."
make_bin=$(command -v make)
work=$(mktemp -d /tmp/lm-make-engine.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A PATH with every command of the current one except the container engines.
mkdir -p "$work/bin" "$work/fake"
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do  # earlier directories win, as on PATH (ln does not overwrite)
  [ -d "$d" ] && ln -s "$d"/* "$work/bin/" 2>/dev/null || true
done
rm -f "$work/bin/podman" "$work/bin/docker" "$work/bin/cmake"
# cmake records that it was called and fails, so a Makefile that would build first builds nothing.
printf '#!/bin/sh\ntouch "%s/cmake-called"\nexit 1\n' "$work" >"$work/bin/cmake"
chmod +x "$work/bin/cmake"
no_engine_path="$work/bin"
printf '#!/bin/sh\nexit 0\n' >"$work/fake/docker"
chmod +x "$work/fake/docker"

passed=0
failed=0
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then echo "ok - $what"; passed=$((passed + 1)); else echo "FAIL - $what"; failed=$((failed + 1)); fi
}
run_make() {  # run_make PATH args... -> sets out, rc
  local path=$1
  shift
  rc=0
  out=$(env -u DOCKER PATH="$path" "$make_bin" --no-print-directory BUILD_DIR="$work/build" "$@" 2>&1) || rc=$?
}
says() { grep -qF -- "$1" <<<"$out"; }
built_nothing() { [ ! -e "$work/cmake-called" ] && [ ! -e "$work/build" ]; }

for goal in "" images tcontainer fdcontainer sizes; do
  run_make "$no_engine_path" $goal
  check "make $goal without podman/docker exits non-zero" test "$rc" -ne 0
  check "make $goal names both engines" says "neither podman nor docker"
  check "make $goal says how to install one" says "scripts/install-deps.sh --with-images"
  check "make $goal built nothing" built_nothing
done

run_make "$no_engine_path" DOCKER=no-such-engine
check "DOCKER=no-such-engine exits non-zero" test "$rc" -ne 0
check "DOCKER=no-such-engine is named" says "DOCKER=no-such-engine: no such command"

run_make "$no_engine_path" -n binaries
check "make -n binaries needs no engine" test "$rc" -eq 0

run_make "$work/fake:$no_engine_path" -n images
check "make -n images with docker only: exit 0" test "$rc" -eq 0
check "make -n images with docker only uses docker" says "docker build"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
