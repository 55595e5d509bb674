// LbState: Services compiled into change batches, diffed against what the
// backend acknowledged.
#include "dpv2/lb_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = 251;  // a small prime keeps the tests fast

IpAddr Ip(const char* s) { return *IpAddr::Parse(s); }

LbState MakeState(LbStateOptions o = {}) {
  if (o.datapath.maglev_table_size == DPV2_MAGLEV_DEFAULT_SIZE) {
    o.datapath.maglev_table_size = kM;
  }
  absl::StatusOr<LbState> s = LbState::Create(o);
  REQUIRE(s.ok());
  REQUIRE(s->SetNode({.name = "node-1", .zone = "zone-a", .addresses = {Ip("192.168.1.10")}}).ok());
  return *std::move(s);
}

EndpointSpec Ep(const char* ip, const char* node = "node-2", bool ready = true,
                bool terminating = false) {
  EndpointSpec e{.addresses = {Ip(ip)}, .node_name = node};
  e.conditions.ready = ready;
  e.conditions.serving = ready || terminating;
  e.conditions.terminating = terminating;
  return e;
}

EndpointSliceSpec Slice(const char* name, std::vector<EndpointSpec> eps, uint16_t port = 8080,
                        Family family = Family::kV4, const char* port_name = "http",
                        L4Proto proto = L4Proto::kTCP) {
  EndpointSliceSpec s{.name = name, .address_type = family, .endpoints = std::move(eps)};
  s.ports.push_back({.name = port_name, .protocol = proto, .port = port});
  return s;
}

ServiceSpec ClusterIpService(std::vector<EndpointSpec> eps, const char* name = "web",
                             const char* vip = "10.96.0.10") {
  ServiceSpec s{.namespace_name = "default", .name = name, .cluster_ips = {Ip(vip)}};
  s.ports.push_back({.name = "http", .port = 80});
  s.endpoint_slices.push_back(Slice(absl::StrCat(name, "-1").c_str(), std::move(eps)));
  return s;
}

dpv2_lb_key Key(const char* ip, uint16_t port, uint8_t scope = DPV2_LB_SCOPE_EXT,
                L4Proto proto = L4Proto::kTCP) {
  const IpAddr a = Ip(ip);
  dpv2_lb_key k{};
  k.addr = a.ToAbi();
  k.port = htons(port);
  k.proto = static_cast<uint8_t>(proto);
  k.family = static_cast<uint8_t>(a.family());
  k.scope = scope;
  return k;
}

const ServiceEntry* FindService(const ChangeBatch& b, const dpv2_lb_key& k) {
  for (const ServiceEntry& e : b.services_upsert) {
    if (std::memcmp(&e.key, &k, sizeof(k)) == 0) {
      return &e;
    }
  }
  return nullptr;
}

const LookupTable* FindTable(const ChangeBatch& b, uint32_t id) {
  for (const LookupTable& t : b.tables_upsert) {
    if (t.id == id) {
      return &t;
    }
  }
  return nullptr;
}

// backend id -> "ip:port" for the backends upserted in `b`.
std::map<uint32_t, std::string> BackendNames(const ChangeBatch& b) {
  std::map<uint32_t, std::string> m;
  for (const BackendEntry& e : b.backends_upsert) {
    const IpAddr a = IpAddr::FromAbi(e.value.addr, static_cast<Family>(e.value.family));
    m[e.id] = a.is_v4() ? absl::StrCat(a.ToString(), ":", ntohs(e.value.port))
                        : absl::StrCat("[", a.ToString(), "]:", ntohs(e.value.port));
  }
  return m;
}

// The distinct backends named by a table, as "ip:port".
std::set<std::string> TableBackends(const ChangeBatch& b, uint32_t table_id,
                                    const std::map<uint32_t, std::string>& names) {
  std::set<std::string> s;
  const LookupTable* t = FindTable(b, table_id);
  REQUIRE(t != nullptr);
  CHECK(t->slots.size() == kM);
  for (uint32_t id : t->slots) {
    REQUIRE(names.contains(id));
    s.insert(names.at(id));
  }
  return s;
}

// Applies Diff() as a backend would and acknowledges it.
ChangeBatch Sync(LbState& lb) {
  ChangeBatch b = lb.Diff();
  lb.Acknowledge(b);
  return b;
}

TEST_CASE("a ClusterIP service compiles to backends, one Maglev table and one frontend") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2")})).ok());
  const ChangeBatch b = lb.Diff();
  CHECK(b.backends_upsert.size() == 2);
  CHECK(b.tables_upsert.size() == 1);
  CHECK(b.services_upsert.size() == 1);
  CHECK(b.services_delete.empty());
  const ServiceEntry* e = FindService(b, Key("10.96.0.10", 80));
  REQUIRE(e != nullptr);
  CHECK(e->value.backend_count == 2);
  CHECK(e->value.flags == 0);
  CHECK(e->value.service_id != 0);
  const auto names = BackendNames(b);
  CHECK(TableBackends(b, e->value.table_id, names) ==
        std::set<std::string>{"10.0.1.1:8080", "10.0.1.2:8080"});
  for (const BackendEntry& be : b.backends_upsert) {
    CHECK(be.id != 0);
    CHECK(be.value.proto == DPV2_PROTO_TCP);
    CHECK(be.value.flags == 0);  // on node-2, not this node
  }
}

TEST_CASE("applying the same state twice yields an empty batch") {
  LbState lb = MakeState();
  const ServiceSpec svc = ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2")});
  REQUIRE(lb.UpsertService(svc).ok());
  CHECK_FALSE(Sync(lb).empty());
  CHECK(lb.Diff().empty());
  REQUIRE(lb.UpsertService(svc).ok());
  CHECK(lb.Diff().empty());
  // Endpoint order within and across slices does not matter either.
  ServiceSpec reordered = ClusterIpService({Ep("10.0.1.2"), Ep("10.0.1.1")});
  REQUIRE(lb.UpsertService(reordered).ok());
  CHECK(lb.Diff().empty());
}

