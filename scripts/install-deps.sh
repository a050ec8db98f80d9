#!/usr/bin/env bash
# Installs everything needed to build, test and benchmark this project on Debian 12 (as root).
# Usage: scripts/install-deps.sh [--with-test-tools]
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
pkgs=(
  build-essential cmake ninja-build pkg-config curl ca-certificates bc
  libboost1.81-dev libboost-json1.81-dev libssl-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev python3 python3-pytest
)
if [ "${1:-}" = "--with-test-tools" ]; then
  pkgs+=(prometheus redis-server libhiredis-dev etcd-server etcd-client openssl clang clang-format
         libclang-rt-14-dev python3 spin)
fi
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
