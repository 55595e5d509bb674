#include "agent/daemon/reconciler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/core/status_macros.h"

namespace dpv2::agent::daemon {

void Debouncer::Changed(absl::Time now) {
  if (first_ == absl::InfinitePast()) {
    first_ = now;
  }
  last_ = now;
}

std::optional<absl::Time> Debouncer::Deadline() const {
  if (first_ == absl::InfinitePast()) {
    return std::nullopt;
  }
  return std::min(last_ + quiet_, first_ + max_delay_);
}

bool Debouncer::Due(absl::Time now) const {
  std::optional<absl::Time> d = Deadline();
  return d && now >= *d;
}

void Debouncer::Reset() {
  first_ = absl::InfinitePast();
  last_ = absl::InfinitePast();
}

absl::StatusOr<std::unique_ptr<Reconciler>> Reconciler::Create(ClusterViewOptions view_options,
                                                               Backend* backend,
                                                               ReconcilerOptions options) {
  auto resolved = std::make_shared<ResolvedEndpoints>();
  if (options.resolve_endpoint) {
    // Reconcile() resolves every local pod before Update(); the view only
    // looks the answer up, so it never sees a half-resolved pod.
    view_options.local_endpoint = [resolved](const PodInfo& pod) -> std::optional<LocalEndpoint> {
      auto it = resolved->find(absl::StrCat(pod.namespace_name, "/", pod.name));
      if (it == resolved->end()) {
        return std::nullopt;
      }
      return it->second;
    };
  }
  DPV2_ASSIGN_OR_RETURN(ClusterView view, ClusterView::Create(std::move(view_options)));
  return std::unique_ptr<Reconciler>(
      new Reconciler(std::move(view), std::move(resolved), backend, std::move(options)));
}

Reconciler::Reconciler(ClusterView view, std::shared_ptr<ResolvedEndpoints> resolved,
                       Backend* backend, ReconcilerOptions options)
    : options_(std::move(options)),
      backend_(backend),
      view_(std::move(view)),
      resolved_(std::move(resolved)),
      debouncer_(options_.debounce, options_.max_delay) {}

Reconciler::~Reconciler() { Stop(); }

void Reconciler::Notify() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  stats_.notified_generation = generation_;
  debouncer_.Changed(absl::Now());
  wake_.notify_all();
}

void Reconciler::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!thread_.joinable() && !stopping_) {
    thread_ = std::thread([this] { Run(); });
  }
}

void Reconciler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Reconciler::WithState(const std::function<void(ClusterView&, Backend&)>& fn) {
  std::lock_guard<std::mutex> lock(state_mu_);
  fn(view_, *backend_);
}

ReconcilerStats Reconciler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

ReconcileReport Reconciler::ReconcileNow() {
  uint64_t generation;
  absl::Time first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = generation_;
    first = debouncer_.first_change();
    debouncer_.Reset();
    retry_at_.reset();
  }
  return Reconcile(generation, first == absl::InfinitePast() ? absl::Now() : first);
}

void Reconciler::Run() {
  absl::Time next_tick = absl::Now() + options_.tick;
  absl::Time next_gc = absl::Now() + options_.gc_interval;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    absl::Time wake_at = next_tick;
    if (std::optional<absl::Time> d = debouncer_.Deadline()) {
      wake_at = std::min(wake_at, *d);
    }
    if (retry_at_) {
      wake_at = std::min(wake_at, *retry_at_);
    }
    absl::Time now = absl::Now();
    if (wake_at > now) {
      wake_.wait_for(lock, absl::ToChronoNanoseconds(wake_at - now));
      continue;  // recompute: a Notify may have moved the deadline
    }
    if (debouncer_.Due(now) || (retry_at_ && now >= *retry_at_)) {
      uint64_t generation = generation_;
      absl::Time first = debouncer_.first_change();
      if (first == absl::InfinitePast()) {
        first = now;  // a retry: its latency counts from now
      }
      debouncer_.Reset();
      retry_at_.reset();
      lock.unlock();
      Reconcile(generation, first);
      lock.lock();
      continue;
    }
    if (now >= next_tick) {
      next_tick = now + options_.tick;
      bool gc = now >= next_gc;
      if (gc) {
        next_gc = now + options_.gc_interval;
      }
      lock.unlock();
      {
        std::lock_guard<std::mutex> state(state_mu_);
        PumpEvents();
        if (gc) {
          absl::StatusOr<GcStats> st = backend_->CollectGarbage();
          std::lock_guard<std::mutex> l(mu_);
          ++stats_.gc_runs;
          if (st.ok()) {
            stats_.last_gc = *st;
          }
        }
        if (options_.on_tick) {
          options_.on_tick(view_, *backend_);
        }
      }
      lock.lock();
    }
  }
}

void Reconciler::PumpEvents() {
  size_t drained = 0;
  while (drained < options_.max_events_per_tick) {
    absl::StatusOr<std::vector<FlowEvent>> events = backend_->DrainEvents(1024);
    if (!events.ok() || events->empty()) {
      break;
    }
    drained += events->size();
    if (options_.on_events) {
      options_.on_events(*events, view_);
    }
  }
  if (drained > 0) {
    std::lock_guard<std::mutex> l(mu_);
    stats_.events += drained;
  }
}

bool Reconciler::IsLocal(const k8s::PodObject& pod) const {
  const std::string& node = view_.node().name;
  const PodInfo& info = pod.info;
  return !node.empty() && info.node_name == node && !info.host_network && !info.ips.empty();
}

