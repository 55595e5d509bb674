// Service validation: the checks kube-apiserver makes that the datapath relies
// on, so that a bad object is refused with a message naming the field instead
// of compiling into something surprising.
#include "dpv2/service.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

bool IsServiceProtocol(L4Proto p) {
  return p == L4Proto::kTCP || p == L4Proto::kUDP || p == L4Proto::kSCTP;
}

absl::string_view FamilyName(Family f) { return f == Family::kV4 ? "IPv4" : "IPv6"; }

bool IsUnspecified(const IpAddr& a) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (a.bytes()[i] != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::string_view ServiceTypeName(ServiceType type) {
  switch (type) {
    case ServiceType::kClusterIP:
      return "ClusterIP";
    case ServiceType::kNodePort:
      return "NodePort";
    case ServiceType::kLoadBalancer:
      return "LoadBalancer";
  }
  return "Unknown";
}

std::string ServiceSpec::Key() const { return absl::StrCat(namespace_name, "/", name); }

bool ServiceSpec::IsExternallyAccessible() const {
  if (!external_ips.empty()) {
    return true;
  }
  if (type == ServiceType::kLoadBalancer && !load_balancer_ips.empty()) {
    return true;
  }
  if (type == ServiceType::kClusterIP) {
    return false;
  }
  for (const ServicePortSpec& p : ports) {
    if (p.node_port != 0) {
      return true;
    }
  }
  return false;
}

absl::Status ServiceSpec::Validate(const PortRange& node_port_range) const {
  const std::string who = absl::StrCat("service ", Key(), ": ");
  auto invalid = [&who](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(who, parts...));
  };
  if (namespace_name.empty()) {
    return invalid("metadata.namespace must not be empty");
  }
  if (name.empty()) {
    return invalid("metadata.name must not be empty");
  }
  if (cluster_ips.size() > 2) {
    return invalid("spec.clusterIPs has ", cluster_ips.size(), " addresses, at most 2");
  }
  for (size_t i = 0; i < cluster_ips.size(); ++i) {
    if (IsUnspecified(cluster_ips[i])) {
      return invalid("spec.clusterIPs[", i, "] ", cluster_ips[i].ToString(),
                     " is not a usable address");
    }
  }
  if (cluster_ips.size() == 2 && cluster_ips[0].family() == cluster_ips[1].family()) {
    return invalid("spec.clusterIPs[1] ", cluster_ips[1].ToString(), " is ",
                   FamilyName(cluster_ips[1].family()),
                   " like clusterIPs[0]: dual stack needs one address of each family");
  }
  if (IsHeadless() && type != ServiceType::kClusterIP) {
    return invalid("spec.clusterIPs: a ", ServiceTypeName(type), " Service cannot be headless");
  }
  if (!IsHeadless() && ports.empty()) {
    return invalid("spec.ports must have at least one port");
  }

  absl::flat_hash_map<std::string, size_t> names;
  absl::flat_hash_map<std::pair<uint16_t, L4Proto>, size_t> port_protos;
  absl::flat_hash_map<std::pair<uint16_t, L4Proto>, size_t> node_ports;
  for (size_t i = 0; i < ports.size(); ++i) {
    const ServicePortSpec& p = ports[i];
    const std::string at = absl::StrCat("ports[", i, "] \"", p.name, "\": ");
    if (p.name.empty() && ports.size() > 1) {
      return invalid(at, "name must be set when the Service has more than one port");
    }
    if (auto [it, fresh] = names.emplace(p.name, i); !fresh) {
      return invalid(at, "duplicate name (also ports[", it->second, "])");
    }
    if (!IsServiceProtocol(p.protocol)) {
      return invalid(at, "protocol ", L4ProtoName(p.protocol),
                     " is not supported (TCP, UDP or SCTP)");
    }
    if (p.port == 0) {
      return invalid(at, "port 0 out of range 1-65535");
    }
    if (auto [it, fresh] = port_protos.emplace(std::make_pair(p.port, p.protocol), i); !fresh) {
      return invalid(at, "duplicate port ", p.port, "/", L4ProtoName(p.protocol), " (also ports[",
                     it->second, "])");
    }
    if (p.node_port != 0) {
      if (type == ServiceType::kClusterIP) {
        return invalid(at, "nodePort ", p.node_port, " is not allowed for type ClusterIP");
      }
      if (p.node_port < node_port_range.first || p.node_port > node_port_range.last) {
        return invalid(at, "nodePort ", p.node_port, " out of range ", node_port_range.first, "-",
                       node_port_range.last);
      }
      if (auto [it, fresh] = node_ports.emplace(std::make_pair(p.node_port, p.protocol), i);
          !fresh) {
        return invalid(at, "duplicate nodePort ", p.node_port, "/", L4ProtoName(p.protocol),
                       " (also ports[", it->second, "])");
      }
    }
  }

  for (size_t i = 0; i < external_ips.size(); ++i) {
    if (IsUnspecified(external_ips[i])) {
      return invalid("spec.externalIPs[", i, "] ", external_ips[i].ToString(),
                     " is not a usable address");
    }
  }
  for (size_t i = 0; i < load_balancer_ips.size(); ++i) {
    if (IsUnspecified(load_balancer_ips[i])) {
      return invalid("status.loadBalancer.ingress[", i, "].ip ", load_balancer_ips[i].ToString(),
                     " is not a usable address");
    }
  }
  if (session_affinity == SessionAffinity::kClientIP &&
      (affinity_timeout_s < 1 || affinity_timeout_s > kMaxAffinityTimeoutS)) {
    return invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds ", affinity_timeout_s,
                   " out of range 1-", kMaxAffinityTimeoutS);
  }
  if (external_traffic_policy == TrafficPolicy::kLocal && type == ServiceType::kClusterIP &&
      external_ips.empty()) {
    return invalid(
        "spec.externalTrafficPolicy Local needs type NodePort or LoadBalancer, or externalIPs");
  }
  if (health_check_node_port != 0) {
    if (type != ServiceType::kLoadBalancer || external_traffic_policy != TrafficPolicy::kLocal) {
      return invalid(
          "spec.healthCheckNodePort is only for type LoadBalancer with externalTrafficPolicy "
          "Local");
    }
    if (health_check_node_port < node_port_range.first ||
        health_check_node_port > node_port_range.last) {
      return invalid("spec.healthCheckNodePort ", health_check_node_port, " out of range ",
                     node_port_range.first, "-", node_port_range.last);
    }
  }

  absl::flat_hash_set<std::string> slice_names;
  for (size_t s = 0; s < endpoint_slices.size(); ++s) {
    const EndpointSliceSpec& slice = endpoint_slices[s];
    const std::string at = absl::StrCat("endpointSlices[", s, "] \"", slice.name, "\": ");
    if (slice.name.empty()) {
      return invalid(at, "metadata.name must not be empty");
    }
    if (!slice_names.insert(slice.name).second) {
      return invalid(at, "duplicate name");
    }
    for (size_t i = 0; i < slice.ports.size(); ++i) {
      if (!IsServiceProtocol(slice.ports[i].protocol)) {
        return invalid(at, "ports[", i, "]: protocol ", L4ProtoName(slice.ports[i].protocol),
                       " is not supported (TCP, UDP or SCTP)");
      }
    }
    for (size_t i = 0; i < slice.endpoints.size(); ++i) {
      const EndpointSpec& ep = slice.endpoints[i];
      if (ep.addresses.empty()) {
        return invalid(at, "endpoints[", i, "].addresses must not be empty");
      }
      for (size_t a = 0; a < ep.addresses.size(); ++a) {
        if (ep.addresses[a].family() != slice.address_type) {
          return invalid(at, "endpoints[", i, "].addresses[", a, "] ", ep.addresses[a].ToString(),
                         " is not ", FamilyName(slice.address_type), " (addressType)");
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace dpv2
