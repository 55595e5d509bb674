#!/usr/bin/env bash
# Installs what dpv2 needs on Debian 12 (idempotent; runs apt-get only when
# something is missing). Needs root, or sudo.
set -euo pipefail

packages=(
  g++ pkg-config meson ninja-build python3
  libabsl-dev nlohmann-json3-dev libsimdjson-dev catch2 libyaml-cpp-dev libboost-dev libssl-dev
  libbenchmark-dev
  clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool linux-libc-dev
  dpdk-dev
  iproute2 iptables nftables ethtool
  gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
