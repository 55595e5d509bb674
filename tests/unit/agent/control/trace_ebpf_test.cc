// `dpv2ctl trace` and `ct list` against the eBPF backend (BPF_PROG_TEST_RUN
// of the real programs on the real maps): a trace has the effect one real
// packet would have and leaves live connections' entries alone, and conntrack
// ages are read in the eBPF datapath clock. Needs root (CAP_BPF); without it
// the program exits 77 (skip) unless CI=true, where it fails (the main of
// tests/unit/ebpf/ebpf_test_main.cc).
#include <catch2/catch.hpp>

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/control/control_client.h"
#include "agent/control/control_server.h"
#include "agent/reports.h"
#include "control_test_cluster.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"

namespace dpv2::agent {
namespace {

DatapathConfig SmallConfig() {
  return DatapathConfig{.maglev_table_size = 251, .max_services = 64, .max_backends = 64,
                        .max_tables = 64, .ct_tcp_entries = 1024, .ct_other_entries = 1024,
                        .max_affinity = 64, .max_source_ranges = 64, .max_endpoints = 64,
                        .max_ipcache = 256, .max_policy_entries = 1024};
}

uint64_t EbpfNow() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec) +
         kEbpfClockOffsetNs;
}

struct EbpfAgent {
  EbpfAgent() {
    k8s::ClusterObjects objects;
    k8s::AddManifestText(testing::kClusterYaml, "cluster.yaml", &objects);
    REQUIRE(objects.errors.empty());
    absl::StatusOr<ClusterView> v =
        ClusterView::Create({.node_name = "node-1", .lb = {.datapath = SmallConfig()}});
    REQUIRE(v.ok());
    view = std::make_unique<ClusterView>(*std::move(v));
    view->Update(objects);
    REQUIRE(view->problems().empty());
    absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({.config = SmallConfig()});
    REQUIRE(b.ok());
    backend = *std::move(b);
    absl::Status applied = view->ApplyTo(*backend);
    INFO(applied.ToString());
    REQUIRE(applied.ok());
    absl::StatusOr<std::unique_ptr<ControlServer>> s = ControlServer::Start(
        {.socket_path = path},
        {.with_state =
             [this](const std::function<void(ClusterView&, Backend&)>& fn) {
               absl::MutexLock lock(&mu);
               fn(*view, *backend);
             },
         .flows = &hub,
         .datapath_now_ns = EbpfNow});
    REQUIRE(s.ok());
    server = *std::move(s);
  }

  std::vector<ConntrackEntry> Conntrack() {
    absl::MutexLock lock(&mu);
    absl::StatusOr<std::vector<ConntrackEntry>> entries = backend->DumpConntrack();
    REQUIRE(entries.ok());
    return *entries;
  }

  std::string path = absl::StrCat("/tmp/dpv2-ctl-ebpf-", getpid(), ".sock");
  absl::Mutex mu;
  std::unique_ptr<ClusterView> view;
  std::unique_ptr<Backend> backend;
  FlowHub hub;
  std::unique_ptr<ControlServer> server;
};

TEST_CASE("ebpf trace: one SYN's entries and events, live entries untouched, ages in the "
          "datapath clock") {
  EbpfAgent agent;
  std::optional<LocalEndpoint> a = agent.view->LocalEndpointOf("x/a");
  REQUIRE(a.has_value());
  // A live connection of x/a from port 40000 (a real packet, through the same program).
  {
    absl::MutexLock lock(&agent.mu);
    std::vector<uint8_t> syn = PacketBuilder()
                                   .Eth(a->mac, a->host_mac)
                                   .IPv4("10.0.1.1", "10.96.0.10")
                                   .Tcp(40000, 80, 0x02)
                                   .Build();
    absl::StatusOr<PacketOutcome> out =
        agent.backend->RunPacket({.entry = Entry::kFromPod, .ifindex = a->ifindex, .frame = syn});
    REQUIRE(out.ok());
    REQUIRE(agent.backend->DrainEvents(1000).ok());
  }
  std::vector<ConntrackEntry> before = agent.Conntrack();
  REQUIRE(before.size() == 2);

  ControlClient client = *ControlClient::Connect({.socket_path = agent.path});
  absl::StatusOr<nlohmann::json> trace = client.Call(
      {{"command", "trace"}, {"from", "x/a"}, {"to", "10.96.0.10"}, {"port", 80}});
  REQUIRE(trace.ok());
  INFO(trace->dump(2));
  CHECK((*trace)["backend"] == "ebpf");
  CHECK((*trace)["sport"] == 40001);
  CHECK((*trace)["verdict"] != "DROP");
  REQUIRE_FALSE((*trace)["steps"].empty());

  std::vector<ConntrackEntry> after = agent.Conntrack();
  REQUIRE(after.size() == 4);
  CHECK(testing::AllKeptAsWere(before, after));
  // The trace's events reach the event stream too, as a real packet's would.
  {
    absl::MutexLock lock(&agent.mu);
    absl::StatusOr<std::vector<FlowEvent>> events = agent.backend->DrainEvents(1000);
    REQUIRE(events.ok());
    CHECK(events->size() == (*trace)["steps"].size());
  }

  absl::StatusOr<nlohmann::json> ct = client.Call({{"command", "ct"}, {"action", "list"}});
  REQUIRE(ct.ok());
  REQUIRE(ct->size() == 4);
  for (const nlohmann::json& e : *ct) {
    INFO(e.dump());
    CHECK(e["age_s"].get<double>() >= 0.0);
    CHECK(e["age_s"].get<double>() < 30.0);
    CHECK(e["expires_in_s"].get<double>() > 30.0);   // SYN timeout: 60 s
    CHECK(e["expires_in_s"].get<double>() <= 60.0);
    CHECK(e["state"] == "SYN_SENT");
  }
  absl::StatusOr<nlohmann::json> flushed = client.Call({{"command", "ct"}, {"action", "flush"}});
  REQUIRE(flushed.ok());
  CHECK((*flushed)["flushed"] == 4);
  CHECK(agent.Conntrack().empty());
}

}  // namespace
}  // namespace dpv2::agent
