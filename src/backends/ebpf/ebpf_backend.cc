// The eBPF backend: configuration into BPF maps, packets through
// BPF_PROG_TEST_RUN, observations out of per-CPU arrays and a ring buffer.
//
// Apply validates a batch against a DatapathTables model of the maps (the
// same validation the sim backend runs, so both accept and reject the same
// batches), then writes the maps in the order of include/dpv2/batch.h,
// recording the previous value of every key it touches. A map write that
// still fails (the kernel ran out of memory) is undone from that record, so
// the datapath keeps the state it had. The record costs no read where the
// model says the map was empty (a full load), one whole-map batch read where
// the batch writes much of a hash map, else one lookup per key (exact-prefix
// for LPM tries, whose plain lookup answers with a covering prefix).
//
// Garbage collection and the refresh race: the datapath refreshes a live
// entry in place, without locks. The collector removes an entry only with
// BPF_MAP_LOOKUP_AND_DELETE_ELEM, which returns the value as it was at the
// moment of deletion; if that value is no longer expired (a packet refreshed
// it after the collector's scan), the entry is put back with BPF_NOEXIST (a
// new entry the datapath created meanwhile wins). An entry is only a
// candidate once it has been expired for kGcGraceNs, longer than any BPF
// program runs, so a packet that found the entry alive has finished its
// in-place write before the collector may take it.
#include "backends/ebpf/ebpf_backend.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/pkt_cls.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace dpv2::ebpf {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000ull;
constexpr uint64_t kGcGraceNs = 10'000'000ull;  // 10 ms
constexpr uint64_t kMaxAffinityIdleNs = 86400ull * kNsPerSecond;
constexpr size_t kMaxPendingEvents = 1 << 16;

// Outcome codes the *_test programs leave in __sk_buff.cb (bpf/common.h).
constexpr uint32_t kCbVerdictPass = 0;
constexpr uint32_t kCbVerdictRedirect = 1;
constexpr uint32_t kCbVerdictTx = 2;
constexpr uint32_t kCbVerdictNext = 4;  // XDP: handed on to tc

// bpf/dpv2_xdp.bpf.c struct dpv2_xdp_test_io.
struct XdpTestIo {
  uint32_t in_ifindex = 0;
  uint32_t verdict = 0;
  uint32_t drop_reason = 0;
  uint32_t ifindex = 0;
};

std::string Bytes(const void* p, size_t n) {
  return std::string(static_cast<const char*>(p), n);
}

absl::Status Errno(absl::string_view what, int err) {
  return absl::InternalError(absl::StrCat("ebpf backend: ", what, ": ", strerror(err)));
}

// How long a deleted lookup table stays in the map (see "Retired tables" in
// the file comment): far longer than any program runs.
constexpr uint64_t kTableGraceNs = 100'000'000ull;  // 100 ms
// Bytes of table values handed to the kernel per batch call.
constexpr size_t kTableBytesPerCall = 8 << 20;

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

// One map write with what it replaced, so that it can be undone.
struct UndoRecord {
  const BpfMap* map;
  std::string key;
  std::optional<std::string> old_value;
  bool retired = false;  // a lookup table id queued on the retired list
};

// The writes of one batch, each recorded with the value it replaced before it
// is made, so that Undo can restore the maps. Writes of many entries go to
// the kernel in batch calls (one syscall per map and chunk).
class MapTransaction {
 public:
  MapTransaction(const std::array<BpfMap, kTableClasses>& tables,
                 std::vector<RetiredTable>& retired)
      : tables_(tables), retired_(retired) {}

  // How many entries `map` held before the batch (the validation model's
  // count, taken before the model applied it), and whether it is an LPM
  // trie. A map that held none needs no read to know each key was absent:
  // that is every map of a full load. A map not described is read key by key.
  void Describe(const BpfMap& map, size_t entries_before, bool lpm) {
    plans_[&map] = {.entries_before = entries_before, .lpm = lpm};
  }

  // Entries of a hash or LPM map (with .key and .value members).
  template <typename Entry, typename K, typename V>
  absl::Status PutMany(const BpfMap& map, const std::vector<Entry>& entries, K Entry::*key,
                       V Entry::*value) {
    DPV2_RETURN_IF_ERROR(Begin(map, entries.size()));
    std::string keys(entries.size() * sizeof(K), '\0');
    std::string values(entries.size() * sizeof(V), '\0');
    for (size_t i = 0; i < entries.size(); ++i) {
      std::memcpy(keys.data() + i * sizeof(K), &(entries[i].*key), sizeof(K));
      std::memcpy(values.data() + i * sizeof(V), &(entries[i].*value), sizeof(V));
      DPV2_RETURN_IF_ERROR(Record(map, &(entries[i].*key)));
    }
    return WriteMany(map, keys.data(), values.data(), entries.size());
  }
  // Keys that all take the same value.
  template <typename K, typename V>
  absl::Status PutKeys(const BpfMap& map, const std::vector<K>& keys, const V& value) {
    DPV2_RETURN_IF_ERROR(Begin(map, keys.size()));
    std::string values(keys.size() * sizeof(V), '\0');
    for (size_t i = 0; i < keys.size(); ++i) {
      std::memcpy(values.data() + i * sizeof(V), &value, sizeof(V));
      DPV2_RETURN_IF_ERROR(Record(map, &keys[i]));
    }
    return WriteMany(map, keys.data(), values.data(), keys.size());
  }
  template <typename K>
  absl::Status RemoveMany(const BpfMap& map, const std::vector<K>& keys) {
    DPV2_RETURN_IF_ERROR(Begin(map, keys.size()));
    for (const K& k : keys) {
      DPV2_RETURN_IF_ERROR(Record(map, &k));
    }
    absl::Status s = map.DeleteBatch(keys.data(), static_cast<uint32_t>(keys.size()));
    if (IsUnsupported(s)) {
      for (const K& k : keys) {
        DPV2_RETURN_IF_ERROR(map.Delete(&k));
      }
      return absl::OkStatus();
    }
    return s;
  }
  // Whole lookup tables of one size class, values of the class's room back
  // to back. When the map is full, `make_room` may free space (retired
  // tables) and say so; the write is then tried once more.
  absl::Status PutTables(uint32_t table_class, const std::vector<uint32_t>& ids,
                         const std::vector<uint32_t>& values,
                         const std::function<bool()>& make_room) {
    const BpfMap& map = tables_[table_class];
    DPV2_RETURN_IF_ERROR(Begin(map, ids.size()));
    for (const uint32_t& id : ids) {
      DPV2_RETURN_IF_ERROR(Record(map, &id));
    }
    const uint32_t n = static_cast<uint32_t>(ids.size());
    absl::Status s = map.UpdateBatch(ids.data(), values.data(), n);
    if (absl::IsResourceExhausted(s) && make_room()) {
      s = map.UpdateBatch(ids.data(), values.data(), n);
    }
    return s;
  }
  // Lookup tables deleted by the batch (`classes[i]` holds `ids[i]`):
  // retired now, deleted from their map after the grace period.
  void RetireTables(const std::vector<uint32_t>& ids, const std::vector<uint32_t>& classes) {
    const uint64_t release = MonotonicNs() + kTableGraceNs;
    for (size_t i = 0; i < ids.size(); ++i) {
      const uint32_t id = ids[i];
      retired_.push_back({.id = id, .table_class = classes[i], .release_after_ns = release});
      log_.push_back(
          {.map = &tables_[classes[i]], .key = Bytes(&id, sizeof(id)), .retired = true});
    }
  }

