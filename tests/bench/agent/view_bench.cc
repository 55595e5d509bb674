// view_bench: the agent's control-plane cost from API objects to the datapath
// (PERF.md P6, P7), phase by phase, on the sim backend.
//
// The cluster at size N has N Services x 10 endpoints (one EndpointSlice
// each), 5N pods (half the endpoints have a pod object) spread over 100 nodes,
// N/10 NetworkPolicies (each selects one Service's pods and admits another's)
// and one namespace: at N = 10,000 that is P7's 10k Services / 100k endpoints
// / 50k pods / 1k policies. Objects start as API JSON text.
//
// Full sync (P7), a fresh view each time: parse (the objects as LIST
// responses of 500 items a page through the reflector's
// apiserver::ParseListPage: simdjson's DOM of the page, key, fingerprint),
// decode (k8s::AddApiObject of every item from the page's document, kind and
// apiVersion the resource's, then the pages freed, as the agent frees
// them), ClusterView::Update, diff (ClusterView::PendingChanges:
// LbState and PolicyState, a dry run that copies the tables), apply (all of
// ApplyTo: its own diff, which moves the tables into the batch, sim
// Backend::Apply, which validates and writes DatapathTables, and
// Acknowledge). The total is parse + decode + Update + apply. The "full,
// CPU" row gives the same phases in CPU time of the process (all threads),
// which the load average inflates less.
// One endpoint change (P6): one EndpointSlice's JSON with one endpoint's
// ready condition flipped, as the line of a MODIFIED watch event, parsed as
// the reflector does (apiserver::ParseWatchEvent: key, fingerprint), decoded and
// handed to the view as a change (ClusterView::Update with ObjectChanges),
// diffed and applied; in wall time, in CPU time of the thread, and the
// slowest passes phase by phase (a pass slow in wall time but not in CPU
// time was preempted, not slow).
// Memory: heap bytes (mallinfo2) held by the decoded objects and by the view
// (its object store, LbState, PolicyState), per object, after a full sync
// and before its apply (the view then still holds every table's slots); and
// per object of each kind once applied (HeapPerKind).
//
//   view_bench            1,000, 3,000 and 10,000 Services
//   view_bench --quick    1,000 Services, few repeats (smoke test)
//   view_bench --max 3000 sizes up to 3,000 only
//   view_bench --changes 50  50 endpoint changes per size (default 200)
//   view_bench --size 10000 --pods 0 --policies 0   one size, Services and
//                         endpoints only (--pods: pods per Service, 0-10,
//                         default 5; --policies: per 100 Services, default 10)
//   view_bench --size 10000 --repeats 1 --full-only   one full sync and
//                         nothing else (for perf record / callgrind)
//   view_bench --maglev-slots-per-backend 0   every Maglev table at
//                         maglev_table_size, as before per-Service sizes
//                         (default: DatapathConfig's, 100)
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/apiserver/reflector.h"
#include "agent/apiserver/resources.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "dpv2/sim.h"
#include "nlohmann/json.hpp"

namespace {

using dpv2::IpAddr;
using dpv2::agent::ClusterView;
using dpv2::agent::ObjectChanges;
using dpv2::agent::k8s::ClusterObjects;
using dpv2::agent::k8s::TypeMeta;
using Json = nlohmann::json;

constexpr int kEndpointsPerService = 10;
constexpr int kNodes = 100;
// --maglev-slots-per-backend.
uint32_t maglev_slots_per_backend = dpv2::DatapathConfig{}.maglev_slots_per_backend;

dpv2::DatapathConfig BenchConfig(int services) {
  dpv2::DatapathConfig config;
  config.maglev_slots_per_backend = maglev_slots_per_backend;
  const uint32_t backends = static_cast<uint32_t>(services) * kEndpointsPerService * 2;
  config.max_backends = std::max(config.max_backends, backends);
  config.max_services = std::max<uint32_t>(config.max_services, services * 2);
  config.max_tables = std::max<uint32_t>(config.max_tables, services * 2);
  return config;
}

std::string Name(int service) { return absl::StrCat("svc-", service); }
std::string NodeName(int endpoint) { return absl::StrCat("node-", endpoint % kNodes); }
IpAddr EndpointIp(int endpoint) { return IpAddr::V4(0x0A400000 + endpoint + 1); }

Json Meta(const std::string& name, Json labels = Json::object()) {
  return {{"name", name}, {"namespace", "default"}, {"labels", std::move(labels)}};
}

Json SliceJson(int service, const std::vector<bool>& ready, int count = kEndpointsPerService) {
  Json endpoints = Json::array();
  for (int j = 0; j < count; ++j) {
    const int e = service * kEndpointsPerService + j;
    endpoints.push_back({{"addresses", {EndpointIp(e).ToString()}},
                         {"conditions", {{"ready", static_cast<bool>(ready[j])}}},
                         {"nodeName", NodeName(e)},
                         {"zone", absl::StrCat("zone-", (e % kNodes) % 3)},
                         {"targetRef", {{"kind", "Pod"},
                                        {"namespace", "default"},
                                        {"name", absl::StrCat(Name(service), "-", j)}}}});
  }
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata", Meta(Name(service) + "-abcde",
                            {{"kubernetes.io/service-name", Name(service)}})},
          {"addressType", "IPv4"},
          {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}},
          {"endpoints", std::move(endpoints)}};
}

