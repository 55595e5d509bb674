// The command line of dpv2-agent, parsed into one options struct. Every
// error names the flag and what was wrong with its value, so that a node
// that fails to start says what to fix. The flag names are a contract: the
// README demo and the e2e tests start the agent with them.
//
//   absl::StatusOr<AgentFlags> flags = ParseAgentFlags(argc, argv);
//   if (!flags.ok()) { std::cerr << flags.status().message() << "\n"; return 2; }
//   if (flags->help) { std::cout << AgentUsage(); }
#ifndef DPV2_AGENT_DAEMON_AGENT_FLAGS_H_
#define DPV2_AGENT_DAEMON_AGENT_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dpv2/datapath_config.h"

namespace dpv2::agent::daemon {

enum class BackendKind { kSim, kEbpf };
enum class LogFormat { kText, kJson };
// EbpfOptions::checksum (dpv2/ebpf.h): which build of the tc object runs.
enum class TcChecksum { kAuto, kInPlace, kHelpers };

// "host:port"; host may be an IPv6 address in brackets ("[::1]:9090").
struct ListenAddress {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;
};

// Parses "HOST:PORT" (port 0 lets the kernel choose); `flag` names it in errors.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text,
                                                 absl::string_view flag);

struct AgentFlags {
  BackendKind backend = BackendKind::kSim;
  std::string node;  // empty before defaulting: ParseAgentFlags fills the hostname
  // Exactly one object source.
  std::string manifests;   // a file or directory, re-read on change
  std::string kubeconfig;  // a kubeconfig file
  bool in_cluster = false;
  std::string bpffs;  // pin path (ebpf); empty: nothing pinned
  std::string external_interface;
  bool xdp = false;
  // EbpfOptions::host_routing: on unless --host-routing=false.
  bool host_routing = true;
  TcChecksum checksum = TcChecksum::kAuto;  // --checksum
  std::string control_socket = "/run/dpv2/agent.sock";
  std::string policy_log;  // empty: no policy log file
  std::string metrics_address;  // empty: no /metrics server
  std::string healthz_address = "0.0.0.0:10256";  // empty: no health server
  LogFormat log_format = LogFormat::kText;
  // Map sizes and conntrack timeouts (--max-backends, --ct-tcp-entries, ...,
  // see AgentUsage): the defaults of DatapathConfig unless given. Valid when
  // parsing succeeded (DatapathConfig::Validate).
  DatapathConfig datapath;
  bool once = false;
  bool help = false;
};

// argv[0] is skipped. Accepts "--flag=value" and "--flag value". Unknown
// flags, missing values, conflicting sources and bad values are errors
// (InvalidArgument naming the flag).
absl::StatusOr<AgentFlags> ParseAgentFlags(const std::vector<std::string>& args);
absl::StatusOr<AgentFlags> ParseAgentFlags(int argc, char** argv);

std::string AgentUsage();

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_AGENT_FLAGS_H_