TEST_CASE("a backend change writes a new table, repoints the frontend and deletes the old table") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2")})).ok());
  const ChangeBatch first = Sync(lb);
  const ServiceEntry before = *FindService(first, Key("10.96.0.10", 80));

  REQUIRE(
      lb.UpsertService(ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2"), Ep("10.0.1.3")})).ok());
  const ChangeBatch b = lb.Diff();
  CHECK(b.backends_upsert.size() == 1);  // only the new backend
  CHECK(b.backends_delete.empty());
  REQUIRE(b.tables_upsert.size() == 1);
  CHECK(b.tables_upsert[0].id != before.value.table_id);
  CHECK(b.tables_delete == std::vector<uint32_t>{before.value.table_id});
  REQUIRE(b.services_upsert.size() == 1);
  CHECK(b.services_delete.empty());  // no service key churn
  const ServiceEntry& after = b.services_upsert[0];
  CHECK(after.value.service_id == before.value.service_id);
  CHECK(after.value.table_id == b.tables_upsert[0].id);
  CHECK(after.value.backend_count == 3);
  lb.Acknowledge(b);
  CHECK(lb.Diff().empty());
}

TEST_CASE("backend ids stay stable across diffs and are shared between services") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")}, "a", "10.96.0.1")).ok());
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")}, "b", "10.96.0.2")).ok());
  const ChangeBatch b = Sync(lb);
  CHECK(b.backends_upsert.size() == 1);  // one (addr, port, proto), one id
  CHECK(b.tables_upsert.size() == 1);    // same backend set, one shared table
  REQUIRE(lb.Backends().size() == 1);
  CHECK(lb.Backends()[0].references == 2);

  REQUIRE(lb.RemoveService("default", "a").ok());
  const ChangeBatch r = lb.Diff();
  CHECK(r.services_delete.size() == 1);
  CHECK(r.backends_delete.empty());  // still used by b
  CHECK(r.tables_delete.empty());
  CHECK(r.backends_upsert.empty());
}

TEST_CASE("removing a service deletes its frontends, tables, backends and ranges") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2")});
  svc.type = ServiceType::kLoadBalancer;
  svc.ports[0].node_port = 30080;
  svc.load_balancer_ips = {Ip("203.0.113.5")};
  svc.load_balancer_source_ranges = {*Prefix::Parse("198.51.100.0/24")};
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch added = Sync(lb);
  REQUIRE(lb.RemoveService("default", "web").ok());
  const ChangeBatch b = lb.Diff();
  CHECK(b.services_delete.size() == added.services_upsert.size());
  CHECK(b.tables_delete.size() == added.tables_upsert.size());
  CHECK(b.backends_delete.size() == 2);
  CHECK(b.source_ranges_delete.size() == 1);
  CHECK(b.services_upsert.empty());
  CHECK(b.tables_upsert.empty());
  lb.Acknowledge(b);
  CHECK(lb.Diff().empty());
  CHECK(lb.Frontends().empty());
  CHECK(lb.Backends().empty());
  CHECK(lb.RemoveService("default", "web").code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a NodePort service gets one frontend per node address and shares the table") {
  LbState lb = MakeState();
  REQUIRE(lb.SetNode({.name = "node-1",
                      .addresses = {Ip("192.168.1.10"), Ip("192.168.2.10"), Ip("fd00:1::10")}})
              .ok());
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
  svc.type = ServiceType::kNodePort;
  svc.ports[0].node_port = 30080;
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch b = lb.Diff();
  // The IPv6 node address is not used: the service has no IPv6 cluster IP.
  CHECK(b.services_upsert.size() == 3);
  CHECK(b.tables_upsert.size() == 1);
  for (const char* node_ip : {"192.168.1.10", "192.168.2.10"}) {
    const ServiceEntry* e = FindService(b, Key(node_ip, 30080));
    REQUIRE(e != nullptr);
    CHECK(e->value.flags == DPV2_LB_F_NODEPORT);
    CHECK(e->value.backend_count == 1);
  }
  CHECK(FindService(b, Key("10.96.0.10", 80))->value.flags == 0);
  std::set<uint32_t> ids;
  for (const ServiceEntry& e : b.services_upsert) {
    ids.insert(e.value.service_id);
  }
  CHECK(ids.size() == 3);  // a service_id per frontend
}

TEST_CASE("a dual-stack service uses each family's endpoints for that family's frontends") {
  LbState lb = MakeState();
  REQUIRE(lb.SetNode({.name = "node-1", .addresses = {Ip("192.168.1.10"), Ip("fd00:1::10")}}).ok());
  ServiceSpec svc{.namespace_name = "default",
                  .name = "web",
                  .type = ServiceType::kNodePort,
                  .cluster_ips = {Ip("10.96.0.10"), Ip("fd00:96::10")}};
  svc.ports.push_back({.name = "http", .port = 80, .node_port = 30080});
  svc.endpoint_slices.push_back(Slice("web-v4", {Ep("10.0.1.1")}));
  svc.endpoint_slices.push_back(
      Slice("web-v6", {Ep("fd00:10::1"), Ep("fd00:10::2")}, 8080, Family::kV6));
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch b = lb.Diff();
  CHECK(b.services_upsert.size() == 4);
  CHECK(b.tables_upsert.size() == 2);
  const auto names = BackendNames(b);
  const ServiceEntry* v6 = FindService(b, Key("fd00:96::10", 80));
  REQUIRE(v6 != nullptr);
  CHECK(TableBackends(b, v6->value.table_id, names) ==
        std::set<std::string>{"[fd00:10::1]:8080", "[fd00:10::2]:8080"});
  const ServiceEntry* np6 = FindService(b, Key("fd00:1::10", 30080));
  REQUIRE(np6 != nullptr);
  CHECK(np6->value.table_id == v6->value.table_id);
  const ServiceEntry* v4 = FindService(b, Key("10.96.0.10", 80));
  CHECK(TableBackends(b, v4->value.table_id, names) == std::set<std::string>{"10.0.1.1:8080"});
}

