// ebpf_bench: per-packet cost of the eBPF datapath, for an established flow
// and for a new connection (service lookup + slot pick + two conntrack
// inserts + egress policy), at 10, 10,000 and 1,048,576 service-backend
// entries (PERF.md P1, P4). Needs root.
//
//   ebpf_bench            # full run: 3 sizes, 20,000 samples each
//   ebpf_bench --quick    # smoke run: 10 and 10,000 entries, 2,000 samples
//
// Each figure is given two ways. "run p50/p99" is BPF_PROG_TEST_RUN's
// `duration` of one-packet runs: the program plus the test-run harness
// (timer, cgroup storage and bottom-half work that no real packet pays;
// ~120-170 ns here, the difference between the two figures). "prog" is the program's own time as the kernel accounts it with BPF
// statistics on (bpf_enable_stats(BPF_STATS_RUN_TIME), held for the whole
// run): run_time_ns / run_cnt of the program over the row, a mean. P4 is
// judged on "prog" (the harness is not the datapath); the difference between
// the two is the harness. The statistics add their own two clock reads to
// every run, in both figures (the FLOOR rows below show how much).
//
// Every sample is one packet in its own test run (repeat = 1): a repeated
// run would feed the program its own output, and a DNATed packet takes
// another path. Samples therefore include the kernel's two clock reads and,
// on a busy shared machine, whatever evicted the caches between calls. New
// connections use distinct tuples (source port and service both vary), so
// each one really creates its conntrack entries. Established packets are
// measured twice: "hot", one flow back to back (its map entries stay in
// cache), and "spread", cycling over 4,096 flows across the services, so that
// at 1M entries they pay the cache misses of a large table.
//
// A second table says where the time goes, at 10 entries, every row sampled
// in turn within the same loop (same machine state): two FLOOR programs (a tc
// program returning TC_ACT_OK, and one doing a single hash lookup with a
// conntrack-sized key) show what the test run and cold caches cost before
// any dpv2 code runs, with the program's own time beside each. WARM rows
// repeat one packet 1,000 times in one test run; that is honest only for a
// packet the program leaves unchanged (an established pod-to-pod flow, no
// NAT), so only such a packet is repeated. The last table gives program sizes: translated and JITed
// instructions and the verifier's count.
//
//   ebpf_bench --objects OLD.bpf.o NEW.bpf.o   # where-table rows per tc object
//
// --objects loads each given tc object (built like src/backends/ebpf's, e.g.
// an older commit's or one with a concern stubbed out) over the maps and
// tunables of the loaded backend, and samples its dpv2 rows in the same loop
// as the built-in object's: side-by-side program time from one run, which
// is how the fixed-cost breakdown and each cut in docs/datapath.md are measured.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backends/ebpf/ebpf_backend.h"
#include "core/status_macros.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "service_fleet.h"

namespace dpv2::bench {
namespace {

struct Figures {
  double median = 0;
  double p99 = 0;
  double prog_mean = 0;  // the program's own ns per run (BPF statistics)
};

Figures Summarise(std::vector<uint32_t> ns) {
  std::sort(ns.begin(), ns.end());
  return {.median = static_cast<double>(ns[ns.size() / 2]),
          .p99 = static_cast<double>(ns[ns.size() * 99 / 100])};
}

// One test run of a tc program (from-pod ingress); the kernel's duration per
// repetition (ns).
absl::StatusOr<uint32_t> TestRun(int prog_fd, std::vector<uint8_t>& frame, uint32_t repeat = 1) {
  __sk_buff ctx{};
  ctx.cb[3] = kFleetClientIfindex;  // DPV2_CB_IN_IFINDEX (bpf/common.h)
  std::vector<uint8_t> out(frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    return absl::InternalError(absl::StrCat("BPF_PROG_TEST_RUN: ", strerror(errno)));
  }
  return opts.duration;
}

absl::StatusOr<bpf_prog_info> ProgInfo(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
    return absl::InternalError(absl::StrCat("BPF_OBJ_GET_INFO_BY_FD: ", strerror(errno)));
  }
  return info;
}

// The program's own run time over a stretch of test runs, from the
// kernel's BPF statistics (run_time_ns and run_cnt of bpf_prog_info):
// Start() before the stretch, PerRun() after it; 0 when statistics are off.
class ProgramClock {
 public:
  absl::Status Start(int prog_fd) {
    prog_fd_ = prog_fd;
    DPV2_ASSIGN_OR_RETURN(start_, ProgInfo(prog_fd));
    return absl::OkStatus();
  }

