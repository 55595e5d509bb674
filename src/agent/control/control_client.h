// ControlClient: dpv2ctl's end of the agent's control socket (protocol.h).
// Each call opens one connection, sends one request line and reads the
// response lines; a server error comes back as the absl::Status it carried.
//
//   absl::StatusOr<ControlClient> c = ControlClient::Connect({.socket_path = path});
//   absl::StatusOr<nlohmann::json> services = c->Call({{"command", "services"}});
//   c->Stream({{"command", "observe"}}, [](const nlohmann::json& line) { return true; });
#ifndef DPV2_AGENT_CONTROL_CONTROL_CLIENT_H_
#define DPV2_AGENT_CONTROL_CONTROL_CLIENT_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/control/protocol.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

struct ControlClientOptions {
  std::string socket_path = kDefaultControlSocket;
  // Bounds connecting and each non-streaming call (not an observe stream).
  absl::Duration timeout = absl::Seconds(30);
};

class ControlClient {
 public:
  // Checks that the socket accepts a connection: Unavailable naming the
  // path (and saying whether the agent runs) if not.
  static absl::StatusOr<ControlClient> Connect(ControlClientOptions options);

  // One request, one response: the "result" of an ok line, or the error.
  // `response`, when given, receives the whole line (it also names the
  // agent's "node").
  absl::StatusOr<nlohmann::json> Call(const nlohmann::json& request,
                                      nlohmann::json* response = nullptr) const;

  // A streaming request (observe): `on_line` gets every line after the
  // opening {"ok": true, ...} line but the closing {"end": true}; returning
  // false closes the connection.
  // Returns OK when the server ended the stream or on_line said stop.
  absl::Status Stream(const nlohmann::json& request,
                      const std::function<bool(const nlohmann::json&)>& on_line) const;

 private:
  explicit ControlClient(ControlClientOptions options) : options_(std::move(options)) {}
  ControlClientOptions options_;
};

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_CONTROL_CONTROL_CLIENT_H_
