// Policy benchmarks (issue 3): the per-connection policy lookup with 10 and
// 10,000 policies (it must stay flat), and the time to recompute after one
// pod label change with 50,000 pods and 1,000 policies (target < 10 ms).
// A program, not a test: it prints a table. --quick shrinks the sizes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <time.h>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/policy/policy_map.h"
#include "dpv2/policy_state.h"

namespace dpv2 {
namespace {

using Clock = std::chrono::steady_clock;

// CPU time of this thread: the machine is shared, so wall-clock percentiles
// include preemption by other processes; CPU time does not.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

IpAddr PodIp(uint32_t n) { return IpAddr::V4((10u << 24) | (1u << 16) | n); }

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "policy_bench: %s\n", std::string(s.message()).c_str());
    std::exit(1);
  }
}

// One local server selected by `policies` NetworkPolicies, each allowing one
// distinct client label on one port; 4 client pods per label.
struct LookupResult {
  size_t policies, entries;
  double hot_median_ns, hot_p99_ns;  // 64 distinct probes: the algorithm's cost
  double median_ns, p99_ns;          // probes over every client: plus cache misses
};

LookupResult BenchLookup(size_t policies) {
  PolicyState state({.node_name = "node-1"});
  Check(state.SetNamespace({.name = "bench"}));
  Check(state.SetPod({.namespace_name = "bench", .name = "server", .labels = {{"app", "server"}},
                      .ips = {PodIp(1)}},
                     LocalEndpoint{.ifindex = 10}));
  uint32_t ip = 2;
  std::vector<std::pair<uint32_t, uint16_t>> probes;  // (client ip, port)
  for (size_t i = 0; i < policies; ++i) {
    const std::string label = absl::StrCat("client-", i);
    for (int k = 0; k < 4; ++k) {
      Check(state.SetPod({.namespace_name = "bench", .name = absl::StrCat(label, "-", k),
                          .labels = {{"app", label}}, .ips = {PodIp(ip)}}));
      probes.push_back({ip, static_cast<uint16_t>(1000 + i % 50000)});
      ++ip;
    }
    NetworkPolicy np{.metadata = {.name = absl::StrCat("np-", i), .namespace_name = "bench"}};
    np.spec.pod_selector = LabelSelector{.match_labels = {{"app", "server"}}};
    np.spec.ingress.push_back(
        {.ports = {{.port = static_cast<int32_t>(1000 + i % 50000)}},
         .from = {{.pod_selector = LabelSelector{.match_labels = {{"app", label}}}}}});
    Check(state.SetNetworkPolicy(np));
  }
  PolicyMap map;
  Check(map.Apply(state.Diff()));
  const uint32_t ep = *state.EndpointId("bench", "server");
  std::vector<uint32_t> ids;
  for (const auto& [client, port] : probes) {
    ids.push_back(state.IdentityOf(PodIp(client)));
  }
  auto run = [&](const std::vector<size_t>& order, uint64_t* allowed) {
    std::vector<double> samples;
    for (int round = 0; round < 31; ++round) {
      const auto t0 = Clock::now();
      for (size_t o : order) {
        // Half the probes hit their allowed port, half a denied one.
        const uint16_t port =
            (o & 1) ? probes[o].second : static_cast<uint16_t>(probes[o].second + 1);
        *allowed += map.Lookup(ep, DPV2_DIR_INGRESS, ids[o], DPV2_PROTO_TCP, port).allowed();
      }
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                        static_cast<double>(order.size()));
    }
    return samples;
  };
  std::mt19937 rng(1);
  std::vector<size_t> hot_set;
  for (int i = 0; i < 64; ++i) hot_set.push_back(rng() % probes.size());
  std::vector<size_t> hot(16384), spread(16384);
  for (size_t& o : hot) o = hot_set[rng() % hot_set.size()];
  for (size_t& o : spread) o = rng() % probes.size();
  uint64_t allowed = 0;
  std::vector<double> hot_samples = run(hot, &allowed);
  std::vector<double> samples = run(spread, &allowed);
  if (allowed == 0) {
    std::fprintf(stderr, "policy_bench: no lookup was allowed: the setup is wrong\n");
    std::exit(1);
  }
  return {policies, map.size(), Percentile(hot_samples, 0.5), Percentile(hot_samples, 0.99),
          Percentile(samples, 0.5), Percentile(samples, 0.99)};
}

struct RecomputeResult {
  size_t pods, policies, identities, entries;
  double build_s;
  double remote_median_ms, remote_p99_ms, local_median_ms, local_p99_ms;
  double remote_cpu_p99_ms, local_cpu_p99_ms;
};