  absl::StatusOr<double> PerRun() const {
    DPV2_ASSIGN_OR_RETURN(bpf_prog_info now, ProgInfo(prog_fd_));
    const uint64_t runs = now.run_cnt - start_.run_cnt;
    return runs == 0 ? 0.0
                     : static_cast<double>(now.run_time_ns - start_.run_time_ns) /
                           static_cast<double>(runs);
  }

 private:
  int prog_fd_ = -1;
  bpf_prog_info start_{};
};

// One test run, timed twice: the test run's duration (harness included) and
// the program's own run time from the kernel's BPF statistics (0 when they
// are off), both per repetition.
struct Sample {
  uint32_t duration_ns = 0;
  uint32_t prog_ns = 0;
};

absl::StatusOr<Sample> TimedRun(int prog_fd, std::vector<uint8_t>& frame, uint32_t repeat) {
  DPV2_ASSIGN_OR_RETURN(bpf_prog_info before, ProgInfo(prog_fd));
  DPV2_ASSIGN_OR_RETURN(uint32_t duration, TestRun(prog_fd, frame, repeat));
  DPV2_ASSIGN_OR_RETURN(bpf_prog_info after, ProgInfo(prog_fd));
  const uint64_t runs = after.run_cnt - before.run_cnt;
  return Sample{
      .duration_ns = duration,
      .prog_ns =
          runs == 0 ? 0 : static_cast<uint32_t>((after.run_time_ns - before.run_time_ns) / runs)};
}

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// The floor programs, assembled here so that nothing but the measured work
// is in them: `return TC_ACT_OK`, or one lookup of a zero key in `map_fd`
// (a hash map keyed like conntrack, the entry present) and then TC_ACT_OK.
absl::StatusOr<int> LoadFloorProgram(int map_fd) {
  std::vector<bpf_insn> insns;
  if (map_fd >= 0) {
    constexpr int16_t kKeyBytes = sizeof(dpv2_ct_key);
    for (int16_t off = -kKeyBytes; off < 0; off += 8) {
      insns.push_back(Insn(BPF_ST | BPF_MEM | BPF_DW, BPF_REG_10, 0, off, 0));
    }
    insns.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0));
    insns.push_back(Insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -kKeyBytes));
    insns.push_back(Insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd));
    insns.push_back(Insn(0, 0, 0, 0, 0));
    insns.push_back(Insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem));
  }
  insns.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, TC_ACT_OK));
  insns.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, map_fd >= 0 ? "floor_lookup" : "floor_ok", "GPL",
                         insns.data(), insns.size(), nullptr);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("loading a floor program: ", strerror(errno)));
  }
  return fd;
}

absl::StatusOr<int> MakeFloorMap() {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "floor_ct", sizeof(dpv2_ct_key), sizeof(dpv2_ct_value),
                          1024, &opts);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("creating the floor map: ", strerror(errno)));
  }
  dpv2_ct_key key{};
  dpv2_ct_value value{};
  if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("filling the floor map: ", strerror(errno)));
  }
  return fd;
}

std::vector<uint8_t> Tcp(uint32_t service, uint16_t sport, uint8_t flags) {
  return PacketBuilder()
      .IPv4("10.0.1.5", ServiceFleet::Frontend(service).ToString())
      .Tcp(sport, 80, flags)
      .Build();
}

struct Row {
  uint64_t entries = 0;
  Figures hot, spread, fresh, fresh_prealloc;
};

// A fleet's services in an order spread over them (a stride coprime to
// their number).
uint32_t ServiceOf(const ServiceFleet& fleet, uint32_t i) {
  return static_cast<uint32_t>((uint64_t{i} * 40503) % fleet.services);
}

// A backend with the fleet applied: its from-pod test program.
absl::StatusOr<std::unique_ptr<Backend>> FleetBackend(const ServiceFleet& fleet,
                                                      bool conntrack_prealloc, int* prog) {
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> b,
                        MakeEbpfBackend({.config = fleet.Config(),
                                         .conntrack_prealloc = conntrack_prealloc}));
  DPV2_RETURN_IF_ERROR(b->Apply(fleet.Batch()));
  *prog = dynamic_cast<ebpf::EbpfBackend*>(b.get())->from_pod_test_fd();
  return b;
}