  // Best effort, newest first: a failure here leaves the maps as they are.
  void Undo() {
    for (auto it = log_.rbegin(); it != log_.rend(); ++it) {
      if (it->retired) {
        // Retired by this batch (the newest entries): back in use.
        retired_.pop_back();
      } else if (it->old_value.has_value()) {
        it->map->Update(it->key.data(), it->old_value->data()).IgnoreError();
      } else if (std::optional<uint32_t> table_class = TableClassOfMap(it->map)) {
        // A frontend may have pointed to it for a moment: retire, not delete.
        uint32_t id;
        std::memcpy(&id, it->key.data(), sizeof(id));
        retired_.push_back({.id = id,
                            .table_class = *table_class,
                            .release_after_ns = MonotonicNs() + kTableGraceNs});
      } else {
        it->map->Delete(it->key.data()).IgnoreError();
      }
    }
  }

 private:
  static bool IsUnsupported(const absl::Status& s) { return absl::IsUnimplemented(s); }

  absl::Status WriteMany(const BpfMap& map, const void* keys, const void* values, size_t n) {
    absl::Status s = map.UpdateBatch(keys, values, static_cast<uint32_t>(n));
    if (IsUnsupported(s)) {
      const char* k = static_cast<const char*>(keys);
      const char* v = static_cast<const char*>(values);
      for (size_t i = 0; i < n; ++i) {
        DPV2_RETURN_IF_ERROR(map.Update(k + i * map.key_size(), v + i * map.value_size()));
      }
      return absl::OkStatus();
    }
    return s;
  }

  // How the old values of one map's keys are found.
  struct Plan {
    size_t entries_before = SIZE_MAX;  // unknown: read each key
    bool lpm = false;
    // A hash map a large part of which the batch writes: read whole (a few
    // batch calls) instead of one lookup per key.
    std::optional<absl::flat_hash_map<std::string, std::string>> whole;
    // An LPM trie's first key, read before each operation (see
    // BpfMap::LookupExactPrefix); nullopt when the trie is empty.
    std::optional<std::string> first_key;
  };
  // Whole-map reads pay when the batch writes at least 1/8 of the entries.
  static constexpr size_t kWholeMapShare = 8;

