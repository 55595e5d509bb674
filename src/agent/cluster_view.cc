#include "agent/cluster_view.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "src/core/status_macros.h"

namespace dpv2::agent {

namespace {

// The proxied slices of each Service, by "namespace/service-name", in slice
// key order: one pass over all slices per Update instead of one per Service.
using SliceIndex = std::unordered_map<std::string, std::vector<const EndpointSliceSpec*>>;

SliceIndex IndexSlices(const k8s::ClusterObjects& objects) {
  SliceIndex index;
  for (const auto& [key, slice] : objects.endpoint_slices) {
    if (!slice.fqdn && !slice.service_name.empty()) {
      index[absl::StrCat(slice.namespace_name, "/", slice.service_name)].push_back(&slice.spec);
    }
  }
  return index;
}

ServiceSpec BuildServiceSpec(const k8s::ServiceObject& service,
                             const std::vector<const EndpointSliceSpec*>& slices) {
  ServiceSpec spec = service.spec;
  spec.endpoint_slices.clear();
  spec.endpoint_slices.reserve(slices.size());
  for (const EndpointSliceSpec* slice : slices) {
    spec.endpoint_slices.push_back(*slice);
  }
  return spec;
}

// Field by field equality of the decoded objects, so that Update skips what
// did not change. The structs belong to the core's public headers, which
// declare no operator==; a field added there must be added here too, or a
// change of only that field would go unnoticed (cluster_view_incremental_test
// covers every field the decoder fills).
bool Same(const ServicePortSpec& a, const ServicePortSpec& b);
bool Same(const EndpointSpec& a, const EndpointSpec& b);
bool Same(const EndpointPortSpec& a, const EndpointPortSpec& b);
bool Same(const EndpointSliceSpec& a, const EndpointSliceSpec& b);
bool Same(const LabelSelectorRequirement& a, const LabelSelectorRequirement& b);
bool Same(const IPBlock& a, const IPBlock& b);
bool Same(const NetworkPolicyPeer& a, const NetworkPolicyPeer& b);
bool Same(const NetworkPolicyPort& a, const NetworkPolicyPort& b);
bool Same(const NetworkPolicyIngressRule& a, const NetworkPolicyIngressRule& b);
bool Same(const NetworkPolicyEgressRule& a, const NetworkPolicyEgressRule& b);

template <typename T>
bool SameAll(const std::vector<T>& a, const std::vector<T>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const T& x, const T& y) { return Same(x, y); });
}

bool Same(const ServicePortSpec& a, const ServicePortSpec& b) {
  return std::tie(a.name, a.protocol, a.port, a.node_port) ==
         std::tie(b.name, b.protocol, b.port, b.node_port);
}

bool Same(const EndpointSpec& a, const EndpointSpec& b) {
  return std::tie(a.addresses, a.conditions.ready, a.conditions.serving,
                  a.conditions.terminating, a.node_name, a.zone, a.hints.for_zones,
                  a.hints.for_nodes) ==
         std::tie(b.addresses, b.conditions.ready, b.conditions.serving,
                  b.conditions.terminating, b.node_name, b.zone, b.hints.for_zones,
                  b.hints.for_nodes);
}

bool Same(const EndpointPortSpec& a, const EndpointPortSpec& b) {
  return std::tie(a.name, a.protocol, a.port) == std::tie(b.name, b.protocol, b.port);
}

bool Same(const EndpointSliceSpec& a, const EndpointSliceSpec& b) {
  return a.name == b.name && a.address_type == b.address_type && SameAll(a.ports, b.ports) &&
         SameAll(a.endpoints, b.endpoints);
}

