// SnatTable: the SNAT state of one in-memory datapath instance, keyed by a
// conntrack key and valued by dpv2_snat_value (abi/ct.h): for each SNATed
// connection the forward entry (its SERVICE key -> the node address and the
// source port it was given) and the reverse entry (its flow key, node:port
// -> backend -> the client's address and port). docs/datapath.md, "SNAT".
//
// An entry lives as long as the conntrack entry of the same key: garbage
// collection, after the conntrack pass, deletes those whose conntrack entry
// is gone, unless younger than DPV2_SNAT_GC_GRACE_NS. Not thread-safe: one
// owner thread.
//
//   SnatTable snat(config.snat_entries);
//   if (const dpv2_snat_value* v = snat.Find(reply_key)) client = v->addr;
#ifndef DPV2_CORE_DATAPATH_SNAT_TABLE_H_
#define DPV2_CORE_DATAPATH_SNAT_TABLE_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "core/datapath/abi_key.h"
#include "dpv2/abi/abi.h"
#include "dpv2/backend.h"

namespace dpv2 {

class ConntrackTable;

class SnatTable {
 public:
  explicit SnatTable(uint32_t capacity) : capacity_(capacity) {}

  const dpv2_snat_value* Find(const dpv2_ct_key& key) const;
  // Inserts or overwrites; false (nothing stored) when the key is new and
  // the table is full.
  bool Upsert(const dpv2_ct_key& key, const dpv2_snat_value& value);
  bool Erase(const dpv2_ct_key& key);

  // Deletes the entries that no entry of `conntrack` has the key of and
  // that are at least DPV2_SNAT_GC_GRACE_NS old.
  GcStats CollectGarbage(ConntrackTable& conntrack, uint64_t now_ns);
  void Flush() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  using Key = AbiKey<dpv2_ct_key>;

  uint32_t capacity_;
  absl::flat_hash_map<Key, dpv2_snat_value> entries_;
};

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_SNAT_TABLE_H_
