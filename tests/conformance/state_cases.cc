// Restart adoption on every backend: what Backend::DumpState returns is
// exactly what was applied, fresh LbState and PolicyState that adopt it have
// nothing to apply, and an established connection keeps its backend across
// the restart (docs/datapath.md "Restart adoption").
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "conformance.h"
#include "core/datapath/datapath_tables.h"
#include "dpv2/lb_state.h"
#include "dpv2/packet.h"
#include "dpv2/policy_state.h"
#include "fixtures.h"

namespace dpv2::conformance {
namespace {

const NodeInfo kNodeA{.name = "node-a", .zone = "zone-1", .addresses = {A(kNode4), A(kNode6)}};

std::unique_ptr<Backend> NewBackend(ConformanceHarness& h) {
  absl::StatusOr<std::unique_ptr<Backend>> b = h.MakeBackend(SmallConfig());
  INFO(b.status());
  REQUIRE(b.ok());
  return *std::move(b);
}

LbState NewLb() {
  absl::StatusOr<LbState> lb = LbState::Create({.datapath = SmallConfig(), .maglev_seed = 3});
  REQUIRE(lb.ok());
  REQUIRE(lb->SetNode(kNodeA).ok());
  return *std::move(lb);
}

void Upsert(LbState& lb, const std::vector<ServiceSpec>& services) {
  for (const ServiceSpec& s : services) {
    absl::Status st = lb.UpsertService(s);
    INFO(st);
    REQUIRE(st.ok());
  }
}

std::vector<ServiceSpec> Services() {
  ServiceSpec lb = ExternalLocal(LoadBalancer(
      Svc("lb", "10.96.0.12", L4Proto::kTCP, 443, 8443,
          {{.ip = kRemote1v4}, {.ip = kPodB.v4, .node = "node-a"}}),
      kLb4, 30443));
  lb.load_balancer_source_ranges = {*Prefix::Parse("203.0.113.0/24")};
  return {Svc("web", kVip4, L4Proto::kTCP, 80, 8080,
              {{.ip = kRemote1v4}, {.ip = kRemote2v4}, {.ip = kRemote3v4}}),
          NodePort(Svc("dns", "10.96.0.53", L4Proto::kUDP, 53, 5353, {{.ip = kRemote2v4}}), 30053),
          Svc("web6", kVip6, L4Proto::kTCP, 80, 8080, {{.ip = kRemote1v6}, {.ip = kRemote2v6}}),
          Svc("empty", "10.96.0.99", L4Proto::kTCP, 80, 80, {}), lb};
}

// Two namespaces, the two local pods of the fixtures and a remote one, a
// NetworkPolicy with an ipBlock: endpoints, ipcache and policy entries.
struct PolicyInputs {
  std::vector<NamespaceInfo> namespaces = {{.name = "default", .labels = {{"team", "a"}}},
                                           {.name = "other"}};
  std::vector<std::pair<PodInfo, std::optional<LocalEndpoint>>> pods;
  NetworkPolicy np{.metadata = {.name = "db", .namespace_name = "default"}};

  PolicyInputs() {
    for (const Pod* p : {&kPodA, &kPodB}) {
      pods.push_back({PodInfo{.namespace_name = "default",
                              .name = p == &kPodA ? "a" : "b",
                              .labels = {{"app", p == &kPodA ? "web" : "db"}},
                              .ips = {A(p->v4), A(p->v6)},
                              .node_name = "node-a"},
                      LocalEndpoint{.ifindex = p->ifindex, .mac = p->mac, .host_mac = p->host_mac}});
    }
    pods.push_back({PodInfo{.namespace_name = "other", .name = "r", .labels = {{"app", "cli"}},
                            .ips = {A(kRemote1v4)}, .node_name = "node-b"},
                    std::nullopt});
    np.spec.pod_selector = LabelSelector{.match_labels = {{"app", "db"}}};
    np.spec.ingress.push_back(
        {.from = {{.pod_selector = LabelSelector{.match_labels = {{"app", "web"}}}},
                  {.ip_block = IPBlock{.cidr = "10.0.2.0/24", .except = {"10.0.2.9/32"}}}}});
  }

  void Give(PolicyState& s, bool policies_first) const {
    for (const NamespaceInfo& ns : namespaces) {
      REQUIRE(s.SetNamespace(ns).ok());
    }
    if (policies_first) {
      REQUIRE(s.SetNetworkPolicy(np).ok());
    }
    for (const auto& [pod, local] : pods) {
      REQUIRE(s.SetPod(pod, local).ok());
    }
    if (!policies_first) {
      REQUIRE(s.SetNetworkPolicy(np).ok());
    }
  }
};

// Compares the upserts of two sorted batches record by record.
template <typename T>
void ExpectSameRecords(const char* what, const std::vector<T>& got, const std::vector<T>& want) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("record " << i);
    CHECK(std::memcmp(&got[i], &want[i], sizeof(T)) == 0);
  }
}

void ExpectDumpEquals(const ChangeBatch& dump, ChangeBatch applied) {
  SortBatch(&applied);
  ExpectSameRecords("backends", dump.backends_upsert, applied.backends_upsert);
  REQUIRE(dump.tables_upsert.size() == applied.tables_upsert.size());
  for (size_t i = 0; i < dump.tables_upsert.size(); ++i) {
    CHECK(dump.tables_upsert[i].id == applied.tables_upsert[i].id);
    CHECK(dump.tables_upsert[i].slots == applied.tables_upsert[i].slots);
  }
  ExpectSameRecords("source ranges", dump.source_ranges_upsert, applied.source_ranges_upsert);
  ExpectSameRecords("endpoints", dump.endpoints_upsert, applied.endpoints_upsert);
  ExpectSameRecords("ipcache", dump.ipcache_upsert, applied.ipcache_upsert);
  ExpectSameRecords("policy", dump.policy_upsert, applied.policy_upsert);
  ExpectSameRecords("services", dump.services_upsert, applied.services_upsert);
}

