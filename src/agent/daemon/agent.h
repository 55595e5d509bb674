// The node agent as a library: what dpv2-agent runs, and what tests start in
// process. It wires one object source (a manifest path re-read on change, or
// list/watch reflectors against the API server) into a Reconciler that owns
// the ClusterView and the Backend, and serves around it:
//  - /metrics (Prometheus text) and /healthz on the metrics address,
//  - kube-proxy's /healthz and /livez on the healthz address,
//  - one responder per healthCheckNodePort,
//  - the control socket for dpv2ctl (ControlServer + FlowHub),
//  - the GKE policy log (PolicyLogger into a rotating file).
// Datapath events are drained by the reconcile loop into the policy logger,
// the flow metrics and the FlowHub. Stop() ends all of that and leaves the
// datapath as it is: a pinned eBPF datapath keeps forwarding, and the next
// agent adopts it.
//
//   StructuredLog log(LogFormat::kText);
//   absl::StatusOr<std::unique_ptr<Agent>> agent =
//       Agent::Create({.node_name = "node-a", .manifests = "examples/demo"}, backend.get(), &log);
//   DPV2_RETURN_IF_ERROR((*agent)->Start());  ...  (*agent)->Stop();
#ifndef DPV2_AGENT_DAEMON_AGENT_H_
#define DPV2_AGENT_DAEMON_AGENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/apiserver/client_config.h"
#include "agent/apiserver/reflector.h"
#include "agent/apiserver/resources.h"
#include "agent/daemon/agent_flags.h"
#include "agent/daemon/reconciler.h"
#include "agent/daemon/structured_log.h"
#include "dpv2/backend.h"
#include "dpv2/lb_state.h"

namespace dpv2::agent::daemon {

// One watched resource and the API server that serves it.
struct ApiWatch {
  apiserver::ApiResource resource;
  apiserver::ClientConfig config;
};

// Every watched resource at one server (what --kubeconfig/--in-cluster give).
std::vector<ApiWatch> WatchAll(const apiserver::ClientConfig& config);

struct AgentOptions {
  std::string node_name;
  std::string backend_name = "sim";  // for logs and dpv2_agent_info
  // Exactly one source: a manifest path, or API watches.
  std::string manifests;
  absl::Duration manifest_poll = absl::Seconds(1);
  std::vector<ApiWatch> api_watches;
  apiserver::ReflectorOptions reflector;  // .resource is set per watch

  LbStateOptions lb;  // datapath sizes; must match the backend's DatapathConfig
  // Resolve local pods' interfaces from the kernel (ebpf). Off: synthetic
  // endpoints (sim).
  bool resolve_pod_interfaces = false;
  // Empty: no server.
  std::optional<ListenAddress> metrics_address;
  std::optional<ListenAddress> healthz_address;
  std::string health_check_host = "0.0.0.0";  // where healthCheckNodePorts listen
  absl::Duration health_timeout = absl::Seconds(60);
  std::string control_socket;  // empty: none
  std::string policy_log;      // empty: none
  // The datapath clock of conntrack timestamps, for `dpv2ctl ct list` (see
  // ControlTarget). Empty: CLOCK_MONOTONIC.
  std::function<uint64_t()> datapath_now_ns;
  // Learns what a pinned datapath holds before the first apply (restart).
  std::function<absl::Status(ClusterView&, Backend&)> adopt;

  absl::Duration debounce = absl::Milliseconds(50);
  absl::Duration max_delay = absl::Milliseconds(500);
  absl::Duration retry = absl::Seconds(1);
  absl::Duration gc_interval = absl::Seconds(30);
};

class Agent {
 public:
  // Validates the options; starts nothing. `backend` and `log` must outlive it.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options, Backend* backend,
                                                       StructuredLog* log);
  ~Agent();  // Stop()

  // Opens the servers and the control socket, starts the source and the
  // reconcile loop. An address that cannot be bound is an error.
  absl::Status Start();
  // One synchronous reconcile of the source (--once): waits up to `timeout`
  // for an API source's first LIST. OK only if everything was applied.
  absl::Status ReconcileOnce(absl::Duration timeout = absl::Seconds(30));
  // Graceful: stops sources, the loop and the servers, flushes the policy
  // log. The datapath is left running. Idempotent.
  void Stop();

  // The Prometheus text /metrics serves.
  std::string MetricsText();
  uint16_t metrics_port() const;
  uint16_t healthz_port() const;
  std::vector<uint16_t> health_check_ports() const;
  ReconcilerStats stats() const;
  // Runs `fn` serialized with the reconcile loop.
  void WithState(const std::function<void(ClusterView&, Backend&)>& fn);

 private:
  struct State;
  explicit Agent(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_AGENT_H_