  // Before an operation records and writes `n` keys of `map`. Reads made
  // here may see this batch's earlier writes to the map: that is what a key
  // by key read at that point sees too, and Undo restores newest first.
  absl::Status Begin(const BpfMap& map, size_t n) {
    Plan& p = plans_[&map];
    if (p.entries_before == 0 || n == 0) {
      return absl::OkStatus();
    }
    if (p.lpm) {
      DPV2_ASSIGN_OR_RETURN(p.first_key, map.FirstKey());
    } else if (!p.whole.has_value() && n * kWholeMapShare >= p.entries_before) {
      // A map type without batch reads, or a bucket too large for one call:
      // key by key instead.
      absl::StatusOr<absl::flat_hash_map<std::string, std::string>> all = map.Entries();
      if (all.ok()) {
        p.whole = *std::move(all);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Record(const BpfMap& map, const void* key) {
    UndoRecord r{.map = &map, .key = Bytes(key, map.key_size())};
    const Plan& p = plans_[&map];
    if (p.entries_before != 0) {
      if (p.whole.has_value()) {
        if (auto it = p.whole->find(r.key); it != p.whole->end()) {
          r.old_value = it->second;
        }
      } else if (!p.lpm || p.first_key.has_value()) {
        std::string old(map.value_size(), '\0');
        DPV2_ASSIGN_OR_RETURN(bool found, p.lpm ? map.LookupExactPrefix(key, *p.first_key,
                                                                        old.data())
                                                : map.Lookup(key, old.data()));
        if (found) {
          r.old_value = std::move(old);
        }
      }
    }
    log_.push_back(std::move(r));
    return absl::OkStatus();
  }

  // The class of `map` when it is one of the lookup-table class maps.
  std::optional<uint32_t> TableClassOfMap(const BpfMap* map) const {
    for (uint32_t k = 0; k < kTableClasses; ++k) {
      if (map == &tables_[k]) {
        return k;
      }
    }
    return std::nullopt;
  }

  const std::array<BpfMap, kTableClasses>& tables_;
  std::vector<RetiredTable>& retired_;
  std::vector<UndoRecord> log_;
  absl::flat_hash_map<const BpfMap*, Plan> plans_;
};

// A table write its class map had no room for (after retired tables were
// released), named by the first of `ids` the map lacks (a batch update stops
// at the first failure) and by the frontends the batch points to it.
absl::Status TableWriteError(const absl::Status& s, const BpfMap& map,
                             const std::vector<uint32_t>& ids, const ChangeBatch& b) {
  std::vector<uint32_t> value(map.value_size() / sizeof(uint32_t));
  uint32_t failed = ids.empty() ? 0 : ids.front();
  for (uint32_t id : ids) {
    if (absl::StatusOr<bool> found = map.Lookup(&id, value.data()); found.ok() && !*found) {
      failed = id;
      break;
    }
  }
  std::string frontends;
  for (const ServiceEntry& e : b.services_upsert) {
    if (e.value.table_id == failed) {
      absl::StrAppend(&frontends, frontends.empty() ? "" : ", ", DescribeServiceKey(e.key));
    }
  }
  return absl::Status(s.code(), absl::StrCat("lookup table ", failed, " of frontend ",
                                             frontends.empty() ? "(none in the batch)" : frontends,
                                             ": ", s.message()));
}

bool IsArray(const bpf_map* map) {
  const bpf_map_type t = bpf_map__type(map);
  return t == BPF_MAP_TYPE_ARRAY || t == BPF_MAP_TYPE_PERCPU_ARRAY;
}

bool IsPerCpu(const bpf_map* map) {
  const bpf_map_type t = bpf_map__type(map);
  return t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_PERCPU_HASH ||
         t == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

// .rodata and .kconfig are frozen at load: nothing can change them.
bool IsFrozen(const bpf_map* map) {
  const absl::string_view name = bpf_map__name(map);
  return bpf_map__is_internal(map) &&
         (absl::EndsWith(name, ".rodata") || absl::EndsWith(name, ".kconfig"));
}

template <typename K, typename V>
BpfMap MapOf(bpf_map* m) {
  return BpfMap(bpf_map__fd(m), bpf_map__name(m), sizeof(K), sizeof(V));
}

// Moves the timestamps `fields` of every entry of `map` (values V) `ns`
// back, stopping at 0 (EbpfBackend::AgeState).
template <typename V>
absl::Status AgeEntries(const BpfMap& map, uint64_t ns,
                        std::initializer_list<__u64 V::*> fields) {
  DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, map.Keys());
  for (const std::string& k : keys) {
    V v;
    DPV2_ASSIGN_OR_RETURN(bool found, map.Lookup(k.data(), &v));
    if (!found) {
      continue;
    }
    for (__u64 V::*field : fields) {
      v.*field = v.*field > ns ? v.*field - ns : 0;
    }
    DPV2_RETURN_IF_ERROR(map.Update(k.data(), &v, BPF_EXIST));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t EbpfBackend::Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec) +
         kEbpfClockOffsetNs;
}

EbpfBackend::EbpfBackend(const EbpfOptions& options) : options_(options) {}

EbpfBackend::~EbpfBackend() {
  if (ring_ != nullptr) {
    ring_buffer__free(ring_);
  }
  // Unpinned, the XDP link dies with its last descriptor: the program is
  // detached. Pinned, it stays for the next process to update.
  if (xdp_link_fd_ >= 0) {
    close(xdp_link_fd_);
  }
  // Pinned maps outlive this process: leave no retired table behind for the
  // next one to find (unpinned, the maps go with the skeleton).
  if (!options_.pin_path.empty() && table_classes_[0].fd() >= 0) {
    ReleaseRetiredTables(/*wait=*/true).IgnoreError();
  }
  // A pinned instance keeps its programs attached: the next process replaces
  // them atomically and established connections never see a gap.
  if (options_.pin_path.empty()) {
    for (uint32_t ifindex : attached_) {
      DetachTc(ifindex).IgnoreError();
    }
  }
}

absl::StatusOr<std::unique_ptr<EbpfBackend>> EbpfBackend::Create(const EbpfOptions& options) {
  DPV2_RETURN_IF_ERROR(options.config.Validate());
  const uint32_t ring = options.event_ring_bytes;
  if (ring < 4096 || (ring & (ring - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ebpf options: event_ring_bytes ", ring, " is not a power of two >= 4096"));
  }
  std::unique_ptr<EbpfBackend> b(new EbpfBackend(options));
  DPV2_RETURN_IF_ERROR(b->Init());
  return b;
}

absl::Status EbpfBackend::Init() {
  DPV2_ASSIGN_OR_RETURN(skel_, DatapathSkeleton::Open(options_.xdp, options_.checksum));
  DPV2_RETURN_IF_ERROR(
      skel_->Configure(options_.config, options_.event_ring_bytes, kEbpfClockOffsetNs,
                       options_.conntrack_prealloc));
  DPV2_RETURN_IF_ERROR(skel_->SetHostRouting(options_.host_routing));
  if (!options_.pin_path.empty()) {
    DPV2_RETURN_IF_ERROR(skel_->PinUnder(options_.pin_path));
  }
  DPV2_RETURN_IF_ERROR(skel_->Load());
  auto& m = skel_->get()->maps;
  services_ = MapOf<dpv2_lb_key, dpv2_lb_value>(m.dpv2_services);
  backends_ = MapOf<uint32_t, dpv2_backend>(m.dpv2_backends);
  const std::array<bpf_map*, kTableClasses> classes = TableClassMaps(m);
  for (uint32_t k = 0; k < kTableClasses; ++k) {
    table_classes_[k] = BpfMap(bpf_map__fd(classes[k]), bpf_map__name(classes[k]),
                               sizeof(uint32_t), bpf_map__value_size(classes[k]));
  }
  source_ranges_ = MapOf<dpv2_src_range_key, uint8_t>(m.dpv2_source_ranges);
  endpoints_ = MapOf<dpv2_endpoint_key, dpv2_endpoint_value>(m.dpv2_endpoints);
  ipcache_ = MapOf<dpv2_ipcache_key, dpv2_ipcache_value>(m.dpv2_ipcache);
  policy_ = MapOf<dpv2_policy_key, dpv2_policy_value>(m.dpv2_policy);
  ct_tcp_ = MapOf<dpv2_ct_key, dpv2_ct_value>(m.dpv2_ct_tcp);
  ct_other_ = MapOf<dpv2_ct_key, dpv2_ct_value>(m.dpv2_ct_other);
  affinity_ = MapOf<dpv2_affinity_key, dpv2_affinity_value>(m.dpv2_affinity);
  snat_ = MapOf<dpv2_ct_key, dpv2_snat_value>(m.dpv2_snat);
  node_addrs_ = MapOf<dpv2_node_addr_key, dpv2_node_addr_value>(m.dpv2_node_addrs);
  counters_ = MapOf<uint32_t, uint64_t>(m.dpv2_counters);
  drops_ = MapOf<uint32_t, uint64_t>(m.dpv2_drops);
  ring_ = ring_buffer__new(bpf_map__fd(m.dpv2_events), &EbpfBackend::OnEvent, this, nullptr);
  if (ring_ == nullptr) {
    return Errno("ring buffer dpv2_events", errno);
  }
  // Pinned maps may hold a previous process's state: the model starts from it.
  DPV2_RETURN_IF_ERROR(RebuildModelFromMaps());
  if (options_.pin_path.empty()) {
    // What Reset writes back: arrays are not empty at load (zeros, or a
    // global's initial value).
    DPV2_RETURN_IF_ERROR(ForEachMap([&](bpf_map* map, const BpfMap& bm) -> absl::Status {
      if (IsArray(map) && !IsFrozen(map)) {
        DPV2_ASSIGN_OR_RETURN(arrays_at_load_[bm.name()], ReadMapEntries(bm));
      }
      return absl::OkStatus();
    }));
  }
  if (options_.external_ifindex != 0) {
    // tc first: XDP hands frames on to it, so it must be in place.
    DPV2_RETURN_IF_ERROR(AttachTc(options_.external_ifindex, from_network_fd()));
    if (options_.xdp) {
      DPV2_RETURN_IF_ERROR(AttachXdp(options_.external_ifindex));
    }
  }
  if (options_.attach_to_endpoints) {
    // A restarted process takes over the veths of the endpoints it inherited
    // at once, rather than when the agent next applies them.
    DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, endpoints_.Keys());
    for (const std::string& k : keys) {
      dpv2_endpoint_value v;
      DPV2_ASSIGN_OR_RETURN(bool found, endpoints_.Lookup(k.data(), &v));
      if (found) {
        DPV2_RETURN_IF_ERROR(AttachFromPod(v.ifindex));
      }
    }
  }
  return absl::OkStatus();
}

int EbpfBackend::from_pod_fd() const {
  return bpf_program__fd(skel_->get()->progs.dpv2_from_pod);
}
int EbpfBackend::from_network_fd() const {
  return bpf_program__fd(skel_->get()->progs.dpv2_from_network);
}
int EbpfBackend::from_pod_test_fd() const {
  return bpf_program__fd(skel_->get()->progs.dpv2_from_pod_test);
}
int EbpfBackend::from_network_test_fd() const {
  return bpf_program__fd(skel_->get()->progs.dpv2_from_network_test);
}

absl::Status EbpfBackend::AttachTc(uint32_t ifindex, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) {
    return Errno(absl::StrCat("tc hook on ifindex ", ifindex), -err);
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = 1,
              .priority = 1);
  if (err = bpf_tc_attach(&hook, &opts); err != 0) {
    return Errno(absl::StrCat("tc attach on ifindex ", ifindex), -err);
  }
  for (uint32_t i : attached_) {
    if (i == ifindex) {
      return absl::OkStatus();
    }
  }
  attached_.push_back(ifindex);
  return absl::OkStatus();
}

absl::Status EbpfBackend::DetachTc(uint32_t ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
  if (int err = bpf_tc_detach(&hook, &opts); err != 0 && err != -ENOENT && err != -ENODEV) {
    return Errno(absl::StrCat("tc detach on ifindex ", ifindex), -err);
  }
  return absl::OkStatus();
}

int EbpfBackend::xdp_fd() const {
  return skel_->xdp() == nullptr ? -1 : bpf_program__fd(skel_->xdp()->progs.dpv2_xdp_from_network);
}
int EbpfBackend::xdp_test_fd() const {
  return skel_->xdp() == nullptr ? -1
                                 : bpf_program__fd(skel_->xdp()->progs.dpv2_xdp_from_network_test);
}

absl::Status EbpfBackend::AttachXdp(uint32_t ifindex) {
  const std::string pin =
      options_.pin_path.empty() ? std::string() : absl::StrCat(options_.pin_path, "/xdp_link");
  if (!pin.empty()) {
    // A previous process's link: swap its program in one step, no window.
    if (int fd = bpf_obj_get(pin.c_str()); fd >= 0) {
      if (bpf_link_update(fd, xdp_fd(), nullptr) == 0) {
        xdp_link_fd_ = fd;
        return absl::OkStatus();
      }
      // Its device is gone (or it is not a link): start over.
      close(fd);
      unlink(pin.c_str());
    }
  }
  LIBBPF_OPTS(bpf_link_create_opts, link_opts);
  const int fd = bpf_link_create(xdp_fd(), static_cast<int>(ifindex), BPF_XDP, &link_opts);
  if (fd < 0) {
    return Errno(absl::StrCat("XDP link on ifindex ", ifindex), errno);
  }
  xdp_link_fd_ = fd;
  if (!pin.empty() && bpf_obj_pin(fd, pin.c_str()) != 0) {
    return Errno(absl::StrCat("pin XDP link at ", pin), errno);
  }
  return absl::OkStatus();
}

absl::Status EbpfBackend::AttachFromPod(uint32_t ifindex) {
  return AttachTc(ifindex, from_pod_fd());
}

absl::Status EbpfBackend::Apply(const ChangeBatch& batch) {
  absl::MutexLock lock(&mu_);
  const EntryCounts before{.services = model_->service_count(),
                           .backends = model_->backend_count(),
                           .tables = model_->table_count(),
                           .source_ranges = model_->source_range_count(),
                           .endpoints = model_->endpoint_count(),
                           .ipcache = model_->ipcache_count(),
                           .policy = model_->policy_count()};
  // The class of each table the batch deletes, while the model still knows
  // its size (a table it does not know is in no map: class 0 finds nothing).
  std::vector<uint32_t> deleted_classes;
  deleted_classes.reserve(batch.tables_delete.size());
  for (uint32_t id : batch.tables_delete) {
    deleted_classes.push_back(TableClassOf(model_->FindTable(id).size()));
  }
  // The model rejects a bad batch before any map changes.
  DPV2_RETURN_IF_ERROR(model_->Apply(batch));
  absl::Status s = absl::OkStatus();
  if (options_.attach_to_endpoints) {
    // Programs first: an endpoint whose veth cannot take the program (gone,
    // wrong ifindex) fails the batch before any map changes. A program
    // attached for a batch that then fails is harmless: it is the datapath
    // every pod veth runs, and the maps do not name that pod.
    for (const EndpointEntry& e : batch.endpoints_upsert) {
      s = AttachFromPod(e.value.ifindex);
      if (!s.ok()) {
        const IpAddr addr = IpAddr::FromAbi(e.key.addr, static_cast<Family>(e.key.family));
        s = absl::Status(s.code(), absl::StrCat("endpoint ", addr.ToString(), ": ", s.message()));
        break;
      }
    }
  }
  if (s.ok()) {
    s = ApplyToMaps(batch, before, deleted_classes);
    // Whatever the maps now hold (written or undone), established flows
    // check it again at their next forward packet (bpf/revision.h).
    if (absl::Status r = skel_->BumpRevision(); s.ok()) {
      s = r;
    }
  }
  if (!s.ok()) {
    // The maps were restored (or never touched); make the model agree with
    // them again.
    if (absl::Status r = RebuildModelFromMaps(); !r.ok()) {
      return absl::InternalError(absl::StrCat(s.message(), "; then: ", r.message()));
    }
    return s;
  }
  return absl::OkStatus();
}

absl::Status EbpfBackend::ApplyToMaps(const ChangeBatch& b, const EntryCounts& before,
                                      const std::vector<uint32_t>& deleted_classes) {
  DPV2_RETURN_IF_ERROR(ReleaseRetiredTables(/*wait=*/false));
  if (!retired_tables_.empty() && !b.tables_upsert.empty()) {
    // An id written again to the class map where it is retired would be
    // replaced in place under a packet that may still read it: let its
    // grace period end first.
    absl::flat_hash_set<std::pair<uint32_t, uint32_t>> retired;
    for (const RetiredTable& r : retired_tables_) {
      retired.insert({r.table_class, r.id});
    }
    for (const LookupTable& t : b.tables_upsert) {
      if (retired.contains({TableClassOf(t.slots.size()), t.id})) {
        DPV2_RETURN_IF_ERROR(ReleaseRetiredTables(/*wait=*/true));
        break;
      }
    }
  }
  MapTransaction tx(table_classes_, retired_tables_);
  // The model holds exactly what these maps hold (only this loader writes
  // them), except retired tables: an id written again was released above.
  tx.Describe(services_, before.services, /*lpm=*/false);
  tx.Describe(backends_, before.backends, /*lpm=*/false);
  for (const BpfMap& table_class : table_classes_) {
    // The count of all classes: an upper bound of this one's.
    tx.Describe(table_class, before.tables, /*lpm=*/false);
  }
  tx.Describe(source_ranges_, before.source_ranges, /*lpm=*/true);
  tx.Describe(endpoints_, before.endpoints, /*lpm=*/false);
  tx.Describe(ipcache_, before.ipcache, /*lpm=*/true);
  tx.Describe(policy_, before.policy, /*lpm=*/true);
  const uint8_t present = 1;
  // A full table map may hold retired tables: wait for their grace period
  // and delete them (the model counted them as gone already).
  absl::Status room = absl::OkStatus();
  auto make_room = [&]() -> bool {
    if (retired_tables_.empty()) {
      return false;
    }
    room = ReleaseRetiredTables(/*wait=*/true);
    return room.ok();
  };
  // The node addresses as the map keys them (the model checked each family).
  struct NodeAddressRecord {
    dpv2_node_addr_key key;
    dpv2_node_addr_value value;
  };
  std::vector<NodeAddressRecord> node_addresses;
  for (const NodeAddressEntry& n : b.node_addresses_upsert) {
    node_addresses.push_back({.key = {.family = n.family}, .value = {.addr = n.addr}});
  }
  std::vector<dpv2_node_addr_key> node_addresses_deleted;
  for (uint8_t family : b.node_addresses_delete) {
    node_addresses_deleted.push_back({.family = family});
  }
  auto body = [&]() -> absl::Status {
    DPV2_RETURN_IF_ERROR(tx.PutMany(node_addrs_, node_addresses, &NodeAddressRecord::key,
                                    &NodeAddressRecord::value));
    DPV2_RETURN_IF_ERROR(
        tx.PutMany(backends_, b.backends_upsert, &BackendEntry::id, &BackendEntry::value));
    // Whole tables, complete before a frontend points to them, each in its
    // size class's map: the table's M, its slots, then zeros up to the
    // class's room (abi/lb.h). The model checked 1 <= M <= maglev_table_size.
    std::array<std::vector<const LookupTable*>, kTableClasses> by_class;
    for (const LookupTable& t : b.tables_upsert) {
      by_class[TableClassOf(t.slots.size())].push_back(&t);
    }
    std::vector<uint32_t> ids, values;
    for (uint32_t k = 0; k < kTableClasses; ++k) {
      const std::vector<const LookupTable*>& tables = by_class[k];
      const size_t words = DPV2_LB_TABLE_WORDS(TableClassSlots(options_.config, k));
      const size_t per_call =
          std::max<size_t>(1, kTableBytesPerCall / (words * sizeof(uint32_t)));
      for (size_t first = 0; first < tables.size(); first += per_call) {
        const size_t end = std::min(tables.size(), first + per_call);
        ids.clear();
        values.assign((end - first) * words, 0);
        for (size_t i = first; i < end; ++i) {
          const std::vector<uint32_t>& slots = tables[i]->slots;
          ids.push_back(tables[i]->id);
          uint32_t* value = values.data() + (i - first) * words;
          value[DPV2_LB_TABLE_SIZE_WORD] = static_cast<uint32_t>(slots.size());
          std::copy(slots.begin(), slots.end(), value + DPV2_LB_TABLE_FIRST_SLOT);
        }
        if (absl::Status s = tx.PutTables(k, ids, values, make_room); !s.ok()) {
          return room.ok() ? TableWriteError(s, table_classes_[k], ids, b) : room;
        }
      }
    }
    DPV2_RETURN_IF_ERROR(tx.PutKeys(source_ranges_, b.source_ranges_upsert, present));
    DPV2_RETURN_IF_ERROR(
        tx.PutMany(endpoints_, b.endpoints_upsert, &EndpointEntry::key, &EndpointEntry::value));
    DPV2_RETURN_IF_ERROR(
        tx.PutMany(ipcache_, b.ipcache_upsert, &IpcacheEntry::key, &IpcacheEntry::value));
    DPV2_RETURN_IF_ERROR(
        tx.PutMany(policy_, b.policy_upsert, &PolicyEntry::key, &PolicyEntry::value));
    // Each frontend names its table's class (abi/lb.h); the batch's own
    // class bits, if any, mean nothing.
    std::vector<ServiceEntry> services = b.services_upsert;
    for (ServiceEntry& e : services) {
      e.value.flags &= static_cast<uint16_t>(~DPV2_LB_F_TABLE_CLASS);
      if (e.value.table_id != 0) {
        const uint32_t k = TableClassOf(model_->FindTable(e.value.table_id).size());
        e.value.flags |= static_cast<uint16_t>(k << DPV2_LB_TABLE_CLASS_SHIFT);
      }
    }
    DPV2_RETURN_IF_ERROR(
        tx.PutMany(services_, services, &ServiceEntry::key, &ServiceEntry::value));
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(services_, b.services_delete));
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(policy_, b.policy_delete));
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(ipcache_, b.ipcache_delete));
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(endpoints_, b.endpoints_delete));
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(source_ranges_, b.source_ranges_delete));
    tx.RetireTables(b.tables_delete, deleted_classes);
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(backends_, b.backends_delete));
    DPV2_RETURN_IF_ERROR(tx.RemoveMany(node_addrs_, node_addresses_deleted));
    return absl::OkStatus();
  };
  absl::Status s = body();
  if (!s.ok()) {
    tx.Undo();
  }
  return s;
}

