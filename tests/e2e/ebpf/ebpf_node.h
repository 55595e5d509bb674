// A one-node cluster in network namespaces, programmed by the eBPF backend
// from Kubernetes manifests, for end-to-end tests with real sockets.
//
// The node namespace holds the pods' host-side veths and the external device
// ext0 (192.168.50.1/24); pods are namespaces wired like Cilium's (netlab::Pod)
// running echo servers on 8080 (TCP and UDP); a client namespace outside sits
// at 192.168.50.2 on ext0's peer. The datapath is loaded by a separate loader
// process (this test binary re-run with --loader) inside the node namespace:
// it decodes the manifests, builds the agent's ClusterView and applies it to
// MakeEbpfBackend with maps pinned on a private bpffs, so a test can kill and
// restart it like a real agent. SIGHUP makes it re-read the manifests.
//
//   absl::StatusOr<std::unique_ptr<EbpfNode>> node = EbpfNode::Start({.web = {{"web-1"}}});
//   absl::StatusOr<std::string> r = netlab::TcpExchange((*node)->pod("client").netns(), kWebVip,
//   80, "hi"); DPV2_RETURN_IF_ERROR((*node)->Reconfigure({.web = {{"web-1"}, {"web-2"}}}));
#ifndef DPV2_TESTS_E2E_EBPF_EBPF_NODE_H_
#define DPV2_TESTS_E2E_EBPF_EBPF_NODE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dpv2/abi/counters.h"
#include "dpv2/datapath_config.h"
#include "dpv2/ebpf.h"
#include "dpv2/net.h"
#include "netlab/netlab.h"

namespace dpv2::e2e {

// The cluster's fixed addresses.
inline constexpr char kWebVip[] = "10.96.0.10";    // Service shop/web, TCP 80 -> http (8080)
inline constexpr char kWebVip6[] = "fd00:96::10";  // its IPv6 ClusterIP (dual-stack)
// Service shop/echo-udp (NodePort, dual-stack), UDP 53 -> 8080.
inline constexpr char kUdpVip[] = "10.96.0.53";
inline constexpr char kUdpVip6[] = "fd00:96::53";
inline constexpr char kEmptyVip[] =
    "10.96.0.99";  // Service shop/empty, TCP and UDP 80, no endpoints
// Service shop/outside, TCP 80 -> the outside echo server (kOutsideIp:8080):
// a backend off the node.
inline constexpr char kOutsideVip[] = "10.96.0.20";
// ext0 of the node, both the Node object's addresses: NodePort 30080 -> web.
inline constexpr char kNodeIp[] = "192.168.50.1";
inline constexpr char kNodeIp6[] = "fd00:50::1";
// The outside namespace (on ext0's link, routes to the pods via the node)
// runs an echo server "outside" on kPodPort: a destination off the node.
inline constexpr char kOutsideIp[] = "192.168.50.2";
inline constexpr char kOutsideIp6[] = "fd00:50::2";
inline constexpr uint16_t kWebNodePort = 30080;
inline constexpr uint16_t kUdpNodePort = 30053;  // echo-udp on kNodeIp
inline constexpr uint16_t kPodPort = 8080;
// A backend on another node (node-b), reached across ext0's link: the
// outside namespace's second address, where an echo server "remote" on
// kRemotePort answers with the address it saw the client come from
// ("remote <peer> <line>"). Service shop/remote (NodePort, dual-stack) has it
// as its only endpoint, TCP and UDP: 80 on the ClusterIPs, kRemoteNodePort on
// the node's addresses.
inline constexpr char kRemoteIp[] = "192.168.50.3";
inline constexpr char kRemoteIp6[] = "fd00:50::3";
inline constexpr char kRemoteVip[] = "10.96.0.30";
inline constexpr char kRemoteVip6[] = "fd00:96::30";
inline constexpr uint16_t kRemotePort = 8081;
inline constexpr uint16_t kRemoteNodePort = 30090;

// One endpoint of the web Services (every pod named here is in both slices).
struct WebEndpoint {
  std::string pod;  // "web-1", "web-2" or "web-3"
  bool ready = true;
  bool serving = true;
  bool terminating = false;
};

struct ClusterSpec {
  std::vector<WebEndpoint> web;
  // NetworkPolicy shop/web-from-client: web pods admit TCP to their http
  // port only from pods labelled app=client in namespace shop.
  bool web_from_client_only = false;
};

// The pods, all on node-a: shop/client, lab/intruder and shop/web-1..3.
struct PodPlan {
  std::string ns;
  std::string name;
  std::string app;
  std::string ip;
  std::string ip6;
  std::string host_ifname;
};
const std::vector<PodPlan>& Pods();

// The loader's map sizes: small, since a test loads the datapath several
// times; the Maglev size is a prime well above the backend count.
DatapathConfig LoaderConfig();

// The manifests for `spec` (Node, Namespaces, Pods, Services, EndpointSlices,
// optional NetworkPolicy) as multi-document YAML.
std::string ClusterManifests(const ClusterSpec& spec);

// How the node's datapath is loaded (the loader's EbpfOptions).
struct NodeOptions {
  // EbpfOptions::host_routing. Off, the node's stack forwards what the
  // datapath passes, and NodePort replies (reverse-NATed to the node's own
  // address on the pod's veth) need net.ipv4.conf.all.accept_local=1, which
  // Start then sets; on, nothing is set: the programs route them.
  bool host_routing = true;
  // EbpfOptions::checksum: which tc object translates (in-place L4 checksum
  // updates through the kfunc, or the helpers).
  EbpfChecksum checksum = EbpfChecksum::kAuto;
};

class EbpfNode {
 public:
  static absl::StatusOr<std::unique_ptr<EbpfNode>> Start(const ClusterSpec& spec,
                                                         const NodeOptions& options = {});
  ~EbpfNode();

