#include "systems.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "core/status_macros.h"
#include "dpv2/ebpf.h"
#include "measure.h"
#include "../../unit/agent/forwarding_backend.h"
#include "nlohmann/json.hpp"

namespace dpv2::bench {
namespace {

constexpr char kClientIp[] = "10.64.0.2";
constexpr char kServerIp[] = "10.254.0.2";
constexpr char kNodeName[] = "bench-node";
constexpr char kExternalIf[] = "ext0";  // the NodePort lab's external link

absl::StatusOr<std::unique_ptr<NodeLab>> MakeNodeLab(absl::string_view label,
                                                     const AddressPlan& plan, bool nodeport) {
  DPV2_ASSIGN_OR_RETURN(netlab::Netns node, netlab::Netns::Create(absl::StrCat(label, "-node")));
  DPV2_RETURN_IF_ERROR(node.ConfigureAsRouter());
  DPV2_ASSIGN_OR_RETURN(
      netlab::Pod client,
      netlab::Pod::Create(
          node, {.name = absl::StrCat(label, "-client"),
                 .host_ifname = nodeport ? kExternalIf : "lxc-client",
                 .addresses = {nodeport ? FormatIpv4(plan.external_client_ip) : kClientIp}}));
  if (nodeport) {
    DPV2_RETURN_IF_ERROR(
        node.Ip(absl::StrCat("addr add ", FormatIpv4(plan.node_ip), "/32 dev ", kExternalIf)));
  }
  DPV2_ASSIGN_OR_RETURN(
      netlab::Pod server,
      netlab::Pod::Create(node, {.name = absl::StrCat(label, "-server"),
                                 .host_ifname = "eth-server",
                                 .addresses = {kServerIp}}));
  // Every endpoint address is local to the server pod (AnyIP), and the node
  // routes the whole range there, as it would to the pods of other nodes.
  DPV2_RETURN_IF_ERROR(server.netns().Ip(
      absl::StrCat("route add local ", Cidr(plan.endpoint_base, 10), " dev lo")));
  DPV2_RETURN_IF_ERROR(node.Ip(absl::StrCat("route add ", Cidr(plan.endpoint_base, 10), " via ",
                                            kServerIp, " dev eth-server onlink")));
  auto lab = std::unique_ptr<NodeLab>(
      new NodeLab{.node = std::move(node), .client = std::move(client), .server = std::move(server)});
  DPV2_ASSIGN_OR_RETURN(lab->echo_a,
                        netlab::EchoServer::Start(lab->server.netns(),
                                                  {.name = "a", .port = plan.target_port,
                                                   .udp = false}));
  DPV2_ASSIGN_OR_RETURN(
      lab->echo_b,
      netlab::EchoServer::Start(lab->server.netns(), {.name = "b",
                                                      .port = static_cast<uint16_t>(
                                                          plan.target_port + 1),
                                                      .udp = false}));
  return lab;
}

// No rules at all: the client reaches endpoint addresses directly.
class PlainSystem : public PeerSystem {
 public:
  explicit PlainSystem(std::unique_ptr<NodeLab> lab) { lab_ = std::move(lab); }
  SystemKind kind() const override { return SystemKind::kPlain; }
  absl::Status Program(const BenchServices&, const SetChange*) override {
    return absl::OkStatus();
  }
};

class IptablesSystem : public PeerSystem {
 public:
  IptablesSystem(std::unique_ptr<NodeLab> lab, bool legacy) : legacy_(legacy) {
    lab_ = std::move(lab);
  }
  SystemKind kind() const override {
    return legacy_ ? SystemKind::kIptablesLegacy : SystemKind::kIptablesNft;
  }