// The mix of objects besides Services and their slices.
struct Mix {
  int pods_per_service = kEndpointsPerService / 2;
  int policies_per_100 = 10;
};

// The API objects of the cluster of size `services` (see the file comment).
std::vector<Json> MakeCluster(int services, const Mix& mix) {
  std::vector<Json> out;
  out.push_back({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}});
  for (int n = 0; n < kNodes; ++n) {
    const std::string zone = absl::StrCat("zone-", n % 3);
    out.push_back(
        {{"apiVersion", "v1"},
         {"kind", "Node"},
         {"metadata",
          {{"name", absl::StrCat("node-", n)}, {"labels", {{"topology.kubernetes.io/zone", zone}}}}},
         {"status",
          {{"addresses",
            {{{"type", "InternalIP"}, {"address", IpAddr::V4(0xC0A80000 + n + 1).ToString()}}}}}}});
  }
  const std::vector<bool> all_ready(kEndpointsPerService, true);
  for (int i = 0; i < services; ++i) {
    out.push_back({{"apiVersion", "v1"},
                   {"kind", "Service"},
                   {"metadata", Meta(Name(i))},
                   {"spec",
                    {{"clusterIP", IpAddr::V4(0x0A600000 + i + 1).ToString()},
                     {"selector", {{"app", Name(i)}}},
                     {"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", 8080}}}}}}});
    out.push_back(SliceJson(i, all_ready));
    for (int p = 0; p < mix.pods_per_service; ++p) {  // by default half the endpoints have a pod
      const int j = (p * 2) % kEndpointsPerService + (p * 2) / kEndpointsPerService;
      const int e = i * kEndpointsPerService + j;
      const std::string ip = EndpointIp(e).ToString();
      out.push_back({{"apiVersion", "v1"},
                     {"kind", "Pod"},
                     {"metadata", Meta(absl::StrCat(Name(i), "-", j), {{"app", Name(i)}})},
                     {"spec", {{"nodeName", NodeName(e)}, {"containers", {{{"name", "c"}}}}}},
                     {"status", {{"phase", "Running"}, {"podIP", ip}, {"podIPs", {{{"ip", ip}}}}}}});
    }
  }
  const int stride = mix.policies_per_100 > 0 ? 100 / mix.policies_per_100 : 0;
  for (int p = 0; stride > 0 && p < services * mix.policies_per_100 / 100; ++p) {
    const int to = p * stride;
    const int from = (p * stride + 1) % services;
    out.push_back(
        {{"apiVersion", "networking.k8s.io/v1"},
         {"kind", "NetworkPolicy"},
         {"metadata", Meta(absl::StrCat("allow-", Name(from), "-to-", Name(to)))},
         {"spec",
          {{"podSelector", {{"matchLabels", {{"app", Name(to)}}}}},
           {"ingress",
            {{{"from", {{{"podSelector", {{"matchLabels", {{"app", Name(from)}}}}}}}},
              {"ports", {{{"protocol", "TCP"}, {"port", 8080}}}}}}}}}});
  }
  return out;
}

