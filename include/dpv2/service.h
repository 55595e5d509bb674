// dpv2 Service model: Kubernetes Services and their EndpointSlices, as the
// core load balancer consumes them.
//
// The types mirror core/v1 Service and discovery/v1 EndpointSlice closely
// enough that an agent fills them field by field (SEMANTICS.md section 1).
// ExternalName Services are not proxied and have no type here; a headless
// Service is a ServiceSpec without cluster IPs. Validate() checks what the
// API server would, with a message naming the Service and the field.
//
//   dpv2::ServiceSpec web{.namespace_name = "default", .name = "web",
//                         .cluster_ips = {*dpv2::IpAddr::Parse("10.96.0.10")}};
//   web.ports.push_back({.name = "http", .port = 80});
//   if (absl::Status s = web.Validate(); !s.ok()) { ... }
#ifndef DPV2_SERVICE_H_
#define DPV2_SERVICE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "dpv2/abi/lb.h"
#include "dpv2/net.h"

namespace dpv2 {

enum class ServiceType : uint8_t { kClusterIP, kNodePort, kLoadBalancer };
absl::string_view ServiceTypeName(ServiceType type);  // "ClusterIP", ...

enum class TrafficPolicy : uint8_t { kCluster, kLocal };
enum class SessionAffinity : uint8_t { kNone, kClientIP };

inline constexpr uint32_t kDefaultAffinityTimeoutS = 10800;
inline constexpr uint32_t kMaxAffinityTimeoutS = DPV2_AFFINITY_MAX_TIMEOUT_S;

// spec.ports[]: targetPort is not here because the EndpointSlices carry the
// resolved port per ServicePort name (a named targetPort may differ per pod).
struct ServicePortSpec {
  std::string name;                  // may be empty when the Service has a single port
  L4Proto protocol = L4Proto::kTCP;  // TCP, UDP or SCTP
  uint16_t port = 0;
  uint16_t node_port = 0;  // 0: none (ClusterIP, or allocateLoadBalancerNodePorts=false)
};

// discovery/v1 EndpointConditions; std::nullopt is "absent" in the API.
struct EndpointConditions {
  std::optional<bool> ready;        // absent means true
  std::optional<bool> serving;      // absent means true (kube-proxy reads it so)
  std::optional<bool> terminating;  // absent means false

  bool IsReady() const { return ready.value_or(true); }
  bool IsServing() const { return serving.value_or(true); }
  bool IsTerminating() const { return terminating.value_or(false); }
};

struct EndpointHints {
  std::vector<std::string> for_zones;
  std::vector<std::string> for_nodes;
};

struct EndpointSpec {
  std::vector<IpAddr> addresses;  // only the first is used, as kube-proxy does
  EndpointConditions conditions;
  std::string node_name;
  std::string zone;
  EndpointHints hints;
};

// An EndpointSlice port: `name` matches a ServicePortSpec name ("" matches ""),
// `port` is the resolved targetPort. A port of 0 (absent in the API) is
// ignored, as kube-proxy does.
struct EndpointPortSpec {
  std::string name;
  L4Proto protocol = L4Proto::kTCP;
  uint16_t port = 0;
};

// One EndpointSlice of the Service (label kubernetes.io/service-name). Slices
// with addressType FQDN are not proxied: the agent leaves them out.
struct EndpointSliceSpec {
  std::string name;
  Family address_type = Family::kV4;
  std::vector<EndpointPortSpec> ports;
  std::vector<EndpointSpec> endpoints;
};

// Bounds of spec.ports[].nodePort (kube-apiserver --service-node-port-range).
struct PortRange {
  uint16_t first = 30000;
  uint16_t last = 32767;
};

struct ServiceSpec {
  std::string namespace_name;
  std::string name;
  ServiceType type = ServiceType::kClusterIP;
  std::vector<IpAddr> cluster_ips;        // spec.clusterIPs: 0 (headless) to 2 (dual stack)
  std::vector<IpAddr> external_ips;       // spec.externalIPs
  std::vector<IpAddr> load_balancer_ips;  // status.loadBalancer.ingress[].ip
  std::vector<ServicePortSpec> ports;
  TrafficPolicy external_traffic_policy = TrafficPolicy::kCluster;
  TrafficPolicy internal_traffic_policy = TrafficPolicy::kCluster;
  SessionAffinity session_affinity = SessionAffinity::kNone;
  uint32_t affinity_timeout_s = kDefaultAffinityTimeoutS;  // 1..86400
  std::vector<Prefix> load_balancer_source_ranges;
  std::string traffic_distribution;  // spec.trafficDistribution, e.g. "PreferClose"
  uint16_t health_check_node_port = 0;
  // Every EndpointSlice of this Service; they are merged.
  std::vector<EndpointSliceSpec> endpoint_slices;

  std::string Key() const;  // "namespace/name"
  bool IsHeadless() const { return cluster_ips.empty(); }
  // NodePort frontends, LB IPs or external IPs exist: externalTrafficPolicy matters.
  bool IsExternallyAccessible() const;

  // Errors name the Service and the field, e.g.
  // `service default/web: ports[1] "http": nodePort 80 out of range 30000-32767`.
  absl::Status Validate(const PortRange& node_port_range = {}) const;
};

// The node this dataplane runs on.
struct NodeInfo {
  std::string name;
  std::map<std::string, std::string> labels;  // policy: ANP `nodes` selectors
  std::string zone;                           // label topology.kubernetes.io/zone
  std::vector<IpAddr> addresses;              // node IPs that serve NodePorts
};

}  // namespace dpv2

#endif  // DPV2_SERVICE_H_