// `applied` (a spec UpsertService took) equals `service` with `slices`
// merged in, compared without building the merged spec.
bool SameService(const ServiceSpec& applied, const ServiceSpec& service,
                 const std::vector<const EndpointSliceSpec*>& slices) {
  const ServiceSpec& a = applied;
  const ServiceSpec& b = service;
  if (std::tie(a.namespace_name, a.name, a.type, a.cluster_ips, a.external_ips,
               a.load_balancer_ips, a.external_traffic_policy, a.internal_traffic_policy,
               a.session_affinity, a.affinity_timeout_s, a.load_balancer_source_ranges,
               a.traffic_distribution, a.health_check_node_port) !=
          std::tie(b.namespace_name, b.name, b.type, b.cluster_ips, b.external_ips,
                   b.load_balancer_ips, b.external_traffic_policy, b.internal_traffic_policy,
                   b.session_affinity, b.affinity_timeout_s, b.load_balancer_source_ranges,
                   b.traffic_distribution, b.health_check_node_port) ||
      !SameAll(a.ports, b.ports) || a.endpoint_slices.size() != slices.size()) {
    return false;
  }
  for (size_t i = 0; i < slices.size(); ++i) {
    if (!Same(a.endpoint_slices[i], *slices[i])) {
      return false;
    }
  }
  return true;
}

bool Same(const NodeInfo& a, const NodeInfo& b) {
  return std::tie(a.name, a.labels, a.zone, a.addresses) ==
         std::tie(b.name, b.labels, b.zone, b.addresses);
}

bool Same(const NamespaceInfo& a, const NamespaceInfo& b) {
  return std::tie(a.name, a.labels, a.annotations) == std::tie(b.name, b.labels, b.annotations);
}

bool Same(const LabelSelectorRequirement& a, const LabelSelectorRequirement& b) {
  return std::tie(a.key, a.op, a.values) == std::tie(b.key, b.op, b.values);
}

bool Same(const LabelSelector& a, const LabelSelector& b) {
  return a.match_labels == b.match_labels && SameAll(a.match_expressions, b.match_expressions);
}

template <typename T>
bool Same(const std::optional<T>& a, const std::optional<T>& b) {
  if (!a || !b) {
    return a.has_value() == b.has_value();
  }
  return Same(*a, *b);
}

bool Same(const IPBlock& a, const IPBlock& b) {
  return std::tie(a.cidr, a.except) == std::tie(b.cidr, b.except);
}

bool Same(const NetworkPolicyPeer& a, const NetworkPolicyPeer& b) {
  return Same(a.pod_selector, b.pod_selector) && Same(a.namespace_selector, b.namespace_selector) &&
         Same(a.ip_block, b.ip_block);
}

bool Same(const NetworkPolicyPort& a, const NetworkPolicyPort& b) {
  return std::tie(a.protocol, a.port, a.end_port) == std::tie(b.protocol, b.port, b.end_port);
}

bool Same(const NetworkPolicyIngressRule& a, const NetworkPolicyIngressRule& b) {
  return SameAll(a.ports, b.ports) && SameAll(a.from, b.from);
}

bool Same(const NetworkPolicyEgressRule& a, const NetworkPolicyEgressRule& b) {
  return SameAll(a.ports, b.ports) && SameAll(a.to, b.to);
}

bool Same(const NetworkPolicy& a, const NetworkPolicy& b) {
  const ObjectMeta& am = a.metadata;
  const ObjectMeta& bm = b.metadata;
  return std::tie(am.name, am.namespace_name, am.labels, am.annotations, a.spec.policy_types) ==
             std::tie(bm.name, bm.namespace_name, bm.labels, bm.annotations,
                      b.spec.policy_types) &&
         Same(a.spec.pod_selector, b.spec.pod_selector) && SameAll(a.spec.ingress, b.spec.ingress) &&
         SameAll(a.spec.egress, b.spec.egress);
}

}  // namespace

ServiceSpec BuildServiceSpec(const k8s::ServiceObject& service,
                             const k8s::ClusterObjects& objects) {
  SliceIndex index = IndexSlices(objects);
  auto it = index.find(service.spec.Key());
  return BuildServiceSpec(service, it == index.end() ? std::vector<const EndpointSliceSpec*>{}
                                                     : it->second);
}

NodeInfo BuildNodeInfo(const k8s::NodeObject& node) {
  return NodeInfo{.name = node.name, .labels = node.labels, .zone = node.zone,
                  .addresses = node.Ips()};
}

