#include "agent/control/flow_hub.h"

#include <algorithm>
#include <deque>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"

namespace dpv2::agent {
namespace {

std::string PodKey(const std::optional<HeldPod>& pod) {
  return pod ? absl::StrCat(pod->namespace_name, "/", pod->name) : "";
}

std::string NamespaceOf(const std::string& pod_key) {
  size_t slash = pod_key.find('/');
  return slash == std::string::npos ? "" : pod_key.substr(0, slash);
}

bool PodMatches(const std::string& want, const std::string& pod_key,
                const std::optional<std::string>& namespace_name) {
  if (pod_key.empty()) {
    return false;
  }
  if (want.find('/') != std::string::npos) {
    return pod_key == want;
  }
  size_t slash = pod_key.find('/');
  if (namespace_name && pod_key.substr(0, slash) != *namespace_name) {
    return false;
  }
  return pod_key.substr(slash + 1) == want;
}

absl::string_view EventKind(uint8_t type) {
  switch (type) {
    case DPV2_EVENT_DROP:
      return "drop";
    case DPV2_EVENT_TRACE:
      return "trace";
    case DPV2_EVENT_POLICY_VERDICT:
      return "policy-verdict";
    default:
      return "unknown";
  }
}

absl::string_view ObservationPoint(uint8_t obs) {
  switch (obs) {
    case DPV2_OBS_FROM_POD:
      return "from-pod";
    case DPV2_OBS_TO_POD:
      return "to-pod";
    case DPV2_OBS_FROM_NETWORK:
      return "from-network";
    default:
      return "unknown";
  }
}

std::string TcpFlagsText(uint8_t flags) {
  static constexpr std::pair<uint8_t, const char*> kNames[] = {
      {0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x20, "URG"}};
  std::vector<std::string> names;
  for (const auto& [bit, name] : kNames) {
    if (flags & bit) {
      names.push_back(name);
    }
  }
  return absl::StrJoin(names, "|");
}

std::string HostPort(const std::string& ip, int port) {
  return ip.find(':') != std::string::npos ? absl::StrCat("[", ip, "]:", port)
                                           : absl::StrCat(ip, ":", port);
}

// service_id -> "namespace/name" for every frontend of the view.
absl::flat_hash_map<uint32_t, std::string> ServiceNames(const ClusterView& view) {
  absl::flat_hash_map<uint32_t, std::string> names;
  for (const FrontendView& f : view.lb().Frontends()) {
    names.emplace(f.service_id, f.service);
  }
  return names;
}

FlowRecord Enrich(const FlowEvent& event, const ClusterView& view,
                  const absl::flat_hash_map<uint32_t, std::string>& services, absl::Time now) {
  FlowRecord r{.event = event, .time = now};
  r.source_pod = PodKey(view.policy().FindPodByIp(event.tuple.src));
  r.destination_pod = PodKey(view.policy().FindPodByIp(event.tuple.dst));
  r.source_namespace = NamespaceOf(r.source_pod);
  r.destination_namespace = NamespaceOf(r.destination_pod);
  if (event.service_id != 0) {
    if (auto it = services.find(event.service_id); it != services.end()) {
      r.service = it->second;
    }
  }
  r.verdict = std::string(FlowVerdict(event));
  return r;
}

}  // namespace

absl::string_view FlowVerdict(const FlowEvent& event) {
  switch (event.type) {
    case DPV2_EVENT_DROP:
      return "DROPPED";
    case DPV2_EVENT_POLICY_VERDICT:
      return (event.flags & DPV2_EV_F_ALLOWED) ? "FORWARDED" : "DROPPED";
    default:
      return "FORWARDED";
  }
}

FlowRecord EnrichFlow(const FlowEvent& event, const ClusterView& view) {
  return Enrich(event, view, ServiceNames(view), absl::Now());
}

std::vector<FlowRecord> EnrichFlows(const std::vector<FlowEvent>& events,
                                    const ClusterView& view) {
  std::vector<FlowRecord> out;
  if (events.empty()) {
    return out;
  }
  const absl::flat_hash_map<uint32_t, std::string> services = ServiceNames(view);
  const absl::Time now = absl::Now();
  out.reserve(events.size());
  for (const FlowEvent& e : events) {
    out.push_back(Enrich(e, view, services, now));
  }
  return out;
}

absl::Status FlowFilter::Validate() const {
  if (pod && (pod->empty() || pod->front() == '/' || pod->back() == '/' ||
              std::count(pod->begin(), pod->end(), '/') > 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter pod \"", *pod, "\": expected NAME or NAMESPACE/NAME"));
  }
  if (namespace_name && (namespace_name->empty() ||
                         namespace_name->find('/') != std::string::npos)) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter namespace \"", *namespace_name, "\": not a namespace name"));
  }
  if (verdict) {
    std::string v = absl::AsciiStrToUpper(*verdict);
    if (v != "FORWARDED" && v != "DROPPED") {
      return absl::InvalidArgumentError(
          absl::StrCat("filter verdict \"", *verdict, "\": expected FORWARDED or DROPPED"));
    }
  }
  if (port && *port == 0) {
    return absl::InvalidArgumentError("filter port 0: expected 1-65535");
  }
  return absl::OkStatus();
}

