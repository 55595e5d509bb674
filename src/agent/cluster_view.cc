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

bool Same(const PodInfo& a, const PodInfo& b) {
  return std::tie(a.namespace_name, a.name, a.labels, a.ips, a.node_name, a.host_network,
                  a.container_ports, a.workload_kind, a.workload_name) ==
         std::tie(b.namespace_name, b.name, b.labels, b.ips, b.node_name, b.host_network,
                  b.container_ports, b.workload_kind, b.workload_name);
}

bool Same(const std::optional<LocalEndpoint>& a, const std::optional<LocalEndpoint>& b) {
  if (!a || !b) {
    return a.has_value() == b.has_value();
  }
  return std::tie(a->ifindex, a->mac, a->host_mac) == std::tie(b->ifindex, b->mac, b->host_mac);
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

struct ClusterView::State {
  ClusterViewOptions options;
  LbState lb;
  PolicyState policy;
  k8s::ClusterObjects objects;
  NodeInfo node;
  std::vector<std::string> problems;
  std::map<std::string, LocalEndpoint> local_endpoints;  // pod key -> endpoint
  uint32_t next_ifindex = 100;

  // Applied keys, to remove what disappeared.
  std::set<std::string> services, pods, namespaces, nodes, network_policies, anps;
  bool banp = false;
  // What the core accepted, per key, to skip objects equal to the previous
  // Update's. An object the core rejected is not here and is retried (and
  // reported again) every Update.
  std::map<std::string, ServiceSpec> applied_services;
  std::map<std::string, NamespaceInfo> applied_namespaces;
  std::map<std::string, NodeInfo> applied_nodes;
  std::map<std::string, std::pair<PodInfo, std::optional<LocalEndpoint>>> applied_pods;

  State(ClusterViewOptions o, LbState l)
      : options(std::move(o)), lb(std::move(l)), policy({.node_name = options.node_name}) {}
};

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
              absl::string_view kind, const Problem& problem, std::map<std::string, T>& applied) {
  if (status.ok()) {
    applied.insert_or_assign(key, std::move(value));
  } else {
    applied.erase(key);
    problem(absl::StrCat(kind, key), status);
  }
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
  s.objects = objects;
  s.problems.clear();
  auto problem = [&s](absl::string_view what, const absl::Status& status) {
    if (!status.ok()) {
      s.problems.push_back(absl::StrCat(what, ": ", status.message()));
    }
  };

  // Node first: it decides local endpoints, zone and NodePort addresses.
  NodeInfo node{.name = s.options.node_name};
  if (auto it = objects.nodes.find(s.options.node_name); it != objects.nodes.end()) {
    node = BuildNodeInfo(it->second);
  }
  if (node.name != s.node.name || node.zone != s.node.zone ||
      node.addresses != s.node.addresses || node.labels != s.node.labels) {
    problem(absl::StrCat("Node ", node.name), s.lb.SetNode(node));
    s.node = node;
  }

  // Policy inputs: namespaces, nodes, pods, then the policies over them.
  std::set<std::string> seen;
  // Each Set* below is skipped when the object equals the one the core
  // accepted last time: PolicyState derives the same state from it.
  for (const auto& [key, ns] : objects.namespaces) {
    seen.insert(key);
    if (auto it = s.applied_namespaces.find(key);
        it != s.applied_namespaces.end() && Same(it->second, ns)) {
      continue;
    }
    Remember(key, ns, s.policy.SetNamespace(ns), "Namespace ", problem, s.applied_namespaces);
  }
  for (const std::string& key : s.namespaces) {
    if (!seen.count(key)) {
      problem(absl::StrCat("Namespace ", key), s.policy.RemoveNamespace(key));
      s.applied_namespaces.erase(key);
    }
  }
  s.namespaces = std::move(seen);
  seen.clear();
  for (const auto& [key, n] : objects.nodes) {
    seen.insert(key);
    NodeInfo info = BuildNodeInfo(n);
    if (auto it = s.applied_nodes.find(key); it != s.applied_nodes.end() && Same(it->second, info)) {
      continue;
    }
    const absl::Status st = s.policy.SetNode(info);
    Remember(key, std::move(info), st, "Node ", problem, s.applied_nodes);
  }
  for (const std::string& key : s.nodes) {
    if (!seen.count(key)) {
      problem(absl::StrCat("Node ", key), s.policy.RemoveNode(key));
      s.applied_nodes.erase(key);
    }
  }
  s.nodes = std::move(seen);
  seen.clear();
  for (const auto& [key, pod] : objects.pods) {
    std::optional<LocalEndpoint> local;
    bool is_local = !pod.info.host_network && !pod.info.ips.empty() &&
                    (s.options.all_pods_local ||
                     (!s.options.node_name.empty() && pod.info.node_name == s.options.node_name));
    if (is_local) {
      if (s.options.local_endpoint) {
        local = s.options.local_endpoint(pod.info);
      } else if (auto it = s.local_endpoints.find(key); it != s.local_endpoints.end()) {
        local = it->second;
      } else {
        uint32_t ifindex = s.next_ifindex++;
        local = LocalEndpoint{.ifindex = ifindex,
                              .mac = SyntheticMac(0x00, ifindex),
                              .host_mac = SyntheticMac(0xee, ifindex)};
      }
    }
    if (local) {
      s.local_endpoints[key] = *local;
    } else {
      s.local_endpoints.erase(key);
    }
    seen.insert(key);
    if (auto it = s.applied_pods.find(key); it != s.applied_pods.end() &&
                                            Same(it->second.first, pod.info) &&
                                            Same(it->second.second, local)) {
      continue;
    }
    const absl::Status st = s.policy.SetPod(pod.info, local);
    Remember(key, std::make_pair(pod.info, local), st, "Pod ", problem, s.applied_pods);
  }
  for (const std::string& key : s.pods) {
    if (!seen.count(key)) {
      size_t slash = key.find('/');
      problem(absl::StrCat("Pod ", key),
              s.policy.RemovePod(key.substr(0, slash), key.substr(slash + 1)));
      s.local_endpoints.erase(key);
      s.applied_pods.erase(key);
    }
  }
  s.pods = std::move(seen);
  seen.clear();
  for (const auto& [key, np] : objects.network_policies) {
    problem(absl::StrCat("NetworkPolicy ", key), s.policy.SetNetworkPolicy(np));
    seen.insert(key);
  }
  for (const std::string& key : s.network_policies) {
    if (!seen.count(key)) {
      size_t slash = key.find('/');
      problem(absl::StrCat("NetworkPolicy ", key),
              s.policy.RemoveNetworkPolicy(key.substr(0, slash), key.substr(slash + 1)));
    }
  }
  s.network_policies = std::move(seen);
  seen.clear();
  for (const auto& [key, anp] : objects.admin_network_policies) {
    problem(absl::StrCat("AdminNetworkPolicy ", key), s.policy.SetAdminNetworkPolicy(anp));
    seen.insert(key);
  }
  for (const std::string& key : s.anps) {
    if (!seen.count(key)) {
      problem(absl::StrCat("AdminNetworkPolicy ", key), s.policy.RemoveAdminNetworkPolicy(key));
    }
  }
  s.anps = std::move(seen);
  seen.clear();
  if (objects.baseline_admin_network_policy) {
    problem("BaselineAdminNetworkPolicy default",
            s.policy.SetBaselineAdminNetworkPolicy(*objects.baseline_admin_network_policy));
    s.banp = true;
  } else if (s.banp) {
    problem("BaselineAdminNetworkPolicy default", s.policy.RemoveBaselineAdminNetworkPolicy());
    s.banp = false;
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
    size_t slash = key.find('/');
    absl::Status st = s.lb.RemoveService(key.substr(0, slash), key.substr(slash + 1));
    s.applied_services.erase(key);
    if (!st.ok() && !absl::IsNotFound(st)) {
      problem(absl::StrCat("Service ", key), st);
    }
  };
  for (const std::string& key : s.services) {
    auto it = objects.services.find(key);
    if (it == objects.services.end() || it->second.external_name) {
      remove_service(key);
    }
  }
  const SliceIndex slices = IndexSlices(objects);
  const std::vector<const EndpointSliceSpec*> no_slices;
  for (const auto& [key, svc] : objects.services) {
    if (svc.external_name) {
      continue;
    }
    auto sl = slices.find(key);
    const std::vector<const EndpointSliceSpec*>& own = sl == slices.end() ? no_slices : sl->second;
    if (auto it = s.applied_services.find(key);
        it != s.applied_services.end() && SameService(it->second, svc.spec, own)) {
      seen.insert(key);
      continue;
    }
    ServiceSpec spec = BuildServiceSpec(svc, own);
    absl::Status st = s.lb.UpsertService(spec);
    if (st.ok()) {
      seen.insert(key);
    } else if (s.services.count(key)) {
      remove_service(key);
    }
    Remember(key, std::move(spec), st, "Service ", problem, s.applied_services);
  }
  s.services = std::move(seen);
}

ChangeBatch ClusterView::PendingChanges() const {
  ChangeBatch batch = state_->lb.Diff();
  batch.Append(state_->policy.Diff());
  return batch;
}

absl::Status ClusterView::ApplyTo(Backend& backend) {
  ChangeBatch lb_batch = state_->lb.Diff();
  ChangeBatch policy_batch = state_->policy.Diff();
  ChangeBatch all = lb_batch;
  all.Append(policy_batch);
  if (all.empty()) {
    return absl::OkStatus();
  }
  DPV2_RETURN_IF_ERROR(backend.Apply(all));
  state_->lb.Acknowledge(lb_batch);
  state_->policy.Acknowledge(policy_batch);
  return absl::OkStatus();
}

absl::Status ClusterView::Adopt(const ChangeBatch& dumped) {
  const k8s::ClusterObjects objects = state_->objects;
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