TEST_CASE("externalTrafficPolicy Local: EXT scope has local endpoints, INT scope the cluster") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1", "node-1"), Ep("10.0.1.2", "node-2")});
  svc.type = ServiceType::kLoadBalancer;
  svc.ports[0].node_port = 30080;
  svc.load_balancer_ips = {Ip("203.0.113.5")};
  svc.external_traffic_policy = TrafficPolicy::kLocal;
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch b = lb.Diff();
  const auto names = BackendNames(b);
  for (auto [ip, port, kind] : {std::tuple{"203.0.113.5", 80, DPV2_LB_F_LOADBALANCER},
                                std::tuple{"192.168.1.10", 30080, DPV2_LB_F_NODEPORT}}) {
    const ServiceEntry* ext = FindService(b, Key(ip, port, DPV2_LB_SCOPE_EXT));
    const ServiceEntry* in = FindService(b, Key(ip, port, DPV2_LB_SCOPE_INT));
    REQUIRE(ext != nullptr);
    REQUIRE(in != nullptr);
    CHECK(ext->value.flags == (kind | DPV2_LB_F_LOCAL | DPV2_LB_F_TWO_SCOPES));
    CHECK(in->value.flags == kind);
    CHECK(ext->value.service_id == in->value.service_id);
    CHECK(TableBackends(b, ext->value.table_id, names) == std::set<std::string>{"10.0.1.1:8080"});
    CHECK(TableBackends(b, in->value.table_id, names) ==
          std::set<std::string>{"10.0.1.1:8080", "10.0.1.2:8080"});
  }
  // ClusterIP traffic follows internalTrafficPolicy (Cluster): one scope.
  const ServiceEntry* cip = FindService(b, Key("10.96.0.10", 80));
  CHECK(cip->value.flags == 0);
  CHECK(cip->value.backend_count == 2);
  CHECK(FindService(b, Key("10.96.0.10", 80, DPV2_LB_SCOPE_INT)) == nullptr);
  // Local backends carry the flag.
  for (const BackendEntry& e : b.backends_upsert) {
    CHECK(e.value.flags == (names.at(e.id) == "10.0.1.1:8080" ? DPV2_BACKEND_F_LOCAL : 0));
  }
}

TEST_CASE("Local policy with no local endpoint drops; no endpoint at all rejects") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.2", "node-2")});
  svc.type = ServiceType::kNodePort;
  svc.ports[0].node_port = 30080;
  svc.external_traffic_policy = TrafficPolicy::kLocal;
  svc.internal_traffic_policy = TrafficPolicy::kLocal;
  REQUIRE(lb.UpsertService(svc).ok());
  ChangeBatch b = Sync(lb);
  const ServiceEntry* cip = FindService(b, Key("10.96.0.10", 80));
  CHECK(cip->value.flags == (DPV2_LB_F_LOCAL | DPV2_LB_F_EMPTY_DROP));
  CHECK(cip->value.backend_count == 0);
  CHECK(cip->value.table_id == 0);
  const ServiceEntry* np = FindService(b, Key("192.168.1.10", 30080));
  CHECK(np->value.flags ==
        (DPV2_LB_F_NODEPORT | DPV2_LB_F_LOCAL | DPV2_LB_F_EMPTY_DROP | DPV2_LB_F_TWO_SCOPES));
  CHECK(np->value.table_id == 0);
  // Pod traffic to the node port still reaches the remote endpoint.
  CHECK(FindService(b, Key("192.168.1.10", 30080, DPV2_LB_SCOPE_INT))->value.backend_count == 1);

  svc.endpoint_slices[0].endpoints.clear();
  REQUIRE(lb.UpsertService(svc).ok());
  b = lb.Diff();
  cip = FindService(b, Key("10.96.0.10", 80));
  REQUIRE(cip != nullptr);
  CHECK(cip->value.flags == DPV2_LB_F_LOCAL);  // no EMPTY_DROP: REJECT
  np = FindService(b, Key("192.168.1.10", 30080));
  CHECK(np->value.flags == (DPV2_LB_F_NODEPORT | DPV2_LB_F_LOCAL | DPV2_LB_F_TWO_SCOPES));
  CHECK(FindService(b, Key("192.168.1.10", 30080, DPV2_LB_SCOPE_INT))->value.table_id == 0);
  CHECK(b.backends_delete.size() == 1);
}

TEST_CASE("a Cluster service without endpoints has no table and rejects") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1", "node-2", false)})).ok());
  const ChangeBatch b = lb.Diff();
  const ServiceEntry* e = FindService(b, Key("10.96.0.10", 80));
  CHECK(e->value.flags == 0);
  CHECK(e->value.backend_count == 0);
  CHECK(e->value.table_id == 0);
  CHECK(b.tables_upsert.empty());
  CHECK(b.backends_upsert.size() == 1);  // the unready endpoint keeps its backend entry
}

TEST_CASE("sessionAffinity ClientIP sets the flag and timeout on every frontend") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
  svc.type = ServiceType::kNodePort;
  svc.ports[0].node_port = 30080;
  svc.session_affinity = SessionAffinity::kClientIP;
  svc.affinity_timeout_s = 600;
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch b = lb.Diff();
  REQUIRE(b.services_upsert.size() == 2);
  for (const ServiceEntry& e : b.services_upsert) {
    CHECK((e.value.flags & DPV2_LB_F_AFFINITY) != 0);
    CHECK(e.value.affinity_timeout_s == 600);
  }
}

TEST_CASE("loadBalancerSourceRanges guard LB IPs of the same family only") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
  svc.type = ServiceType::kLoadBalancer;
  svc.load_balancer_ips = {Ip("203.0.113.5")};
  svc.external_ips = {Ip("192.0.2.7")};
  svc.load_balancer_source_ranges = {*Prefix::Parse("198.51.100.0/24"),
                                     *Prefix::Parse("10.0.0.0/8"), *Prefix::Parse("fd00::/8")};
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch b = lb.Diff();
  const ServiceEntry* lbe = FindService(b, Key("203.0.113.5", 80));
  REQUIRE(lbe != nullptr);
  CHECK(lbe->value.flags == (DPV2_LB_F_LOADBALANCER | DPV2_LB_F_SOURCE_RANGES));
  const ServiceEntry* ext = FindService(b, Key("192.0.2.7", 80));
  REQUIRE(ext != nullptr);
  CHECK(ext->value.flags == DPV2_LB_F_LOADBALANCER);
  CHECK(FindService(b, Key("10.96.0.10", 80))->value.flags == 0);
  REQUIRE(b.source_ranges_upsert.size() == 2);
  std::set<std::string> ranges;
  for (const dpv2_src_range_key& k : b.source_ranges_upsert) {
    CHECK(k.service_id == lbe->value.service_id);
    CHECK(k.family == DPV2_FAMILY_V4);
    ranges.insert(
        absl::StrCat(IpAddr::FromAbi(k.addr, Family::kV4).ToString(), "/", k.prefixlen - 64));
  }
  CHECK(ranges == std::set<std::string>{"198.51.100.0/24", "10.0.0.0/8"});

  // Dropping one range deletes just that key.
  Sync(lb);
  svc.load_balancer_source_ranges.erase(svc.load_balancer_source_ranges.begin());
  REQUIRE(lb.UpsertService(svc).ok());
  const ChangeBatch d = lb.Diff();
  CHECK(d.source_ranges_delete.size() == 1);
  CHECK(d.source_ranges_upsert.empty());
  CHECK(d.services_upsert.empty());
}

