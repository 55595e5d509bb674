// DPDK fast-path benchmark (PERF.md P5): the cost of one worker lcore's
// forwarding loop per packet for established and new flows through a real
// dpv2 worker on in-memory rings, next to dpdk-testpmd on ring devices, in
// the same run.
//
// dpv2 is measured in rounds, with no feeder running while the worker works:
// the main lcore writes N frames (built once; N = 512, --round-frames) into
// N mbufs, enqueues them on the ring port's RX ring in one bulk, then sleeps
// while the worker lcore drains them through rte_eth_rx_burst, the core
// pipeline and its TX buffers; when the frames are back on the TX ring (the
// datapath NATed them in place) the next round rewrites their bytes. A
// round's cost is the worker's busy TSC time (poll-loop iterations that
// found frames, each timed whole: WorkerStats::busy_ns) over its packets.
// The median round is the figure: a round in which the kernel preempted the
// worker is an outlier on this shared machine, and short rounds keep those
// few; the 10th percentile is the cost with the least interference (to
// compare two builds at a high load). The mean over all rounds shows what
// the median hides (the conntrack doubling in the growing row). Mpps per
// lcore = 1e3 / the median ns.
//
// testpmd: `--forward-mode=io --tx-first` over two net_ring vdevs (each a
// loopback ring), one forwarding lcore; its Rx-pps sum is its rate and
// 1e3 / rate its loop's ns per packet. 5tswap (swaps the L2-L4 addresses
// and ports of every frame) runs the same way, as the ceiling of a path
// that touches headers. Established connections run both ways: the
// clients' packets to the VIP (DNAT) and the backends' replies (reverse
// NAT). New flows run twice: on a worker whose conntrack is
// reserved for all of them, and on one that starts at the default reserve
// and grows.
//
// --idle-sleep-us N lets the idle worker sleep between rounds (its busy
// time is measured the same way): under perf record its samples are then
// the busy iterations' rather than the idle polling's.
//
//   dpdk_bench [--quick] [--rounds N] [--round-frames N] [--no-testpmd] [--established-only]
//              [--idle-sleep-us N]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
  double p10_ns = 0;     // per packet, the 10th percentile round (interference least)
  double median_ns = 0;  // per packet, the median round (testpmd: 1e3 / Mpps)
  double p90_ns = 0;     // per packet, the 90th percentile round
  double mean_ns = 0;    // every round's busy time over every round's packets
  uint64_t packets = 0;
  size_t rounds = 0;
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

void Fail(absl::string_view what) {
  std::fprintf(stderr, "dpdk_bench: %s\n", std::string(what).c_str());
  std::exit(1);
}

