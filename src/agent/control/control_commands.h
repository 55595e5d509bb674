// The control protocol's commands (protocol.h) evaluated against a
// ClusterView and its Backend: what the server runs inside
// ControlTarget::with_state, kept apart from the socket so that it is tested
// (and read) on its own.
//
//   absl::StatusOr<nlohmann::json> r = RunControlCommand(request, view, *backend, now_ns);
//   absl::StatusOr<ObserveRequest> o = ParseObserveRequest(request);
#ifndef DPV2_AGENT_CONTROL_CONTROL_COMMANDS_H_
#define DPV2_AGENT_CONTROL_CONTROL_COMMANDS_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "agent/cluster_view.h"
#include "agent/control/flow_hub.h"
#include "dpv2/backend.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

// The "result" of a non-streaming request: services, endpoints, identities,
// policy, ct (list|flush) or trace. InvalidArgument for an unknown command
// or a malformed field (the message names it); observe is not handled here.
absl::StatusOr<nlohmann::json> RunControlCommand(const nlohmann::json& request,
                                                 ClusterView& view, Backend& backend,
                                                 uint64_t now_ns);

struct ObserveRequest {
  FlowSubscription subscription;
  std::optional<uint64_t> count;  // end the stream after this many flows
};
absl::StatusOr<ObserveRequest> ParseObserveRequest(const nlohmann::json& request);
// The request line for an ObserveRequest (dpv2ctl's side of the parser above).
nlohmann::json ObserveRequestJson(const ObserveRequest& request);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_CONTROL_CONTROL_COMMANDS_H_
