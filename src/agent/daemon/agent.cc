#include "agent/daemon/agent.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/control/control_server.h"
#include "agent/control/flow_hub.h"
#include "agent/daemon/api_objects.h"
#include "agent/daemon/flow_metrics.h"
#include "agent/daemon/health.h"
#include "agent/daemon/http_server.h"
#include "agent/daemon/pod_interfaces.h"
#include "agent/daemon/prometheus_text.h"
#include "agent/manifest_source.h"
#include "dpv2/policy_log.h"
#include "src/core/status_macros.h"

namespace dpv2::agent::daemon {

std::vector<ApiWatch> WatchAll(const apiserver::ClientConfig& config) {
  std::vector<ApiWatch> out;
  for (const apiserver::ApiResource& r : apiserver::WatchedResources()) {
    out.push_back({.resource = r, .config = config});
  }
  return out;
}

struct Agent::State {
  AgentOptions options;
  Backend* backend;
  StructuredLog* log;

  std::unique_ptr<Reconciler> reconciler;
  ProxyHealth proxy_health;
  HttpServer http;
  int metrics_listener = 0;
  int healthz_listener = 0;
  std::unique_ptr<HealthCheckPorts> health_ports;
  FlowHub flows;
  std::unique_ptr<ControlServer> control;
  FlowMetrics flow_metrics;

  // Policy logging: used on the loop thread only (state held).
  std::unique_ptr<RotatingLogFile> policy_log_file;
  std::unique_ptr<PolicyLogger> policy_logger;
  // The PolicyState the logger reads: ClusterView::Adopt replaces the view's
  // state, and the logger must then be rebuilt on the new one.
  const PolicyState* logged_policy = nullptr;
  std::optional<k8s::NetworkLoggingObject> logging_config;

  // Sources.
  std::mutex source_mu;  // the manifest source (Load on the loop, Changed on the poller)
  std::unique_ptr<ManifestSource> manifests;
  std::vector<std::unique_ptr<apiserver::Reflector>> reflectors;
  // The reflectors' objects, decoded once per watch event.
  std::unique_ptr<ApiObjects> api_objects;
  std::thread poller;
  std::mutex poller_mu;
  std::condition_variable poller_wake;
  bool poller_stop = false;

  // Reconcile results for /metrics and for logging only what changed.
  mutable std::mutex metrics_mu;
  LatencyHistogram reconcile_latency = LatencyHistogram::ForReconcile();
  uint64_t applied_changes = 0;
  std::optional<uint64_t> adopted_changes;  // changes of the apply after adoption
  uint64_t reconcile_success = 0;
  uint64_t reconcile_failure = 0;
  uint64_t manifest_reads = 0;
  std::vector<std::string> last_problems;
  std::vector<std::string> last_waiting;
  std::string last_error;

  bool started = false;
  bool stopped = false;

  State(AgentOptions o, Backend* b, StructuredLog* l)
      : options(std::move(o)),
        backend(b),
        log(l),
        proxy_health({.timeout = options.health_timeout}) {}

  void Notify() {
    proxy_health.QueuedUpdate(absl::Now());
    reconciler->Notify();
  }

