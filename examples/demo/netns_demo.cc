// dpv2-netns-demo: README command one on the eBPF backend, with real traffic.
//
// Builds a one-node cluster out of network namespaces from a manifest file
// (a node with its external device ext0, a namespace per local pod on a veth
// named by the pod's dpv2.dev/host-interface annotation, a client outside),
// programs the tc datapath through the agent's ClusterView, then opens real
// TCP connections and prints what happened: the spread over a ClusterIP's
// backends, a NodePort from outside, a NetworkPolicy denial, the GKE policy
// log lines and the flows `dpv2ctl observe` would show. Everything it made is
// removed on exit. Needs root and BPF: otherwise it exits 77 and says why.
//
//   sudo ./build/examples/demo/dpv2-netns-demo examples/demo/netns-cluster.yaml
#include <sched.h>

#include <cstdio>
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
#include "agent/cluster_view.h"
#include "agent/control/flow_hub.h"
#include "agent/k8s/objects.h"
#include "dpv2/ebpf.h"
#include "dpv2/policy_log.h"
#include "netlab/netlab.h"

namespace {

using dpv2::IpAddr;
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

struct LocalPod {
  netlab::Pod pod;
  std::vector<std::unique_ptr<netlab::EchoServer>> servers;
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

class Demo {
 public:
  static int Run(const std::string& path);

 private:
  int Build(const std::string& path);
  int Story();
  // The demo doubles as a smoke test: what did not happen as told is listed
  // at the end and makes the exit status 1.
  void Expect(bool held, absl::string_view what) {
    if (!held) unmet_.emplace_back(what);
  }

  std::vector<std::string> unmet_;

