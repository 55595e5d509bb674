#include "agent/daemon/agent_flags.h"

#include <catch2/catch.hpp>

namespace dpv2::agent::daemon {
namespace {

std::string ErrorOf(const std::vector<std::string>& args) {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags(args);
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(f.status().message());
}

TEST_CASE("the README demo's flags parse into the agent's options") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags(
      {"--backend=ebpf", "--node", "node-a", "--manifests=examples/manifests",
       "--bpffs=/sys/fs/bpf/dpv2", "--external-interface=eth0", "--xdp",
       "--control-socket=/tmp/a.sock", "--policy-log=/tmp/p.log",
       "--metrics-address=127.0.0.1:9990", "--healthz-address=[::1]:10256",
       "--log-format=json"});
  REQUIRE(f.ok());
  CHECK(f->backend == BackendKind::kEbpf);
  CHECK(f->node == "node-a");
  CHECK(f->manifests == "examples/manifests");
  CHECK(f->bpffs == "/sys/fs/bpf/dpv2");
  CHECK(f->external_interface == "eth0");
  CHECK(f->xdp);
  CHECK(f->control_socket == "/tmp/a.sock");
  CHECK(f->policy_log == "/tmp/p.log");
  CHECK(f->metrics_address == "127.0.0.1:9990");
  CHECK(f->healthz_address == "[::1]:10256");
  CHECK(f->log_format == LogFormat::kJson);
  CHECK_FALSE(f->once);
}

TEST_CASE("defaults: sim backend, the hostname as node, kube-proxy's health port") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags({"--in-cluster"});
  REQUIRE(f.ok());
  CHECK(f->backend == BackendKind::kSim);
  CHECK_FALSE(f->node.empty());
  CHECK(f->healthz_address == "0.0.0.0:10256");
  CHECK(f->control_socket == "/run/dpv2/agent.sock");
  CHECK(f->metrics_address.empty());
  CHECK(f->log_format == LogFormat::kText);
}

TEST_CASE("flag errors name the flag and what is wrong") {
  CHECK(ErrorOf({"--manifests=x", "--bogus"}) == "unknown flag --bogus");
  CHECK(ErrorOf({"--manifests"}) == "flag --manifests: needs a value");
  CHECK(ErrorOf({"--manifests", "--once"}) == "flag --manifests: needs a value");
  CHECK(ErrorOf({"--manifests=x", "--backend=dpdk"}) ==
        "flag --backend: \"dpdk\" is not sim or ebpf");
  CHECK(ErrorOf({"--manifests=x", "--log-format=xml"}) ==
        "flag --log-format: \"xml\" is not text or json");
  CHECK(ErrorOf({"--manifests=x", "--once=maybe"}) ==
        "flag --once: \"maybe\" is not true or false");
  CHECK(ErrorOf({"--manifests=x", "--manifests=y"}) == "flag --manifests: given twice");
  CHECK(ErrorOf({"positional"}) == "argument \"positional\": dpv2-agent takes only --flags");
}

TEST_CASE("exactly one object source is required") {
  CHECK(ErrorOf({"--node=a"}) ==
        "no object source: give one of --manifests, --kubeconfig, --in-cluster");
  CHECK(ErrorOf({"--manifests=x", "--in-cluster"}) ==
        "one object source only, got --manifests and --in-cluster");
}

TEST_CASE("eBPF-only flags need the eBPF backend, and XDP needs an interface") {
  CHECK(ErrorOf({"--manifests=x", "--bpffs=/sys/fs/bpf/x"}) ==
        "flag --bpffs: needs --backend=ebpf");
  CHECK(ErrorOf({"--manifests=x", "--xdp"}) == "flag --xdp: needs --backend=ebpf");
  CHECK(ErrorOf({"--manifests=x", "--backend=ebpf", "--xdp"}) ==
        "flag --xdp: needs --external-interface");
}

TEST_CASE("listen addresses are HOST:PORT with IPv6 in brackets") {
  CHECK(ErrorOf({"--manifests=x", "--metrics-address=9090"}) ==
        "flag --metrics-address: \"9090\" is not HOST:PORT");
  CHECK(ErrorOf({"--manifests=x", "--metrics-address=:9090"}) ==
        "flag --metrics-address: \":9090\" has no host (use 0.0.0.0 for any)");
  CHECK(ErrorOf({"--manifests=x", "--healthz-address=1.2.3.4:70000"}) ==
        "flag --healthz-address: port \"70000\" is not 0-65535");
  CHECK(ErrorOf({"--manifests=x", "--healthz-address=::1:80"}) ==
        "flag --healthz-address: \"::1:80\": write an IPv6 host in brackets");
  CHECK(ErrorOf({"--manifests=x", "--healthz-address=[::1"}) ==
        "flag --healthz-address: \"[::1\" is not [IPv6]:PORT");
  CHECK(ErrorOf({"--manifests=x", "--metrics-address=localhost:9090"}) ==
        "flag --metrics-address: host \"localhost\" is not an IP address");
  absl::StatusOr<ListenAddress> v6 = ParseListenAddress("[fd00::1]:80", "x");
  REQUIRE(v6.ok());
  CHECK(v6->host == "fd00::1");
  CHECK(v6->port == 80);
  CHECK(v6->ToString() == "[fd00::1]:80");
}

TEST_CASE("an empty healthz address turns the health server off") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags({"--manifests=x", "--healthz-address="});
  REQUIRE(f.ok());
  CHECK(f->healthz_address.empty());
}

}  // namespace
}  // namespace dpv2::agent::daemon