// One LIST response page as the API server sends it: items without kind
// and apiVersion.
struct ListResponse {
  dpv2::agent::apiserver::ApiResource resource;
  std::string api_version;  // resource.ApiVersion(), the items' default
  std::string body;
};

constexpr size_t kPageItems = 500;  // the reflector's default page_limit

Json WithoutTypeMeta(Json object) {
  object.erase("kind");
  object.erase("apiVersion");
  return object;
}

// The cluster as the LIST responses of every watched resource, in the order
// of the cluster's objects per kind.
std::vector<ListResponse> ListResponses(const std::vector<Json>& cluster) {
  std::vector<ListResponse> out;
  for (const dpv2::agent::apiserver::ApiResource& r :
       dpv2::agent::apiserver::WatchedResources()) {
    Json items = Json::array();
    auto flush = [&](bool last) {
      Json metadata = {{"resourceVersion", "1"}};
      if (!last) {
        metadata["continue"] = absl::StrCat(r.plural, "-", out.size());
      }
      out.push_back({r, r.ApiVersion(),
                     Json{{"kind", r.kind + "List"},
                          {"apiVersion", r.ApiVersion()},
                          {"metadata", std::move(metadata)},
                          {"items", std::move(items)}}
                         .dump()});
      items = Json::array();
    };
    for (const Json& o : cluster) {
      if (o["kind"] != r.kind) {
        continue;
      }
      if (items.size() == kPageItems) {
        flush(false);
      }
      items.push_back(WithoutTypeMeta(o));
    }
    if (!items.empty()) {
      flush(true);
    }
  }
  return out;
}

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// CPU time of the whole process (all threads), ms: on this shared machine
// the wall time of a phase grows with the load average, its CPU time less.
double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// CPU time of the calling thread, ms: a step that took long in wall time
// but not in CPU time was preempted (2 shared cores) rather than slow.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Heap in use: arena chunks and mmapped ones (glibc serves large blocks
// with mmap below a threshold that moves as such blocks are freed, so
// arena bytes alone depend on what was freed before).
size_t HeapBytes() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

struct Figures {
  double median = 0;
  double p99 = 0;
};

Figures Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t p99 = std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99));
  return {.median = v[v.size() / 2], .p99 = v[p99]};
}

// Times of one pass through the phases, ms.
struct Phases {
  std::vector<double> parse, decode, update, diff, apply, total;

  void Add(double p, double d, double u, double df, double a) {
    parse.push_back(p);
    decode.push_back(d);
    update.push_back(u);
    diff.push_back(df);
    apply.push_back(a);
    total.push_back(p + d + u + a);  // ApplyTo diffs on its own
  }
  // The `count` passes with the longest total, each phase as wall / CPU ms:
  // what a p99 is made of.
  void PrintSlowest(const Phases& cpu, int services, int count) const {
    std::vector<size_t> order(total.size());
    for (size_t i = 0; i < order.size(); ++i) {
      order[i] = i;
    }
    std::sort(order.begin(), order.end(), [this](size_t a, size_t b) { return total[a] > total[b]; });
    for (size_t k = 0; k < order.size() && k < static_cast<size_t>(count); ++k) {
      const size_t i = order[k];
      std::printf("%8d %-12s #%zu wall/CPU ms: parse %.3f/%.3f decode %.3f/%.3f "
                  "Update %.3f/%.3f diff %.3f/%.3f apply %.3f/%.3f total %.3f/%.3f\n",
                  services, "slowest", i, parse[i], cpu.parse[i], decode[i], cpu.decode[i],
                  update[i], cpu.update[i], diff[i], cpu.diff[i], apply[i], cpu.apply[i],
                  total[i], cpu.total[i]);
    }
  }
  void Print(const char* what, int services, const char* fmt) const {
    std::printf("%8d %-12s", services, what);
    for (const auto* v : {&parse, &decode, &update, &diff, &apply, &total}) {
      const Figures f = Summarize(*v);
      std::printf(fmt, f.median, f.p99);
    }
    std::printf("\n");
  }
};

// Heap held per object of each kind once applied (view, its core states
// and the sim's tables; the decoded objects the view copies included): one
// view grows by stages, each applied, and each stage's growth is divided by
// the objects it added. Endpoints: slices go from 5 to 10 endpoints.
struct KindBytes {
  double service = 0, endpoint = 0, pod = 0, policy = 0;
};