TEST_CASE("terminating endpoints keep their backend and serve only when nothing is ready") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2", "node-2", false,
                                                                /*terminating=*/true)}))
              .ok());
  ChangeBatch b = Sync(lb);
  auto names = BackendNames(b);
  CHECK(names.size() == 2);
  const ServiceEntry* e = FindService(b, Key("10.96.0.10", 80));
  CHECK(TableBackends(b, e->value.table_id, names) == std::set<std::string>{"10.0.1.1:8080"});

  // The ready one goes away: the terminating one is used as a fallback.
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.2", "node-2", false, true)})).ok());
  b = lb.Diff();
  CHECK(b.backends_delete.size() == 1);
  CHECK(b.backends_upsert.empty());
  REQUIRE(b.tables_upsert.size() == 1);
  for (uint32_t id : b.tables_upsert[0].slots) {
    CHECK(names.at(id) == "10.0.1.2:8080");
  }
}

TEST_CASE("topology hints filter ClusterIP backends to the node's zone") {
  LbState lb = MakeState();
  EndpointSpec a = Ep("10.0.1.1");
  a.hints.for_zones = {"zone-a"};
  EndpointSpec b2 = Ep("10.0.1.2");
  b2.hints.for_zones = {"zone-b"};
  REQUIRE(lb.UpsertService(ClusterIpService({a, b2})).ok());
  const std::vector<FrontendView> f = lb.Frontends();
  REQUIRE(f.size() == 1);
  CHECK(f[0].backends == std::vector<std::string>{"10.0.1.1:8080"});
  CHECK(lb.Backends().size() == 2);  // the other zone's backend still exists
}

TEST_CASE("named target ports resolve per slice and protocols match per port") {
  LbState lb = MakeState();
  ServiceSpec svc{.namespace_name = "default", .name = "dns", .cluster_ips = {Ip("10.96.0.53")}};
  svc.ports.push_back({.name = "dns", .protocol = L4Proto::kUDP, .port = 53});
  svc.ports.push_back({.name = "dns-tcp", .protocol = L4Proto::kTCP, .port = 53});
  EndpointSliceSpec s1 = Slice("dns-1", {Ep("10.0.1.1")}, 5353, Family::kV4, "dns", L4Proto::kUDP);
  s1.ports.push_back({.name = "dns-tcp", .protocol = L4Proto::kTCP, .port = 5354});
  // A second slice whose pods resolve the named port differently.
  EndpointSliceSpec s2 = Slice("dns-2", {Ep("10.0.1.2")}, 1053, Family::kV4, "dns", L4Proto::kUDP);
  svc.endpoint_slices = {s1, s2};
  REQUIRE(lb.UpsertService(svc).ok());
  const std::vector<FrontendView> f = lb.Frontends();
  REQUIRE(f.size() == 2);
  const FrontendView& tcp = f[0].protocol == L4Proto::kTCP ? f[0] : f[1];
  const FrontendView& udp = f[0].protocol == L4Proto::kUDP ? f[0] : f[1];
  CHECK(udp.backends == std::vector<std::string>{"10.0.1.1:5353", "10.0.1.2:1053"});
  CHECK(tcp.backends == std::vector<std::string>{"10.0.1.1:5354"});
  for (const BackendView& bv : lb.Backends()) {
    CHECK(bv.protocol == (bv.port == 5354 ? L4Proto::kTCP : L4Proto::kUDP));
  }
}

TEST_CASE("SetNode recomputes local backends and NodePort addresses") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1", "node-2")});
  svc.type = ServiceType::kNodePort;
  svc.ports[0].node_port = 30080;
  REQUIRE(lb.UpsertService(svc).ok());
  Sync(lb);
  REQUIRE(lb.SetNode({.name = "node-2", .addresses = {Ip("192.168.1.20")}}).ok());
  const ChangeBatch b = lb.Diff();
  REQUIRE(b.backends_upsert.size() == 1);
  CHECK(b.backends_upsert[0].value.flags == DPV2_BACKEND_F_LOCAL);
  CHECK(b.services_delete.size() == 1);  // the old node address
  CHECK(FindService(b, Key("192.168.1.20", 30080)) != nullptr);
  CHECK(b.tables_upsert.empty());  // same backend set, same table
}

TEST_CASE("the node's first address of each family is written for SNAT, and follows the node") {
  LbState lb = MakeState();
  ChangeBatch b = lb.Diff();
  REQUIRE(b.node_addresses_upsert.size() == 1);
  CHECK(b.node_addresses_upsert[0].family == DPV2_FAMILY_V4);
  CHECK(IpAddr::FromAbi(b.node_addresses_upsert[0].addr, Family::kV4) == Ip("192.168.1.10"));
  Sync(lb);
  CHECK(lb.Diff().empty());

  REQUIRE(lb.SetNode({.name = "node-1",
                      .addresses = {Ip("fd00:1::10"), Ip("192.168.1.11"), Ip("192.168.1.12"),
                                    Ip("fd00:1::11")}})
              .ok());
  b = lb.Diff();
  REQUIRE(b.node_addresses_upsert.size() == 2);
  CHECK(IpAddr::FromAbi(b.node_addresses_upsert[0].addr, Family::kV4) == Ip("192.168.1.11"));
  CHECK(IpAddr::FromAbi(b.node_addresses_upsert[1].addr, Family::kV6) == Ip("fd00:1::10"));
  CHECK(b.node_addresses_delete.empty());
  Sync(lb);

  REQUIRE(lb.SetNode({.name = "node-1", .addresses = {Ip("fd00:1::10")}}).ok());
  b = lb.Diff();
  CHECK(b.node_addresses_upsert.empty());
  CHECK(b.node_addresses_delete == std::vector<uint8_t>{DPV2_FAMILY_V4});
  Sync(lb);
  CHECK(lb.Diff().empty());
  lb.ResetAcknowledged();
  CHECK(lb.Diff().node_addresses_upsert.size() == 1);
}

