// Per-pod flow and policy counters the agent derives from datapath events,
// under the names GKE Dataplane V2 exports, so that existing dashboards read
// them: `policy_event_count` (one per policy verdict, labelled with the pod
// where the policy was enforced, its workload, the verdict and direction)
// and `pod_flow_ingress_flows_count` / `pod_flow_egress_flows_count` (new
// flows per local pod and verdict). Also dpv2's own flow totals by verdict and
// drop reason. Label values come from the view (pods by address), so a flow
// of a pod that is gone is attributed to nobody rather than to a stale name.
//
//   FlowMetrics metrics;
//   metrics.Record(events, view);
//   metrics.Write(prometheus_text);
#ifndef DPV2_AGENT_DAEMON_FLOW_METRICS_H_
#define DPV2_AGENT_DAEMON_FLOW_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "agent/cluster_view.h"
#include "agent/daemon/prometheus_text.h"
#include "dpv2/backend.h"

namespace dpv2::agent::daemon {

class FlowMetrics {
 public:
  // Called on the reconcile loop with the state held.
  void Record(const std::vector<FlowEvent>& events, const ClusterView& view);
  // Thread-safe: /metrics calls it from the HTTP thread.
  void Write(PrometheusText& out) const;

 private:
  // (namespace, pod, workload_kind, workload_name, verdict, direction)
  using PolicyKey = std::tuple<std::string, std::string, std::string, std::string, std::string,
                               std::string>;
  // (namespace, pod, workload_kind, workload_name, verdict)
  using PodFlowKey = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  // (verdict, drop reason)
  using FlowKey = std::pair<std::string, std::string>;

  mutable std::mutex mu_;
  std::map<PolicyKey, uint64_t> policy_events_;
  std::map<PodFlowKey, uint64_t> ingress_flows_;
  std::map<PodFlowKey, uint64_t> egress_flows_;
  std::map<FlowKey, uint64_t> flows_;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_FLOW_METRICS_H_
