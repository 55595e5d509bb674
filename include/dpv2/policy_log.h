// dpv2 policy logging: GKE's NetworkLogging, in GKE's record format.
//
// The datapath emits one POLICY_VERDICT event per new connection and enforced
// direction. PolicyLogger turns those events into GKE policy log records
// (one JSON object per line, keys in GKE's order), applying the cluster's
// NetworkLogging object (networking.gke.io/v1alpha1, name "default"): the
// allow/deny log switches, delegation to annotated NetworkPolicies and
// namespaces, deny aggregation (5 s, keyed on the tuple without source port,
// at most 3000 keys) and a per-node rate limit (500 records/s, no burst).
// Over a limit a record is dropped and counted by reason. RotatingLogFile
// writes the lines to /var/log/network/policy_action.log style files,
// rotating at 10 MB and keeping 5 old files.
//
// The limiter and the deny windows run on event time (FlowEvent::timestamp_ns,
// the datapath clock), not on the time an event is read: the agent drains the
// ring buffer in batches, and a batch of events that happened over 100 ms must
// keep up to 50 records, not one. Record timestamps are event times converted
// to wall time with one offset between the two clocks, re-read at each Tick.
// Both clocks are injectable so that tests drive windows and buckets exactly.
//
//   dpv2::PolicyLogger logger({.node_name = "node-1"}, &policy_state, sink);
//   DPV2_RETURN_IF_ERROR(logger.SetConfig(network_logging));
//   for (const dpv2::FlowEvent& ev : drained) logger.Handle(ev);  logger.Tick();
#ifndef DPV2_POLICY_LOG_H_
#define DPV2_POLICY_LOG_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "dpv2/backend.h"
#include "dpv2/policy.h"
#include "dpv2/policy_state.h"

namespace dpv2 {

// Delegation annotations.
inline constexpr absl::string_view kEnableLoggingAnnotation =
    "policy.network.gke.io/enable-logging";  // on a NetworkPolicy: "true"
inline constexpr absl::string_view kEnableDenyLoggingAnnotation =
    "policy.network.gke.io/enable-deny-logging";  // on a Namespace: "true"

struct NetworkLoggingAction {
  bool log = false;
  bool delegate = false;  // needs log: true
};

struct NetworkLoggingCluster {
  NetworkLoggingAction allow;
  NetworkLoggingAction deny;
};

struct NetworkLoggingSpec {
  NetworkLoggingCluster cluster;
};

// kind NetworkLogging, apiVersion networking.gke.io/v1alpha1, cluster-scoped.
struct NetworkLogging {
  ObjectMeta metadata;  // name must be "default"
  NetworkLoggingSpec spec;
};

// "networklogging default: spec.cluster.deny.delegate needs log: true".
absl::Status ValidateNetworkLogging(const NetworkLogging& config);

// One side of a connection in a record. A pod fills the pod fields, a node
// node_name + workload_kind "Node", anything else only instance (its IP).
struct PolicyLogEndpoint {
  std::string pod_name;
  std::string node_name;
  std::string workload_kind;
  std::string workload_name;
  std::string pod_namespace;
  std::string namespace_name;  // JSON "namespace"
  std::string instance;
};

struct PolicyLogRecord {
  IpAddr src_ip;
  IpAddr dest_ip;
  uint16_t src_port = 0;
  uint16_t dest_port = 0;
  L4Proto protocol = L4Proto::kTCP;
  bool egress = false;   // direction, seen from the enforcing pod
  bool allowed = false;  // disposition
  std::vector<PolicyRef> policies;  // omitted on deny
  PolicyLogEndpoint src;
  PolicyLogEndpoint dest;
  uint64_t count = 1;
  std::string node_name;  // omitted when empty
  absl::Time timestamp;
};

// One line, no trailing newline, GKE's key order:
// connection{src_ip,dest_ip,src_port,dest_port,protocol,direction},
// disposition, policies[{kind,name,namespace}], src, dest, count, node_name,
// timestamp (RFC 3339, nanoseconds, UTC). Empty fields are omitted.
std::string FormatPolicyLogRecord(const PolicyLogRecord& record);

// Records per second with no burst: a token is worth 1/rate seconds and the
// bucket holds one, so records are spaced by at least 1/rate. `at` is when
// the record's event happened; a time before the latest one seen adds no
// token and does not move the limiter's clock back (events of several CPUs
// arrive slightly out of order).
class LogRateLimiter {
 public:
  explicit LogRateLimiter(double per_second) : per_second_(per_second) {}
  bool Allow(absl::Time at);

 private:
  double per_second_;
  double tokens_ = 1.0;
  std::optional<absl::Time> last_;
};

// Size-rotated log file: at max_bytes, file -> file.1 -> ... -> file.N
// (the oldest beyond max_backups is removed).
class RotatingLogFile {
 public:
  static absl::StatusOr<std::unique_ptr<RotatingLogFile>> Open(std::string path,
                                                               uint64_t max_bytes = 10 << 20,
                                                               int max_backups = 5);
  ~RotatingLogFile();
  absl::Status WriteLine(absl::string_view line);  // appends '\n'
  const std::string& path() const { return path_; }

