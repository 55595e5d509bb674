#include "backends/ebpf/skeleton.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/ebpf/table_class.h"
#include "core/status_macros.h"

// Only the helper-only tc object's bytes are used: the dpv2_tc skeleton is
// opened over them (DatapathSkeleton::Open).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "backends/ebpf/dpv2_tc_helpers.skel.h"
#pragma GCC diagnostic pop

namespace dpv2::ebpf {
namespace {

absl::Status LibbpfError(absl::string_view what, int err) {
  if (err < 0) {
    err = -err;
  }
  std::string msg = absl::StrCat("ebpf datapath: ", what, ": ", strerror(err));
  if (err == EPERM || err == EACCES) {
    return absl::PermissionDeniedError(msg);
  }
  return absl::InternalError(msg);
}

absl::Status SetSize(bpf_map* map, uint32_t entries) {
  if (entries == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ebpf datapath: map ", bpf_map__name(map), ": size 0"));
  }
  if (int err = bpf_map__set_max_entries(map, entries); err != 0) {
    return LibbpfError(absl::StrCat("map ", bpf_map__name(map), ": set size ", entries), err);
  }
  return absl::OkStatus();
}

// The tunables every object of the datapath reads (bpf/config.h).
template <typename Rodata>
void SetTunables(Rodata* r, const DatapathConfig& c, uint64_t clock_offset_ns) {
  constexpr uint64_t kNs = 1'000'000'000ull;
  for (uint32_t k = 0; k < kTableClasses; ++k) {
    r->cfg_table_class_slots[k] = TableClassSlots(c, k);
  }
  r->cfg_ct_tcp_established_ns = c.timeouts.tcp_established_s * kNs;
  r->cfg_ct_tcp_syn_ns = c.timeouts.tcp_syn_s * kNs;
  r->cfg_ct_tcp_close_ns = c.timeouts.tcp_close_s * kNs;
  r->cfg_ct_non_tcp_ns = c.timeouts.non_tcp_s * kNs;
  r->cfg_clock_offset_ns = clock_offset_ns;
  r->cfg_snat_port_min = c.snat_port_min;
  r->cfg_snat_port_max = c.snat_port_max;
}

// libbpf's log goes through here (installed once, process-wide): what the
// previous printer (libbpf's own: warnings and info to stderr) would print,
// minus one known line. Every tc attach first creates the clsact qdisc
// (bpf_tc_hook_create, NLM_F_EXCL) and takes EEXIST as "already there", but
// libbpf prints the kernel's extended ack for that EEXIST, "Exclusivity flag
// on, cannot modify.", as a warning each time.
libbpf_print_fn_t previous_libbpf_print = nullptr;

int FilterLibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  char line[512];
  vsnprintf(line, sizeof(line), format, copy);
  va_end(copy);
  if (strstr(line, "Exclusivity flag on") != nullptr || previous_libbpf_print == nullptr) {
    return 0;
  }
  return previous_libbpf_print(level, format, args);
}

void InstallLibbpfPrint() {
  static const bool installed = [] {
    previous_libbpf_print = libbpf_set_print(FilterLibbpfPrint);
    return true;
  }();
  (void)installed;
}

absl::Status Reuse(bpf_map* map, const bpf_map* owner) {
  if (int err = bpf_map__reuse_fd(map, bpf_map__fd(owner)); err != 0) {
    return LibbpfError(absl::StrCat("XDP object: share map ", bpf_map__name(map)), err);
  }
  return absl::OkStatus();
}

absl::Status PinError(const bpf_map* map, const std::string& path, absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat(
      "ebpf datapath: pinned map ", bpf_map__name(map), " (", path, "): ", what,
      "; remove the pin to start this map empty (its state is lost)"));
}

