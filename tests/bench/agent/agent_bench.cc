// agent_bench: the node agent's control plane in process, from a watch event
// to Backend::Apply returned (PERF.md P6), and the agent's heap per remote
// pod (P8), through the code dpv2-agent runs: watch lines parsed as the
// reflector parses them, ApiObjects decoding each event once, and the
// Reconciler taking change sets (ApiObjects::TakeChanges) into ClusterView
// and applying to the sim backend.
//
// Cluster at size N: N Services x 10 endpoints (one EndpointSlice each), 5N
// pods over 100 nodes (this agent is node-0: 1% of them are local), N/10
// NetworkPolicies, one namespace: P7's mix at N = 10,000.
//
// 1. The first LIST of every resource but pods, and the first reconcile
//    (a whole snapshot).
// 2. The pods arrive as ADDED watch events, then one reconcile (a change
//    set): the heap this adds, per pod, is P8's figure: what the pods'
//    reflector keeps (key and hash), the decoded objects (ApiObjects), and
//    ClusterView with the core's identities and ipcache; the JSON size a
//    store of whole objects would add is printed next to it.
// 3. One endpoint's ready condition flips in one EndpointSlice, `--changes`
//    times: median and p99 of each phase from the event's line to
//    Backend::Apply returned (the agent's debounce, 50 ms by default, is not
//    counted: it is a wait chosen to batch bursts, not work).
//
//   agent_bench                  N = 10,000, 200 changes
//   agent_bench --services 3000 --changes 500
//   agent_bench --quick          N = 1,000, 30 changes (smoke test)
#include <malloc.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../../unit/agent/forwarding_backend.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/apiserver/reflector.h"
#include "agent/apiserver/resources.h"
#include "agent/daemon/api_objects.h"
#include "agent/daemon/reconciler.h"
#include "dpv2/sim.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent {
namespace {

using apiserver::Delta;
using apiserver::DeltaType;
using apiserver::ReflectorUpdate;
using Json = nlohmann::json;

constexpr int kBackendsPerService = 10;
constexpr int kNodeCount = 100;
constexpr char kThisNode[] = "node-0";

std::string SvcName(int i) { return absl::StrCat("svc-", i); }
std::string PodAddress(int e) { return IpAddr::V4(0x0A400000 + e + 1).ToString(); }
std::string NodeOf(int e) { return absl::StrCat("node-", e % kNodeCount); }

// API objects written as a server sends them (uid, resourceVersion, owner
// references, container specs), so the JSON a store keeps is not a toy's.
Json ParseObject(const std::string& text) { return Json::parse(text); }

Json NodeObject(int n) {
  return ParseObject(absl::Substitute(
      R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"node-$0","uid":"node-uid-$0",
      "resourceVersion":"1","labels":{"kubernetes.io/hostname":"node-$0",
      "topology.kubernetes.io/zone":"zone-$1"}},"status":{"addresses":[
      {"type":"InternalIP","address":"$2"},{"type":"Hostname","address":"node-$0"}]}})",
      n, n % 3, IpAddr::V4(0xC0A80000 + n + 1).ToString()));
}

Json ServiceObject(int i) {
  return ParseObject(absl::Substitute(
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"$0","namespace":"default",
      "uid":"svc-uid-$1","resourceVersion":"$1"},"spec":{"type":"ClusterIP",
      "clusterIP":"$2","clusterIPs":["$2"],"selector":{"app":"$0"},
      "ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}]}})",
      SvcName(i), i + 10, IpAddr::V4(0x0A600000 + i + 1).ToString()));
}

