#include "agent/probe.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/cluster_view.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"
#include "src/core/status_macros.h"

namespace dpv2::agent {
namespace {


std::string JoinPolicies(const PolicyState& policy, uint32_t match_id) {
  const std::vector<PolicyRef>* refs = policy.MatchPolicies(match_id);
  if (refs == nullptr || refs->empty()) {
    return "";
  }
  std::vector<std::string> names;
  for (const PolicyRef& r : *refs) {
    names.push_back(absl::StrCat(PolicyKindName(r.kind), " ",
                                 r.namespace_name.empty() ? r.name
                                                          : absl::StrCat(r.namespace_name, "/", r.name)));
  }
  return absl::StrJoin(names, ", ");
}

// The NetworkPolicies that isolate `pod` in one direction: what a default
// deny (a verdict no rule names) comes from.
std::string IsolatedBy(const k8s::ClusterObjects& objects, const std::string& pod_key,
                       bool egress) {
  auto pod = objects.pods.find(pod_key);
  if (pod == objects.pods.end()) {
    return "";
  }
  std::vector<std::string> names;
  for (const auto& [key, np] : objects.network_policies) {
    if (np.metadata.namespace_name == pod->second.info.namespace_name &&
        EffectivePolicyTypes(np.spec)[egress ? 1 : 0] &&
        np.spec.pod_selector.Matches(pod->second.info.labels)) {
      names.push_back(absl::StrCat("NetworkPolicy ", key));
    }
  }
  return absl::StrJoin(names, ", ");
}

// " by NetworkPolicy x/allow" or, for a deny no policy names, why.
std::string DecidedBy(const PolicyState& policy, uint32_t match_id, bool allowed,
                      const std::string& isolated_by) {
  std::string names = JoinPolicies(policy, match_id);
  if (!names.empty()) {
    return absl::StrCat(" by ", names);
  }
  if (allowed) {
    return "";
  }
  return isolated_by.empty() ? " (isolated; no rule allows)"
                             : absl::StrCat(" (isolated by ", isolated_by, "; no rule allows)");
}

// A first address of `to` in the family of one of `from`'s addresses.
bool PickAddresses(const PodInfo& from, const PodInfo& to, IpAddr* src, IpAddr* dst) {
  for (const IpAddr& s : from.ips) {
    for (const IpAddr& d : to.ips) {
      if (s.family() == d.family()) {
        *src = s;
        *dst = d;
        return true;
      }
    }
  }
  return false;
}

std::string Explain(const PacketOutcome& out, const PolicyState& policy,
                    const k8s::ClusterObjects& objects, const std::string& from,
                    const std::string& to) {
  std::vector<std::string> parts;
  bool saw_egress = false;
  bool saw_ingress = false;
  for (const FlowEvent& ev : out.events) {
    if (ev.type != DPV2_EVENT_POLICY_VERDICT) {
      continue;
    }
    bool egress = (ev.flags & DPV2_EV_F_EGRESS) != 0;
    bool allowed = (ev.flags & DPV2_EV_F_ALLOWED) != 0;
    (egress ? saw_egress : saw_ingress) = true;
    std::string who = DecidedBy(policy, ev.policy_match_id, allowed,
                                IsolatedBy(objects, egress ? from : to, egress));
    parts.push_back(absl::StrCat(egress ? "egress of " : "ingress of ", egress ? from : to, ": ",
                                 allowed ? "allowed" : "denied", who));
  }
  if (!saw_egress) {
    parts.insert(parts.begin(), absl::StrCat("egress of ", from, ": not isolated"));
  }
  if (!saw_ingress && out.verdict != Verdict::kDrop) {
    parts.push_back(absl::StrCat("ingress of ", to, ": not isolated"));
  }
  if (out.verdict == Verdict::kDrop && out.drop_reason != DPV2_DROP_NONE) {
    parts.push_back(absl::StrCat("dropped: ", DropReasonName(out.drop_reason)));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

absl::StatusOr<ProbeResult> RunProbe(const k8s::ClusterObjects& objects,
                                     const ProbeOptions& options) {
  if (!objects.errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(objects.errors, "\n"));
  }
  DPV2_ASSIGN_OR_RETURN(ClusterView view,
                        ClusterView::Create({.node_name = "probe-node", .all_pods_local = true}));
  view.Update(objects);
  std::vector<std::string> rejected;
  for (const std::string& p : view.problems()) {
    // Policy and pod problems change the answer; Service problems do not.
    if (p.rfind("Service ", 0) != 0) {
      rejected.push_back(p);
    }
  }
  if (!rejected.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(rejected, "\n"));
  }
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> sim, MakeSimBackend({}));
  DPV2_RETURN_IF_ERROR(view.ApplyTo(*sim));