// `samples` new connections, each on its own tuple (service and port vary).
absl::StatusOr<Figures> MeasureNew(Backend& b, int prog, const ServiceFleet& fleet,
                                   uint32_t samples) {
  std::vector<uint32_t> fresh;
  fresh.reserve(samples);
  ProgramClock clock;
  DPV2_RETURN_IF_ERROR(clock.Start(prog));
  for (uint32_t i = 0; i < samples; ++i) {
    std::vector<uint8_t> syn =
        Tcp(ServiceOf(fleet, i), static_cast<uint16_t>(1024 + i % 60000), kTcpSyn);
    DPV2_ASSIGN_OR_RETURN(uint32_t ns, TestRun(prog, syn));
    fresh.push_back(ns);
    if (i % 512 == 511) {
      DPV2_RETURN_IF_ERROR(b.DrainEvents(1 << 20).status());  // keep the ring from filling
    }
  }
  Figures f = Summarise(fresh);
  DPV2_ASSIGN_OR_RETURN(f.prog_mean, clock.PerRun());
  return f;
}

absl::StatusOr<Row> Measure(const ServiceFleet& fleet, uint32_t samples) {
  Row row{.entries = fleet.entries()};
  {
    // Preallocated conntrack first, in a backend of its own (released
    // before the main one loads: both at 1M entries would double memory).
    int prog = -1;
    DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> b, FleetBackend(fleet, true, &prog));
    DPV2_ASSIGN_OR_RETURN(row.fresh_prealloc, MeasureNew(*b, prog, fleet, samples));
  }
  int prog = -1;
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> b, FleetBackend(fleet, false, &prog));
  auto service_of = [&](uint32_t i) { return ServiceOf(fleet, i); };
  DPV2_ASSIGN_OR_RETURN(row.fresh, MeasureNew(*b, prog, fleet, samples));

  // 4,096 established flows on other source ports, then ACKs over them.
  constexpr uint32_t kFlows = 4096;
  std::vector<std::vector<uint8_t>> acks;
  for (uint32_t f = 0; f < kFlows; ++f) {
    const uint16_t sport = static_cast<uint16_t>(61000 + f % 4096);
    const uint32_t service = service_of(f * 7 + 3);
    std::vector<uint8_t> syn = Tcp(service, sport, kTcpSyn);
    DPV2_RETURN_IF_ERROR(TestRun(prog, syn).status());
    acks.push_back(Tcp(service, sport, kTcpAck));
  }
  DPV2_RETURN_IF_ERROR(b->DrainEvents(1 << 20).status());
  // `flows` of the ACKs in turn, `samples` packets.
  auto established = [&](uint32_t flows) -> absl::StatusOr<Figures> {
    std::vector<uint32_t> ns;
    ns.reserve(samples);
    ProgramClock clock;
    DPV2_RETURN_IF_ERROR(clock.Start(prog));
    for (uint32_t i = 0; i < samples; ++i) {
      DPV2_ASSIGN_OR_RETURN(uint32_t d, TestRun(prog, acks[i % flows]));
      ns.push_back(d);
    }
    Figures f = Summarise(std::move(ns));
    DPV2_ASSIGN_OR_RETURN(f.prog_mean, clock.PerRun());
    return f;
  };
  DPV2_ASSIGN_OR_RETURN(row.spread, established(kFlows));
  DPV2_ASSIGN_OR_RETURN(row.hot, established(1));
  DPV2_ASSIGN_OR_RETURN(Counters c, b->ReadCounters());
  if (c.counter(DPV2_CNT_SERVICE_NEW) != samples + kFlows ||
      c.counter(DPV2_CNT_SERVICE_ESTABLISHED) < 2 * uint64_t{samples}) {
    return absl::InternalError(
        absl::StrCat("ebpf_bench: the packets did not take the measured paths (service_new ",
                     c.counter(DPV2_CNT_SERVICE_NEW), ", service_established ",
                     c.counter(DPV2_CNT_SERVICE_ESTABLISHED), ")"));
  }
  return row;
}

// One row of the "where the time goes" table.
struct WhereRow {
  std::string what;
  int prog_fd;
  std::vector<uint8_t> frame;
  uint32_t repeat;
  std::vector<uint32_t> duration;
  std::vector<uint32_t> prog;
};

void PrintWhereRow(const WhereRow& r) {
  Figures d = Summarise(r.duration);
  Figures p = Summarise(r.prog);
  std::printf("  %-52s %6u %9.0f %9.0f %10.0f %10.0f\n", r.what.c_str(), r.repeat, d.median, d.p99,
              p.median, p.p99);
}

