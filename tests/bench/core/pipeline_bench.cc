// Per-packet cost of the core pipeline (the code the sim and DPDK backends
// run) as the number of service-backend entries grows: PERF.md target P1 says
// the cost at the largest size stays within 15% of the smallest. Prints a
// table; not a timed test.
//
// Each size is S services with 4 backends each (S x 4 service-backend
// entries, one Maglev table per service). 4096 client flows spread over the
// services: a round runs every flow once; a figure is the median (and p99) of
// the rounds. Time is the thread's CPU time, so that other processes on a
// shared machine inflate it less than wall time would; instructions per
// packet come from the CPU's counter (perf_event_open) when the kernel
// allows it, and do not depend on load at all.
//
//   pipeline_bench            # 12, 10k and 1M entries, 41 rounds
//   pipeline_bench --quick    # the same sizes, 9 rounds (CI smoke)
//   pipeline_bench --small    # 12 entries only (for callgrind's counts)
//   pipeline_bench --small --only=established   # one path only (callgrind:
//       the other path's setup runs through ProcessFrame, outside the
//       --toggle-collect='dpv2::ProcessBurst*' window)
#include <arpa/inet.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/datapath/datapath_tables.h"
#include "core/datapath/pipeline.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

constexpr uint32_t kTableSize = 13;
constexpr uint32_t kBackendsPerService = 4;
constexpr int kFlows = 4096;
constexpr int kBurst = 32;

dpv2_addr Addr(uint8_t first, uint32_t i) {
  dpv2_addr a{};
  a.b[0] = first;
  a.b[1] = static_cast<uint8_t>(i >> 16);
  a.b[2] = static_cast<uint8_t>(i >> 8);
  a.b[3] = static_cast<uint8_t>(i);
  return a;
}

// Service s: 10.x.y.z:80 -> backends 11.x.y.z (4 ids, one port each).
ChangeBatch Services(uint32_t services) {
  ChangeBatch b;
  for (uint32_t s = 0; s < services; ++s) {
    LookupTable table{.id = s + 1, .slots = {}};
    for (uint32_t k = 0; k < kBackendsPerService; ++k) {
      BackendEntry e{.id = s * kBackendsPerService + k + 1, .value = {}};
      e.value.addr = Addr(11, s);
      e.value.port = htons(static_cast<uint16_t>(8080 + k));
      e.value.proto = DPV2_PROTO_TCP;
      e.value.family = DPV2_FAMILY_V4;
      b.backends_upsert.push_back(e);
    }
    for (uint32_t slot = 0; slot < kTableSize; ++slot) {
      table.slots.push_back(s * kBackendsPerService + slot % kBackendsPerService + 1);
    }
    b.tables_upsert.push_back(std::move(table));
    ServiceEntry e{};
    e.key.addr = Addr(10, s);
    e.key.port = htons(80);
    e.key.proto = DPV2_PROTO_TCP;
    e.key.family = DPV2_FAMILY_V4;
    e.value.service_id = s + 1;
    e.value.table_id = s + 1;
    e.value.backend_count = kBackendsPerService;
    b.services_upsert.push_back(e);
  }
  return b;
}

// Counts user-space instructions of this thread; absent when the kernel
// refuses (perf_event_paranoid, containers), then reads return 0.
class InstructionCounter {
 public:
  InstructionCounter() {
    perf_event_attr attr{};
    attr.type = PERF_TYPE_HARDWARE;
    attr.size = sizeof(attr);
    attr.config = PERF_COUNT_HW_INSTRUCTIONS;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    fd_ = static_cast<int>(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    if (fd_ >= 0) {
      ioctl(fd_, PERF_EVENT_IOC_ENABLE, 0);
    }
  }
  ~InstructionCounter() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  bool ok() const { return fd_ >= 0; }
  uint64_t Read() const {
    uint64_t v = 0;
    if (fd_ < 0 || read(fd_, &v, sizeof(v)) != sizeof(v)) {
      return 0;
    }
    return v;
  }

 private:
  int fd_ = -1;
};

double ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct Figures {
  double median_ns = 0;
  double p99_ns = 0;
  double instructions = 0;  // per packet, median round
};

Figures Summarize(std::vector<double> ns, std::vector<double> instr) {
  std::sort(ns.begin(), ns.end());
  std::sort(instr.begin(), instr.end());
  return {.median_ns = ns[ns.size() / 2],
          .p99_ns = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)],
          .instructions = instr[instr.size() / 2]};
}

