#include "dpv2/service.h"

#include "absl/strings/str_cat.h"

namespace dpv2 {

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
  if (!external_ips.empty() || !load_balancer_ips.empty()) {
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

absl::Status ServiceSpec::Validate(const PortRange& /*node_port_range*/) const {
  return absl::UnimplementedError("ServiceSpec::Validate: not yet implemented");
}

}  // namespace dpv2