 private:
  RotatingLogFile(std::string path, uint64_t max_bytes, int max_backups)
      : path_(std::move(path)), max_bytes_(max_bytes), max_backups_(max_backups) {}
  absl::Status Reopen();
  absl::Status Rotate();

  std::string path_;
  uint64_t max_bytes_;
  int max_backups_;
  std::FILE* file_ = nullptr;
  uint64_t size_ = 0;
};

struct PolicyLoggerOptions {
  std::string node_name;     // this node (records' node_name when log_node_name)
  bool log_node_name = true;
  double max_log_rate = 500;                        // records per second, no burst
  absl::Duration deny_aggregation = absl::Seconds(5);
  size_t deny_aggregation_keys = 3000;
  // Wall clock, for record timestamps only.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // The clock of FlowEvent::timestamp_ns, in ns. Empty: CLOCK_MONOTONIC,
  // which both the sim (by default) and the BPF programs (bpf_ktime_get_ns,
  // without the kEbpfClockOffsetNs of conntrack times) stamp events with.
  std::function<uint64_t()> datapath_clock;
  // An event stamped after the datapath's now, or more than this before it,
  // carries a time no datapath produced: it is taken as happening now (and
  // counted), so one bad stamp can neither stall the limiter nor reopen
  // windows long closed.
  absl::Duration max_event_age = absl::Minutes(5);
};

struct PolicyLoggerStats {
  uint64_t logged = 0;
  uint64_t dropped_rate_limit = 0;         // "rate_limit"
  uint64_t dropped_aggregation_limit = 0;  // "aggregation_limit"
  uint64_t aggregated = 0;                 // denies merged into an earlier record
  uint64_t not_logged = 0;  // verdicts the config does not ask for (off, delegation, unmatched)
  uint64_t bad_timestamps = 0;  // events in the future or older than max_event_age
};

class PolicyLogger {
 public:
  using Sink = std::function<void(absl::string_view line)>;

  // `state` resolves pods, namespaces and match ids; it must outlive the logger.
  PolicyLogger(PolicyLoggerOptions options, const PolicyState* state, Sink sink);

  // The NetworkLogging "default" object; absent (never set or cleared) = off.
  absl::Status SetConfig(const NetworkLogging& config);
  void ClearConfig();

  // Takes a decoded datapath event; ignores anything but POLICY_VERDICT.
  // Deny windows that ended before the event's time are emitted first, so a
  // batch spanning a window's end is handled as if read event by event.
  void Handle(const FlowEvent& event);
  // Emits deny aggregates whose window has ended by the datapath's now, and
  // re-reads the offset between the wall and datapath clocks. Call
  // periodically, right after handling a drained batch.
  void Tick();
  // Emits every pending aggregate as if its window had ended (shutdown).
  void Flush();

  const PolicyLoggerStats& stats() const { return stats_; }

 private:
  struct DenyKey {
    IpAddr src, dst;
    uint16_t dport;
    uint8_t proto;
    bool egress;
    friend bool operator==(const DenyKey&, const DenyKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const DenyKey& k) {
      return H::combine(std::move(h), k.src, k.dst, k.dport, k.proto, k.egress);
    }
  };
  // Deny windows in the order they end (seq breaks ties: first opened first).
  struct WindowEnd {
    absl::Time deadline;  // datapath time
    uint64_t seq;
    DenyKey key;
    bool operator>(const WindowEnd& o) const {
      return deadline != o.deadline ? deadline > o.deadline : seq > o.seq;
    }
  };

  PolicyLogEndpoint Describe(const IpAddr& ip) const;
  // The datapath clock now, as an absl::Time counted from its own epoch.
  absl::Time DatapathNow() const;
  // The event's datapath time, or now for a stamp no datapath produced.
  absl::Time EventTime(uint64_t timestamp_ns, absl::Time now);
  // Emits the deny aggregates whose window ended at or before `t`.
  void EmitWindowsEndedBy(absl::Time t);
  // `at`: the datapath time the record is charged to the limiter at.
  void Emit(const PolicyLogRecord& record, absl::Time at);

  PolicyLoggerOptions options_;
  const PolicyState* state_;
  Sink sink_;
  std::optional<NetworkLoggingSpec> config_;
  LogRateLimiter limiter_;
  absl::Duration wall_offset_;  // wall time - datapath time
  absl::flat_hash_map<DenyKey, PolicyLogRecord> pending_;
  std::priority_queue<WindowEnd, std::vector<WindowEnd>, std::greater<WindowEnd>> window_ends_;
  uint64_t next_seq_ = 0;
  PolicyLoggerStats stats_;
};

}  // namespace dpv2

#endif  // DPV2_POLICY_LOG_H_