// `namespaces` namespaces of `pods / namespaces` pods; each namespace has 10
// NetworkPolicies (app-j may receive from app-(j+1) and from namespaces of its
// team); 2 pods per namespace run on this node.
RecomputeResult BenchRecompute(size_t pods, size_t namespaces, int changes) {
  const auto b0 = Clock::now();
  PolicyState state({.node_name = "node-1"});
  const size_t per_ns = pods / namespaces;
  for (size_t n = 0; n < namespaces; ++n) {
    Check(state.SetNamespace({.name = absl::StrCat("ns-", n),
                              .labels = {{"team", absl::StrCat("team-", n % 10)}}}));
  }
  std::vector<PodInfo> all;
  uint32_t ip = 1;
  for (size_t n = 0; n < namespaces; ++n) {
    for (size_t k = 0; k < per_ns; ++k) {
      PodInfo pod{.namespace_name = absl::StrCat("ns-", n),
                  .name = absl::StrCat("pod-", k),
                  .labels = {{"app", absl::StrCat("app-", k % 25)}},
                  .ips = {IpAddr::V4((10u << 24) | ip++)},
                  .container_ports = {{.name = "http", .container_port = 8080}}};
      std::optional<LocalEndpoint> local;
      if (k < 2) {
        local = LocalEndpoint{.ifindex = ip};
      }
      Check(state.SetPod(pod, local));
      all.push_back(pod);
    }
    for (int j = 0; j < 10; ++j) {
      NetworkPolicy np{.metadata = {.name = absl::StrCat("np-", j),
                                    .namespace_name = absl::StrCat("ns-", n)}};
      np.spec.pod_selector = LabelSelector{.match_labels = {{"app", absl::StrCat("app-", j)}}};
      np.spec.ingress.push_back(
          {.ports = {{.port = std::string("http")}},
           .from = {{.pod_selector = LabelSelector{.match_labels = {{"app", absl::StrCat("app-", j + 1)}}}},
                    {.pod_selector = LabelSelector{.match_labels = {{"app", "frontend"}}},
                     .namespace_selector = LabelSelector{
                         .match_labels = {{"team", absl::StrCat("team-", n % 10)}}}}}});
      Check(state.SetNetworkPolicy(np));
    }
  }
  ChangeBatch initial = state.Diff();
  state.Acknowledge(initial);
  const double build_s = std::chrono::duration<double>(Clock::now() - b0).count();

  auto measure = [&](bool local, std::vector<double>* cpu) {
    std::vector<double> ms;
    std::mt19937 rng(7);
    for (int i = 0; i < changes; ++i) {
      const size_t n = rng() % namespaces;
      const size_t k = local ? rng() % 2 : 2 + rng() % (per_ns - 2);
      PodInfo pod = all[n * per_ns + k];
      // Alternate between a label that policies name and one they do not.
      pod.labels["app"] = (i % 2 == 0) ? "frontend" : absl::StrCat("app-", k % 25);
      std::optional<LocalEndpoint> ep;
      if (local) ep = LocalEndpoint{.ifindex = 1000};
      const double c0 = ThreadCpuMs();
      const auto t0 = Clock::now();
      Check(state.SetPod(pod, ep));
      ChangeBatch b = state.Diff();
      state.Acknowledge(b);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      cpu->push_back(ThreadCpuMs() - c0);
    }
    return ms;
  };
  std::vector<double> remote_cpu, local_cpu;
  std::vector<double> remote = measure(false, &remote_cpu);
  std::vector<double> local = measure(true, &local_cpu);
  return {pods, namespaces * 10, state.identity_count(), state.policy_entry_count(), build_s,
          Percentile(remote, 0.5), Percentile(remote, 0.99), Percentile(local, 0.5),
          Percentile(local, 0.99), Percentile(remote_cpu, 0.99), Percentile(local_cpu, 0.99)};
}

}  // namespace
}  // namespace dpv2

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  std::printf("policy lookup (one local endpoint, NetworkPolicies each allowing one client identity)\n");
  std::printf("%10s %10s %16s %16s %18s %18s\n", "policies", "entries", "hot p50 ns/op",
              "hot p99 ns/op", "spread p50 ns/op", "spread p99 ns/op");
  std::vector<size_t> sizes = quick ? std::vector<size_t>{10, 1000}
                                    : std::vector<size_t>{10, 100, 1000, 10000};
  double first = 0, last = 0;
  for (size_t n : sizes) {
    dpv2::LookupResult r = dpv2::BenchLookup(n);
    std::printf("%10zu %10zu %16.1f %16.1f %18.1f %18.1f\n", r.policies, r.entries,
                r.hot_median_ns, r.hot_p99_ns, r.median_ns, r.p99_ns);
    if (first == 0) first = r.hot_median_ns;
    last = r.hot_median_ns;
  }
  std::printf("hot ratio largest/smallest: %.2f (flat = near 1); 'spread' adds the cache misses\n"
              "of a table larger than the CPU cache, not work per policy\n\n",
              last / first);

  const size_t pods = quick ? 5000 : 50000;
  const size_t namespaces = quick ? 10 : 100;
  dpv2::RecomputeResult r = dpv2::BenchRecompute(pods, namespaces, quick ? 40 : 200);
  std::printf("recompute after one pod label change (SetPod + Diff + Acknowledge)\n");
  std::printf("%8s %9s %11s %9s %8s %13s %13s %13s %13s\n", "pods", "policies", "identities",
              "entries", "build s", "remote p50 ms", "remote p99 ms", "local p50 ms",
              "local p99 ms");
  std::printf("%8zu %9zu %11zu %9zu %8.2f %13.3f %13.3f %13.3f %13.3f\n", r.pods, r.policies,
              r.identities, r.entries, r.build_s, r.remote_median_ms, r.remote_p99_ms,
              r.local_median_ms, r.local_p99_ms);
  std::printf("CPU-time p99 (excludes preemption on this shared machine): remote %.3f ms, "
              "local %.3f ms\n",
              r.remote_cpu_p99_ms, r.local_cpu_p99_ms);
  std::printf("target: < 10 ms\n");
  return 0;
}
