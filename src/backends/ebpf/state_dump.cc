// EbpfBackend::ReadMaps and DumpState: what the (possibly pinned) maps hold,
// read back into one batch of upserts. The loader rebuilds its validation
// model from it at start, and a restarted agent adopts it
// (docs/datapath.md "Restart adoption"): the maps, not any user-space copy,
// are the truth after a restart.
//
// EbpfBackend::Image: every map's bytes and the loader's state, the proof
// that Reset gives back a just-loaded datapath.
#include <bpf/libbpf.h>

#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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
  struct NodeAddressRecord {
    dpv2_node_addr_key key;
    dpv2_node_addr_value value;
  };
  std::vector<NodeAddressRecord> node_addresses;
  DPV2_RETURN_IF_ERROR(ReadEntries(node_addrs_, &node_addresses));
  for (const NodeAddressRecord& n : node_addresses) {
    b.node_addresses_upsert.push_back({.family = n.key.family, .addr = n.value.addr});
  }
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
  // period in their class map).
  absl::flat_hash_set<std::pair<uint32_t, uint32_t>> retired;
  for (const RetiredTable& r : retired_tables_) {
    retired.insert({r.table_class, r.id});
  }
  // Every class map, each table at its own M slots (abi/lb.h). A table
  // must sit in the class its M gives: the writer puts it there and tags
  // its frontends so.
  absl::flat_hash_map<uint32_t, uint32_t> class_of;  // table id -> class
  std::vector<uint32_t> value;
  for (uint32_t k = 0; k < kTableClasses; ++k) {
    const BpfMap& map = table_classes_[k];
    DPV2_ASSIGN_OR_RETURN(keys, map.Keys());
    value.resize(map.value_size() / sizeof(uint32_t));
    for (const std::string& key : keys) {
      LookupTable t;
      std::memcpy(&t.id, key.data(), sizeof(t.id));
      if (retired.contains({k, t.id})) {
        continue;
      }
      DPV2_ASSIGN_OR_RETURN(bool found, map.Lookup(&t.id, value.data()));
      if (!found) {
        continue;
      }
      const uint32_t m = value[DPV2_LB_TABLE_SIZE_WORD];
      const uint32_t max_slots = options_.config.maglev_table_size;
      if (m == 0 || m > max_slots) {
        return absl::DataLossError(absl::StrCat("dump: lookup table ", t.id, " in ", map.name(),
                                                ": size word ", m,
                                                ", want 1 to maglev_table_size ", max_slots));
      }
      if (TableClassOf(m) != k) {
        return absl::DataLossError(absl::StrCat("dump: lookup table ", t.id, " in ", map.name(),
                                                ": ", m, " slots belong in ",
                                                table_classes_[TableClassOf(m)].name()));
      }
      if (!class_of.emplace(t.id, k).second) {
        return absl::DataLossError(absl::StrCat("dump: lookup table ", t.id, " is in ",
                                                table_classes_[class_of[t.id]].name(), " and ",
                                                map.name()));
      }
      const uint32_t* first = value.data() + DPV2_LB_TABLE_FIRST_SLOT;
      t.slots.assign(first, first + m);
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
  // The class bits are this backend's own (abi/lb.h): not in the dump.
  for (ServiceEntry& e : b.services_upsert) {
    const uint32_t k = DPV2_LB_TABLE_CLASS_OF(e.value.flags);
    e.value.flags &= static_cast<uint16_t>(~DPV2_LB_F_TABLE_CLASS);
    if (k >= kTableClasses) {
      return absl::DataLossError(absl::StrCat("dump: frontend ", DescribeServiceKey(e.key),
                                              ": table class ", k, ", want 0 to ",
                                              kTableClasses - 1));
    }
    if (auto it = class_of.find(e.value.table_id); it != class_of.end() && it->second != k) {
      return absl::DataLossError(absl::StrCat("dump: frontend ", DescribeServiceKey(e.key),
                                              " looks lookup table ", e.value.table_id, " up in ",
                                              table_classes_[k].name(), "; it is in ",
                                              table_classes_[it->second].name()));
    }
  }
  SortBatch(&b);
  return b;
}

absl::StatusOr<ChangeBatch> EbpfBackend::DumpState() {
  absl::MutexLock lock(&mu_);
  return ReadMaps();
}

absl::StatusOr<std::map<std::string, std::string>> EbpfBackend::ReadMapEntries(
    const BpfMap& m) const {
  std::map<std::string, std::string> entries;
  DPV2_ASSIGN_OR_RETURN(std::vector<std::string> keys, m.Keys());
  std::string value(m.value_size(), '\0');
  for (const std::string& k : keys) {
    DPV2_ASSIGN_OR_RETURN(bool found, m.Lookup(k.data(), value.data()));
    if (found) {
      entries[k] = value;
    }
  }
  return entries;
}

absl::StatusOr<DatapathImage> EbpfBackend::Image() {
  absl::MutexLock lock(&mu_);
  DatapathImage image;
  DPV2_RETURN_IF_ERROR(ForEachMap([&](bpf_map* map, const BpfMap& m) -> absl::Status {
    if (bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) {
      return absl::OkStatus();
    }
    DPV2_ASSIGN_OR_RETURN(image.maps[m.name()], ReadMapEntries(m));
    return absl::OkStatus();
  }));
  DPV2_RETURN_IF_ERROR(ConsumeRing());
  image.loader["unread events"] = pending_.size();
  image.loader["retired tables"] = retired_tables_.size();
  image.loader["frames served by XDP"] = xdp_served_;
  image.loader["model services"] = model_->service_count();
  image.loader["model backends"] = model_->backend_count();
  image.loader["model tables"] = model_->table_count();
  image.loader["model source ranges"] = model_->source_range_count();
  image.loader["model endpoints"] = model_->endpoint_count();
  image.loader["model ipcache"] = model_->ipcache_count();
  image.loader["model policy"] = model_->policy_count();
  return image;
}

namespace {

// Map bytes in a message: a lookup table is kilobytes.
std::string Hex(const std::string& bytes) {
  constexpr size_t kShown = 48;
  if (bytes.size() <= kShown) {
    return absl::BytesToHexString(bytes);
  }
  return absl::StrCat(absl::BytesToHexString(bytes.substr(0, kShown)), "... (", bytes.size(),
                      " bytes)");
}

}  // namespace

std::string DescribeImageDifference(const DatapathImage& want, const DatapathImage& got) {
  static const std::map<std::string, std::string> kNoEntries;
  auto entries_of = [](const DatapathImage& image, const std::string& name) -> const auto& {
    auto it = image.maps.find(name);
    return it == image.maps.end() ? kNoEntries : it->second;
  };
  std::vector<std::string> names;
  for (const auto& [name, entries] : want.maps) {
    names.push_back(name);
  }
  for (const auto& [name, entries] : got.maps) {
    if (!want.maps.contains(name)) {
      names.push_back(name);
    }
  }
  for (const std::string& name : names) {
    const std::map<std::string, std::string>& w = entries_of(want, name);
    const std::map<std::string, std::string>& g = entries_of(got, name);
    for (const auto& [key, value] : w) {
      auto it = g.find(key);
      if (it == g.end()) {
        return absl::StrCat(name, ": key ", Hex(key), " missing");
      }
      if (it->second != value) {
        return absl::StrCat(name, ": key ", Hex(key), " holds ",
                            Hex(it->second), ", want ",
                            Hex(value));
      }
    }
    for (const auto& [key, value] : g) {
      if (!w.contains(key)) {
        return absl::StrCat(name, ": key ", Hex(key), " (value ",
                            Hex(value), ") left behind");
      }
    }
  }
  for (const auto& [name, n] : want.loader) {
    auto it = got.loader.find(name);
    const uint64_t g = it == got.loader.end() ? 0 : it->second;
    if (g != n) {
      return absl::StrCat("loader: ", name, " ", g, ", want ", n);
    }
  }
  for (const auto& [name, n] : got.loader) {
    if (!want.loader.contains(name)) {
      return absl::StrCat("loader: ", name, " ", n, ", not in the wanted image");
    }
  }
  return "";
}

}  // namespace dpv2::ebpf