// A tc object loaded beside the backend's (--objects): its test twins run
// over the backend's maps.
struct ExtraObject {
  std::string label;  // the file's name
  bpf_object* obj = nullptr;
  int from_pod = -1;
  int from_network = -1;
};

void CloseObjects(std::vector<ExtraObject>& objects) {
  for (ExtraObject& o : objects) {
    bpf_object__close(o.obj);
  }
  objects.clear();
}

// The maps a loaded program uses, each with its info, as descriptors the
// caller closes.
absl::StatusOr<std::vector<std::pair<int, bpf_map_info>>> ProgramMaps(int prog_fd) {
  DPV2_ASSIGN_OR_RETURN(bpf_prog_info info, ProgInfo(prog_fd));
  std::vector<uint32_t> ids(info.nr_map_ids);
  bpf_prog_info with_ids{};
  with_ids.nr_map_ids = static_cast<uint32_t>(ids.size());
  with_ids.map_ids = reinterpret_cast<uint64_t>(ids.data());
  uint32_t len = sizeof(with_ids);
  if (bpf_obj_get_info_by_fd(prog_fd, &with_ids, &len) != 0) {
    return absl::InternalError(absl::StrCat("BPF_OBJ_GET_INFO_BY_FD (maps): ", strerror(errno)));
  }
  std::vector<std::pair<int, bpf_map_info>> maps;
  for (uint32_t id : ids) {
    const int fd = bpf_map_get_fd_by_id(id);
    bpf_map_info mi{};
    uint32_t mlen = sizeof(mi);
    if (fd < 0 || bpf_obj_get_info_by_fd(fd, &mi, &mlen) != 0) {
      for (auto& [open_fd, unused] : maps) {
        close(open_fd);
      }
      if (fd >= 0) {
        close(fd);
      }
      return absl::InternalError(absl::StrCat("map id ", id, ": ", strerror(errno)));
    }
    maps.emplace_back(fd, mi);
  }
  return maps;
}

// Copies the tunables (bpf/config.h) of the loaded object's .rodata, the
// map `loaded_fd` described by `info`, into `obj`'s before load, variable
// by variable by name: the two objects' layouts may differ.
absl::Status CopyTunables(int loaded_fd, const bpf_map_info& info, bpf_object* obj,
                          bpf_map* rodata) {
  std::vector<uint8_t> value(info.value_size);
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(loaded_fd, &zero, value.data()) != 0) {
    return absl::InternalError(absl::StrCat("reading the loaded .rodata: ", strerror(errno)));
  }
  btf* loaded_btf = btf__load_from_kernel_by_id(info.btf_id);
  if (loaded_btf == nullptr) {
    return absl::InternalError("the loaded object's BTF");
  }
  absl::Cleanup free_btf = [loaded_btf] { btf__free(loaded_btf); };
  const btf* own_btf = bpf_object__btf(obj);
  const btf_type* loaded_sec = btf__type_by_id(loaded_btf, info.btf_value_type_id);
  const int own_sec_id = btf__find_by_name_kind(own_btf, ".rodata", BTF_KIND_DATASEC);
  size_t size = 0;
  const auto* initial_value = static_cast<const uint8_t*>(bpf_map__initial_value(rodata, &size));
  if (loaded_sec == nullptr || own_sec_id < 0 || initial_value == nullptr) {
    return absl::InternalError("no .rodata section to copy the tunables through");
  }
  std::vector<uint8_t> initial(initial_value, initial_value + size);
  const btf_type* own_sec = btf__type_by_id(own_btf, own_sec_id);
  const btf_var_secinfo* own_vars = btf_var_secinfos(own_sec);
  const btf_var_secinfo* loaded_vars = btf_var_secinfos(loaded_sec);
  for (int i = 0; i < btf_vlen(own_sec); ++i) {
    const char* name =
        btf__name_by_offset(own_btf, btf__type_by_id(own_btf, own_vars[i].type)->name_off);
    for (int j = 0; j < btf_vlen(loaded_sec); ++j) {
      const char* loaded_name = btf__name_by_offset(
          loaded_btf, btf__type_by_id(loaded_btf, loaded_vars[j].type)->name_off);
      if (strcmp(name, loaded_name) == 0 && own_vars[i].size == loaded_vars[j].size &&
          own_vars[i].offset + own_vars[i].size <= size &&
          loaded_vars[j].offset + loaded_vars[j].size <= value.size()) {
        std::memcpy(initial.data() + own_vars[i].offset, value.data() + loaded_vars[j].offset,
                    own_vars[i].size);
      }
    }
  }
  if (int err = bpf_map__set_initial_value(rodata, initial.data(), initial.size()); err != 0) {
    return absl::InternalError(absl::StrCat("setting the tunables: ", strerror(-err)));
  }
  return absl::OkStatus();
}