namespace {

// The Service key ("namespace/service-name") a slice belongs to, or "" for a
// slice that is not proxied (FQDN, or no kubernetes.io/service-name label).
std::string ServiceOfSlice(const k8s::EndpointSliceObject& slice) {
  if (slice.fqdn || slice.service_name.empty()) {
    return "";
  }
  return absl::StrCat(slice.namespace_name, "/", slice.service_name);
}

// Keys (as ClusterObjects keys them) whose objects may differ from what the
// core was last given.
struct DirtyKeys {
  std::set<std::string> services, pods, namespaces, nodes, network_policies, anps;
  bool banp = false;

  void Merge(DirtyKeys& other) {
    services.merge(other.services);
    pods.merge(other.pods);
    namespaces.merge(other.namespaces);
    nodes.merge(other.nodes);
    network_policies.merge(other.network_policies);
    anps.merge(other.anps);
    banp |= other.banp;
    other = {};
  }
};

template <typename T>
void MarkKeys(const std::map<std::string, T>& objects, std::set<std::string>& keys) {
  for (const auto& entry : objects) {
    keys.insert(keys.end(), entry.first);
  }
}

}  // namespace

struct ClusterView::State {
  ClusterViewOptions options;
  LbState lb;
  PolicyState policy;
  k8s::ClusterObjects objects;
  NodeInfo node;
  std::vector<std::string> problems;
  std::map<std::string, LocalEndpoint> local_endpoints;  // pod key -> endpoint
  uint32_t next_ifindex = 100;

  // Proxied slice keys of each Service key, in key order (the order
  // BuildServiceSpec merges them in).
  std::map<std::string, std::set<std::string>> slices_by_service;
  // What changed since the last Recompute, and what the core rejected then
  // (retried, and reported again, every Update).
  DirtyKeys dirty, rejected;

  // Keys seen (and not removed since), to remove what disappears; Services:
  // the ones the core holds. Pods: the ones PolicyState holds, and
  // pending_pods.
  std::set<std::string> services, namespaces, nodes, network_policies, anps;
  bool banp = false;
  // What the core accepted, per key, to skip objects equal to the previous
  // Update's. An object the core rejected is not here.
  std::map<std::string, ServiceSpec> applied_services;
  std::map<std::string, NamespaceInfo> applied_namespaces;
  std::map<std::string, NodeInfo> applied_nodes;
  std::map<std::string, NetworkPolicy> applied_network_policies;
  // Pods are kept by PolicyState alone (one compact copy; objects.pods stays
  // empty): here only those handed in and not taken yet, i.e. between
  // Update and Recompute, and those the core rejected (retried every Update).
  std::map<std::string, k8s::PodObject> pending_pods;

  State(ClusterViewOptions o, LbState l)
      : options(std::move(o)), lb(std::move(l)), policy({.node_name = options.node_name}) {}

  // Slice index upkeep around a change of slice `key` in `objects`; marks the
  // Services it leaves and joins.
  void UnindexSlice(const std::string& key);
  void IndexSlice(const std::string& key);
  // Hands the core the dirty objects (and the rejected ones again).
  void Recompute();
  std::optional<LocalEndpoint> LocalEndpointFor(const std::string& key, const PodInfo& pod);
};

void ClusterView::State::UnindexSlice(const std::string& key) {
  auto it = objects.endpoint_slices.find(key);
  if (it == objects.endpoint_slices.end()) {
    return;
  }
  const std::string service = ServiceOfSlice(it->second);
  if (service.empty()) {
    return;
  }
  if (auto sl = slices_by_service.find(service); sl != slices_by_service.end()) {
    sl->second.erase(key);
    if (sl->second.empty()) {
      slices_by_service.erase(sl);
    }
  }
  dirty.services.insert(service);
}

void ClusterView::State::IndexSlice(const std::string& key) {
  const std::string service = ServiceOfSlice(objects.endpoint_slices.at(key));
  if (!service.empty()) {
    slices_by_service[service].insert(key);
    dirty.services.insert(service);
  }
}

