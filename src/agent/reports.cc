#include "agent/reports.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/probe.h"
#include "core/status_macros.h"
#include "dpv2/packet.h"

namespace dpv2::agent {
namespace {

std::string ProtoName(L4Proto p) { return std::string(L4ProtoName(p)); }

std::string TierName(uint8_t tier) {
  switch (tier) {
    case DPV2_POLICY_TIER_DEFAULT:
      return "isolated default";
    case DPV2_POLICY_TIER_ADMIN:
      return "AdminNetworkPolicy";
    case DPV2_POLICY_TIER_NETWORK:
      return "NetworkPolicy";
    case DPV2_POLICY_TIER_BASELINE:
      return "BaselineAdminNetworkPolicy";
    default:
      return "none";
  }
}

struct FrontendKey {
  std::string service, port_name;
  FrontendKind kind;
  IpAddr address;
  uint16_t port;
  L4Proto protocol;
  auto operator<=>(const FrontendKey&) const = default;
};

}  // namespace

nlohmann::json ServicesJson(const ClusterView& view) {
  std::vector<FrontendView> frontends = view.lb().Frontends();
  std::map<FrontendKey, std::pair<const FrontendView*, const FrontendView*>> merged;
  std::vector<FrontendKey> order;
  for (const FrontendView& f : frontends) {
    FrontendKey key{f.service, f.port_name, f.kind, f.address, f.port, f.protocol};
    auto [it, inserted] = merged.try_emplace(key, nullptr, nullptr);
    if (inserted) {
      order.push_back(key);
    }
    (f.scope == DPV2_LB_SCOPE_INT ? it->second.second : it->second.first) = &f;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const FrontendKey& key : order) {
    const auto& [ext, internal] = merged[key];
    nlohmann::json j = {
        {"service", key.service},
        {"port_name", key.port_name},
        {"kind", std::string(FrontendKindName(key.kind))},
        {"address", key.address.ToString()},
        {"port", key.port},
        {"protocol", ProtoName(key.protocol)},
        {"backends", ext ? ext->backends : (internal ? internal->backends
                                                      : std::vector<std::string>{})},
    };
    if (ext && internal) {
      j["internal_backends"] = internal->backends;
    }
    const FrontendView* any = ext ? ext : internal;
    if (any->flags & DPV2_LB_F_AFFINITY) {
      j["session_affinity_timeout_s"] = any->affinity_timeout_s;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::string ServicesText(const ClusterView& view) { return ServicesText(ServicesJson(view)); }

std::string ServicesText(const nlohmann::json& services) {
  std::string out;
  if (services.empty()) {
    return "no Service frontends\n";
  }
  for (const nlohmann::json& s : services) {
    std::string addr = s["address"].get<std::string>();
    if (addr.find(':') != std::string::npos) {
      addr = absl::StrCat("[", addr, "]");
    }
    std::vector<std::string> backends = s["backends"].get<std::vector<std::string>>();
    absl::StrAppend(&out, s["service"].get<std::string>(),
                    s["port_name"].get<std::string>().empty()
                        ? ""
                        : absl::StrCat(":", s["port_name"].get<std::string>()),
                    "  ", s["kind"].get<std::string>(), " ", addr, ":", s["port"].get<int>(), "/",
                    s["protocol"].get<std::string>(), " -> ",
                    backends.empty() ? "(no usable backend)" : absl::StrJoin(backends, " "),
                    "\n");
    if (s.contains("internal_backends")) {
      std::vector<std::string> internal = s["internal_backends"].get<std::vector<std::string>>();
      absl::StrAppend(&out, "    from this node's pods -> ",
                      internal.empty() ? "(no usable backend)" : absl::StrJoin(internal, " "),
                      "\n");
    }
  }
  return out;
}

nlohmann::json EndpointsJson(const ClusterView& view) {
  nlohmann::json out = nlohmann::json::array();
  std::map<std::string, nlohmann::json> by_key;  // sorted, as the pods were listed
  view.policy().ForEachPod([&](const HeldPod& pod) {
    const std::string key = absl::StrCat(pod.namespace_name, "/", pod.name);
    std::optional<LocalEndpoint> ep = view.LocalEndpointOf(key);
    if (!ep) {
      return;
    }
    std::vector<std::string> ips;
    for (const IpAddr& ip : *pod.ips) {
      ips.push_back(ip.ToString());
    }
    nlohmann::json j = {{"pod", key}, {"addresses", ips}, {"ifindex", ep->ifindex}};
    if (!pod.ips->empty()) {
      j["identity"] = view.policy().IdentityOf(pod.ips->front());
    }
    if (std::optional<uint32_t> id = view.policy().EndpointId(pod.namespace_name, pod.name)) {
      j["endpoint_id"] = *id;
    }
    by_key.emplace(key, std::move(j));
  });
  for (auto& [key, j] : by_key) {
    out.push_back(std::move(j));
  }
  return out;
}

std::string EndpointsText(const ClusterView& view) {
  return EndpointsText(EndpointsJson(view), view.node().name);
}

std::string EndpointsText(const nlohmann::json& eps, absl::string_view node_name) {
  if (eps.empty()) {
    return absl::StrCat("no local endpoints on node \"", node_name, "\"\n");
  }
  std::string out;
  for (const nlohmann::json& e : eps) {
    absl::StrAppend(&out, e["pod"].get<std::string>(), "  ",
                    absl::StrJoin(e["addresses"].get<std::vector<std::string>>(), ","),
                    "  ifindex ", e["ifindex"].get<uint32_t>());
    if (e.contains("identity")) {
      absl::StrAppend(&out, "  identity ", e["identity"].get<uint32_t>());
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

nlohmann::json IdentitiesJson(const ClusterView& view) {
  std::map<uint32_t, std::vector<std::string>> by_identity;
  view.policy().ForEachPod([&](const HeldPod& pod) {
    for (const IpAddr& ip : *pod.ips) {
      by_identity[view.policy().IdentityOf(ip)].push_back(
          absl::StrCat(pod.namespace_name, "/", pod.name, " ", ip.ToString()));
    }
  });
  for (auto& [id, members] : by_identity) {
    std::sort(members.begin(), members.end());  // ForEachPod has no order
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [id, members] : by_identity) {
    out[std::to_string(id)] = members;
  }
  return out;
}

std::string IdentitiesText(const ClusterView& view) { return IdentitiesText(IdentitiesJson(view)); }

std::string IdentitiesText(const nlohmann::json& ids) {
  std::string out;
  for (auto it = ids.begin(); it != ids.end(); ++it) {
    absl::StrAppend(&out, "identity ", it.key(), ": ",
                    absl::StrJoin(it.value().get<std::vector<std::string>>(), ", "), "\n");
  }
  if (out.empty()) {
    out = "no pod addresses\n";
  }
  return out;
}

absl::StatusOr<nlohmann::json> PolicyJson(const ClusterView& view, absl::string_view pod) {
  size_t slash = pod.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy: pod \"", pod, "\": expected namespace/name"));
  }
  std::optional<uint32_t> endpoint =
      view.policy().EndpointId(pod.substr(0, slash), pod.substr(slash + 1));
  if (!endpoint) {
    return absl::NotFoundError(
        absl::StrCat("policy: pod ", pod, " is not a local endpoint of node \"",
                     view.node().name, "\" (use --node, or check status.podIP)"));
  }
  nlohmann::json entries = nlohmann::json::array();
  for (const PolicyEntry& e : view.policy().EndpointPolicy(*endpoint)) {
    int port_bits = static_cast<int>(e.key.prefixlen) - DPV2_POLICY_PREFIX_FIXED;
    uint16_t port = static_cast<uint16_t>((e.key.dport >> 8) | (e.key.dport << 8));
    std::string ports = "any";
    if (e.key.proto != 0 && port_bits > 0) {
      uint32_t span = port_bits >= 16 ? 1 : (1u << (16 - port_bits));
      ports = span == 1 ? absl::StrCat(port) : absl::StrCat(port, "-", port + span - 1);
    }
    std::vector<std::string> policies;
    if (const std::vector<PolicyRef>* refs = view.policy().MatchPolicies(e.value.match_id)) {
      for (const PolicyRef& r : *refs) {
        policies.push_back(absl::StrCat(PolicyKindName(r.kind), " ",
                                        r.namespace_name.empty()
                                            ? r.name
                                            : absl::StrCat(r.namespace_name, "/", r.name)));
      }
    }
    entries.push_back(nlohmann::json{
        {"direction", std::string(e.key.direction == DPV2_DIR_EGRESS ? "egress" : "ingress")},
        {"peer_identity", e.key.identity == 0 ? nlohmann::json("any")
                                              : nlohmann::json(e.key.identity)},
        {"protocol", e.key.proto == 0 ? std::string("any")
                                      : std::string(L4ProtoName(static_cast<L4Proto>(e.key.proto)))},
        {"ports", ports},
        {"verdict", std::string(e.value.verdict == DPV2_POLICY_ALLOW ? "allow" : "deny")},
        {"tier", TierName(e.value.tier)},
        {"policies", policies},
    });
  }
  return nlohmann::json{{"pod", std::string(pod)}, {"endpoint_id", *endpoint},
                        {"entries", entries}};
}

absl::StatusOr<std::string> PolicyText(const ClusterView& view, absl::string_view pod) {
  absl::StatusOr<nlohmann::json> j = PolicyJson(view, pod);
  if (!j.ok()) {
    return j.status();
  }
  return PolicyText(*j);
}

std::string PolicyText(const nlohmann::json& policy) {
  std::string out = absl::StrCat("pod ", policy["pod"].get<std::string>(), " (endpoint ",
                                 policy["endpoint_id"].get<uint32_t>(), ")\n");
  if (policy["entries"].empty()) {
    absl::StrAppend(&out, "  no policy entries: not isolated in either direction\n");
  }
  for (const nlohmann::json& e : policy["entries"]) {
    std::string peer = e["peer_identity"].is_string()
                           ? "any peer"
                           : absl::StrCat("identity ", e["peer_identity"].get<uint32_t>());
    absl::StrAppend(&out, "  ", e["direction"].get<std::string>(), " ", peer, " ",
                    e["protocol"].get<std::string>(), " ports ", e["ports"].get<std::string>(),
                    " -> ", e["verdict"].get<std::string>(), " (tier ",
                    e["tier"].get<std::string>(), ")");
    std::vector<std::string> policies = e["policies"].get<std::vector<std::string>>();
    if (!policies.empty()) {
      absl::StrAppend(&out, " by ", absl::StrJoin(policies, ", "));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}


// ---- conntrack -------------------------------------------------------------------

namespace {

std::string HostPort(const IpAddr& ip, uint16_t port) {
  return ip.is_v4() ? absl::StrCat(ip.ToString(), ":", port)
                    : absl::StrCat("[", ip.ToString(), "]:", port);
}

uint16_t FromNetwork(uint16_t be) { return static_cast<uint16_t>((be >> 8) | (be << 8)); }

std::string ConntrackState(const dpv2_ct_key& k, const dpv2_ct_value& v) {
  if (k.proto == DPV2_PROTO_TCP) {
    const bool tx = v.flags & DPV2_CT_F_TX_CLOSING;
    const bool rx = v.flags & DPV2_CT_F_RX_CLOSING;
    if (tx && rx) {
      return "CLOSED";
    }
    if (tx || rx) {
      return "CLOSING";
    }
    return (v.flags & DPV2_CT_F_SEEN_NON_SYN) ? "ESTABLISHED" : "SYN_SENT";
  }
  return (v.flags & DPV2_CT_F_REPLY_SEEN) ? "REPLIED" : "NEW";
}

double Seconds(int64_t ns) { return static_cast<double>(ns / 1000000) / 1000.0; }

}  // namespace

nlohmann::json ConntrackJson(const std::vector<ConntrackEntry>& entries, uint64_t now_ns,
                             const ClusterView& view) {
  std::map<uint32_t, std::string> services;
  for (const FrontendView& f : view.lb().Frontends()) {
    services.emplace(f.service_id, f.service);
  }
  std::map<uint32_t, std::string> backends;
  for (const BackendView& b : view.lb().Backends()) {
    backends.emplace(b.id, HostPort(b.address, b.port));
  }
  struct Row {
    std::tuple<uint8_t, uint8_t, IpAddr, uint16_t, IpAddr, uint16_t, uint8_t> order;
    nlohmann::json json;
  };
  std::vector<Row> rows;
  rows.reserve(entries.size());
  for (const ConntrackEntry& e : entries) {
    const dpv2_ct_key& k = e.key;
    const dpv2_ct_value& v = e.value;
    const Family family = k.family == DPV2_FAMILY_V6 ? Family::kV6 : Family::kV4;
    const IpAddr src = IpAddr::FromAbi(k.saddr, family);
    const IpAddr dst = IpAddr::FromAbi(k.daddr, family);
    const uint16_t sport = FromNetwork(k.sport);
    const uint16_t dport = FromNetwork(k.dport);
    std::vector<std::string> flags;
    static constexpr std::pair<uint16_t, const char*> kFlags[] = {
        {DPV2_CT_F_TX_CLOSING, "tx_closing"}, {DPV2_CT_F_RX_CLOSING, "rx_closing"},
        {DPV2_CT_F_SEEN_NON_SYN, "seen_non_syn"}, {DPV2_CT_F_REPLY_SEEN, "reply_seen"},
        {DPV2_CT_F_REV_NAT, "rev_nat"}, {DPV2_CT_F_NODEPORT, "nodeport"},
        {DPV2_CT_F_POLICY_DENIED, "policy_denied"}};
    for (const auto& [bit, name] : kFlags) {
      if (v.flags & bit) {
        flags.push_back(name);
      }
    }
    nlohmann::json j = {
        {"protocol", std::string(L4ProtoName(static_cast<L4Proto>(k.proto)))},
        {"source", HostPort(src, sport)},
        {"destination", HostPort(dst, dport)},
        {"service_entry", (k.flags & DPV2_CT_KEY_SERVICE) != 0},
        {"state", ConntrackState(k, v)},
        {"age_s", Seconds(static_cast<int64_t>(now_ns - v.created_ns))},
        {"expires_in_s", Seconds(static_cast<int64_t>(v.expires_ns - now_ns))},
        {"expired", now_ns >= v.expires_ns},
        {"packets", v.packets},
        {"bytes", v.bytes},
        {"flags", flags},
        {"src_identity", v.src_identity},
        {"dst_identity", v.dst_identity},
    };
    if (v.flags & DPV2_CT_F_REV_NAT) {
      j["reverse_nat"] = HostPort(IpAddr::FromAbi(v.nat_addr, family), FromNetwork(v.nat_port));
    }
    if (v.service_id != 0) {
      auto it = services.find(v.service_id);
      j["service"] = it != services.end() ? it->second : absl::StrCat("#", v.service_id);
    }
    if (v.backend_id != 0) {
      auto it = backends.find(v.backend_id);
      j["backend"] = it != backends.end() ? it->second : absl::StrCat("#", v.backend_id, " (gone)");
    }
    rows.push_back({{k.proto, k.family, src, sport, dst, dport, k.flags}, std::move(j)});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.order < b.order; });
  nlohmann::json out = nlohmann::json::array();
  for (Row& r : rows) {
    out.push_back(std::move(r.json));
  }
  return out;
}

std::string ConntrackText(const nlohmann::json& entries) {
  if (entries.empty()) {
    return "no conntrack entries\n";
  }
  std::string out;
  for (const nlohmann::json& e : entries) {
    absl::StrAppend(&out, e["protocol"].get<std::string>(), " ",
                    e["source"].get<std::string>(), " -> ", e["destination"].get<std::string>(),
                    e["service_entry"].get<bool>() ? " service" : "", "  ",
                    e["state"].get<std::string>());
    if (e.contains("backend")) {
      absl::StrAppend(&out, "  backend ", e["backend"].get<std::string>());
    }
    if (e.contains("reverse_nat")) {
      absl::StrAppend(&out, "  replies from ", e["reverse_nat"].get<std::string>());
    }
    if (e.contains("service")) {
      absl::StrAppend(&out, "  (", e["service"].get<std::string>(), ")");
    }
    absl::StrAppend(&out, absl::StrFormat("  age %.1fs", e["age_s"].get<double>()));
    if (e["expired"].get<bool>()) {
      absl::StrAppend(&out, "  expired");
    } else {
      absl::StrAppend(&out, absl::StrFormat("  expires in %.1fs", e["expires_in_s"].get<double>()));
    }
    absl::StrAppend(&out, "  packets ", e["packets"].get<uint64_t>(), " bytes ",
                    e["bytes"].get<uint64_t>(), "\n");
  }
  return out;
}

// ---- trace -------------------------------------------------------------------------

namespace {

// A pod ("ns/name") or an address, and the pod that address belongs to.
struct TraceEnd {
  IpAddr ip;
  std::optional<std::string> pod;
};

absl::StatusOr<TraceEnd> ResolveTraceEnd(const ClusterView& view, const std::string& text,
                                         absl::string_view field) {
  const size_t slash = text.find('/');
  if (std::optional<HeldPod> pod =
          slash == std::string::npos
              ? std::nullopt
              : view.policy().FindPod(text.substr(0, slash), text.substr(slash + 1))) {
    if (pod->ips->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("trace ", field, ": pod ", text, " has no status.podIP"));
    }
    return TraceEnd{.ip = pod->ips->front(), .pod = text};
  }
  absl::StatusOr<IpAddr> ip = IpAddr::Parse(text);
  if (!ip.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trace ", field, ": \"", text, "\" is neither a known pod (namespace/name) nor an address"));
  }
  std::optional<std::string> owner;  // the first in key order, hostNetwork pods too
  view.policy().ForEachPod([&](const HeldPod& pod) {
    const std::string key = absl::StrCat(pod.namespace_name, "/", pod.name);
    if (std::find(pod.ips->begin(), pod.ips->end(), *ip) != pod.ips->end() &&
        (!owner || key < *owner)) {
      owner = key;
    }
  });
  return TraceEnd{.ip = *ip, .pod = owner};
}

// The first source port from 40000 up that no conntrack entry uses with this
// source address as either end, so the trace opens a fresh flow.
absl::StatusOr<uint16_t> FreeSourcePort(Backend& backend, const IpAddr& src, L4Proto proto) {
  DPV2_ASSIGN_OR_RETURN(std::vector<ConntrackEntry> entries, backend.DumpConntrack());
  absl::flat_hash_set<uint16_t> used;
  const dpv2_addr a = src.ToAbi();
  for (const ConntrackEntry& e : entries) {
    if (e.key.proto != static_cast<uint8_t>(proto)) {
      continue;
    }
    if (std::memcmp(&e.key.saddr, &a, sizeof(a)) == 0) {
      used.insert(FromNetwork(e.key.sport));
    }
    if (std::memcmp(&e.key.daddr, &a, sizeof(a)) == 0) {
      used.insert(FromNetwork(e.key.dport));
    }
  }
  for (uint32_t port = 40000; port <= 65535; ++port) {
    if (!used.contains(static_cast<uint16_t>(port))) {
      return static_cast<uint16_t>(port);
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("trace: every source port from 40000 up of ", src.ToString(), " is tracked"));
}

absl::StatusOr<uint16_t> PortField(const nlohmann::json& request, const char* field,
                                   bool required) {
  auto it = request.find(field);
  if (it == request.end()) {
    if (required) {
      return absl::InvalidArgumentError(absl::StrCat("trace: missing \"", field, "\""));
    }
    return 0;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace ", field, ": must be an integer 1-65535, got ", it->dump()));
  }
  return static_cast<uint16_t>(it->get<int64_t>());
}

absl::StatusOr<std::string> TextField(const nlohmann::json& request, const char* field) {
  auto it = request.find(field);
  if (it == request.end() || !it->is_string() || it->get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace: \"", field, "\" must be a pod (namespace/name) or an address"));
  }
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<TraceRequest> ParseTraceRequest(const nlohmann::json& request) {
  if (!request.is_object()) {
    return absl::InvalidArgumentError("trace: request is not a JSON object");
  }
  TraceRequest r;
  DPV2_ASSIGN_OR_RETURN(r.from, TextField(request, "from"));
  DPV2_ASSIGN_OR_RETURN(r.to, TextField(request, "to"));
  DPV2_ASSIGN_OR_RETURN(r.port, PortField(request, "port", /*required=*/true));
  DPV2_ASSIGN_OR_RETURN(uint16_t sport, PortField(request, "sport", /*required=*/false));
  if (sport != 0) {
    r.sport = sport;
  }
  if (auto it = request.find("protocol"); it != request.end()) {
    absl::StatusOr<L4Proto> p = it->is_string() ? ParseL4Proto(it->get<std::string>())
                                                : absl::InvalidArgumentError(it->dump());
    if (!p.ok() || (*p != L4Proto::kTCP && *p != L4Proto::kUDP && *p != L4Proto::kSCTP)) {
      return absl::InvalidArgumentError(
          absl::StrCat("trace protocol: must be TCP, UDP or SCTP, got ", it->dump()));
    }
    r.protocol = *p;
  }
  return r;
}

nlohmann::json TraceRequestJson(const TraceRequest& r) {
  nlohmann::json j = {{"from", r.from}, {"to", r.to}, {"port", r.port},
                      {"protocol", std::string(L4ProtoName(r.protocol))}};
  if (r.sport) {
    j["sport"] = *r.sport;
  }
  return j;
}

absl::StatusOr<nlohmann::json> TraceJson(const ClusterView& view, Backend& backend,
                                         const TraceRequest& request) {
  if (request.port == 0) {
    return absl::InvalidArgumentError("trace port: must be 1-65535");
  }
  DPV2_ASSIGN_OR_RETURN(TraceEnd from, ResolveTraceEnd(view, request.from, "from"));
  DPV2_ASSIGN_OR_RETURN(TraceEnd to, ResolveTraceEnd(view, request.to, "to"));
  if (from.ip.family() != to.ip.family()) {
    return absl::InvalidArgumentError("trace: from and to are of different address families");
  }
  uint16_t sport = 0;
  if (request.sport) {
    sport = *request.sport;
  } else {
    DPV2_ASSIGN_OR_RETURN(sport, FreeSourcePort(backend, from.ip, request.protocol));
  }
  PacketInput input{.entry = Entry::kFromNetwork, .ifindex = 1};
  PacketBuilder builder;
  std::string origin = "from the network (node's external device)";
  if (from.pod) {
    std::optional<LocalEndpoint> ep = view.LocalEndpointOf(*from.pod);
    if (!ep) {
      return absl::FailedPreconditionError(absl::StrCat(
          "trace from: pod ", *from.pod, " is not on node \"", view.node().name,
          "\" (offline: pick its node with --node)"));
    }
    input.entry = Entry::kFromPod;
    input.ifindex = ep->ifindex;
    builder.Eth(ep->mac, ep->host_mac);
    origin = absl::StrCat("from pod ", *from.pod, " (ifindex ", ep->ifindex, ")");
  } else {
    builder.Eth("02:00:00:00:00:01", "02:00:00:00:00:02");
  }
  AddOpeningPacket(builder, from.ip, to.ip, request.protocol, sport, request.port, "trace");
  DPV2_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, builder.TryBuild());
  input.frame = frame;
  DPV2_ASSIGN_OR_RETURN(PacketOutcome out, backend.RunPacket(input));
  nlohmann::json j = {{"backend", std::string(backend.Name())},
                      {"input", DescribePacket(frame)},
                      {"entry", origin},
                      {"sport", sport},
                      {"verdict", std::string(VerdictName(out.verdict))}};
  nlohmann::json steps = nlohmann::json::array();
  for (const FlowEvent& ev : out.events) {
    std::string line = ev.ToString();
    if (ev.type == DPV2_EVENT_POLICY_VERDICT && ev.policy_match_id != 0) {
      if (const auto* refs = view.policy().MatchPolicies(ev.policy_match_id)) {
        for (const PolicyRef& r : *refs) {
          absl::StrAppend(&line, " [", PolicyKindName(r.kind), " ",
                          r.namespace_name.empty() ? "" : r.namespace_name + "/", r.name, "]");
        }
      }
    }
    steps.push_back(line);
  }
  j["steps"] = steps;
  if (out.drop_reason != DPV2_DROP_NONE) {
    j["drop_reason"] = std::string(DropReasonName(out.drop_reason));
  }
  nlohmann::json outputs = nlohmann::json::array();
  for (const OutputFrame& o : out.outputs) {
    outputs.push_back(absl::StrCat(VerdictName(o.verdict), " ifindex ", o.out_ifindex, ": ",
                                   DescribePacket(o.frame)));
  }
  j["outputs"] = outputs;
  return j;
}

std::string TraceText(const nlohmann::json& trace) {
  std::string text = absl::StrCat("packet: ", trace["input"].get<std::string>(),
                                  "\nentry:  ", trace["entry"].get<std::string>(), "\n");
  for (const nlohmann::json& step : trace["steps"]) {
    absl::StrAppend(&text, "step:   ", step.get<std::string>(), "\n");
  }
  absl::StrAppend(&text, "result: ", trace["verdict"].get<std::string>(),
                  trace.contains("drop_reason")
                      ? absl::StrCat(" (", trace["drop_reason"].get<std::string>(), ")")
                      : "",
                  "\n");
  for (const nlohmann::json& o : trace["outputs"]) {
    absl::StrAppend(&text, "output: ", o.get<std::string>(), "\n");
  }
  return text;
}

}  // namespace dpv2::agent