Json SliceObject(int i, uint32_t not_ready_mask, int version) {
  std::string endpoints;
  for (int j = 0; j < kBackendsPerService; ++j) {
    const int e = i * kBackendsPerService + j;
    const bool ready = ((not_ready_mask >> j) & 1) == 0;
    absl::StrAppend(&endpoints, j == 0 ? "" : ",",
                    absl::Substitute(R"({"addresses":["$0"],"conditions":{"ready":$1,
                    "serving":$1,"terminating":false},"nodeName":"$2","zone":"zone-$3",
                    "targetRef":{"kind":"Pod","namespace":"default","name":"$4-$5"}})",
                                     PodAddress(e), ready ? "true" : "false", NodeOf(e),
                                     (e % kNodeCount) % 3, SvcName(i), j));
  }
  return ParseObject(absl::Substitute(
      R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{
      "name":"$0-x7k2p","namespace":"default","uid":"slice-uid-$1","resourceVersion":"$2",
      "labels":{"kubernetes.io/service-name":"$0","endpointslice.kubernetes.io/managed-by":
      "endpointslice-controller.k8s.io"}},"addressType":"IPv4",
      "ports":[{"name":"http","protocol":"TCP","port":8080}],"endpoints":[$3]})",
      SvcName(i), i, version, endpoints));
}

// A pod's JSON text: it comes as a watch event, which the reflector parses.
std::string PodText(int i, int j) {
  const int e = i * kBackendsPerService + j;
  return absl::Substitute(
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"$0-$1","namespace":"default",
      "uid":"pod-uid-$2","resourceVersion":"$2","labels":{"app":"$0",
      "pod-template-hash":"5d9c8b7f4"},"ownerReferences":[{"apiVersion":"apps/v1",
      "kind":"ReplicaSet","name":"$0-5d9c8b7f4","uid":"rs-uid-$3","controller":true}]},
      "spec":{"nodeName":"$4","serviceAccountName":"default","containers":[{"name":"app",
      "image":"registry.example/app:1.2.3","ports":[{"name":"http","containerPort":8080,
      "protocol":"TCP"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"}}}]},
      "status":{"phase":"Running","hostIP":"$5","podIP":"$6","podIPs":[{"ip":"$6"}],
      "conditions":[{"type":"Ready","status":"True"}]}})",
      SvcName(i), j, e, i, NodeOf(e), IpAddr::V4(0xC0A80000 + e % kNodeCount + 1).ToString(),
      PodAddress(e));
}

Json PolicyObject(int p, int services) {
  const std::string to = SvcName(p * 10);
  const std::string from = SvcName((p * 10 + 1) % services);
  return ParseObject(absl::Substitute(
      R"({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{
      "name":"allow-$0-to-$1","namespace":"default","uid":"np-uid-$2","resourceVersion":"1"},
      "spec":{"podSelector":{"matchLabels":{"app":"$1"}},"policyTypes":["Ingress"],
      "ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"$0"}}}],
      "ports":[{"protocol":"TCP","port":8080}]}]}})",
      from, to, p));
}

// A watch line as the API server streams it.
std::string WatchLine(absl::string_view type, const Json& object) {
  return Json{{"type", type}, {"object", object}}.dump();
}

// The reflector's share of an event: parse the line (key, fingerprint).
Delta ParseEvent(const std::string& line) {
  absl::StatusOr<apiserver::WatchEvent> event =
      apiserver::ParseWatchEvent(line, apiserver::EndpointSlicesResource(), "WATCH");
  if (!event.ok()) {
    std::fprintf(stderr, "%s\n", event.status().ToString().c_str());
    std::exit(1);
  }
  return {event->type == "ADDED" ? DeltaType::kAdded : DeltaType::kUpdated, std::move(event->key),
          std::move(event->object)};
}

// An object as a LIST delivers it: parsed into a document of its own.
apiserver::JsonRef Delivered(const Json& object) { return *apiserver::ParseJson(object.dump()); }