  absl::StatusOr<k8s::ClusterObjects> Snapshot();
  void OnReconciled(const ReconcileReport& report, ClusterView& view);
  void OnEvents(const std::vector<FlowEvent>& events, ClusterView& view);
  void UpdateLoggingConfig(const ClusterView& view);
  void MakePolicyLogger(const ClusterView& view);
  std::string MetricsText();
  void PollManifests();
  void StartSources() {
    if (sources_started) {
      return;
    }
    sources_started = true;
    for (auto& r : reflectors) {
      r->Start();
    }
  }
  bool sources_started = false;
};

absl::StatusOr<k8s::ClusterObjects> Agent::State::Snapshot() {
  if (manifests) {
    std::lock_guard<std::mutex> lock(source_mu);
    absl::StatusOr<k8s::ClusterObjects> objects = manifests->Load();
    std::lock_guard<std::mutex> m(metrics_mu);
    ++manifest_reads;
    return objects;
  }
  // Unavailable until every resource completed a LIST: a view built from
  // half the cluster (Services without their EndpointSlices, policies
  // without pods) would program wrong verdicts.
  return api_objects->Snapshot();
}

void Agent::State::UpdateLoggingConfig(const ClusterView& view) {
  if (!policy_logger) {
    return;
  }
  const std::optional<k8s::NetworkLoggingObject>& want = view.objects().network_logging;
  auto same = [](const k8s::NetworkLoggingObject& a, const k8s::NetworkLoggingObject& b) {
    return a.allow_log == b.allow_log && a.allow_delegate == b.allow_delegate &&
           a.deny_log == b.deny_log && a.deny_delegate == b.deny_delegate;
  };
  if (want.has_value() == logging_config.has_value() &&
      (!want || same(*want, *logging_config))) {
    return;
  }
  if (!want) {
    policy_logger->ClearConfig();
    log->Info("policy logging off (no NetworkLogging default)");
  } else {
    NetworkLogging config{
        .metadata = {.name = "default"},
        .spec = {.cluster = {.allow = {.log = want->allow_log, .delegate = want->allow_delegate},
                             .deny = {.log = want->deny_log, .delegate = want->deny_delegate}}}};
    if (absl::Status s = policy_logger->SetConfig(config); !s.ok()) {
      log->Warn("NetworkLogging not applied", {{"error", std::string(s.message())}});
      return;
    }
    log->Info("policy logging configured", {{"allow", want->allow_log},
                                            {"allow_delegate", want->allow_delegate},
                                            {"deny", want->deny_log},
                                            {"deny_delegate", want->deny_delegate}});
  }
  logging_config = want;
}

void Agent::State::MakePolicyLogger(const ClusterView& view) {
  policy_logger = std::make_unique<PolicyLogger>(
      // The logger limits and aggregates by event timestamps, whose clock is
      // CLOCK_MONOTONIC on every backend the agent runs (the sim's default
      // clock; the BPF programs stamp events with bpf_ktime_get_ns, without
      // the offset conntrack times carry): the logger's default clock.
      PolicyLoggerOptions{.node_name = options.node_name},
      &view.policy(),
      [this](absl::string_view line) {
        if (absl::Status st = policy_log_file->WriteLine(line); !st.ok()) {
          log->Warn("policy log write failed", {{"error", std::string(st.message())}});
        }
      });
  logged_policy = &view.policy();
  logging_config.reset();  // the new logger has no config yet
}

void Agent::State::OnReconciled(const ReconcileReport& report, ClusterView& view) {
  if (policy_logger && logged_policy != &view.policy()) {
    MakePolicyLogger(view);
  }
  absl::Time now = absl::Now();
  bool applied = report.status.ok();
  if (applied) {
    proxy_health.Updated(now);
    if (health_ports) {
      health_ports->Sync(view.lb().HealthChecks());
    }
    UpdateLoggingConfig(view);
  }
  if (options.adopt && (report.adopted || !report.adopt_status.ok())) {
    if (report.adopted) {
      log->Info("adopted the running datapath; applying only the differences",
                {{"changes", report.changes}, {"batch", report.summary}});
    } else {
      log->Warn("datapath not adopted; rewriting it whole",
                {{"error", std::string(report.adopt_status.message())}});
    }
  }
  std::lock_guard<std::mutex> lock(metrics_mu);
  if (report.adopted) {
    adopted_changes = report.changes;
  }
  if (applied) {
    ++reconcile_success;
    applied_changes += report.changes;
    reconcile_latency.Observe(absl::ToDoubleSeconds(report.latency));
    if (report.changes > 0 || report.adopted) {
      log->Info("reconciled", {{"generation", report.generation},
                               {"changes", report.changes},
                               {"batch", report.summary},
                               {"adopted", report.adopted},
                               {"latency_ms", absl::ToDoubleMilliseconds(report.latency)},
                               {"apply_ms", absl::ToDoubleMilliseconds(report.apply_time)}});
    }
    last_error.clear();
  } else {
    ++reconcile_failure;
    std::string error(report.status.message());
    if (error != last_error) {
      (report.source_not_ready ? log->Info("not reconciled yet", {{"why", error}})
                                          : log->Error("reconcile failed",
                                                       {{"generation", report.generation},
                                                        {"error", error}}));
      last_error = error;
    }
  }
  // Problems and held-back pods are logged when they change, not every retry.
  if (report.waiting_pods != last_waiting) {
    for (const std::string& w : report.waiting_pods) {
      log->Warn("local pod held back until its interface is ready", {{"pod", w}});
    }
    last_waiting = report.waiting_pods;
  }
  if (applied && report.problems != last_problems) {
    for (const std::string& p : report.problems) {
      log->Warn("object not applied", {{"problem", p}});
    }
    last_problems = report.problems;
  }
}

void Agent::State::OnEvents(const std::vector<FlowEvent>& events, ClusterView& view) {
  if (policy_logger) {
    for (const FlowEvent& ev : events) {
      policy_logger->Handle(ev);
    }
  }
  flow_metrics.Record(events, view);
  for (FlowRecord& record : EnrichFlows(events, view)) {
    flows.Publish(std::move(record));
  }
}

std::string Agent::State::MetricsText() {
  PrometheusText out;
  absl::StatusOr<Counters> counters = absl::UnavailableError("not read");
  size_t frontends = 0, backends = 0, endpoints = 0, policy_entries = 0, identities = 0;
  std::set<uint32_t> tables;
  PolicyLoggerStats logger_stats;
  reconciler->WithState([&](ClusterView& view, Backend& backend) {
    counters = backend.ReadCounters();
    std::vector<FrontendView> fronts = view.lb().Frontends();
    frontends = fronts.size();
    for (const FrontendView& f : fronts) {
      if (f.table_id != 0) {
        tables.insert(f.table_id);
      }
    }
    backends = view.lb().Backends().size();
    view.policy().ForEachPod([&](const HeldPod& pod) {
      endpoints +=
          view.LocalEndpointOf(absl::StrCat(pod.namespace_name, "/", pod.name)).has_value();
    });
    policy_entries = view.policy().policy_entry_count();
    identities = view.policy().identity_count();
    if (policy_logger) {
      logger_stats = policy_logger->stats();
    }
  });
  ReconcilerStats rs = reconciler->stats();

  out.Family("dpv2_agent_info", "gauge", "The agent's node and backend.");
  out.Sample("dpv2_agent_info", {{"node", options.node_name}, {"backend", options.backend_name}},
             1);
  if (counters.ok()) {
    out.Family("dpv2_datapath_packets_total", "counter",
               "Packets by the datapath's verdict (pass to the stack, redirect to a pod, "
               "transmit back, drop).");
    for (auto [verdict, c] : {std::pair{"pass", DPV2_CNT_PASSED},
                              std::pair{"redirect", DPV2_CNT_REDIRECTED},
                              std::pair{"tx", DPV2_CNT_TX}, std::pair{"drop", DPV2_CNT_DROPPED}}) {
      out.Sample("dpv2_datapath_packets_total", {{"verdict", verdict}},
                 static_cast<double>(counters->counter(c)));
    }
    out.Family("dpv2_datapath_counter_total", "counter", "Every datapath counter, by name.");
    for (int c = 0; c < DPV2_CNT_MAX; ++c) {
      auto id = static_cast<dpv2_counter>(c);
      out.Sample("dpv2_datapath_counter_total", {{"counter", std::string(CounterName(id))}},
                 static_cast<double>(counters->counter(id)));
    }
    out.Family("dpv2_drop_count_total", "counter", "Packets dropped by the datapath, by reason.");
    for (int r = 1; r < DPV2_DROP_MAX; ++r) {
      auto id = static_cast<dpv2_drop_reason>(r);
      out.Sample("dpv2_drop_count_total", {{"reason", std::string(DropReasonName(id))}},
                 static_cast<double>(counters->drop(id)));
    }
  }
  const DatapathConfig& cfg = options.lb.datapath;
  struct Fill {
    const char* map;
    double entries;
    double capacity;
  };
  // Conntrack is counted by the last GC (entries scanned minus deleted).
  double ct_entries = static_cast<double>(rs.last_gc.scanned - rs.last_gc.deleted);
  const Fill fills[] = {
      {"services", double(frontends), double(cfg.max_services)},
      {"backends", double(backends), double(cfg.max_backends)},
      {"lookup_tables", double(tables.size()), double(cfg.max_tables)},
      {"endpoints", double(endpoints), double(cfg.max_endpoints)},
      {"policy", double(policy_entries), double(cfg.max_policy_entries)},
      {"conntrack", ct_entries, double(cfg.ct_tcp_entries) + double(cfg.ct_other_entries)}};
  out.Family("dpv2_map_entries", "gauge",
             "Entries the agent has programmed per datapath map (conntrack: after the last GC).");
  for (const Fill& f : fills) {
    out.Sample("dpv2_map_entries", {{"map", f.map}}, f.entries);
  }
  out.Family("dpv2_map_capacity", "gauge", "Configured capacity per datapath map.");
  for (const Fill& f : fills) {
    out.Sample("dpv2_map_capacity", {{"map", f.map}}, f.capacity);
  }

  PrometheusText& rest = out;
  rest.Family("dpv2_identities", "gauge", "Security identities allocated.");
  rest.Sample("dpv2_identities", {}, static_cast<double>(identities));
  {
    std::lock_guard<std::mutex> lock(metrics_mu);
    rest.Family("dpv2_reconcile_duration_seconds", "histogram",
                "From the first change noticed to the datapath holding it.");
    reconcile_latency.Write(rest, "dpv2_reconcile_duration_seconds");
    rest.Family("dpv2_reconciles_total", "counter", "Reconciles, by result.");
    rest.Sample("dpv2_reconciles_total", {{"result", "success"}},
                static_cast<double>(reconcile_success));
    rest.Sample("dpv2_reconciles_total", {{"result", "failure"}},
                static_cast<double>(reconcile_failure));
    rest.Family("dpv2_applied_changes_total", "counter",
                "Datapath map operations applied by reconciles.");
    rest.Sample("dpv2_applied_changes_total", {}, static_cast<double>(applied_changes));
    if (adopted_changes) {
      rest.Family("dpv2_restart_adopted_changes", "gauge",
                  "Map operations the first apply after adopting a running datapath needed "
                  "(0: the datapath already held this agent's state).");
      rest.Sample("dpv2_restart_adopted_changes", {}, static_cast<double>(*adopted_changes));
    }
    rest.Family("dpv2_objects_with_problems", "gauge",
                "Objects left out: invalid, or rejected by the core.");
    rest.Sample("dpv2_objects_with_problems", {}, static_cast<double>(last_problems.size()));
    if (manifests) {
      rest.Family("dpv2_manifest_reads_total", "counter", "Reads of the manifest path.");
      rest.Sample("dpv2_manifest_reads_total", {}, static_cast<double>(manifest_reads));
    }
  }
  rest.Family("dpv2_pods_waiting_for_interface", "gauge",
              "Local pods held back because their interface is not there yet.");
  rest.Sample("dpv2_pods_waiting_for_interface", {}, static_cast<double>(rs.waiting_pods));
  rest.Family("dpv2_datapath_events_total", "counter", "Datapath events drained.");
  rest.Sample("dpv2_datapath_events_total", {}, static_cast<double>(rs.events));
  rest.Family("dpv2_conntrack_gc_runs_total", "counter", "Conntrack garbage collections.");
  rest.Sample("dpv2_conntrack_gc_runs_total", {}, static_cast<double>(rs.gc_runs));

  if (!reflectors.empty()) {
    std::vector<std::pair<std::string, apiserver::WatchState>> states;
    for (const auto& r : reflectors) {
      states.emplace_back(r->resource().plural, r->State());
    }
    auto gauge = [&](const char* name, const char* help, auto value) {
      rest.Family(name, "gauge", help);
      for (const auto& [res, st] : states) {
        rest.Sample(name, {{"resource", res}}, static_cast<double>(value(st)));
      }
    };
    auto counter = [&](const char* name, const char* help, auto value) {
      rest.Family(name, "counter", help);
      for (const auto& [res, st] : states) {
        rest.Sample(name, {{"resource", res}}, static_cast<double>(value(st)));
      }
    };
    using WS = apiserver::WatchState;
    gauge("dpv2_api_watch_connected", "A watch stream is open.",
          [](const WS& s) { return s.connected; });
    gauge("dpv2_api_watch_synced", "The resource completed a LIST.",
          [](const WS& s) { return s.synced; });
    gauge("dpv2_api_watch_last_event_age_seconds",
          "Seconds since the last event or bookmark (-1: none yet).", [](const WS& s) {
            return s.last_event_time == absl::InfinitePast()
                       ? -1.0
                       : absl::ToDoubleSeconds(absl::Now() - s.last_event_time);
          });
    counter("dpv2_api_watch_lists_total", "Complete LISTs.", [](const WS& s) { return s.lists; });
    counter("dpv2_api_watch_relists_total", "LISTs forced by 410 Gone.",
            [](const WS& s) { return s.relists; });
    counter("dpv2_api_watch_reconnects_total", "Watch restarts from a known resourceVersion.",
            [](const WS& s) { return s.reconnects; });
    counter("dpv2_api_watch_stalls_total", "Watches ended by stall detection.",
            [](const WS& s) { return s.stalls; });
    counter("dpv2_api_watch_errors_total", "Failed requests and malformed events.",
            [](const WS& s) { return s.errors; });
    counter("dpv2_api_watch_events_total", "Watch events applied.",
            [](const WS& s) { return s.events; });
    rest.Family("dpv2_api_objects_decoded_total", "counter",
                "API objects decoded: once per object added or changed, never per reconcile.");
    rest.Sample("dpv2_api_objects_decoded_total", {},
                static_cast<double>(api_objects->decoded()));
  }
  if (policy_logger) {
    rest.Family("policy_logging_records_total", "counter", "Policy log records written.");
    rest.Sample("policy_logging_records_total", {}, static_cast<double>(logger_stats.logged));
    rest.Family("policy_logging_dropped_total", "counter", "Policy log records dropped, by reason.");
    rest.Sample("policy_logging_dropped_total", {{"reason", "rate_limit"}},
                static_cast<double>(logger_stats.dropped_rate_limit));
    rest.Sample("policy_logging_dropped_total", {{"reason", "aggregation_limit"}},
                static_cast<double>(logger_stats.dropped_aggregation_limit));
    rest.Family("policy_logging_aggregated_total", "counter",
                "Denies merged into an earlier record.");
    rest.Sample("policy_logging_aggregated_total", {},
                static_cast<double>(logger_stats.aggregated));
    rest.Family("policy_logging_bad_timestamps_total", "counter",
                "Verdict events stamped in the future or over 5 min ago, taken as now.");
    rest.Sample("policy_logging_bad_timestamps_total", {},
                static_cast<double>(logger_stats.bad_timestamps));
  }
  flow_metrics.Write(rest);
  return out.text();
}

void Agent::State::PollManifests() {
  std::unique_lock<std::mutex> lock(poller_mu);
  while (!poller_stop) {
    poller_wake.wait_for(lock, absl::ToChronoNanoseconds(options.manifest_poll));
    if (poller_stop) {
      break;
    }
    bool changed;
    {
      std::lock_guard<std::mutex> s(source_mu);
      changed = manifests->Changed();
    }
    if (changed) {
      Notify();
    }
  }
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions options, Backend* backend,
                                                     StructuredLog* log) {
  if (options.manifests.empty() == options.api_watches.empty()) {
    return absl::InvalidArgumentError(
        "agent options: give exactly one source (manifests or api_watches)");
  }
  if (backend == nullptr || log == nullptr) {
    return absl::InvalidArgumentError("agent options: backend and log are required");
  }
  auto state = std::make_unique<State>(std::move(options), backend, log);
  State* s = state.get();
  const AgentOptions& o = s->options;
  ReconcilerOptions ro{
      .snapshot = [s] { return s->Snapshot(); },
      .adopt = o.adopt,
      .on_reconciled = [s](const ReconcileReport& r, ClusterView& v,
                           Backend&) { s->OnReconciled(r, v); },
      .on_events = [s](const std::vector<FlowEvent>& e, ClusterView& v) { s->OnEvents(e, v); },
      .on_tick =
          [s](ClusterView&, Backend&) {
            if (s->policy_logger) {
              s->policy_logger->Tick();
            }
          },
      .debounce = o.debounce,
      .max_delay = o.max_delay,
      .retry = o.retry,
      .gc_interval = o.gc_interval,
  };
  if (!o.api_watches.empty()) {
    // Between whole snapshots, only what the watches changed goes to the view.
    ro.take_changes = [s] { return s->api_objects->TakeChanges(); };
  }
  if (o.resolve_pod_interfaces) {
    auto links = std::make_shared<NetlinkLinks>();
    ro.resolve_endpoint = [links](const k8s::PodObject& pod) {
      return ResolvePodEndpoint(pod, *links);
    };
  }
  DPV2_ASSIGN_OR_RETURN(s->reconciler,
                        Reconciler::Create({.node_name = o.node_name, .lb = o.lb}, backend,
                                           std::move(ro)));
  if (!o.manifests.empty()) {
    s->manifests = std::make_unique<ManifestSource>(o.manifests);
  }
  if (!o.api_watches.empty()) {
    std::vector<apiserver::ApiResource> resources;
    for (const ApiWatch& w : o.api_watches) {
      resources.push_back(w.resource);
    }
    s->api_objects = std::make_unique<ApiObjects>(std::move(resources));
  }
  for (size_t i = 0; i < o.api_watches.size(); ++i) {
    const ApiWatch& w = o.api_watches[i];
    apiserver::ReflectorOptions watch = o.reflector;
    watch.resource = w.resource;
    s->reflectors.push_back(std::make_unique<apiserver::Reflector>(
        w.config, watch, [s, i](const apiserver::ReflectorUpdate& u) {
          // Decoded here, on the reflector's thread, once per event: the
          // reconcile only copies decoded objects.
          s->api_objects->Apply(i, u);
          if (!u.deltas.empty() || u.synced) {
            s->Notify();
          }
        }));
  }
  if (!o.policy_log.empty()) {
    DPV2_ASSIGN_OR_RETURN(s->policy_log_file, RotatingLogFile::Open(o.policy_log));
    s->reconciler->WithState([s](ClusterView& view, Backend&) { s->MakePolicyLogger(view); });
  }
  return std::unique_ptr<Agent>(new Agent(std::move(state)));
}

Agent::Agent(std::unique_ptr<State> state) : state_(std::move(state)) {}

Agent::~Agent() { Stop(); }

absl::Status Agent::Start() {
  State& s = *state_;
  if (s.started) {
    return absl::FailedPreconditionError("agent: already started");
  }
  s.started = true;
  if (s.options.healthz_address) {
    DPV2_ASSIGN_OR_RETURN(
        s.healthz_listener,
        s.http.Listen(*s.options.healthz_address, [&s](const HttpRequest& req) -> HttpResponse {
          if (req.path == "/healthz") {
            return s.proxy_health.Healthz(absl::Now(), /*node_eligible=*/true);
          }
          if (req.path == "/livez") {
            return s.proxy_health.Livez(absl::Now());
          }
          return {.status = 404, .body = "404 page not found\n"};
        }));
  }
  if (s.options.metrics_address) {
    DPV2_ASSIGN_OR_RETURN(
        s.metrics_listener,
        s.http.Listen(*s.options.metrics_address, [&s](const HttpRequest& req) -> HttpResponse {
          if (req.path == "/metrics") {
            return {.headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                    .body = s.MetricsText()};
          }
          if (req.path == "/healthz") {
            bool ok = s.proxy_health.Healthy(absl::Now());
            return {.status = ok ? 200 : 503,
                    .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
                    .body = ok ? "ok\n" : "datapath not in sync\n"};
          }
          return {.status = 404, .body = "404 page not found\n"};
        }));
  }
  s.health_ports = std::make_unique<HealthCheckPorts>(
      &s.http, s.options.health_check_host,
      [&s] { return s.proxy_health.Healthy(absl::Now()); }, s.log);
  if (!s.options.control_socket.empty()) {
    ControlTarget target{
        .with_state = [&s](const std::function<void(ClusterView&, Backend&)>& fn) {
          s.reconciler->WithState(fn);
        },
        .flows = &s.flows,
        .datapath_now_ns = s.options.datapath_now_ns};
    DPV2_ASSIGN_OR_RETURN(s.control,
                          ControlServer::Start({.socket_path = s.options.control_socket},
                                               std::move(target)));
  }
  s.reconciler->Start();
  if (s.manifests) {
    s.poller = std::thread([&s] { s.PollManifests(); });
  }
  s.StartSources();
  s.log->Info("agent started",
              {{"node", s.options.node_name},
               {"backend", s.options.backend_name},
               {"source", s.manifests ? absl::StrCat("manifests ", s.options.manifests)
                                      : absl::StrCat("api (", s.reflectors.size(), " resources)")},
               {"metrics_port", metrics_port()},
               {"healthz_port", healthz_port()},
               {"control_socket", s.options.control_socket}});
  s.Notify();
  return absl::OkStatus();
}

absl::Status Agent::ReconcileOnce(absl::Duration timeout) {
  State& s = *state_;
  s.StartSources();
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    ReconcileReport report = s.reconciler->ReconcileNow();
    if (report.source_not_ready && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
      continue;
    }
    DPV2_RETURN_IF_ERROR(report.status);
    if (!report.waiting_pods.empty()) {
      return absl::UnavailableError(absl::StrCat("local pods held back: ",
                                                 absl::StrJoin(report.waiting_pods, "; ")));
    }
    return absl::OkStatus();
  }
}

