#include "agent/apiserver/resources.h"

#include "absl/strings/str_cat.h"

namespace dpv2::agent::apiserver {

std::string ApiResource::Path() const {
  if (group.empty()) return absl::StrCat("/api/", version, "/", plural);
  return absl::StrCat("/apis/", group, "/", version, "/", plural);
}

std::string ApiResource::ApiVersion() const {
  if (group.empty()) return version;
  return absl::StrCat(group, "/", version);
}

ApiResource ServicesResource() { return {"", "v1", "services", "Service"}; }
ApiResource EndpointSlicesResource() {
  return {"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"};
}
ApiResource PodsResource() { return {"", "v1", "pods", "Pod"}; }
ApiResource NamespacesResource() {
  return {"", "v1", "namespaces", "Namespace"};
}
ApiResource NodesResource() { return {"", "v1", "nodes", "Node"}; }
ApiResource NetworkPoliciesResource() {
  return {"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"};
}
ApiResource AdminNetworkPoliciesResource() {
  return {"policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies",
          "AdminNetworkPolicy"};
}
ApiResource BaselineAdminNetworkPoliciesResource() {
  return {"policy.networking.k8s.io", "v1alpha1",
          "baselineadminnetworkpolicies", "BaselineAdminNetworkPolicy"};
}
ApiResource NetworkLoggingsResource() {
  return {"networking.gke.io", "v1alpha1", "networkloggings",
          "NetworkLogging"};
}

std::vector<ApiResource> WatchedResources() {
  return {NamespacesResource(),
          NodesResource(),
          PodsResource(),
          ServicesResource(),
          EndpointSlicesResource(),
          NetworkPoliciesResource(),
          AdminNetworkPoliciesResource(),
          BaselineAdminNetworkPoliciesResource(),
          NetworkLoggingsResource()};
}

}  // namespace dpv2::agent::apiserver
