// DPDK fast-path benchmark (PERF.md P5): packets per second per lcore for
// established and new flows through a real dpv2 worker lcore on in-memory
// rings, next to dpdk-testpmd io forwarding on ring devices, in the same run.
//
// dpv2: the main lcore feeds a ring-based ethdev (restoring each frame's
// original bytes, since the datapath NATs them in place) and one worker lcore
// runs the backend's burst loop. ns per packet = the worker thread's CPU time
// x the share of wall time it spent on non-empty polls / packets (the machine
// is shared, so wall time alone overstates it); capacity = 1e3 / ns. The
// achieved rate is also shown (bounded by the feeder and by other load). testpmd: `--forward-mode=io --tx-first` over two net_ring vdevs
// (each a loopback ring), one forwarding lcore; its Rx-pps sum is its rate.
// testpmd 5tswap (swaps the addresses and ports of L2-L4 in every frame)
// runs the same way, as the ceiling of a path that touches headers. New
// flows run twice: on a worker whose conntrack is reserved for all of them,
// and on one that starts at the default reserve and grows.
//
//   dpdk_bench [--quick] [--seconds N] [--no-testpmd]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "backends/dpdk/dpdk_backend.h"
#include "backends/dpdk/eal.h"
#include "backends/dpdk/rte.h"
#include "dpv2/lb_state.h"
#include "dpv2/packet.h"

namespace dpv2::dpdk {
namespace {

struct Row {
  std::string path;
  double achieved_mpps = 0;
  double ns_per_packet = 0;  // busy ns / packet (testpmd: 1e3 / Mpps)
  double capacity_mpps = 0;  // per lcore: 1e3 / ns_per_packet
};

// Runs testpmd in forwarding mode `mode` for `seconds` and returns its rate
// (Mpps), or a negative value when it could not run.
double RunTestpmd(const std::string& mode, int seconds) {
  const std::string cmd = absl::StrCat(
      "timeout -s INT ", seconds + 3, " dpdk-testpmd -l 0-1 --no-huge --no-pci -m 512 --no-shconf ",
      "--file-prefix dpv2-bench-testpmd-", getpid(),
      " --vdev net_ring0 --vdev net_ring1 --log-level '*:error' -- --forward-mode=", mode,
      " --tx-first ",
      "--nb-cores=1 --stats-period 1 --no-mlockall --total-num-mbufs=16384 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    return -1;
  }
  std::vector<double> samples;  // per second: Rx-pps of port 0 + port 1
  double current = 0;
  int ports_seen = 0;
  char line[512];
  while (fgets(line, sizeof(line), p) != nullptr) {
    const char* at = std::strstr(line, "Rx-pps:");
    if (at == nullptr) {
      continue;
    }
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::string_view(at + 7), ' ', absl::SkipEmpty());
    double pps = 0;
    if (parts.empty() || !absl::SimpleAtod(parts[0], &pps)) {
      continue;
    }
    current += pps;
    if (++ports_seen == 2) {
      samples.push_back(current);
      current = 0;
      ports_seen = 0;
    }
  }
  pclose(p);
  if (samples.size() < 3) {
    return -1;
  }
  // The first sample includes the start; take the median of the rest.
  samples.erase(samples.begin());
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2] / 1e6;
}

struct BenchPort {
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
  rte_mempool* pool = nullptr;
  std::string name;
};

