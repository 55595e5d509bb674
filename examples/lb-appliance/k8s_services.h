// The Kubernetes Services dpv2-lb serves: the LoadBalancer and externalIPs
// frontends of decoded Service objects, with their EndpointSlices, as the
// ServiceSpecs LbState compiles.
//
// Decoding is the agent's (src/agent/k8s) and so is the merge of a Service
// with its slices (agent::BuildServiceSpec); this file only decides what a
// box in front of the cluster does with them. See docs/dpdk.md.
//
//   agent::ManifestSource source(cfg.kubernetes.manifests);
//   DPV2_ASSIGN_OR_RETURN(agent::k8s::ClusterObjects objects, source.Load());
//   KubernetesServices k8s = ServicesForAppliance(objects);
#ifndef DPV2_EXAMPLES_LB_APPLIANCE_K8S_SERVICES_H_
#define DPV2_EXAMPLES_LB_APPLIANCE_K8S_SERVICES_H_

#include <string>
#include <vector>

#include "agent/k8s/objects.h"
#include "dpv2/service.h"

namespace dpv2::lb {

struct KubernetesServices {
  std::vector<ServiceSpec> specs;
  // Decoding errors and Services left out, one line each, naming the object.
  std::vector<std::string> problems;
};

// A Service is served when it has a frontend that reaches the box: a
// LoadBalancer address (status.loadBalancer.ingress[].ip, or when the status
// has none yet, spec.loadBalancerIP) or an externalIP. Its cluster IPs stay in
// the spec (the core serves a family only with a cluster IP of that family)
// but nothing sends them to the box. The box forwards to endpoint addresses
// directly, without SNAT, so externalTrafficPolicy Local (keep the client
// address, use node-local endpoints) is served as Cluster: every endpoint is
// "local" to a box that hosts none, and the client address is kept anyway.
KubernetesServices ServicesForAppliance(const agent::k8s::ClusterObjects& objects);

// The addresses clients reach the box by: LB IPs and external IPs of `specs`,
// plus the cluster IPs of the config file's own services (namespace "lb"),
// sorted and unique. What the box answers ARP/neighbour solicitations for.
std::vector<IpAddr> FrontendAddresses(const std::vector<ServiceSpec>& specs);

}  // namespace dpv2::lb

#endif  // DPV2_EXAMPLES_LB_APPLIANCE_K8S_SERVICES_H_
