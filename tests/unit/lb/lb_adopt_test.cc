// LbState::Adopt: a restarted agent takes over what a backend holds, keeps
// its ids, and applies only the real differences. The backend is the sim, so
// every batch here is also checked by a real Apply.
#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "dpv2/endpoint_selection.h"
#include "dpv2/lb_state.h"
#include "dpv2/sim.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = 251;

IpAddr Ip(const char* s) { return *IpAddr::Parse(s); }

const NodeInfo kNode{.name = "node-1", .zone = "zone-a", .addresses = {Ip("192.168.1.10")}};

LbState NewState(uint64_t seed = 7) {
  absl::StatusOr<LbState> s =
      LbState::Create({.datapath = {.maglev_table_size = kM}, .maglev_seed = seed});
  REQUIRE(s.ok());
  REQUIRE(s->SetNode(kNode).ok());
  return *std::move(s);
}

std::unique_ptr<Backend> NewSim() {
  absl::StatusOr<std::unique_ptr<Backend>> b =
      MakeSimBackend({.config = {.maglev_table_size = kM}});
  REQUIRE(b.ok());
  return *std::move(b);
}

// A Service on `vip`:80 -> backends 10.1.<subnet>.<i>:8080 for i in `hosts`.
ServiceSpec Web(const std::string& name, const char* vip, int subnet, std::vector<int> hosts,
                ServiceType type = ServiceType::kClusterIP) {
  ServiceSpec s{.namespace_name = "default", .name = name, .type = type, .cluster_ips = {Ip(vip)}};
  s.ports.push_back({.name = "http", .port = 80});
  if (type == ServiceType::kLoadBalancer) {
    s.ports.back().node_port = 30080;
    s.load_balancer_ips = {Ip("203.0.113.7")};
    s.load_balancer_source_ranges = {*Prefix::Parse("198.51.100.0/24")};
    s.external_traffic_policy = TrafficPolicy::kLocal;
    s.health_check_node_port = 31000;
  }
  EndpointSliceSpec slice{.name = name + "-1", .address_type = Family::kV4};
  slice.ports.push_back({.name = "http", .protocol = L4Proto::kTCP, .port = 8080});
  for (int h : hosts) {
    EndpointSpec e{.addresses = {Ip(absl::StrCat("10.1.", subnet, ".", h).c_str())},
                   .node_name = h % 2 == 0 ? "node-1" : "node-2"};
    e.conditions.ready = true;
    e.conditions.serving = true;
    slice.endpoints.push_back(e);
  }
  s.endpoint_slices.push_back(std::move(slice));
  return s;
}

void Upsert(LbState& lb, const std::vector<ServiceSpec>& services) {
  for (const ServiceSpec& s : services) {
    absl::Status st = lb.UpsertService(s);
    INFO(st);
    REQUIRE(st.ok());
  }
}

void ApplyDiff(LbState& lb, Backend& backend) {
  ChangeBatch b = lb.Diff();
  absl::Status st = backend.Apply(b);
  INFO(st);
  REQUIRE(st.ok());
  lb.Acknowledge(b);
}

// "ip:port" -> backend id.
std::map<std::string, uint32_t> BackendIds(const LbState& lb) {
  std::map<std::string, uint32_t> out;
  for (const BackendView& b : lb.Backends()) {
    out[EndpointString(b.address, b.port)] = b.id;
  }
  return out;
}

// The state a previous agent left in the backend: web, api and a
// LoadBalancer with every kind of frontend, after some churn so that its
// ids are not the ones a fresh state would pick.
struct Previous {
  std::unique_ptr<Backend> backend = NewSim();
  LbState lb = NewState();
  std::vector<ServiceSpec> services = {Web("web", "10.96.0.10", 1, {1, 2, 3}),
                                       Web("api", "10.96.0.11", 2, {1, 2}),
                                       Web("lb", "10.96.0.12", 3, {1, 2, 3, 4},
                                           ServiceType::kLoadBalancer)};