BenchPort MakePort(const std::string& prefix) {
  BenchPort p;
  p.rx = rte_ring_create((prefix + "_rx").c_str(), 4096, SOCKET_ID_ANY,
                         RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.tx = rte_ring_create((prefix + "_tx").c_str(), 4096, SOCKET_ID_ANY,
                         RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.pool = rte_pktmbuf_pool_create((prefix + "_pool").c_str(), 8191, 256, 0,
                                   RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  const int id = rte_eth_from_rings(prefix.c_str(), &p.rx, 1, &p.tx, 1, SOCKET_ID_ANY);
  if (p.rx == nullptr || p.tx == nullptr || p.pool == nullptr || id < 0) {
    std::fprintf(stderr, "dpdk_bench: cannot create the ring port\n");
    std::exit(1);
  }
  char name[RTE_ETH_NAME_MAX_LEN];
  rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), name);
  p.name = name;
  return p;
}

// Keeps the worker's RX ring full with copies of `frames` (in turn) for
// `seconds`, then returns how many frames it fed.
uint64_t Feed(BenchPort& port, const std::vector<std::vector<uint8_t>>& frames, double seconds,
              bool cycle) {
  rte_mbuf* burst[96];
  size_t next = 0;
  uint64_t fed = 0;
  const absl::Time end = absl::Now() + absl::Seconds(seconds);
  uint32_t iter = 0;
  while (true) {
    if ((++iter & 255) == 0 && absl::Now() > end) {
      break;
    }
    if (!cycle && next >= frames.size()) {
      break;
    }
    // Recycle what the worker sent, and top up from the pool whenever the
    // RX ring runs low: the worker's TX buffers hold frames until a burst
    // fills or the drain timer fires, so recycling alone kept a few dozen
    // frames in flight and fed the worker bursts of one or two (its per-poll
    // cost then counted as per-packet cost).
    unsigned n = rte_ring_sc_dequeue_burst(port.tx, reinterpret_cast<void**>(burst), 64, nullptr);
    if (n < 32 && rte_ring_count(port.rx) < 1024) {
      if (rte_pktmbuf_alloc_bulk(port.pool, burst + n, 32) == 0) {
        n += 32;
      }
    }
    for (unsigned i = 0; i < n; ++i) {
      if (!cycle && next >= frames.size()) {
        rte_pktmbuf_free(burst[i]);
        continue;
      }
      const std::vector<uint8_t>& f = frames[next % frames.size()];
      ++next;
      rte_pktmbuf_reset(burst[i]);
      std::memcpy(rte_pktmbuf_append(burst[i], static_cast<uint16_t>(f.size())), f.data(), f.size());
      if (rte_ring_sp_enqueue(port.rx, burst[i]) != 0) {
        rte_pktmbuf_free(burst[i]);
        --next;
      } else {
        ++fed;
      }
    }
  }
  return fed;
}

Row Measure(const std::string& path, DpdkBackend& backend, BenchPort& port,
            const std::vector<std::vector<uint8_t>>& frames, double seconds, bool cycle) {
  const WorkerStats before = backend.ReadWorkerStats().at(0);
  const absl::Time start = absl::Now();
  Feed(port, frames, seconds, cycle);
  // Let the worker finish what is queued.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double wall_ns = absl::ToDoubleNanoseconds(absl::Now() - start);
  const WorkerStats after = backend.ReadWorkerStats().at(0);
  Row r{.path = path};
  const double packets = static_cast<double>(after.packets - before.packets);
  const double busy = static_cast<double>(after.busy_ns - before.busy_ns);
  const double cpu = static_cast<double>(after.cpu_ns - before.cpu_ns);
  r.achieved_mpps = packets / wall_ns * 1e3;
  // The machine is shared: the worker's busy wall time includes periods the
  // kernel gave its CPU to others. Its CPU time, scaled by the share of
  // time it was busy (not polling empty rings), is what the packets cost.
  const double busy_share = wall_ns > 0 ? std::min(1.0, busy / wall_ns) : 0;
  r.ns_per_packet = packets > 0 ? cpu * busy_share / packets : 0;
  r.capacity_mpps = r.ns_per_packet > 0 ? 1e3 / r.ns_per_packet : 0;
  return r;
}

int Main(int argc, char** argv) {
  double seconds = 3;
  bool testpmd = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      seconds = 1;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--no-testpmd") {
      testpmd = false;
    } else {
      std::fprintf(stderr, "usage: dpdk_bench [--quick] [--seconds N] [--no-testpmd]\n");
      return 2;
    }
  }

  // The peer first, in its own process and EAL. io forwarding (P5's
  // reference) moves mbuf pointers between rings and never reads a frame;
  // 5tswap also swaps the L2-L4 addresses and ports of every frame, the
  // least a forwarding path that looks at headers does.
  double testpmd_mpps = -1;
  double swap_mpps = -1;
  if (testpmd) {
    testpmd_mpps = RunTestpmd("io", static_cast<int>(seconds) + 2);
    swap_mpps = RunTestpmd("5tswap", static_cast<int>(seconds) + 2);
    if (testpmd_mpps < 0 || swap_mpps < 0) {
      std::fprintf(stderr, "dpdk_bench: dpdk-testpmd did not run; its rows are missing\n");
    }
  }

  absl::Status eal = AcquireEal({"-l", "0-1", "--no-huge", "--no-pci", "-m", "1024", "--no-shconf",
                                 "--file-prefix", absl::StrCat("dpv2-bench-", getpid()),
                                 "--log-level", "*:error"});
  if (!eal.ok()) {
    std::fprintf(stderr, "dpdk_bench: %s\n", std::string(eal.message()).c_str());
    return 1;
  }
  BenchPort port = MakePort("bench");
  DatapathConfig config{.ct_tcp_entries = 1u << 21};
  // New flows: every packet a SYN of a connection not seen before, two
  // conntrack entries each. The worker's conntrack is reserved for all of
  // them (DpdkOptions::conntrack_reserve), as a box sized for its peak is:
  // the rows measure a new connection, not the table doubling under it.
  const int new_flows = seconds <= 1 ? 200000 : 600000;
  constexpr int kFlows = 1024;  // established connections
  const uint32_t reserve = 2 * (new_flows + kFlows);
  absl::StatusOr<std::unique_ptr<DpdkBackend>> backend = MakeCorePipelineDpdkBackend(
      {.config = config, .ports = {{.device = port.name}}, .conntrack_reserve = reserve});
  if (!backend.ok()) {
    std::fprintf(stderr, "dpdk_bench: %s\n", std::string(backend.status().message()).c_str());
    return 1;
  }

  // One VIP with four backends, compiled by the core as everywhere else.
  absl::StatusOr<LbState> lb = LbState::Create({.datapath = config, .maglev_seed = 1});
  ServiceSpec svc{.namespace_name = "bench", .name = "vip",
                  .cluster_ips = {*IpAddr::Parse("10.0.0.100")}};
  svc.ports.push_back({.name = "", .protocol = L4Proto::kTCP, .port = 80});
  EndpointSliceSpec slice{.name = "vip", .address_type = Family::kV4};
  slice.ports.push_back({.name = "", .protocol = L4Proto::kTCP, .port = 8080});
  for (int i = 1; i <= 4; ++i) {
    slice.endpoints.push_back({.addresses = {*IpAddr::Parse(absl::StrCat("10.0.1.", i))}});
  }
  svc.endpoint_slices.push_back(slice);
  if (absl::Status s = lb->UpsertService(svc); !s.ok()) {
    std::fprintf(stderr, "dpdk_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const ChangeBatch batch = lb->Diff();
  if (absl::Status s = (*backend)->Apply(batch); !s.ok()) {
    std::fprintf(stderr, "dpdk_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  // Established: kFlows connections, opened by a SYN each, then ACKs.
  std::vector<std::vector<uint8_t>> syns, acks;
  for (int i = 0; i < kFlows; ++i) {
    const std::string client = absl::StrCat("192.168.", 10 + i / 256, ".", i % 256);
    syns.push_back(PacketBuilder().IPv4(client, "10.0.0.100").Tcp(40000, 80, kTcpSyn).Build());
    acks.push_back(PacketBuilder().IPv4(client, "10.0.0.100").Tcp(40000, 80, kTcpAck).Build());
  }
  Feed(port, syns, 10, /*cycle=*/false);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Row established = Measure("dpv2 established flows (1 lcore)", **backend, port, acks, seconds, true);

  std::vector<std::vector<uint8_t>> fresh;
  fresh.reserve(new_flows);
  for (int i = 0; i < new_flows; ++i) {
    const std::string client = absl::StrCat("172.16.", (i / 50000) % 256, ".", 1 + (i / 250) % 200);
    fresh.push_back(PacketBuilder()
                        .IPv4(client, "10.0.0.100")
                        .Tcp(static_cast<uint16_t>(1024 + i % 50000), 80, kTcpSyn)
                        .Build());
  }
  Row fresh_row = Measure("dpv2 new flows, conntrack reserved", **backend, port, fresh, 60, false);
  absl::StatusOr<Counters> counters = (*backend)->ReadCounters();
  backend->reset();

  // The same new flows on a worker whose conntrack starts at the default
  // reserve and doubles as it fills (each doubling rehashes every entry):
  // what conntrack_reserve saves, measured in this run.
  BenchPort grow_port = MakePort("grow");
  absl::StatusOr<std::unique_ptr<DpdkBackend>> grow_backend =
      MakeCorePipelineDpdkBackend({.config = config, .ports = {{.device = grow_port.name}}});
  if (!grow_backend.ok() || !(*grow_backend)->Apply(batch).ok()) {
    std::fprintf(stderr, "dpdk_bench: the second backend did not start\n");
    return 1;
  }
  Row grow_row = Measure("dpv2 new flows, conntrack growing", **grow_backend, grow_port, fresh,
                         60, false);
  grow_backend->reset();

  std::printf("\nDPDK fast path, ring devices, %s\n", seconds <= 1 ? "quick" : "full");
  std::printf("| %-34s | %13s | %11s | %20s | %15s | %15s |\n", "path", "achieved Mpps",
              "ns/packet", "capacity Mpps/lcore", "vs testpmd io", "vs 5tswap");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(36, '-').c_str(),
              std::string(15, '-').c_str(), std::string(13, '-').c_str(),
              std::string(22, '-').c_str(), std::string(17, '-').c_str(),
              std::string(17, '-').c_str());
  auto percent = [](double part, double whole) {
    return whole > 0 ? absl::StrCat(static_cast<int>(100 * part / whole + 0.5), "%")
                     : std::string("n/a");
  };
  if (testpmd_mpps > 0) {
    std::printf("| %-34s | %13.2f | %11.1f | %20.2f | %15s | %15s |\n",
                "dpdk-testpmd io forward (1 lcore)", testpmd_mpps, 1e3 / testpmd_mpps,
                testpmd_mpps, "100%", percent(testpmd_mpps, swap_mpps).c_str());
  }
  if (swap_mpps > 0) {
    std::printf("| %-34s | %13.2f | %11.1f | %20.2f | %15s | %15s |\n",
                "dpdk-testpmd 5tswap (1 lcore)", swap_mpps, 1e3 / swap_mpps, swap_mpps,
                percent(swap_mpps, testpmd_mpps).c_str(), "100%");
  }
  for (const Row& r : {established, fresh_row, grow_row}) {
    std::printf("| %-34s | %13.2f | %11.1f | %20.2f | %15s | %15s |\n", r.path.c_str(),
                r.achieved_mpps, r.ns_per_packet, r.capacity_mpps,
                percent(r.capacity_mpps, testpmd_mpps).c_str(),
                percent(r.capacity_mpps, swap_mpps).c_str());
  }
  if (counters.ok()) {
    std::printf("\ncounters: packets %llu, new service connections %llu, established %llu, "
                "conntrack_full drops %llu\n",
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_PACKETS)),
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_SERVICE_NEW)),
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_SERVICE_ESTABLISHED)),
                static_cast<unsigned long long>(counters->drop(DPV2_DROP_CT_FULL)));
  }
  std::printf("P5 (established >= 50%% of testpmd io): %s\n",
              testpmd_mpps <= 0 ? "not measured"
              : established.capacity_mpps >= 0.5 * testpmd_mpps ? "met"
                                                                : "NOT met");
  if (swap_mpps > 0) {
    std::printf("established vs 5tswap: %s of the rate of a path that reads and rewrites L2-L4\n",
                percent(established.capacity_mpps, swap_mpps).c_str());
  }
  // How to read the two ratios (docs/dpdk.md "Reading the benchmark").
  std::printf(
      "reading: io forwarding hands mbuf pointers from RX to TX and never touches a frame's\n"
      "  bytes, so its ns/packet is the ring and mbuf overhead alone; any path that parses a\n"
      "  frame pays at least a cache miss on its data and the header writes, which 5tswap\n"
      "  (swap L2-L4 addresses and ports) also pays. P5 is stated against io and printed as\n"
      "  such; the 5tswap column is the ceiling a NAT datapath can approach on this machine.\n");
  ReleaseEal();
  (void)ShutdownEal();
  return 0;
}

}  // namespace
}  // namespace dpv2::dpdk

int main(int argc, char** argv) { return dpv2::dpdk::Main(argc, argv); }