  absl::Status Program(const BenchServices& set, const SetChange* change) override {
    if (change == nullptr) {
      DPV2_RETURN_IF_ERROR(Restore(IptablesBaseJumps()));
      std::string text = IptablesFullSync(set);
      last_text_bytes_ = text.size();
      return Restore(text);
    }
    std::vector<std::string> gone;
    for (const auto& [service, endpoint] : change->removed) {
      gone.push_back(IptablesEndpointChain(service, endpoint));
    }
    return Restore(IptablesPartialSync(set, change->services, gone));
  }

 private:
  absl::Status Restore(const std::string& text) {
    // What kube-proxy runs: iptables-restore -w --noflush --counters.
    const std::string tool = legacy_ ? "iptables-legacy-restore" : "iptables-nft-restore";
    return netlab::RunCommand({"ip", "netns", "exec", lab_->node.name(), tool, "-w", "--noflush",
                               "--counters"},
                              nullptr, text);
  }

  bool legacy_;
};

class NftablesSystem : public PeerSystem {
 public:
  explicit NftablesSystem(std::unique_ptr<NodeLab> lab) { lab_ = std::move(lab); }
  SystemKind kind() const override { return SystemKind::kNftables; }

  absl::Status Program(const BenchServices& set, const SetChange* change) override {
    if (change == nullptr) {
      std::string text = NftablesFullSync(set);
      last_text_bytes_ = text.size();
      return Nft(text);
    }
    std::vector<std::string> gone;
    for (const auto& [service, endpoint] : change->removed) {
      gone.push_back(NftablesEndpointChain(service, endpoint));
    }
    return Nft(NftablesPartialSync(set, change->services, gone));
  }

 private:
  absl::Status Nft(const std::string& text) {
    return netlab::RunCommand({"ip", "netns", "exec", lab_->node.name(), "nft", "-f", "-"},
                              nullptr, text);
  }
};

// The API objects of one Service: the Service and one EndpointSlice per
// endpoint port, as the API server would serve them. Endpoints are on this
// node when `local`, else on another.
std::vector<nlohmann::json> ServiceObjects(const BenchService& s, bool local) {
  std::vector<nlohmann::json> out;
  nlohmann::json port = {{"name", s.port_name},
                         {"port", s.port},
                         {"protocol", "TCP"},
                         {"targetPort", s.endpoints.empty() ? s.port : s.endpoints[0].port}};
  nlohmann::json spec = {{"type", "ClusterIP"},
                         {"clusterIP", FormatIpv4(s.cluster_ip)},
                         {"clusterIPs", {FormatIpv4(s.cluster_ip)}}};
  if (s.node_port != 0) {
    port["nodePort"] = s.node_port;
    spec["type"] = "NodePort";
    spec["externalTrafficPolicy"] = "Cluster";
  }
  spec["ports"] = {std::move(port)};
  out.push_back({{"apiVersion", "v1"},
                 {"kind", "Service"},
                 {"metadata", {{"name", s.name}, {"namespace", s.namespace_name}}},
                 {"spec", std::move(spec)}});
  std::map<uint16_t, nlohmann::json> by_port;
  for (const BenchEndpoint& ep : s.endpoints) {
    by_port[ep.port].push_back({{"addresses", {FormatIpv4(ep.ip)}},
                                {"conditions", {{"ready", true}}},
                                {"nodeName", local ? kNodeName : "remote-node"}});
  }
  for (auto& [port, endpoints] : by_port) {
    out.push_back({{"apiVersion", "discovery.k8s.io/v1"},
                   {"kind", "EndpointSlice"},
                   {"metadata",
                    {{"name", absl::StrCat(s.name, "-", port)},
                     {"namespace", s.namespace_name},
                     {"labels", {{"kubernetes.io/service-name", s.name}}}}},
                   {"addressType", "IPv4"},
                   {"ports", {{{"name", s.port_name}, {"port", port}, {"protocol", "TCP"}}}},
                   {"endpoints", std::move(endpoints)}});
  }
  return out;
}

// A running Pod of this node in namespace bench.
nlohmann::json PodObject(const std::string& name, const std::string& ip) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "bench"}}},
          {"spec", {{"nodeName", kNodeName}}},
          {"status", {{"phase", "Running"}, {"podIP", ip}, {"podIPs", {{{"ip", ip}}}}}}};
}