size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// The sim (or any) backend with the time its Apply calls take and, when
// asked, the heap they add: the sim's tables, which an eBPF datapath keeps in
// the kernel instead of the agent's heap.
class TimedBackend : public testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  absl::Status Apply(const ChangeBatch& batch) override {
    const size_t heap_before = measure_heap_ ? HeapInUse() : 0;
    const absl::Time start = absl::Now();
    absl::Status status = inner().Apply(batch);
    last_apply_ = absl::Now() - start;
    if (measure_heap_) {
      applied_heap_ += static_cast<ptrdiff_t>(HeapInUse() - heap_before);
    }
    return status;
  }
  absl::Duration TakeApplyTime() { return std::exchange(last_apply_, absl::ZeroDuration()); }
  // Heap the Apply calls added while measuring (mallinfo2 walks the heap:
  // only around the pods' one reconcile).
  void MeasureHeap(bool on) { measure_heap_ = on; }
  ptrdiff_t TakeAppliedHeap() { return std::exchange(applied_heap_, 0); }

 private:
  absl::Duration last_apply_;
  bool measure_heap_ = false;
  ptrdiff_t applied_heap_ = 0;
};

// Median and p99 of one phase, ms.
struct Samples {
  const char* name;
  std::vector<double> ms;

  void Add(absl::Duration d) { ms.push_back(absl::ToDoubleMilliseconds(d)); }
  std::pair<double, double> MedianP99() const {
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    const size_t p99 = std::min(v.size() - 1, v.size() * 99 / 100);
    return {v[v.size() / 2], v[p99]};
  }
};

struct Resources {
  std::vector<apiserver::ApiResource> list = apiserver::WatchedResources();
  size_t Index(absl::string_view plural) const {
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].plural == plural) {
        return i;
      }
    }
    std::fprintf(stderr, "no resource %s\n", std::string(plural).c_str());
    std::exit(1);
  }
};

DatapathConfig ConfigFor(int services) {
  DatapathConfig config;
  const uint32_t n = static_cast<uint32_t>(services);
  config.max_backends = std::max(config.max_backends, n * kBackendsPerService * 2);
  config.max_services = std::max(config.max_services, n * 2);
  config.max_tables = std::max(config.max_tables, n * 2);
  config.max_ipcache = std::max(config.max_ipcache, n * kBackendsPerService);
  return config;
}