  ProbeResult result;
  std::vector<const PodInfo*> pods;
  for (const auto& [key, pod] : objects.pods) {
    if (pod.info.ips.empty() || pod.info.host_network) {
      continue;
    }
    result.pods.push_back(key);
    pods.push_back(&pod.info);
  }
  result.cells.assign(pods.size(), std::vector<ProbeCell>(pods.size()));
  for (size_t i = 0; i < pods.size(); ++i) {
    std::optional<LocalEndpoint> from_ep = view.LocalEndpointOf(result.pods[i]);
    for (size_t j = 0; j < pods.size(); ++j) {
      ProbeCell& cell = result.cells[i][j];
      std::optional<LocalEndpoint> to_ep = view.LocalEndpointOf(result.pods[j]);
      IpAddr src;
      IpAddr dst;
      if (!from_ep || !to_ep || !PickAddresses(*pods[i], *pods[j], &src, &dst)) {
        cell.explanation = "no address of a common family";
        continue;
      }
      // Each probe is a fresh connection: no earlier probe's conntrack
      // entry may turn it into a "reply".
      DPV2_RETURN_IF_ERROR(sim->FlushConntrack());
      PacketBuilder builder;
      builder.Eth(from_ep->mac, from_ep->host_mac);
      AddOpeningPacket(builder, src, dst, options.protocol, /*sport=*/40000, options.port,
                       "probe");
      DPV2_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, builder.TryBuild());
      DPV2_ASSIGN_OR_RETURN(
          PacketOutcome out,
          sim->RunPacket({.entry = Entry::kFromPod, .ifindex = from_ep->ifindex, .frame = frame}));
      cell.allowed = out.verdict == Verdict::kRedirect &&
                     std::any_of(out.outputs.begin(), out.outputs.end(),
                                 [&](const OutputFrame& o) {
                                   return o.verdict == Verdict::kRedirect &&
                                          o.out_ifindex == to_ep->ifindex;
                                 });
      cell.explanation =
          Explain(out, view.policy(), objects, result.pods[i], result.pods[j]);
      // Keep the sim's event queue from filling over a large probe.
      (void)sim->DrainEvents(1 << 20);
    }
  }
  return result;
}

void AddOpeningPacket(PacketBuilder& builder, const IpAddr& src, const IpAddr& dst,
                      L4Proto proto, uint16_t sport, uint16_t dport,
                      absl::string_view udp_payload) {
  if (src.is_v4()) {
    builder.IPv4(src, dst);
  } else {
    builder.IPv6(src, dst);
  }
  switch (proto) {
    case L4Proto::kUDP:
      builder.Udp(sport, dport).Payload(udp_payload);
      break;
    case L4Proto::kSCTP:
      builder.Sctp(sport, dport);
      break;
    default:
      builder.Tcp(sport, dport, /*flags=SYN*/ 0x02);
      break;
  }
}

std::string FormatProbeMatrix(const ProbeResult& result, bool explain) {
  size_t width = 4;
  for (const std::string& p : result.pods) {
    width = std::max(width, p.size());
  }
  std::string out;
  absl::StrAppend(&out, std::string(width, ' '));
  for (const std::string& p : result.pods) {
    absl::StrAppend(&out, " ", p);
  }
  absl::StrAppend(&out, "\n");
  for (size_t i = 0; i < result.pods.size(); ++i) {
    absl::StrAppend(&out, result.pods[i], std::string(width - result.pods[i].size(), ' '));
    for (size_t j = 0; j < result.pods.size(); ++j) {
      std::string mark = result.cells[i][j].allowed ? "." : "X";
      size_t col = result.pods[j].size();
      absl::StrAppend(&out, " ", std::string((col - 1) / 2, ' '), mark,
                      std::string(col - 1 - (col - 1) / 2, ' '));
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "(rows: from, columns: to; . allowed, X denied)\n");
  if (explain) {
    for (size_t i = 0; i < result.pods.size(); ++i) {
      for (size_t j = 0; j < result.pods.size(); ++j) {
        const ProbeCell& c = result.cells[i][j];
        absl::StrAppend(&out, result.pods[i], " -> ", result.pods[j], ": ",
                        c.allowed ? "allowed" : "denied", " (", c.explanation, ")\n");
      }
    }
  }
  return out;
}

nlohmann::json ProbeJson(const ProbeResult& result) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t i = 0; i < result.pods.size(); ++i) {
    nlohmann::json row = nlohmann::json::object();
    for (size_t j = 0; j < result.pods.size(); ++j) {
      row[result.pods[j]] = result.cells[i][j].allowed;
    }
    out[result.pods[i]] = std::move(row);
  }
  return out;
}

}  // namespace dpv2::agent