  Previous() {
    Upsert(lb, {Web("old", "10.96.0.99", 9, {1, 2, 3, 4, 5})});
    ApplyDiff(lb, *backend);
    Upsert(lb, services);
    REQUIRE(lb.RemoveService("default", "old").ok());
    ApplyDiff(lb, *backend);
  }

  ChangeBatch Dump() {
    absl::StatusOr<ChangeBatch> d = backend->DumpState();
    REQUIRE(d.ok());
    return *std::move(d);
  }
};

TEST_CASE("a fresh LbState adopting the dump of the same Services has nothing to apply") {
  Previous prev;
  const ChangeBatch dump = prev.Dump();
  REQUIRE(dump.backends_upsert.size() == 9);

  LbState lb = NewState();
  std::vector<ServiceSpec> reversed(prev.services.rbegin(), prev.services.rend());
  Upsert(lb, reversed);  // another order: fresh ids would differ
  REQUIRE(BackendIds(lb) != BackendIds(prev.lb));
  REQUIRE(lb.Adopt(dump).ok());

  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  CHECK(diff.empty());
  CHECK(BackendIds(lb) == BackendIds(prev.lb));
  const std::vector<FrontendView> before = prev.lb.Frontends();
  const std::vector<FrontendView> after = lb.Frontends();
  REQUIRE(before.size() == after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK(after[i].service_id == before[i].service_id);
    CHECK(after[i].table_id == before[i].table_id);
  }
}

TEST_CASE("adopting before the Services are given works the same") {
  Previous prev;
  LbState lb = NewState();
  REQUIRE(lb.Adopt(prev.Dump()).ok());
  Upsert(lb, prev.services);
  CHECK(lb.Diff().empty());
  CHECK(BackendIds(lb) == BackendIds(prev.lb));
}

TEST_CASE("a Service removed while the agent was down: the Diff deletes exactly its entries") {
  Previous prev;
  const ChangeBatch dump = prev.Dump();
  LbState lb = NewState();
  Upsert(lb, {prev.services[0], prev.services[2]});  // api is gone
  REQUIRE(lb.Adopt(dump).ok());

  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  CHECK(diff.backends_upsert.empty());
  CHECK(diff.tables_upsert.empty());
  CHECK(diff.services_upsert.empty());
  CHECK(diff.source_ranges_upsert.empty());
  REQUIRE(diff.services_delete.size() == 1);
  CHECK(diff.services_delete[0].port == htons(80));
  CHECK(IpAddr::FromAbi(diff.services_delete[0].addr, Family::kV4) == Ip("10.96.0.11"));
  CHECK(diff.tables_delete.size() == 1);
  const std::map<std::string, uint32_t> ids = BackendIds(prev.lb);
  std::vector<uint32_t> api_ids = {ids.at("10.1.2.1:8080"), ids.at("10.1.2.2:8080")};
  std::vector<uint32_t> deleted = diff.backends_delete;
  std::sort(deleted.begin(), deleted.end());
  std::sort(api_ids.begin(), api_ids.end());
  CHECK(deleted == api_ids);

  REQUIRE(prev.backend->Apply(diff).ok());
  lb.Acknowledge(diff);
  CHECK(lb.Diff().empty());
  absl::StatusOr<ChangeBatch> now = prev.backend->DumpState();
  REQUIRE(now.ok());
  CHECK(now->backends_upsert.size() == 7);
  CHECK(now->tables_upsert.size() == dump.tables_upsert.size() - 1);
}