// Loads the tc object at `path` (only its test twins) over the maps of the
// loaded program `prog_fd`: a map of the same name, type and sizes is
// shared, any other (a variant's own scratch layout) is the object's own;
// its tunables are the loaded object's.
absl::StatusOr<ExtraObject> LoadObjectOver(const std::string& path, int prog_fd) {
  DPV2_ASSIGN_OR_RETURN(auto loaded, ProgramMaps(prog_fd));
  absl::Cleanup close_maps = [&loaded] {
    for (auto& [fd, unused] : loaded) {
      close(fd);
    }
  };
  ExtraObject o{.label = path.substr(path.find_last_of('/') + 1)};
  o.obj = bpf_object__open_file(path.c_str(), nullptr);
  if (o.obj == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--objects ", path, ": ", strerror(errno)));
  }
  absl::Cleanup close_obj = [&o] { bpf_object__close(o.obj); };
  bpf_program* prog;
  bpf_object__for_each_program(prog, o.obj) {
    const std::string name = bpf_program__name(prog);
    bpf_program__set_autoload(prog,
                              name == "dpv2_from_pod_test" || name == "dpv2_from_network_test");
  }
  bpf_map* map;
  bpf_object__for_each_map(map, o.obj) {
    const std::string name = bpf_map__name(map);
    const bool rodata = name.size() > 7 && name.compare(name.size() - 7, 7, ".rodata") == 0;
    for (auto& [fd, info] : loaded) {
      const std::string loaded_name = info.name;
      if (rodata && loaded_name.size() > 7 &&
          loaded_name.compare(loaded_name.size() - 7, 7, ".rodata") == 0) {
        DPV2_RETURN_IF_ERROR(CopyTunables(fd, info, o.obj, map));
      } else if (!rodata && name.find('.') == std::string::npos &&
                 name.substr(0, BPF_OBJ_NAME_LEN - 1) == loaded_name &&
                 info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
                 info.value_size == bpf_map__value_size(map)) {
        if (int err = bpf_map__reuse_fd(map, fd); err != 0) {
          return absl::InternalError(absl::StrCat("--objects ", path, ": share map ", name, ": ",
                                                  strerror(-err)));
        }
      }
    }
  }
  if (int err = bpf_object__load(o.obj); err != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--objects ", path, ": load (verifier; see libbpf log): ", strerror(-err)));
  }
  o.from_pod = bpf_program__fd(bpf_object__find_program_by_name(o.obj, "dpv2_from_pod_test"));
  o.from_network =
      bpf_program__fd(bpf_object__find_program_by_name(o.obj, "dpv2_from_network_test"));
  std::move(close_obj).Cancel();
  return o;
}

