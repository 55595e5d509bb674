#include "core/datapath/snat_table.h"

#include "core/datapath/conntrack_table.h"

namespace dpv2 {

const dpv2_snat_value* SnatTable::Find(const dpv2_ct_key& key) const {
  auto it = entries_.find(Key(key));
  return it == entries_.end() ? nullptr : &it->second;
}

bool SnatTable::Upsert(const dpv2_ct_key& key, const dpv2_snat_value& value) {
  const Key k(key);
  auto it = entries_.find(k);
  if (it == entries_.end()) {
    if (entries_.size() >= capacity_) {
      return false;
    }
    entries_.emplace(k, value);
    return true;
  }
  it->second = value;
  return true;
}

bool SnatTable::Erase(const dpv2_ct_key& key) { return entries_.erase(Key(key)) > 0; }

GcStats SnatTable::CollectGarbage(ConntrackTable& conntrack, uint64_t now_ns) {
  GcStats stats{.scanned = entries_.size()};
  absl::erase_if(entries_, [&](const auto& entry) {
    const uint64_t created = entry.second.created_ns;
    const bool young = now_ns < created || now_ns - created < DPV2_SNAT_GC_GRACE_NS;
    const bool orphan = !young && conntrack.FindAny(entry.first.raw) == nullptr;
    stats.deleted += orphan ? 1 : 0;
    return orphan;
  });
  return stats;
}

}  // namespace dpv2