// Runs `frames` through the backend's worker lcore in rounds (see the top of
// the file): each round writes up to `per_round` of them into fresh mbufs,
// enqueues them in one bulk and sleeps until the worker has run them all.
// With `cycle` the frames are reused in turn for `rounds` rounds; without,
// each frame runs once. `sent`, when not null, receives the bytes of every
// frame the worker sent (as the datapath rewrote them).
Row RunRounds(const std::string& path, DpdkBackend& backend, BenchPort& port,
              const std::vector<std::vector<uint8_t>>& frames, size_t per_round, int rounds,
              bool cycle, std::vector<std::vector<uint8_t>>* sent = nullptr) {
  constexpr size_t kMaxRound = 4095;  // what the 4096-slot RX ring holds
  per_round = std::min(per_round, kMaxRound);
  rte_mbuf* mbufs[kMaxRound];
  std::vector<double> round_ns;
  Row r{.path = path};
  double busy_total = 0;
  size_t next = 0;
  while (cycle ? round_ns.size() < static_cast<size_t>(rounds) : next < frames.size()) {
    const unsigned n = static_cast<unsigned>(cycle ? per_round
                                                   : std::min(per_round, frames.size() - next));
    if (rte_pktmbuf_alloc_bulk(port.pool, mbufs, n) != 0) {
      Fail("the mbuf pool ran dry");
    }
    for (unsigned i = 0; i < n; ++i) {
      const std::vector<uint8_t>& f = frames[next++ % frames.size()];
      std::memcpy(rte_pktmbuf_append(mbufs[i], static_cast<uint16_t>(f.size())), f.data(),
                  f.size());
    }
    const WorkerStats before = backend.ReadWorkerStats().at(0);
    if (rte_ring_sp_enqueue_bulk(port.rx, reinterpret_cast<void* const*>(mbufs), n, nullptr) !=
        n) {
      Fail("the RX ring did not take the round");
    }
    // Sleep (not spin) while the worker runs: this thread must not take CPU
    // time from it on a shared machine.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (backend.ReadWorkerStats().at(0).packets - before.packets < n) {
      if (absl::Now() > deadline) {
        Fail("the worker did not run a round within 10 s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    // The drain timer (100 us) flushes the last partial TX burst; the
    // iteration that ran the last frames has added its busy time by then.
    std::this_thread::sleep_for(std::chrono::microseconds(250));
    const WorkerStats after = backend.ReadWorkerStats().at(0);
    const double busy = static_cast<double>(after.busy_ns - before.busy_ns);
    const uint64_t packets = after.packets - before.packets;
    round_ns.push_back(busy / static_cast<double>(packets));
    busy_total += busy;
    r.packets += packets;
    unsigned got;
    while ((got = rte_ring_sc_dequeue_burst(port.tx, reinterpret_cast<void**>(mbufs), kMaxRound,
                                            nullptr)) > 0) {
      for (unsigned i = 0; sent != nullptr && i < got; ++i) {
        const uint8_t* data = rte_pktmbuf_mtod(mbufs[i], const uint8_t*);
        sent->emplace_back(data, data + rte_pktmbuf_data_len(mbufs[i]));
      }
      rte_pktmbuf_free_bulk(mbufs, got);
    }
  }
  std::sort(round_ns.begin(), round_ns.end());
  r.rounds = round_ns.size();
  if (!round_ns.empty()) {
    r.p10_ns = round_ns[round_ns.size() / 10];
    r.median_ns = round_ns[round_ns.size() / 2];
    r.p90_ns = round_ns[round_ns.size() * 9 / 10];
    r.mean_ns = busy_total / static_cast<double>(r.packets);
  }
  return r;
}

int Main(int argc, char** argv) {
  double seconds = 3;  // each testpmd run: seconds + 2
  int rounds = 2000;   // established rounds
  size_t round_frames = 512;
  bool testpmd = true;
  bool new_flows_rows = true;  // --established-only: none (e.g. under perf record)
  uint32_t idle_sleep_us = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      seconds = 1;
      rounds = 500;
    } else if (a == "--round-frames" && i + 1 < argc) {
      round_frames = static_cast<size_t>(std::clamp(std::atoi(argv[++i]), 1, 4095));
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--established-only") {
      new_flows_rows = false;
    } else if (a == "--no-testpmd") {
      testpmd = false;
    } else if (a == "--idle-sleep-us" && i + 1 < argc) {
      idle_sleep_us = static_cast<uint32_t>(std::clamp(std::atoi(argv[++i]), 0, 100000));
    } else {
      std::fprintf(stderr,
                   "usage: dpdk_bench [--quick] [--rounds N] [--round-frames N] [--seconds N] "
                   "[--no-testpmd] "
                   "[--established-only] [--idle-sleep-us N]\n");
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
  const int new_flows = !new_flows_rows ? 0 : seconds <= 1 ? 200000 : 600000;
  constexpr int kFlows = 1024;  // established connections
  const uint32_t reserve = 2 * (new_flows + kFlows);
  absl::StatusOr<std::unique_ptr<DpdkBackend>> backend = MakeCorePipelineDpdkBackend(
      {.config = config,
       .ports = {{.device = port.name}},
       .conntrack_reserve = reserve,
       .idle_sleep_us = idle_sleep_us});
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
  std::vector<std::vector<uint8_t>> opened;  // the SYNs as sent: DNATed to their backends
  RunRounds("open", **backend, port, syns, round_frames, 1, /*cycle=*/false, &opened);
  const Row established =
      RunRounds("dpv2 established flows (1 lcore)", **backend, port, acks, round_frames,
                rounds, true);
  // The backends' replies (backend -> client), reverse-NATed to the VIP:
  // the other half of a one-armed box's traffic.
  std::vector<std::vector<uint8_t>> replies;
  for (const std::vector<uint8_t>& f : opened) {
    const ParseResult sent = ParsePacket(f);
    replies.push_back(PacketBuilder()
                          .IPv4(sent.pkt.dst, sent.pkt.src)
                          .Tcp(sent.pkt.dport, sent.pkt.sport, kTcpAck)
                          .Build());
  }
  if (replies.size() != syns.size()) {
    Fail(absl::StrCat("the worker sent ", replies.size(), " of ", syns.size(), " SYNs"));
  }
  const Row replied = RunRounds("dpv2 established replies (1 lcore)", **backend, port, replies,
                                round_frames, rounds, true);

  std::vector<std::vector<uint8_t>> fresh;
  fresh.reserve(new_flows);
  for (int i = 0; i < new_flows; ++i) {
    const std::string client = absl::StrCat("172.16.", (i / 50000) % 256, ".", 1 + (i / 250) % 200);
    fresh.push_back(PacketBuilder()
                        .IPv4(client, "10.0.0.100")
                        .Tcp(static_cast<uint16_t>(1024 + i % 50000), 80, kTcpSyn)
                        .Build());
  }
  const Row fresh_row =
      RunRounds("dpv2 new flows, conntrack reserved", **backend, port, fresh, round_frames,
                0, false);
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
  const Row grow_row =
      RunRounds("dpv2 new flows, conntrack growing", **grow_backend, grow_port, fresh,
                round_frames, 0, false);
  grow_backend->reset();

  const double tsc_ghz = static_cast<double>(rte_get_tsc_hz()) / 1e9;
  std::printf("\nDPDK fast path, ring devices, one forwarding lcore, %s (dpv2: rounds of %zu "
              "frames, per-packet busy time of the worker's loop)\n",
              seconds <= 1 ? "quick" : "full", round_frames);
  std::printf("| %-34s | %9s | %9s | %9s | %9s | %10s | %10s | %13s | %9s |\n", "path",
              "ns p10", "ns median", "ns p90", "ns mean", "cycles", "Mpps/lcore",
              "vs testpmd io", "vs 5tswap");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(36, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(12, '-').c_str(),
              std::string(12, '-').c_str(), std::string(15, '-').c_str(),
              std::string(11, '-').c_str());
  auto percent = [](double part, double whole) {
    if (whole <= 0) {
      return std::string("n/a");
    }
    const double p = 100 * part / whole;
    return p < 10 ? absl::StrFormat("%.1f%%", p) : absl::StrFormat("%.0f%%", p);
  };
  auto print = [&](const Row& r) {
    const double mpps = r.median_ns > 0 ? 1e3 / r.median_ns : 0;
    std::printf("| %-34s | %9.1f | %9.1f | %9.1f | %9.1f | %10.0f | %10.2f | %13s | %9s |\n",
                r.path.c_str(), r.p10_ns, r.median_ns, r.p90_ns, r.mean_ns,
                r.median_ns * tsc_ghz, mpps,
                percent(mpps, testpmd_mpps).c_str(), percent(mpps, swap_mpps).c_str());
  };
  for (auto [name, mpps] : {std::pair{"dpdk-testpmd io forward", testpmd_mpps},
                            std::pair{"dpdk-testpmd 5tswap", swap_mpps}}) {
    if (mpps > 0) {
      const double ns = 1e3 / mpps;
      print({.path = name, .p10_ns = ns, .median_ns = ns, .p90_ns = ns, .mean_ns = ns});
    }
  }
  for (const Row& r : {established, replied, fresh_row, grow_row}) {
    if (r.rounds > 0) {
      print(r);
    }
  }
  std::printf("(dpv2 rounds: established %zu, replies %zu, new reserved %zu, new growing %zu; "
              "TSC %.2f GHz; testpmd: median of 1 s rate samples)\n",
              established.rounds, replied.rounds, fresh_row.rounds, grow_row.rounds, tsc_ghz);
  if (counters.ok()) {
    std::printf("\ncounters: packets %llu, new service connections %llu, established %llu, "
                "reverse-NATed %llu, conntrack_full drops %llu\n",
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_PACKETS)),
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_SERVICE_NEW)),
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_SERVICE_ESTABLISHED)),
                static_cast<unsigned long long>(counters->counter(DPV2_CNT_REV_NAT)),
                static_cast<unsigned long long>(counters->drop(DPV2_DROP_CT_FULL)));
  }
  const double established_mpps = established.median_ns > 0 ? 1e3 / established.median_ns : 0;
  std::printf("P5 (dpv2 established Mpps per lcore >= 50%% of testpmd io's): %s\n",
              testpmd_mpps <= 0                           ? "not measured"
              : established_mpps >= 0.5 * testpmd_mpps ? "met"
                                                        : "NOT met");
  if (swap_mpps > 0) {
    std::printf("established vs 5tswap: %s of the rate of a path that reads and rewrites L2-L4\n",
                percent(established_mpps, swap_mpps).c_str());
  }
  // How to read the two ratios (docs/dpdk.md "Reading the benchmark").
  std::printf(
      "reading: every row is one lcore's forwarding loop per packet with no feeder in the\n"
      "  measured time (testpmd loops its own mbufs; dpv2's frames were enqueued before the\n"
      "  round). io forwarding hands mbuf pointers from RX to TX and never touches a frame's\n"
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