absl::Status EbpfBackend::ForEachMap(
    const std::function<absl::Status(bpf_map*, const BpfMap&)>& f) const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return Errno("number of CPUs", -cpus);
  }
  absl::flat_hash_set<uint32_t> seen;  // map ids: a reused map has another fd
  for (bpf_object* obj : {skel_->get()->obj, skel_->xdp() == nullptr ? nullptr : skel_->xdp()->obj}) {
    if (obj == nullptr) {
      continue;
    }
    bpf_map* map;
    bpf_object__for_each_map(map, obj) {
      bpf_map_info info{};
      uint32_t info_len = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_map__fd(map), &info, &info_len) != 0) {
        return Errno(absl::StrCat("map ", bpf_map__name(map), ": info"), errno);
      }
      if (!seen.insert(info.id).second) {
        continue;  // the XDP object's handle on a tc map
      }
      size_t value_size = bpf_map__value_size(map);
      if (IsPerCpu(map)) {
        value_size = (value_size + 7) / 8 * 8 * static_cast<size_t>(cpus);
      }
      DPV2_RETURN_IF_ERROR(
          f(map, BpfMap(bpf_map__fd(map), bpf_map__name(map), bpf_map__key_size(map), value_size)));
    }
  }
  return absl::OkStatus();
}

