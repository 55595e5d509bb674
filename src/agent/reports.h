// What `dpv2ctl` prints about a ClusterView and its backend: Service
// frontends with their selected backends, local endpoints, identities, the
// compiled policy of one pod, the conntrack table, and the trace of one
// packet; as JSON for scripts and tests, and as readable text made from that
// JSON. dpv2ctl offline (sim) and the agent's control socket call the same
// functions, and the text is rendered from the JSON on the client side, so
// both modes print the same thing.
//
//   nlohmann::json j = ServicesJson(view);   // [{"address": ..., "backends": [...]}, ...]
//   std::cout << ServicesText(j);
//   absl::StatusOr<nlohmann::json> t = TraceJson(view, *backend, {.from = "x/a", .to = "x/b", .port = 80});
#ifndef DPV2_AGENT_REPORTS_H_
#define DPV2_AGENT_REPORTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/cluster_view.h"
#include "dpv2/backend.h"
#include "dpv2/net.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

// One entry per frontend (address, port, protocol):
//   {"service": "ns/name", "port_name": "http", "kind": "ClusterIP"|"NodePort"|
//    "LoadBalancer"|"ExternalIP", "address": "10.96.0.10", "port": 80,
//    "protocol": "TCP", "backends": ["10.0.0.1:8080", ...]}
// `backends` is what traffic from outside the node gets (and, for a
// ClusterIP, traffic from pods); a frontend whose external traffic policy is
// Local also has "internal_backends": what this node's pods get.
// NodePort frontends appear once per node address, LoadBalancer ones once
// per status.loadBalancer.ingress IP.
nlohmann::json ServicesJson(const ClusterView& view);
std::string ServicesText(const ClusterView& view);
std::string ServicesText(const nlohmann::json& services);

// Local endpoints (this node's pods): pod, addresses, ifindex, identity,
// isolation.
nlohmann::json EndpointsJson(const ClusterView& view);
std::string EndpointsText(const ClusterView& view);
std::string EndpointsText(const nlohmann::json& endpoints, absl::string_view node_name);

// Every pod address and its identity, grouped by identity.
nlohmann::json IdentitiesJson(const ClusterView& view);
std::string IdentitiesText(const ClusterView& view);
std::string IdentitiesText(const nlohmann::json& identities);

// The compiled policy entries of one local pod ("namespace/name"): all that
// the view desires, whether or not it was applied to a backend.
absl::StatusOr<nlohmann::json> PolicyJson(const ClusterView& view, absl::string_view pod);
absl::StatusOr<std::string> PolicyText(const ClusterView& view, absl::string_view pod);
std::string PolicyText(const nlohmann::json& policy);

// Decoded conntrack entries, sorted by protocol and tuple: tuple, whether it
// is a SERVICE entry, state, reverse NAT, chosen backend and Service, age and
// time to expiry against `now_ns` (the backend's datapath clock), counts.
nlohmann::json ConntrackJson(const std::vector<ConntrackEntry>& entries, uint64_t now_ns,
                             const ClusterView& view);
std::string ConntrackText(const nlohmann::json& entries);

// One hypothetical packet, from a pod or address to a pod or address.
struct TraceRequest {
  std::string from;  // "namespace/name" of a pod, or an address (from the network)
  std::string to;    // a pod or an address (e.g. a Service frontend)
  uint16_t port = 0;
  L4Proto protocol = L4Proto::kTCP;
  // Source port. Unset: the first port from 40000 up that no conntrack entry
  // of the backend uses for this source, so that the trace never touches a
  // live connection's entry.
  std::optional<uint16_t> sport;
};
// InvalidArgument naming the field for a malformed request.
absl::StatusOr<TraceRequest> ParseTraceRequest(const nlohmann::json& request);
nlohmann::json TraceRequestJson(const TraceRequest& request);

// Runs the packet through `backend` (which holds the view's state: the live
// backend of the agent, or a sim the view was applied to) with RunPacket, and
// reports each datapath event as a step, the verdict and the output frames.
// The packet has the effect a real one would have: a TCP SYN (or a UDP/SCTP
// first packet) creates its conntrack entries (they expire on the SYN /
// non-TCP timeout), counts, records affinity for an affinity Service, and
// its events also reach the event stream (and so `observe`).
absl::StatusOr<nlohmann::json> TraceJson(const ClusterView& view, Backend& backend,
                                         const TraceRequest& request);
std::string TraceText(const nlohmann::json& trace);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_REPORTS_H_
