// The systems the peer benchmark compares, each in its own node namespace
// between a client pod and a server pod: plain routing, kube-proxy's
// iptables mode (iptables-nft and iptables-legacy), kube-proxy's nftables
// mode, and dpv2 on the eBPF backend programmed through the agent's
// ClusterView from Service and EndpointSlice objects.
//
// Every endpoint address lives on the one server pod (an AnyIP route for
// the whole endpoint range), served by two echo servers: "a" on the target
// port and "b" on target port + 1, so a probe learns which endpoint served.
// In the NodePort lab (PeerSystemOptions::nodeport) the client is a host
// outside the node instead, on the node's external link, and reaches the
// Services at the node's address and their nodePorts.
//
//   absl::StatusOr<std::unique_ptr<PeerSystem>> s = MakePeerSystem(SystemKind::kNftables, {});
//   DPV2_RETURN_IF_ERROR((*s)->Program(set, {}));
//   absl::StatusOr<absl::Duration> t = ConnectOnce((*s)->lab().client.netns(), vip, 80);
#ifndef DPV2_TESTS_BENCH_PEERS_SYSTEMS_H_
#define DPV2_TESTS_BENCH_PEERS_SYSTEMS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kube_proxy_rules.h"
#include "measure.h"
#include "netlab/netlab.h"

namespace dpv2::bench {

// kDpv2StackRouting: dpv2 with EbpfOptions::host_routing off (the node's
// stack forwards what the programs pass, as before host routing).
// kDpv2Xdp: dpv2 with its XDP program on the node's external device too
// (EbpfOptions::xdp); NodePort lab only, as XDP serves no pod traffic.
enum class SystemKind : uint8_t {
  kPlain,
  kIptablesNft,
  kIptablesLegacy,
  kNftables,
  kDpv2,
  kDpv2StackRouting,
  kDpv2Xdp
};
std::string SystemName(SystemKind kind);  // "iptables-nft", "dpv2-ebpf", ...
bool IsDpv2(SystemKind kind);
std::optional<SystemKind> ParseSystemName(absl::string_view name);

// The namespaces one system runs in.
struct NodeLab {
  netlab::Netns node;
  // 10.64.0.2, inside kube-proxy's cluster CIDR: no masquerade. In the
  // NodePort lab: AddressPlan::external_client_ip, wired like a pod but on
  // the node's external link ext0, which holds AddressPlan::node_ip.
  netlab::Pod client;
  netlab::Pod server;  // 10.254.0.2, plus every endpoint address (AnyIP)
  std::unique_ptr<netlab::EchoServer> echo_a;  // target_port, answers "a"
  std::unique_ptr<netlab::EchoServer> echo_b;  // target_port + 1, answers "b"
};

// One change of the Service set, as a watch would deliver it.
struct SetChange {
  std::vector<size_t> services;  // indices of added or changed Services
  // Endpoints that left those Services (their chains are deleted).
  std::vector<std::pair<BenchService, BenchEndpoint>> removed;
};

struct PeerSystemOptions {
  AddressPlan plan;
  uint32_t maglev_table_size = 1021;  // dpv2 only
  uint32_t capacity_services = 0;     // dpv2 map sizes (0: sized by the first Program)
  uint64_t capacity_endpoints = 0;
  // dpv2 only. false: endpoint addresses sit behind the node's link to the
  // server pod, taken as the node's uplink (remote endpoints: after NAT the
  // kernel routes the packet). true: each endpoint address is a Pod of this
  // node on the server pod's veth (local endpoints: the program delivers
  // straight to the veth).
  bool local_endpoints = false;
  // dpv2 only: EbpfOptions::host_routing (MakePeerSystem sets it from the
  // kind: kDpv2 on, kDpv2StackRouting off).
  bool host_routing = true;
  // The NodePort lab (NodeLab::client outside the node). dpv2: ext0 is its
  // external device, the node's Node object names node_ip, and every
  // endpoint is a local Pod (local_endpoints), so that a NodePort
  // connection is delivered to the pod's veth without SNAT.
  bool nodeport = false;
  // dpv2 only: EbpfOptions::xdp on ext0 (MakePeerSystem sets it for kDpv2Xdp).
  bool xdp = false;
};

class PeerSystem {
 public:
  virtual ~PeerSystem() = default;
  virtual SystemKind kind() const = 0;
  std::string name() const { return SystemName(kind()); }
  const NodeLab& lab() const { return *lab_; }
  // Whether the system translates ClusterIPs (plain routing does not).
  bool translates() const { return kind() != SystemKind::kPlain; }

  // Makes the node program `set`: everything when `change` is null (the
  // first load), else only what `change` names, the way the system's own
  // control plane would (kube-proxy partial syncs, the agent's ApplyTo).
  // Returns when the program call returned.
  virtual absl::Status Program(const BenchServices& set, const SetChange* change) = 0;

  // Bytes of rule text handed to the kernel by the last full Program, and
  // rules/objects it held (for the memory table); 0 when not meaningful.
  uint64_t last_text_bytes() const { return last_text_bytes_; }
  // Agent-side resident memory grown by the last full Program (dpv2).
  virtual int64_t agent_bytes() const { return 0; }
  // Time to start before any Service (dpv2: load, verify and attach the
  // BPF programs), not part of the load figure.
  virtual double startup_ms() const { return 0; }
  // The load time measured inside the last full Program, when the system
  // times a part of it (dpv2: objects to maps, without startup).
  virtual std::optional<double> load_ms() const { return std::nullopt; }
  // How the last Program split between the agent (objects decoded,
  // ClusterView::Update) and the datapath (ApplyTo), ms; dpv2 only.
  virtual std::pair<double, double> last_agent_and_apply_ms() const { return {0, 0}; }
  // The part of the last Program's apply spent in Backend::Apply (the
  // datapath's map writes, without the core's diff), ms; dpv2 only.
  virtual double last_datapath_ms() const { return 0; }
  // BPF map memory (memlock) the system holds, by map name (dpv2).
  virtual absl::StatusOr<std::vector<BpfMapMemory>> Maps() const {
    return std::vector<BpfMapMemory>();
  }

 protected:
  std::unique_ptr<NodeLab> lab_;
  uint64_t last_text_bytes_ = 0;
};

// Builds the namespaces and the (empty) system in them.
absl::StatusOr<std::unique_ptr<PeerSystem>> MakePeerSystem(SystemKind kind,
                                                           const PeerSystemOptions& options);

}  // namespace dpv2::bench

#endif  // DPV2_TESTS_BENCH_PEERS_SYSTEMS_H_
