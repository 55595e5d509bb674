// dpv2-netns-demo: README command one on the eBPF backend, with real traffic.
//
// Builds a one-node cluster out of network namespaces from a manifest file
// (a node with its external device ext0, a namespace per local pod on a veth
// named by the pod's dpv2.dev/host-interface annotation, a client outside),
// starts dpv2-agent in the node namespace on those manifests, then opens real
// TCP connections and prints what happened: the spread over a ClusterIP's
// backends, a NodePort from outside, a NetworkPolicy denial, flows from
// `dpv2ctl observe` and the GKE policy log lines the agent wrote. The agent is
// stopped and everything made is removed on exit. Needs root and BPF:
// otherwise it exits 77 and says why.
//
//   sudo ./build/examples/demo/dpv2-netns-demo examples/demo/netns-cluster.yaml
//        [--agent=PATH --dpv2ctl=PATH]  (default: next to this program in the build tree)
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "dpv2/ebpf.h"
#include "netlab/netlab.h"

namespace {

using dpv2::IpAddr;
namespace fs = std::filesystem;
namespace netlab = dpv2::netlab;

constexpr char kProgram[] = "dpv2-netns-demo";
constexpr char kNode[] = "node-a";
constexpr char kNodeIp[] = "192.168.50.1";  // the Node's InternalIP in the manifests
constexpr char kOutsideIp[] = "192.168.50.2";
constexpr char kHostInterfaceAnnotation[] = "dpv2.dev/host-interface";
// The story's actors, as named in examples/demo/netns-cluster.yaml.
constexpr char kClientPod[] = "shop/client";
constexpr char kIntruderPod[] = "lab/intruder";
constexpr char kWebService[] = "shop/web";
constexpr absl::Duration kDeniedWait = absl::Milliseconds(700);
// Loading the programs with production map sizes takes a few seconds here.
constexpr absl::Duration kAgentReadyWait = absl::Seconds(20);

struct LocalPod {
  netlab::Pod pod;
  std::vector<std::unique_ptr<netlab::EchoServer>> servers;
};

struct Programs {
  std::string agent;
  std::string dpv2ctl;
};

int Fail(absl::string_view what, const absl::Status& s) {
  std::cerr << kProgram << ": " << what << ": " << s << "\n";
  return 1;
}

std::string ReplyOrError(const absl::StatusOr<std::string>& r) {
  if (r.ok()) {
    return absl::StrCat("answered by ", netlab::ServerName(*r));
  }
  if (absl::IsDeadlineExceeded(r.status())) {
    return absl::StrCat("no answer within ", absl::FormatDuration(kDeniedWait),
                        " (the SYN was dropped)");
  }
  return r.status().ToString();
}

std::vector<std::string> FileLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

// The agent's control socket, its log and its policy log live in one
// directory of this run, removed with it.
struct WorkDir {
  std::string path;
  ~WorkDir() {
    if (!path.empty()) {
      fs::remove_all(path);
    }
  }
};

class Demo {
 public:
  static int Run(const std::string& path, const Programs& programs);

 private:
  int Build(const std::string& path);
  int StartAgent(const std::string& path);
  int Story();
  // Up to `count` flows from `dpv2ctl observe ARGS --since 1m`, read for at
  // most two seconds (observe streams until it has --count flows).
  std::vector<std::string> Observe(const std::vector<std::string>& args, int count);
  // The demo doubles as a smoke test: what did not happen as told is listed
  // at the end and makes the exit status 1.
  void Expect(bool held, absl::string_view what) {
    if (!held) unmet_.emplace_back(what);
  }

  Programs programs_;
  std::vector<std::string> unmet_;
  dpv2::agent::k8s::ClusterObjects objects_;
  std::optional<dpv2::agent::ClusterView> view_;  // the story's frontends
  std::optional<netlab::Netns> node_;
  std::optional<netlab::Netns> outside_;
  std::map<std::string, LocalPod> pods_;  // "namespace/name"
  std::optional<netlab::BpffsMount> bpffs_;
  WorkDir dir_;
  std::optional<netlab::ChildProcess> agent_;