TEST_CASE("random selection flags frontends and fills the table evenly") {
  LbState lb = MakeState({.selection = BackendSelection::kRandom});
  REQUIRE(
      lb.UpsertService(ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2"), Ep("10.0.1.3")})).ok());
  const ChangeBatch b = lb.Diff();
  CHECK(b.services_upsert[0].value.flags == DPV2_LB_F_RANDOM);
  std::map<uint32_t, int> counts;
  for (uint32_t id : b.tables_upsert[0].slots) {
    ++counts[id];
  }
  REQUIRE(counts.size() == 3);
  for (const auto& [id, n] : counts) {
    CHECK((n == kM / 3 || n == kM / 3 + 1));
  }
}

TEST_CASE(
    "every batch is self-consistent: tables name present backends, frontends present tables") {
  LbState lb = MakeState();
  std::set<uint32_t> backends;
  std::set<uint32_t> tables;
  for (int round = 0; round < 6; ++round) {
    std::vector<EndpointSpec> eps;
    for (int i = 0; i < 3 + round % 3; ++i) {
      eps.push_back(Ep(absl::StrCat("10.0.", round % 2, ".", i + 1).c_str()));
    }
    REQUIRE(lb.UpsertService(ClusterIpService(eps, "a", "10.96.0.1")).ok());
    if (round % 2 == 0) {
      REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.9.9")}, "b", "10.96.0.2")).ok());
    } else {
      REQUIRE(lb.RemoveService("default", "b").ok());
    }
    const ChangeBatch b = lb.Diff();
    // Apply in the ordering contract of batch.h.
    for (const BackendEntry& e : b.backends_upsert) backends.insert(e.id);
    for (const LookupTable& t : b.tables_upsert) {
      for (uint32_t id : t.slots) REQUIRE(backends.contains(id));
      tables.insert(t.id);
    }
    for (const ServiceEntry& e : b.services_upsert) {
      if (e.value.table_id != 0) REQUIRE(tables.contains(e.value.table_id));
    }
    for (uint32_t id : b.tables_delete) tables.erase(id);
    for (uint32_t id : b.backends_delete) backends.erase(id);
    lb.Acknowledge(b);
    CHECK(lb.Diff().empty());
  }
}

TEST_CASE("a frontend another service serves is refused and nothing changes") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")}, "a", "10.96.0.1")).ok());
  Sync(lb);
  const absl::Status s = lb.UpsertService(ClusterIpService({Ep("10.0.1.2")}, "b", "10.96.0.1"));
  CHECK(s.code() == absl::StatusCode::kAlreadyExists);
  CHECK(s.message() ==
        "service default/b: frontend 10.96.0.1:80/TCP is already served by service default/a");
  CHECK(lb.Diff().empty());
  CHECK(lb.service_count() == 1);
}

TEST_CASE("an invalid service is refused with its message and nothing changes") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")})).ok());
  Sync(lb);
  ServiceSpec bad = ClusterIpService({Ep("10.0.1.2")});
  bad.type = ServiceType::kNodePort;
  bad.ports[0].node_port = 80;
  const absl::Status s = lb.UpsertService(bad);
  CHECK(s.message() ==
        "service default/web: ports[0] \"http\": nodePort 80 out of range 30000-32767");
  CHECK(lb.Diff().empty());
  REQUIRE(lb.Frontends().size() == 1);
  CHECK(lb.Frontends()[0].backends == std::vector<std::string>{"10.0.1.1:8080"});
}

TEST_CASE("the node port range is configurable") {
  LbState lb = MakeState({.node_port_range = {.first = 80, .last = 100}});
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
  svc.type = ServiceType::kNodePort;
  svc.ports[0].node_port = 90;
  CHECK(lb.UpsertService(svc).ok());
  CHECK_FALSE(LbState::Create({.node_port_range = {.first = 200, .last = 100}}).ok());
}

TEST_CASE("capacity limits refuse a service by name and leave the state unchanged") {
  SECTION("max_services") {
    LbState lb = MakeState({.datapath = {.maglev_table_size = kM, .max_services = 2}});
    ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
    svc.type = ServiceType::kNodePort;
    svc.ports[0].node_port = 30080;
    REQUIRE(lb.UpsertService(svc).ok());  // 2 frontends
    Sync(lb);
    const absl::Status s =
        lb.UpsertService(ClusterIpService({Ep("10.0.1.1")}, "other", "10.96.0.2"));
    CHECK(s.code() == absl::StatusCode::kResourceExhausted);
    CHECK(s.message() ==
          "service default/other: needs 3 frontend entries, above datapath max_services 2");
    CHECK(lb.Diff().empty());
    CHECK(lb.service_count() == 1);
    // Replacing the service within the limit is fine.
    svc.ports[0].node_port = 30081;
    CHECK(lb.UpsertService(svc).ok());
  }
  SECTION("max_backends") {
    LbState lb = MakeState({.datapath = {.maglev_table_size = kM, .max_backends = 2}});
    REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2")})).ok());
    const ChangeBatch before = lb.Diff();
    const absl::Status s = lb.UpsertService(ClusterIpService({Ep("10.0.1.3")}, "b", "10.96.0.2"));
    CHECK(s.message() == "service default/b: needs 3 backends, above datapath max_backends 2");
    CHECK(lb.Diff().size() == before.size());
    // A service reusing existing backends fits.
    CHECK(lb.UpsertService(ClusterIpService({Ep("10.0.1.2")}, "c", "10.96.0.3")).ok());
  }
  SECTION("max_tables") {
    LbState lb = MakeState({.datapath = {.maglev_table_size = kM, .max_tables = 1}});
    REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")})).ok());
    const absl::Status s = lb.UpsertService(ClusterIpService({Ep("10.0.1.2")}, "b", "10.96.0.2"));
    CHECK(s.message() == "service default/b: needs 2 lookup tables, above datapath max_tables 1");
    // Changing the one service's backends replaces its table: still one.
    CHECK(lb.UpsertService(ClusterIpService({Ep("10.0.1.2")})).ok());
  }
  SECTION("max_source_ranges") {
    LbState lb = MakeState({.datapath = {.maglev_table_size = kM, .max_source_ranges = 1}});
    Sync(lb);  // the node address
    ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
    svc.type = ServiceType::kLoadBalancer;
    svc.load_balancer_ips = {Ip("203.0.113.5")};
    svc.load_balancer_source_ranges = {*Prefix::Parse("198.51.100.0/24"),
                                       *Prefix::Parse("10.0.0.0/8")};
    const absl::Status s = lb.UpsertService(svc);
    CHECK(s.message() ==
          "service default/web: needs 2 source ranges, above datapath max_source_ranges 1");
    CHECK(lb.Diff().empty());
  }
}

