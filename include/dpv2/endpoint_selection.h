// dpv2 endpoint selection: which endpoints of a Service port this node uses,
// exactly as kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go) decides.
//
// A pure function, so that it can be checked case by case against kube-proxy's
// own table of cases. Usable endpoints are the Ready ones; when there are none,
// the serving-and-terminating ones (independently for Cluster and Local).
// Topology hints (node hints, then zone hints) filter Cluster endpoints only.
//
//   dpv2::CategorizedEndpoints c = dpv2::CategorizeEndpoints(
//       endpoints, {.internal_policy_local = true}, node);
//   if (c.local->empty() && c.has_any_endpoints) { /* drop, do not reject */ }
#ifndef DPV2_ENDPOINT_SELECTION_H_
#define DPV2_ENDPOINT_SELECTION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "dpv2/net.h"
#include "dpv2/service.h"

namespace dpv2 {

// One endpoint of one Service port (kube-proxy's Endpoint interface).
struct Endpoint {
  std::string endpoint;  // "ip:port" ("[v6]:port" for IPv6): its identity
  IpAddr addr;
  uint16_t port = 0;
  bool is_local = false;  // runs on this node
  bool ready = false;
  bool serving = false;
  bool terminating = false;
  std::vector<std::string> zone_hints;
  std::vector<std::string> node_hints;
  std::string node_name;
  std::string zone;

  const std::string& String() const { return endpoint; }
};

// "10.0.0.1:80", "[fd00::1]:80".
std::string EndpointString(const IpAddr& addr, uint16_t port);

// The parts of a Service port that endpoint selection looks at.
struct ServiceTopologyInfo {
  bool internal_policy_local = false;  // internalTrafficPolicy: Local
  bool external_policy_local = false;  // externalTrafficPolicy: Local
  // nodePort != 0, or LB ingress IPs, or external IPs. externalTrafficPolicy is
  // ignored when false.
  bool externally_accessible = false;

  // spec.trafficDistribution and the service.kubernetes.io/topology-mode
  // (formerly topology-aware-hints) annotation. Current kube-proxy ignores
  // both: the EndpointSlice controller writes hints only when they ask for it.
  std::string traffic_distribution;
  std::string hints_annotation;
  // kube-proxy 1.27-1.32 behaviour: honour hints only when hints_annotation is
  // "Auto"/"auto" or traffic_distribution names a Prefer* mode. Off by default.
  bool require_topology_opt_in = false;

  // kube-proxy's ServicePort.UsesClusterEndpoints / UsesLocalEndpoints. Cluster
  // endpoints are also used by externally accessible ports under
  // externalTrafficPolicy Local (pod traffic to their external addresses).
  bool UsesClusterEndpoints() const;
  bool UsesLocalEndpoints() const;
};

struct CategorizedEndpoints {
  // std::nullopt when the Service never uses that kind of endpoint (kube-proxy's
  // nil), an empty vector when it does but none is usable.
  std::optional<std::vector<Endpoint>> cluster;
  std::optional<std::vector<Endpoint>> local;
  // Union of cluster and local: every endpoint this node may send to. Order:
  // cluster endpoints first, then local ones not already present.
  std::vector<Endpoint> all_reachable;
  // Some endpoint is usable somewhere in the cluster (may be true while
  // all_reachable is empty: Local policy with only remote endpoints => DROP,
  // not REJECT).
  bool has_any_endpoints = false;
};

// Mirrors kube-proxy (1.33+, PreferSameTrafficDistribution enabled): hints are
// honoured whenever every ready endpoint carries them (the EndpointSlice
// controller writes hints only when trafficDistribution or the
// topology-mode annotation asks for them). Input order is preserved.
CategorizedEndpoints CategorizeEndpoints(absl::Span<const Endpoint> endpoints,
                                         const ServiceTopologyInfo& service, const NodeInfo& node);

}  // namespace dpv2

#endif  // DPV2_ENDPOINT_SELECTION_H_