// The floor, dpv2's established paths next to it, and warm repeats: every
// row sampled in turn within one loop. Needs the fleet's 10-entry config.
// Returns the program time of the TC_ACT_OK floor (median): what the BPF
// statistics' own clock reads add to every "prog" figure.
// `objects` (--objects) add their dpv2 rows after the built-in object's.
absl::StatusOr<double> MeasureWhere(const ServiceFleet& fleet, uint32_t samples,
                                    const std::vector<std::string>& objects = {}) {
  // With the XDP object too, for its size (it shares the tc object's maps).
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<Backend> b,
                        MakeEbpfBackend({.config = fleet.Config(), .xdp = true}));
  DPV2_RETURN_IF_ERROR(b->Apply(fleet.Batch()));
  auto* ebpf = dynamic_cast<ebpf::EbpfBackend*>(b.get());
  const int prog = ebpf->from_pod_test_fd();
  std::vector<int> fds;
  absl::Cleanup close_fds = [&fds] {
    for (int fd : fds) {
      if (fd >= 0) {
        close(fd);
      }
    }
  };

  DPV2_ASSIGN_OR_RETURN(int map, MakeFloorMap());
  fds.push_back(map);
  DPV2_ASSIGN_OR_RETURN(int floor_ok, LoadFloorProgram(-1));
  fds.push_back(floor_ok);
  DPV2_ASSIGN_OR_RETURN(int floor_lookup, LoadFloorProgram(map));
  fds.push_back(floor_lookup);

  // The connection's backend, for its replies (from the network: the
  // fleet's backends are remote).
  DPV2_ASSIGN_OR_RETURN(PacketOutcome first,
                        b->RunPacket({.entry = Entry::kFromPod, .ifindex = kFleetClientIfindex,
                                      .frame = Tcp(0, 33000, kTcpSyn)}));
  if (first.outputs.size() != 1) {
    return absl::InternalError("ebpf_bench: the service SYN was not forwarded");
  }
  const IpAddr backend = ParsePacket(first.outputs[0].frame).pkt.dst;
  std::vector<uint8_t> reply =
      PacketBuilder().IPv4(backend.ToString(), "10.0.1.5").Tcp(8080, 33000, kTcpAck).Build();
  // An established pod-to-pod flow (no service, no NAT): the program leaves
  // the packet as it is, so repeating it in one test run is honest.
  auto pod_frame = [](uint8_t flags) {
    return PacketBuilder().IPv4("10.0.1.5", "10.0.2.9").Tcp(40000, 8080, flags).Build();
  };
  std::vector<uint8_t> pod_syn = pod_frame(kTcpSyn);
  DPV2_RETURN_IF_ERROR(TestRun(prog, pod_syn).status());
  std::vector<uint8_t> pod_ack = pod_frame(kTcpAck);
  std::vector<uint8_t> floor_frame = pod_ack;

  std::vector<WhereRow> rows = {
      {"FLOOR: tc program returning TC_ACT_OK", floor_ok, floor_frame, 1},
      {"FLOOR: one hash lookup (40-byte key, hit)", floor_lookup, floor_frame, 1},
      {"dpv2 service established (hot ACK)", prog, Tcp(0, 33000, kTcpAck), 1},
      {"dpv2 service reply (backend ACK, reverse NAT)", ebpf->from_network_test_fd(), reply, 1},
      {"dpv2 pod-to-pod established (ACK, no NAT)", prog, pod_ack, 1},
      {"WARM FLOOR: TC_ACT_OK", floor_ok, floor_frame, 1000},
      {"WARM FLOOR: one hash lookup", floor_lookup, floor_frame, 1000},
      {"WARM dpv2 pod-to-pod established", prog, pod_ack, 1000},
  };
  std::vector<ExtraObject> extra;
  absl::Cleanup close_extra = [&extra] { CloseObjects(extra); };
  for (const std::string& path : objects) {
    DPV2_ASSIGN_OR_RETURN(ExtraObject o, LoadObjectOver(path, prog));
    extra.push_back(o);
    const std::string& l = o.label;
    rows.push_back({l + ": service established", o.from_pod, Tcp(0, 33000, kTcpAck), 1});
    rows.push_back({l + ": service reply", o.from_network, reply, 1});
    rows.push_back({l + ": pod-to-pod established", o.from_pod, pod_ack, 1});
    rows.push_back({l + ": WARM pod-to-pod", o.from_pod, pod_ack, 1000});
  }
  // With --objects, every one-packet row runs 4 times a turn and keeps the
  // last 3: several objects in turn evict each other's code and maps, and
  // a cut is compared on the packet with its program's caches warm, like
  // the main table's hot row (a DNATed packet cannot be repeated in one run).
  const uint32_t turn_runs = objects.empty() ? 1 : 4;
  for (uint32_t i = 0; i < samples; ++i) {
    for (WhereRow& r : rows) {
      if (r.repeat > 1 && i % 20 != 0) {
        continue;  // a warm sample is 1,000 runs: fewer of them
      }
      const uint32_t runs = r.repeat > 1 ? 1 : turn_runs;
      for (uint32_t k = 0; k < runs; ++k) {
        DPV2_ASSIGN_OR_RETURN(Sample s, TimedRun(r.prog_fd, r.frame, r.repeat));
        if (k + 1 == runs || k > 0) {
          r.duration.push_back(s.duration_ns);
          r.prog.push_back(s.prog_ns);
        }
      }
    }
  }
  std::printf("\nwhere the time goes (%llu entries; ns per packet; rows sampled in turn%s)\n",
              static_cast<unsigned long long>(fleet.entries()),
              turn_runs > 1 ? ", one-packet rows 4 runs a turn, the first not kept" : "");
  std::printf("  %-52s %6s %9s %9s %10s %10s\n", "program and packet", "repeat", "run p50",
              "run p99", "prog p50", "prog p99");
  for (const WhereRow& r : rows) {
    PrintWhereRow(r);
  }

  std::printf("\nprogram sizes (instructions after translation, JITed bytes, verifier)\n");
  std::printf("  %-22s %12s %12s %16s\n", "program", "xlated insns", "jited bytes",
              "verified insns");
  std::vector<std::pair<std::string, int>> programs = {
      {"tc from_pod (test)", ebpf->from_pod_test_fd()},
      {"tc from_network (test)", ebpf->from_network_test_fd()},
      {"xdp (test)", ebpf->xdp_test_fd()}};
  for (const ExtraObject& o : extra) {
    programs.push_back({o.label + ": tc from_pod", o.from_pod});
  }
  for (const auto& [name, fd] : programs) {
    DPV2_ASSIGN_OR_RETURN(bpf_prog_info info, ProgInfo(fd));
    std::printf("  %-22s %12u %12u %16u\n", name.c_str(), info.xlated_prog_len / 8,
                info.jited_prog_len, info.verified_insns);
  }
  return Summarise(rows.front().prog).median;
}