TEST_CASE("a backend added while the agent was down: only it, its table and the frontend change") {
  Previous prev;
  const ChangeBatch dump = prev.Dump();
  LbState lb = NewState();
  std::vector<ServiceSpec> services = prev.services;
  services[0] = Web("web", "10.96.0.10", 1, {1, 2, 3, 5});
  Upsert(lb, services);
  REQUIRE(lb.Adopt(dump).ok());

  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  REQUIRE(diff.backends_upsert.size() == 1);
  CHECK(diff.backends_upsert[0].value.addr.b[3] == 5);
  uint32_t max_dumped = 0;
  for (const BackendEntry& e : dump.backends_upsert) {
    max_dumped = std::max(max_dumped, e.id);
  }
  CHECK(diff.backends_upsert[0].id > max_dumped);  // never an adopted id
  CHECK(diff.tables_upsert.size() == 1);
  CHECK(diff.services_upsert.size() == 1);  // the ClusterIP repointed
  CHECK(diff.tables_delete.size() == 1);
  CHECK(diff.backends_delete.empty());
  CHECK(diff.services_delete.empty());
  // The unchanged backends keep their ids (conntrack entries name them).
  std::map<std::string, uint32_t> before = BackendIds(prev.lb);
  std::map<std::string, uint32_t> after = BackendIds(lb);
  after.erase("10.1.1.5:8080");
  CHECK(after == before);
  REQUIRE(prev.backend->Apply(diff).ok());
}

TEST_CASE("a changed Maglev seed gives new table ids; backends keep theirs") {
  Previous prev;
  LbState lb = NewState(/*seed=*/8);
  Upsert(lb, prev.services);
  REQUIRE(lb.Adopt(prev.Dump()).ok());
  const ChangeBatch diff = lb.Diff();
  CHECK(diff.backends_upsert.empty());
  CHECK(diff.backends_delete.empty());
  CHECK(!diff.tables_upsert.empty());
  CHECK(diff.tables_delete.size() == diff.tables_upsert.size());
  CHECK(BackendIds(lb) == BackendIds(prev.lb));
  REQUIRE(prev.backend->Apply(diff).ok());
}

// A corrupt or foreign dump: Adopt names the problem, adopts no id, and the
// next Diff rewrites everything under fresh ids and deletes what was dumped,
// as one batch the backend (which really holds the dumped state) accepts.
void ExpectRefusedThenRewritten(Previous& prev, const ChangeBatch& dump,
                                const std::string& message) {
  LbState lb = NewState();
  Upsert(lb, prev.services);
  absl::Status st = lb.Adopt(dump);
  INFO(st);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find(message) != std::string::npos);

  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  std::set<uint32_t> dumped_ids;
  for (const BackendEntry& e : dump.backends_upsert) {
    dumped_ids.insert(e.id);
  }
  for (const BackendEntry& e : diff.backends_upsert) {
    CHECK(!dumped_ids.contains(e.id));
  }
  CHECK(diff.backends_upsert.size() == 9);
  CHECK(diff.services_upsert.size() == prev.lb.Frontends().size());
  absl::Status applied = prev.backend->Apply(diff);
  INFO(applied);
  REQUIRE(applied.ok());
  lb.Acknowledge(diff);
  CHECK(lb.Diff().empty());
  // Nothing of the previous tables is left.
  absl::StatusOr<ChangeBatch> now = prev.backend->DumpState();
  REQUIRE(now.ok());
  for (const LookupTable& t : now->tables_upsert) {
    for (const LookupTable& old : prev.Dump().tables_upsert) {
      CHECK((t.id != old.id || t.slots == old.slots));
    }
  }
}

TEST_CASE("a dump whose lookup table names a missing backend is refused and rewritten") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  const uint32_t named = dump.tables_upsert[0].slots[0];
  std::erase_if(dump.backends_upsert, [named](const BackendEntry& e) { return e.id == named; });
  ExpectRefusedThenRewritten(prev, dump, absl::StrCat("names backend ", named));
}

TEST_CASE("a dump with a backend id out of range is refused and rewritten") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  dump.backends_upsert.push_back(dump.backends_upsert[0]);
  dump.backends_upsert.back().id = 0xfffffff0u;
  dump.backends_upsert.back().value.port = htons(1);
  ExpectRefusedThenRewritten(prev, dump, "backend id 4294967280 out of range");
}

TEST_CASE("a dump with a frontend naming a missing table is refused") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  dump.services_upsert[0].value.table_id = 77777;
  dump.services_upsert[0].value.backend_count = 1;
  ExpectRefusedThenRewritten(prev, dump, "table_id 77777, which the dump lacks");
}

