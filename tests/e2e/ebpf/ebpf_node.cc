#include "ebpf_node.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "core/status_macros.h"
#include "dpv2/ebpf.h"

namespace dpv2::e2e {
namespace {

constexpr char kNodeName[] = "node-a";
constexpr char kExternalIf[] = "ext0";
constexpr absl::Duration kLoaderTimeout = absl::Seconds(15);

std::string EndpointYaml(const WebEndpoint& e, bool v6) {
  const PodPlan* plan = nullptr;
  for (const PodPlan& p : Pods()) {
    if (p.name == e.pod) {
      plan = &p;
    }
  }
  const std::string ip = plan == nullptr ? "0.0.0.0"
                         : v6            ? absl::StrCat("\"", plan->ip6, "\"")
                                         : plan->ip;
  return absl::StrCat("  - addresses: [", ip, "]\n    nodeName: ", kNodeName,
                      "\n    targetRef: {kind: Pod, namespace: shop, name: ", e.pod,
                      "}\n    conditions: {ready: ", e.ready ? "true" : "false",
                      ", serving: ", e.serving ? "true" : "false",
                      ", terminating: ", e.terminating ? "true" : "false", "}\n");
}

std::string SliceYaml(const char* name, const char* service, const char* port_name,
                      const char* protocol, const std::vector<WebEndpoint>& endpoints,
                      bool v6 = false) {
  std::string out = absl::StrCat(
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ", name,
      "\n  namespace: shop\n  labels: {kubernetes.io/service-name: ", service,
      "}\naddressType: ", v6 ? "IPv6" : "IPv4", "\nports:\n  - {name: ", port_name,
      ", port: ", kPodPort, ", protocol: ", protocol,
      "}\nendpoints:", endpoints.empty() ? " []\n" : "\n");
  for (const WebEndpoint& e : endpoints) {
    out += EndpointYaml(e, v6);
  }
  return out;
}

}  // namespace

DatapathConfig LoaderConfig() {
  return DatapathConfig{.maglev_table_size = 251,
                        .max_services = 256,
                        .max_backends = 256,
                        .max_tables = 256,
                        .ct_tcp_entries = 8192,
                        .ct_other_entries = 8192,
                        .max_affinity = 256,
                        .max_source_ranges = 64,
                        .max_endpoints = 64,
                        .max_ipcache = 256,
                        .max_policy_entries = 4096};
}

const std::vector<PodPlan>& Pods() {
  static const std::vector<PodPlan> pods = {
      {.ns = "shop",
       .name = "client",
       .app = "client",
       .ip = "10.244.1.20",
       .ip6 = "fd00:244:1::20",
       .host_ifname = "lxc-client"},
      {.ns = "lab",
       .name = "intruder",
       .app = "client",
       .ip = "10.244.1.66",
       .ip6 = "fd00:244:1::66",
       .host_ifname = "lxc-intruder"},
      {.ns = "shop",
       .name = "web-1",
       .app = "web",
       .ip = "10.244.1.11",
       .ip6 = "fd00:244:1::11",
       .host_ifname = "lxc-web1"},
      {.ns = "shop",
       .name = "web-2",
       .app = "web",
       .ip = "10.244.1.12",
       .ip6 = "fd00:244:1::12",
       .host_ifname = "lxc-web2"},
      {.ns = "shop",
       .name = "web-3",
       .app = "web",
       .ip = "10.244.1.13",
       .ip6 = "fd00:244:1::13",
       .host_ifname = "lxc-web3"},
  };
  return pods;
}

std::string ClusterManifests(const ClusterSpec& spec) {
  std::string out = absl::StrCat("apiVersion: v1\nkind: Node\nmetadata: {name: ", kNodeName,
                                 "}\nstatus:\n  addresses: [{type: InternalIP, address: ", kNodeIp,
                                 "}, {type: InternalIP, address: \"", kNodeIp6, "\"}]\n",
                                 "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
                                 "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n");
  for (const PodPlan& p : Pods()) {
    absl::StrAppend(&out, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: ", p.name,
                    ", namespace: ", p.ns, ", labels: {app: ", p.app,
                    "}}\nspec:\n  nodeName: ", kNodeName,
                    "\n  containers: [{name: c, image: echo, ports: [{name: http, ",
                    "containerPort: ", kPodPort, "}]}]\nstatus: {phase: Running, podIP: ", p.ip,
                    ", podIPs: [{ip: ", p.ip, "}, {ip: \"", p.ip6, "\"}]}\n");
  }
  absl::StrAppend(
      &out, "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n",
      "spec:\n  type: NodePort\n  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n"
      "  clusterIP: ",
      kWebVip, "\n  clusterIPs: [", kWebVip, ", \"", kWebVip6, "\"]",
      "\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, "
      "targetPort: http, nodePort: ",
      kWebNodePort, "}\n");
  absl::StrAppend(&out,
                  "---\napiVersion: v1\nkind: Service\nmetadata: {name: echo-udp, namespace: "
                  "shop}\nspec:\n  type: NodePort\n  ipFamilyPolicy: PreferDualStack\n"
                  "  ipFamilies: [IPv4, IPv6]\n  clusterIP: ",
                  kUdpVip, "\n  clusterIPs: [", kUdpVip, ", \"", kUdpVip6, "\"]",
                  "\n  selector: {app: web}\n  ports:\n  - {name: dns, protocol: UDP, port: 53, "
                  "targetPort: ",
                  kPodPort, ", nodePort: ", kUdpNodePort, "}\n");
  absl::StrAppend(&out,
                  "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: shop}\n"
                  "spec:\n  clusterIP: ",
                  kEmptyVip,
                  "\n  selector: {app: nothing}\n  ports:\n  - {name: tcp, protocol: TCP, port: "
                  "80}\n  - {name: udp, protocol: UDP, port: 80}\n");
  absl::StrAppend(&out,
                  "---\napiVersion: v1\nkind: Service\nmetadata: {name: outside, namespace: "
                  "shop}\nspec:\n  clusterIP: ",
                  kOutsideVip, "\n  ports:\n  - {name: http, protocol: TCP, port: 80}\n",
                  "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                  "  name: outside-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: "
                  "outside}\naddressType: IPv4\nports:\n  - {name: http, port: ",
                  kPodPort, ", protocol: TCP}\nendpoints:\n  - addresses: [", kOutsideIp,
                  "]\n    conditions: {ready: true}\n");
  absl::StrAppend(
      &out, "---\napiVersion: v1\nkind: Service\nmetadata: {name: remote, namespace: shop}\n",
      "spec:\n  type: NodePort\n  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n"
      "  clusterIP: ",
      kRemoteVip, "\n  clusterIPs: [", kRemoteVip, ", \"", kRemoteVip6, "\"]\n  ports:\n");
  for (const char* proto : {"TCP", "UDP"}) {
    absl::StrAppend(&out, "  - {name: ", absl::AsciiStrToLower(proto), ", protocol: ", proto,
                    ", port: 80, targetPort: ", kRemotePort, ", nodePort: ", kRemoteNodePort,
                    "}\n");
  }
  for (const auto& [family, ip] : {std::pair{"IPv4", kRemoteIp}, std::pair{"IPv6", kRemoteIp6}}) {
    absl::StrAppend(&out,
                    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                    "  name: remote-",
                    absl::AsciiStrToLower(family),
                    "\n  namespace: shop\n  labels: {kubernetes.io/service-name: remote}\n"
                    "addressType: ",
                    family, "\nports:\n  - {name: tcp, port: ", kRemotePort,
                    ", protocol: TCP}\n  - {name: udp, port: ", kRemotePort,
                    ", protocol: UDP}\nendpoints:\n  - addresses: [\"", ip,
                    "\"]\n    nodeName: node-b\n    conditions: {ready: true}\n");
  }
  out += SliceYaml("web-1", "web", "http", "TCP", spec.web);
  out += SliceYaml("web-v6", "web", "http", "TCP", spec.web, /*v6=*/true);
  out += SliceYaml("echo-udp-1", "echo-udp", "dns", "UDP", spec.web);
  out += SliceYaml("echo-udp-v6", "echo-udp", "dns", "UDP", spec.web, /*v6=*/true);
  if (spec.web_from_client_only) {
    out +=
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: "
        "web-from-client, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n"
        "  ingress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n"
        "    ports: [{protocol: TCP, port: http}]\n";
  }
  return out;
}

// ---- EbpfNode ----

absl::StatusOr<std::unique_ptr<EbpfNode>> EbpfNode::Start(const ClusterSpec& spec,
                                                          const NodeOptions& options) {
  DPV2_ASSIGN_OR_RETURN(netlab::Netns node, netlab::Netns::Create("node"));
  DPV2_ASSIGN_OR_RETURN(netlab::Netns client, netlab::Netns::Create("outside"));
  DPV2_ASSIGN_OR_RETURN(netlab::BpffsMount bpffs, netlab::BpffsMount::Create("e2e"));
  std::unique_ptr<EbpfNode> n(
      new EbpfNode(std::move(node), std::move(client), std::move(bpffs), options));
  n->dir_ = n->bpffs_.path() + "-manifests";
  if (mkdir(n->dir_.c_str(), 0700) != 0) {
    const std::string dir = std::exchange(n->dir_, {});
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", std::strerror(errno)));
  }
  DPV2_RETURN_IF_ERROR(n->node_.ConfigureAsRouter());
  if (!options.host_routing) {
    // NodePort replies leave the pod's veth already reverse-NATed to come
    // from the node's own address; without host routing the datapath passes
    // them to the node's stack to be routed out of ext0, and Linux drops a
    // packet arriving with a local source address unless accept_local is set.
    DPV2_RETURN_IF_ERROR(n->node_.SetSysctl("net.ipv4.conf.all.accept_local", "1"));
  }
  // Every veth made from here on gets its link-local address without DAD: a
  // tentative one (1-2 s) cannot source the node's or the outside's
  // neighbour solicitations, and an IPv6 exchange right after the start
  // then timed out (a CI flake of the stack-forwarding case).
  for (const netlab::Netns* ns : {&n->node_, &n->client_}) {
    DPV2_RETURN_IF_ERROR(ns->SetSysctl("net.ipv6.conf.default.accept_dad", "0"));
    DPV2_RETURN_IF_ERROR(ns->SetSysctl("net.ipv6.conf.all.accept_dad", "0"));
  }
  DPV2_RETURN_IF_ERROR(netlab::AddVeth(n->node_, kExternalIf, n->client_, "eth0"));
  DPV2_RETURN_IF_ERROR(
      n->node_.IpBatch({absl::StrCat("addr add ", kNodeIp, "/24 dev ", kExternalIf),
                        absl::StrCat("addr add ", kNodeIp6, "/64 dev ", kExternalIf, " nodad")}));
  DPV2_RETURN_IF_ERROR(n->client_.IpBatch(
      {absl::StrCat("addr add ", kOutsideIp, "/24 dev eth0"),
       absl::StrCat("addr add ", kOutsideIp6, "/64 dev eth0 nodad"),
       absl::StrCat("addr add ", kRemoteIp, "/24 dev eth0"),
       // Deprecated: accepted, never a source (the client is ::2).
       absl::StrCat("addr add ", kRemoteIp6, "/64 dev eth0 nodad preferred_lft 0"),
       absl::StrCat("route add 10.244.0.0/16 via ", kNodeIp),
       absl::StrCat("route add fd00:244::/32 via ", kNodeIp6)}));
  DPV2_ASSIGN_OR_RETURN(
      std::unique_ptr<netlab::EchoServer> outside,
      netlab::EchoServer::Start(n->client_, {.name = "outside", .port = kPodPort}));
  n->servers_.push_back(std::move(outside));
  DPV2_ASSIGN_OR_RETURN(
      std::unique_ptr<netlab::EchoServer> remote,
      netlab::EchoServer::Start(n->client_,
                                {.name = "remote", .port = kRemotePort, .report_peer = true}));
  n->servers_.push_back(std::move(remote));
  for (const PodPlan& p : Pods()) {
    DPV2_ASSIGN_OR_RETURN(
        netlab::Pod pod,
        netlab::Pod::Create(
            n->node_, {.name = p.name, .host_ifname = p.host_ifname, .addresses = {p.ip, p.ip6}}));
    DPV2_ASSIGN_OR_RETURN(
        std::unique_ptr<netlab::EchoServer> server,
        netlab::EchoServer::Start(pod.netns(), {.name = p.name, .port = kPodPort}));
    n->servers_.push_back(std::move(server));
    n->pods_.emplace(p.name, std::move(pod));
  }
  DPV2_RETURN_IF_ERROR(n->WriteManifests(spec));
  DPV2_RETURN_IF_ERROR(n->StartLoader());
  return n;
}

EbpfNode::~EbpfNode() {
  // The loader first (it holds the bpffs and the veths), then servers, pods
  // and namespaces as members go.
  loader_.reset();
  servers_.clear();
  if (!dir_.empty()) {
    std::remove((dir_ + "/manifests.yaml").c_str());
    std::remove((dir_ + "/manifests.yaml.new").c_str());
    rmdir(dir_.c_str());
  }
}

const netlab::Pod& EbpfNode::pod(const std::string& name) const { return pods_.at(name); }

absl::StatusOr<uint64_t> EbpfNode::Counter(dpv2_counter c) const {
  const std::string path = absl::StrCat(bpffs_.path(), "/", kNodeName, "/dpv2_counters");
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  std::vector<uint64_t> per_cpu(std::max(libbpf_num_possible_cpus(), 1));
  const uint32_t key = c;
  const int rc = bpf_map_lookup_elem(fd, &key, per_cpu.data());
  const int err = errno;
  close(fd);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("read counter ", c, " of ", path, ": ", std::strerror(err)));
  }
  uint64_t total = 0;
  for (uint64_t v : per_cpu) {
    total += v;
  }
  return total;
}