// This node, with its address: where the core expands NodePort frontends.
nlohmann::json NodeObject(const std::string& ip) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", kNodeName}}},
          {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", ip}}}}}}};
}

// The eBPF backend with the time its Apply calls take (the datapath's part
// of ApplyTo, apart from the core's diff), summed until read.
class TimedBackend : public agent::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  double TakeApplyMs() { return std::exchange(apply_ms_, 0.0); }

  absl::Status Apply(const ChangeBatch& batch) override {
    const absl::Time start = absl::Now();
    absl::Status s = inner().Apply(batch);
    apply_ms_ += absl::ToDoubleMilliseconds(absl::Now() - start);
    return s;
  }

 private:
  double apply_ms_ = 0;
};

// dpv2 on the eBPF backend, fed through the agent's code path: API objects
// decoded (AddObject), ClusterView::Update (the whole LIST at load, then a
// change set per watch), ClusterView::ApplyTo.
class Dpv2System : public PeerSystem {
 public:
  Dpv2System(std::unique_ptr<NodeLab> lab, const PeerSystemOptions& options)
      : options_(options) {
    lab_ = std::move(lab);
  }
  SystemKind kind() const override {
    if (options_.xdp) {
      return SystemKind::kDpv2Xdp;
    }
    return options_.host_routing ? SystemKind::kDpv2 : SystemKind::kDpv2StackRouting;
  }
  int64_t agent_bytes() const override { return agent_bytes_; }
  double startup_ms() const override { return startup_ms_; }
  std::pair<double, double> last_agent_and_apply_ms() const override { return split_; }
  double last_datapath_ms() const override { return datapath_ms_; }
  std::optional<double> load_ms() const override { return load_ms_; }
  absl::StatusOr<std::vector<BpfMapMemory>> Maps() const override {
    return BpfMapMemlock(first_map_id_, "dpv2");
  }

  absl::Status Program(const BenchServices& set, const SetChange* change) override {
    if (change == nullptr) {
      return Load(set);
    }
    // What a watch delivers, as a change set (the agent's path: decoded
    // objects and removed keys, ClusterView::Update(ObjectChanges)).
    const absl::Time start = absl::Now();
    agent::ObjectChanges changes;
    for (size_t i : change->services) {
      for (const nlohmann::json& o : ServiceObjects(set.services[i], options_.local_endpoints)) {
        agent::k8s::AddObject(o, "watch", &changes.changed);
      }
    }
    // Removed slices (an endpoint port no Service endpoint uses any more).
    for (const auto& [service, endpoint] : change->removed) {
      const std::string key = absl::StrCat(service.namespace_name, "/", service.name, "-",
                                           endpoint.port);
      bool still_used = false;
      for (size_t i : change->services) {
        for (const BenchEndpoint& ep : set.services[i].endpoints) {
          still_used |= set.services[i].name == service.name && ep.port == endpoint.port;
        }
      }
      if (!still_used) {
        changes.removed.endpoint_slices.push_back(key);
      }
    }
    if (!changes.changed.errors.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dpv2 objects: ", changes.changed.errors.front()));
    }
    view_->Update(changes);
    const absl::Time updated = absl::Now();
    absl::Status st = view_->ApplyTo(*backend_);
    datapath_ms_ = backend_->TakeApplyMs();
    split_ = {absl::ToDoubleMilliseconds(updated - start),
              absl::ToDoubleMilliseconds(absl::Now() - updated)};
    return st;
  }