  std::string Socket() const { return dir_.path + "/agent.sock"; }
  std::string PolicyLog() const { return dir_.path + "/policy_action.log"; }
  std::string AgentLog() const { return dir_.path + "/agent.log"; }
};

int Demo::Run(const std::string& path, const Programs& programs) {
  if (std::optional<int> code = netlab::ExitCodeIfUnprivileged(kProgram)) {
    return *code;
  }
  for (const std::string& p : {programs.agent, programs.dpv2ctl}) {
    if (access(p.c_str(), X_OK) != 0) {
      std::cerr << kProgram << ": " << p
                << " is not an executable (build dpv2-agent and dpv2ctl, or pass --agent= and"
                   " --dpv2ctl=)\n";
      return 1;
    }
  }
  // The agent would fail the same way; asking first turns a kernel without
  // BPF into a skip rather than a failure.
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> probe = dpv2::MakeEbpfBackend(
      {.config = {.maglev_table_size = 251, .max_services = 4, .max_backends = 4,
                  .max_tables = 4, .ct_tcp_entries = 16, .ct_other_entries = 16,
                  .max_affinity = 4, .max_source_ranges = 4, .max_endpoints = 4,
                  .max_ipcache = 4, .max_policy_entries = 4}});
  if (!probe.ok()) {
    return netlab::SkipOrFail(
        kProgram, absl::StrCat("cannot load BPF programs: ", probe.status().ToString()));
  }
  probe->reset();
  Demo demo;
  demo.programs_ = programs;
  int rc = demo.Build(path);
  if (rc == 0) {
    rc = demo.StartAgent(path);
  }
  if (rc == 0) {
    rc = demo.Story();
  }
  if (demo.agent_) {
    demo.agent_.reset();  // SIGKILL if still running (a failure path)
  }
  // The agent leaves its pinned datapath running, as on a node: the bpffs
  // mount, the namespaces and every veth (with its tc programs) go here.
  demo.bpffs_.reset();
  demo.pods_.clear();
  if (demo.node_) {
    std::printf("\ncleaned up: agent stopped, bpffs unmounted, %s and its pods' namespaces"
                " removed\n",
                demo.node_->name().c_str());
  }
  return rc;
}

int Demo::Build(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    std::cerr << kProgram << ": cannot read " << path << "\n";
    return 1;
  }
  dpv2::agent::k8s::AddManifestText(text.str(), path, &objects_);
  for (const std::string& e : objects_.errors) {
    std::cerr << kProgram << ": " << e << "\n";
  }
  if (!objects_.errors.empty()) {
    return 1;
  }
  absl::StatusOr<dpv2::agent::ClusterView> view =
      dpv2::agent::ClusterView::Create({.node_name = kNode});
  if (!view.ok()) {
    return Fail("cluster view", view.status());
  }
  view_.emplace(*std::move(view));
  view_->Update(objects_);

