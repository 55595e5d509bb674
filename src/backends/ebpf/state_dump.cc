// EbpfBackend::ReadMaps and DumpState: what the (possibly pinned) maps hold,
// read back into one batch of upserts. The loader rebuilds its validation
// model from it at start, and a restarted agent adopts it
// (docs/datapath.md "Restart adoption"): the maps, not any user-space copy,
// are the truth after a restart.
#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cstring>
#include <type_traits>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "backends/ebpf/ebpf_backend.h"
#include "core/datapath/datapath_tables.h"
#include "core/status_macros.h"

namespace dpv2::ebpf {
namespace {

absl::Status InnerMapError(uint32_t table_id, absl::string_view what, int err) {
  return absl::InternalError(
      absl::StrCat("ebpf backend: lookup table ", table_id, ": ", what, ": ", strerror(err)));
}

// The slots of one inner array map (Maglev table), read in one batch call
// when the kernel offers it, else slot by slot.
absl::Status ReadInnerTable(uint32_t table_id, uint32_t inner_map_id, LookupTable* out) {
  const int fd = bpf_map_get_fd_by_id(inner_map_id);
  if (fd < 0) {
    return InnerMapError(table_id, "open inner map", errno);
  }
  absl::Cleanup close_fd = [fd] { close(fd); };
  std::vector<uint32_t> keys(out->slots.size());
  uint32_t count = static_cast<uint32_t>(out->slots.size());
  uint32_t out_batch = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_lookup_batch(fd, nullptr, &out_batch, keys.data(), out->slots.data(), &count,
                           &opts) == 0 ||
      (errno == ENOENT && count == out->slots.size())) {
    return absl::OkStatus();
  }
  for (uint32_t i = 0; i < out->slots.size(); ++i) {
    if (bpf_map_lookup_elem(fd, &i, &out->slots[i]) != 0) {
      return InnerMapError(table_id, absl::StrCat("read slot ", i), errno);
    }
  }
  return absl::OkStatus();
}

// Every (key, value) of a hash or LPM map into `out` (entries with .key and
// .value); a key deleted between listing and reading is skipped.
template <typename Entries>
absl::Status ReadEntries(const BpfMap& map, Entries* out) {
  DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, map.Keys());
  for (const std::string& k : keys) {
    typename Entries::value_type e{};
    std::memcpy(&e.key, k.data(), sizeof(e.key));
    DPV2_ASSIGN_OR_RETURN(bool found, map.Lookup(&e.key, &e.value));
    if (found) {
      out->push_back(e);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ChangeBatch> EbpfBackend::ReadMaps() const {
  ChangeBatch b;
  DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, backends_.Keys());
  for (const std::string& k : keys) {
    BackendEntry e{};
    std::memcpy(&e.id, k.data(), sizeof(e.id));
    DPV2_ASSIGN_OR_RETURN(bool found, backends_.Lookup(&e.id, &e.value));
    if (found) {
      b.backends_upsert.push_back(e);
    }
  }
  DPV2_ASSIGN_OR_RETURN(keys, tables_.Keys());
  for (const std::string& k : keys) {
    LookupTable t;
    std::memcpy(&t.id, k.data(), sizeof(t.id));
    uint32_t inner_map_id = 0;
    DPV2_ASSIGN_OR_RETURN(bool found, tables_.Lookup(&t.id, &inner_map_id));
    if (!found) {
      continue;
    }
    t.slots.resize(options_.config.maglev_table_size);
    DPV2_RETURN_IF_ERROR(ReadInnerTable(t.id, inner_map_id, &t));
    b.tables_upsert.push_back(std::move(t));
  }
  DPV2_ASSIGN_OR_RETURN(keys, source_ranges_.Keys());
  for (const std::string& k : keys) {
    dpv2_src_range_key key;
    std::memcpy(&key, k.data(), sizeof(key));
    b.source_ranges_upsert.push_back(key);
  }
  DPV2_RETURN_IF_ERROR(ReadEntries(endpoints_, &b.endpoints_upsert));
  DPV2_RETURN_IF_ERROR(ReadEntries(ipcache_, &b.ipcache_upsert));
  DPV2_RETURN_IF_ERROR(ReadEntries(policy_, &b.policy_upsert));
  DPV2_RETURN_IF_ERROR(ReadEntries(services_, &b.services_upsert));
  SortBatch(&b);
  return b;
}

absl::StatusOr<ChangeBatch> EbpfBackend::DumpState() {
  absl::MutexLock lock(&mu_);
  return ReadMaps();
}

}  // namespace dpv2::ebpf
