// dpv2-agent --xdp on the eBPF backend in network namespaces: a node with an
// external device (ext0, a veth to an "outside" namespace) and two web pods
// behind a NodePort. The agent is started the way a node runs it, with
// --external-interface=ext0 --xdp and small map sizes; a client outside the
// node must reach the NodePort, the XDP program must be attached to ext0 and
// must serve the NodePort itself (a NodePort without endpoints is answered
// by XDP_TX, which only an XDP program can do), and SIGTERM must do what
// docs/agent.md says: without --bpffs the XDP program goes with the agent,
// with --bpffs it stays attached and keeps serving.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent_e2e.h"
#include "netlab/netlab.h"

namespace dpv2::e2e {
namespace {

namespace fs = std::filesystem;

constexpr char kNodeIp[] = "192.168.61.1";
constexpr char kOutsideIp[] = "192.168.61.2";
constexpr char kExternalIf[] = "ext0";
constexpr uint16_t kPodPort = 8080;
constexpr uint16_t kWebNodePort = 30080;
constexpr uint16_t kEmptyNodePort = 30081;  // a NodePort Service with no endpoints
constexpr uint16_t kMetricsPort = 19991;

const std::vector<PodPlan> kWebPods = {{"web-1", "web", "10.0.2.11", "lxc-xweb1"},
                                       {"web-2", "web", "10.0.2.12", "lxc-xweb2"}};

std::string Manifests() {
  std::string out = absl::StrCat(
      "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nstatus:\n"
      "  addresses: [{type: InternalIP, address: ",
      kNodeIp, "}]\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
  for (const PodPlan& p : kWebPods) {
    out += PodYaml(p);
  }
  absl::StrAppend(
      &out,
      "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n"
      "  type: NodePort\n  clusterIP: 10.96.1.10\n  selector: {app: web}\n"
      "  ports: [{name: http, port: 80, targetPort: ",
      kPodPort, ", nodePort: ", kWebNodePort,
      "}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: shop}\nspec:\n"
      "  type: NodePort\n  clusterIP: 10.96.1.11\n  selector: {app: nothing}\n"
      "  ports: [{name: http, port: 80, nodePort: ",
      kEmptyNodePort,
      "}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
      "  name: web-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: web}\n"
      "addressType: IPv4\nports: [{name: http, port: ",
      kPodPort, ", protocol: TCP}]\nendpoints:\n");
  for (const PodPlan& p : kWebPods) {
    absl::StrAppend(&out, "  - addresses: [", p.ip, "]\n    nodeName: node-a\n");
  }
  return out;
}

struct XdpNode {
  netlab::Netns node;
  netlab::Netns outside;
  std::map<std::string, netlab::Pod> pods;
  std::vector<std::unique_ptr<netlab::EchoServer>> servers;
  netlab::BpffsMount bpffs;
  std::string dir;

  ~XdpNode() {
    servers.clear();
    if (!dir.empty()) {
      fs::remove_all(dir);
    }
  }

  // `pinned`: with --bpffs (the datapath outlives the agent).
  std::vector<std::string> AgentArgs(bool pinned) const {
    std::vector<std::string> args = {AgentPath(),
                                     "--backend=ebpf",
                                     "--node=node-a",
                                     absl::StrCat("--manifests=", dir),
                                     absl::StrCat("--external-interface=", kExternalIf),
                                     "--xdp",
                                     "--control-socket=",
                                     "--healthz-address=",
                                     absl::StrCat("--metrics-address=127.0.0.1:", kMetricsPort),
                                     "--log-format=json",
                                     // Small maps: the flags reach the datapath (checked in
                                     // /metrics) and the load is quick.
                                     "--max-services=64",
                                     "--max-backends=1024",
                                     "--max-lookup-tables=64",
                                     "--maglev-table-size=251",
                                     "--ct-tcp-entries=4096",
                                     "--ct-other-entries=1024",
                                     "--max-affinity=64",
                                     "--max-source-ranges=64",
                                     "--max-endpoints=16",
                                     "--max-ipcache=1024",
                                     "--max-policy-entries=1024"};
    if (pinned) {
      args.push_back(absl::StrCat("--bpffs=", bpffs.path()));
    }
    return args;
  }

  // `ip -d link show dev ext0` in the node: "prog/xdp id N" while attached.
  absl::StatusOr<bool> XdpAttached() const {
    std::string out;
    if (absl::Status s = node.Exec({"ip", "-d", "link", "show", "dev", kExternalIf}, &out);
        !s.ok()) {
      return s;
    }
    return absl::StrContains(out, "prog/xdp id");
  }

  // A veth statistic of ext0 (ethtool -S): what its XDP program did.
  absl::StatusOr<uint64_t> Ext0Stat(absl::string_view name) const {
    std::string out;
    if (absl::Status s = node.Exec({"ethtool", "-S", kExternalIf}, &out); !s.ok()) {
      return s;
    }
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      std::vector<absl::string_view> kv = absl::StrSplit(line, ':');
      uint64_t v = 0;
      if (kv.size() == 2 && absl::StripAsciiWhitespace(kv[0]) == name &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(kv[1]), &v)) {
        return v;
      }
    }
    return absl::NotFoundError(absl::StrCat("ethtool -S ", kExternalIf, ": no ", name));
  }
};

absl::StatusOr<std::unique_ptr<XdpNode>> MakeXdpNode() {
  absl::StatusOr<netlab::Netns> node = netlab::Netns::Create("xdp-node");
  if (!node.ok()) {
    return node.status();
  }
  absl::StatusOr<netlab::Netns> outside = netlab::Netns::Create("xdp-out");
  if (!outside.ok()) {
    return outside.status();
  }
  absl::StatusOr<netlab::BpffsMount> bpffs = netlab::BpffsMount::Create("agent-xdp");
  if (!bpffs.ok()) {
    return bpffs.status();
  }
  auto n = std::unique_ptr<XdpNode>(new XdpNode{
      .node = *std::move(node), .outside = *std::move(outside), .bpffs = *std::move(bpffs)});
  for (absl::Status s : {
           n->node.ConfigureAsRouter(),
           n->node.Ip("link set lo up"),
           // No accept_local: NodePort replies, which leave the pod already
           // reverse-NATed to the node's address, are host-routed by the
           // programs (dpv2-agent's default; docs/datapath.md, "Host routing").
           netlab::AddVeth(n->node, kExternalIf, n->outside, "eth0"),
           n->node.Ip(absl::StrCat("addr add ", kNodeIp, "/24 dev ", kExternalIf)),
           n->outside.Ip(absl::StrCat("addr add ", kOutsideIp, "/24 dev eth0")),
       }) {
    if (!s.ok()) {
      return s;
    }
  }
  if (absl::Status s = StartEchoPods(n->node, kWebPods, kPodPort, &n->pods, &n->servers);
      !s.ok()) {
    return s;
  }
  n->dir = n->bpffs.path() + "-manifests";
  fs::create_directories(n->dir);
  std::ofstream(n->dir + "/cluster.yaml") << Manifests();
  return n;
}

// Connections from outside to the NodePort: how many each web pod answered.
std::map<std::string, int> NodePortSpread(const XdpNode& n, int connections) {
  std::map<std::string, int> seen;
  const IpAddr node_ip = *IpAddr::Parse(kNodeIp);
  for (int i = 0; i < connections; ++i) {
    absl::StatusOr<std::string> reply =
        netlab::TcpExchange(n.outside, node_ip, kWebNodePort, absl::StrCat("hello ", i));
    ++seen[reply.ok() ? netlab::ServerName(*reply) : reply.status().ToString()];
  }
  return seen;
}

// Every one of 16 NodePort connections is answered and both pods answer
// some (all on one pod: probability 2^-15 with Maglev over two backends).
void CheckBothPodsServe(const XdpNode& n) {
  std::map<std::string, int> seen = NodePortSpread(n, 16);
  std::string spread;
  for (const auto& [who, count] : seen) {
    absl::StrAppend(&spread, who, ": ", count, "; ");
  }
  INFO("NodePort spread: " << spread);
  CHECK(seen["web-1"] + seen["web-2"] == 16);
  CHECK(seen["web-1"] > 0);
  CHECK(seen["web-2"] > 0);
}

// Frames ext0's XDP program returned XDP_TX for (its RSTs), whether or not
// the veth could hand them to its peer: only an XDP program counts there.
uint64_t XdpTxFrames(const XdpNode& n) {
  absl::StatusOr<uint64_t> sent = n.Ext0Stat("rx_queue_0_xdp_tx");
  absl::StatusOr<uint64_t> failed = n.Ext0Stat("rx_queue_0_xdp_tx_errors");
  REQUIRE(sent.ok());
  REQUIRE(failed.ok());
  return *sent + *failed;
}

// Connects to the NodePort without endpoints; returns how many frames ext0's
// XDP program answered with XDP_TX meanwhile.
uint64_t XdpTxToEmptyNodePort(const XdpNode& n) {
  const uint64_t before = XdpTxFrames(n);
  absl::StatusOr<std::string> refused =
      netlab::TcpExchange(n.outside, *IpAddr::Parse(kNodeIp), kEmptyNodePort, "hello");
  // Known issue (docs/agent.md): the XDP program answers with an RST by
  // XDP_TX (counted below), but a veth hands XDP_TX frames to its peer only
  // when the peer runs NAPI, so the client times out instead of seeing
  // "refused". Not connected, either way.
  INFO("the NodePort without endpoints: " << refused.status());
  CHECK_FALSE(refused.ok());

  return XdpTxFrames(n) - before;
}

TEST_CASE("dpv2-agent --xdp serves a NodePort from outside through XDP; SIGTERM detaches the "
          "unpinned program and keeps the pinned one") {
  absl::StatusOr<std::unique_ptr<XdpNode>> made = MakeXdpNode();
  REQUIRE(made.ok());
  XdpNode& n = **made;
  REQUIRE(n.XdpAttached().value_or(true) == false);

  SECTION("without --bpffs the XDP program leaves with the agent") {
    absl::StatusOr<netlab::ChildProcess> agent =
        netlab::ChildProcess::Spawn(n.AgentArgs(/*pinned=*/false), &n.node);
    REQUIRE(agent.ok());
    absl::StatusOr<std::string> metrics = WaitReconciled(n.node, kMetricsPort);
    REQUIRE(metrics.ok());
    // The map-size flags reached the datapath configuration.
    CHECK(Sample(*metrics, "dpv2_map_capacity{map=\"backends\"}") == 1024);
    CHECK(Sample(*metrics, "dpv2_map_capacity{map=\"conntrack\"}") == 4096 + 1024);
    CHECK(n.XdpAttached().value_or(false));

    std::map<std::string, int> seen = NodePortSpread(n, 20);
    INFO("NodePort spread: web-1 " << seen["web-1"] << ", web-2 " << seen["web-2"]);
    CHECK(seen["web-1"] + seen["web-2"] == 20);
    CHECK(seen["web-1"] > 0);
    CHECK(seen["web-2"] > 0);
    CHECK(XdpTxToEmptyNodePort(n) >= 1);  // XDP itself answered the NodePort

    absl::StatusOr<int> status = agent->Kill(SIGTERM);
    REQUIRE(status.ok());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
    CHECK(n.XdpAttached().value_or(true) == false);
  }

  SECTION("with --bpffs the XDP program stays attached after SIGTERM and keeps serving") {
    absl::StatusOr<netlab::ChildProcess> agent =
        netlab::ChildProcess::Spawn(n.AgentArgs(/*pinned=*/true), &n.node);
    REQUIRE(agent.ok());
    REQUIRE(WaitReconciled(n.node, kMetricsPort).ok());
    CHECK(n.XdpAttached().value_or(false));
    CHECK(fs::exists(n.bpffs.path() + "/xdp_link"));
    CheckBothPodsServe(n);

    absl::StatusOr<int> status = agent->Kill(SIGTERM);
    REQUIRE(status.ok());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
    CHECK(n.XdpAttached().value_or(false));
    std::map<std::string, int> seen = NodePortSpread(n, 10);
    INFO("after SIGTERM: web-1 " << seen["web-1"] << ", web-2 " << seen["web-2"]);
    CHECK(seen["web-1"] + seen["web-2"] == 10);
    CHECK(XdpTxToEmptyNodePort(n) >= 1);  // no agent, the pinned XDP program still serves

    // A restarted agent takes the pinned link over (bpf_link_update): still
    // one XDP program, still serving.
    absl::StatusOr<netlab::ChildProcess> again =
        netlab::ChildProcess::Spawn(n.AgentArgs(/*pinned=*/true), &n.node);
    REQUIRE(again.ok());
    absl::StatusOr<std::string> metrics = WaitReconciled(n.node, kMetricsPort);
    REQUIRE(metrics.ok());
    CHECK(Sample(*metrics, "dpv2_restart_adopted_changes") == 0);
    CHECK(n.XdpAttached().value_or(false));
    CheckBothPodsServe(n);
    CHECK(again->Kill(SIGTERM).ok());
  }
}

}  // namespace
}  // namespace dpv2::e2e

int main(int argc, char** argv) { return dpv2::e2e::RunAgentE2e("agent_xdp_test", argc, argv); }
