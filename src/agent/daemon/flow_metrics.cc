#include "agent/daemon/flow_metrics.h"

#include <optional>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace dpv2::agent::daemon {
namespace {

// The local pod at `ip`, if any.
std::optional<HeldPod> LocalPodAt(const IpAddr& ip, const ClusterView& view) {
  std::optional<HeldPod> pod = view.policy().FindPodByIp(ip);
  if (!pod || !view.LocalEndpointOf(absl::StrCat(pod->namespace_name, "/", pod->name))) {
    return std::nullopt;
  }
  return pod;
}

// The metric labels of a pod: namespace, name, workload kind and name.
std::tuple<std::string, std::string, std::string, std::string> PodLabels(const HeldPod& pod) {
  return {std::string(pod.namespace_name), std::string(pod.name), std::string(pod.workload_kind),
          std::string(pod.workload_name)};
}

}  // namespace

void FlowMetrics::Record(const std::vector<FlowEvent>& events, const ClusterView& view) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const FlowEvent& ev : events) {
    if (ev.type == DPV2_EVENT_POLICY_VERDICT) {
      bool egress = ev.flags & DPV2_EV_F_EGRESS;
      // The pod where the policy was enforced: the sender for egress, the
      // receiver (the backend, after DNAT) for ingress.
      const std::optional<HeldPod> pod = LocalPodAt(egress ? ev.tuple.src : ev.tuple.dst, view);
      if (!pod) {
        continue;
      }
      ++policy_events_[std::tuple_cat(
          PodLabels(*pod),
          std::make_tuple(std::string((ev.flags & DPV2_EV_F_ALLOWED) ? "allow" : "deny"),
                          std::string(egress ? "egress" : "ingress")))];
      continue;
    }
    bool is_new_flow = ev.type == DPV2_EVENT_TRACE && (ev.flags & DPV2_EV_F_NEW) &&
                       !(ev.flags & DPV2_EV_F_REPLY);
    bool is_drop = ev.type == DPV2_EVENT_DROP;
    if (!is_new_flow && !is_drop) {
      continue;
    }
    std::string verdict = is_drop ? "dropped" : "forwarded";
    ++flows_[{is_drop ? "DROPPED" : "FORWARDED",
              is_drop ? std::string(DropReasonName(ev.drop_reason)) : ""}];
    if (const std::optional<HeldPod> src = LocalPodAt(ev.tuple.src, view)) {
      ++egress_flows_[std::tuple_cat(PodLabels(*src), std::make_tuple(verdict))];
    }
    if (const std::optional<HeldPod> dst = LocalPodAt(ev.tuple.dst, view)) {
      ++ingress_flows_[std::tuple_cat(PodLabels(*dst), std::make_tuple(verdict))];
    }
  }
}

void FlowMetrics::Write(PrometheusText& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  out.Family("policy_event_count", "counter",
             "Network policy verdicts (one per new connection and enforced direction), by the "
             "pod where the policy was enforced.");
  for (const auto& [k, n] : policy_events_) {
    const auto& [ns, pod, kind, workload, verdict, direction] = k;
    out.Sample("policy_event_count",
               {{"policy_enforced_namespace", ns},
                {"policy_enforced_pod", pod},
                {"workload_kind", kind},
                {"workload_name", workload},
                {"verdict", verdict},
                {"direction", direction}},
               static_cast<double>(n));
  }
  auto pod_flows = [&out](const char* name, const char* help,
                          const std::map<PodFlowKey, uint64_t>& counts) {
    out.Family(name, "counter", help);
    for (const auto& [k, n] : counts) {
      const auto& [ns, pod, kind, workload, verdict] = k;
      out.Sample(name,
                 {{"namespace_name", ns},
                  {"pod_name", pod},
                  {"workload_kind", kind},
                  {"workload_name", workload},
                  {"verdict", verdict}},
                 static_cast<double>(n));
    }
  };
  pod_flows("pod_flow_ingress_flows_count", "New flows into a local pod, by verdict.",
            ingress_flows_);
  pod_flows("pod_flow_egress_flows_count", "New flows out of a local pod, by verdict.",
            egress_flows_);
  out.Family("dpv2_flows_total", "counter",
             "New flows and drops seen in datapath events, by verdict and drop reason.");
  for (const auto& [k, n] : flows_) {
    out.Sample("dpv2_flows_total", {{"verdict", k.first}, {"reason", k.second}},
               static_cast<double>(n));
  }
}

}  // namespace dpv2::agent::daemon