void DumpAdoptDiffEmpty(ConformanceHarness& h) {
  std::unique_ptr<Backend> backend = NewBackend(h);
  LbState lb = NewLb();
  Upsert(lb, Services());
  PolicyState policy({.node_name = "node-a"});
  const PolicyInputs inputs;
  inputs.Give(policy, /*policies_first=*/false);
  ChangeBatch applied = lb.Diff();
  applied.Append(policy.Diff());
  REQUIRE(backend->Apply(applied).ok());

  absl::StatusOr<ChangeBatch> dump = backend->DumpState();
  INFO(dump.status());
  REQUIRE(dump.ok());
  REQUIRE(!dump->tables_upsert.empty());
  REQUIRE(!dump->source_ranges_upsert.empty());
  REQUIRE(!dump->policy_upsert.empty());
  ExpectDumpEquals(*dump, applied);

  // Fresh states given the same objects in another order: ids would differ.
  LbState lb2 = NewLb();
  std::vector<ServiceSpec> reversed = Services();
  std::reverse(reversed.begin(), reversed.end());
  Upsert(lb2, reversed);
  REQUIRE(lb2.Adopt(*dump).ok());
  INFO(lb2.Diff().Summary());
  CHECK(lb2.Diff().empty());
  PolicyState policy2({.node_name = "node-a"});
  REQUIRE(policy2.Adopt(*dump).ok());
  inputs.Give(policy2, /*policies_first=*/true);
  INFO(policy2.Diff().Summary());
  CHECK(policy2.Diff().empty());
}

// The destination of the one output frame of `in`.
IpAddr SendAndGetDestination(Backend& b, const PacketBuilder& in) {
  absl::StatusOr<PacketOutcome> out =
      b.RunPacket({.entry = Entry::kFromPod, .ifindex = kPodA.ifindex, .frame = in.Build()});
  INFO(out.status());
  REQUIRE(out.ok());
  REQUIRE(out->verdict == Verdict::kPass);
  REQUIRE(out->outputs.size() == 1);
  ParseResult parsed = ParsePacket(out->outputs[0].frame);
  REQUIRE(parsed.drop == DPV2_DROP_NONE);
  return parsed.pkt.dst;
}

void ConnectionSurvivesRestart(ConformanceHarness& h) {
  std::unique_ptr<Backend> backend = NewBackend(h);
  std::vector<Ep> eps = {{.ip = kRemote1v4}, {.ip = kRemote2v4}, {.ip = kRemote3v4}};
  LbState lb = NewLb();
  Upsert(lb, {Svc("web", kVip4, L4Proto::kTCP, 80, 8080, eps)});
  ChangeBatch first = lb.Diff();
  first.endpoints_upsert = LocalPods();
  REQUIRE(backend->Apply(first).ok());

  const IpAddr chosen =
      SendAndGetDestination(*backend, Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpSyn).Seq(1000));
  const std::string chosen_text = chosen.ToString();
  absl::StatusOr<PacketOutcome> synack = backend->RunPacket(
      {.entry = Entry::kFromNetwork,
       .ifindex = kNetIf,
       .frame = Pkt(chosen_text.c_str(), kPodA.v4)
                    .Tcp(8080, 40000, kTcpSyn | kTcpAck)
                    .Seq(5000)
                    .Ack(1001)
                    .Build()});
  REQUIRE(synack.ok());
  REQUIRE(synack->verdict == Verdict::kRedirect);

  // The agent restarts; meanwhile a backend was added and another Service
  // created first, so that fresh ids would name other backends.
  absl::StatusOr<ChangeBatch> dump = backend->DumpState();
  REQUIRE(dump.ok());
  LbState restarted = NewLb();
  eps.push_back({.ip = "10.0.2.11"});
  Upsert(restarted, {Svc("aaa", "10.96.0.5", L4Proto::kTCP, 80, 80, {{.ip = "10.0.2.20"}}),
                     Svc("web", kVip4, L4Proto::kTCP, 80, 8080, eps)});
  REQUIRE(restarted.Adopt(*dump).ok());
  const ChangeBatch diff = restarted.Diff();
  INFO(diff.Summary());
  CHECK(diff.backends_upsert.size() == 2);  // 10.0.2.11 and aaa's backend
  CHECK(diff.backends_delete.empty());
  absl::Status applied = backend->Apply(diff);
  INFO(applied);
  REQUIRE(applied.ok());

  for (uint32_t seq : {1001u, 1101u, 1201u}) {
    CHECK(SendAndGetDestination(
              *backend,
              Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpAck | kTcpPsh).Seq(seq).Ack(5001)) ==
          chosen);
  }
}

}  // namespace

std::vector<StateCase> StateCases() {
  return {
      {.proves = "restart: DumpState returns exactly what was applied, and fresh LbState and "
                 "PolicyState that adopt it have nothing to apply",
       .run = DumpAdoptDiffEmpty},
      {.proves = "restart: an established connection keeps its backend when a restarted agent "
                 "adopts the datapath and adds a backend",
       .run = ConnectionSurvivesRestart},
  };
}

}  // namespace dpv2::conformance