// The frames of one kind, packed; the pipeline rewrites in place, so each
// packet runs on a fresh copy (part of the measured cost, as an RX is).
struct FrameSet {
  std::vector<uint8_t> bytes;
  size_t frame_len = 0;
};

FrameSet Frames(uint32_t services, uint8_t tcp_flags) {
  FrameSet set;
  for (int i = 0; i < kFlows; ++i) {
    const uint32_t s = static_cast<uint32_t>(i) * 7919u % services;
    const IpAddr client = IpAddr::V4(0xcb000000u + static_cast<uint32_t>(i));
    std::vector<uint8_t> f = PacketBuilder()
                                 .IPv4(client, IpAddr::FromAbi(Addr(10, s), Family::kV4))
                                 .Tcp(static_cast<uint16_t>(10000 + i), 80, tcp_flags)
                                 .Build();
    set.frame_len = f.size();
    set.bytes.insert(set.bytes.end(), f.begin(), f.end());
  }
  return set;
}

struct Row {
  uint32_t entries = 0;
  Figures established;
  Figures created;
};

// Which paths a run measures (--only): both, or one for callgrind's counts.
enum class Paths { kBoth, kNew, kEstablished };

Row Run(uint32_t services, int burst_size, int rounds, Paths paths,
        const InstructionCounter& counter) {
  DatapathConfig config;
  config.maglev_table_size = kTableSize;
  config.max_services = std::max<uint32_t>(services, 16);
  config.max_tables = config.max_services;
  config.max_backends = config.max_services * kBackendsPerService;
  config.ct_tcp_entries = 1u << 20;
  DatapathTables tables(config);
  if (absl::Status s = tables.Apply(Services(services)); !s.ok()) {
    std::fprintf(stderr, "pipeline_bench: apply: %s\n", std::string(s.message()).c_str());
    std::exit(1);
  }
  DatapathState state(config, nullptr);
  const uint64_t now = 1'000'000'000;
  const FrameSet syns = Frames(services, kTcpSyn);
  const FrameSet acks = Frames(services, kTcpAck);
  std::vector<uint8_t> work(kBurst * 128);
  BurstFrame burst[kBurst];
  FrameResult results[kBurst];

  // One frame at a time (ProcessFrame), or bursts of kBurst (ProcessBurst,
  // what a DPDK lcore runs).
  auto run_round = [&](const FrameSet& set, std::vector<double>* ns,
                       std::vector<double>* instr) {
    const uint64_t i0 = counter.Read();
    const double t0 = ThreadCpuNs();
    for (int i = 0; i < kFlows; i += burst_size) {
      for (int k = 0; k < burst_size; ++k) {
        uint8_t* f = work.data() + k * 128;
        std::memcpy(f, set.bytes.data() + (i + k) * set.frame_len, set.frame_len);
        burst[k] = {.frame = absl::MakeSpan(f, set.frame_len),
                    .entry = Entry::kFromNetwork,
                    .ifindex = 1};
      }
      if (burst_size == 1) {
        ProcessFrame(tables, state, Entry::kFromNetwork, 1, burst[0].frame, now);
      } else {
        ProcessBurst(tables, state, absl::MakeConstSpan(burst, burst_size), now, results);
      }
    }
    ns->push_back((ThreadCpuNs() - t0) / kFlows);
    instr->push_back(static_cast<double>(counter.Read() - i0) / kFlows);
  };

  // New connections: every round starts from an empty conntrack table.
  std::vector<double> new_ns{0}, new_instr{0};
  if (paths != Paths::kEstablished) {
    new_ns.clear();
    new_instr.clear();
    for (int r = 0; r < rounds; ++r) {
      state.conntrack.Flush();
      run_round(syns, &new_ns, &new_instr);
    }
  } else {
    // Open the connections one frame at a time, outside the measured path.
    for (int i = 0; i < kFlows; ++i) {
      std::vector<uint8_t> f(syns.bytes.begin() + i * syns.frame_len,
                             syns.bytes.begin() + (i + 1) * syns.frame_len);
      ProcessFrame(tables, state, Entry::kFromNetwork, 1, absl::MakeSpan(f), now);
    }
  }
  // Established: ACKs of the connections the last round opened.
  std::vector<double> est_ns{0}, est_instr{0};
  const int est_rounds = paths == Paths::kNew ? 0 : rounds;
  if (est_rounds > 0) {
    est_ns.clear();
    est_instr.clear();
  }
  for (int r = 0; r < est_rounds; ++r) {
    run_round(acks, &est_ns, &est_instr);
  }
  if (state.counters[DPV2_CNT_SERVICE_ESTABLISHED] !=
      static_cast<uint64_t>(est_rounds) * kFlows) {
    std::fprintf(stderr, "pipeline_bench: %llu established packets, want %llu\n",
                 static_cast<unsigned long long>(state.counters[DPV2_CNT_SERVICE_ESTABLISHED]),
                 static_cast<unsigned long long>(est_rounds) * kFlows);
    std::exit(1);
  }
  return {.entries = services * kBackendsPerService,
          .established = Summarize(est_ns, est_instr),
          .created = Summarize(new_ns, new_instr)};
}

}  // namespace
}  // namespace dpv2

