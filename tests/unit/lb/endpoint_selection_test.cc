// CategorizeEndpoints against the behaviours kube-proxy's topology tests pin
// down: topology hints (node, then zone), terminating fallback, Local policies
// and hasAnyEndpoints.
#include "dpv2/endpoint_selection.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

namespace dpv2 {
namespace {

struct Ep {
  std::string ip_port;
  bool ready = true;
  bool serving = false;
  bool terminating = false;
  bool local = false;
  std::vector<std::string> zones;
  std::vector<std::string> nodes;
};

std::vector<Endpoint> Make(const std::vector<Ep>& eps) {
  std::vector<Endpoint> out;
  for (const Ep& e : eps) {
    out.push_back({.endpoint = e.ip_port,
                   .is_local = e.local,
                   .ready = e.ready,
                   .serving = e.ready || e.serving,
                   .terminating = e.terminating,
                   .zone_hints = e.zones,
                   .node_hints = e.nodes});
  }
  return out;
}

using Set = std::set<std::string>;

Set Names(const std::vector<Endpoint>& eps) {
  Set s;
  for (const Endpoint& e : eps) {
    s.insert(e.endpoint);
  }
  return s;
}

struct Case {
  std::string name;
  NodeInfo node;
  ServiceTopologyInfo svc;
  std::vector<Ep> endpoints;
  std::optional<Set> cluster;  // nullopt: the service does not use Cluster endpoints
  std::optional<Set> local;
  Set all;
  bool has_any;
};

const NodeInfo kNodeA{.name = "node-1", .zone = "zone-a"};

TEST_CASE("CategorizeEndpoints matches kube-proxy's topology and traffic policy rules") {
  const ServiceTopologyInfo cluster{};
  const ServiceTopologyInfo etp_local{.external_policy_local = true, .externally_accessible = true};
  const ServiceTopologyInfo itp_local{.internal_policy_local = true};
  const ServiceTopologyInfo itp_local_np{.internal_policy_local = true,
                                         .externally_accessible = true};
  const ServiceTopologyInfo both_local{
      .internal_policy_local = true, .external_policy_local = true, .externally_accessible = true};
  const std::vector<Case> cases = {
      {"zone hints on every endpoint filter to the node's zone",
       kNodeA,
       cluster,
       {{"10.1.2.3:80", true, false, false, false, {"zone-a"}},
        {"10.1.2.4:80", true, false, false, false, {"zone-b"}},
        {"10.1.2.5:80", true, false, false, false, {"zone-c"}},
        {"10.1.2.6:80", true, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80", "10.1.2.6:80"},
       std::nullopt,
       {"10.1.2.3:80", "10.1.2.6:80"},
       true},
      {"externalTrafficPolicy Local ignores topology for local endpoints",
       kNodeA,
       etp_local,
       {{"10.1.2.3:80", true, false, false, true, {"zone-a"}},
        {"10.1.2.4:80", true, false, false, true, {"zone-b"}},
        {"10.1.2.5:80", true, false, false, false, {"zone-c"}},
        {"10.1.2.6:80", true, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80", "10.1.2.6:80"},
       Set{"10.1.2.3:80", "10.1.2.4:80"},
       {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
       true},
      {"internalTrafficPolicy Local ignores topology for local endpoints",
       kNodeA,
       itp_local_np,
       {{"10.1.2.3:80", true, false, false, true, {"zone-a"}},
        {"10.1.2.4:80", true, false, false, true, {"zone-b"}},
        {"10.1.2.5:80", true, false, false, false, {"zone-c"}},
        {"10.1.2.6:80", true, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80", "10.1.2.6:80"},
       Set{"10.1.2.3:80", "10.1.2.4:80"},
       {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
       true},
      {"a node without zone label ignores zone hints",
       {.name = "node-1"},
       cluster,
       {{"10.1.2.3:80", true, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80"},
       std::nullopt,
       {"10.1.2.3:80"},
       true},
      {"a node in a zone no endpoint is hinted for ignores hints",
       {.name = "node-1", .zone = "zone-b"},
       cluster,
       {{"10.1.2.3:80", true, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80"},
       std::nullopt,
       {"10.1.2.3:80"},
       true},
      {"an unready endpoint is not selected even when hinted",
       kNodeA,
       cluster,
       {{"10.1.2.3:80", true, false, false, false, {"zone-a"}},
        {"10.1.2.4:80", true, false, false, false, {"zone-b"}},
        {"10.1.2.5:80", true, false, false, false, {"zone-c"}},
        {"10.1.2.6:80", false, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80"},
       std::nullopt,
       {"10.1.2.3:80"},
       true},
      {"only unready endpoints in the node's zone: no filtering",
       kNodeA,
       cluster,
       {{"10.1.2.3:80", false, false, false, false, {"zone-a"}},
        {"10.1.2.4:80", true, false, false, false, {"zone-b"}},
        {"10.1.2.5:80", true, false, false, false, {"zone-c"}},
        {"10.1.2.6:80", false, false, false, false, {"zone-a"}}},
       Set{"10.1.2.4:80", "10.1.2.5:80"},
       std::nullopt,
       {"10.1.2.4:80", "10.1.2.5:80"},
       true},
      {"one ready endpoint without hints disables topology",
       kNodeA,
       cluster,
       {{"10.1.2.3:80", true, false, false, false, {"zone-a"}},
        {"10.1.2.4:80", true, false, false, false, {"zone-b"}},
        {"10.1.2.5:80", true, false, false, false, {}},
        {"10.1.2.6:80", true, false, false, false, {"zone-a"}}},
       Set{"10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"},
       std::nullopt,
       {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"},
       true},
      {"an endpoint hinted for several zones is used in each",
       {.name = "n", .zone = "zone-c"},
       cluster,
       {{"10.1.2.3:80", true, false, false, false, {"zone-a", "zone-b", "zone-c"}},
        {"10.1.2.4:80", true, false, false, false, {"zone-b", "zone-c"}},
        {"10.1.2.5:80", true, false, false, false, {"zone-b", "zone-d"}},
        {"10.1.2.6:80", true, false, false, false, {"zone-c"}}},
       Set{"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
       std::nullopt,
       {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
       true},
      {"topology and localness conflict: all reachable is the merge",
       kNodeA,
       etp_local,
       {{"10.0.0.0:80", true, false, false, true, {"zone-a"}},
        {"10.0.0.1:80", true, false, false, true, {"zone-b"}},
        {"10.0.0.2:80", true, false, false, false, {"zone-a"}},
        {"10.0.0.3:80", true, false, false, false, {"zone-b"}}},
       Set{"10.0.0.0:80", "10.0.0.2:80"},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       {"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80"},
       true},
      {"internalTrafficPolicy Local with no endpoints",
       kNodeA,
       itp_local,
       {},
       std::nullopt,
       Set{},
       {},
       false},
      {"internalTrafficPolicy Local with only remote endpoints: has endpoints, none local",
       kNodeA,
       itp_local,
       {{"10.0.0.0:80"}, {"10.0.0.1:80"}},
       std::nullopt,
       Set{},
       {},
       true},
      {"internalTrafficPolicy Local with all endpoints local",
       kNodeA,
       itp_local,
       {{"10.0.0.0:80", true, false, false, true}, {"10.0.0.1:80", true, false, false, true}},
       std::nullopt,
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"internalTrafficPolicy Local with some endpoints local",
       kNodeA,
       itp_local,
       {{"10.0.0.0:80", true, false, false, true}, {"10.0.0.1:80"}},
       std::nullopt,
       Set{"10.0.0.0:80"},
       {"10.0.0.0:80"},
       true},
      {"Cluster policy with no ready endpoint selects nothing",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", false}, {"10.0.0.1:80", false}},
       Set{},
       std::nullopt,
       {},
       false},
      {"Cluster policy uses only the ready endpoints",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", false}, {"10.0.0.1:80", true}},
       Set{"10.0.0.1:80"},
       std::nullopt,
       {"10.0.0.1:80"},
       true},
      {"Cluster policy falls back to serving terminating endpoints",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", false, true, true, true}, {"10.0.0.1:80", false, true, true, false}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       std::nullopt,
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"terminating but not serving endpoints are never used",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", false, false, true}},
       Set{},
       std::nullopt,
       {},
       false},
      {"iTP Local, eTP Cluster: cluster and local lists",
       kNodeA,
       itp_local_np,
       {{"10.0.0.0:80", true, false, false, true}, {"10.0.0.1:80"}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       Set{"10.0.0.0:80"},
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"iTP Cluster, eTP Local: cluster and local lists",
       kNodeA,
       etp_local,
       {{"10.0.0.0:80", true, false, false, true}, {"10.0.0.1:80"}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       Set{"10.0.0.0:80"},
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"iTP and eTP Local still use cluster endpoints for short-circuited pod traffic",
       kNodeA,
       both_local,
       {{"10.0.0.0:80", true, false, false, true}, {"10.0.0.1:80"}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       Set{"10.0.0.0:80"},
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"iTP and eTP Local, all endpoints remote",
       kNodeA,
       both_local,
       {{"10.0.0.0:80"}, {"10.0.0.1:80"}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       Set{},
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"iTP and eTP Local, all remote and terminating: has endpoints",
       kNodeA,
       both_local,
       {{"10.0.0.0:80", false, true, true}, {"10.0.0.1:80", false, true, true}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       Set{},
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"eTP Local falls back to local terminating endpoints independently of cluster",
       kNodeA,
       etp_local,
       {{"10.0.0.0:80", true, false, false, false},
        {"10.0.0.1:80", false, false, false, true},
        {"10.0.0.2:80", false, true, true, true},
        {"10.0.0.3:80", false, true, true, false}},
       Set{"10.0.0.0:80"},
       Set{"10.0.0.2:80"},
       {"10.0.0.0:80", "10.0.0.2:80"},
       true},
      {"externalTrafficPolicy is ignored when not externally accessible",
       kNodeA,
       {.external_policy_local = true},
       {{"10.0.0.0:80"}, {"10.0.0.1:80", true, false, false, true}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       std::nullopt,
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"an internal-only iTP Local service has no cluster endpoints",
       kNodeA,
       itp_local,
       {{"10.0.0.0:80"}, {"10.0.0.1:80", true, false, false, true}},
       std::nullopt,
       Set{"10.0.0.1:80"},
       {"10.0.0.1:80"},
       true},
      {"node hints on every endpoint, one for this node: PreferSameNode",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", true, false, false, true, {"zone-a"}, {"node-1"}},
        {"10.0.0.1:80", true, false, false, false, {"zone-a"}, {"node-2"}},
        {"10.0.0.2:80", true, false, false, false, {"zone-b"}, {"node-3"}}},
       Set{"10.0.0.0:80"},
       std::nullopt,
       {"10.0.0.0:80"},
       true},
      {"node hints, none for this node: falls back to zone hints",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", true, false, false, false, {"zone-a"}, {"node-2"}},
        {"10.0.0.1:80", true, false, false, false, {"zone-a"}, {"node-2"}},
        {"10.0.0.2:80", true, false, false, false, {"zone-b"}, {"node-3"}}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       std::nullopt,
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"an endpoint without node hint disables PreferSameNode",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", true, false, false, true, {"zone-a"}, {"node-1"}},
        {"10.0.0.1:80", true, false, false, false, {"zone-a"}, {}},
        {"10.0.0.2:80", true, false, false, false, {"zone-b"}, {"node-3"}}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       std::nullopt,
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
      {"with topology and only terminating endpoints, fallback ignores hints",
       kNodeA,
       cluster,
       {{"10.0.0.0:80", false, true, true, false, {"zone-b"}},
        {"10.0.0.1:80", false, true, true, false, {"zone-a"}}},
       Set{"10.0.0.0:80", "10.0.0.1:80"},
       std::nullopt,
       {"10.0.0.0:80", "10.0.0.1:80"},
       true},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      const CategorizedEndpoints got = CategorizeEndpoints(Make(c.endpoints), c.svc, c.node);
      REQUIRE(got.cluster.has_value() == c.cluster.has_value());
      if (c.cluster) {
        CHECK(Names(*got.cluster) == *c.cluster);
      }
      REQUIRE(got.local.has_value() == c.local.has_value());
      if (c.local) {
        CHECK(Names(*got.local) == *c.local);
      }
      CHECK(Names(got.all_reachable) == c.all);
      CHECK(got.all_reachable.size() == c.all.size());  // no duplicates in the merge
      CHECK(got.has_any_endpoints == c.has_any);
    }
  }
}

TEST_CASE("CategorizeEndpoints keeps the input order of endpoints") {
  const CategorizedEndpoints got =
      CategorizeEndpoints(Make({{"10.0.0.9:80"}, {"10.0.0.1:80"}, {"10.0.0.5:80"}}), {}, kNodeA);
  REQUIRE(got.cluster->size() == 3);
  CHECK((*got.cluster)[0].endpoint == "10.0.0.9:80");
  CHECK((*got.cluster)[2].endpoint == "10.0.0.5:80");
}

TEST_CASE("EndpointString brackets IPv6 addresses") {
  CHECK(EndpointString(*IpAddr::Parse("10.0.0.1"), 80) == "10.0.0.1:80");
  CHECK(EndpointString(*IpAddr::Parse("fd00::1"), 8080) == "[fd00::1]:8080");
}

TEST_CASE("UsesClusterEndpoints and UsesLocalEndpoints follow the traffic policies") {
  CHECK(ServiceTopologyInfo{}.UsesClusterEndpoints());
  CHECK_FALSE(ServiceTopologyInfo{}.UsesLocalEndpoints());
  CHECK_FALSE(ServiceTopologyInfo{.internal_policy_local = true}.UsesClusterEndpoints());
  CHECK(ServiceTopologyInfo{.internal_policy_local = true}.UsesLocalEndpoints());
  CHECK_FALSE(ServiceTopologyInfo{.external_policy_local = true}.UsesLocalEndpoints());
  CHECK(ServiceTopologyInfo{.external_policy_local = true, .externally_accessible = true}
            .UsesLocalEndpoints());
}

}  // namespace
}  // namespace dpv2

namespace dpv2 {
namespace {

TEST_CASE(
    "legacy opt-in: hints are honoured only with topology-mode Auto or a trafficDistribution") {
  const std::vector<Endpoint> eps = Make({{"10.1.2.3:80", true, false, false, false, {"zone-a"}},
                                          {"10.1.2.4:80", true, false, false, false, {"zone-b"}}});
  auto cluster_of = [&](ServiceTopologyInfo svc) {
    svc.require_topology_opt_in = true;
    return Names(*CategorizeEndpoints(eps, svc, kNodeA).cluster);
  };
  const Set all{"10.1.2.3:80", "10.1.2.4:80"};
  const Set zone_a{"10.1.2.3:80"};
  CHECK(cluster_of({}) == all);
  CHECK(cluster_of({.hints_annotation = "disabled"}) == all);
  CHECK(cluster_of({.hints_annotation = "aUto"}) == all);
  CHECK(cluster_of({.hints_annotation = "auto"}) == zone_a);
  CHECK(cluster_of({.hints_annotation = "Auto"}) == zone_a);
  CHECK(cluster_of({.traffic_distribution = "PreferClose"}) == zone_a);
  // Without the legacy switch, hints alone decide.
  CHECK(Names(*CategorizeEndpoints(eps, {}, kNodeA).cluster) == zone_a);
}

}  // namespace
}  // namespace dpv2