 private:
  // The backend starts (programs verified and attached, the client pod
  // applied) before the clock runs, since kube-proxy's peers have no such
  // step; the load measured is then objects -> ClusterView -> maps.
  absl::Status Load(const BenchServices& set) {
    // A NodePort Service is two frontends: its ClusterIP and the nodePort
    // on the node's one address.
    uint32_t frontends = 0;
    for (const BenchService& s : set.services) {
      frontends += s.node_port != 0 ? 2 : 1;
    }
    const uint32_t services = std::max<uint32_t>(options_.capacity_services, frontends);
    const uint64_t endpoints = std::max<uint64_t>(options_.capacity_endpoints, set.EndpointCount());
    const DatapathConfig config{
        .maglev_table_size = options_.maglev_table_size,
        .max_services = services + 1024,
        .max_backends = static_cast<uint32_t>(endpoints + 1024),
        .max_tables = services + 1024,
        .max_endpoints = options_.local_endpoints ? static_cast<uint32_t>(endpoints + 16) : 4096,
    };
    const absl::Time start = absl::Now();
    objects_ = {};
    objects_.namespaces["bench"] = NamespaceInfo{.name = "bench"};
    if (options_.nodeport) {
      agent::k8s::AddObject(NodeObject(FormatIpv4(options_.plan.node_ip)), "bench", &objects_);
    } else {
      agent::k8s::AddObject(PodObject("client", kClientIp), "bench", &objects_);
    }
    if (options_.local_endpoints) {
      // The server pod's own address (its ARP and replies leave from it).
      agent::k8s::AddObject(PodObject("server", kServerIp), "bench", &objects_);
    }
    const netlab::Pod& client = lab_->client;
    const netlab::Pod& server = lab_->server;
    DPV2_ASSIGN_OR_RETURN(
        agent::ClusterView view,
        agent::ClusterView::Create(
            {.node_name = kNodeName,
             .lb = {.datapath = config},
             .local_endpoint = [&client, &server](const PodInfo& pod) -> std::optional<LocalEndpoint> {
               const netlab::Pod& p = pod.name == "client" ? client : server;
               return LocalEndpoint{.ifindex = p.host().ifindex,
                                    .mac = p.eth0().mac.bytes,
                                    .host_mac = p.host().mac.bytes};
             }}));
    view_ = std::make_unique<agent::ClusterView>(std::move(view));
    view_->Update(objects_);
    first_map_id_ = HighestBpfMapId();
    // The external device: the client's link in the NodePort lab, else the
    // link to the server pod when endpoints are taken as remote.
    const uint32_t external = options_.nodeport          ? client.host().ifindex
                              : options_.local_endpoints ? 0
                                                         : server.host().ifindex;
    // Programs attach to interfaces of the node namespace: create and apply
    // the first batch (which names the client pod's veth) from inside it.
    DPV2_RETURN_IF_ERROR(lab_->node.Run([&]() -> absl::Status {
      DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                            MakeEbpfBackend({.config = config,
                                             .attach_to_endpoints = true,
                                             .external_ifindex = external,
                                             .xdp = options_.xdp,
                                             .host_routing = options_.host_routing}));
      backend_ = std::make_unique<TimedBackend>(std::move(backend));
      return view_->ApplyTo(*backend_);
    }));
    startup_ms_ = absl::ToDoubleMilliseconds(absl::Now() - start);