std::optional<KindBytes> HeapPerKind(int services, const std::vector<Json>& cluster) {
  const dpv2::DatapathConfig config = BenchConfig(services);
  auto backend = dpv2::MakeSimBackend({.config = config});
  auto view = ClusterView::Create({.node_name = "node-0", .lb = {.datapath = config}});
  if (!backend.ok() || !view.ok()) {
    return std::nullopt;
  }
  const std::vector<bool> all_ready(kEndpointsPerService, true);
  const int half = kEndpointsPerService / 2;
  // Stage objects by kind, in cluster order.
  auto of_kind = [&cluster](const char* kind) {
    ObjectChanges c;
    for (const Json& o : cluster) {
      if (o["kind"] == kind) {
        dpv2::agent::k8s::AddObject(o, "bench", &c.changed);
      }
    }
    return c;
  };
  auto slices = [&](int count) {
    ObjectChanges c;
    for (int i = 0; i < services; ++i) {
      dpv2::agent::k8s::AddObject(SliceJson(i, all_ready, count), "bench", &c.changed);
    }
    return c;
  };
  std::vector<size_t> heap;
  auto stage = [&](const ObjectChanges& c) {
    view->Update(c);
    const absl::Status st = view->ApplyTo(**backend);
    heap.push_back(HeapBytes());
    return st.ok() && view->problems().empty();
  };
  ObjectChanges base = of_kind("Namespace");
  base.changed.nodes = of_kind("Node").changed.nodes;
  if (!stage(base) || !stage(of_kind("Service")) || !stage(slices(half)) ||
      !stage(slices(kEndpointsPerService)) || !stage(of_kind("Pod")) ||
      !stage(of_kind("NetworkPolicy"))) {
    return std::nullopt;
  }
  const double n = services;
  KindBytes k;
  k.endpoint = static_cast<double>(heap[3] - heap[2]) / (n * (kEndpointsPerService - half));
  k.service = static_cast<double>(heap[2] - heap[0]) / n - half * k.endpoint;
  k.pod = static_cast<double>(heap[4] - heap[3]) / (n * kEndpointsPerService / 2);
  k.policy = static_cast<double>(heap[5] - heap[4]) / (n / 10);
  return k;
}

