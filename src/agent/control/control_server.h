// ControlServer: the agent's local control socket, which `dpv2ctl` talks to.
// It listens on a unix stream socket (mode 0600: root's tool) on its own
// thread (Boost.Asio, which stays inside the .cc) and answers the requests of
// protocol.h: services, endpoints, identities, policy, ct list|flush, trace,
// observe. Answers are computed with the same report functions as dpv2ctl's
// offline mode (agent/reports.h), so both print the same thing.
//
// The daemon owns the state; the server only borrows it through
// ControlTarget::with_state, which runs a function while nothing else touches
// the ClusterView or the Backend (the daemon serializes it with its reconcile
// loop). Flows come from the daemon's FlowHub.
//
//   absl::StatusOr<std::unique_ptr<ControlServer>> server = ControlServer::Start(
//       {.socket_path = "/run/dpv2/agent.sock"},
//       {.with_state = [&](const auto& fn) { absl::MutexLock l(&mu); fn(view, *backend); },
//        .flows = &hub});
#ifndef DPV2_AGENT_CONTROL_CONTROL_SERVER_H_
#define DPV2_AGENT_CONTROL_CONTROL_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/cluster_view.h"
#include "agent/control/flow_hub.h"
#include "dpv2/backend.h"

namespace dpv2::agent {

struct ControlTarget {
  // Runs `fn` with exclusive access to the view and the backend. Required.
  std::function<void(const std::function<void(ClusterView&, Backend&)>&)> with_state;
  // The live flow stream for `observe`; nullptr: observe answers Unavailable.
  FlowHub* flows = nullptr;
  // The backend's datapath clock in ns (the clock of conntrack timestamps),
  // for the age and expiry of `ct list`. Empty: CLOCK_MONOTONIC, which is
  // the sim's default clock; the eBPF backend adds kEbpfClockOffsetNs.
  std::function<uint64_t()> datapath_now_ns;
};

struct ControlServerOptions {
  std::string socket_path;  // its directory is created (0700) if missing
  // Requests served at once; more connections wait to be accepted.
  int max_connections = 16;
};

class ControlServer {
 public:
  // Removes a stale socket file at the path (one no process accepts on) and
  // refuses one that a live process is serving (FailedPrecondition).
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(ControlServerOptions options,
                                                              ControlTarget target);
  // Stops accepting, ends open sessions (observers included), joins the
  // thread and removes the socket file.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& socket_path() const;
  uint64_t requests_served() const;

 private:
  struct State;
  explicit ControlServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_CONTROL_CONTROL_SERVER_H_
