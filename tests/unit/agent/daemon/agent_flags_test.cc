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
  CHECK(f->host_routing);
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
  CHECK(f->host_routing);
}

TEST_CASE("--checksum picks the tc object, and needs the eBPF backend") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags({"--backend=ebpf", "--manifests=x"});
  REQUIRE(f.ok());
  CHECK(f->checksum == TcChecksum::kAuto);
  f = ParseAgentFlags({"--backend=ebpf", "--manifests=x", "--checksum=helpers"});
  REQUIRE(f.ok());
  CHECK(f->checksum == TcChecksum::kHelpers);
  f = ParseAgentFlags({"--backend=ebpf", "--manifests=x", "--checksum", "in-place"});
  REQUIRE(f.ok());
  CHECK(f->checksum == TcChecksum::kInPlace);
  CHECK(ErrorOf({"--backend=ebpf", "--manifests=x", "--checksum=kfunc"}) ==
        "flag --checksum: \"kfunc\" is not auto or in-place or helpers");
  CHECK(ErrorOf({"--manifests=x", "--checksum=helpers"}) ==
        "flag --checksum: needs --backend=ebpf");
}

TEST_CASE("SNAT's table size and port range are datapath flags") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags(
      {"--manifests=x", "--snat-entries=4096", "--snat-port-min=40000", "--snat-port-max=49999"});
  REQUIRE(f.ok());
  CHECK(f->datapath.snat_entries == 4096);
  CHECK(f->datapath.snat_port_min == 40000);
  CHECK(f->datapath.snat_port_max == 49999);
  CHECK(ErrorOf({"--manifests=x", "--snat-port-max=65536"}) ==
        "flag --snat-port-max: \"65536\" is not a whole number from 1 to 65535");
}

TEST_CASE("--host-routing=false hands forwarded packets back to the node's stack") {
  absl::StatusOr<AgentFlags> f =
      ParseAgentFlags({"--backend=ebpf", "--manifests=x", "--host-routing=false"});
  REQUIRE(f.ok());
  CHECK_FALSE(f->host_routing);
  f = ParseAgentFlags({"--backend=ebpf", "--manifests=x", "--host-routing"});
  REQUIRE(f.ok());
  CHECK(f->host_routing);
  CHECK(ErrorOf({"--backend=ebpf", "--manifests=x", "--host-routing=no"}) ==
        "flag --host-routing: \"no\" is not true or false");
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
  CHECK(ErrorOf({"--manifests=x", "--host-routing=false"}) ==
        "flag --host-routing: needs --backend=ebpf");
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

TEST_CASE("map-size and conntrack flags set the datapath config; unset ones keep defaults") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags(
      {"--manifests=x", "--maglev-table-size=65521", "--max-services=1000",
       "--max-backends", "20000", "--max-lookup-tables=999", "--ct-tcp-entries=4096",
       "--ct-other-entries=2048", "--max-affinity=77", "--max-source-ranges=88",
       "--max-endpoints=256", "--max-ipcache=4294967295", "--max-policy-entries=12345",
       "--ct-timeout-tcp-established=21600", "--ct-timeout-tcp-syn=30",
       "--ct-timeout-tcp-close=5", "--ct-timeout-non-tcp=120"});
  REQUIRE(f.ok());
  const DatapathConfig& c = f->datapath;
  CHECK(c.maglev_table_size == 65521);
  CHECK(c.max_services == 1000);
  CHECK(c.max_backends == 20000);
  CHECK(c.max_tables == 999);
  CHECK(c.ct_tcp_entries == 4096);
  CHECK(c.ct_other_entries == 2048);
  CHECK(c.max_affinity == 77);
  CHECK(c.max_source_ranges == 88);
  CHECK(c.max_endpoints == 256);
  CHECK(c.max_ipcache == 4294967295u);
  CHECK(c.max_policy_entries == 12345);
  CHECK(c.timeouts.tcp_established_s == 21600);
  CHECK(c.timeouts.tcp_syn_s == 30);
  CHECK(c.timeouts.tcp_close_s == 5);
  CHECK(c.timeouts.non_tcp_s == 120);

  absl::StatusOr<AgentFlags> d = ParseAgentFlags({"--manifests=x", "--max-backends=7"});
  REQUIRE(d.ok());
  const DatapathConfig defaults;
  CHECK(d->datapath.max_backends == 7);
  CHECK(d->datapath.max_services == defaults.max_services);
  CHECK(d->datapath.ct_tcp_entries == defaults.ct_tcp_entries);
  CHECK(d->datapath.maglev_table_size == defaults.maglev_table_size);
}