// Copies every entry of the pinned map `from` into `to`, each value
// zero-extended (or cut) to `to`'s value size: a conntrack value only grows
// at its end, and zero is what every field added there means for an entry
// the older programs wrote (include/dpv2/abi/ct.h). Arrays copy the indices
// both sizes hold; a hash map that does not fit is an error.
absl::Status CopyEntries(int from, const bpf_map_info& old_info, bpf_map* to) {
  const bool per_cpu = old_info.type == BPF_MAP_TYPE_PERCPU_ARRAY ||
                       old_info.type == BPF_MAP_TYPE_PERCPU_HASH ||
                       old_info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
  const bool array =
      old_info.type == BPF_MAP_TYPE_ARRAY || old_info.type == BPF_MAP_TYPE_PERCPU_ARRAY;
  const size_t cpus = per_cpu ? static_cast<size_t>(libbpf_num_possible_cpus()) : 1;
  // Per-CPU values are laid out one per CPU, each rounded up to 8 bytes.
  auto stride = [per_cpu](size_t size) { return per_cpu ? (size + 7) / 8 * 8 : size; };
  const size_t old_size = old_info.value_size;
  const size_t new_size = bpf_map__value_size(to);
  std::vector<uint8_t> key(old_info.key_size), next(old_info.key_size);
  std::vector<uint8_t> old_value(stride(old_size) * cpus), new_value(stride(new_size) * cpus);
  const int to_fd = bpf_map__fd(to);
  size_t copied = 0;
  for (void* prev = nullptr; bpf_map_get_next_key(from, prev, next.data()) == 0;
       key = next, prev = key.data()) {
    if (array && *reinterpret_cast<const uint32_t*>(next.data()) >= bpf_map__max_entries(to)) {
      continue;
    }
    if (bpf_map_lookup_elem(from, next.data(), old_value.data()) != 0) {
      continue;  // deleted by the programs since get_next_key
    }
    std::fill(new_value.begin(), new_value.end(), 0);
    for (size_t cpu = 0; cpu < cpus; ++cpu) {
      memcpy(new_value.data() + cpu * stride(new_size), old_value.data() + cpu * stride(old_size),
             std::min(old_size, new_size));
    }
    if (bpf_map_update_elem(to_fd, next.data(), new_value.data(), BPF_ANY) != 0) {
      return LibbpfError(absl::StrCat("map ", bpf_map__name(to), ": copying entry ", copied + 1,
                                      " of the pinned map (", bpf_map__max_entries(to),
                                      " entries now, ", old_info.max_entries, " pinned)"),
                         errno);
    }
    ++copied;
  }
  return absl::OkStatus();
}

// The dpv2_tc skeleton over `which` object's bytes. The helper-only object
// has the same maps, programs and globals (one source, bpf/csum.h), which
// bpf_object__open_skeleton binds by name (a missing one fails the open);
// ebpf_objects checks that both lay their globals out alike.
dpv2_tc* OpenTc(TcObject which) {
  if (which == TcObject::kInPlaceChecksum) {
    return dpv2_tc__open();
  }
  auto* obj = static_cast<dpv2_tc*>(calloc(1, sizeof(dpv2_tc)));
  if (obj == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  int err = dpv2_tc__create_skeleton(obj);
  if (err == 0) {
    obj->skeleton->data = const_cast<void*>(dpv2_tc_helpers__elf_bytes(&obj->skeleton->data_sz));
    err = bpf_object__open_skeleton(obj->skeleton, nullptr);
  }
  if (err != 0) {
    dpv2_tc__destroy(obj);
    errno = -err;
    return nullptr;
  }
  return obj;
}

}  // namespace

absl::string_view TcObjectBytes(TcObject which) {
  size_t size = 0;
  const void* data = which == TcObject::kInPlaceChecksum ? dpv2_tc__elf_bytes(&size)
                                                          : dpv2_tc_helpers__elf_bytes(&size);
  return absl::string_view(static_cast<const char*>(data), size);
}

bool KernelHasCastToKernCtx() {
  static const bool has = [] {
    btf* vmlinux = btf__load_vmlinux_btf();
    if (vmlinux == nullptr) {
      return false;  // no BTF: CO-RE could not relocate either
    }
    const bool found =
        btf__find_by_name_kind(vmlinux, "bpf_cast_to_kern_ctx", BTF_KIND_FUNC) >= 0;
    btf__free(vmlinux);
    return found;
  }();
  return has;
}

