// The dpv2 control protocol, spoken on the agent's unix socket by
// ControlServer and ControlClient (dpv2ctl). JSON lines: one connection
// carries one request line, then the server writes response lines.
//
// Request: one JSON object on one line (at most kMaxRequestBytes):
//   {"command": "services"}            also "endpoints", "identities"
//   {"command": "policy", "pod": "x/a"}
//   {"command": "ct", "action": "list"}    or "flush"
//   {"command": "trace", "from": "x/a" | "10.0.0.1", "to": "x/b" | "10.96.0.10",
//    "port": 80, "protocol": "TCP", "sport": 40000}      (protocol, sport optional)
//   {"command": "observe", "filter": {"pod": "x/a", "namespace": "x",
//    "verdict": "DROPPED", "port": 80}, "count": 10, "since_s": 30}
//                                       (filter fields, count, since_s optional)
// Response, every command but observe: one line, then the server closes:
//   {"ok": true, "node": "node-a", "result": R}
//                                 R is what `dpv2ctl --output json` prints
//   {"ok": false, "code": "INVALID_ARGUMENT", "error": "policy: pod ..."}
// observe: {"ok": true, "stream": "flows"} (or an error line as above), then
// one {"flow": F} per matching record, with "lost": N when records were
// dropped for this observer since the previous line; after `count` flows
// {"end": true} and the server closes. Without count the stream lasts until
// the client closes the connection (or the server stops).
//
//   nlohmann::json req = {{"command", "ct"}, {"action", "list"}};
//   absl::StatusOr<nlohmann::json> r = client.Call(req);
#ifndef DPV2_AGENT_CONTROL_PROTOCOL_H_
#define DPV2_AGENT_CONTROL_PROTOCOL_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

inline constexpr char kDefaultControlSocket[] = "/run/dpv2/agent.sock";
inline constexpr size_t kMaxRequestBytes = 64 * 1024;

// {"ok": false, "code": ..., "error": ...} for a non-OK status.
nlohmann::json ErrorResponse(const absl::Status& status);
// The status an error line carries (OK for an "ok": true line); a line that
// is neither is an Internal error naming what was received.
absl::Status ResponseStatus(const nlohmann::json& response);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_CONTROL_PROTOCOL_H_