TEST_CASE("LbState rejects a datapath config whose Maglev size is not a prime") {
  absl::StatusOr<LbState> s = LbState::Create({.datapath = {.maglev_table_size = 250}});
  CHECK(s.status().message() == "datapath config: maglev_table_size 250 is not a prime");
}

TEST_CASE("Frontends lists every frontend scope with kind and selected backends for tooling") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.2", "node-1"), Ep("10.0.1.1", "node-2")});
  svc.type = ServiceType::kLoadBalancer;
  svc.ports[0].node_port = 30080;
  svc.load_balancer_ips = {Ip("203.0.113.5")};
  svc.external_ips = {Ip("192.0.2.7")};
  svc.external_traffic_policy = TrafficPolicy::kLocal;
  REQUIRE(lb.UpsertService(svc).ok());
  const std::vector<FrontendView> f = lb.Frontends();
  REQUIRE(f.size() == 7);  // ClusterIP + 3 external kinds x 2 scopes
  std::map<std::string, int> kinds;
  for (const FrontendView& v : f) {
    CHECK(v.service == "default/web");
    CHECK(v.port_name == "http");
    kinds[std::string(FrontendKindName(v.kind))]++;
    if (v.kind != FrontendKind::kClusterIP && v.scope == DPV2_LB_SCOPE_EXT) {
      CHECK(v.backends == std::vector<std::string>{"10.0.1.2:8080"});
    } else {
      CHECK(v.backends == std::vector<std::string>{"10.0.1.1:8080", "10.0.1.2:8080"});
    }
  }
  CHECK(kinds == std::map<std::string, int>{
                     {"ClusterIP", 1}, {"ExternalIP", 2}, {"LoadBalancer", 2}, {"NodePort", 2}});
}

TEST_CASE("ResetAcknowledged makes the next Diff write everything again") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")})).ok());
  const ChangeBatch first = Sync(lb);
  lb.ResetAcknowledged();
  const ChangeBatch again = lb.Diff();
  CHECK(again.size() == first.size());
  CHECK(again.backends_upsert[0].id == first.backends_upsert[0].id);
  CHECK(again.services_upsert[0].value.service_id == first.services_upsert[0].value.service_id);
}

TEST_CASE("a service removed and re-added before acknowledgement causes no churn") {
  LbState lb = MakeState();
  const ServiceSpec svc = ClusterIpService({Ep("10.0.1.1"), Ep("10.0.1.2")});
  REQUIRE(lb.UpsertService(svc).ok());
  Sync(lb);
  REQUIRE(lb.RemoveService("default", "web").ok());
  REQUIRE(lb.UpsertService(svc).ok());
  CHECK(lb.Diff().empty());
}

}  // namespace
}  // namespace dpv2