absl::StatusOr<TcObject> ChooseTcObject(EbpfChecksum requested, bool kernel_has_kfunc,
                                        EbpfLoadReport* report) {
  TcObject chosen = TcObject::kHelperChecksum;
  switch (requested) {
    case EbpfChecksum::kInPlace:
      if (!kernel_has_kfunc) {
        return absl::FailedPreconditionError(
            "ebpf options: checksum kInPlace: the running kernel has no bpf_cast_to_kern_ctx "
            "kfunc in its BTF (Linux 6.2+ with /sys/kernel/btf/vmlinux); use kAuto or kHelpers");
      }
      chosen = TcObject::kInPlaceChecksum;
      break;
    case EbpfChecksum::kHelpers:
      report->notes.push_back(
          "tc object with helper checksums (options: checksum kHelpers): every DNAT and "
          "reverse NAT updates its L4 checksum through bpf_l4_csum_replace");
      break;
    case EbpfChecksum::kAuto:
      if (kernel_has_kfunc) {
        chosen = TcObject::kInPlaceChecksum;
      } else {
        report->notes.push_back(
            "tc object with helper checksums: the kernel has no bpf_cast_to_kern_ctx kfunc "
            "(Linux < 6.2 or no BTF), so every DNAT and reverse NAT updates its L4 checksum "
            "through bpf_l4_csum_replace (~100 ns more a translated packet)");
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "ebpf options: checksum ", static_cast<int>(requested),
          " is none of kAuto, kInPlace, kHelpers"));
  }
  report->in_place_checksum = chosen == TcObject::kInPlaceChecksum;
  return chosen;
}

void ChooseHostRouting(bool requested, bool has_fib_lookup, bool has_redirect_neigh,
                       EbpfLoadReport* report) {
  report->host_routing = requested && has_fib_lookup;
  report->redirect_neigh = report->host_routing && has_redirect_neigh;
  if (requested && !has_fib_lookup) {
    report->notes.push_back(
        "host routing off: the kernel has no bpf_fib_lookup for tc programs (Linux < 4.18), "
        "so forwarded packets go through the node's stack (options: host_routing), which drops "
        "SNATed ones (their source is the node's own address)");
  } else if (report->host_routing && !has_redirect_neigh) {
    report->notes.push_back(
        "host routing without bpf_redirect_neigh (Linux < 5.10): a packet whose next hop has "
        "no neighbour entry yet goes through the node's stack");
  }
}

absl::StatusOr<std::unique_ptr<DatapathSkeleton>> DatapathSkeleton::Open(bool with_xdp,
                                                                         EbpfChecksum checksum) {
  InstallLibbpfPrint();
  EbpfLoadReport report;
  DPV2_ASSIGN_OR_RETURN(TcObject object,
                        ChooseTcObject(checksum, KernelHasCastToKernCtx(), &report));
  dpv2_tc* skel = OpenTc(object);
  if (skel == nullptr) {
    return LibbpfError(object == TcObject::kInPlaceChecksum
                           ? "open BPF object dpv2_tc"
                           : "open BPF object dpv2_tc (helper checksums) over the dpv2_tc skeleton",
                       errno);
  }
  dpv2_xdp* xdp = nullptr;
  if (with_xdp) {
    xdp = dpv2_xdp__open();
    if (xdp == nullptr) {
      const int err = errno;
      dpv2_tc__destroy(skel);
      return LibbpfError("open BPF object dpv2_xdp", err);
    }
  }
  return std::unique_ptr<DatapathSkeleton>(new DatapathSkeleton(skel, xdp, std::move(report)));
}

DatapathSkeleton::~DatapathSkeleton() {
  dpv2_xdp__destroy(xdp_);
  dpv2_tc__destroy(skel_);
}