absl::Status EbpfBackend::Reset() {
  absl::MutexLock lock(&mu_);
  if (!options_.pin_path.empty() || !attached_.empty() || xdp_link_fd_ >= 0) {
    return absl::FailedPreconditionError(
        "ebpf backend: Reset needs an unpinned instance with no program attached");
  }
  DPV2_RETURN_IF_ERROR(ConsumeRing());
  pending_.clear();
  DPV2_RETURN_IF_ERROR(ForEachMap([&](bpf_map* map, const BpfMap& m) -> absl::Status {
    if (bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF || IsFrozen(map)) {
      return absl::OkStatus();
    }
    if (IsArray(map)) {
      for (const auto& [key, value] : arrays_at_load_[m.name()]) {
        DPV2_RETURN_IF_ERROR(m.Update(key.data(), value.data()));
      }
      return absl::OkStatus();
    }
    DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, m.Keys());
    std::string packed;
    for (const std::string& k : keys) {
      packed += k;
    }
    absl::Status s = m.DeleteBatch(packed.data(), static_cast<uint32_t>(keys.size()));
    if (absl::IsUnimplemented(s)) {  // LPM tries have no batch calls
      for (const std::string& k : keys) {
        DPV2_RETURN_IF_ERROR(m.Delete(k.data()));
      }
      return absl::OkStatus();
    }
    return s;
  }));
  retired_tables_.clear();  // gone with the rest of the table maps
  xdp_served_ = 0;
  model_ = std::make_unique<DatapathTables>(options_.config);
  return absl::OkStatus();
}