TEST_CASE("bad map sizes are refused naming the flag") {
  CHECK(ErrorOf({"--manifests=x", "--max-backends=0"}) ==
        "flag --max-backends: \"0\" is not a whole number from 1 to 4294967295");
  CHECK(ErrorOf({"--manifests=x", "--ct-tcp-entries=4294967296"}) ==
        "flag --ct-tcp-entries: \"4294967296\" is not a whole number from 1 to 4294967295");
  CHECK(ErrorOf({"--manifests=x", "--max-services=-1"}) ==
        "flag --max-services: \"-1\" is not a whole number from 1 to 4294967295");
  CHECK(ErrorOf({"--manifests=x", "--max-ipcache=1e6"}) ==
        "flag --max-ipcache: \"1e6\" is not a whole number from 1 to 4294967295");
  CHECK(ErrorOf({"--manifests=x", "--ct-timeout-non-tcp="}) ==
        "flag --ct-timeout-non-tcp: \"\" is not a whole number from 1 to 4294967295");
  CHECK(ErrorOf({"--manifests=x", "--max-endpoints"}) == "flag --max-endpoints: needs a value");
  CHECK(ErrorOf({"--manifests=x", "--max-policy-entries=5", "--max-policy-entries=6"}) ==
        "flag --max-policy-entries: given twice");
  CHECK(ErrorOf({"--manifests=x", "--maglev-table-size=16380"}) ==
        "flag --maglev-table-size: 16380 is not a prime (Maglev needs one: 16381, 65521, ...)");
  CHECK(ErrorOf({"--manifests=x", "--maglev-table-size=1"}) ==
        "flag --maglev-table-size: 1 is not a prime (Maglev needs one: 16381, 65521, ...)");
}

TEST_CASE("--maglev-slots-per-backend sets the per-Service table sizing, 0 included, and "
          "refuses values outside 0 to 65536 naming the flag") {
  CHECK(ParseAgentFlags({"--manifests=x"})->datapath.maglev_slots_per_backend == 100);
  absl::StatusOr<AgentFlags> zero =
      ParseAgentFlags({"--manifests=x", "--maglev-slots-per-backend=0"});
  REQUIRE(zero.ok());
  CHECK(zero->datapath.maglev_slots_per_backend == 0);
  absl::StatusOr<AgentFlags> some =
      ParseAgentFlags({"--manifests=x", "--maglev-slots-per-backend", "20"});
  REQUIRE(some.ok());
  CHECK(some->datapath.maglev_slots_per_backend == 20);
  CHECK(ErrorOf({"--manifests=x", "--maglev-slots-per-backend=65537"}) ==
        "flag --maglev-slots-per-backend: \"65537\" is not a whole number from 0 to 65536");
  CHECK(ErrorOf({"--manifests=x", "--maglev-slots-per-backend=-1"}) ==
        "flag --maglev-slots-per-backend: \"-1\" is not a whole number from 0 to 65536");
  CHECK(ErrorOf({"--manifests=x", "--maglev-slots-per-backend=many"}) ==
        "flag --maglev-slots-per-backend: \"many\" is not a whole number from 0 to 65536");
  CHECK(AgentUsage().find("--maglev-slots-per-backend=N") != std::string::npos);
}

TEST_CASE("the usage text lists every map-size flag with its default") {
  const std::string usage = AgentUsage();
  for (const char* line :
       {"--maglev-table-size=N", "(default 16381)", "--max-backends=N", "(default 65536)",
        "--ct-tcp-entries=N", "(default 524288)", "--ct-other-entries=N", "(default 262144)",
        "--max-policy-entries=N", "--max-ipcache=N", "--ct-timeout-non-tcp=N"}) {
    CHECK(usage.find(line) != std::string::npos);
  }
}

TEST_CASE("an empty healthz address turns the health server off") {
  absl::StatusOr<AgentFlags> f = ParseAgentFlags({"--manifests=x", "--healthz-address="});
  REQUIRE(f.ok());
  CHECK(f->healthz_address.empty());
}

}  // namespace
}  // namespace dpv2::agent::daemon