int main(int argc, char** argv) {
  bool quick = false;
  dpv2::Paths paths = dpv2::Paths::kBoth;
  // 3, 2,500 and 250,000 services of 4 backends.
  std::vector<uint32_t> services = {3, 2500, 250000};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--small") == 0) {
      // The smallest size only: for instruction counts under callgrind
      // (valgrind --tool=callgrind --toggle-collect='dpv2::ProcessBurst*').
      services = {3};
      quick = true;
    } else if (std::strcmp(argv[i], "--only=new") == 0) {
      paths = dpv2::Paths::kNew;
    } else if (std::strcmp(argv[i], "--only=established") == 0) {
      paths = dpv2::Paths::kEstablished;
    } else {
      std::fprintf(stderr,
                   "usage: pipeline_bench [--quick | --small] [--only=new|established]\n");
      return 2;
    }
  }
  const int rounds = quick ? 9 : 41;
  dpv2::InstructionCounter counter;
  std::printf("core pipeline, per packet, %d flows x %d rounds (thread CPU ns; instr = "
              "instructions%s)\n",
              dpv2::kFlows, rounds, counter.ok() ? "" : ", not available here");
  for (int burst : {1, dpv2::kBurst}) {
    std::printf("\n%s\n", burst == 1 ? "one frame at a time (ProcessFrame)"
                                      : "bursts of 32 (ProcessBurst, the DPDK path)");
    std::printf("| %9s | %9s | %8s | %7s | %9s | %8s | %7s | %10s | %10s |\n", "entries",
                "est. ns", "est. p99", "instr", "new ns", "new p99", "instr", "est. ratio",
                "new ratio");
    std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", "-----------", "-----------", "----------",
                "---------", "-----------", "----------", "---------", "------------",
                "------------");
    double est_base = 0;
    double new_base = 0;
    for (uint32_t n : services) {
      const dpv2::Row row = dpv2::Run(n, burst, rounds, paths, counter);
      if (est_base == 0) {
        est_base = row.established.median_ns;
        new_base = row.created.median_ns;
      }
      // Without a hardware counter (VMs) the instruction columns say n/a;
      // callgrind counts them instead (--small).
      auto instr = [&](double v) {
        char text[16];
        if (counter.ok()) {
          std::snprintf(text, sizeof(text), "%.0f", v);
        } else {
          std::snprintf(text, sizeof(text), "n/a");
        }
        return std::string(text);
      };
      std::printf("| %9u | %9.1f | %8.1f | %7s | %9.1f | %8.1f | %7s | %10.2f | %10.2f |\n",
                  row.entries, row.established.median_ns, row.established.p99_ns,
                  instr(row.established.instructions).c_str(), row.created.median_ns,
                  row.created.p99_ns, instr(row.created.instructions).c_str(),
                  row.established.median_ns / est_base, row.created.median_ns / new_base);
    }
  }
  std::printf("\nP1 (cost at 1M entries within 15%% of 12): see est. ratio, last row\n");
  return 0;
}