absl::StatusOr<std::array<size_t, kTableClasses>> EbpfBackend::LookupTablesPerClass() {
  absl::MutexLock lock(&mu_);
  std::array<size_t, kTableClasses> n{};
  for (uint32_t k = 0; k < kTableClasses; ++k) {
    DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, table_classes_[k].Keys());
    n[k] = keys.size();
  }
  return n;
}

absl::StatusOr<size_t> EbpfBackend::LookupTablesInMap() {
  DPV2_ASSIGN_OR_RETURN(auto per_class, LookupTablesPerClass());
  size_t n = 0;
  for (size_t k : per_class) {
    n += k;
  }
  return n;
}

absl::Status EbpfBackend::ReleaseRetiredTables(bool wait) {
  if (retired_tables_.empty()) {
    return absl::OkStatus();
  }
  uint64_t now = MonotonicNs();
  if (wait && now < retired_tables_.back().release_after_ns) {
    const uint64_t ns = retired_tables_.back().release_after_ns - now;
    timespec ts{.tv_sec = static_cast<time_t>(ns / kNsPerSecond),
                .tv_nsec = static_cast<long>(ns % kNsPerSecond)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    now = MonotonicNs();
  }
  size_t n = 0;
  while (n < retired_tables_.size() && retired_tables_[n].release_after_ns <= now) {
    ++n;
  }
  std::array<std::vector<uint32_t>, kTableClasses> ids;
  for (size_t i = 0; i < n; ++i) {
    ids[retired_tables_[i].table_class].push_back(retired_tables_[i].id);
  }
  for (uint32_t k = 0; k < kTableClasses; ++k) {
    DPV2_RETURN_IF_ERROR(
        table_classes_[k].DeleteBatch(ids[k].data(), static_cast<uint32_t>(ids[k].size())));
  }
  retired_tables_.erase(retired_tables_.begin(), retired_tables_.begin() + n);
  return absl::OkStatus();
}

absl::Status EbpfBackend::RebuildModelFromMaps() {
  DPV2_ASSIGN_OR_RETURN(ChangeBatch b, ReadMaps());
  auto model = std::make_unique<DatapathTables>(options_.config);
  if (absl::Status s = model->Apply(b); !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("ebpf backend: pinned maps hold an inconsistent state: ", s.message()));
  }
  model_ = std::move(model);
  return absl::OkStatus();
}

int EbpfBackend::OnEvent(void* self, void* data, size_t size) {
  auto* b = static_cast<EbpfBackend*>(self);
  if (size < sizeof(dpv2_event)) {
    return 0;
  }
  dpv2_event ev;
  std::memcpy(&ev, data, sizeof(ev));
  if (b->pending_.size() >= kMaxPendingEvents) {
    b->pending_.pop_front();
  }
  b->pending_.push_back(ev);
  return 0;
}