absl::Status EbpfNode::WriteManifests(const ClusterSpec& spec) {
  const std::string path = dir_ + "/manifests.yaml";
  {
    std::ofstream out(path + ".new");
    out << ClusterManifests(spec);
    if (!out) {
      return absl::InternalError(absl::StrCat("write ", path, ".new"));
    }
  }
  if (std::rename((path + ".new").c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

namespace {
// Waits for the loader's answer, "<expected> <what it changed>" or
// "error: ...", and returns what it changed.
absl::StatusOr<std::string> AwaitLoader(netlab::ChildProcess& loader, absl::string_view expected) {
  absl::StatusOr<std::string> line = loader.ReadLine(kLoaderTimeout);
  if (!line.ok()) {
    return absl::InternalError(
        absl::StrCat("loader: no \"", expected, "\" line: ", line.status().message()));
  }
  absl::string_view rest = *line;
  if (!absl::ConsumePrefix(&rest, expected) || !absl::ConsumePrefix(&rest, " ")) {
    return absl::InternalError(absl::StrCat("loader: ", *line));
  }
  return std::string(rest);
}
}  // namespace

absl::Status EbpfNode::Reconfigure(const ClusterSpec& spec) {
  if (!loader_) {
    return absl::FailedPreconditionError("no loader running");
  }
  DPV2_RETURN_IF_ERROR(WriteManifests(spec));
  kill(loader_->pid(), SIGHUP);
  return AwaitLoader(*loader_, "applied").status();
}

absl::Status EbpfNode::StartLoader() {
  if (loader_) {
    return absl::FailedPreconditionError("a loader is running");
  }
  std::vector<std::string> argv = {
      "/proc/self/exe",
      "--loader",
      absl::StrCat("--manifests=", dir_, "/manifests.yaml"),
      absl::StrCat("--pin=", bpffs_.path(), "/", kNodeName),
      absl::StrCat("--external=", kExternalIf),
      absl::StrCat("--host-routing=", options_.host_routing ? 1 : 0),
      absl::StrCat("--checksum=", static_cast<int>(options_.checksum))};
  for (const auto& [name, pod] : pods_) {
    const PodPlan* plan = nullptr;
    for (const PodPlan& p : Pods()) {
      if (p.name == name) {
        plan = &p;
      }
    }
    argv.push_back(absl::StrCat("--endpoint=", plan->ns, "/", name, ",", plan->host_ifname, ",",
                                pod.eth0().mac.ToString()));
  }
  DPV2_ASSIGN_OR_RETURN(netlab::ChildProcess child, netlab::ChildProcess::Spawn(argv, &node_));
  loader_.emplace(std::move(child));
  absl::StatusOr<std::string> changes = AwaitLoader(*loader_, "ready");
  if (!changes.ok()) {
    loader_.reset();
    return changes.status();
  }
  loader_start_changes_ = *std::move(changes);
  return absl::OkStatus();
}

absl::Status EbpfNode::KillLoader() {
  if (!loader_) {
    return absl::FailedPreconditionError("no loader running");
  }
  absl::StatusOr<int> status = loader_->Kill(SIGKILL);
  loader_.reset();
  return status.status();
}

// ---- the loader process ----

namespace {

struct LoaderArgs {
  std::string manifests;
  std::string pin;
  std::string external;
  bool host_routing = true;
  EbpfChecksum checksum = EbpfChecksum::kAuto;
  // "namespace/name" -> (host interface, pod MAC)
  std::map<std::string, std::pair<std::string, std::string>> endpoints;
};

absl::StatusOr<LoaderArgs> ParseLoaderArgs(int argc, char** argv) {
  LoaderArgs args;
  for (int i = 0; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--manifests=")) {
      args.manifests = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--pin=")) {
      args.pin = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--external=")) {
      args.external = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--host-routing=")) {
      args.host_routing = a != "0";
    } else if (absl::ConsumePrefix(&a, "--checksum=")) {
      int v = 0;
      if (!absl::SimpleAtoi(a, &v) || v < 0 || v > static_cast<int>(EbpfChecksum::kHelpers)) {
        return absl::InvalidArgumentError(absl::StrCat("--checksum=", a, ": want 0, 1 or 2"));
      }
      args.checksum = static_cast<EbpfChecksum>(v);
    } else if (absl::ConsumePrefix(&a, "--endpoint=")) {
      std::vector<std::string> parts = absl::StrSplit(a, ',');
      if (parts.size() != 3) {
        return absl::InvalidArgumentError(absl::StrCat("--endpoint=", a, ": want ns/name,if,mac"));
      }
      args.endpoints[parts[0]] = {parts[1], parts[2]};
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument ", argv[i]));
    }
  }
  if (args.manifests.empty() || args.pin.empty()) {
    return absl::InvalidArgumentError("--manifests and --pin are required");
  }
  return args;
}

absl::StatusOr<std::array<uint8_t, 6>> ParseMac(absl::string_view text) {
  std::array<uint8_t, 6> mac{};
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 6) {
    return absl::InvalidArgumentError(absl::StrCat("MAC \"", text, "\""));
  }
  for (size_t i = 0; i < 6; ++i) {
    int v = 0;
    if (!absl::SimpleHexAtoi(parts[i], &v) || v < 0 || v > 255) {
      return absl::InvalidArgumentError(absl::StrCat("MAC \"", text, "\""));
    }
    mac[i] = static_cast<uint8_t>(v);
  }
  return mac;
}

// ifindex and MAC of an interface of this process's namespace.
absl::StatusOr<LocalEndpoint> HostSide(const std::string& ifname) {
  LocalEndpoint ep;
  ep.ifindex = if_nametoindex(ifname.c_str());
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  const bool ok = ep.ifindex != 0 && fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &req) == 0;
  if (fd >= 0) {
    close(fd);
  }
  if (!ok) {
    return absl::NotFoundError(absl::StrCat("interface ", ifname));
  }
  std::memcpy(ep.host_mac.data(), req.ifr_hwaddr.sa_data, 6);
  return ep;
}

absl::StatusOr<agent::k8s::ClusterObjects> ReadManifests(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::NotFoundError(absl::StrCat("read ", path));
  }
  agent::k8s::ClusterObjects objects;
  agent::k8s::AddManifestText(text.str(), path, &objects);
  if (!objects.errors.empty()) {
    return absl::InvalidArgumentError(objects.errors.front());
  }
  return objects;
}

