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

// {"<ns>/<pod>": {"<ns>/<pod>": true|false, ...}, ...}, from -> to -> allowed.
nlohmann::json ProbeJson(const ProbeResult& result);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_PROBE_H_
