// FlowHub: the agent's live flow stream (what `dpv2ctl observe` shows). The
// daemon drains datapath events, turns each into a FlowRecord with what the
// agent knows (pods, namespaces, Service) and publishes it; observers
// subscribe with a FlowFilter and receive matching records on their own
// thread. Like Hubble, the hub keeps the last `ring_capacity` records so a
// new observer can start from the recent past (`--since`).
//
// Publish never waits for a subscriber: each one has a bounded queue, and a
// record that does not fit is dropped for that subscriber and counted
// (`lost`, reported with the next record delivered).
//
//   FlowHub hub;
//   uint64_t id = hub.Subscribe({.filter = {.namespace_name = "x"}},
//                               [](const FlowDelivery& d) { Print(d.record); return true; });
//   hub.Publish(EnrichFlow(event, view));
#ifndef DPV2_AGENT_CONTROL_FLOW_HUB_H_
#define DPV2_AGENT_CONTROL_FLOW_HUB_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/cluster_view.h"
#include "dpv2/backend.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {

// A datapath event plus what the agent knows about its endpoints.
struct FlowRecord {
  FlowEvent event;
  absl::Time time;              // wall clock when the agent read the event
  std::string source_pod;       // "namespace/name" or "" (not a known pod)
  std::string destination_pod;  // after DNAT: the backend pod
  std::string source_namespace;
  std::string destination_namespace;
  std::string service;  // "namespace/name" of event.service_id, or ""
  // Hubble's words: "FORWARDED" (a trace, or a policy verdict that allowed)
  // or "DROPPED" (a drop, or a policy verdict that denied).
  std::string verdict;
};

// Hubble-like verdict of an event ("FORWARDED" or "DROPPED").
absl::string_view FlowVerdict(const FlowEvent& event);

// Fills a FlowRecord from the view: pods by address (ipcache of the view's
// PolicyState), the Service whose frontend carries event.service_id.
FlowRecord EnrichFlow(const FlowEvent& event, const ClusterView& view);
// The same for a drained batch: the Service names are looked up once.
std::vector<FlowRecord> EnrichFlows(const std::vector<FlowEvent>& events,
                                    const ClusterView& view);

// Which flows an observer wants; every set field must match (AND). As with
// `hubble observe`, pod and namespace match either side of the flow.
struct FlowFilter {
  // "namespace/name" (exact), or "name" (that pod name in any namespace, or
  // in `namespace_name` when both are set).
  std::optional<std::string> pod;
  std::optional<std::string> namespace_name;
  std::optional<std::string> verdict;  // "FORWARDED" | "DROPPED", any case
  // Matches the source or destination port, or the Service port before DNAT.
  std::optional<uint16_t> port;

  // InvalidArgument naming the field ("filter verdict \"maybe\": ...").
  absl::Status Validate() const;
  bool Matches(const FlowRecord& record) const;
};

struct FlowSubscription {
  FlowFilter filter;
  // Replay the retained records this recent before live ones (0: none).
  absl::Duration since = absl::ZeroDuration();
};

// What a subscriber receives: a record, and how many records this
// subscriber lost (its queue was full) since the previous delivery.
struct FlowDelivery {
  const FlowRecord& record;
  uint64_t lost = 0;
};

struct FlowHubOptions {
  size_t ring_capacity = 4095;       // retained records (Hubble's default)
  size_t subscriber_queue = 1024;    // per subscriber, before records are lost
};

class FlowHub {
 public:
  // Called on the subscriber's own thread; returning false unsubscribes.
  using Callback = std::function<bool(const FlowDelivery&)>;

  explicit FlowHub(FlowHubOptions options = {});
  ~FlowHub();  // unsubscribes everyone (joins their threads)
  FlowHub(const FlowHub&) = delete;
  FlowHub& operator=(const FlowHub&) = delete;

  // InvalidArgument if the filter does not validate. Returns an id > 0.
  absl::StatusOr<uint64_t> Subscribe(FlowSubscription subscription, Callback callback);
  // Stops delivery and waits until the callback is no longer running (never
  // call it from inside that subscriber's callback: return false instead).
  // Unknown ids are ignored.
  void Unsubscribe(uint64_t id);
  // Retains the record and queues it for each matching subscriber.
  void Publish(FlowRecord record);

  size_t subscriber_count() const;
  uint64_t published() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One flow as JSON (the `observe --output json` line) and as one readable
// line; the text is made from the JSON so both ends of the socket agree.
nlohmann::json FlowJson(const FlowRecord& record);
std::string FlowText(const nlohmann::json& flow);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_CONTROL_FLOW_HUB_H_