// Brings the datapath to the manifests; returns the summary of what that
// changed. With `adopt`, what the pinned maps hold is adopted first (as the
// agent does at start), so that only differences are written.
absl::StatusOr<std::string> Reconcile(agent::ClusterView& view, Backend& backend,
                                      const std::string& path, bool adopt) {
  DPV2_ASSIGN_OR_RETURN(agent::k8s::ClusterObjects objects, ReadManifests(path));
  view.Update(objects);
  if (!view.problems().empty()) {
    return absl::InvalidArgumentError(view.problems().front());
  }
  if (adopt) {
    DPV2_ASSIGN_OR_RETURN(ChangeBatch held, backend.DumpState());
    DPV2_RETURN_IF_ERROR(view.Adopt(held));
  }
  const std::string changes = view.PendingChanges().Summary();
  DPV2_RETURN_IF_ERROR(view.ApplyTo(backend));
  return changes;
}

absl::Status Loader(const LoaderArgs& args) {
  std::map<std::string, LocalEndpoint> locals;
  for (const auto& [key, where] : args.endpoints) {
    DPV2_ASSIGN_OR_RETURN(LocalEndpoint ep, HostSide(where.first));
    DPV2_ASSIGN_OR_RETURN(ep.mac, ParseMac(where.second));
    locals[key] = ep;
  }
  uint32_t external_ifindex = 0;
  if (!args.external.empty()) {
    DPV2_ASSIGN_OR_RETURN(LocalEndpoint ext, HostSide(args.external));
    external_ifindex = ext.ifindex;
  }
  const DatapathConfig config = LoaderConfig();
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                        MakeEbpfBackend({.config = config,
                                         .pin_path = args.pin,
                                         .attach_to_endpoints = true,
                                         .external_ifindex = external_ifindex,
                                         .host_routing = args.host_routing,
                                         .checksum = args.checksum}));
  DPV2_ASSIGN_OR_RETURN(
      agent::ClusterView view,
      agent::ClusterView::Create(
          {.node_name = kNodeName,
           .lb = {.datapath = config},
           .local_endpoint = [&locals](const PodInfo& pod) -> std::optional<LocalEndpoint> {
             auto it = locals.find(absl::StrCat(pod.namespace_name, "/", pod.name));
             if (it == locals.end()) {
               return std::nullopt;
             }
             return it->second;
           }}));
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  DPV2_ASSIGN_OR_RETURN(std::string changes,
                        Reconcile(view, *backend, args.manifests, /*adopt=*/true));
  std::printf("ready %s\n", changes.c_str());
  std::fflush(stdout);
  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGTERM) {
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> s = Reconcile(view, *backend, args.manifests, /*adopt=*/false);
    std::printf("%s\n", s.ok() ? absl::StrCat("applied ", *s).c_str()
                               : absl::StrCat("error: ", s.status().ToString()).c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int RunLoader(int argc, char** argv) {
  absl::StatusOr<LoaderArgs> args = ParseLoaderArgs(argc, argv);
  absl::Status s = args.ok() ? Loader(*args) : args.status();
  if (!s.ok()) {
    std::printf("error: %s\n", s.ToString().c_str());
    std::fflush(stdout);
    return 1;
  }
  return 0;
}

std::optional<int> LoaderOrSkip(const char* program, int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--loader") == 0) {
    return RunLoader(argc - 2, argv + 2);
  }
  if (std::optional<int> code = netlab::ExitCodeIfUnprivileged(program)) {
    return code;
  }
  absl::StatusOr<std::unique_ptr<Backend>> probe = MakeEbpfBackend({.config = LoaderConfig()});
  if (!probe.ok()) {
    return netlab::SkipOrFail(
        program, absl::StrCat("cannot load BPF programs: ", probe.status().ToString()));
  }
  return std::nullopt;
}

}  // namespace dpv2::e2e
