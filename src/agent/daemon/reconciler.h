// The agent's reconcile loop: the one thread that owns a ClusterView and the
// Backend it programs. Sources only say "something changed" (Notify); the
// loop waits for a short quiet period so that a burst of changes becomes one
// batch (Debouncer), takes one consistent snapshot of the objects, resolves
// how each local pod is reached, updates the view and applies the difference.
// A source that records what changed (API watches) hands over only that
// (take_changes), so one endpoint change costs one Service's work, not a
// comparison of the whole cluster; whole snapshots remain for the first
// reconcile, after a relist, after a failure and while pods are held back.
// Snapshots are numbered, so a newer state is never followed by an older one.
// The same thread drains datapath events and collects conntrack garbage.
// Everything else that reads the view or the backend (metrics, the control
// socket) goes through WithState, which serializes with the loop.
//
// A local pod whose interface cannot be resolved yet is held back, not half
// applied: a pod already programmed keeps its previous state, a new one is
// left out entirely, and the loop retries it after `retry`.
//
//   auto r = Reconciler::Create({.node_name = "node-a"}, backend.get(),
//                               {.snapshot = [&] { return source.Load(); }});
//   (*r)->Start();  (*r)->Notify();  (*r)->WithState([](ClusterView& v, Backend& b) { ... });
#ifndef DPV2_AGENT_DAEMON_RECONCILER_H_
#define DPV2_AGENT_DAEMON_RECONCILER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "dpv2/backend.h"

namespace dpv2::agent::daemon {

// When to apply after changes: `quiet` after the last one, but no later than
// `max_delay` after the first one, so a steady stream still gets applied.
class Debouncer {
 public:
  Debouncer(absl::Duration quiet, absl::Duration max_delay)
      : quiet_(quiet), max_delay_(max_delay) {}

  void Changed(absl::Time now);
  // When the pending changes are due; nullopt when none are pending.
  std::optional<absl::Time> Deadline() const;
  bool Due(absl::Time now) const;
  // The pending changes were taken; the next Changed() starts a new burst.
  void Reset();
  // Time of the first change of the pending burst (InfinitePast if none).
  absl::Time first_change() const { return first_; }

 private:
  absl::Duration quiet_;
  absl::Duration max_delay_;
  absl::Time first_ = absl::InfinitePast();
  absl::Time last_ = absl::InfinitePast();
};

// What one reconcile did.
struct ReconcileReport {
  uint64_t generation = 0;  // of the snapshot applied
  size_t changes = 0;       // batch operations applied
  std::string summary;      // ChangeBatch::Summary()
  absl::Duration latency;   // first change noticed -> applied
  absl::Duration apply_time;  // snapshot -> applied (this reconcile's own cost)
  // Its phases: taking the objects from the source, ClusterView::Update,
  // and ApplyTo (the core's diff and Backend::Apply).
  absl::Duration take_time, update_time, apply_to_time;
  bool change_set = false;  // the source handed a change set, not a whole snapshot
  absl::Status status;      // of the snapshot or the apply
  // The source had no consistent snapshot yet (an API source before its
  // first LIST): not retried on a timer, the source's next Notify brings it.
  bool source_not_ready = false;
  // "default/web-1: interface veth-web1 not found", held back and retried.
  std::vector<std::string> waiting_pods;
  std::vector<std::string> problems;  // ClusterView::problems() + decoding errors
  // The first reconcile adopts what the datapath holds (options.adopt):
  // adopted says it did; adopt_status why not (the apply then wrote everything).
  bool adopted = false;
  absl::Status adopt_status;
};

struct ReconcilerOptions {
  // One consistent object set; Unavailable means "not ready yet" (an API
  // source before its first complete LIST) and is retried on the next Notify.
  std::function<absl::StatusOr<k8s::ClusterObjects>()> snapshot;
  // Optional, for sources that record what changed (ApiObjects): what changed
  // since the previous snapshot or take, nullopt when only a snapshot will do
  // (a relist). `changed.errors` are those of every object. A snapshot must
  // start a new record, so that the next take holds only later changes.
  std::function<absl::StatusOr<std::optional<ObjectChanges>>()> take_changes;
  // How a local pod is reached. Empty: ClusterView's synthetic endpoints (sim).
  std::function<absl::StatusOr<LocalEndpoint>(const k8s::PodObject&)> resolve_endpoint;
  // Called once, after the first Update and before the first apply, to learn
  // what a (pinned) datapath already holds so that only the difference is
  // written. Empty, or on error: the first apply writes everything.
  std::function<absl::Status(ClusterView&, Backend&)> adopt;
  // Called on the loop thread with the state held after every reconcile.
  std::function<void(const ReconcileReport&, ClusterView&, Backend&)> on_reconciled;
  // Called on the loop thread with the state held for every drained batch.
  std::function<void(const std::vector<FlowEvent>&, ClusterView&)> on_events;
  // Called on the loop thread with the state held every `tick` (logger windows).
  std::function<void(ClusterView&, Backend&)> on_tick;

