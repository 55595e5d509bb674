// The reachability probe (`dpv2ctl probe`): from a set of manifests, send one
// connection-opening packet (TCP SYN, UDP datagram or SCTP INIT) from every
// pod to every pod, itself included (as a probe through its own Service would
// hairpin), through the sim backend, and record whether the datapath delivered
// it and which policies decided. All pods are simulated on one node, so each
// packet meets the source pod's egress policy and the destination's ingress.
//
//   absl::StatusOr<ProbeResult> r = RunProbe(objects, {.port = 80});
//   std::cout << FormatProbeMatrix(*r, /*explain=*/false);
//   std::cout << ProbeJson(*r).dump() << "\n";
#ifndef DPV2_AGENT_PROBE_H_
#define DPV2_AGENT_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/k8s/objects.h"
#include "dpv2/net.h"
#include "dpv2/packet.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

struct ProbeOptions {
  uint16_t port = 80;
  L4Proto protocol = L4Proto::kTCP;  // TCP, UDP or SCTP
};

struct ProbeCell {
  bool allowed = false;
  std::string explanation;  // which direction and policies decided
};

struct ProbeResult {
  std::vector<std::string> pods;             // "namespace/name", sorted
  std::vector<std::vector<ProbeCell>> cells;  // [from][to]
};

// InvalidArgument naming every bad object and field when the manifests have
// errors (decoding, or objects the core rejects): a probe over a partial
// cluster would print a wrong table.
absl::StatusOr<ProbeResult> RunProbe(const k8s::ClusterObjects& objects,
                                     const ProbeOptions& options);

// A matrix: rows are sources, columns destinations, "." allowed, "X" denied;
// with explain, one line per cell after it.
std::string FormatProbeMatrix(const ProbeResult& result, bool explain);

// Adds to `builder` (its Ethernet header already set) the first packet of a
// connection from src:sport to dst:dport: a TCP SYN, an SCTP INIT, or a UDP
// datagram carrying `udp_payload`. What `probe` and `trace` push through a
// datapath.
void AddOpeningPacket(PacketBuilder& builder, const IpAddr& src, const IpAddr& dst,
                      L4Proto proto, uint16_t sport, uint16_t dport,
                      absl::string_view udp_payload);

// {"<ns>/<pod>": {"<ns>/<pod>": true|false, ...}, ...}, from -> to -> allowed.
nlohmann::json ProbeJson(const ProbeResult& result);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_PROBE_H_
