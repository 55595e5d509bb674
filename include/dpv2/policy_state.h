// dpv2 policy state: NetworkPolicy, AdminNetworkPolicy and
// BaselineAdminNetworkPolicy compiled into datapath entries for this node.
//
// PolicyState holds the desired policy world (namespaces, pods, nodes,
// policies), assigns identities, builds the ipcache (pod IPs, node IPs, the
// CIDRs policies name; longest prefix wins) and compiles, per local endpoint
// and direction, an LPM policy table (see src/core/policy/policy_map.h for the
// lookup every backend performs). Like LbState it does no I/O: Diff() returns
// only what changed since the last Acknowledge(). A mutation recomputes only
// what it affects (the identities whose selector membership changed and the
// endpoints whose policies reference them). Evaluation order per direction:
// host at ingress (always allowed) -> AdminNetworkPolicy (priority, then name,
// then rule order; Allow / Deny / Pass) -> NetworkPolicy (union of allows; an
// isolated pod denies the rest) -> BaselineAdminNetworkPolicy (rule order) ->
// allow.
//
//   dpv2::PolicyState policy({.node_name = "node-1"});
//   DPV2_RETURN_IF_ERROR(policy.SetPod(pod, dpv2::LocalEndpoint{.ifindex = 7}));
//   dpv2::ChangeBatch b = policy.Diff(); DPV2_RETURN_IF_ERROR(backend->Apply(b)); policy.Acknowledge(b);
#ifndef DPV2_POLICY_STATE_H_
#define DPV2_POLICY_STATE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "dpv2/batch.h"
#include "dpv2/net.h"
#include "dpv2/policy.h"

namespace dpv2 {

// One policy that took part in a verdict (GKE log record "policies").
struct PolicyRef {
  enum class Kind : uint8_t { kNetworkPolicy, kAdminNetworkPolicy, kBaselineAdminNetworkPolicy };
  Kind kind = Kind::kNetworkPolicy;
  std::string namespace_name;  // empty for the cluster-scoped kinds
  std::string name;

  friend bool operator==(const PolicyRef&, const PolicyRef&) = default;
  friend auto operator<=>(const PolicyRef&, const PolicyRef&) = default;
};
// "NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy".
absl::string_view PolicyKindName(PolicyRef::Kind kind);

// A pod as PolicyState holds it (FindPod, FindPodByIp, ForEachPod). The
// state keeps one copy of what pods of one workload share (namespace,
// labels, container ports, owner) and of each node name, not a PodInfo per
// pod; these fields point into it and stay valid until the next input.
struct HeldPod {
  absl::string_view namespace_name;
  absl::string_view name;
  const Labels* labels = nullptr;
  const std::vector<IpAddr>* ips = nullptr;
  absl::string_view node_name;
  bool host_network = false;
  const std::vector<ContainerPort>* container_ports = nullptr;
  absl::string_view workload_kind;
  absl::string_view workload_name;

  PodInfo ToPodInfo() const;  // a copy of it all
};

struct PolicyStateOptions {
  std::string node_name;  // this node: its addresses are the host identity
};

class PolicyState {
 public:
  explicit PolicyState(PolicyStateOptions options = {});
  PolicyState(PolicyState&&) noexcept;
  PolicyState& operator=(PolicyState&&) noexcept;
  ~PolicyState();

  // Inputs. Each validates first and changes nothing on error.
  absl::Status SetNamespace(const NamespaceInfo& ns);
  absl::Status RemoveNamespace(absl::string_view name);
  // `local` is given for pods of this node (they get endpoint entries and
  // their own compiled policy); remote pods only feed the ipcache.
  absl::Status SetPod(const PodInfo& pod, std::optional<LocalEndpoint> local = std::nullopt);
  absl::Status RemovePod(absl::string_view namespace_name, absl::string_view name);
  // True when SetPod(pod, local) would change nothing: the pod is held with
  // these very fields and this local endpoint. Lets callers skip unchanged
  // pods without keeping their own copy of what was accepted.
  bool HoldsPod(const PodInfo& pod, const std::optional<LocalEndpoint>& local) const;
  absl::Status SetNode(const NodeInfo& node);
  absl::Status RemoveNode(absl::string_view name);
  absl::Status SetNetworkPolicy(const NetworkPolicy& np);
  absl::Status RemoveNetworkPolicy(absl::string_view namespace_name, absl::string_view name);
  absl::Status SetAdminNetworkPolicy(const AdminNetworkPolicy& anp);
  absl::Status RemoveAdminNetworkPolicy(absl::string_view name);
  absl::Status SetBaselineAdminNetworkPolicy(const BaselineAdminNetworkPolicy& banp);
  absl::Status RemoveBaselineAdminNetworkPolicy();

  // Desired vs last acknowledged: endpoints, ipcache and policy entries only.
  // Within one batch the backend applies upserts before deletes, so an
  // endpoint's isolation flag is set no later than its entries and a replaced
  // table is never empty in between.
  ChangeBatch Diff() const;
  void Acknowledge(const ChangeBatch& batch);
  void ResetAcknowledged();
  // Restart adoption, before the first input: `dumped` is what the datapath
  // holds (Backend::DumpState; only endpoints, ipcache and policy are read).
  // Inputs given afterwards keep the ids it uses where they fit: a local pod
  // the endpoint_id of its address, an identity the number its address or
  // prefix has, a policy entry the match_id of the entry at the same key; and
  // the dump counts as acknowledged, so Diff() holds only the real
  // differences, deletes of what went away included. Fresh ids never collide
  // with dumped ones. FailedPrecondition once an input was given. A dump that
  // is not consistent (an id 0 or above kMaxAdoptedId, a bad family or
  // prefix length, policy entries of an endpoint the dump lacks) is an
  // InvalidArgument error naming the entry; then no id is adopted, and the
  // next Diff() rewrites everything and deletes what the dump held.
  absl::Status Adopt(const ChangeBatch& dumped);

  // The policies behind a dpv2_policy_value.match_id (nullptr if unknown).
  const std::vector<PolicyRef>* MatchPolicies(uint32_t match_id) const;
  // Annotations of a NetworkPolicy (for GKE logging delegation), or nullptr.
  const Labels* NetworkPolicyAnnotations(absl::string_view namespace_name,
                                         absl::string_view name) const;
  const NamespaceInfo* FindNamespace(absl::string_view name) const;
  std::optional<HeldPod> FindPod(absl::string_view namespace_name, absl::string_view name) const;
  std::optional<HeldPod> FindPodByIp(const IpAddr& ip) const;  // hostNetwork pods excluded
  // Every pod held, in no particular order.
  void ForEachPod(absl::FunctionRef<void(const HeldPod&)> fn) const;
  size_t pod_count() const;
  const NodeInfo* FindNodeByIp(const IpAddr& ip) const;
  std::optional<uint32_t> EndpointId(absl::string_view namespace_name,
                                     absl::string_view name) const;
  // What the ipcache says for an address (longest prefix; world if none).
  uint32_t IdentityOf(const IpAddr& ip) const;
  size_t identity_count() const;   // allocated (>= 256)
  size_t policy_entry_count() const;  // desired policy entries
  // The desired policy entries of one local endpoint (whatever the backend
  // acknowledged), sorted by direction, identity, protocol, port; for tooling.
  std::vector<PolicyEntry> EndpointPolicy(uint32_t endpoint_id) const;
  // Warnings since the last call (e.g. a CIDR with host bits set).
  std::vector<std::string> TakeWarnings();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dpv2

#endif  // DPV2_POLICY_STATE_H_