absl::Status DatapathSkeleton::Configure(const DatapathConfig& c, uint32_t event_ring_bytes,
                                         uint64_t clock_offset_ns, bool conntrack_prealloc) {
  if (loaded_) {
    return absl::FailedPreconditionError("ebpf datapath: Configure after Load");
  }
  SetTunables(skel_->rodata, c, clock_offset_ns);
  if (xdp_ != nullptr) {
    SetTunables(xdp_->rodata, c, clock_offset_ns);
  }

  auto& m = skel_->maps;
  // Lookup tables: one map per size class, a value is a table's M then room
  // for its class's slots (abi/lb.h, bpf/maglev.h). A class above
  // maglev_table_size holds nothing: one entry of one word. Any class may
  // hold every table (all Services of one size).
  const std::array<bpf_map*, kTableClasses> classes = TableClassMaps(m);
  for (uint32_t k = 0; k < kTableClasses; ++k) {
    const uint32_t slots = TableClassSlots(c, k);
    if (int err = bpf_map__set_value_size(classes[k],
                                          DPV2_LB_TABLE_WORDS(slots) * sizeof(uint32_t));
        err != 0) {
      return LibbpfError(absl::StrCat("map ", bpf_map__name(classes[k]), ": set value size"), err);
    }
    DPV2_RETURN_IF_ERROR(SetSize(classes[k], slots == 0 ? 1 : c.max_tables));
  }
  if (conntrack_prealloc) {
    for (bpf_map* map : {m.dpv2_ct_tcp, m.dpv2_ct_other}) {
      if (int err = bpf_map__set_map_flags(map, bpf_map__map_flags(map) & ~BPF_F_NO_PREALLOC);
          err != 0) {
        return LibbpfError(absl::StrCat(bpf_map__name(map), ": set map flags"), err);
      }
    }
  }
  for (auto [map, size] : {std::pair{m.dpv2_services, c.max_services},
                           {m.dpv2_backends, c.max_backends},
                           {m.dpv2_source_ranges, c.max_source_ranges},
                           {m.dpv2_affinity, c.max_affinity},
                           {m.dpv2_ct_tcp, c.ct_tcp_entries},
                           {m.dpv2_ct_other, c.ct_other_entries},
                           {m.dpv2_endpoints, c.max_endpoints},
                           {m.dpv2_ipcache, c.max_ipcache},
                           {m.dpv2_policy, c.max_policy_entries},
                           {m.dpv2_snat, c.snat_entries},
                           {m.dpv2_events, event_ring_bytes}}) {
    if (absl::Status s = SetSize(map, size); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status DatapathSkeleton::SetHostRouting(bool on) {
  if (loaded_) {
    return absl::FailedPreconditionError("ebpf datapath: SetHostRouting after Load");
  }
  // A kernel without bpf_fib_lookup for tc (Linux < 4.18) cannot route; one
  // without bpf_redirect_neigh (< 5.10) leaves next hops with no neighbor
  // entry yet to the stack. The verifier never sees code a 0 here removes.
  // Both are reported (report()), not silent.
  auto has = [](bpf_func_id helper) {
    return libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, helper, nullptr) == 1;
  };
  const bool fib = on && has(BPF_FUNC_fib_lookup);
  ChooseHostRouting(on, fib, fib && has(BPF_FUNC_redirect_neigh), &report_);
  skel_->rodata->cfg_host_routing = report_.host_routing ? 1 : 0;
  skel_->rodata->cfg_redirect_neigh = report_.redirect_neigh ? 1 : 0;
  return absl::OkStatus();
}

absl::Status DatapathSkeleton::PinUnder(const std::string& dir) {
  if (loaded_) {
    return absl::FailedPreconditionError("ebpf datapath: PinUnder after Load");
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return LibbpfError(absl::StrCat("pin directory ", dir), errno);
  }
  // Builds before the size classes kept every lookup table in one map of
  // this name, which the services' table ids point into.
  const std::string single_table_map = absl::StrCat(dir, "/dpv2_lookup_tables");
  if (access(single_table_map.c_str(), F_OK) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ebpf datapath: pinned map dpv2_lookup_tables (", single_table_map,
        "): the one lookup-table map of an older build (tables are now in dpv2_tables_0 to _",
        kTableClasses - 1, ", a map per size class); remove that pin and ", dir,
        "/dpv2_services, which points into it (the agent writes both again)"));
  }
  auto& m = skel_->maps;
  std::vector<bpf_map*> pinned = {m.dpv2_counters, m.dpv2_drops,    m.dpv2_events,
                                  m.dpv2_services, m.dpv2_backends, m.dpv2_source_ranges,
                                  m.dpv2_affinity, m.dpv2_ct_tcp,   m.dpv2_ct_other,
                                  m.dpv2_endpoints, m.dpv2_ipcache, m.dpv2_policy,
                                  m.dpv2_revision, m.dpv2_snat,     m.dpv2_node_addrs};
  for (bpf_map* table_class : TableClassMaps(m)) {
    pinned.push_back(table_class);
  }
  for (bpf_map* map : pinned) {
    std::string path = absl::StrCat(dir, "/", bpf_map__name(map));
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0) {
      return LibbpfError(absl::StrCat("pin path ", path), err);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DatapathSkeleton::Migration>>
DatapathSkeleton::SetAsideIncompatiblePins() {
  std::vector<Migration> migrations;
  auto close_all = [&migrations] {
    for (const Migration& m : migrations) {
      close(m.old_fd);
    }
  };
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    const char* pin = bpf_map__pin_path(map);
    if (pin == nullptr) {
      continue;
    }
    const std::string path = pin;
    const int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      if (errno == ENOENT) {
        continue;  // Load creates and pins it
      }
      const int err = errno;
      close_all();
      return LibbpfError(absl::StrCat("open pinned map ", path), err);
    }
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
      const int err = errno;
      close(fd);
      close_all();
      return LibbpfError(absl::StrCat("inspect pinned map ", path), err);
    }
    // What libbpf compares before it reuses a pin.
    // Values that only grow at their end: conntrack's (an older layout) and
    // a lookup-table class's (a larger maglev_table_size: M and the slots
    // stay, zeros follow).
    const std::array<bpf_map*, kTableClasses> table_classes = TableClassMaps(skel_->maps);
    const bool grows_at_end =
        map == skel_->maps.dpv2_ct_tcp || map == skel_->maps.dpv2_ct_other ||
        std::find(table_classes.begin(), table_classes.end(), map) != table_classes.end();
    std::string refusal;
    if (info.type != static_cast<uint32_t>(bpf_map__type(map))) {
      refusal = absl::StrCat("map type ", info.type, ", this build's is ", bpf_map__type(map));
    } else if (info.key_size != bpf_map__key_size(map)) {
      refusal = absl::StrCat("key size ", info.key_size, ", this build's is ",
                             bpf_map__key_size(map));
    } else if (info.value_size != bpf_map__value_size(map) &&
               !(grows_at_end && info.value_size < bpf_map__value_size(map))) {
      refusal = absl::StrCat("value size ", info.value_size, ", this build's is ",
                             bpf_map__value_size(map));
    } else if (info.value_size == bpf_map__value_size(map) &&
               info.max_entries == bpf_map__max_entries(map) &&
               info.map_flags == bpf_map__map_flags(map)) {
      close(fd);
      continue;  // reused as it is
    }
    if (!refusal.empty()) {
      close(fd);
      close_all();
      return PinError(map, path, refusal);
    }
    migrations.push_back({.map = map, .path = path, .old_fd = fd});
  }
  // Only once every pin is known to be usable: no pin moves on an error.
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (unlink(migrations[i].path.c_str()) != 0) {
      const int err = errno;
      for (size_t j = 0; j < i; ++j) {
        bpf_obj_pin(migrations[j].old_fd, migrations[j].path.c_str());
      }
      close_all();
      return LibbpfError(absl::StrCat("set aside pinned map ", migrations[i].path), err);
    }
  }
  return migrations;
}