  dpv2::agent::k8s::ClusterObjects objects_;
  std::optional<netlab::Netns> node_;
  std::optional<netlab::Netns> outside_;
  std::map<std::string, LocalPod> pods_;  // "namespace/name"
  std::unique_ptr<dpv2::Backend> backend_;
  std::optional<dpv2::agent::ClusterView> view_;
};

int Demo::Run(const std::string& path) {
  if (std::optional<int> code = netlab::ExitCodeIfUnprivileged(kProgram)) {
    return *code;
  }
  Demo demo;
  const int rc = demo.Build(path);
  if (rc != 0) {
    return rc;
  }
  const int story = demo.Story();
  // Unpinned, the programs are detached and the maps freed with the backend;
  // the namespaces (and every veth in them) go with their objects.
  demo.backend_.reset();
  demo.pods_.clear();
  std::printf("\ncleaned up: programs detached, %s and its pods' namespaces removed\n",
              demo.node_->name().c_str());
  return story;
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

  absl::StatusOr<netlab::Netns> node = netlab::Netns::Create("node");
  absl::StatusOr<netlab::Netns> outside = netlab::Netns::Create("outside");
  if (!node.ok() || !outside.ok()) {
    return Fail("namespaces", node.ok() ? outside.status() : node.status());
  }
  node_.emplace(*std::move(node));
  outside_.emplace(*std::move(outside));
  absl::Status s = node_->ConfigureAsRouter();
  // NodePort replies are reverse-NATed to the node's own address before the
  // node's stack routes them out of ext0: Linux needs accept_local for that.
  if (s.ok()) s = node_->SetSysctl("net.ipv4.conf.all.accept_local", "1");
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

  // tc programs attach through netlink in the caller's namespace: from here
  // on this thread lives in the node.
  if (setns(node_->fd(), CLONE_NEWNET) != 0) {
    return Fail("setns", absl::ErrnoToStatus(errno, node_->name()));
  }
  absl::StatusOr<netlab::Interface> ext0 = node_->GetInterface("ext0");
  if (!ext0.ok()) {
    return Fail("ext0", ext0.status());
  }
  // Production map sizes (Cilium's defaults): what a node would load.
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> backend =
      dpv2::MakeEbpfBackend({.config = dpv2::DatapathConfig{},
                             .attach_to_endpoints = true,
                             .external_ifindex = ext0->ifindex});
  if (!backend.ok()) {
    return netlab::SkipOrFail(
        kProgram, absl::StrCat("cannot load BPF programs: ", backend.status().ToString()));
  }
  backend_ = *std::move(backend);
  absl::StatusOr<dpv2::agent::ClusterView> view = dpv2::agent::ClusterView::Create(
      {.node_name = kNode,
       .lb = {.datapath = dpv2::DatapathConfig{}},
       .local_endpoint = [this](const dpv2::PodInfo& pod) -> std::optional<dpv2::LocalEndpoint> {
         auto it = pods_.find(absl::StrCat(pod.namespace_name, "/", pod.name));
         if (it == pods_.end()) {
           return std::nullopt;
         }
         const netlab::Pod& p = it->second.pod;
         return dpv2::LocalEndpoint{.ifindex = p.host().ifindex,
                                    .mac = p.eth0().mac.bytes,
                                    .host_mac = p.host().mac.bytes};
       }});
  if (!view.ok()) {
    return Fail("cluster view", view.status());
  }
  view_.emplace(*std::move(view));
  view_->Update(objects_);
  for (const std::string& p : view_->problems()) {
    std::cerr << kProgram << ": " << p << "\n";
  }
  const dpv2::ChangeBatch batch = view_->PendingChanges();
  if (absl::Status applied = view_->ApplyTo(*backend_); !applied.ok()) {
    return Fail("apply", applied);
  }
  std::printf("dpv2 demo: eBPF backend (tc programs on the pods' veths and ext0), real TCP\n");
  std::printf("node %s = netns %s, ext0 %s; outside client %s; %zu pods from %s\n", kNode,
              node_->name().c_str(), kNodeIp, kOutsideIp, pods_.size(), path.c_str());
  std::printf("programmed: %s\n", batch.Summary().c_str());
  return 0;
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

  absl::StatusOr<std::vector<dpv2::FlowEvent>> events = backend_->DrainEvents(1 << 16);
  if (!events.ok()) {
    return Fail("events", events.status());
  }
  std::vector<std::string> log_lines;
  // A live agent logs events as they arrive; the demo hands over its whole
  // backlog at once, which the per-node limit (500/s, no burst) would thin
  // out to one record, so it lifts that limit.
  dpv2::PolicyLogger logger({.node_name = kNode, .max_log_rate = 1e6}, &view_->policy(),
                            [&](absl::string_view line) { log_lines.emplace_back(line); });
  if (const auto& nl = objects_.network_logging) {
    dpv2::NetworkLogging config{
        .metadata = {.name = "default"},
        .spec = {.cluster = {.allow = {.log = nl->allow_log, .delegate = nl->allow_delegate},
                             .deny = {.log = nl->deny_log, .delegate = nl->deny_delegate}}}};
    if (absl::Status s = logger.SetConfig(config); !s.ok()) {
      return Fail("NetworkLogging", s);
    }
  }
  for (const dpv2::FlowEvent& ev : *events) {
    logger.Handle(ev);
  }
  logger.Flush();  // denies wait 5 s for aggregation otherwise
  std::printf(
      "\n4. GKE policy log (NetworkLogging default: allow and deny), %zu records; the"
      " denial and the first allows:\n",
      log_lines.size());
  int shown = 0;
  bool deny_logged = false;
  for (const std::string& line : log_lines) {
    if (line.find("\"deny\"") != std::string::npos) {
      deny_logged = true;
      std::printf("   %s\n", line.c_str());
    }
  }
  Expect(deny_logged, "a deny record in the policy log");
  for (const std::string& line : log_lines) {
    if (line.find("\"deny\"") == std::string::npos && shown++ < 2) {
      std::printf("   %s\n", line.c_str());
    }
  }

  // Pods' IPv6 link-local chatter (MLD reports) is in the stream too; the
  // story is about TCP.
  std::vector<dpv2::agent::FlowRecord> flows;
  for (dpv2::agent::FlowRecord& f : dpv2::agent::EnrichFlows(*events, *view_)) {
    if (f.event.tuple.proto == dpv2::L4Proto::kTCP) {
      flows.push_back(std::move(f));
    }
  }
  std::printf("\n5. TCP flows, as `dpv2ctl observe` prints them (%zu of %zu events; the last 8):\n",
              flows.size(), events->size());
  const size_t first = flows.size() > 8 ? flows.size() - 8 : 0;
  for (size_t i = first; i < flows.size(); ++i) {
    std::printf("   %s\n", dpv2::agent::FlowText(dpv2::agent::FlowJson(flows[i])).c_str());
  }
  if (!unmet_.empty()) {
    std::printf("\ndemo: not as told: %s\n", absl::StrJoin(unmet_, "; ").c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return Demo::Run(argc > 1 ? argv[1] : "examples/demo/netns-cluster.yaml");
}
