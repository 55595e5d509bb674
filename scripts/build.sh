#!/usr/bin/env bash
# Configures and builds dpv2 into the folder given (default: build), with every
# backend enabled: a missing dependency is an error here, not a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" -Debpf=enabled -Ddpdk=enabled -Dagent=enabled
fi
ninja -C "$dir"
