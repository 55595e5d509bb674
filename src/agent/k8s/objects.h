// The Kubernetes objects one node's agent cares about, decoded from JSON with
// the API server's defaults applied and validated field by field, and the set
// of them that makes up a cluster as this node sees it.
//
// Decoding fills the core model types (dpv2/service.h, dpv2/policy.h) where
// they exist, plus the few Kubernetes facts the core does not model (a
// Service's selector and targetPorts, a Pod's phase, a Node's address types).
// An invalid object is reported with its kind, namespace/name and the field
// path and is left out; it never disturbs the valid objects around it.
//
//   ClusterObjects objects;
//   AddManifestText(text, "web.yaml", &objects);
//   for (const std::string& e : objects.errors) { std::cerr << e << "\n"; }
#ifndef DPV2_AGENT_K8S_OBJECTS_H_
#define DPV2_AGENT_K8S_OBJECTS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/k8s/manifest_text.h"
#include "dpv2/net.h"
#include "dpv2/policy.h"
#include "dpv2/service.h"
#include "nlohmann/json.hpp"

namespace simdjson::dom {
class element;
}  // namespace simdjson::dom

namespace dpv2::agent::k8s {

// "Service default/web", "Node node-1" (cluster-scoped objects have no
// namespace): how every message names an object.
struct ObjectId {
  std::string kind;
  std::string namespace_name;
  std::string name;

  std::string ToString() const;
  std::string Key() const;  // "default/web" or "node-1"
};

// spec.ports[].targetPort as written (after defaulting to `port`).
struct TargetPort {
  int32_t number = 0;  // when name is empty
  std::string name;
};

struct ServiceObject {
  ServiceSpec spec;  // ExternalName Services have spec.type ClusterIP and no IPs
  bool external_name = false;  // type ExternalName: DNS only, never proxied
  std::string external_name_target;
  Labels labels;
  Labels annotations;
  std::optional<Labels> selector;  // absent: endpoints are managed by hand
  std::vector<TargetPort> target_ports;  // parallel to spec.ports
  bool publish_not_ready_addresses = false;
  // spec.loadBalancerIP (deprecated in the API, still honoured by LB
  // implementations): the address asked for; only LoadBalancer Services.
  std::optional<IpAddr> requested_load_balancer_ip;
};

struct EndpointSliceObject {
  std::string namespace_name;
  Labels labels;
  std::string service_name;  // label kubernetes.io/service-name; "" = no Service
  bool fqdn = false;         // addressType FQDN: never proxied
  EndpointSliceSpec spec;    // spec.name is metadata.name
  // Parallel to spec.endpoints: targetRef of kind Pod, "namespace/name" or "".
  std::vector<std::string> target_pods;
};

struct PodObject {
  PodInfo info;
  std::string phase;  // status.phase; Succeeded/Failed pods hold no address
  Labels annotations;
};

enum class NodeAddressType : uint8_t { kInternalIP, kExternalIP, kHostname, kOther };

struct NodeAddress {
  NodeAddressType type = NodeAddressType::kInternalIP;
  std::string text;  // hostnames stay text
  std::optional<IpAddr> ip;
};

struct NodeObject {
  std::string name;
  Labels labels;
  std::vector<NodeAddress> addresses;
  std::vector<Prefix> pod_cidrs;  // spec.podCIDRs (or podCIDR)
  std::string zone;               // label topology.kubernetes.io/zone

  // InternalIP and ExternalIP addresses, in status order.
  std::vector<IpAddr> Ips() const;
};

// networking.gke.io/v1alpha1 NetworkLogging "default" (SEMANTICS.md 4).
struct NetworkLoggingObject {
  bool allow_log = false;
  bool allow_delegate = false;
  bool deny_log = false;
  bool deny_delegate = false;
};

// A cluster as this node sees it. Maps are keyed by ObjectId::Key(), so
// iteration is sorted and repeatable.
struct ClusterObjects {
  std::map<std::string, ServiceObject> services;
  std::map<std::string, EndpointSliceObject> endpoint_slices;
  std::map<std::string, PodObject> pods;
  std::map<std::string, NamespaceInfo> namespaces;
  std::map<std::string, NodeObject> nodes;
  std::map<std::string, NetworkPolicy> network_policies;
  std::map<std::string, AdminNetworkPolicy> admin_network_policies;
  std::optional<BaselineAdminNetworkPolicy> baseline_admin_network_policy;
  std::optional<NetworkLoggingObject> network_logging;

  // One line per invalid object or unreadable document:
  //   `Service default/web: spec.ports[1].targetPort: must be 1-65535 or a name, got "0"`
  std::vector<std::string> errors;
  // Objects that are valid but ignored (unknown kinds, FQDN slices, ...).
  std::vector<std::string> warnings;

  size_t object_count() const;
};

// Decodes one object and adds it to `out` (replacing one with the same kind
// and key; a duplicate within one load is reported as a warning). `origin`
// names where it came from for errors that precede knowing its name.
// `texts` (from ParseManifestText, may be null) lets string fields read
// unquoted YAML scalars as written.
void AddObject(const nlohmann::json& object, absl::string_view origin, ClusterObjects* out,
               const ScalarTexts* texts = nullptr);

// The kind and apiVersion of an API object that names none (LIST items
// omit them: they are their resource's).
struct TypeMeta {
  absl::string_view kind;
  absl::string_view api_version;
};

// AddObject for an element of a simdjson document: the API server's
// objects, which the reflector parses with simdjson. An object without kind
// or apiVersion has `defaults`'. Same objects, errors and warnings as the
// tree of the same JSON with the defaults written in.
void AddApiObject(const simdjson::dom::element& object, const TypeMeta& defaults,
                  absl::string_view origin, ClusterObjects* out);

// ParseManifestText + AddObject for every object in the text.
void AddManifestText(absl::string_view text, absl::string_view source, ClusterObjects* out);

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_OBJECTS_H_
