#include "core/datapath/affinity_table.h"

#include "core/datapath/conntrack_table.h"

namespace dpv2 {

const dpv2_affinity_value* AffinityTable::Find(const dpv2_affinity_key& key, uint32_t timeout_s,
                                               uint64_t now_ns) const {
  auto it = entries_.find(Key(key));
  if (it == entries_.end()) {
    return nullptr;
  }
  const uint64_t last = it->second.last_used_ns;
  if (now_ns < last || now_ns - last >= uint64_t{timeout_s} * kNanosPerSecond) {
    return nullptr;
  }
  return &it->second;
}

bool AffinityTable::Record(const dpv2_affinity_key& key, uint32_t backend_id, uint64_t now_ns) {
  const Key k(key);
  auto it = entries_.find(k);
  if (it == entries_.end()) {
    if (entries_.size() >= capacity_) {
      return false;
    }
    it = entries_.emplace(k, dpv2_affinity_value{}).first;
  }
  it->second.last_used_ns = now_ns;
  it->second.backend_id = backend_id;
  return true;
}

bool AffinityTable::Erase(const dpv2_affinity_key& key) { return entries_.erase(Key(key)) > 0; }

GcStats AffinityTable::CollectGarbage(uint64_t now_ns) {
  GcStats stats{.scanned = entries_.size()};
  const uint64_t max_idle = uint64_t{DPV2_AFFINITY_MAX_TIMEOUT_S} * kNanosPerSecond;
  absl::erase_if(entries_, [&](const auto& entry) {
    const bool expired =
        now_ns >= entry.second.last_used_ns && now_ns - entry.second.last_used_ns >= max_idle;
    stats.deleted += expired ? 1 : 0;
    return expired;
  });
  return stats;
}

}  // namespace dpv2
