#include "agent/reports.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

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

std::string ServicesText(const ClusterView& view) {
  nlohmann::json services = ServicesJson(view);
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
  for (const auto& [key, pod] : view.objects().pods) {
    std::optional<LocalEndpoint> ep = view.LocalEndpointOf(key);
    if (!ep) {
      continue;
    }
    std::vector<std::string> ips;
    for (const IpAddr& ip : pod.info.ips) {
      ips.push_back(ip.ToString());
    }
    nlohmann::json j = {{"pod", key}, {"addresses", ips}, {"ifindex", ep->ifindex}};
    if (!pod.info.ips.empty()) {
      j["identity"] = view.policy().IdentityOf(pod.info.ips[0]);
    }
    if (std::optional<uint32_t> id =
            view.policy().EndpointId(pod.info.namespace_name, pod.info.name)) {
      j["endpoint_id"] = *id;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::string EndpointsText(const ClusterView& view) {
  nlohmann::json eps = EndpointsJson(view);
  if (eps.empty()) {
    return absl::StrCat("no local endpoints on node \"", view.node().name, "\"\n");
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
  for (const auto& [key, pod] : view.objects().pods) {
    for (const IpAddr& ip : pod.info.ips) {
      by_identity[view.policy().IdentityOf(ip)].push_back(
          absl::StrCat(key, " ", ip.ToString()));
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [id, members] : by_identity) {
    out[std::to_string(id)] = members;
  }
  return out;
}

std::string IdentitiesText(const ClusterView& view) {
  nlohmann::json ids = IdentitiesJson(view);
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
  // Everything desired is in the pending difference of a view that was never
  // applied; a view that was applied shows only what changed since.
  ChangeBatch batch = view.PendingChanges();
  nlohmann::json entries = nlohmann::json::array();
  for (const PolicyEntry& e : batch.policy_upsert) {
    if (e.key.endpoint_id != *endpoint) {
      continue;
    }
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
  std::string out = absl::StrCat("pod ", pod, " (endpoint ", (*j)["endpoint_id"].get<uint32_t>(),
                                 ")\n");
  if ((*j)["entries"].empty()) {
    absl::StrAppend(&out, "  no policy entries: not isolated in either direction\n");
  }
  for (const nlohmann::json& e : (*j)["entries"]) {
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

}  // namespace dpv2::agent