namespace dpv2 {
namespace {

TEST_CASE("HealthChecks counts this node's ready endpoints for healthCheckNodePort services") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService(
      {Ep("10.0.1.1", "node-1"), Ep("10.0.1.2", "node-1", false), Ep("10.0.1.3", "node-2")});
  svc.type = ServiceType::kLoadBalancer;
  svc.external_traffic_policy = TrafficPolicy::kLocal;
  svc.health_check_node_port = 32000;
  REQUIRE(lb.UpsertService(svc).ok());
  REQUIRE(
      lb.UpsertService(ClusterIpService({Ep("10.0.1.1", "node-1")}, "plain", "10.96.0.2")).ok());
  const std::vector<HealthCheckView> hc = lb.HealthChecks();
  REQUIRE(hc.size() == 1);
  CHECK(hc[0].name == "web");
  CHECK(hc[0].health_check_node_port == 32000);
  CHECK(hc[0].local_endpoints == 1);
  REQUIRE(lb.SetNode({.name = "node-3"}).ok());
  CHECK(lb.HealthChecks()[0].local_endpoints == 0);
}

TEST_CASE("slice ports that are absent (0) are ignored and a ready duplicate wins") {
  LbState lb = MakeState();
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1", "node-2", false)});
  // A slice whose port is absent contributes nothing.
  svc.endpoint_slices.push_back(Slice("web-2", {Ep("10.0.1.9")}, 0));
  // The same endpoint, ready, in a slice that replaces the first.
  svc.endpoint_slices.push_back(Slice("web-3", {Ep("10.0.1.1")}));
  REQUIRE(lb.UpsertService(svc).ok());
  const std::vector<FrontendView> f = lb.Frontends();
  REQUIRE(f.size() == 1);
  CHECK(f[0].backends == std::vector<std::string>{"10.0.1.1:8080"});
  CHECK(lb.Backends().size() == 1);
}

TEST_CASE("a repeated source range is written once") {
  LbState lb = MakeState({.datapath = {.maglev_table_size = kM, .max_source_ranges = 1}});
  ServiceSpec svc = ClusterIpService({Ep("10.0.1.1")});
  svc.type = ServiceType::kLoadBalancer;
  svc.load_balancer_ips = {Ip("203.0.113.5")};
  svc.load_balancer_source_ranges = {*Prefix::Parse("198.51.100.0/24"),
                                     *Prefix::Parse("198.51.100.0/24")};
  REQUIRE(lb.UpsertService(svc).ok());
  CHECK(lb.Diff().source_ranges_upsert.size() == 1);
  REQUIRE(lb.UpsertService(svc).ok());  // replacing counts the old ranges out
}

TEST_CASE("Acknowledging a stale batch converges on the next Diff") {
  LbState lb = MakeState();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.1")})).ok());
  const ChangeBatch stale = lb.Diff();
  REQUIRE(lb.UpsertService(ClusterIpService({Ep("10.0.1.2")})).ok());
  lb.Acknowledge(stale);  // the backend applied the older batch
  const ChangeBatch b = lb.Diff();
  CHECK(b.backends_delete.size() == 1);
  CHECK(b.tables_delete.size() == 1);
  CHECK(b.backends_upsert.size() == 1);
  CHECK(b.tables_upsert.size() == 1);
  CHECK(b.services_upsert.size() == 1);
  lb.Acknowledge(b);
  CHECK(lb.Diff().empty());
  CHECK(lb.Frontends()[0].backends == std::vector<std::string>{"10.0.1.2:8080"});
}

TEST_CASE("after one Service of many changes, Diff holds only that Service's records") {
  LbState lb = MakeState();
  for (int i = 0; i < 200; ++i) {
    const std::string name = absl::StrCat("svc-", i);
    const std::string vip = absl::StrCat("10.96.1.", i);
    const std::string ep = absl::StrCat("10.0.2.", i);
    REQUIRE(lb.UpsertService(ClusterIpService({Ep(ep.c_str())}, name.c_str(), vip.c_str())).ok());
  }
  const ChangeBatch first = lb.Diff();
  lb.Acknowledge(first);
  REQUIRE(lb.Diff().empty());
  REQUIRE(lb.UpsertService(
                ClusterIpService({Ep("10.0.2.7"), Ep("10.0.3.7")}, "svc-7", "10.96.1.7"))
              .ok());
  const ChangeBatch b = lb.Diff();
  CHECK(b.backends_upsert.size() == 1);
  CHECK(b.tables_upsert.size() == 1);
  CHECK(b.tables_delete.size() == 1);
  REQUIRE(b.services_upsert.size() == 1);
  CHECK(IpAddr::FromAbi(b.services_upsert[0].key.addr, Family::kV4) == Ip("10.96.1.7"));
  CHECK(b.size() == 4);

  SECTION("a partial acknowledgement leaves the rest in the next Diff") {
    ChangeBatch part;
    part.backends_upsert = b.backends_upsert;
    part.tables_upsert = b.tables_upsert;
    lb.Acknowledge(part);
    const ChangeBatch rest = lb.Diff();
    CHECK(rest.backends_upsert.empty());
    CHECK(rest.tables_upsert.empty());
    CHECK(rest.services_upsert.size() == 1);
    CHECK(rest.tables_delete.size() == 1);
    CHECK(rest.size() == 2);
  }
  SECTION("an acknowledgement of records it never asked for is undone by the next Diff") {
    ChangeBatch foreign;
    foreign.services_delete.push_back(Key("10.96.1.9", 80));
    lb.Acknowledge(b);
    lb.Acknowledge(foreign);  // the backend lost svc-9's frontend
    const ChangeBatch again = lb.Diff();
    REQUIRE(again.services_upsert.size() == 1);
    CHECK(IpAddr::FromAbi(again.services_upsert[0].key.addr, Family::kV4) == Ip("10.96.1.9"));
    CHECK(again.size() == 1);
  }
  SECTION("ResetAcknowledged brings every record back, tables recomputed to the same slots") {
    lb.ResetAcknowledged();
    const ChangeBatch all = lb.Diff();
    CHECK(all.services_upsert.size() == 200);
    CHECK(all.backends_upsert.size() == 201);
    REQUIRE(all.tables_upsert.size() == 200);
    size_t same = 0;
    for (const LookupTable& t : all.tables_upsert) {
      for (const LookupTable& f : first.tables_upsert) {
        same += t.id == f.id && t.slots == f.slots ? 1 : 0;
      }
    }
    CHECK(same == 199);  // all but svc-7's, which has a new table
  }
}

TEST_CASE("PrepareServices computes the tables ahead and the upserts give the same batch") {
  // Services with 1 to 4 endpoints, some sharing a backend set (one table),
  // one invalid (no port), and one whose table the state already holds.
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < 60; ++i) {
    std::vector<EndpointSpec> eps;
    for (int e = 0; e <= i % 4; ++e) {
      eps.push_back(Ep(absl::StrCat("10.0.", i % 20, ".", e + 1).c_str()));
    }
    specs.push_back(ClusterIpService(eps, absl::StrCat("svc-", i).c_str(),
                                     absl::StrCat("10.96.2.", i + 1).c_str()));
  }
  specs[5].ports.clear();
  auto run = [&specs](std::optional<unsigned> threads) {
    // 1-2 backends get 251 slots, 3-4 get 509: tables of two sizes.
    LbState lb = MakeState({.datapath = {.maglev_table_size = 1021}});
    REQUIRE(lb.UpsertService(specs[0]).ok());
    if (threads) {
      std::vector<const ServiceSpec*> ptrs;
      for (const ServiceSpec& s : specs) {
        ptrs.push_back(&s);
      }
      lb.PrepareServices(ptrs, *threads);
    }
    for (size_t i = 1; i < specs.size(); ++i) {
      CHECK(lb.UpsertService(specs[i]).ok() == (i != 5));
    }
    return lb.Diff();
  };
  const ChangeBatch plain = run(std::nullopt);
  REQUIRE(plain.tables_upsert.size() == 20);  // one backend set per i % 20
  std::set<size_t> sizes;
  for (const LookupTable& t : plain.tables_upsert) {
    sizes.insert(t.slots.size());
  }
  CHECK(sizes == std::set<size_t>{251, 509});
  for (unsigned threads : {1u, 3u}) {
    const ChangeBatch prepared = run(threads);
    REQUIRE(prepared.tables_upsert.size() == plain.tables_upsert.size());
    for (size_t i = 0; i < plain.tables_upsert.size(); ++i) {
      CHECK(prepared.tables_upsert[i].id == plain.tables_upsert[i].id);
      CHECK(prepared.tables_upsert[i].slots == plain.tables_upsert[i].slots);
    }
    CHECK(prepared.services_upsert.size() == plain.services_upsert.size());
    CHECK(prepared.backends_upsert.size() == plain.backends_upsert.size());
  }
}

