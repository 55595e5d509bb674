// dpv2 policy model: the Kubernetes objects that decide who may talk to whom.
//
// These structs mirror the Kubernetes APIs field by field (snake_case of the
// JSON names): NetworkPolicy (networking.k8s.io/v1), AdminNetworkPolicy and
// BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1), plus the
// facts about pods, namespaces and nodes that policy evaluation needs. The
// agent decodes manifests into them; the policy compiler (dpv2::PolicyState)
// turns them into datapath entries. Nothing here does I/O.
//
//   dpv2::NetworkPolicy np{.metadata = {.name = "deny-all", .namespace_name = "x"}};
//   np.spec.policy_types = {{dpv2::PolicyType::kIngress}};
//   DPV2_RETURN_IF_ERROR(dpv2::ValidateNetworkPolicy(np));
#ifndef DPV2_POLICY_H_
#define DPV2_POLICY_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dpv2/net.h"
#include "dpv2/service.h"

namespace dpv2 {

// Sorted, so that label sets compare and hash deterministically.
using Labels = std::map<std::string, std::string>;

// The label every namespace carries implicitly (Kubernetes >= 1.21).
inline constexpr absl::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";

// metadata.{name, namespace, labels, annotations}. `namespace` is a C++
// keyword, hence namespace_name. Cluster-scoped objects leave it empty.
struct ObjectMeta {
  std::string name;
  std::string namespace_name;
  Labels labels;
  Labels annotations;
};

// ---------------------------------------------------------------------------
// Label selectors (meta/v1 LabelSelector).

enum class LabelSelectorOperator : uint8_t { kIn, kNotIn, kExists, kDoesNotExist };
// "In", "NotIn", "Exists", "DoesNotExist" (exact case, as the API spells them).
absl::StatusOr<LabelSelectorOperator> ParseLabelSelectorOperator(absl::string_view text);
absl::string_view LabelSelectorOperatorName(LabelSelectorOperator op);

struct LabelSelectorRequirement {
  std::string key;
  LabelSelectorOperator op = LabelSelectorOperator::kIn;  // JSON "operator"
  std::vector<std::string> values;
};

// Empty (no labels, no expressions) selects everything. Requirements are
// ANDed. NotIn and DoesNotExist match objects that lack the key.
struct LabelSelector {
  Labels match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;

  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
  bool Matches(const Labels& labels) const;
  // In/NotIn need at least one value; Exists/DoesNotExist take none; keys are
  // non-empty. `where` names the field in the message ("spec.podSelector").
  absl::Status Validate(absl::string_view where) const;
  std::string ToString() const;  // canonical text, also a stable map key
};

// ---------------------------------------------------------------------------
// NetworkPolicy (networking.k8s.io/v1).

enum class PolicyType : uint8_t { kIngress, kEgress };
absl::StatusOr<PolicyType> ParsePolicyType(absl::string_view text);  // "Ingress" | "Egress"

// intstr.IntOrString: a port number or a named (container) port.
using IntOrString = std::variant<int32_t, std::string>;

struct IPBlock {
  std::string cidr;                 // may have host bits set: masked, with a warning
  std::vector<std::string> except;  // each inside cidr
};

// At least one of the three. pod_selector alone: pods of the policy's
// namespace; namespace_selector alone: all pods of matching namespaces; both:
// AND; ip_block: addresses, pod IPs included.
struct NetworkPolicyPeer {
  std::optional<LabelSelector> pod_selector;
  std::optional<LabelSelector> namespace_selector;
  std::optional<IPBlock> ip_block;
};

struct NetworkPolicyPort {
  std::optional<L4Proto> protocol;  // TCP when absent; TCP, UDP or SCTP
  std::optional<IntOrString> port;  // absent: every port of the protocol
  std::optional<int32_t> end_port;  // inclusive; needs a numeric port <= end_port
};

// Empty ports: all ports; empty from/to: all peers.
struct NetworkPolicyIngressRule {
  std::vector<NetworkPolicyPort> ports;
  std::vector<NetworkPolicyPeer> from;
};

struct NetworkPolicyEgressRule {
  std::vector<NetworkPolicyPort> ports;
  std::vector<NetworkPolicyPeer> to;
};

struct NetworkPolicySpec {
  LabelSelector pod_selector;  // empty: every pod of the namespace
  std::vector<NetworkPolicyIngressRule> ingress;
  std::vector<NetworkPolicyEgressRule> egress;
  // Absent: Ingress, plus Egress if `egress` is non-empty. (The API server
  // stores the defaulted list; manifests often omit it.)
  std::optional<std::vector<PolicyType>> policy_types;
};

struct NetworkPolicy {
  ObjectMeta metadata;  // name and namespace_name required
  NetworkPolicySpec spec;
};

// policy_types after defaulting: {ingress, egress}.
std::array<bool, 2> EffectivePolicyTypes(const NetworkPolicySpec& spec);

// Messages name the object and the field:
//   networkpolicy x/allow-80: spec.ingress[0].ports[1].endPort 70 < port 80
absl::Status ValidateNetworkPolicy(const NetworkPolicy& np);

// ---------------------------------------------------------------------------
// AdminNetworkPolicy / BaselineAdminNetworkPolicy
// (policy.networking.k8s.io/v1alpha1).

enum class AdminNetworkPolicyRuleAction : uint8_t { kAllow, kDeny, kPass };
// "Allow", "Deny", "Pass".
absl::StatusOr<AdminNetworkPolicyRuleAction> ParseAdminNetworkPolicyRuleAction(
    absl::string_view text);
absl::string_view AdminNetworkPolicyRuleActionName(AdminNetworkPolicyRuleAction a);

// Pods chosen by namespace and pod labels together.
struct NamespacedPod {
  LabelSelector namespace_selector;
  LabelSelector pod_selector;
};

// Exactly one of the two.
struct AdminNetworkPolicySubject {
  std::optional<LabelSelector> namespaces;  // every pod of matching namespaces
  std::optional<NamespacedPod> pods;
};

struct AdminNetworkPolicyPortNumber {
  L4Proto protocol = L4Proto::kTCP;
  int32_t port = 0;
};

struct AdminNetworkPolicyPortRange {
  L4Proto protocol = L4Proto::kTCP;
  int32_t start = 0;
  int32_t end = 0;  // inclusive
};

// Exactly one of the three.
struct AdminNetworkPolicyPort {
  std::optional<AdminNetworkPolicyPortNumber> port_number;
  std::optional<std::string> named_port;
  std::optional<AdminNetworkPolicyPortRange> port_range;
};

// Exactly one field set.
struct AdminNetworkPolicyIngressPeer {
  std::optional<LabelSelector> namespaces;
  std::optional<NamespacedPod> pods;
};

// Exactly one field set. networks are CIDRs (addresses, pod IPs included);
// nodes selects nodes by their labels (their addresses).
struct AdminNetworkPolicyEgressPeer {
  std::optional<LabelSelector> namespaces;
  std::optional<NamespacedPod> pods;
  std::optional<LabelSelector> nodes;
  std::optional<std::vector<std::string>> networks;
};

// ports absent: every port and protocol.
struct AdminNetworkPolicyIngressRule {
  std::string name;
  AdminNetworkPolicyRuleAction action = AdminNetworkPolicyRuleAction::kDeny;
  std::vector<AdminNetworkPolicyIngressPeer> from;
  std::optional<std::vector<AdminNetworkPolicyPort>> ports;
};

struct AdminNetworkPolicyEgressRule {
  std::string name;
  AdminNetworkPolicyRuleAction action = AdminNetworkPolicyRuleAction::kDeny;
  std::vector<AdminNetworkPolicyEgressPeer> to;
  std::optional<std::vector<AdminNetworkPolicyPort>> ports;
};

struct AdminNetworkPolicySpec {
  int32_t priority = 0;  // 0..1000, lower is evaluated first
  AdminNetworkPolicySubject subject;
  std::vector<AdminNetworkPolicyIngressRule> ingress;  // at most 100, in order
  std::vector<AdminNetworkPolicyEgressRule> egress;    // at most 100, in order
};

struct AdminNetworkPolicy {
  ObjectMeta metadata;  // cluster-scoped: name only
  AdminNetworkPolicySpec spec;
};

// Same rule shapes; actions are Allow or Deny only (Pass is invalid).
struct BaselineAdminNetworkPolicySpec {
  AdminNetworkPolicySubject subject;
  std::vector<AdminNetworkPolicyIngressRule> ingress;
  std::vector<AdminNetworkPolicyEgressRule> egress;
};

struct BaselineAdminNetworkPolicy {
  ObjectMeta metadata;  // the singleton is named "default"
  BaselineAdminNetworkPolicySpec spec;
};

absl::Status ValidateAdminNetworkPolicy(const AdminNetworkPolicy& anp);
absl::Status ValidateBaselineAdminNetworkPolicy(const BaselineAdminNetworkPolicy& banp);

// ---------------------------------------------------------------------------
// Inputs: what policy needs to know about pods, namespaces and nodes.

// core/v1 ContainerPort (the fields policy uses).
struct ContainerPort {
  std::string name;                  // may be empty; a named port needs it
  L4Proto protocol = L4Proto::kTCP;  // TCP when absent in the manifest
  int32_t container_port = 0;

  friend bool operator==(const ContainerPort&, const ContainerPort&) = default;
};

struct PodInfo {
  std::string namespace_name;
  std::string name;
  Labels labels;
  std::vector<IpAddr> ips;  // status.podIPs (one per family); empty: not yet running
  std::string node_name;    // spec.nodeName
  bool host_network = false;  // never selected by pod selectors: node traffic
  std::vector<ContainerPort> container_ports;  // every container's ports
  // For GKE policy log records (from ownerReferences, e.g. "Deployment", "web").
  std::string workload_kind;
  std::string workload_name;
};

// labels need not carry kubernetes.io/metadata.name: it is implied.
struct NamespaceInfo {
  std::string name;
  Labels labels;
  Labels annotations;  // policy.network.gke.io/enable-deny-logging
};

// NodeInfo (name, labels, zone, addresses) is defined once, in dpv2/service.h.

// A pod on this node: what the datapath needs to deliver to it.
struct LocalEndpoint {
  uint32_t ifindex = 0;               // host side of the pod's veth
  std::array<uint8_t, 6> mac{};       // the pod's MAC
  std::array<uint8_t, 6> host_mac{};  // the host-side veth MAC
};

}  // namespace dpv2

#endif  // DPV2_POLICY_H_
