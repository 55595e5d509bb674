// What the dpv2-agent e2e tests share: HTTP GETs to the agent's metrics
// server inside a namespace, reading Prometheus samples, waiting for the
// first successful reconcile, and a main() that skips without root or BPF.
//
//   absl::StatusOr<std::string> m = WaitReconciled(node, kMetricsPort);
//   CHECK(Sample(*m, "dpv2_restart_adopted_changes") == 0);
//   int main(int argc, char** argv) { return RunAgentE2e("agent_xdp_test", argc, argv); }
#ifndef DPV2_TESTS_E2E_AGENT_AGENT_E2E_H_
#define DPV2_TESTS_E2E_AGENT_AGENT_E2E_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "netlab/netlab.h"

namespace dpv2::e2e {

// A local pod of node "node-a" in namespace "shop", labelled app=`app`,
// reached through `host_ifname` (the annotation dpv2.dev/host-interface).
struct PodPlan {
  std::string name;
  std::string app;
  std::string ip;
  std::string host_ifname;
};

// The pod's manifest, one YAML document starting with "---".
std::string PodYaml(const PodPlan& pod);

// Creates the pods in `node`, each with an echo server on `port`.
absl::Status StartEchoPods(const netlab::Netns& node, const std::vector<PodPlan>& plans,
                           uint16_t port, std::map<std::string, netlab::Pod>* pods,
                           std::vector<std::unique_ptr<netlab::EchoServer>>* servers);

// The dpv2-agent binary (the test's first argument).
const std::string& AgentPath();

// GET http://127.0.0.1:<port><path> from inside `ns`; the body, or an error.
absl::StatusOr<std::string> HttpGet(const netlab::Netns& ns, uint16_t port,
                                    const std::string& path);

// The value of the sample line "name value" in Prometheus text, or -1.
// `name` may carry labels: dpv2_map_capacity{map="backends"}.
double Sample(const std::string& metrics, const std::string& name);

// Waits (20 s at most) until the agent serving /metrics on `port` in `ns`
// reports a successful reconcile; returns that /metrics text.
absl::StatusOr<std::string> WaitReconciled(const netlab::Netns& ns, uint16_t port);

// main() of an agent e2e test: 77 without root (1 under CI=true), the same
// when BPF programs cannot be loaded; argv[1] is the dpv2-agent path, the
// rest goes to Catch.
int RunAgentE2e(absl::string_view program, int argc, char** argv);

}  // namespace dpv2::e2e

#endif  // DPV2_TESTS_E2E_AGENT_AGENT_E2E_H_