bool FlowFilter::Matches(const FlowRecord& r) const {
  if (pod && !PodMatches(*pod, r.source_pod, namespace_name) &&
      !PodMatches(*pod, r.destination_pod, namespace_name)) {
    return false;
  }
  if (namespace_name && !pod && r.source_namespace != *namespace_name &&
      r.destination_namespace != *namespace_name) {
    return false;
  }
  if (verdict && absl::AsciiStrToUpper(*verdict) != r.verdict) {
    return false;
  }
  if (port && r.event.tuple.sport != *port && r.event.tuple.dport != *port &&
      !((r.event.flags & DPV2_EV_F_TRANSLATED) && r.event.orig_dport == *port)) {
    return false;
  }
  return true;
}

// ---- the hub -----------------------------------------------------------------

namespace {

// One observer: a bounded queue drained by its own thread, so that a slow
// callback only ever delays (and loses records of) itself.
class Subscriber {
 public:
  Subscriber(FlowFilter filter, FlowHub::Callback callback, size_t capacity)
      : filter_(std::move(filter)), callback_(std::move(callback)), capacity_(capacity) {}

  const FlowFilter& filter() const { return filter_; }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  // Never waits for the callback: a full queue loses the record.
  void Offer(const FlowRecord& record) {
    absl::MutexLock lock(&mu_);
    if (stopping_ || finished_) {
      return;
    }
    if (queue_.size() >= capacity_) {
      ++lost_;
      return;
    }
    queue_.push_back(record);
  }

  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();  // Unsubscribe from inside the callback: Run ends by itself
      } else {
        thread_.join();
      }
    }
  }

 private:
  void Run() {
    while (true) {
      FlowRecord record;
      uint64_t lost = 0;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Subscriber* s) { return s->stopping_ || !s->queue_.empty(); }, this));
        if (stopping_) {
          finished_ = true;
          return;
        }
        record = std::move(queue_.front());
        queue_.pop_front();
        lost = std::exchange(lost_, 0);
      }
      if (!callback_(FlowDelivery{.record = record, .lost = lost})) {
        absl::MutexLock lock(&mu_);
        finished_ = true;
        queue_.clear();
        return;
      }
    }
  }

  const FlowFilter filter_;
  const FlowHub::Callback callback_;
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<FlowRecord> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t lost_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

struct FlowHub::State {
  FlowHubOptions options;
  mutable absl::Mutex mu;
  std::deque<FlowRecord> ring ABSL_GUARDED_BY(mu);
  std::map<uint64_t, std::shared_ptr<Subscriber>> subscribers ABSL_GUARDED_BY(mu);
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  uint64_t published ABSL_GUARDED_BY(mu) = 0;
};

FlowHub::FlowHub(FlowHubOptions options) : state_(std::make_unique<State>()) {
  state_->options = options;
  state_->options.subscriber_queue = std::max<size_t>(1, options.subscriber_queue);
}

FlowHub::~FlowHub() {
  std::map<uint64_t, std::shared_ptr<Subscriber>> subscribers;
  {
    absl::MutexLock lock(&state_->mu);
    subscribers.swap(state_->subscribers);
  }
  for (auto& [id, sub] : subscribers) {
    sub->Stop();
  }
}

absl::StatusOr<uint64_t> FlowHub::Subscribe(FlowSubscription subscription, Callback callback) {
  if (absl::Status s = subscription.filter.Validate(); !s.ok()) {
    return s;
  }
  if (!callback) {
    return absl::InvalidArgumentError("flow subscription: no callback");
  }
  auto sub = std::make_shared<Subscriber>(subscription.filter, std::move(callback),
                                          state_->options.subscriber_queue);
  uint64_t id = 0;
  {
    absl::MutexLock lock(&state_->mu);
    if (subscription.since > absl::ZeroDuration()) {
      const absl::Time from = absl::Now() - subscription.since;
      for (const FlowRecord& r : state_->ring) {
        if (r.time >= from && sub->filter().Matches(r)) {
          sub->Offer(r);
        }
      }
    }
    id = state_->next_id++;
    state_->subscribers.emplace(id, sub);
  }
  sub->Start();
  return id;
}

void FlowHub::Unsubscribe(uint64_t id) {
  std::shared_ptr<Subscriber> sub;
  {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->subscribers.find(id);
    if (it == state_->subscribers.end()) {
      return;
    }
    sub = std::move(it->second);
    state_->subscribers.erase(it);
  }
  sub->Stop();
}