namespace {

// A locally administered MAC derived from a small number, so that frames the
// sim delivers to a pod are recognisable in traces.
std::array<uint8_t, 6> SyntheticMac(uint8_t kind, uint32_t n) {
  return {0x02, kind, static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
          static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
}

// After a Set/Upsert of `value` under `key`: remembers what the core accepted,
// forgets what it rejected (so that the next Update retries it) and reports.
template <typename T, typename Problem>
void Remember(const std::string& key, T value, const absl::Status& status,
              absl::string_view kind, const Problem& problem, std::map<std::string, T>& applied,
              std::set<std::string>& rejected) {
  if (status.ok()) {
    applied.insert_or_assign(key, std::move(value));
  } else {
    applied.erase(key);
    rejected.insert(key);
    problem(absl::StrCat(kind, key), status);
  }
}

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  const size_t slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

absl::StatusOr<ClusterView> ClusterView::Create(ClusterViewOptions options) {
  DPV2_ASSIGN_OR_RETURN(LbState lb, LbState::Create(options.lb));
  auto state = std::make_unique<State>(std::move(options), std::move(lb));
  state->node.name = state->options.node_name;
  DPV2_RETURN_IF_ERROR(state->lb.SetNode(state->node));
  return ClusterView(std::move(state));
}

ClusterView::ClusterView(std::unique_ptr<State> state) : state_(std::move(state)) {}
ClusterView::ClusterView(ClusterView&&) noexcept = default;
ClusterView& ClusterView::operator=(ClusterView&&) noexcept = default;
ClusterView::~ClusterView() = default;

void ClusterView::Update(const k8s::ClusterObjects& objects) {
  State& s = *state_;
  // Every key of the old and the new set is looked at; the Same* checks in
  // Recompute keep equal objects away from the core.
  MarkKeys(s.objects.services, s.dirty.services);
  MarkKeys(objects.services, s.dirty.services);
  s.policy.ForEachPod([&s](const HeldPod& pod) {
    s.dirty.pods.insert(absl::StrCat(pod.namespace_name, "/", pod.name));
  });
  MarkKeys(s.pending_pods, s.dirty.pods);
  MarkKeys(objects.pods, s.dirty.pods);
  MarkKeys(s.objects.namespaces, s.dirty.namespaces);
  MarkKeys(objects.namespaces, s.dirty.namespaces);
  MarkKeys(s.objects.nodes, s.dirty.nodes);
  MarkKeys(objects.nodes, s.dirty.nodes);
  MarkKeys(s.objects.network_policies, s.dirty.network_policies);
  MarkKeys(objects.network_policies, s.dirty.network_policies);
  MarkKeys(s.objects.admin_network_policies, s.dirty.anps);
  MarkKeys(objects.admin_network_policies, s.dirty.anps);
  s.dirty.banp = true;
  s.dirty.nodes.insert(s.options.node_name);
  s.objects = objects;
  s.pending_pods = std::move(s.objects.pods);
  s.objects.pods.clear();
  s.slices_by_service.clear();
  for (const auto& [key, slice] : s.objects.endpoint_slices) {
    if (std::string service = ServiceOfSlice(slice); !service.empty()) {
      s.slices_by_service[service].insert(key);
    }
  }
  s.Recompute();
}

void ClusterView::Update(const ObjectChanges& changes) {
  State& s = *state_;
  k8s::ClusterObjects& o = s.objects;
  const k8s::ClusterObjects& c = changes.changed;
  for (const auto& [key, slice] : c.endpoint_slices) {
    s.UnindexSlice(key);
    o.endpoint_slices.insert_or_assign(key, slice);
    s.IndexSlice(key);
  }
  auto upsert = [](const auto& from, auto& to, std::set<std::string>& dirty) {
    for (const auto& [key, object] : from) {
      to.insert_or_assign(key, object);
      dirty.insert(key);
    }
  };
  upsert(c.services, o.services, s.dirty.services);
  upsert(c.pods, s.pending_pods, s.dirty.pods);
  upsert(c.namespaces, o.namespaces, s.dirty.namespaces);
  upsert(c.nodes, o.nodes, s.dirty.nodes);
  upsert(c.network_policies, o.network_policies, s.dirty.network_policies);
  upsert(c.admin_network_policies, o.admin_network_policies, s.dirty.anps);
  if (c.baseline_admin_network_policy) {
    o.baseline_admin_network_policy = c.baseline_admin_network_policy;
    s.dirty.banp = true;
  }
  if (c.network_logging) {
    o.network_logging = c.network_logging;
  }

  const RemovedObjects& r = changes.removed;
  for (const std::string& key : r.endpoint_slices) {
    s.UnindexSlice(key);
    o.endpoint_slices.erase(key);
  }
  auto remove = [](const std::vector<std::string>& keys, auto& from, std::set<std::string>& dirty) {
    for (const std::string& key : keys) {
      from.erase(key);
      dirty.insert(key);
    }
  };
  remove(r.services, o.services, s.dirty.services);
  remove(r.pods, s.pending_pods, s.dirty.pods);
  remove(r.namespaces, o.namespaces, s.dirty.namespaces);
  remove(r.nodes, o.nodes, s.dirty.nodes);
  remove(r.network_policies, o.network_policies, s.dirty.network_policies);
  remove(r.admin_network_policies, o.admin_network_policies, s.dirty.anps);
  if (r.baseline_admin_network_policy) {
    o.baseline_admin_network_policy.reset();
    s.dirty.banp = true;
  }
  if (r.network_logging) {
    o.network_logging.reset();
  }
  s.Recompute();
}

std::optional<LocalEndpoint> ClusterView::State::LocalEndpointFor(const std::string& key,
                                                                  const PodInfo& pod) {
  const bool is_local = !pod.host_network && !pod.ips.empty() &&
                        (options.all_pods_local ||
                         (!options.node_name.empty() && pod.node_name == options.node_name));
  std::optional<LocalEndpoint> local;
  if (is_local) {
    if (options.local_endpoint) {
      local = options.local_endpoint(pod);
    } else if (auto it = local_endpoints.find(key); it != local_endpoints.end()) {
      local = it->second;
    } else {
      const uint32_t ifindex = next_ifindex++;
      local = LocalEndpoint{.ifindex = ifindex,
                            .mac = SyntheticMac(0x00, ifindex),
                            .host_mac = SyntheticMac(0xee, ifindex)};
    }
  }
  if (local) {
    local_endpoints[key] = *local;
  } else {
    local_endpoints.erase(key);
  }
  return local;
}

void ClusterView::State::Recompute() {
  State& s = *this;
  s.dirty.Merge(s.rejected);
  DirtyKeys d = std::move(s.dirty);
  s.dirty = {};
  s.problems.clear();
  auto problem = [&s](absl::string_view what, const absl::Status& status) {
    if (!status.ok()) {
      s.problems.push_back(absl::StrCat(what, ": ", status.message()));
    }
  };

  // Node first: it decides local endpoints, zone and NodePort addresses.
  if (d.nodes.contains(s.options.node_name)) {
    NodeInfo node{.name = s.options.node_name};
    if (auto it = objects.nodes.find(s.options.node_name); it != objects.nodes.end()) {
      node = BuildNodeInfo(it->second);
    }
    if (!Same(node, s.node)) {
      problem(absl::StrCat("Node ", node.name), s.lb.SetNode(node));
      s.node = node;
    }
  }

  // Policy inputs: namespaces, nodes, pods, then the policies over them.
  // Each Set* below is skipped when the object equals the one the core
  // accepted last time: PolicyState derives the same state from it.
  for (const std::string& key : d.namespaces) {
    if (auto it = objects.namespaces.find(key); it != objects.namespaces.end()) {
      s.namespaces.insert(key);
      if (auto a = s.applied_namespaces.find(key);
          a != s.applied_namespaces.end() && Same(a->second, it->second)) {
        continue;
      }
      Remember(key, it->second, s.policy.SetNamespace(it->second), "Namespace ", problem,
               s.applied_namespaces, s.rejected.namespaces);
    } else if (s.namespaces.erase(key)) {
      problem(absl::StrCat("Namespace ", key), s.policy.RemoveNamespace(key));
      s.applied_namespaces.erase(key);
    }
  }
  for (const std::string& key : d.nodes) {
    if (auto it = objects.nodes.find(key); it != objects.nodes.end()) {
      s.nodes.insert(key);
      NodeInfo info = BuildNodeInfo(it->second);
      if (auto a = s.applied_nodes.find(key); a != s.applied_nodes.end() && Same(a->second, info)) {
        continue;
      }
      const absl::Status st = s.policy.SetNode(info);
      Remember(key, std::move(info), st, "Node ", problem, s.applied_nodes, s.rejected.nodes);
    } else if (s.nodes.erase(key)) {
      problem(absl::StrCat("Node ", key), s.policy.RemoveNode(key));
      s.applied_nodes.erase(key);
    }
  }
  for (const std::string& key : d.pods) {
    if (auto it = s.pending_pods.find(key); it != s.pending_pods.end()) {
      const PodInfo& pod = it->second.info;
      const std::optional<LocalEndpoint> local = s.LocalEndpointFor(key, pod);
      if (!s.policy.HoldsPod(pod, local)) {
        if (const absl::Status st = s.policy.SetPod(pod, local); !st.ok()) {
          s.rejected.pods.insert(key);
          problem(absl::StrCat("Pod ", key), st);
          continue;
        }
      }
      s.pending_pods.erase(it);
    } else {
      // Gone (a key that is not pending is a removal): from the core too if
      // it held the pod (a pod it always rejected it never held).
      s.local_endpoints.erase(key);
      if (const auto [ns, name] = SplitKey(key); s.policy.FindPod(ns, name)) {
        problem(absl::StrCat("Pod ", key), s.policy.RemovePod(ns, name));
      }
    }
  }
  for (const std::string& key : d.network_policies) {
    if (auto it = objects.network_policies.find(key); it != objects.network_policies.end()) {
      s.network_policies.insert(key);
      if (auto a = s.applied_network_policies.find(key);
          a != s.applied_network_policies.end() && Same(a->second, it->second)) {
        continue;
      }
      Remember(key, it->second, s.policy.SetNetworkPolicy(it->second), "NetworkPolicy ",
               problem, s.applied_network_policies, s.rejected.network_policies);
    } else if (s.network_policies.erase(key)) {
      const auto [ns, name] = SplitKey(key);
      problem(absl::StrCat("NetworkPolicy ", key), s.policy.RemoveNetworkPolicy(ns, name));
      s.applied_network_policies.erase(key);
    }
  }
  for (const std::string& key : d.anps) {
    if (auto it = objects.admin_network_policies.find(key);
        it != objects.admin_network_policies.end()) {
      s.anps.insert(key);
      const absl::Status st = s.policy.SetAdminNetworkPolicy(it->second);
      if (!st.ok()) {
        s.rejected.anps.insert(key);
      }
      problem(absl::StrCat("AdminNetworkPolicy ", key), st);
    } else if (s.anps.erase(key)) {
      problem(absl::StrCat("AdminNetworkPolicy ", key), s.policy.RemoveAdminNetworkPolicy(key));
    }
  }
  if (d.banp) {
    if (objects.baseline_admin_network_policy) {
      const absl::Status st =
          s.policy.SetBaselineAdminNetworkPolicy(*objects.baseline_admin_network_policy);
      s.rejected.banp = !st.ok();
      problem("BaselineAdminNetworkPolicy default", st);
      s.banp = true;
    } else if (s.banp) {
      problem("BaselineAdminNetworkPolicy default", s.policy.RemoveBaselineAdminNetworkPolicy());
      s.banp = false;
    }
  }
  for (std::string& w : s.policy.TakeWarnings()) {
    s.problems.push_back(std::move(w));
  }

  // Services, with their slices merged; unchanged ones are skipped (a Node
  // change reached them all through LbState::SetNode above). Removals go
  // first so that a Service taking over a removed one's address or
  // nodePort is accepted in the same Update. A Service the core now rejects
  // loses its previous version too.
  auto remove_service = [&s, &problem](const std::string& key) {
    const auto [ns, name] = SplitKey(key);
    absl::Status st = s.lb.RemoveService(ns, name);
    s.applied_services.erase(key);
    s.services.erase(key);
    if (!st.ok() && !absl::IsNotFound(st)) {
      problem(absl::StrCat("Service ", key), st);
    }
  };
  for (const std::string& key : d.services) {
    auto it = objects.services.find(key);
    if (s.services.contains(key) && (it == objects.services.end() || it->second.external_name)) {
      remove_service(key);
    }
  }
  std::vector<const EndpointSliceSpec*> own;
  std::vector<std::pair<const std::string*, ServiceSpec>> upserts;
  for (const std::string& key : d.services) {
    auto it = objects.services.find(key);
    if (it == objects.services.end() || it->second.external_name) {
      continue;
    }
    own.clear();
    if (auto sl = s.slices_by_service.find(key); sl != s.slices_by_service.end()) {
      for (const std::string& slice_key : sl->second) {
        own.push_back(&objects.endpoint_slices.at(slice_key).spec);
      }
    }
    if (auto a = s.applied_services.find(key);
        a != s.applied_services.end() && SameService(a->second, it->second.spec, own)) {
      continue;
    }
    upserts.emplace_back(&key, BuildServiceSpec(it->second, own));
  }
  // Their Maglev tables on every core first (most of a full sync's cost).
  std::vector<const ServiceSpec*> specs;
  specs.reserve(upserts.size());
  for (const auto& [key, spec] : upserts) {
    specs.push_back(&spec);
  }
  s.lb.PrepareServices(specs);
  for (auto& [key_ptr, spec] : upserts) {
    const std::string& key = *key_ptr;
    absl::Status st = s.lb.UpsertService(spec);
    if (st.ok()) {
      s.services.insert(key);
    } else if (s.services.contains(key)) {
      remove_service(key);
    }
    Remember(key, std::move(spec), st, "Service ", problem, s.applied_services,
             s.rejected.services);
  }
}

ChangeBatch ClusterView::PendingChanges() const {
  ChangeBatch batch = state_->lb.Diff();
  batch.Append(state_->policy.Diff());
  return batch;
}

absl::Status ClusterView::ApplyTo(Backend& backend, ChangeBatch* attempted) {
  // One batch, no copy of the (large) lookup tables: each state acknowledges
  // only its own kinds of records from it.
  ChangeBatch all = state_->lb.TakeDiff();
  all.Append(state_->policy.Diff());
  absl::Status status = all.empty() ? absl::OkStatus() : backend.Apply(all);
  if (status.ok()) {
    state_->lb.Acknowledge(all);
    state_->policy.Acknowledge(all);
  }
  if (attempted != nullptr) {
    *attempted = std::move(all);
  }
  return status;
}

absl::Status ClusterView::Adopt(const ChangeBatch& dumped) {
  k8s::ClusterObjects objects = state_->objects;
  state_->policy.ForEachPod([&objects](const HeldPod& pod) {
    objects.pods[absl::StrCat(pod.namespace_name, "/", pod.name)].info = pod.ToPodInfo();
  });
  for (const auto& [key, pod] : state_->pending_pods) {
    objects.pods.insert_or_assign(key, pod);
  }
  DPV2_ASSIGN_OR_RETURN(ClusterView fresh, Create(state_->options));
  const absl::Status lb = fresh.state_->lb.Adopt(dumped);
  const absl::Status policy = fresh.state_->policy.Adopt(dumped);
  *this = std::move(fresh);
  // Policies before pods: each pod identity is then computed once, with its
  // final CIDR tags, and can take the number the datapath holds for it.
  k8s::ClusterObjects without_pods = objects;
  without_pods.pods.clear();
  Update(without_pods);
  Update(objects);
  DPV2_RETURN_IF_ERROR(lb);
  return policy;
}

void ClusterView::ResetAcknowledged() {
  state_->lb.ResetAcknowledged();
  state_->policy.ResetAcknowledged();
}

const k8s::ClusterObjects& ClusterView::objects() const { return state_->objects; }
const LbState& ClusterView::lb() const { return state_->lb; }
const PolicyState& ClusterView::policy() const { return state_->policy; }
const NodeInfo& ClusterView::node() const { return state_->node; }
const std::vector<std::string>& ClusterView::problems() const { return state_->problems; }

std::optional<LocalEndpoint> ClusterView::LocalEndpointOf(absl::string_view pod_key) const {
  auto it = state_->local_endpoints.find(std::string(pod_key));
  if (it == state_->local_endpoints.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace dpv2::agent
