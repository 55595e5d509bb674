// What `dpv2ctl` prints about a ClusterView: its Service frontends with their
// selected backends, its local endpoints, the identities, and the compiled
// policy of one pod; as readable text or as JSON for scripts and tests.
//
//   nlohmann::json j = ServicesJson(view);   // [{"address": ..., "backends": [...]}, ...]
//   std::cout << ServicesText(view);
//   absl::StatusOr<std::string> p = PolicyText(view, "x/a");
#ifndef DPV2_AGENT_REPORTS_H_
#define DPV2_AGENT_REPORTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/cluster_view.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

// One entry per frontend (address, port, protocol):
//   {"service": "ns/name", "port_name": "http", "kind": "ClusterIP"|"NodePort"|
//    "LoadBalancer"|"ExternalIP", "address": "10.96.0.10", "port": 80,
//    "protocol": "TCP", "backends": ["10.0.0.1:8080", ...]}
// `backends` is what traffic from outside the node gets (and, for a
// ClusterIP, traffic from pods); a frontend whose external traffic policy is
// Local also has "internal_backends": what this node's pods get.
nlohmann::json ServicesJson(const ClusterView& view);
std::string ServicesText(const ClusterView& view);

// Local endpoints (this node's pods): pod, addresses, ifindex, identity,
// isolation.
nlohmann::json EndpointsJson(const ClusterView& view);
std::string EndpointsText(const ClusterView& view);

// Every pod address and its identity, grouped by identity.
nlohmann::json IdentitiesJson(const ClusterView& view);
std::string IdentitiesText(const ClusterView& view);

// The compiled policy entries of one local pod ("namespace/name").
absl::StatusOr<nlohmann::json> PolicyJson(const ClusterView& view, absl::string_view pod);
absl::StatusOr<std::string> PolicyText(const ClusterView& view, absl::string_view pod);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_REPORTS_H_