  absl::StatusOr<netlab::Netns> node = netlab::Netns::Create("node");
  absl::StatusOr<netlab::Netns> outside = netlab::Netns::Create("outside");
  if (!node.ok() || !outside.ok()) {
    return Fail("namespaces", node.ok() ? outside.status() : node.status());
  }
  node_.emplace(*std::move(node));
  outside_.emplace(*std::move(outside));
  absl::Status s = node_->ConfigureAsRouter();
  if (s.ok()) s = node_->Ip("link set lo up");
  // No accept_local: NodePort replies leave the pods reverse-NATed to the
  // node's own address and the programs route them out of ext0 themselves
  // (host routing, the agent's default).
  if (s.ok()) s = netlab::AddVeth(*node_, "ext0", *outside_, "eth0");
  if (s.ok()) s = node_->Ip(absl::StrCat("addr add ", kNodeIp, "/24 dev ext0"));
  if (s.ok()) s = outside_->Ip(absl::StrCat("addr add ", kOutsideIp, "/24 dev eth0"));
  if (!s.ok()) {
    return Fail("node", s);
  }
  for (const auto& [key, pod] : objects_.pods) {
    auto ifname = pod.annotations.find(kHostInterfaceAnnotation);
    if (pod.info.node_name != kNode || pod.info.ips.empty() || ifname == pod.annotations.end()) {
      continue;
    }
    std::vector<std::string> addresses;
    for (const IpAddr& ip : pod.info.ips) {
      addresses.push_back(ip.ToString());
    }
    absl::StatusOr<netlab::Pod> p = netlab::Pod::Create(
        *node_, {.name = absl::StrCat(pod.info.namespace_name, "-", pod.info.name),
                 .host_ifname = ifname->second,
                 .addresses = addresses});
    if (!p.ok()) {
      return Fail(key, p.status());
    }
    LocalPod local{.pod = *std::move(p)};
    // One echo server (TCP and UDP) per container port number.
    std::set<uint16_t> ports;
    for (const dpv2::ContainerPort& cp : pod.info.container_ports) {
      ports.insert(static_cast<uint16_t>(cp.container_port));
    }
    for (uint16_t port : ports) {
      absl::StatusOr<std::unique_ptr<netlab::EchoServer>> server =
          netlab::EchoServer::Start(local.pod.netns(), {.name = pod.info.name, .port = port});
      if (!server.ok()) {
        return Fail(key, server.status());
      }
      local.servers.push_back(*std::move(server));
    }
    pods_.emplace(key, std::move(local));
  }
  absl::StatusOr<netlab::BpffsMount> bpffs = netlab::BpffsMount::Create("demo");
  if (!bpffs.ok()) {
    return Fail("bpffs", bpffs.status());
  }
  bpffs_.emplace(*std::move(bpffs));
  dir_.path = bpffs_->path() + "-run";
  fs::create_directories(dir_.path);
  std::printf("dpv2 demo: dpv2-agent on the eBPF backend in netns %s, real TCP\n",
              node_->name().c_str());
  std::printf("node %s: ext0 %s; outside client %s; %zu pods from %s\n", kNode, kNodeIp,
              kOutsideIp, pods_.size(), path.c_str());
  return 0;
}

int Demo::StartAgent(const std::string& path) {
  const std::vector<std::string> agent_args = {
      programs_.agent,
      "--backend=ebpf",
      absl::StrCat("--node=", kNode),
      absl::StrCat("--manifests=", path),
      absl::StrCat("--bpffs=", bpffs_->path()),
      "--external-interface=ext0",
      absl::StrCat("--control-socket=", Socket()),
      absl::StrCat("--policy-log=", PolicyLog()),
      "--metrics-address=127.0.0.1:9990",  // the node's own loopback
      "--healthz-address=",
      "--log-format=json"};
  std::printf("\n$ %s\n", absl::StrJoin(agent_args, " ").c_str());
  // Its log lines go to a file (shown on failure), not between the story's.
  std::vector<std::string> argv = {"/bin/sh", "-c", absl::StrCat("exec \"$@\" 2>", AgentLog()),
                                   "sh"};
  argv.insert(argv.end(), agent_args.begin(), agent_args.end());
  absl::StatusOr<netlab::ChildProcess> agent = netlab::ChildProcess::Spawn(argv, &*node_);
  if (!agent.ok()) {
    return Fail("dpv2-agent", agent.status());
  }
  agent_.emplace(*std::move(agent));
  // Ready once it logs its first successful reconcile (the same moment its
  // /metrics counts dpv2_reconciles_total{result="success"} 1).
  const absl::Time end = absl::Now() + kAgentReadyWait;
  std::string reconciled;
  while (reconciled.empty() && absl::Now() < end) {
    if (agent_->Wait(absl::Milliseconds(100)).ok()) {
      agent_.reset();
      break;
    }
    for (const std::string& line : FileLines(AgentLog())) {
      if (absl::StrContains(line, "\"msg\":\"reconciled\"")) {
        reconciled = line;
      }
    }
  }
  if (reconciled.empty()) {
    std::cerr << kProgram << ": dpv2-agent "
              << (agent_ ? "did not reconcile within 20 s" : "exited") << "; its log:\n";
    for (const std::string& line : FileLines(AgentLog())) {
      std::cerr << "  " << line << "\n";
    }
    return 1;
  }
  std::printf("agent log: %s\n", reconciled.c_str());
  std::string services;
  absl::Status s = netlab::RunCommand(
      {programs_.dpv2ctl, "--socket", Socket(), "services"}, &services);
  if (!s.ok()) {
    return Fail("dpv2ctl services", s);
  }
  std::printf("\n$ dpv2ctl --socket %s services\n%s", Socket().c_str(), services.c_str());
  return 0;
}

