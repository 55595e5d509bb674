// Restart adoption over pinned maps: an agent's backend instance goes away,
// a new one opens the same pins, dumps them (inner Maglev tables included),
// and fresh LbState/PolicyState adopt the dump. Needs root and BPF: exits 77
// (skip) otherwise, unless CI=true.
#define CATCH_CONFIG_RUNNER
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "core/datapath/datapath_tables.h"
#include "dpv2/ebpf.h"
#include "dpv2/lb_state.h"
#include "dpv2/packet.h"
#include "dpv2/policy_state.h"

namespace dpv2 {
namespace {

IpAddr Ip(const char* s) { return *IpAddr::Parse(s); }

DatapathConfig Config() {
  return {.maglev_table_size = 251, .max_services = 256, .max_backends = 256, .max_tables = 256,
          .ct_tcp_entries = 4096, .ct_other_entries = 4096, .max_affinity = 256,
          .max_source_ranges = 64, .max_endpoints = 64, .max_ipcache = 256,
          .max_policy_entries = 1024};
}

constexpr uint32_t kPodIfindex = 11;

ServiceSpec Web(int backends) {
  ServiceSpec s{.namespace_name = "default", .name = "web", .cluster_ips = {Ip("10.96.0.10")}};
  s.ports.push_back({.name = "http", .port = 80});
  EndpointSliceSpec slice{.name = "web-1", .address_type = Family::kV4};
  slice.ports.push_back({.name = "http", .protocol = L4Proto::kTCP, .port = 8080});
  for (int i = 1; i <= backends; ++i) {
    EndpointSpec e{.addresses = {Ip(("10.0.2." + std::to_string(i)).c_str())},
                   .node_name = "node-b"};
    e.conditions.ready = true;
    slice.endpoints.push_back(e);
  }
  s.endpoint_slices.push_back(std::move(slice));
  return s;
}

LbState NewLb(const std::vector<ServiceSpec>& services) {
  absl::StatusOr<LbState> lb = LbState::Create({.datapath = Config(), .maglev_seed = 5});
  REQUIRE(lb.ok());
  REQUIRE(lb->SetNode({.name = "node-a", .addresses = {Ip("192.168.1.10")}}).ok());
  for (const ServiceSpec& s : services) {
    REQUIRE(lb->UpsertService(s).ok());
  }
  return *std::move(lb);
}

// One local client pod and a policy isolating it for egress to the Service's
// backends only: endpoints, ipcache and policy entries in the maps.
void GivePolicy(PolicyState& p) {
  REQUIRE(p.SetNamespace({.name = "default"}).ok());
  NetworkPolicy np{.metadata = {.name = "egress", .namespace_name = "default"}};
  np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  np.spec.egress.push_back({.to = {{.ip_block = IPBlock{.cidr = "10.0.2.0/24"}}}});
  REQUIRE(p.SetNetworkPolicy(np).ok());
  REQUIRE(p.SetPod({.namespace_name = "default", .name = "client", .labels = {{"app", "c"}},
                    .ips = {Ip("10.0.1.5")}, .node_name = "node-a"},
                   LocalEndpoint{.ifindex = kPodIfindex}).ok());
}

std::unique_ptr<Backend> Open(const std::string& pin) {
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({.config = Config(),
                                                                .pin_path = pin});
  INFO(b.status());
  REQUIRE(b.ok());
  return *std::move(b);
}

IpAddr Send(Backend& b, uint8_t flags, uint32_t seq) {
  absl::StatusOr<PacketOutcome> out = b.RunPacket(
      {.entry = Entry::kFromPod,
       .ifindex = kPodIfindex,
       .frame = PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, flags).Seq(seq).Build()});
  INFO(out.status());
  REQUIRE(out.ok());
  REQUIRE(out->verdict == Verdict::kPass);
  REQUIRE(out->outputs.size() == 1);
  return ParsePacket(out->outputs[0].frame).pkt.dst;
}

TEST_CASE("an agent restarted over pinned maps adopts them: nothing to apply, and the "
          "connection keeps its backend") {
  // A private mount namespace keeps the bpffs mount away from the host.
  REQUIRE(unshare(CLONE_NEWNS) == 0);
  REQUIRE(mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0);
  char dir[] = "/tmp/dpv2-restart-pin-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  REQUIRE(mount("bpf", dir, "bpf", 0, nullptr) == 0);
  struct Unmount {
    char* dir;
    ~Unmount() {
      umount2(dir, MNT_DETACH);
      rmdir(dir);
    }
  } unmount{dir};
  const std::string pin = std::string(dir) + "/node";

  ChangeBatch applied;
  IpAddr chosen;
  {
    std::unique_ptr<Backend> first = Open(pin);
    LbState lb = NewLb({Web(3)});
    PolicyState policy({.node_name = "node-a"});
    GivePolicy(policy);
    applied = lb.Diff();
    applied.Append(policy.Diff());
    REQUIRE(first->Apply(applied).ok());
    chosen = Send(*first, kTcpSyn, 1000);
  }  // the agent's process is gone; the pinned maps stay

  std::unique_ptr<Backend> second = Open(pin);
  absl::StatusOr<ChangeBatch> dump = second->DumpState();
  INFO(dump.status());
  REQUIRE(dump.ok());
  SortBatch(&applied);
  REQUIRE(dump->tables_upsert.size() == applied.tables_upsert.size());
  CHECK(dump->tables_upsert[0].slots == applied.tables_upsert[0].slots);
  CHECK(dump->backends_upsert.size() == applied.backends_upsert.size());
  CHECK(dump->services_upsert.size() == applied.services_upsert.size());
  CHECK(dump->endpoints_upsert.size() == applied.endpoints_upsert.size());
  CHECK(dump->ipcache_upsert.size() == applied.ipcache_upsert.size());
  CHECK(dump->policy_upsert.size() == applied.policy_upsert.size());

  // The same objects, given in another order with a backend added while the
  // agent was down.
  LbState lb = NewLb({Web(4)});
  REQUIRE(lb.Adopt(*dump).ok());
  PolicyState policy({.node_name = "node-a"});
  REQUIRE(policy.Adopt(*dump).ok());
  GivePolicy(policy);
  CHECK(policy.Diff().empty());
  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  CHECK(diff.backends_upsert.size() == 1);
  CHECK(diff.backends_delete.empty());
  CHECK(diff.tables_upsert.size() == 1);
  CHECK(diff.services_upsert.size() == 1);
  REQUIRE(second->Apply(diff).ok());
  lb.Acknowledge(diff);
  CHECK(lb.Diff().empty());
  for (uint32_t seq : {1001u, 1101u}) {
    CHECK(Send(*second, kTcpAck, seq) == chosen);
  }
}

}  // namespace
}  // namespace dpv2

int main(int argc, char** argv) {
  const char* ci = std::getenv("CI");
  const bool in_ci = ci != nullptr && std::strcmp(ci, "true") == 0;
  if (absl::StatusOr<std::unique_ptr<dpv2::Backend>> probe =
          dpv2::MakeEbpfBackend({.config = dpv2::Config()});
      !probe.ok() || geteuid() != 0) {
    std::fprintf(stderr, "ebpf restart test: cannot load the BPF datapath here (%s)%s\n",
                 probe.status().ToString().c_str(),
                 in_ci ? "" : "; skipping (needs root / CAP_BPF; set CI=true to fail instead)");
    return in_ci ? 1 : 77;
  }
  return Catch::Session().run(argc, argv);
}