// --profile ROW SECONDS: one row's packets in a loop, for a profiler
// (perf record -e cpu-clock -g; the JITed programs and their global
// functions are kallsyms symbols): "hot" (service established, one flow),
// "pod" (pod-to-pod established) or "new" (new service connections; the
// conntrack flushed every 100,000). Prints packets and the test runs'
// median, so a profile's shares convert to ns.
int Profile(const std::string& what, double seconds) {
  const ServiceFleet fleet = ServiceFleet::Make(what == "new" ? 625 : 1, what == "new" ? 16 : 10);
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({.config = fleet.Config()});
  if (!b.ok() || !(*b)->Apply(fleet.Batch()).ok()) {
    std::fprintf(stderr, "ebpf_bench: cannot set the fleet up\n");
    return 1;
  }
  const int prog = dynamic_cast<ebpf::EbpfBackend*>(b->get())->from_pod_test_fd();
  std::vector<uint8_t> syn = what == "pod"
                                 ? PacketBuilder().IPv4("10.0.1.5", "10.0.2.9").Tcp(40000, 8080, kTcpSyn).Build()
                                 : Tcp(0, 33000, kTcpSyn);
  std::vector<uint8_t> ack = what == "pod"
                                 ? PacketBuilder().IPv4("10.0.1.5", "10.0.2.9").Tcp(40000, 8080, kTcpAck).Build()
                                 : Tcp(0, 33000, kTcpAck);
  if (!TestRun(prog, syn).ok()) {
    return 1;
  }
  std::vector<uint32_t> ns;
  const auto end = absl::Now() + absl::Seconds(seconds);
  for (uint32_t i = 0; absl::Now() < end; ++i) {
    std::vector<uint8_t> frame = ack;
    if (what == "new") {
      if (i % 100000 == 99999 && (!(*b)->FlushConntrack().ok() || !(*b)->DrainEvents(1 << 20).ok())) {
        return 1;
      }
      frame = Tcp((i * 40503) % fleet.services, static_cast<uint16_t>(1024 + i % 60000), kTcpSyn);
    } else if (i % 512 == 0 && !(*b)->DrainEvents(1 << 20).ok()) {
      return 1;
    }
    absl::StatusOr<uint32_t> d = TestRun(prog, frame);
    if (!d.ok()) {
      return 1;
    }
    ns.push_back(*d);
  }
  Figures f = Summarise(ns);
  std::printf("profile %s: %zu packets, run p50 %.0f ns, p99 %.0f ns\n", what.c_str(), ns.size(),
              f.median, f.p99);
  return 0;
}

// --objects: the where-table only, the built-in object's rows and each
// given object's, with BPF statistics on.
int CompareObjects(const std::vector<std::string>& objects) {
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  absl::Cleanup close_stats = [stats_fd] {
    if (stats_fd >= 0) {
      close(stats_fd);
    }
  };
  absl::StatusOr<double> floor = MeasureWhere(ServiceFleet::Make(1, 10), 5000, objects);
  if (!floor.ok()) {
    std::fprintf(stderr, "ebpf_bench: %s\n", floor.status().ToString().c_str());
    return 1;
  }
  return 0;
}

