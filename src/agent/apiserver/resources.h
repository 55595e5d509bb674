// The Kubernetes resources the agent watches, and how their REST paths are
// built: core ("/api/v1/services") versus named groups
// ("/apis/discovery.k8s.io/v1/endpointslices"), always cluster-wide.
//
//   for (const ApiResource& r : WatchedResources()) {
//     reflectors.push_back(std::make_unique<Reflector>(config, {.resource = r}, h));
//   }
#ifndef DPV2_AGENT_APISERVER_RESOURCES_H_
#define DPV2_AGENT_APISERVER_RESOURCES_H_

#include <string>
#include <vector>

namespace dpv2::agent::apiserver {

struct ApiResource {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string plural;   // "services"
  std::string kind;     // "Service" (set on list items, which omit it)

  // "/api/v1/services" or "/apis/<group>/<version>/<plural>".
  std::string Path() const;
  // "v1" or "<group>/<version>" (the apiVersion of the objects).
  std::string ApiVersion() const;
};

ApiResource ServicesResource();
ApiResource EndpointSlicesResource();
ApiResource PodsResource();
ApiResource NamespacesResource();
ApiResource NodesResource();
ApiResource NetworkPoliciesResource();
ApiResource AdminNetworkPoliciesResource();
ApiResource BaselineAdminNetworkPoliciesResource();
ApiResource NetworkLoggingsResource();

// All of the above, in the order the agent starts them.
std::vector<ApiResource> WatchedResources();

}  // namespace dpv2::agent::apiserver

#endif  // DPV2_AGENT_APISERVER_RESOURCES_H_