int Run(int services, int changes) {
  const Resources res;
  daemon::ApiObjects objects(res.list);
  const DatapathConfig config = ConfigFor(services);
  absl::StatusOr<std::unique_ptr<Backend>> sim = MakeSimBackend({.config = config});
  if (!sim.ok()) {
    std::fprintf(stderr, "sim backend: %s\n", sim.status().ToString().c_str());
    return 1;
  }
  TimedBackend backend(std::move(*sim));
  auto reconciler = daemon::Reconciler::Create(
      {.node_name = kThisNode, .lb = {.datapath = config}}, &backend,
      {.snapshot = [&] { return objects.Snapshot(); },
       .take_changes = [&] { return objects.TakeChanges(); }});
  if (!reconciler.ok()) {
    std::fprintf(stderr, "reconciler: %s\n", reconciler.status().ToString().c_str());
    return 1;
  }
  auto check = [](const daemon::ReconcileReport& r, const char* what) {
    if (!r.status.ok() || !r.problems.empty()) {
      std::fprintf(stderr, "%s: %s %s\n", what, r.status.ToString().c_str(),
                   r.problems.empty() ? "" : r.problems[0].c_str());
      std::exit(1);
    }
  };

  // 1. The first LIST of everything but pods (they come as events below).
  std::map<size_t, std::vector<Json>> lists;
  lists[res.Index("namespaces")].push_back(ParseObject(
      R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"}})"));
  for (int n = 0; n < kNodeCount; ++n) {
    lists[res.Index("nodes")].push_back(NodeObject(n));
  }
  for (int i = 0; i < services; ++i) {
    lists[res.Index("services")].push_back(ServiceObject(i));
    lists[res.Index("endpointslices")].push_back(SliceObject(i, 0, 1));
  }
  for (int p = 0; p < services / 10; ++p) {
    lists[res.Index("networkpolicies")].push_back(PolicyObject(p, services));
  }
  std::vector<ReflectorUpdate> list_updates(res.list.size());
  for (size_t r = 0; r < res.list.size(); ++r) {
    list_updates[r] = {.relisted = true, .synced = true};
    for (const Json& o : lists[r]) {
      apiserver::JsonRef delivered = Delivered(o);
      const std::string key = apiserver::ObjectKey(*delivered);
      list_updates[r].deltas.push_back({DeltaType::kAdded, key, std::move(delivered)});
    }
  }
  lists.clear();
  const absl::Time list_start = absl::Now();
  for (size_t r = 0; r < res.list.size(); ++r) {
    objects.Apply(r, list_updates[r]);
  }
  list_updates.clear();
  const absl::Duration list_decode = absl::Now() - list_start;
  const daemon::ReconcileReport full = (*reconciler)->ReconcileNow();
  check(full, "full sync");

  // 2. The pods, as ADDED events of a watch, then one reconcile.
  const size_t pods_resource = res.Index("pods");
  const size_t heap_before_pods = HeapInUse();
  size_t json_bytes = 0;  // the pods' JSON (sampled): what a store of objects would hold
  int json_samples = 0;
  // What the pods' Reflector keeps of them: key -> hash (reflector.h).
  std::map<std::string, size_t> reflector_store;
  const apiserver::ApiResource pods_api = apiserver::PodsResource();
  int pod_count = 0;
  const absl::Time pods_start = absl::Now();
  for (int i = 0; i < services; ++i) {
    for (int j = 0; j < kBackendsPerService; j += 2) {
      // mallinfo2 walks the heap (~0.1 s at 50k pods): the JSON's size (as
      // an nlohmann tree, which a store of whole objects would keep) is
      // sampled, 1 pod in 4096, so the decode time stays the decoder's.
      const std::string text = PodText(i, j);
      if (pod_count % 4096 == 0) {
        const size_t before = HeapInUse();
        const Json tree = Json::parse(text);
        json_bytes += HeapInUse() - before;
        ++json_samples;
      }
      apiserver::JsonRef pod = *apiserver::ParseJson(text);
      const std::string key = apiserver::ObjectKey(*pod);
      reflector_store.emplace(key, apiserver::Fingerprint(*pod, pods_api));
      // Delivered, then dropped: the agent's heap holds no JSON of it.
      objects.Apply(pods_resource,
                    {.deltas = {{DeltaType::kAdded, key, std::move(pod)}}, .synced = true});
      ++pod_count;
    }
  }
  const absl::Duration pods_decode = absl::Now() - pods_start;
  const size_t heap_decoded_pods = HeapInUse();
  // The store is counted apart (its share of the agent's heap), then the
  // agent's own parts, which it would otherwise blur.
  std::map<std::string, size_t>().swap(reflector_store);
  const size_t store_bytes = heap_decoded_pods - HeapInUse();
  const size_t heap_decoded_only = heap_decoded_pods - store_bytes;
  backend.MeasureHeap(true);
  const daemon::ReconcileReport pods = (*reconciler)->ReconcileNow();
  backend.MeasureHeap(false);
  check(pods, "pods");
  const size_t heap_after_pods = HeapInUse();
  const ptrdiff_t sim_bytes = backend.TakeAppliedHeap();

  // 3. One endpoint change, `changes` times, on random Services.
  std::mt19937 rng(7);
  std::vector<uint32_t> not_ready(services, 0);
  std::vector<int> version(services, 1);
  Samples parse{"parse"}, decode{"decode"}, take{"take"}, update{"Update"}, diff{"diff"},
      apply{"apply"}, total{"total"};
  for (int c = 0; c < changes; ++c) {
    const int svc = static_cast<int>(rng() % services);
    not_ready[svc] ^= 1u << (rng() % kBackendsPerService);
    const std::string line =
        WatchLine("MODIFIED", SliceObject(svc, not_ready[svc], ++version[svc]));
    const absl::Time t0 = absl::Now();
    Delta delta = ParseEvent(line);
    const absl::Time t1 = absl::Now();
    objects.Apply(res.Index("endpointslices"), {.deltas = {std::move(delta)}, .synced = true});
    const absl::Time t2 = absl::Now();
    const daemon::ReconcileReport r = (*reconciler)->ReconcileNow();
    const absl::Time t3 = absl::Now();
    check(r, "endpoint change");
    if (!r.change_set || r.changes == 0) {
      std::fprintf(stderr, "endpoint change: %s, %zu changes\n",
                   r.change_set ? "change set" : "whole snapshot", r.changes);
      return 1;
    }
    const absl::Duration backend_apply = backend.TakeApplyTime();
    parse.Add(t1 - t0);
    decode.Add(t2 - t1);
    take.Add(r.take_time);
    update.Add(r.update_time);
    diff.Add(r.apply_to_time - backend_apply);
    apply.Add(backend_apply);
    total.Add(t3 - t0);
  }

  std::printf("\nN = %d Services x %d endpoints, %d pods (%d nodes, this is %s), %d policies\n",
              services, kBackendsPerService, pod_count, kNodeCount, kThisNode, services / 10);
  std::printf("first LIST decode %.0f ms; first reconcile (whole) %.0f ms: Update %.0f, "
              "diff+apply %.0f, %zu changes\n",
              absl::ToDoubleMilliseconds(list_decode), absl::ToDoubleMilliseconds(full.apply_time),
              absl::ToDoubleMilliseconds(full.update_time),
              absl::ToDoubleMilliseconds(full.apply_to_time), full.changes);
  std::printf("%d pods as watch events: decode %.0f ms, reconcile (change set) %.0f ms, "
              "%zu changes\n",
              pod_count, absl::ToDoubleMilliseconds(pods_decode),
              absl::ToDoubleMilliseconds(pods.apply_time), pods.changes);
  const double per_pod_decoded =
      static_cast<double>(heap_decoded_only - heap_before_pods) / pod_count;
  const double per_pod_sim = static_cast<double>(sim_bytes) / pod_count;
  const double per_pod_view =
      static_cast<double>(heap_after_pods - heap_decoded_only) / pod_count - per_pod_sim;
  const double per_pod_store = static_cast<double>(store_bytes) / pod_count;
  std::printf("P8 heap per pod: %.0f B = reflector store %.0f (key, hash; the JSON, %.0f B, "
              "is not kept) + decoded objects %.0f + ClusterView and PolicyState (pods, "
              "identities, ipcache) %.0f + sim backend tables %.0f (in the kernel with eBPF)\n",
              per_pod_store + per_pod_decoded + per_pod_view + per_pod_sim, per_pod_store,
              static_cast<double>(json_bytes) / json_samples, per_pod_decoded, per_pod_view,
              per_pod_sim);
  std::printf("P6 one endpoint change, %d times, ms (event line -> Backend::Apply returned):\n",
              changes);
  std::printf("%-8s %9s %9s\n", "phase", "median", "p99");
  for (const Samples* s : {&parse, &decode, &take, &update, &diff, &apply, &total}) {
    const auto [median, p99] = s->MedianP99();
    std::printf("%-8s %9.3f %9.3f\n", s->name, median, p99);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace dpv2::agent

int main(int argc, char** argv) {
  int services = 10000;
  int changes = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      services = 1000;
      changes = 30;
    } else if (std::strcmp(argv[i], "--services") == 0 && i + 1 < argc) {
      services = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--changes") == 0 && i + 1 < argc) {
      changes = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--services N] [--changes K]\n", argv[0]);
      return 2;
    }
  }
  if (services < 10 || changes < 1) {
    std::fprintf(stderr, "--services must be >= 10 and --changes >= 1\n");
    return 2;
  }
  return dpv2::agent::Run(services, changes);
}