int Main(bool quick) {
  std::vector<ServiceFleet> fleets = {ServiceFleet::Make(1, 10), ServiceFleet::Make(625, 16)};
  if (!quick) {
    fleets.push_back(ServiceFleet::Make(65536, 16));
  }
  const uint32_t samples = quick ? 2000 : 20000;
  // BPF statistics stay on while this descriptor is open (not a sysctl: they
  // go off again however the program ends).
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  absl::Cleanup close_stats = [stats_fd] {
    if (stats_fd >= 0) {
      close(stats_fd);
    }
  };
  if (stats_fd < 0) {
    std::printf("(BPF statistics unavailable: %s; the prog columns read 0)\n", strerror(errno));
  }
  std::printf(
      "ebpf_bench: from-pod tc program, ns per packet, %u samples per figure; run = "
      "BPF_PROG_TEST_RUN duration (harness included), prog = the program's own time "
      "(kernel BPF statistics, mean over the row; P4 is judged on it)\n",
      samples);
  std::printf("%9s | %-20s | %-20s | %-20s | %-20s\n", "", "hot established",
              "spread established", "new connection", "new, preallocated");
  std::printf("%9s |", "entries");
  for (int i = 0; i < 4; ++i) {
    std::printf(" %6s %6s %6s |", "run50", "run99", "prog");
  }
  std::printf("\n");
  std::vector<Row> rows;
  for (const ServiceFleet& fleet : fleets) {
    absl::StatusOr<Row> row = Measure(fleet, samples);
    if (!row.ok()) {
      std::fprintf(stderr, "ebpf_bench: %s\n", row.status().ToString().c_str());
      return 1;
    }
    std::printf("%9llu |", static_cast<unsigned long long>(row->entries));
    for (const Figures* f : {&row->hot, &row->spread, &row->fresh, &row->fresh_prealloc}) {
      std::printf(" %6.0f %6.0f %6.0f |", f->median, f->p99, f->prog_mean);
    }
    std::printf("\n");
    rows.push_back(*row);
  }
  absl::StatusOr<double> floor = MeasureWhere(fleets.front(), samples);
  if (!floor.ok()) {
    std::fprintf(stderr, "ebpf_bench: %s\n", floor.status().ToString().c_str());
    return 1;
  }
  const Row& small = rows.front();
  const Row& large = rows.back();
  std::printf(
      "P1 ratio %llu/%llu entries (median): hot established %.2f, spread established "
      "%.2f, new %.2f (target <= 1.15)\n",
      static_cast<unsigned long long>(large.entries),
      static_cast<unsigned long long>(small.entries), large.hot.median / small.hot.median,
      large.spread.median / small.spread.median, large.fresh.median / small.fresh.median);
  std::printf(
      "P1 ratio, program time: hot established %.2f, spread established %.2f, new %.2f\n",
      large.hot.prog_mean / small.hot.prog_mean, large.spread.prog_mean / small.spread.prog_mean,
      large.fresh.prog_mean / small.fresh.prog_mean);
  std::printf(
      "P4 at %llu entries, program time: hot established %.0f ns vs 100 -> %s; spread "
      "established %.0f ns; new %.0f ns vs 300 -> %s (test-run p50: %.0f and %.0f ns; the "
      "statistics' own clock reads, a TC_ACT_OK program's time: %.0f ns)\n",
      static_cast<unsigned long long>(large.entries), large.hot.prog_mean,
      large.hot.prog_mean <= 100 ? "met" : "NOT met", large.spread.prog_mean,
      large.fresh.prog_mean, large.fresh.prog_mean <= 300 ? "met" : "NOT met", large.hot.median,
      large.fresh.median, *floor);
  return 0;
}

}  // namespace
}  // namespace dpv2::bench

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const bool profile = argc > 3 && std::string(argv[1]) == "--profile";
  const bool objects = argc > 1 && std::string(argv[1]) == "--objects";
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> probe =
      dpv2::MakeEbpfBackend({.config = {.max_services = 16, .max_backends = 16, .max_tables = 16}});
  if (!probe.ok()) {
    std::fprintf(stderr, "ebpf_bench: cannot load BPF programs (%s); needs root\n",
                 probe.status().ToString().c_str());
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string(ci) == "true" ? 1 : 77;
  }
  probe->reset();
  if (profile) {
    return dpv2::bench::Profile(argv[2], std::atof(argv[3]));
  }
  if (objects) {
    return dpv2::bench::CompareObjects(std::vector<std::string>(argv + 2, argv + argc));
  }
  return dpv2::bench::Main(quick);
}
