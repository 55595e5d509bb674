#include "agent/cluster_view.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "src/core/status_macros.h"

namespace dpv2::agent {

ServiceSpec BuildServiceSpec(const k8s::ServiceObject& service,
                             const k8s::ClusterObjects& objects) {
  ServiceSpec spec = service.spec;
  spec.endpoint_slices.clear();
  for (const auto& [key, slice] : objects.endpoint_slices) {
    if (slice.namespace_name == spec.namespace_name && slice.service_name == spec.name &&
        !slice.fqdn) {
      spec.endpoint_slices.push_back(slice.spec);
    }
  }
  return spec;
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
  for (const auto& [key, ns] : objects.namespaces) {
    problem(absl::StrCat("Namespace ", key), s.policy.SetNamespace(ns));
    seen.insert(key);
  }
  for (const std::string& key : s.namespaces) {
    if (!seen.count(key)) {
      problem(absl::StrCat("Namespace ", key), s.policy.RemoveNamespace(key));
    }
  }
  s.namespaces = std::move(seen);
  seen.clear();
  for (const auto& [key, n] : objects.nodes) {
    problem(absl::StrCat("Node ", key), s.policy.SetNode(BuildNodeInfo(n)));
    seen.insert(key);
  }
  for (const std::string& key : s.nodes) {
    if (!seen.count(key)) {
      problem(absl::StrCat("Node ", key), s.policy.RemoveNode(key));
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
    problem(absl::StrCat("Pod ", key), s.policy.SetPod(pod.info, local));
    seen.insert(key);
  }
  for (const std::string& key : s.pods) {
    if (!seen.count(key)) {
      size_t slash = key.find('/');
      problem(absl::StrCat("Pod ", key),
              s.policy.RemovePod(key.substr(0, slash), key.substr(slash + 1)));
      s.local_endpoints.erase(key);
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

  // Services, with their slices merged.
  for (const auto& [key, svc] : objects.services) {
    if (svc.external_name) {
      continue;
    }
    ServiceSpec spec = BuildServiceSpec(svc, objects);
    absl::Status st = s.lb.UpsertService(spec);
    problem(absl::StrCat("Service ", key), st);
    if (st.ok()) {
      seen.insert(key);
    }
  }
  for (const std::string& key : s.services) {
    if (!seen.count(key)) {
      size_t slash = key.find('/');
      absl::Status st = s.lb.RemoveService(key.substr(0, slash), key.substr(slash + 1));
      if (!st.ok() && !absl::IsNotFound(st)) {
        problem(absl::StrCat("Service ", key), st);
      }
    }
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
