#!/usr/bin/env bash
# Installs, builds and runs the dpv2 demo. As root with BPF: a one-node
# cluster in network namespaces (examples/demo/netns-cluster.yaml) with
# dpv2-agent on the eBPF backend in the node's namespace, real TCP
# connections, flows from dpv2ctl observe and the agent's policy log lines,
# removed at the end. Otherwise the same story on the sim backend
# (examples/demo/cluster.yaml), packets pushed through in process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
netns_demo=./build/examples/demo/dpv2-netns-demo
if [ -x "$netns_demo" ]; then
  rc=0
  "$netns_demo" examples/demo/netns-cluster.yaml \
    --agent=./build/examples/agent/dpv2-agent --dpv2ctl=./build/examples/dpv2ctl/dpv2ctl || rc=$?
  # 77: not privileged for namespaces or BPF (the program said why).
  if [ "$rc" -ne 77 ]; then
    exit "$rc"
  fi
fi
echo "demo: no root/BPF here (or no eBPF build): the same story on the sim backend instead"
echo
./build/examples/demo/dpv2-demo examples/demo/cluster.yaml
