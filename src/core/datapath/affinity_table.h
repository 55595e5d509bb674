// AffinityTable: sessionAffinity ClientIP state of one in-memory datapath
// instance, keyed and valued by dpv2_affinity_key / dpv2_affinity_value.
//
// An entry names the backend a client was sent to for a frontend and when it
// was last used by a new connection. It is valid while now - last_used is
// below the frontend's affinity_timeout_s (read from the service value at
// lookup time, so a timeout change applies at once). The collector removes
// entries idle for longer than the largest timeout Kubernetes allows
// (86400 s), since it does not know which frontend an entry belongs to.
// Not thread-safe: one owner thread.
//
//   AffinityTable affinity(config.max_affinity);
//   const dpv2_affinity_value* a = affinity.Find(key, svc.affinity_timeout_s, now);
//   affinity.Record(key, backend_id, now);
#ifndef DPV2_CORE_DATAPATH_AFFINITY_TABLE_H_
#define DPV2_CORE_DATAPATH_AFFINITY_TABLE_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "core/datapath/abi_key.h"
#include "dpv2/abi/abi.h"
#include "dpv2/backend.h"

namespace dpv2 {

class AffinityTable {
 public:
  explicit AffinityTable(uint32_t capacity) : capacity_(capacity) {}

  // The entry if it was used less than timeout_s ago, else nullptr.
  const dpv2_affinity_value* Find(const dpv2_affinity_key& key, uint32_t timeout_s,
                                  uint64_t now_ns) const;
  // Creates or refreshes an entry; false (nothing stored) when full. Affinity
  // is best effort: the connection proceeds either way.
  bool Record(const dpv2_affinity_key& key, uint32_t backend_id, uint64_t now_ns);
  bool Erase(const dpv2_affinity_key& key);

  // Deletes entries idle for DPV2_AFFINITY_MAX_TIMEOUT_S or longer.
  GcStats CollectGarbage(uint64_t now_ns);
  void Flush() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  using Key = AbiKey<dpv2_affinity_key>;

  uint32_t capacity_;
  absl::flat_hash_map<Key, dpv2_affinity_value> entries_;
};

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_AFFINITY_TABLE_H_