  const netlab::Netns& node() const { return node_; }
  const netlab::Netns& client() const { return client_; }  // outside, on ext0's link
  const netlab::Pod& pod(const std::string& name) const;

  // Rewrites the manifests and makes the loader apply them (SIGHUP).
  absl::Status Reconfigure(const ClusterSpec& spec);
  // Kills the loader process (SIGKILL: no goodbye) and starts a new one on
  // the same pinned maps.
  absl::Status KillLoader();
  absl::Status StartLoader();
  // One datapath counter summed over CPUs, read from the loader's pinned
  // counter map (so it survives loader restarts, like the datapath's).
  absl::StatusOr<uint64_t> Counter(dpv2_counter c) const;
  // What the last loader's first apply wrote (ChangeBatch::Summary): after a
  // restart over unchanged manifests, "empty" (it adopted the pinned state).
  const std::string& loader_start_changes() const { return loader_start_changes_; }

 private:
  EbpfNode(netlab::Netns node, netlab::Netns client, netlab::BpffsMount bpffs,
           const NodeOptions& options)
      : node_(std::move(node)),
        client_(std::move(client)),
        bpffs_(std::move(bpffs)),
        options_(options) {}
  absl::Status WriteManifests(const ClusterSpec& spec);

  netlab::Netns node_;
  netlab::Netns client_;
  netlab::BpffsMount bpffs_;
  NodeOptions options_;
  std::string dir_;  // holds manifests.yaml
  std::map<std::string, netlab::Pod> pods_;
  std::vector<std::unique_ptr<netlab::EchoServer>> servers_;
  std::optional<netlab::ChildProcess> loader_;
  std::string loader_start_changes_;
};

// The --loader role: argv after the flag. Returns the process exit code.
int RunLoader(int argc, char** argv);

// The start of a test program's main: with --loader, runs that role and
// returns its exit code; unprivileged or unable to load BPF programs, returns
// the skip (77) or CI failure code after saying why. nullopt: run the cases.
std::optional<int> LoaderOrSkip(const char* program, int argc, char** argv);

}  // namespace dpv2::e2e

#endif  // DPV2_TESTS_E2E_EBPF_EBPF_NODE_H_