std::vector<std::string> Demo::Observe(const std::vector<std::string>& args, int count) {
  std::vector<std::string> argv = {programs_.dpv2ctl, "--socket", Socket(), "observe"};
  argv.insert(argv.end(), args.begin(), args.end());
  for (std::string a : {std::string("--count"), absl::StrCat(count), std::string("--since"),
                        std::string("1m")}) {
    argv.push_back(std::move(a));
  }
  std::printf("\n$ dpv2ctl --socket %s observe %s --count %d --since 1m\n", Socket().c_str(),
              absl::StrJoin(args, " ").c_str(), count);
  std::vector<std::string> lines;
  absl::StatusOr<netlab::ChildProcess> ctl = netlab::ChildProcess::Spawn(argv);
  if (!ctl.ok()) {
    std::printf("   %s\n", ctl.status().ToString().c_str());
    return lines;
  }
  const absl::Time end = absl::Now() + absl::Seconds(2);
  while (static_cast<int>(lines.size()) < count && absl::Now() < end) {
    absl::StatusOr<std::string> line = ctl->ReadLine(end - absl::Now());
    if (!line.ok()) {
      break;
    }
    std::printf("   %s\n", line->c_str());
    lines.push_back(*std::move(line));
  }
  return lines;  // ~ChildProcess ends it if it is still streaming
}

