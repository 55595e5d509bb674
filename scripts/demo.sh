#!/usr/bin/env bash
# Installs, builds and runs the dpv2 demo: example Services from examples/
# loaded into the dataplane, packets pushed through, and what happened to each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
./build/examples/demo/dpv2-demo examples/demo/cluster.yaml
