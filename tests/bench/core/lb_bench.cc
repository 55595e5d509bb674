// Control-plane cost of Services: Maglev table population and LbState
// compile/diff at cluster scale. Prints a table; not a test. The per-Service
// table size (DatapathConfig::maglev_slots_per_backend, MaglevTableSizeFor)
// is shown beside every table at maglev_table_size (slots per backend 0, the
// sizing before it), measured in the same run, with the bytes of table each
// service-backend entry costs (PERF.md P8).
//
//   build-x/tests/bench/core/lb_bench [services]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dpv2/lb_state.h"
#include "dpv2/maglev.h"

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

dpv2::IpAddr V4(uint32_t host_order) { return dpv2::IpAddr::V4(host_order); }

dpv2::ServiceSpec Service(int i, int endpoints, int generation) {
  dpv2::ServiceSpec s{.namespace_name = "bench",
                      .name = absl::StrCat("svc-", i),
                      .type = dpv2::ServiceType::kNodePort,
                      .cluster_ips = {V4(0x0a600000u + static_cast<uint32_t>(i))}};
  s.ports.push_back(
      {.name = "http", .port = 80, .node_port = static_cast<uint16_t>(30000 + i % 2768)});
  if (i >= 2768) {
    s.type = dpv2::ServiceType::kClusterIP;
    s.ports[0].node_port = 0;
  }
  dpv2::EndpointSliceSpec slice{.name = absl::StrCat("svc-", i, "-1")};
  slice.ports.push_back({.name = "http", .port = 8080});
  for (int e = 0; e < endpoints + generation; ++e) {
    slice.endpoints.push_back({.addresses = {V4(0x0a010000u + static_cast<uint32_t>(i * 64 + e))},
                               .node_name = absl::StrCat("node-", e % 50)});
  }
  s.endpoint_slices.push_back(std::move(slice));
  return s;
}

void MaglevRows() {
  std::printf("%-28s %10s %10s %12s %14s\n", "maglev populate", "M", "backends", "ms/table",
              "B/svc-backend");
  const dpv2::DatapathConfig sized;  // 100 slots per backend, at most 16,381
  const dpv2::DatapathConfig fixed{.maglev_slots_per_backend = 0};
  const dpv2::DatapathConfig big{.maglev_table_size = 65521, .maglev_slots_per_backend = 0};
  for (const auto& [label, config] : {std::pair{"every table 16381", fixed},
                                      std::pair{"per-Service (100/backend)", sized},
                                      std::pair{"every table 65521", big}}) {
    for (int n : {10, 100, 1000}) {
      const uint32_t m = dpv2::MaglevTableSizeFor(config, n);
      const dpv2::MaglevTable table = *dpv2::MaglevTable::Create({.table_size = m, .seed = 1});
      std::vector<dpv2::MaglevBackend> backends;
      for (int i = 0; i < n; ++i) {
        backends.push_back({.id = static_cast<uint32_t>(i + 1),
                            .identity = absl::StrCat("10.1.", i / 250, ".", i % 250, ":8080/TCP")});
      }
      const int reps = 20;
      const auto t0 = Clock::now();
      size_t sink = 0;
      for (int r = 0; r < reps; ++r) {
        sink += table.Populate(backends)->size();
      }
      std::printf("%-28s %10u %10d %12.3f %14.1f\n", label, m, n, MsSince(t0) / reps + 0 * sink,
                  4.0 * m / n);
    }
  }
}

void LbStateRows(int services, uint32_t slots_per_backend) {
  absl::StatusOr<dpv2::LbState> lb = dpv2::LbState::Create(
      {.datapath = {.maglev_slots_per_backend = slots_per_backend}, .maglev_seed = 1});
  if (!lb.ok() || !lb->SetNode({.name = "node-0", .addresses = {V4(0xc0a80101u)}}).ok()) {
    std::fprintf(stderr, "setup failed\n");
    std::exit(1);
  }
  std::printf("\n%-28s %10s %12s %12s   (maglev slots per backend %u)\n", "lb state",
              "services", "total ms", "batch ops", slots_per_backend);
  auto t0 = Clock::now();
  for (int i = 0; i < services; ++i) {
    if (absl::Status s = lb->UpsertService(Service(i, 10, 0)); !s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
  }
  std::printf("%-28s %10d %12.1f %12s\n", "upsert (10 endpoints each)", services, MsSince(t0), "-");
  t0 = Clock::now();
  dpv2::ChangeBatch b = lb->Diff();
  std::printf("%-28s %10d %12.1f %12zu\n", "first diff", services, MsSince(t0), b.size());
  lb->Acknowledge(b);
  t0 = Clock::now();
  b = lb->Diff();
  std::printf("%-28s %10d %12.1f %12zu\n", "diff with no change", services, MsSince(t0), b.size());
  t0 = Clock::now();
  const int changed = services / 10;
  for (int i = 0; i < changed; ++i) {
    (void)lb->UpsertService(Service(i, 10, 1));
  }
  b = lb->Diff();
  std::printf("%-28s %10d %12.1f %12zu\n", "10% gain an endpoint + diff", changed, MsSince(t0),
              b.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int services = argc > 1 ? std::atoi(argv[1]) : 2000;
  MaglevRows();
  LbStateRows(services, 0);
  LbStateRows(services, dpv2::DatapathConfig{}.maglev_slots_per_backend);
  return 0;
}
