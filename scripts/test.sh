#!/usr/bin/env bash
# Installs, builds and runs every test of dpv2. Tests that need root, BPF or
# network namespaces run when privileged; under CI=true they must run (a skip
# is a failure there).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
set +e
meson test -C build --print-errorlogs --num-processes 2
rc=$?
set -e
python3 scripts/test_summary.py build/meson-logs/testlog.json || rc=1
exit $rc
