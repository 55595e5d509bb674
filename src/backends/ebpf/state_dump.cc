// EbpfBackend::ReadMaps and DumpState: what the (possibly pinned) maps hold,
// read back into one batch of upserts. The loader rebuilds its validation
// model from it at start, and a restarted agent adopts it
// (docs/datapath.md "Restart adoption"): the maps, not any user-space copy,
// are the truth after a restart.
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "backends/ebpf/ebpf_backend.h"
#include "core/datapath/datapath_tables.h"
#include "core/status_macros.h"

namespace dpv2::ebpf {
namespace {

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
  // Retired tables are gone from the datapath's view (they wait out a grace
  // period in the map).
  absl::flat_hash_set<uint32_t> retired;
  for (const RetiredTable& r : retired_tables_) {
    retired.insert(r.id);
  }
  DPV2_ASSIGN_OR_RETURN(keys, tables_.Keys());
  for (const std::string& k : keys) {
    LookupTable t;
    std::memcpy(&t.id, k.data(), sizeof(t.id));
    if (retired.contains(t.id)) {
      continue;
    }
    t.slots.resize(options_.config.maglev_table_size);
    DPV2_ASSIGN_OR_RETURN(bool found, tables_.Lookup(&t.id, t.slots.data()));
    if (found) {
      b.tables_upsert.push_back(std::move(t));
    }
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
