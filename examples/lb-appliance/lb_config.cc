#include "lb_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"

namespace dpv2::lb {
namespace {

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("lb config: ", where, ": ", what));
}

absl::StatusOr<MacAddr> ParseMac(absl::string_view where, const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  MacAddr mac{};
  if (parts.size() != 6) {
    return Invalid(where, absl::StrCat("\"", text, "\" is not a MAC address (aa:bb:cc:dd:ee:ff)"));
  }
  for (size_t i = 0; i < 6; ++i) {
    uint32_t byte = 0;
    if (parts[i].size() != 2 || !absl::SimpleHexAtoi(parts[i], &byte)) {
      return Invalid(where, absl::StrCat("\"", text, "\" is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    mac[i] = static_cast<uint8_t>(byte);
  }
  return mac;
}

absl::StatusOr<uint64_t> ParseUint(absl::string_view where, const YAML::Node& node, uint64_t max) {
  uint64_t v = 0;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &v) || v > max) {
    return Invalid(where, absl::StrCat("\"", node.IsScalar() ? node.Scalar() : "<not a scalar>",
                                       "\" is not an integer in 0-", max));
  }
  return v;
}

absl::StatusOr<std::string> ParseString(absl::string_view where, const YAML::Node& node) {
  if (!node.IsScalar()) {
    return Invalid(where, "expected a string");
  }
  return node.Scalar();
}

absl::StatusOr<IpAddr> ParseAddr(absl::string_view where, const YAML::Node& node) {
  DPV2_ASSIGN_OR_RETURN(std::string text, ParseString(where, node));
  absl::StatusOr<IpAddr> addr = IpAddr::Parse(text);
  if (!addr.ok()) {
    return Invalid(where, addr.status().message());
  }
  return *addr;
}

absl::Status CheckKeys(absl::string_view where, const YAML::Node& map,
                       std::initializer_list<absl::string_view> known) {
  if (!map.IsMap()) {
    return Invalid(where, "expected a mapping");
  }
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    bool ok = false;
    for (absl::string_view k : known) {
      ok = ok || key == k;
    }
    if (!ok) {
      return Invalid(where, absl::StrCat("unknown field \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseDpdk(const YAML::Node& node, DpdkOptions* out) {
  DPV2_RETURN_IF_ERROR(CheckKeys("dpdk", node,
                                 {"eal", "ports", "lcores", "neighbors", "burst_size",
                                  "idle_sleep_us", "drain_interval_us", "mbufs_per_port",
                                  "conntrack_reserve"}));
  if (const YAML::Node eal = node["eal"]) {
    if (!eal.IsSequence()) {
      return Invalid("dpdk.eal", "expected a list of EAL arguments");
    }
    for (size_t i = 0; i < eal.size(); ++i) {
      DPV2_ASSIGN_OR_RETURN(std::string arg, ParseString(absl::StrCat("dpdk.eal[", i, "]"), eal[i]));
      out->eal_args.push_back(arg);
    }
  }
  const YAML::Node ports = node["ports"];
  if (!ports || !ports.IsSequence() || ports.size() == 0) {
    return Invalid("dpdk.ports", "at least one port is needed");
  }
  for (size_t i = 0; i < ports.size(); ++i) {
    const std::string where = absl::StrCat("dpdk.ports[", i, "]");
    DPV2_RETURN_IF_ERROR(CheckKeys(where, ports[i], {"device", "forward_to", "gateway_mac"}));
    DpdkPortOptions port{.entry = Entry::kFromNetwork};
    if (!ports[i]["device"]) {
      return Invalid(where, "device is missing");
    }
    DPV2_ASSIGN_OR_RETURN(port.device, ParseString(where + ".device", ports[i]["device"]));
    if (ports[i]["forward_to"]) {
      DPV2_ASSIGN_OR_RETURN(port.forward_to,
                            ParseString(where + ".forward_to", ports[i]["forward_to"]));
    }
    if (ports[i]["gateway_mac"]) {
      DPV2_ASSIGN_OR_RETURN(std::string mac,
                            ParseString(where + ".gateway_mac", ports[i]["gateway_mac"]));
      DPV2_ASSIGN_OR_RETURN(port.gateway_mac, ParseMac(where + ".gateway_mac", mac));
    }
    port.ifindex = static_cast<uint32_t>(i + 1);
    out->ports.push_back(port);
  }
  if (const YAML::Node lcores = node["lcores"]) {
    for (size_t i = 0; i < lcores.size(); ++i) {
      DPV2_ASSIGN_OR_RETURN(uint64_t l, ParseUint(absl::StrCat("dpdk.lcores[", i, "]"), lcores[i], 1023));
      out->lcores.push_back(static_cast<uint32_t>(l));
    }
  }
  if (const YAML::Node neighbors = node["neighbors"]) {
    for (size_t i = 0; i < neighbors.size(); ++i) {
      const std::string where = absl::StrCat("dpdk.neighbors[", i, "]");
      DPV2_RETURN_IF_ERROR(CheckKeys(where, neighbors[i], {"ip", "mac"}));
      if (!neighbors[i]["ip"] || !neighbors[i]["mac"]) {
        return Invalid(where, "needs ip and mac");
      }
      DpdkNeighbor n;
      DPV2_ASSIGN_OR_RETURN(n.addr, ParseAddr(where + ".ip", neighbors[i]["ip"]));
      DPV2_ASSIGN_OR_RETURN(std::string mac, ParseString(where + ".mac", neighbors[i]["mac"]));
      DPV2_ASSIGN_OR_RETURN(n.mac, ParseMac(where + ".mac", mac));
      out->neighbors.push_back(n);
    }
  }
  if (node["burst_size"]) {
    DPV2_ASSIGN_OR_RETURN(uint64_t v, ParseUint("dpdk.burst_size", node["burst_size"], 64));
    out->burst_size = static_cast<uint16_t>(v);
  }
  if (node["idle_sleep_us"]) {
    DPV2_ASSIGN_OR_RETURN(uint64_t v, ParseUint("dpdk.idle_sleep_us", node["idle_sleep_us"], 1000000));
    out->idle_sleep_us = static_cast<uint32_t>(v);
  }
  if (node["drain_interval_us"]) {
    DPV2_ASSIGN_OR_RETURN(uint64_t v,
                          ParseUint("dpdk.drain_interval_us", node["drain_interval_us"], 1000000));
    out->drain_interval_us = static_cast<uint32_t>(v);
  }
  if (node["mbufs_per_port"]) {
    DPV2_ASSIGN_OR_RETURN(uint64_t v, ParseUint("dpdk.mbufs_per_port", node["mbufs_per_port"], 1u << 24));
    out->mbufs_per_port = static_cast<uint32_t>(v);
  }
  if (node["conntrack_reserve"]) {
    DPV2_ASSIGN_OR_RETURN(uint64_t v, ParseUint("dpdk.conntrack_reserve",
                                                node["conntrack_reserve"], 0xffffffffu));
    out->conntrack_reserve = static_cast<uint32_t>(v);
  }
  return absl::OkStatus();
}

absl::StatusOr<VirtualService> ParseService(size_t index, const YAML::Node& node) {
  std::string where = absl::StrCat("services[", index, "]");
  DPV2_RETURN_IF_ERROR(CheckKeys(where, node,
                                 {"name", "vip", "port", "protocol", "affinity_timeout_s",
                                  "backends"}));
  VirtualService svc;
  if (!node["name"]) {
    return Invalid(where, "name is missing");
  }
  DPV2_ASSIGN_OR_RETURN(svc.name, ParseString(where + ".name", node["name"]));
  where = absl::StrCat(where, " \"", svc.name, "\"");
  if (!node["vip"]) {
    return Invalid(where, "vip is missing");
  }
  DPV2_ASSIGN_OR_RETURN(svc.vip, ParseAddr(where + ": vip", node["vip"]));
  if (!node["port"]) {
    return Invalid(where, "port is missing");
  }
  DPV2_ASSIGN_OR_RETURN(uint64_t port, ParseUint(where + ": port", node["port"], 65535));
  if (port == 0) {
    return Invalid(where, "port 0 out of range 1-65535");
  }
  svc.port = static_cast<uint16_t>(port);
  if (node["protocol"]) {
    DPV2_ASSIGN_OR_RETURN(std::string proto, ParseString(where + ": protocol", node["protocol"]));
    absl::StatusOr<L4Proto> p = ParseL4Proto(proto);
    if (!p.ok() || (*p != L4Proto::kTCP && *p != L4Proto::kUDP && *p != L4Proto::kSCTP)) {
      return Invalid(where, absl::StrCat("protocol \"", proto, "\" is not TCP, UDP or SCTP"));
    }
    svc.protocol = *p;
  }
  if (node["affinity_timeout_s"]) {
    DPV2_ASSIGN_OR_RETURN(uint64_t t, ParseUint(where + ": affinity_timeout_s",
                                                node["affinity_timeout_s"], kMaxAffinityTimeoutS));
    svc.affinity_timeout_s = static_cast<uint32_t>(t);
  }
  const YAML::Node backends = node["backends"];
  if (backends && !backends.IsSequence()) {
    return Invalid(where, "backends: expected a list");
  }
  for (size_t i = 0; backends && i < backends.size(); ++i) {
    const std::string bw = absl::StrCat(where, ": backends[", i, "]");
    DPV2_RETURN_IF_ERROR(CheckKeys(bw, backends[i], {"address", "port", "state"}));
    VirtualBackend b;
    if (!backends[i]["address"]) {
      return Invalid(bw, "address is missing");
    }
    DPV2_ASSIGN_OR_RETURN(b.address, ParseAddr(bw + ".address", backends[i]["address"]));
    if (b.address.family() != svc.vip.family()) {
      return Invalid(bw, absl::StrCat("address ", b.address.ToString(),
                                      " is not of the VIP's family (NAT does not translate families)"));
    }
    DPV2_ASSIGN_OR_RETURN(uint64_t bport, ParseUint(bw + ".port",
                                                    backends[i]["port"] ? backends[i]["port"]
                                                                        : node["port"],
                                                    65535));
    if (bport == 0) {
      return Invalid(bw, "port 0 out of range 1-65535");
    }
    b.port = static_cast<uint16_t>(bport);
    if (backends[i]["state"]) {
      DPV2_ASSIGN_OR_RETURN(std::string state, ParseString(bw + ".state", backends[i]["state"]));
      if (state == "up") {
        b.health = BackendHealth::kUp;
      } else if (state == "draining") {
        b.health = BackendHealth::kDraining;
      } else if (state == "down") {
        b.health = BackendHealth::kDown;
      } else {
        return Invalid(bw, absl::StrCat("state \"", state, "\" is not up, draining or down"));
      }
    }
    svc.backends.push_back(b);
  }
  return svc;
}

absl::Status ParseKubernetes(const YAML::Node& node, KubernetesInput* out) {
  DPV2_RETURN_IF_ERROR(CheckKeys("kubernetes", node, {"manifests"}));
  if (!node["manifests"]) {
    return Invalid("kubernetes", "manifests is missing (a file or directory of manifests)");
  }
  DPV2_ASSIGN_OR_RETURN(out->manifests, ParseString("kubernetes.manifests", node["manifests"]));
  if (out->manifests.empty() || out->manifests == "-") {
    return Invalid("kubernetes.manifests", "needs a file or directory (it is re-read on change)");
  }
  return absl::OkStatus();
}

absl::Status ParseHealthChecks(const YAML::Node& node, HealthCheckConfig* out) {
  DPV2_RETURN_IF_ERROR(
      CheckKeys("health_checks", node, {"interval_ms", "timeout_ms", "rise", "fall"}));
  struct Field {
    const char* name;
    uint32_t* value;
    uint64_t min;
    uint64_t max;
  };
  for (const Field& f : {Field{"interval_ms", &out->interval_ms, 0, 3600000},
                         Field{"timeout_ms", &out->timeout_ms, 1, 60000},
                         Field{"rise", &out->rise, 1, 100}, Field{"fall", &out->fall, 1, 100}}) {
    if (!node[f.name]) {
      continue;
    }
    const std::string where = absl::StrCat("health_checks.", f.name);
    DPV2_ASSIGN_OR_RETURN(uint64_t v, ParseUint(where, node[f.name], f.max));
    if (v < f.min) {
      return Invalid(where, absl::StrCat(v, " is below the minimum ", f.min));
    }
    *f.value = static_cast<uint32_t>(v);
  }
  if (out->interval_ms != 0 && out->timeout_ms > out->interval_ms) {
    return Invalid("health_checks.timeout_ms",
                   absl::StrCat(out->timeout_ms, " is longer than interval_ms ", out->interval_ms));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LbConfig> ParseLbConfig(absl::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("lb config: line ", e.mark.line + 1,
                                                   " column ", e.mark.column + 1, ": ", e.msg));
  }
  try {
    LbConfig cfg;
    DPV2_RETURN_IF_ERROR(CheckKeys("top level", root,
                                   {"dpdk", "selection", "maglev_seed", "maglev_table_size",
                                    "maglev_slots_per_backend", "services", "kubernetes",
                                    "health_checks"}));
    if (!root["dpdk"]) {
      return Invalid("dpdk", "section is missing");
    }
    DPV2_RETURN_IF_ERROR(ParseDpdk(root["dpdk"], &cfg.dpdk));
    if (root["selection"]) {
      DPV2_ASSIGN_OR_RETURN(std::string sel, ParseString("selection", root["selection"]));
      if (sel == "maglev") {
        cfg.selection = BackendSelection::kMaglev;
      } else if (sel == "random") {
        cfg.selection = BackendSelection::kRandom;
      } else {
        return Invalid("selection", absl::StrCat("\"", sel, "\" is not maglev or random"));
      }
    }
    if (root["maglev_seed"]) {
      DPV2_ASSIGN_OR_RETURN(cfg.maglev_seed, ParseUint("maglev_seed", root["maglev_seed"], ~0ull));
    }
    if (root["maglev_table_size"]) {
      DPV2_ASSIGN_OR_RETURN(uint64_t m,
                            ParseUint("maglev_table_size", root["maglev_table_size"],
                                      kMaxMaglevTableSize));
      cfg.dpdk.config.maglev_table_size = static_cast<uint32_t>(m);
    }
    if (root["maglev_slots_per_backend"]) {
      // 0: every VIP's table at maglev_table_size (DatapathConfig).
      DPV2_ASSIGN_OR_RETURN(uint64_t n, ParseUint("maglev_slots_per_backend",
                                                  root["maglev_slots_per_backend"],
                                                  kMaxMaglevSlotsPerBackend));
      cfg.dpdk.config.maglev_slots_per_backend = static_cast<uint32_t>(n);
    }
    DPV2_RETURN_IF_ERROR(cfg.dpdk.config.Validate());
    if (root["kubernetes"]) {
      DPV2_RETURN_IF_ERROR(ParseKubernetes(root["kubernetes"], &cfg.kubernetes));
    }
    if (root["health_checks"]) {
      DPV2_RETURN_IF_ERROR(ParseHealthChecks(root["health_checks"], &cfg.health_checks));
    }
    const YAML::Node services = root["services"];
    if (services && !services.IsSequence()) {
      return Invalid("services", "expected a list");
    }
    std::map<std::string, size_t> names;
    std::map<std::string, size_t> frontends;
    for (size_t i = 0; services && i < services.size(); ++i) {
      DPV2_ASSIGN_OR_RETURN(VirtualService svc, ParseService(i, services[i]));
      if (auto [it, fresh] = names.emplace(svc.name, i); !fresh) {
        return Invalid(absl::StrCat("services[", i, "]"),
                       absl::StrCat("name \"", svc.name, "\" is also services[", it->second, "]"));
      }
      const std::string fe = absl::StrCat(L4ProtoName(svc.protocol), " ", svc.vip.ToString(), ":",
                                          svc.port);
      if (auto [it, fresh] = frontends.emplace(fe, i); !fresh) {
        return Invalid(absl::StrCat("services[", i, "] \"", svc.name, "\""),
                       absl::StrCat(fe, " is also served by services[", it->second, "]"));
      }
      cfg.services.push_back(std::move(svc));
    }
    return cfg;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("lb config: line ", e.mark.line + 1,
                                                   " column ", e.mark.column + 1, ": ", e.msg));
  }
}

absl::StatusOr<LbConfig> LoadLbConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("lb config: cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<LbConfig> cfg = ParseLbConfig(text.str());
  if (!cfg.ok()) {
    return absl::Status(cfg.status().code(), absl::StrCat(path, ": ", cfg.status().message()));
  }
  std::string& manifests = cfg->kubernetes.manifests;
  if (!manifests.empty() && manifests.front() != '/') {
    manifests = (std::filesystem::path(path).parent_path() / manifests).lexically_normal().string();
  }
  return cfg;
}

std::vector<ServiceSpec> ToServiceSpecs(const std::vector<VirtualService>& services) {
  std::vector<ServiceSpec> specs;
  for (const VirtualService& vs : services) {
    ServiceSpec spec{.namespace_name = std::string(kLbNamespace),
                     .name = vs.name,
                     .type = ServiceType::kClusterIP,
                     .cluster_ips = {vs.vip}};
    spec.ports.push_back({.name = "", .protocol = vs.protocol, .port = vs.port});
    if (vs.affinity_timeout_s != 0) {
      spec.session_affinity = SessionAffinity::kClientIP;
      spec.affinity_timeout_s = vs.affinity_timeout_s;
    }
    // One EndpointSlice per backend port: a slice carries one port per name.
    std::map<uint16_t, EndpointSliceSpec> slices;
    for (const VirtualBackend& b : vs.backends) {
      if (b.health == BackendHealth::kDown) {
        // Left out, not merely "not serving": LbState then deletes the
        // backend record and the datapath moves its established flows
        // (a not-ready endpoint would keep them, as Kubernetes does).
        continue;
      }
      EndpointSliceSpec& slice = slices[b.port];
      if (slice.name.empty()) {
        slice.name = absl::StrCat(vs.name, "-", b.port);
        slice.address_type = vs.vip.family();
        slice.ports.push_back({.name = "", .protocol = vs.protocol, .port = b.port});
      }
      EndpointSpec ep{.addresses = {b.address}};
      switch (b.health) {
        case BackendHealth::kUp:
          ep.conditions = {.ready = true, .serving = true, .terminating = false};
          break;
        case BackendHealth::kDraining:
          ep.conditions = {.ready = false, .serving = true, .terminating = true};
          break;
        case BackendHealth::kDown:
          break;
      }
      slice.endpoints.push_back(ep);
    }
    for (auto& [port, slice] : slices) {
      spec.endpoint_slices.push_back(std::move(slice));
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace dpv2::lb
