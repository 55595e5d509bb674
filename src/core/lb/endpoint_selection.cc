// Endpoint selection, mirroring kube-proxy's pkg/proxy/topology.go
// (CategorizeEndpoints, topologyModeFromHints, availableForTopology) so that
// its table of cases holds here unchanged.
#include "dpv2/endpoint_selection.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

enum class TopologyMode { kNone, kPreferSameZone, kPreferSameNode };

bool Contains(const std::vector<std::string>& values, absl::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

// Node hints win when every ready endpoint has one and one names this node;
// else zone hints under the same rule; else no filtering. Only ready endpoints
// count: an unready endpoint's hints neither enable nor disable topology.
TopologyMode TopologyModeFromHints(absl::Span<const Endpoint> endpoints,
                                   const ServiceTopologyInfo& service, const NodeInfo& node) {
  if (service.require_topology_opt_in && service.hints_annotation != "Auto" &&
      service.hints_annotation != "auto" && service.traffic_distribution != "PreferClose" &&
      service.traffic_distribution != "PreferSameZone" &&
      service.traffic_distribution != "PreferSameNode") {
    return TopologyMode::kNone;
  }
  bool has_ready = false;
  bool has_for_node = false;
  bool all_have_node_hints = true;
  bool has_for_zone = false;
  bool all_have_zone_hints = true;
  for (const Endpoint& ep : endpoints) {
    if (!ep.ready) {
      continue;
    }
    has_ready = true;
    if (ep.node_hints.empty()) {
      all_have_node_hints = false;
    } else if (Contains(ep.node_hints, node.name)) {
      has_for_node = true;
    }
    if (ep.zone_hints.empty()) {
      all_have_zone_hints = false;
    } else if (Contains(ep.zone_hints, node.zone)) {
      has_for_zone = true;
    }
  }
  if (!has_ready) {
    return TopologyMode::kNone;
  }
  if (all_have_node_hints && has_for_node) {
    return TopologyMode::kPreferSameNode;
  }
  if (all_have_zone_hints && has_for_zone) {
    return TopologyMode::kPreferSameZone;
  }
  return TopologyMode::kNone;
}

bool AvailableForTopology(const Endpoint& ep, TopologyMode mode, const NodeInfo& node) {
  switch (mode) {
    case TopologyMode::kNone:
      return true;
    case TopologyMode::kPreferSameNode:
      return Contains(ep.node_hints, node.name);
    case TopologyMode::kPreferSameZone:
      return Contains(ep.zone_hints, node.zone);
  }
  return false;
}

template <typename Pred>
std::vector<Endpoint> Filter(absl::Span<const Endpoint> endpoints, Pred pred) {
  std::vector<Endpoint> out;
  for (const Endpoint& ep : endpoints) {
    if (pred(ep)) {
      out.push_back(ep);
    }
  }
  return out;
}

}  // namespace

std::string EndpointString(const IpAddr& addr, uint16_t port) {
  if (addr.is_v4()) {
    return absl::StrCat(addr.ToString(), ":", port);
  }
  return absl::StrCat("[", addr.ToString(), "]:", port);
}

// Externally accessible ports need Cluster endpoints even under
// externalTrafficPolicy Local: traffic from local pods to their external
// addresses is short-circuited to Cluster semantics.
bool ServiceTopologyInfo::UsesClusterEndpoints() const {
  return !internal_policy_local || externally_accessible;
}

bool ServiceTopologyInfo::UsesLocalEndpoints() const {
  return internal_policy_local || (externally_accessible && external_policy_local);
}

CategorizedEndpoints CategorizeEndpoints(absl::Span<const Endpoint> endpoints,
                                         const ServiceTopologyInfo& service, const NodeInfo& node) {
  CategorizedEndpoints out;
  const bool uses_cluster = service.UsesClusterEndpoints();
  const bool uses_local = service.UsesLocalEndpoints();
  // kube-proxy returns nil lists for no endpoints at all; we keep the
  // "this service uses that kind" information by returning empty lists.
  if (uses_cluster) {
    out.cluster.emplace();
  }
  if (uses_local) {
    out.local.emplace();
  }
  if (endpoints.empty()) {
    return out;
  }

  TopologyMode mode = TopologyMode::kNone;
  if (uses_cluster) {
    mode = TopologyModeFromHints(endpoints, service, node);
    out.cluster = Filter(endpoints, [&](const Endpoint& ep) {
      return ep.ready && AvailableForTopology(ep, mode, node);
    });
    // No ready endpoint for the chosen topology means no ready endpoint at all
    // (the mode falls back to kNone otherwise): use serving-terminating ones.
    if (out.cluster->empty()) {
      out.cluster =
          Filter(endpoints, [](const Endpoint& ep) { return ep.serving && ep.terminating; });
    }
    if (!out.cluster->empty()) {
      out.has_any_endpoints = true;
    }
  }

  if (!uses_local) {
    out.all_reachable = *out.cluster;
    return out;
  }

  bool has_local_ready = false;
  bool has_local_serving_terminating = false;
  for (const Endpoint& ep : endpoints) {
    if (ep.ready) {
      out.has_any_endpoints = true;
      has_local_ready = has_local_ready || ep.is_local;
    } else if (ep.serving && ep.terminating) {
      out.has_any_endpoints = true;
      has_local_serving_terminating = has_local_serving_terminating || ep.is_local;
    }
  }
  bool use_serving_terminating = false;
  if (has_local_ready) {
    out.local = Filter(endpoints, [](const Endpoint& ep) { return ep.is_local && ep.ready; });
  } else if (has_local_serving_terminating) {
    use_serving_terminating = true;
    out.local = Filter(
        endpoints, [](const Endpoint& ep) { return ep.is_local && ep.serving && ep.terminating; });
  }

  if (!uses_cluster) {
    out.all_reachable = *out.local;
    return out;
  }
  if (mode == TopologyMode::kNone && !use_serving_terminating) {
    // Cluster holds every ready endpoint and local only ready ones: superset.
    out.all_reachable = *out.cluster;
    return out;
  }
  // Cluster may hold remote endpoints that local lacks, local may hold
  // terminating or topologically filtered ones: merge by identity.
  absl::flat_hash_set<std::string> seen;
  for (const std::vector<Endpoint>* list : {&*out.cluster, &*out.local}) {
    for (const Endpoint& ep : *list) {
      if (seen.insert(ep.endpoint).second) {
        out.all_reachable.push_back(ep);
      }
    }
  }
  return out;
}

}  // namespace dpv2
