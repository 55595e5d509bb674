// view_bench: the agent's control-plane cost from API objects to the datapath
// (PERF.md P6, P7). For N Services x 10 endpoints (and half as many pods,
// spread over 100 nodes) it prints the full sync (ClusterView::Update +
// ApplyTo on the sim backend, fresh view each time) and one endpoint change
// (one EndpointSlice condition flipped, Update + ApplyTo), median and p99.
//
//   view_bench            1,000 and 10,000 Services
//   view_bench --quick    1,000 Services, few repeats (smoke test)
//   view_bench --max 3000 sizes up to 3,000 only
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "dpv2/sim.h"

namespace {

using dpv2::IpAddr;
using dpv2::agent::ClusterView;
using dpv2::agent::k8s::ClusterObjects;

constexpr int kEndpointsPerService = 10;
constexpr int kNodes = 100;

dpv2::DatapathConfig BenchConfig(int services) {
  dpv2::DatapathConfig config;
  const uint32_t backends = static_cast<uint32_t>(services) * kEndpointsPerService * 2;
  config.max_backends = std::max(config.max_backends, backends);
  config.max_services = std::max<uint32_t>(config.max_services, services * 2);
  config.max_tables = std::max<uint32_t>(config.max_tables, services * 2);
  return config;
}

ClusterObjects MakeObjects(int services) {
  ClusterObjects objects;
  objects.namespaces["default"] = {.name = "default"};
  for (int n = 0; n < kNodes; ++n) {
    dpv2::agent::k8s::NodeObject node;
    node.name = absl::StrCat("node-", n);
    node.zone = absl::StrCat("zone-", n % 3);
    node.labels["topology.kubernetes.io/zone"] = node.zone;
    node.addresses.push_back({.text = IpAddr::V4(0xC0A80000 + n + 1).ToString(),
                              .ip = IpAddr::V4(0xC0A80000 + n + 1)});
    objects.nodes[node.name] = node;
  }
  for (int i = 0; i < services; ++i) {
    const std::string name = absl::StrCat("svc-", i);
    dpv2::agent::k8s::ServiceObject svc;
    svc.spec.namespace_name = "default";
    svc.spec.name = name;
    svc.spec.cluster_ips = {IpAddr::V4(0x0A600000 + i + 1)};
    svc.spec.ports = {{.name = "http", .port = 80}};
    svc.selector = dpv2::Labels{{"app", name}};
    svc.target_ports = {{.number = 8080}};
    objects.services["default/" + name] = svc;

    dpv2::agent::k8s::EndpointSliceObject slice;
    slice.namespace_name = "default";
    slice.service_name = name;
    slice.labels["kubernetes.io/service-name"] = name;
    slice.spec.name = name + "-abcde";
    slice.spec.ports = {{.name = "http", .port = 8080}};
    for (int j = 0; j < kEndpointsPerService; ++j) {
      const int e = i * kEndpointsPerService + j;
      const std::string pod_name = absl::StrCat(name, "-", j);
      const std::string node_name = absl::StrCat("node-", e % kNodes);
      const IpAddr ip = IpAddr::V4(0x0A400000 + e + 1);
      slice.spec.endpoints.push_back({.addresses = {ip}, .node_name = node_name,
                                      .zone = absl::StrCat("zone-", (e % kNodes) % 3)});
      slice.target_pods.push_back("default/" + pod_name);
      if (j % 2 == 0) {  // half the endpoints have a pod object: 50k pods at 10k Services
        dpv2::agent::k8s::PodObject pod;
        pod.info = {.namespace_name = "default", .name = pod_name,
                    .labels = {{"app", name}}, .ips = {ip}, .node_name = node_name};
        pod.phase = "Running";
        objects.pods["default/" + pod_name] = pod;
      }
    }
    objects.endpoint_slices["default/" + slice.spec.name] = slice;
  }
  return objects;
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
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

int Run(int services, int full_repeats, int change_repeats) {
  const ClusterObjects objects = MakeObjects(services);
  const dpv2::DatapathConfig config = BenchConfig(services);
  std::vector<double> full;
  std::unique_ptr<dpv2::Backend> backend;
  std::optional<ClusterView> view;
  for (int r = 0; r < full_repeats; ++r) {
    auto b = dpv2::MakeSimBackend({.config = config});
    auto v = ClusterView::Create({.node_name = "node-0", .lb = {.datapath = config}});
    if (!b.ok() || !v.ok()) {
      std::fprintf(stderr, "setup failed: %s %s\n", b.status().ToString().c_str(),
                   v.status().ToString().c_str());
      return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    v->Update(objects);
    const absl::Status st = v->ApplyTo(**b);
    full.push_back(Ms(std::chrono::steady_clock::now() - start));
    if (!st.ok() || !v->problems().empty()) {
      std::fprintf(stderr, "full sync failed: %s %s\n", st.ToString().c_str(),
                   v->problems().empty() ? "" : v->problems()[0].c_str());
      return 1;
    }
    backend = std::move(*b);
    view.emplace(std::move(*v));
  }

  ClusterObjects changed = objects;
  std::mt19937 rng(42);
  std::vector<double> change, change_update;
  for (int r = 0; r < change_repeats; ++r) {
    const std::string key = absl::StrCat("default/svc-", rng() % services, "-abcde");
    auto& endpoint = changed.endpoint_slices[key].spec.endpoints[0];
    endpoint.conditions.ready = !endpoint.conditions.IsReady();
    const auto start = std::chrono::steady_clock::now();
    view->Update(changed);
    change_update.push_back(Ms(std::chrono::steady_clock::now() - start));
    const absl::Status st = view->ApplyTo(*backend);
    change.push_back(Ms(std::chrono::steady_clock::now() - start));
    if (!st.ok()) {
      std::fprintf(stderr, "change failed: %s\n", st.ToString().c_str());
      return 1;
    }
  }
  const Figures f = Summarize(full);
  const Figures c = Summarize(change);
  const Figures u = Summarize(change_update);
  std::printf("%8d %10zu %8zu | %12.1f %12.1f | %12.3f %12.3f | %12.3f %12.3f\n", services,
              objects.endpoint_slices.size() * kEndpointsPerService, objects.pods.size(),
              f.median, f.p99, c.median, c.p99, u.median, u.p99);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int max = 10000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
      max = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--max SERVICES]\n", argv[0]);
      return 2;
    }
  }
  std::printf("ClusterView Update + ApplyTo on the sim backend, times in ms\n");
  std::printf("%8s %10s %8s | %12s %12s | %12s %12s | %12s %12s\n", "services", "endpoints",
              "pods", "full med", "full p99", "1-change med", "1-change p99", "of it Update",
              "Update p99");
  for (int services : {1000, 3000, 10000}) {
    if (services > max || (quick && services > 1000)) {
      continue;
    }
    const int full_repeats = quick ? 2 : (services >= 10000 ? 3 : 5);
    const int change_repeats = quick ? 5 : (services >= 10000 ? 30 : 100);
    if (int rc = Run(services, full_repeats, change_repeats); rc != 0) {
      return rc;
    }
  }
  return 0;
}
