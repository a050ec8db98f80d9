#!/usr/bin/env bash
# Installs everything needed to build, test and benchmark this project on Debian 12 (as root, or
# through sudo).
# Usage: scripts/install-deps.sh [--with-test-tools] [--with-images]
#   (no option)        what building the binaries and running the unit and e2e tests needs
#   --with-test-tools  also Prometheus, Redis, etcd, clang, spin, ... (benchmarks, fuzzing, CI)
#   --with-images      also what `make` (the two images) and tests/container/e2e.sh need:
#                      podman (builds and runs the images; `make` uses docker when podman is
#                      absent), runc (the runtime e2e.sh asks for), git (the images' labels), curl
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
pkgs=(
  build-essential cmake ninja-build pkg-config curl ca-certificates bc
  libboost1.81-dev libssl-dev libnghttp2-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev python3 python3-pytest
)
for option in "$@"; do
  case "$option" in
    --with-test-tools)
      pkgs+=(prometheus redis-server libhiredis-dev etcd-server etcd-client openssl clang clang-format
             libclang-rt-14-dev python3 spin iptables iproute2 e2fsprogs) ;;
    --with-images) pkgs+=(podman runc git curl) ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$option' (see --help)" >&2; exit 2 ;;
  esac
done
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