  absl::Duration debounce = absl::Milliseconds(50);
  absl::Duration max_delay = absl::Milliseconds(500);
  absl::Duration retry = absl::Seconds(1);
  absl::Duration tick = absl::Milliseconds(100);
  absl::Duration gc_interval = absl::Seconds(30);
  size_t max_events_per_tick = 16384;
};

struct ReconcilerStats {
  uint64_t notified_generation = 0;
  uint64_t applied_generation = 0;
  uint64_t reconciles = 0;
  uint64_t failures = 0;
  uint64_t events = 0;
  uint64_t gc_runs = 0;
  GcStats last_gc;
  size_t waiting_pods = 0;
  bool healthy = true;  // the last reconcile applied everything it had
};

class Reconciler {
 public:
  // Creates the ClusterView (its local_endpoint is replaced by
  // options.resolve_endpoint when that is set). `backend` must outlive it.
  static absl::StatusOr<std::unique_ptr<Reconciler>> Create(ClusterViewOptions view_options,
                                                            Backend* backend,
                                                            ReconcilerOptions options);
  ~Reconciler();  // stops
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Something changed: a new snapshot will be taken after the debounce.
  void Notify();
  void Start();
  // Stops the loop; the datapath keeps what was applied.
  void Stop();

  // One reconcile now, on the calling thread (serialized with the loop):
  // what --once and tests use. Returns the report of that reconcile.
  ReconcileReport ReconcileNow();

  // Runs `fn` with the view and the backend, serialized with the loop.
  void WithState(const std::function<void(ClusterView&, Backend&)>& fn);
  ReconcilerStats stats() const;

 private:
  using ResolvedEndpoints = std::map<std::string, LocalEndpoint>;  // pod key -> endpoint
  Reconciler(ClusterView view, std::shared_ptr<ResolvedEndpoints> resolved, Backend* backend,
             ReconcilerOptions options);
  void Run();
  ReconcileReport Reconcile(uint64_t generation, absl::Time first_change);
  // The objects of one reconcile into the view: a whole set or a change set.
  void UpdateWhole(k8s::ClusterObjects& objects, ReconcileReport& report);
  void UpdateChanges(ObjectChanges& changes, ReconcileReport& report);
  // Resolves a local pod's endpoint; when it cannot be, keeps the version
  // applied before (true) or says it must be left out (false).
  bool ResolveOrHold(const std::string& key, k8s::PodObject& pod, ReconcileReport& report);
  bool IsLocal(const k8s::PodObject& pod) const;
  // After a successful apply: the local pods applied and how they are
  // reached, from a whole pod set or patched by a change set.
  void RememberApplied(const std::map<std::string, k8s::PodObject>* whole,
                       const ObjectChanges* changes);
  void PumpEvents();

  ReconcilerOptions options_;
  Backend* backend_;

  std::mutex state_mu_;  // the view, the backend and the fields below
  ClusterView view_;
  bool adopted_ = false;
  // The next reconcile takes a whole snapshot: the first one, after a failed
  // one and while pods are held back (they are resolved again from it).
  bool needs_whole_ = true;
  struct AppliedPod {
    k8s::PodObject pod;
    LocalEndpoint endpoint;
  };
  std::map<std::string, AppliedPod> applied_pods_;
  std::shared_ptr<ResolvedEndpoints> resolved_;  // read by the view's local_endpoint

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable wake_;
  Debouncer debouncer_;
  uint64_t generation_ = 0;
  std::optional<absl::Time> retry_at_;
  bool stopping_ = false;
  ReconcilerStats stats_;
  std::thread thread_;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_RECONCILER_H_