int Demo::Story() {
  if (!pods_.contains(kClientPod) || !pods_.contains(kIntruderPod)) {
    std::cerr << kProgram << ": the manifests need pods " << kClientPod << " and " << kIntruderPod
              << "\n";
    return 1;
  }
  const netlab::Netns& client = pods_.at(kClientPod).pod.netns();
  const netlab::Netns& intruder = pods_.at(kIntruderPod).pod.netns();
  std::optional<dpv2::FrontendView> cluster_ip;
  std::optional<dpv2::FrontendView> node_port;
  for (const dpv2::FrontendView& f : view_->lb().Frontends()) {
    if (f.service != kWebService || f.protocol != dpv2::L4Proto::kTCP) {
      continue;
    }
    if (f.kind == dpv2::FrontendKind::kClusterIP && !cluster_ip) cluster_ip = f;
    if (f.kind == dpv2::FrontendKind::kNodePort && !node_port) node_port = f;
  }
  if (!cluster_ip || !node_port) {
    std::cerr << kProgram << ": Service " << kWebService << " needs a ClusterIP and a NodePort\n";
    return 1;
  }
  const std::string vip = absl::StrCat(cluster_ip->address.ToString(), ":", cluster_ip->port);

  std::printf("\n1. %s opens 30 TCP connections to %s ClusterIP %s; Maglev spreads them:\n  ",
              kClientPod, kWebService, vip.c_str());
  std::map<std::string, int> spread;
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<std::string> r =
        netlab::TcpExchange(client, cluster_ip->address, cluster_ip->port, "hello");
    ++spread[r.ok() ? netlab::ServerName(*r) : r.status().ToString()];
  }
  for (const auto& [server, n] : spread) {
    std::printf(" %s: %d", server.c_str(), n);
  }
  Expect(spread.size() >= 2 && absl::StartsWith(spread.begin()->first, "web-") &&
             absl::StartsWith(spread.rbegin()->first, "web-"),
         "ClusterIP connections answered by two or more web pods");
  std::printf("\n   (each reply came back from %s: the socket is connected to the VIP)\n",
              vip.c_str());

  std::printf("\n2. From outside the node, %s -> NodePort %s:%u:\n", kOutsideIp, kNodeIp,
              node_port->port);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> r =
        netlab::TcpExchange(*outside_, *IpAddr::Parse(kNodeIp), node_port->port, "hi");
    Expect(r.ok(), "NodePort connections from outside answered");
    std::printf("   connection %d: %s\n", i + 1, ReplyOrError(r).c_str());
  }

  std::printf(
      "\n3. NetworkPolicy shop/web-from-client admits app=client pods of namespace shop"
      " only:\n");
  absl::StatusOr<std::string> allowed =
      netlab::TcpExchange(client, cluster_ip->address, cluster_ip->port, "ok");
  absl::StatusOr<std::string> denied = netlab::TcpExchange(
      intruder, cluster_ip->address, cluster_ip->port, "let me in", kDeniedWait);
  Expect(allowed.ok(), "the allowed pod answered");
  Expect(absl::IsDeadlineExceeded(denied.status()), "the denied pod's SYN dropped");
  std::printf("   %s -> %s: %s\n", kClientPod, vip.c_str(), ReplyOrError(allowed).c_str());
  std::printf("   %s -> %s: %s\n", kIntruderPod, vip.c_str(), ReplyOrError(denied).c_str());

  // The agent drains datapath events every 100 ms into its FlowHub.
  absl::SleepFor(absl::Milliseconds(300));
  std::printf("\n4. Flows from the agent (dpv2ctl observe replays the last minute):");
  Expect(!Observe({"--verdict", "DROPPED", "--pod", kIntruderPod}, 1).empty(),
         "observe shows the intruder's dropped flow");
  Expect(Observe({"--port", absl::StrCat(node_port->port)}, 2).size() == 2,
         "observe shows the NodePort flows");
  Expect(Observe({"--pod", kClientPod}, 3).size() == 3, "observe shows the client's flows");

  // Denies are aggregated for 5 s; the agent flushes them when it stops.
  absl::StatusOr<int> stopped = agent_->Kill(SIGTERM, absl::Seconds(10));
  agent_.reset();
  if (stopped.ok() && WIFSIGNALED(*stopped)) {
    std::printf("dpv2-agent: killed by signal %d\n", WTERMSIG(*stopped));
  }
  Expect(stopped.ok() && WIFEXITED(*stopped) && WEXITSTATUS(*stopped) == 0,
         "dpv2-agent stopped cleanly on SIGTERM");
  std::vector<std::string> log_lines = FileLines(PolicyLog());
  std::printf(
      "\n5. dpv2-agent stopped (SIGTERM). Its GKE policy log (%s, NetworkLogging default:"
      " allow and deny) holds %zu records (at most 500/s are written); the denial and the first"
      " allows:\n",
      PolicyLog().c_str(), log_lines.size());
  bool deny_logged = false;
  for (const std::string& line : log_lines) {
    if (absl::StrContains(line, "\"deny\"")) {
      deny_logged = true;
      std::printf("   %s\n", line.c_str());
    }
  }
  Expect(deny_logged, "a deny record in the policy log");
  int shown = 0;
  for (const std::string& line : log_lines) {
    if (!absl::StrContains(line, "\"deny\"") && shown++ < 2) {
      std::printf("   %s\n", line.c_str());
    }
  }
  if (!unmet_.empty()) {
    std::printf("\ndemo: not as told: %s\nthe agent's log:\n",
                absl::StrJoin(unmet_, "; ").c_str());
    for (const std::string& line : FileLines(AgentLog())) {
      std::printf("   %s\n", line.c_str());
    }
    return 1;
  }
  return 0;
}

// The programs next to this one in the build tree (examples/agent,
// examples/dpv2ctl), unless flags name them.
Programs FindPrograms(const std::vector<std::string>& flags) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path examples = self.parent_path().parent_path();
  Programs p{.agent = examples / "agent" / "dpv2-agent",
             .dpv2ctl = examples / "dpv2ctl" / "dpv2ctl"};
  for (const std::string& f : flags) {
    if (absl::StartsWith(f, "--agent=")) p.agent = f.substr(8);
    if (absl::StartsWith(f, "--dpv2ctl=")) p.dpv2ctl = f.substr(10);
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::string manifests = "examples/demo/netns-cluster.yaml";
  std::vector<std::string> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (absl::StartsWith(a, "--agent=") || absl::StartsWith(a, "--dpv2ctl=")) {
      flags.push_back(a);
    } else if (absl::StartsWith(a, "-")) {
      std::cerr << "usage: " << kProgram << " [MANIFESTS] [--agent=PATH] [--dpv2ctl=PATH]\n";
      return 2;
    } else {
      manifests = a;
    }
  }
  return Demo::Run(manifests, FindPrograms(flags));
}