    DPV2_ASSIGN_OR_RETURN(const int64_t rss_before, ResidentBytes());
    const absl::Time load_start = absl::Now();
    for (const BenchService& s : set.services) {
      for (const nlohmann::json& o : ServiceObjects(s, options_.local_endpoints)) {
        agent::k8s::AddObject(o, "list", &objects_);
      }
      if (options_.local_endpoints) {
        for (const BenchEndpoint& ep : s.endpoints) {
          const std::string ip = FormatIpv4(ep.ip);
          agent::k8s::AddObject(PodObject(absl::StrCat("ep-", ip), ip), "list", &objects_);
        }
      }
    }
    if (!objects_.errors.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("dpv2 objects: ", objects_.errors.front()));
    }
    view_->Update(objects_);
    if (!view_->problems().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("dpv2: ", view_->problems().front()));
    }
    const absl::Time updated = absl::Now();
    backend_->TakeApplyMs();  // the client pod's batch, before the clock
    DPV2_RETURN_IF_ERROR(view_->ApplyTo(*backend_));
    datapath_ms_ = backend_->TakeApplyMs();
    load_ms_ = absl::ToDoubleMilliseconds(absl::Now() - load_start);
    split_ = {absl::ToDoubleMilliseconds(updated - load_start),
              absl::ToDoubleMilliseconds(absl::Now() - updated)};
    DPV2_ASSIGN_OR_RETURN(const int64_t rss_after, ResidentBytes());
    agent_bytes_ = rss_after - rss_before;
    return absl::OkStatus();
  }

  PeerSystemOptions options_;
  agent::k8s::ClusterObjects objects_;
  std::unique_ptr<agent::ClusterView> view_;
  std::unique_ptr<TimedBackend> backend_;
  uint32_t first_map_id_ = 0;
  int64_t agent_bytes_ = 0;
  double startup_ms_ = 0;
  double load_ms_ = 0;
  std::pair<double, double> split_;
  double datapath_ms_ = 0;
};

}  // namespace

std::string SystemName(SystemKind kind) {
  switch (kind) {
    case SystemKind::kPlain:
      return "plain";
    case SystemKind::kIptablesNft:
      return "iptables-nft";
    case SystemKind::kIptablesLegacy:
      return "iptables-legacy";
    case SystemKind::kNftables:
      return "nftables";
    case SystemKind::kDpv2:
      return "dpv2-ebpf";
    case SystemKind::kDpv2StackRouting:
      return "dpv2-ebpf-stack";
    case SystemKind::kDpv2Xdp:
      return "dpv2-xdp";
  }
  return "?";
}

bool IsDpv2(SystemKind kind) {
  return kind == SystemKind::kDpv2 || kind == SystemKind::kDpv2StackRouting ||
         kind == SystemKind::kDpv2Xdp;
}

std::optional<SystemKind> ParseSystemName(absl::string_view name) {
  for (SystemKind k : {SystemKind::kPlain, SystemKind::kIptablesNft, SystemKind::kIptablesLegacy,
                       SystemKind::kNftables, SystemKind::kDpv2, SystemKind::kDpv2StackRouting,
                       SystemKind::kDpv2Xdp}) {
    if (SystemName(k) == name) {
      return k;
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<PeerSystem>> MakePeerSystem(SystemKind kind,
                                                           const PeerSystemOptions& options) {
  if (kind == SystemKind::kDpv2Xdp && !options.nodeport) {
    return absl::InvalidArgumentError("dpv2-xdp runs in the NodePort lab only");
  }
  const std::string label =
      kind == SystemKind::kDpv2StackRouting ? "dpv2-stk" : SystemName(kind).substr(0, 8);
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<NodeLab> lab,
                        MakeNodeLab(label, options.plan, options.nodeport));
  switch (kind) {
    case SystemKind::kPlain:
      return std::make_unique<PlainSystem>(std::move(lab));
    case SystemKind::kIptablesNft:
      return std::make_unique<IptablesSystem>(std::move(lab), false);
    case SystemKind::kIptablesLegacy:
      return std::make_unique<IptablesSystem>(std::move(lab), true);
    case SystemKind::kNftables:
      return std::make_unique<NftablesSystem>(std::move(lab));
    case SystemKind::kDpv2:
    case SystemKind::kDpv2StackRouting:
    case SystemKind::kDpv2Xdp: {
      PeerSystemOptions o = options;
      o.host_routing = kind != SystemKind::kDpv2StackRouting;
      o.xdp = kind == SystemKind::kDpv2Xdp;
      o.local_endpoints = o.local_endpoints || o.nodeport;
      return std::make_unique<Dpv2System>(std::move(lab), o);
    }
  }
  return absl::InvalidArgumentError("unknown system");
}

}  // namespace dpv2::bench
