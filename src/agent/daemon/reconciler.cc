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

ReconcileReport Reconciler::Reconcile(uint64_t generation, absl::Time first_change) {
  std::lock_guard<std::mutex> state(state_mu_);
  ReconcileReport report{.generation = generation};
  absl::Time started = absl::Now();
  absl::StatusOr<k8s::ClusterObjects> snapshot = options_.snapshot();
  if (!snapshot.ok()) {
    report.status = snapshot.status();
    report.source_not_ready = absl::IsUnavailable(report.status);
  } else {
    k8s::ClusterObjects& objects = *snapshot;
    report.problems = objects.errors;
    // Resolve every local pod first; hold back those that cannot be reached.
    if (options_.resolve_endpoint) {
      resolved_->clear();
      const std::string& node = view_.node().name;
      for (auto it = objects.pods.begin(); it != objects.pods.end();) {
        const PodInfo& info = it->second.info;
        bool local = !node.empty() && info.node_name == node && !info.host_network &&
                     !info.ips.empty();
        if (!local) {
          ++it;
          continue;
        }
        absl::StatusOr<LocalEndpoint> ep = options_.resolve_endpoint(it->second);
        if (ep.ok()) {
          (*resolved_)[it->first] = *ep;
          ++it;
          continue;
        }
        report.waiting_pods.push_back(absl::StrCat(it->first, ": ", ep.status().message()));
        if (auto prev = applied_pods_.find(it->first); prev != applied_pods_.end()) {
          it->second = prev->second.pod;
          (*resolved_)[it->first] = prev->second.endpoint;
          ++it;
        } else {
          it = objects.pods.erase(it);
        }
      }
    }
    view_.Update(objects);
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
    if (report.status.ok()) {
      ChangeBatch pending = view_.PendingChanges();
      report.changes = pending.size();
      report.summary = pending.Summary();
      report.status = view_.ApplyTo(*backend_);
    }
    if (report.status.ok()) {
      std::map<std::string, AppliedPod> applied;
      for (const auto& [key, ep] : *resolved_) {
        if (auto it = objects.pods.find(key); it != objects.pods.end()) {
          applied[key] = AppliedPod{.pod = it->second, .endpoint = ep};
        }
      }
      applied_pods_ = std::move(applied);
    }
  }
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
