// Per-packet cost of the core pipeline (the code the sim and DPDK backends
// run) as the number of services grows: PERF.md target P1 says the cost at
// the largest size stays within 15% of the smallest. Prints a table; not a
// timed test.
//
//   pipeline_bench            # 10 .. 1,000,000 services
//   pipeline_bench --quick    # 10 .. 100,000, fewer rounds (CI smoke)
#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/datapath/datapath_tables.h"
#include "core/datapath/pipeline.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

constexpr uint32_t kTableSize = 251;
constexpr int kFlows = 4096;

dpv2_addr ServiceAddr(uint32_t i) {
  dpv2_addr a{};
  a.b[0] = 10;
  a.b[1] = static_cast<uint8_t>(96 + (i >> 16));
  a.b[2] = static_cast<uint8_t>(i >> 8);
  a.b[3] = static_cast<uint8_t>(i);
  return a;
}

// `services` frontends sharing 16 backends through one lookup table: the
// per-packet path (hash probes) is what grows or not with the table sizes.
ChangeBatch Services(uint32_t services) {
  ChangeBatch b;
  LookupTable table{.id = 1, .slots = {}};
  for (uint32_t i = 1; i <= 16; ++i) {
    BackendEntry e{.id = i, .value = {}};
    e.value.addr = IpAddr::V4(0x0a000200 + i).ToAbi();
    e.value.port = htons(8080);
    e.value.proto = DPV2_PROTO_TCP;
    e.value.family = DPV2_FAMILY_V4;
    b.backends_upsert.push_back(e);
  }
  for (uint32_t s = 0; s < kTableSize; ++s) {
    table.slots.push_back(s % 16 + 1);
  }
  b.tables_upsert = {table};
  for (uint32_t i = 0; i < services; ++i) {
    ServiceEntry s{};
    s.key.addr = ServiceAddr(i);
    s.key.port = htons(80);
    s.key.proto = DPV2_PROTO_TCP;
    s.key.family = DPV2_FAMILY_V4;
    s.value.service_id = i + 1;
    s.value.table_id = 1;
    s.value.backend_count = 16;
    b.services_upsert.push_back(s);
  }
  return b;
}

std::vector<uint8_t> Frame(uint32_t service, uint16_t sport, uint8_t flags) {
  const IpAddr dst = IpAddr::FromAbi(ServiceAddr(service), Family::kV4);
  return PacketBuilder().IPv4(IpAddr::V4(0xcb007107), dst).Tcp(sport, 80, flags).Build();
}

struct Result {
  double median_ns;
  double p99_ns;
};

Result Summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

double NowNs() {
  return std::chrono::duration<double, std::nano>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Run(uint32_t services, int rounds, Result* established, Result* created) {
  DatapathConfig config;
  config.maglev_table_size = kTableSize;
  config.max_services = std::max<uint32_t>(services, 16);
  config.ct_tcp_entries = 4 * 1024 * 1024;
  DatapathTables tables(config);
  if (!tables.Apply(Services(services)).ok()) {
    std::fprintf(stderr, "apply failed\n");
    std::exit(1);
  }
  DatapathState state(config, nullptr);
  const uint64_t now = 1'000'000'000;

  // New connections: a fresh client port each, spread over the services.
  std::vector<std::vector<uint8_t>> syns;
  for (int i = 0; i < kFlows; ++i) {
    syns.push_back(Frame(static_cast<uint32_t>(i * 7919u) % services, static_cast<uint16_t>(i), 0x02));
  }
  std::vector<double> new_samples;
  std::vector<uint8_t> work;
  for (int r = 0; r < rounds; ++r) {
    state.conntrack.Flush();
    const double start = NowNs();
    for (const std::vector<uint8_t>& f : syns) {
      work = f;
      ProcessFrame(tables, state, Entry::kFromNetwork, 1, absl::MakeSpan(work), now);
    }
    new_samples.push_back((NowNs() - start) / kFlows);
  }
  // Established: ACKs of the connections the last round created.
  std::vector<std::vector<uint8_t>> acks;
  for (int i = 0; i < kFlows; ++i) {
    acks.push_back(Frame(static_cast<uint32_t>(i * 7919u) % services, static_cast<uint16_t>(i), 0x10));
  }
  std::vector<double> est_samples;
  for (int r = 0; r < rounds; ++r) {
    const double start = NowNs();
    for (const std::vector<uint8_t>& f : acks) {
      work = f;
      ProcessFrame(tables, state, Entry::kFromNetwork, 1, absl::MakeSpan(work), now);
    }
    est_samples.push_back((NowNs() - start) / kFlows);
  }
  *created = Summarize(new_samples);
  *established = Summarize(est_samples);
}

}  // namespace
}  // namespace dpv2

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::vector<uint32_t> sizes = {10, 1000, 100000};
  if (!quick) {
    sizes.push_back(1000000);
  }
  const int rounds = quick ? 9 : 41;
  std::printf("core pipeline, per packet (ns), %d flows x %d rounds\n", dpv2::kFlows, rounds);
  std::printf("%10s %14s %10s %14s %10s %12s\n", "services", "established", "p99", "new conn",
              "p99", "est. ratio");
  double base = 0;
  for (uint32_t n : sizes) {
    dpv2::Result est, created;
    dpv2::Run(n, rounds, &est, &created);
    if (base == 0) {
      base = est.median_ns;
    }
    std::printf("%10u %14.1f %10.1f %14.1f %10.1f %12.2f\n", n, est.median_ns, est.p99_ns,
                created.median_ns, created.p99_ns, est.median_ns / base);
  }
  return 0;
}