bool Reconciler::ResolveOrHold(const std::string& key, k8s::PodObject& pod,
                               ReconcileReport& report) {
  absl::StatusOr<LocalEndpoint> ep = options_.resolve_endpoint(pod);
  if (ep.ok()) {
    (*resolved_)[key] = *ep;
    return true;
  }
  report.waiting_pods.push_back(absl::StrCat(key, ": ", ep.status().message()));
  if (auto prev = applied_pods_.find(key); prev != applied_pods_.end()) {
    pod = prev->second.pod;
    (*resolved_)[key] = prev->second.endpoint;
    return true;
  }
  resolved_->erase(key);
  return false;
}

void Reconciler::UpdateWhole(k8s::ClusterObjects& objects, ReconcileReport& report) {
  report.problems = objects.errors;
  // Resolve every local pod first; hold back those that cannot be reached.
  if (options_.resolve_endpoint) {
    resolved_->clear();
    for (auto it = objects.pods.begin(); it != objects.pods.end();) {
      if (!IsLocal(it->second) || ResolveOrHold(it->first, it->second, report)) {
        ++it;
      } else {
        it = objects.pods.erase(it);
      }
    }
  }
  const absl::Time t = absl::Now();
  view_.Update(objects);
  report.update_time = absl::Now() - t;
}

void Reconciler::UpdateChanges(ObjectChanges& changes, ReconcileReport& report) {
  report.change_set = true;
  report.problems = changes.changed.errors;
  // Only changed pods are resolved: the others keep the endpoint resolved
  // by the last whole reconcile (or change) that named them.
  if (options_.resolve_endpoint) {
    for (const std::string& key : changes.removed.pods) {
      resolved_->erase(key);
    }
    std::map<std::string, k8s::PodObject>& pods = changes.changed.pods;
    for (auto it = pods.begin(); it != pods.end();) {
      if (!IsLocal(it->second)) {
        resolved_->erase(it->first);
        ++it;
      } else if (ResolveOrHold(it->first, it->second, report)) {
        ++it;
      } else {
        // Never applied: left out, as a whole snapshot would leave it out.
        changes.removed.pods.push_back(it->first);
        it = pods.erase(it);
      }
    }
  }
  const absl::Time t = absl::Now();
  view_.Update(changes);
  report.update_time = absl::Now() - t;
}

void Reconciler::RememberApplied(const std::map<std::string, k8s::PodObject>* whole,
                                 const ObjectChanges* changes) {
  if (whole != nullptr) {
    applied_pods_.clear();
  }
  const std::map<std::string, k8s::PodObject>& pods = whole ? *whole : changes->changed.pods;
  if (changes != nullptr) {
    for (const std::string& key : changes->removed.pods) {
      applied_pods_.erase(key);
    }
  }
  for (const auto& [key, pod] : pods) {
    if (auto ep = resolved_->find(key); ep != resolved_->end()) {
      applied_pods_[key] = AppliedPod{.pod = pod, .endpoint = ep->second};
    } else {
      applied_pods_.erase(key);
    }
  }
}

ReconcileReport Reconciler::Reconcile(uint64_t generation, absl::Time first_change) {
  std::lock_guard<std::mutex> state(state_mu_);
  ReconcileReport report{.generation = generation};
  absl::Time started = absl::Now();
  std::optional<ObjectChanges> changes;
  std::optional<k8s::ClusterObjects> whole;
  if (options_.take_changes && !needs_whole_) {
    absl::StatusOr<std::optional<ObjectChanges>> taken = options_.take_changes();
    if (!taken.ok()) {
      report.status = taken.status();
    } else {
      changes = std::move(*taken);
    }
  }
  if (report.status.ok() && !changes) {
    absl::StatusOr<k8s::ClusterObjects> snapshot = options_.snapshot();
    if (snapshot.ok()) {
      whole = std::move(*snapshot);
    } else {
      report.status = snapshot.status();
    }
  }
  report.source_not_ready = absl::IsUnavailable(report.status);
  report.take_time = absl::Now() - started;
  if (report.status.ok()) {
    if (changes) {
      UpdateChanges(*changes, report);
    } else {
      UpdateWhole(*whole, report);
    }
    for (const std::string& p : view_.problems()) {
      report.problems.push_back(p);
    }
    if (!adopted_ && options_.adopt) {
      // A failed adoption is reported, not fatal: the apply that follows
      // then rewrites the whole datapath instead of its differences.
      report.adopt_status = options_.adopt(view_, *backend_);
      report.adopted = report.adopt_status.ok();
    }
    adopted_ = true;
    const absl::Time t = absl::Now();
    ChangeBatch attempted;
    report.status = view_.ApplyTo(*backend_, &attempted);
    report.apply_to_time = absl::Now() - t;
    report.changes = attempted.size();
    report.summary = attempted.Summary();
    if (report.status.ok()) {
      RememberApplied(whole ? &whole->pods : nullptr, changes ? &*changes : nullptr);
    }
  }
  needs_whole_ = !report.status.ok() || !report.waiting_pods.empty();
  absl::Time done = absl::Now();
  report.apply_time = done - started;
  report.latency = done - first_change;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.reconciles;
    stats_.waiting_pods = report.waiting_pods.size();
    stats_.healthy = report.status.ok();
    if (report.status.ok()) {
      stats_.applied_generation = generation;
    } else {
      ++stats_.failures;
    }
    // Failures and held-back pods are retried; a source that is not ready
    // will Notify when it is.
    bool retry = (!report.status.ok() && !report.source_not_ready) ||
                 !report.waiting_pods.empty();
    if (retry && !stopping_) {
      retry_at_ = done + options_.retry;
      wake_.notify_all();
    }
  }
  if (options_.on_reconciled) {
    options_.on_reconciled(report, view_, *backend_);
  }
  return report;
}

}  // namespace dpv2::agent::daemon