TEST_CASE("upserts after PrepareServices and a node change compile for the new node") {
  // 20 Services (enough to prepare), each with one endpoint on node-2: the
  // prepared compile saw node-1, where none is local.
  std::vector<ServiceSpec> specs;
  std::vector<const ServiceSpec*> ptrs;
  for (int i = 0; i < 20; ++i) {
    specs.push_back(ClusterIpService({Ep(absl::StrCat("10.0.3.", i + 1).c_str(), "node-2")},
                                     absl::StrCat("svc-", i).c_str(),
                                     absl::StrCat("10.96.3.", i + 1).c_str()));
  }
  for (const ServiceSpec& s : specs) {
    ptrs.push_back(&s);
  }
  LbState lb = MakeState();
  lb.PrepareServices(ptrs, 1);
  REQUIRE(lb.SetNode({.name = "node-2", .zone = "zone-a", .addresses = {Ip("192.168.1.11")}}).ok());
  for (const ServiceSpec& s : specs) {
    REQUIRE(lb.UpsertService(s).ok());
  }
  const ChangeBatch b = lb.Diff();
  REQUIRE(b.backends_upsert.size() == 20);
  for (const BackendEntry& e : b.backends_upsert) {
    CHECK(e.value.flags == DPV2_BACKEND_F_LOCAL);
  }
}

// Endpoints 10.0.<subnet>.1 .. 10.0.<subnet>.n.
std::vector<EndpointSpec> Eps(int n, int subnet = 0) {
  std::vector<EndpointSpec> eps;
  for (int e = 1; e <= n; ++e) {
    eps.push_back(Ep(absl::StrCat("10.0.", subnet, ".", e).c_str()));
  }
  return eps;
}

// The one table of a batch holding a single Service.
const LookupTable& OnlyTable(const ChangeBatch& b) {
  REQUIRE(b.tables_upsert.size() == 1);
  return b.tables_upsert[0];
}

TEST_CASE("each Service's lookup table is sized by its backend count, capped at "
          "maglev_table_size, each backend holding floor or ceil of M/N slots") {
  for (const auto& [n, m] : std::vector<std::pair<int, size_t>>{
           {1, 251}, {2, 251}, {3, 509}, {10, 1021}, {12, 2039}, {40, 4093}, {41, 4093}}) {
    LbState lb = MakeState({.datapath = {.maglev_table_size = 4093}});
    REQUIRE(lb.UpsertService(ClusterIpService(Eps(n))).ok());
    const ChangeBatch b = lb.Diff();
    const LookupTable& t = OnlyTable(b);
    INFO(n << " backends");
    CHECK(t.slots.size() == m);
    std::map<uint32_t, size_t> counts;
    for (uint32_t id : t.slots) {
      ++counts[id];
    }
    CHECK(counts.size() == static_cast<size_t>(n));
    for (const auto& [id, k] : counts) {
      CHECK((k == m / n || k == m / n + 1));
    }
  }
}

TEST_CASE("maglev_slots_per_backend 0 gives every Service's table maglev_table_size slots") {
  for (int n : {1, 10}) {
    LbState lb = MakeState(
        {.datapath = {.maglev_table_size = 4093, .maglev_slots_per_backend = 0}});
    REQUIRE(lb.UpsertService(ClusterIpService(Eps(n))).ok());
    CHECK(OnlyTable(lb.Diff()).slots.size() == 4093);
  }
}

TEST_CASE("random selection fills a table of the same per-Service size evenly") {
  LbState lb = MakeState(
      {.datapath = {.maglev_table_size = 4093}, .selection = BackendSelection::kRandom});
  REQUIRE(lb.UpsertService(ClusterIpService(Eps(3))).ok());
  const ChangeBatch b = lb.Diff();
  const LookupTable& t = OnlyTable(b);
  REQUIRE(t.slots.size() == 509);
  std::map<uint32_t, size_t> counts;
  for (uint32_t id : t.slots) {
    ++counts[id];
  }
  REQUIRE(counts.size() == 3);
  for (const auto& [id, k] : counts) {
    CHECK((k == 169 || k == 170));
  }
}

TEST_CASE("a backend change below a ladder step moves about M/N slots; crossing a step makes a "
          "table of the next size") {
  LbState lb = MakeState({.datapath = {.maglev_table_size = 4093}});
  REQUIRE(lb.UpsertService(ClusterIpService(Eps(9))).ok());
  ChangeBatch nine = lb.Diff();
  lb.Acknowledge(nine);
  const std::vector<uint32_t> before = OnlyTable(nine).slots;
  REQUIRE(before.size() == 1021);

  REQUIRE(lb.UpsertService(ClusterIpService(Eps(10))).ok());
  ChangeBatch ten = lb.Diff();
  lb.Acknowledge(ten);
  const std::vector<uint32_t> after = OnlyTable(ten).slots;
  REQUIRE(after.size() == 1021);  // 10 x 100 still fits 1021
  size_t moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    moved += before[i] != after[i] ? 1 : 0;
  }
  // The new backend takes its ~102 slots; Maglev moves few others.
  CHECK(moved >= 1021 / 10);
  CHECK(moved <= 2 * 1021 / 10);
  REQUIRE(ten.tables_delete.size() == 1);

  REQUIRE(lb.UpsertService(ClusterIpService(Eps(11))).ok());
  const ChangeBatch eleven = lb.Diff();
  CHECK(OnlyTable(eleven).slots.size() == 2039);
  CHECK(eleven.tables_delete == std::vector<uint32_t>{OnlyTable(ten).id});
  const ServiceEntry* svc = FindService(eleven, Key("10.96.0.10", 80));
  REQUIRE(svc != nullptr);
  CHECK(svc->value.table_id == OnlyTable(eleven).id);
  CHECK(svc->value.backend_count == 11);
}

}  // namespace
}  // namespace dpv2
