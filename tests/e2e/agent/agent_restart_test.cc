// dpv2-agent on the eBPF backend in network namespaces: the agent process is
// started from manifests in a node namespace with pods wired like Cilium's,
// TCP connections run through a ClusterIP, and the agent is killed and
// restarted mid-traffic. The established connections must survive (same
// backend, no reset) and the restarted agent must adopt the pinned datapath
// and apply nothing (dpv2_restart_adopted_changes 0).
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent_e2e.h"
#include "netlab/netlab.h"

namespace dpv2::e2e {
namespace {

namespace fs = std::filesystem;

constexpr char kVip[] = "10.96.0.10";
constexpr uint16_t kPodPort = 8080;
constexpr uint16_t kMetricsPort = 19990;

const std::vector<PodPlan> kPods = {{"client", "client", "10.0.1.5", "lxc-client"},
                                    {"web-1", "web", "10.0.1.11", "lxc-web1"},
                                    {"web-2", "web", "10.0.1.12", "lxc-web2"}};

std::string Manifests() {
  std::string out =
      "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nstatus:\n"
      "  addresses: [{type: InternalIP, address: 192.168.50.1}]\n"
      "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
  for (const PodPlan& p : kPods) {
    out += PodYaml(p);
  }
  absl::StrAppend(&out,
                  "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                  "spec:\n  clusterIP: ",
                  kVip, "\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: ",
                  kPodPort,
                  "}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                  "  name: web-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: web}\n"
                  "addressType: IPv4\nports: [{name: http, port: ",
                  kPodPort, ", protocol: TCP}]\nendpoints:\n");
  for (const PodPlan& p : kPods) {
    if (p.app == "web") {
      absl::StrAppend(&out, "  - addresses: [", p.ip, "]\n    nodeName: node-a\n");
    }
  }
  return out;
}

struct Node {
  netlab::Netns node;
  std::map<std::string, netlab::Pod> pods;
  std::vector<std::unique_ptr<netlab::EchoServer>> servers;
  netlab::BpffsMount bpffs;
  std::string dir;

  ~Node() {
    if (!dir.empty()) {
      fs::remove_all(dir);
    }
  }

  std::vector<std::string> AgentArgs() const {
    return {AgentPath(),
            "--backend=ebpf",
            "--node=node-a",
            absl::StrCat("--manifests=", dir),
            absl::StrCat("--bpffs=", bpffs.path()),
            "--control-socket=",
            "--healthz-address=",
            absl::StrCat("--metrics-address=127.0.0.1:", kMetricsPort),
            "--log-format=json"};
  }
};

absl::StatusOr<std::unique_ptr<Node>> MakeNode() {
  absl::StatusOr<netlab::Netns> ns = netlab::Netns::Create("agent-node");
  if (!ns.ok()) {
    return ns.status();
  }
  absl::StatusOr<netlab::BpffsMount> bpffs = netlab::BpffsMount::Create("agent");
  if (!bpffs.ok()) {
    return bpffs.status();
  }
  auto n = std::unique_ptr<Node>(new Node{.node = *std::move(ns), .bpffs = *std::move(bpffs)});
  if (absl::Status s = n->node.ConfigureAsRouter(); !s.ok()) {
    return s;
  }
  if (absl::Status s = n->node.Ip("link set lo up"); !s.ok()) {
    return s;
  }
  if (absl::Status s = StartEchoPods(n->node, kPods, kPodPort, &n->pods, &n->servers); !s.ok()) {
    return s;
  }
  n->dir = n->bpffs.path() + "-manifests";
  fs::create_directories(n->dir);
  std::ofstream(n->dir + "/cluster.yaml") << Manifests();
  return n;
}

TEST_CASE("established connections through a ClusterIP survive an agent kill and restart") {
  absl::StatusOr<std::unique_ptr<Node>> made = MakeNode();
  REQUIRE(made.ok());
  Node& n = **made;
  absl::StatusOr<netlab::ChildProcess> agent = netlab::ChildProcess::Spawn(n.AgentArgs(), &n.node);
  REQUIRE(agent.ok());
  absl::StatusOr<std::string> first = WaitReconciled(n.node, kMetricsPort);
  REQUIRE(first.ok());

  // Ten connections through the VIP, each remembering the backend it got.
  const netlab::Netns& client = n.pods.at("client").netns();
  std::vector<netlab::TcpConnection> conns;
  std::vector<std::string> backend_of;
  IpAddr vip = *IpAddr::Parse(kVip);
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<netlab::TcpConnection> c = netlab::TcpConnection::Connect(client, vip, 80);
    REQUIRE(c.ok());
    absl::StatusOr<std::string> reply = c->Exchange("hello");
    REQUIRE(reply.ok());
    backend_of.push_back(netlab::ServerName(*reply));
    conns.push_back(*std::move(c));
  }

  // Traffic keeps flowing on every connection while the agent dies and returns.
  std::atomic<bool> stop{false};
  std::atomic<int> exchanges{0};
  std::atomic<int> failures{0};
  std::string first_failure;
  std::thread traffic([&] {
    while (!stop) {
      for (size_t i = 0; i < conns.size() && !stop; ++i) {
        absl::StatusOr<std::string> r = conns[i].Exchange(absl::StrCat("ping ", i));
        if (!r.ok() || netlab::ServerName(*r) != backend_of[i]) {
          if (failures++ == 0) {
            first_failure = r.ok() ? "backend changed: " + *r : r.status().ToString();
          }
        } else {
          ++exchanges;
        }
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  REQUIRE(agent->Kill(SIGKILL).ok());  // a crash: nothing is cleaned up
  int during_gap = exchanges;
  absl::SleepFor(absl::Milliseconds(500));
  CHECK(exchanges > during_gap);  // the pinned datapath forwards with no agent

  absl::StatusOr<netlab::ChildProcess> again = netlab::ChildProcess::Spawn(n.AgentArgs(), &n.node);
  REQUIRE(again.ok());
  absl::StatusOr<std::string> second = WaitReconciled(n.node, kMetricsPort);
  absl::SleepFor(absl::Milliseconds(300));
  stop = true;
  traffic.join();
  INFO(first_failure);
  CHECK(failures == 0);
  REQUIRE(second.ok());
  // The restarted agent adopted the pinned state: nothing needed rewriting.
  CHECK(Sample(*second, "dpv2_restart_adopted_changes") == 0);

  // New connections still work after the restart.
  absl::StatusOr<std::string> fresh = netlab::TcpExchange(client, vip, 80, "new");
  REQUIRE(fresh.ok());
  CHECK(absl::StartsWith(*fresh, "web-"));
  CHECK(again->Kill(SIGTERM).ok());
}

}  // namespace
}  // namespace dpv2::e2e

int main(int argc, char** argv) {
  return dpv2::e2e::RunAgentE2e("agent_restart_test", argc, argv);
}