TEST_CASE("a dump with a table larger than maglev_table_size is refused") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  dump.tables_upsert[0].slots.push_back(dump.tables_upsert[0].slots[0]);
  ExpectRefusedThenRewritten(prev, dump, "252 slots, want 1 to maglev_table_size 251");
}

TEST_CASE("a dump with tables all at maglev_table_size (before per-Service sizes) keeps its "
          "backend and service ids; only the tables are rewritten at their own size") {
  // An agent upgraded to per-Service sizes over a datapath whose every table
  // has the configured maximum: connections keep their backend ids.
  constexpr uint32_t kCap = 1021;
  auto state = [](uint32_t slots_per_backend) {
    absl::StatusOr<LbState> s = LbState::Create(
        {.datapath = {.maglev_table_size = kCap, .maglev_slots_per_backend = slots_per_backend},
         .maglev_seed = 7});
    REQUIRE(s.ok());
    REQUIRE(s->SetNode(kNode).ok());
    return *std::move(s);
  };
  absl::StatusOr<std::unique_ptr<Backend>> sim =
      MakeSimBackend({.config = {.maglev_table_size = kCap}});
  REQUIRE(sim.ok());
  const std::vector<ServiceSpec> services = {Web("web", "10.96.0.10", 1, {1, 2, 3}),
                                             Web("api", "10.96.0.11", 2, {1, 2})};
  LbState before = state(0);
  Upsert(before, services);
  ApplyDiff(before, **sim);
  absl::StatusOr<ChangeBatch> dump = (*sim)->DumpState();
  REQUIRE(dump.ok());
  for (const LookupTable& t : dump->tables_upsert) {
    REQUIRE(t.slots.size() == kCap);
  }

  LbState after = state(100);
  Upsert(after, services);
  REQUIRE(after.Adopt(*dump).ok());
  const ChangeBatch diff = after.Diff();
  INFO(diff.Summary());
  CHECK(diff.backends_upsert.empty());
  CHECK(diff.backends_delete.empty());
  CHECK(BackendIds(after) == BackendIds(before));
  REQUIRE(diff.tables_upsert.size() == 2);
  CHECK(diff.tables_delete.size() == 2);
  std::multiset<size_t> sizes;
  for (const LookupTable& t : diff.tables_upsert) {
    sizes.insert(t.slots.size());
  }
  CHECK(sizes == std::multiset<size_t>{251, 509});  // 2 backends x 100 -> 251; 3 x 100 -> 509
  const std::vector<FrontendView> was = before.Frontends();
  const std::vector<FrontendView> is = after.Frontends();
  REQUIRE(was.size() == is.size());
  for (size_t i = 0; i < was.size(); ++i) {
    CHECK(is[i].service_id == was[i].service_id);
  }
  REQUIRE((*sim)->Apply(diff).ok());
}

TEST_CASE("a dump naming one backend under two ids is refused") {
  LbState lb = NewState();
  ChangeBatch dump;
  dpv2_backend v{};
  v.addr = Ip("10.1.1.1").ToAbi();
  v.port = htons(8080);
  v.proto = DPV2_PROTO_TCP;
  v.family = DPV2_FAMILY_V4;
  dump.backends_upsert = {{.id = 3, .value = v}, {.id = 9, .value = v}};
  absl::Status st = lb.Adopt(dump);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("backends 3 and 9 are both 10.1.1.1:8080/TCP") !=
        std::string::npos);
  // Both are deleted by the rewrite: nothing desires them.
  CHECK(lb.Diff().backends_delete == std::vector<uint32_t>{3, 9});
}

TEST_CASE("ResetAcknowledged after an adoption forgets the dump") {
  Previous prev;
  LbState lb = NewState();
  Upsert(lb, prev.services);
  REQUIRE(lb.Adopt(prev.Dump()).ok());
  lb.ResetAcknowledged();
  const ChangeBatch diff = lb.Diff();
  CHECK(diff.backends_upsert.size() == 9);
  CHECK(diff.backends_delete.empty());
  CHECK(diff.services_delete.empty());
}

}  // namespace
}  // namespace dpv2