absl::Status EbpfBackend::ConsumeRing() {
  if (int n = ring_buffer__consume(ring_); n < 0) {
    return Errno("ring buffer dpv2_events: consume", -n);
  }
  return absl::OkStatus();
}

namespace {

// The outcome of one test run, from the pipeline's verdict code (bpf/common.h
// DPV2_V_*), drop reason, target interface and output bytes.
void FillOutcome(uint32_t verdict, uint32_t drop_reason, uint32_t out_ifindex,
                 std::vector<uint8_t> frame, PacketOutcome& out) {
  out.drop_reason = drop_reason < DPV2_DROP_MAX ? static_cast<dpv2_drop_reason>(drop_reason)
                                                : DPV2_DROP_INTERNAL;
  switch (verdict) {
    case kCbVerdictPass:
      out.verdict = Verdict::kPass;
      break;
    case kCbVerdictRedirect:
      out.verdict = Verdict::kRedirect;
      break;
    case kCbVerdictTx:
      out.verdict = Verdict::kTx;
      break;
    default:
      out.verdict = Verdict::kDrop;
      break;
  }
  if (out.verdict != Verdict::kDrop) {
    out.outputs.push_back(
        {.verdict = out.verdict, .out_ifindex = out_ifindex, .frame = std::move(frame)});
  }
}

}  // namespace

absl::StatusOr<bool> EbpfBackend::RunXdp(const PacketInput& input, PacketOutcome& out) {
  const BpfMap io(bpf_map__fd(skel_->xdp()->maps.dpv2_xdp_test_io), "dpv2_xdp_test_io",
                  sizeof(uint32_t), sizeof(XdpTestIo));
  const uint32_t zero = 0;
  XdpTestIo record{.in_ifindex = input.ifindex};
  DPV2_RETURN_IF_ERROR(io.Update(&zero, &record));
  std::vector<uint8_t> data_out(input.frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = input.frame.data(),
              .data_out = data_out.data(),
              .data_size_in = static_cast<uint32_t>(input.frame.size()),
              .data_size_out = static_cast<uint32_t>(data_out.size()), .repeat = 1);
  if (bpf_prog_test_run_opts(xdp_test_fd(), &opts) != 0) {
    return Errno("BPF_PROG_TEST_RUN (XDP)", errno);
  }
  DPV2_ASSIGN_OR_RETURN(bool found, io.Lookup(&zero, &record));
  if (!found) {
    return absl::InternalError("ebpf backend: dpv2_xdp_test_io has no record");
  }
  if (record.verdict == kCbVerdictNext) {
    return false;
  }
  ++xdp_served_;
  data_out.resize(opts.data_size_out);
  FillOutcome(record.verdict, record.drop_reason, record.ifindex, std::move(data_out), out);
  return true;
}

absl::StatusOr<PacketOutcome> EbpfBackend::RunPacket(const PacketInput& input) {
  DPV2_RETURN_IF_ERROR(CheckPacketInput(input, "ebpf"));
  absl::MutexLock lock(&mu_);
  DPV2_RETURN_IF_ERROR(ConsumeRing());
  const size_t events_before = pending_.size();
  PacketOutcome out;
  // The path of a frame on this node: with XDP, the external device's frames
  // meet the XDP program first and reach tc only when XDP hands them on.
  bool served = false;
  if (input.entry == Entry::kFromNetwork && skel_->xdp() != nullptr) {
    DPV2_ASSIGN_OR_RETURN(served, RunXdp(input, out));
  }
  if (!served) {
    DPV2_RETURN_IF_ERROR(RunTc(input, out));
  }
  DPV2_RETURN_IF_ERROR(ConsumeRing());
  for (size_t i = events_before; i < pending_.size(); ++i) {
    out.events.push_back(FlowEvent::FromAbi(pending_[i]));
  }
  return out;
}

absl::Status EbpfBackend::RunTc(const PacketInput& input, PacketOutcome& out) {
  const int prog = input.entry == Entry::kFromPod ? from_pod_test_fd() : from_network_test_fd();
  __sk_buff ctx_in{};
  ctx_in.cb[3] = input.ifindex;  // DPV2_CB_IN_IFINDEX (bpf/common.h)
  __sk_buff ctx_out{};
  std::vector<uint8_t> data_out(input.frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = input.frame.data(),
              .data_out = data_out.data(),
              .data_size_in = static_cast<uint32_t>(input.frame.size()),
              .data_size_out = static_cast<uint32_t>(data_out.size()), .ctx_in = &ctx_in,
              .ctx_out = &ctx_out, .ctx_size_in = sizeof(ctx_in), .ctx_size_out = sizeof(ctx_out),
              .repeat = 1);
  if (bpf_prog_test_run_opts(prog, &opts) != 0) {
    return Errno("BPF_PROG_TEST_RUN", errno);
  }
  data_out.resize(opts.data_size_out);
  FillOutcome(ctx_out.cb[0], ctx_out.cb[1], ctx_out.cb[2], std::move(data_out), out);
  return absl::OkStatus();
}

absl::StatusOr<Counters> EbpfBackend::ReadCounters() {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return Errno("number of CPUs", -cpus);
  }
  std::vector<uint64_t> per_cpu(cpus);
  Counters c;
  auto sum = [&](const BpfMap& map, uint32_t key) -> absl::StatusOr<uint64_t> {
    DPV2_ASSIGN_OR_RETURN(bool found, map.Lookup(&key, per_cpu.data()));
    uint64_t total = 0;
    if (found) {
      for (uint64_t v : per_cpu) {
        total += v;
      }
    }
    return total;
  };
  for (uint32_t i = 0; i < DPV2_CNT_MAX; ++i) {
    DPV2_ASSIGN_OR_RETURN(c.counters[i], sum(counters_, i));
  }
  for (uint32_t i = 0; i < DPV2_DROP_MAX; ++i) {
    DPV2_ASSIGN_OR_RETURN(c.drops[i], sum(drops_, i));
  }
  return c;
}

absl::StatusOr<std::vector<FlowEvent>> EbpfBackend::DrainEvents(size_t max_events) {
  absl::MutexLock lock(&mu_);
  DPV2_RETURN_IF_ERROR(ConsumeRing());
  std::vector<FlowEvent> out;
  while (!pending_.empty() && out.size() < max_events) {
    out.push_back(FlowEvent::FromAbi(pending_.front()));
    pending_.pop_front();
  }
  return out;
}