int Run(int services, const Mix& mix, int full_repeats, int change_repeats, bool full_only) {
  const std::vector<Json> cluster = MakeCluster(services, mix);
  const std::vector<ListResponse> pages = ListResponses(cluster);
  const dpv2::DatapathConfig config = BenchConfig(services);
  Phases full;
  Phases full_cpu;  // the same phases in CPU time
  size_t objects_heap = 0, view_heap = 0, object_count = 0;
  std::unique_ptr<dpv2::Backend> backend;
  std::optional<ClusterView> view;
  std::optional<ClusterObjects> objects;
  for (int r = 0; r < full_repeats; ++r) {
    // Last round's state first goes away, so that heap figures are its own.
    view.reset();
    backend.reset();
    objects.reset();
    auto b = dpv2::MakeSimBackend({.config = config});
    if (!b.ok()) {
      std::fprintf(stderr, "sim backend: %s\n", b.status().ToString().c_str());
      return 1;
    }
    const size_t heap0 = HeapBytes();
    const double cp = CpuMs();
    const Clock::time_point tp = Clock::now();
    std::vector<dpv2::agent::apiserver::ListPage> parsed_pages;
    for (const ListResponse& page : pages) {
      auto parsed = dpv2::agent::apiserver::ParseListPage(page.body, page.resource, "LIST");
      if (!parsed.ok()) {
        std::fprintf(stderr, "list page: %s\n", parsed.status().ToString().c_str());
        return 1;
      }
      parsed_pages.push_back(std::move(*parsed));
    }
    const double c0 = CpuMs();
    const Clock::time_point t0 = Clock::now();
    objects.emplace();
    for (size_t i = 0; i < pages.size(); ++i) {
      const TypeMeta type{.kind = pages[i].resource.kind, .api_version = pages[i].api_version};
      for (const dpv2::agent::apiserver::ListItem& item : parsed_pages[i].items) {
        dpv2::agent::k8s::AddApiObject(*item.object, type, "bench", &*objects);
      }
    }
    parsed_pages = {};  // the agent frees the pages once decoded
    const Clock::time_point t1 = Clock::now();
    const double c1 = CpuMs();
    const size_t heap1 = HeapBytes();
    auto v = ClusterView::Create({.node_name = "node-0", .lb = {.datapath = config}});
    if (!v.ok() || !objects->errors.empty()) {
      std::fprintf(stderr, "setup failed: %s %s\n", v.status().ToString().c_str(),
                   objects->errors.empty() ? "" : objects->errors[0].c_str());
      return 1;
    }
    const double c2 = CpuMs();
    const Clock::time_point t2 = Clock::now();
    v->Update(*objects);
    const Clock::time_point t3 = Clock::now();
    const double c3 = CpuMs();
    const size_t pending = v->PendingChanges().size();
    const Clock::time_point t4 = Clock::now();
    const double c4 = CpuMs();
    const size_t heap2 = HeapBytes();
    const absl::Status st = v->ApplyTo(**b);
    const Clock::time_point t5 = Clock::now();
    const double c5 = CpuMs();
    if (!st.ok() || !v->problems().empty() || pending == 0) {
      std::fprintf(stderr, "full sync failed: %s %s\n", st.ToString().c_str(),
                   v->problems().empty() ? "" : v->problems()[0].c_str());
      return 1;
    }
    full.Add(Ms(t0 - tp), Ms(t1 - t0), Ms(t3 - t2), Ms(t4 - t3), Ms(t5 - t4));
    full_cpu.Add(c0 - cp, c1 - c0, c3 - c2, c4 - c3, c5 - c4);
    objects_heap = heap1 - heap0;
    view_heap = heap2 - heap1;
    object_count = objects->object_count();
    backend = std::move(*b);
    view.emplace(std::move(*v));
  }

  if (full_only) {
    full.Print("full sync", services, " %9.1f %9.1f |");
    full_cpu.Print("full, CPU", services, " %9.1f %9.1f |");
    std::fflush(stdout);
    return 0;
  }
  // One endpoint change as a watch delivers it: the slice's new JSON.
  std::mt19937 rng(42);
  std::vector<std::vector<bool>> ready(services, std::vector<bool>(kEndpointsPerService, true));
  Phases change;
  Phases change_cpu;  // the same phases in CPU time of this thread
  const dpv2::agent::apiserver::ApiResource slices_resource =
      dpv2::agent::apiserver::EndpointSlicesResource();
  const std::string slices_version = slices_resource.ApiVersion();
  const TypeMeta slices_type{.kind = slices_resource.kind, .api_version = slices_version};
  [[maybe_unused]] volatile size_t fingerprint = 0;  // what the reflector's store keeps
  for (int r = 0; r < change_repeats; ++r) {
    const int svc = static_cast<int>(rng() % services);
    ready[svc][0] = !ready[svc][0];
    const std::string line =
        Json{{"type", "MODIFIED"}, {"object", WithoutTypeMeta(SliceJson(svc, ready[svc]))}}
            .dump();
    const double cp = ThreadCpuMs();
    const Clock::time_point tp = Clock::now();
    auto event = dpv2::agent::apiserver::ParseWatchEvent(line, slices_resource, "WATCH");
    if (!event.ok()) {
      std::fprintf(stderr, "watch line: %s\n", event.status().ToString().c_str());
      return 1;
    }
    fingerprint = event->fingerprint;
    const double c0 = ThreadCpuMs();
    const Clock::time_point t0 = Clock::now();
    ObjectChanges changes;
    dpv2::agent::k8s::AddApiObject(*event->object, slices_type, "watch", &changes.changed);
    const Clock::time_point t1 = Clock::now();
    const double c1 = ThreadCpuMs();
    view->Update(changes);
    const Clock::time_point t2 = Clock::now();
    const double c2 = ThreadCpuMs();
    const dpv2::ChangeBatch pending = view->PendingChanges();
    const Clock::time_point t3 = Clock::now();
    const double c3 = ThreadCpuMs();
    const absl::Status st = view->ApplyTo(*backend);
    const Clock::time_point t4 = Clock::now();
    const double c4 = ThreadCpuMs();
    if (!st.ok() || pending.empty()) {
      std::fprintf(stderr, "change failed: %s (%zu changes)\n", st.ToString().c_str(),
                   pending.size());
      return 1;
    }
    change.Add(Ms(t0 - tp), Ms(t1 - t0), Ms(t2 - t1), Ms(t3 - t2), Ms(t4 - t3));
    change_cpu.Add(c0 - cp, c1 - c0, c2 - c1, c3 - c2, c4 - c3);
  }

  full.Print("full sync", services, " %9.1f %9.1f |");
  full_cpu.Print("full, CPU", services, " %9.1f %9.1f |");
  change.Print("1 endpoint", services, " %9.3f %9.3f |");
  change_cpu.Print("1 endp, CPU", services, " %9.3f %9.3f |");
  change.PrintSlowest(change_cpu, services, 3);
  std::printf("%8d %-12s %zu objects: decoded %.0f B/object, view before apply %.0f B/object\n",
              services, "heap", object_count, static_cast<double>(objects_heap) / object_count,
              static_cast<double>(view_heap) / object_count);
  view.reset();
  backend.reset();
  objects.reset();
  if (mix.pods_per_service == 0 || mix.policies_per_100 == 0) {
    std::fflush(stdout);
    return 0;  // the per-kind stages need every kind
  }
  if (std::optional<KindBytes> k = HeapPerKind(services, cluster)) {
    std::printf(
        "%8d %-12s applied, per object (view + sim tables): Service %.0f B, endpoint %.0f B, "
        "pod %.0f B, NetworkPolicy %.0f B\n",
        services, "heap", k->service, k->endpoint, k->pod, k->policy);
  } else {
    std::fprintf(stderr, "heap per kind: setup failed\n");
    return 1;
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int max = 10000;
  int changes = 0;
  int size = 0;
  int repeats = 0;
  bool full_only = false;
  Mix mix;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
      max = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--changes") == 0 && i + 1 < argc) {
      changes = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
      size = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--full-only") == 0) {
      full_only = true;
    } else if (std::strcmp(argv[i], "--pods") == 0 && i + 1 < argc) {
      mix.pods_per_service = std::clamp(std::atoi(argv[++i]), 0, kEndpointsPerService);
    } else if (std::strcmp(argv[i], "--policies") == 0 && i + 1 < argc) {
      mix.policies_per_100 = std::clamp(std::atoi(argv[++i]), 0, 100);
    } else if (std::strcmp(argv[i], "--maglev-slots-per-backend") == 0 && i + 1 < argc) {
      maglev_slots_per_backend = static_cast<uint32_t>(std::clamp(std::atoi(argv[++i]), 0, 65536));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--max SERVICES] [--size SERVICES] [--changes N] "
                   "[--repeats FULL_SYNCS] [--full-only] "
                   "[--pods PER_SERVICE] [--policies PER_100_SERVICES] "
                   "[--maglev-slots-per-backend N]\n",
                   argv[0]);
      return 2;
    }
  }
  std::printf(
      "API objects -> ClusterView -> sim backend; N Services x %d endpoints, %d pods per Service, "
      "%d NetworkPolicies per 100 Services; Maglev %u slots per backend (0: every table at %u)\n"
      "times in ms, median and p99 per phase\n",
      kEndpointsPerService, mix.pods_per_service, mix.policies_per_100, maglev_slots_per_backend,
      dpv2::DatapathConfig{}.maglev_table_size);
  std::printf("%8s %-12s %19s | %19s | %19s | %19s | %19s | %19s |\n", "services", "",
              "parse", "decode", "Update", "diff", "apply", "total");
  const std::vector<int> sizes = size > 0 ? std::vector<int>{size} : std::vector<int>{1000, 3000, 10000};
  for (int services : sizes) {
    if (services > max || (quick && services > 1000)) {
      continue;
    }
    const int full_repeats = repeats > 0 ? repeats : quick ? 1 : (services >= 10000 ? 3 : 5);
    const int change_repeats = changes > 0 ? changes : quick ? 20 : 200;
    if (int rc = Run(services, mix, full_repeats, change_repeats, full_only); rc != 0) {
      return rc;
    }
  }
  return 0;
}
