// dpv2-agent on the eBPF backend in network namespaces: the agent process is
// started from manifests in a node namespace with pods wired like Cilium's,
// TCP connections run through a ClusterIP, and the agent is killed and
// restarted mid-traffic. The established connections must survive (same
// backend, no reset) and the restarted agent must adopt the pinned datapath
// and apply nothing (dpv2_restart_adopted_changes 0).
#define CATCH_CONFIG_RUNNER
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dpv2/ebpf.h"
#include "netlab/netlab.h"

namespace dpv2::e2e {
namespace {

namespace fs = std::filesystem;

std::string g_agent_path;  // argv[1]

constexpr char kVip[] = "10.96.0.10";
constexpr uint16_t kPodPort = 8080;
constexpr uint16_t kMetricsPort = 19990;

struct PodPlan {
  std::string name;
  std::string app;
  std::string ip;
  std::string host_ifname;
};

const std::vector<PodPlan> kPods = {{"client", "client", "10.0.1.5", "lxc-client"},
                                    {"web-1", "web", "10.0.1.11", "lxc-web1"},
                                    {"web-2", "web", "10.0.1.12", "lxc-web2"}};

std::string Manifests() {
  std::string out =
      "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nstatus:\n"
      "  addresses: [{type: InternalIP, address: 192.168.50.1}]\n"
      "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
  for (const PodPlan& p : kPods) {
    absl::StrAppend(&out, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: ", p.name,
                    "\n  namespace: shop\n  labels: {app: ", p.app,
                    "}\n  annotations: {dpv2.dev/host-interface: ", p.host_ifname,
                    "}\nspec: {nodeName: node-a}\nstatus: {phase: Running, podIP: ", p.ip,
                    ", podIPs: [{ip: ", p.ip, "}]}\n");
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

// GET http://127.0.0.1:<port><path> from inside `ns`; the body, or an error.
absl::StatusOr<std::string> HttpGet(const netlab::Netns& ns, uint16_t port,
                                    const std::string& path) {
  absl::StatusOr<int> fd = ns.OpenSocket(AF_INET, SOCK_STREAM);
  if (!fd.ok()) {
    return fd.status();
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(*fd);
    return absl::UnavailableError(absl::StrCat("connect :", port, ": ", strerror(errno)));
  }
  std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n");
  send(*fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[8192];
  ssize_t n;
  while ((n = recv(*fd, buf, sizeof(buf), 0)) > 0) {
    reply.append(buf, n);
  }
  close(*fd);
  size_t body = reply.find("\r\n\r\n");
  if (body == std::string::npos) {
    return absl::UnavailableError("no HTTP response");
  }
  return reply.substr(body + 4);
}

// The value of a sample line "name value" in Prometheus text, or -1.
double Sample(const std::string& metrics, const std::string& name) {
  size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(metrics.substr(at + name.size() + 2));
}

// Waits until the agent in `node` reports a successful reconcile.
absl::StatusOr<std::string> WaitReconciled(const netlab::Netns& node) {
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (absl::Now() < end) {
    absl::StatusOr<std::string> m = HttpGet(node, kMetricsPort, "/metrics");
    if (m.ok() && m->find("dpv2_reconciles_total{result=\"success\"} 0") == std::string::npos &&
        m->find("dpv2_reconciles_total{result=\"success\"}") != std::string::npos) {
      return m;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError("the agent did not reconcile within 20 s");
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
    return {g_agent_path,
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
  for (const PodPlan& p : kPods) {
    absl::StatusOr<netlab::Pod> pod = netlab::Pod::Create(
        n->node, {.name = p.name, .host_ifname = p.host_ifname, .addresses = {p.ip}});
    if (!pod.ok()) {
      return pod.status();
    }
    absl::StatusOr<std::unique_ptr<netlab::EchoServer>> server =
        netlab::EchoServer::Start(pod->netns(), {.name = p.name, .port = kPodPort});
    if (!server.ok()) {
      return server.status();
    }
    n->servers.push_back(*std::move(server));
    n->pods.emplace(p.name, *std::move(pod));
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
  absl::StatusOr<std::string> first = WaitReconciled(n.node);
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
  absl::StatusOr<std::string> second = WaitReconciled(n.node);
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
  if (std::optional<int> code = dpv2::netlab::ExitCodeIfUnprivileged("agent_restart_test")) {
    return *code;
  }
  if (argc < 2) {
    std::cerr << "usage: agent_restart_test PATH-TO-dpv2-agent [catch args]\n";
    return 2;
  }
  dpv2::e2e::g_agent_path = argv[1];
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> probe = dpv2::MakeEbpfBackend(
      {.config = {.maglev_table_size = 251, .max_services = 8, .max_backends = 8,
                  .max_tables = 8, .ct_tcp_entries = 64, .ct_other_entries = 64,
                  .max_affinity = 8, .max_source_ranges = 8, .max_endpoints = 8,
                  .max_ipcache = 8, .max_policy_entries = 8}});
  if (!probe.ok()) {
    return dpv2::netlab::SkipOrFail(
        "agent_restart_test", absl::StrCat("cannot load BPF programs: ", probe.status().ToString()));
  }
  probe->reset();
  argv[1] = argv[0];
  return Catch::Session().run(argc - 1, argv + 1);
}