absl::Status DatapathSkeleton::Load() {
  DPV2_ASSIGN_OR_RETURN(std::vector<Migration> migrations, SetAsideIncompatiblePins());
  // On any failure below, the old maps go back under their pins.
  auto restore = [&migrations] {
    for (const Migration& m : migrations) {
      unlink(m.path.c_str());
      bpf_obj_pin(m.old_fd, m.path.c_str());
    }
  };
  struct CloseOld {
    std::vector<Migration>* migrations;
    ~CloseOld() {
      for (const Migration& m : *migrations) {
        close(m.old_fd);
      }
    }
  } close_old{&migrations};
  if (int err = dpv2_tc__load(skel_); err != 0) {
    restore();
    return LibbpfError("load (verifier or pinned map mismatch; see libbpf log)", err);
  }
  for (const Migration& m : migrations) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    absl::Status copied = bpf_obj_get_info_by_fd(m.old_fd, &info, &len) == 0
                              ? CopyEntries(m.old_fd, info, m.map)
                              : LibbpfError(absl::StrCat("inspect pinned map ", m.path), errno);
    if (!copied.ok()) {
      restore();
      return copied;
    }
  }
  if (xdp_ != nullptr) {
    // Every state map is the tc object's; only per-CPU scratch space and the
    // test-run record are the XDP object's own.
    const auto& t = skel_->maps;
    auto& x = xdp_->maps;
    for (auto [mine, owner] : {std::pair{x.dpv2_counters, t.dpv2_counters},
                               {x.dpv2_drops, t.dpv2_drops},
                               {x.dpv2_events, t.dpv2_events},
                               {x.dpv2_services, t.dpv2_services},
                               {x.dpv2_backends, t.dpv2_backends},
                               {x.dpv2_source_ranges, t.dpv2_source_ranges},
                               {x.dpv2_affinity, t.dpv2_affinity},
                               {x.dpv2_ct_tcp, t.dpv2_ct_tcp},
                               {x.dpv2_ct_other, t.dpv2_ct_other},
                               {x.dpv2_endpoints, t.dpv2_endpoints},
                               {x.dpv2_ipcache, t.dpv2_ipcache},
                               {x.dpv2_policy, t.dpv2_policy},
                               {x.dpv2_revision, t.dpv2_revision},
                               {x.dpv2_frontend_hints, t.dpv2_frontend_hints},
                               {x.dpv2_snat, t.dpv2_snat},
                               {x.dpv2_node_addrs, t.dpv2_node_addrs}}) {
      if (absl::Status s = Reuse(mine, owner); !s.ok()) {
        return s;
      }
    }
    const std::array<bpf_map*, kTableClasses> mine = TableClassMaps(x);
    const std::array<bpf_map*, kTableClasses> owner = TableClassMaps(t);
    for (uint32_t k = 0; k < kTableClasses; ++k) {
      DPV2_RETURN_IF_ERROR(Reuse(mine[k], owner[k]));
    }
    if (int err = dpv2_xdp__load(xdp_); err != 0) {
      return LibbpfError("load XDP object (verifier; see libbpf log)", err);
    }
  }
  loaded_ = true;
  // Entries a previous process stamped (pinned maps) were checked by other
  // programs against tables this one has not written yet: none is current.
  return BumpRevision();
}

absl::Status DatapathSkeleton::BumpRevision() {
  if (!loaded_) {
    return absl::FailedPreconditionError("ebpf datapath: BumpRevision before Load");
  }
  const int fd = bpf_map__fd(skel_->maps.dpv2_revision);
  const uint32_t zero = 0;
  uint32_t rev = 0;
  if (bpf_map_lookup_elem(fd, &zero, &rev) != 0) {
    return LibbpfError("map dpv2_revision: read", errno);
  }
  // Only this process writes it (the loader holds the pins); 0 means "never
  // checked" to the programs, so the counter skips it when it wraps.
  rev = rev + 1 == 0 ? 1 : rev + 1;
  if (bpf_map_update_elem(fd, &zero, &rev, BPF_ANY) != 0) {
    return LibbpfError("map dpv2_revision: write", errno);
  }
  return absl::OkStatus();
}

}  // namespace dpv2::ebpf