void FlowHub::Publish(FlowRecord record) {
  std::vector<std::shared_ptr<Subscriber>> finished;
  {
    absl::MutexLock lock(&state_->mu);
    ++state_->published;
    for (auto it = state_->subscribers.begin(); it != state_->subscribers.end();) {
      if (it->second->finished()) {
        finished.push_back(std::move(it->second));
        it = state_->subscribers.erase(it);
        continue;
      }
      if (it->second->filter().Matches(record)) {
        it->second->Offer(record);
      }
      ++it;
    }
    if (state_->options.ring_capacity > 0) {
      if (state_->ring.size() >= state_->options.ring_capacity) {
        state_->ring.pop_front();
      }
      state_->ring.push_back(std::move(record));
    }
  }
  // Their threads have returned (finished is their last act): joining is quick.
  for (auto& sub : finished) {
    sub->Stop();
  }
}

size_t FlowHub::subscriber_count() const {
  absl::MutexLock lock(&state_->mu);
  size_t n = 0;
  for (const auto& [id, sub] : state_->subscribers) {
    n += sub->finished() ? 0 : 1;
  }
  return n;
}

uint64_t FlowHub::published() const {
  absl::MutexLock lock(&state_->mu);
  return state_->published;
}

// ---- formats -------------------------------------------------------------------

nlohmann::json FlowJson(const FlowRecord& r) {
  const FlowEvent& e = r.event;
  auto side = [](const IpAddr& ip, uint16_t port, const std::string& pod, uint32_t identity) {
    nlohmann::json j = {{"ip", ip.ToString()}, {"port", port}, {"identity", identity}};
    if (!pod.empty()) {
      j["pod"] = pod;
      j["namespace"] = NamespaceOf(pod);
    }
    return j;
  };
  nlohmann::json j = {
      {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", r.time, absl::UTCTimeZone())},
      {"verdict", r.verdict},
      {"type", std::string(EventKind(e.type))},
      {"protocol", std::string(L4ProtoName(e.tuple.proto))},
      {"source", side(e.tuple.src, e.tuple.sport, r.source_pod, e.src_identity)},
      {"destination", side(e.tuple.dst, e.tuple.dport, r.destination_pod, e.dst_identity)},
      {"observation_point", std::string(ObservationPoint(e.obs_point))},
      {"ifindex", e.ifindex},
      {"is_reply", (e.flags & DPV2_EV_F_REPLY) != 0},
  };
  if (e.type == DPV2_EVENT_DROP) {
    j["drop_reason"] = std::string(DropReasonName(e.drop_reason));
  }
  if (e.type == DPV2_EVENT_POLICY_VERDICT) {
    j["direction"] = (e.flags & DPV2_EV_F_EGRESS) ? "egress" : "ingress";
  }
  if (e.flags & DPV2_EV_F_TRANSLATED) {
    j["frontend"] = HostPort(e.orig_dst.ToString(), e.orig_dport);
  }
  if (!r.service.empty()) {
    j["service"] = r.service;
  }
  if (e.tuple.proto == L4Proto::kTCP && e.tcp_flags != 0) {
    j["tcp_flags"] = TcpFlagsText(e.tcp_flags);
  }
  std::vector<std::string> flags;
  if (e.flags & DPV2_EV_F_NEW) {
    flags.push_back("new");
  }
  if (e.flags & DPV2_EV_F_TRANSLATED) {
    flags.push_back("translated");
  }
  if (e.flags & DPV2_EV_F_REJECTED) {
    flags.push_back("rejected");
  }
  j["flags"] = flags;
  return j;
}

std::string FlowText(const nlohmann::json& flow) {
  auto str = [](const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto side = [&](const nlohmann::json& s) {
    std::string addr = HostPort(str(s, "ip"), s.value("port", 0));
    std::string pod = str(s, "pod");
    return pod.empty() ? addr : absl::StrCat(pod, " (", addr, ")");
  };
  std::string time = str(flow, "time");
  // "2026-11-26T20:01:02.123456789Z" -> "20:01:02.123"
  std::string clock = time.size() >= 23 ? time.substr(11, 12) : time;
  std::string line = absl::StrCat(clock, " ", side(flow.value("source", nlohmann::json::object())),
                                  " -> ", side(flow.value("destination", nlohmann::json::object())),
                                  " ", str(flow, "protocol"));
  if (std::string tcp = str(flow, "tcp_flags"); !tcp.empty()) {
    absl::StrAppend(&line, " ", tcp);
  }
  if (std::string svc = str(flow, "service"); !svc.empty()) {
    absl::StrAppend(&line, " service ", svc);
    if (std::string fe = str(flow, "frontend"); !fe.empty()) {
      absl::StrAppend(&line, " (", fe, ")");
    }
  } else if (std::string fe = str(flow, "frontend"); !fe.empty()) {
    absl::StrAppend(&line, " via ", fe);
  }
  absl::StrAppend(&line, " ", str(flow, "type"));
  if (std::string dir = str(flow, "direction"); !dir.empty()) {
    absl::StrAppend(&line, " ", dir);
  }
  if (flow.value("is_reply", false)) {
    absl::StrAppend(&line, " reply");
  }
  absl::StrAppend(&line, " ", str(flow, "verdict"));
  if (std::string reason = str(flow, "drop_reason"); !reason.empty()) {
    absl::StrAppend(&line, " (", reason, ")");
  }
  return line;
}

}  // namespace dpv2::agent
