#include "k8s_services.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agent/cluster_view.h"
#include "lb_config.h"

namespace dpv2::lb {

KubernetesServices ServicesForAppliance(const agent::k8s::ClusterObjects& objects) {
  KubernetesServices out;
  out.problems = objects.errors;
  for (const auto& [key, svc] : objects.services) {
    if (svc.external_name) {
      continue;  // DNS only
    }
    ServiceSpec spec = agent::BuildServiceSpec(svc, objects);
    if (spec.type == ServiceType::kLoadBalancer && spec.load_balancer_ips.empty() &&
        svc.requested_load_balancer_ip.has_value()) {
      spec.load_balancer_ips.push_back(*svc.requested_load_balancer_ip);
    }
    if (spec.load_balancer_ips.empty() && spec.external_ips.empty()) {
      continue;  // nothing outside the cluster reaches it through the box
    }
    if (spec.IsHeadless()) {
      out.problems.push_back(absl::StrCat("Service ", key,
                                          ": headless (clusterIP None): not proxied, left out"));
      continue;
    }
    spec.external_traffic_policy = TrafficPolicy::kCluster;
    spec.health_check_node_port = 0;
    out.specs.push_back(std::move(spec));
  }
  return out;
}

std::vector<IpAddr> FrontendAddresses(const std::vector<ServiceSpec>& specs) {
  std::vector<IpAddr> out;
  for (const ServiceSpec& s : specs) {
    if (s.namespace_name == kLbNamespace) {
      out.insert(out.end(), s.cluster_ips.begin(), s.cluster_ips.end());
      continue;
    }
    if (s.type == ServiceType::kLoadBalancer) {
      out.insert(out.end(), s.load_balancer_ips.begin(), s.load_balancer_ips.end());
    }
    out.insert(out.end(), s.external_ips.begin(), s.external_ips.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace dpv2::lb