void Agent::Stop() {
  State& s = *state_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  for (auto& r : s.reflectors) {
    r->Stop();
  }
  {
    std::lock_guard<std::mutex> lock(s.poller_mu);
    s.poller_stop = true;
    s.poller_wake.notify_all();
  }
  if (s.poller.joinable()) {
    s.poller.join();
  }
  s.reconciler->Stop();
  s.reconciler->WithState([&s](ClusterView&, Backend&) {
    if (s.policy_logger) {
      s.policy_logger->Flush();
    }
  });
  s.control.reset();
  s.health_ports.reset();
  s.http.Stop();
  if (s.started) {
    s.log->Info("agent stopped; the datapath keeps running", {{"node", s.options.node_name}});
  }
}

std::string Agent::MetricsText() { return state_->MetricsText(); }

uint16_t Agent::metrics_port() const {
  return state_->metrics_listener ? state_->http.Port(state_->metrics_listener) : 0;
}

uint16_t Agent::healthz_port() const {
  return state_->healthz_listener ? state_->http.Port(state_->healthz_listener) : 0;
}

std::vector<uint16_t> Agent::health_check_ports() const {
  return state_->health_ports ? state_->health_ports->ports() : std::vector<uint16_t>{};
}

ReconcilerStats Agent::stats() const { return state_->reconciler->stats(); }

void Agent::WithState(const std::function<void(ClusterView&, Backend&)>& fn) {
  state_->reconciler->WithState(fn);
}

}  // namespace dpv2::agent::daemon