absl::StatusOr<std::vector<ConntrackEntry>> EbpfBackend::DumpConntrack() {
  std::vector<ConntrackEntry> out;
  for (const BpfMap* map : {&ct_tcp_, &ct_other_}) {
    DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, map->Keys());
    for (const std::string& k : keys) {
      ConntrackEntry e{};
      std::memcpy(&e.key, k.data(), sizeof(e.key));
      DPV2_ASSIGN_OR_RETURN(bool found, map->Lookup(&e.key, &e.value));
      if (!found) {
        continue;
      }
      if (e.key.flags & DPV2_CT_KEY_SERVICE) {
        // The datapath caches the backend there (abi/ct.h); every backend
        // reports the frontend.
        e.value.nat_addr = e.key.daddr;
        e.value.nat_port = e.key.dport;
      }
      out.push_back(e);
    }
  }
  return out;
}

absl::Status EbpfBackend::FlushConntrack() {
  for (const BpfMap* map : {&ct_tcp_, &ct_other_, &snat_}) {
    DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, map->Keys());
    for (const std::string& k : keys) {
      DPV2_RETURN_IF_ERROR(map->Delete(k.data()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GcStats> EbpfBackend::CollectGarbage() {
  GcStats stats;
  const uint64_t now = Now();
  for (const BpfMap* map : {&ct_tcp_, &ct_other_}) {
    DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, map->Keys());
    for (const std::string& k : keys) {
      ++stats.scanned;
      dpv2_ct_value v;
      DPV2_ASSIGN_OR_RETURN(bool found, map->Lookup(k.data(), &v));
      if (!found || now < v.expires_ns + kGcGraceNs) {
        continue;
      }
      DPV2_ASSIGN_OR_RETURN(found, map->LookupAndDelete(k.data(), &v));
      if (!found) {
        continue;
      }
      if (Now() < v.expires_ns) {
        // Refreshed between the scan and the delete: put it back, unless the
        // datapath already made a new entry for the same key.
        absl::Status s = map->Update(k.data(), &v, BPF_NOEXIST);
        if (!s.ok() && !absl::IsInternal(s)) {
          return s;
        }
        continue;
      }
      ++stats.deleted;
    }
  }
  DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, affinity_.Keys());
  for (const std::string& k : keys) {
    ++stats.scanned;
    dpv2_affinity_value v;
    DPV2_ASSIGN_OR_RETURN(bool found, affinity_.Lookup(k.data(), &v));
    if (!found || now < v.last_used_ns || now - v.last_used_ns < kMaxAffinityIdleNs + kGcGraceNs) {
      continue;
    }
    DPV2_ASSIGN_OR_RETURN(found, affinity_.LookupAndDelete(k.data(), &v));
    if (!found) {
      continue;
    }
    if (Now() - v.last_used_ns < kMaxAffinityIdleNs) {
      affinity_.Update(k.data(), &v, BPF_NOEXIST).IgnoreError();
      continue;
    }
    ++stats.deleted;
  }
  // SNAT entries live as long as the conntrack entry of their key
  // (docs/datapath.md, "SNAT"): one whose entry is gone after the pass
  // above goes, unless it is younger than DPV2_SNAT_GC_GRACE_NS (the
  // datapath writes it just before that entry). Taken with the same
  // lookup-and-delete as conntrack: an entry the datapath rewrote meanwhile
  // (a reopened connection claiming its port again) is put back.
  auto young = [](const dpv2_snat_value& v, uint64_t at) {
    return at < v.created_ns || at - v.created_ns < DPV2_SNAT_GC_GRACE_NS;
  };
  DPV2_ASSIGN_OR_RETURN(keys, snat_.Keys());
  for (const std::string& k : keys) {
    ++stats.scanned;
    dpv2_ct_key key;
    std::memcpy(&key, k.data(), sizeof(key));
    dpv2_snat_value v;
    DPV2_ASSIGN_OR_RETURN(bool found, snat_.Lookup(&key, &v));
    if (!found || young(v, now)) {
      continue;
    }
    dpv2_ct_value entry;
    const BpfMap& ct = key.proto == DPV2_PROTO_TCP ? ct_tcp_ : ct_other_;
    DPV2_ASSIGN_OR_RETURN(bool tracked, ct.Lookup(&key, &entry));
    if (tracked) {
      continue;
    }
    DPV2_ASSIGN_OR_RETURN(found, snat_.LookupAndDelete(&key, &v));
    if (!found) {
      continue;
    }
    if (young(v, Now())) {
      snat_.Update(&key, &v, BPF_NOEXIST).IgnoreError();
      continue;
    }
    ++stats.deleted;
  }
  return stats;
}

absl::Status EbpfBackend::AgeState(uint64_t ns) {
  if (ns > kEbpfClockOffsetNs / 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("ebpf AgeState: ", ns, " ns is beyond the clock offset's room"));
  }
  for (const BpfMap* map : {&ct_tcp_, &ct_other_}) {
    DPV2_RETURN_IF_ERROR(AgeEntries<dpv2_ct_value>(
        *map, ns, {&dpv2_ct_value::expires_ns, &dpv2_ct_value::created_ns}));
  }
  DPV2_RETURN_IF_ERROR(
      AgeEntries<dpv2_affinity_value>(affinity_, ns, {&dpv2_affinity_value::last_used_ns}));
  DPV2_RETURN_IF_ERROR(AgeEntries<dpv2_snat_value>(snat_, ns, {&dpv2_snat_value::created_ns}));
  return absl::OkStatus();
}

}  // namespace dpv2::ebpf

namespace dpv2 {

absl::StatusOr<std::unique_ptr<Backend>> MakeEbpfBackend(const EbpfOptions& options) {
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<ebpf::EbpfBackend> b, ebpf::EbpfBackend::Create(options));
  return std::unique_ptr<Backend>(std::move(b));
}

absl::StatusOr<EbpfLoadReport> EbpfLoadReportOf(const Backend& backend) {
  const auto* ebpf = dynamic_cast<const ebpf::EbpfBackend*>(&backend);
  if (ebpf == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("EbpfLoadReportOf: backend ", backend.Name(), " is not an eBPF backend"));
  }
  return ebpf->load_report();
}

}  // namespace dpv2
