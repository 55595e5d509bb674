/* dpv2 BPF: lookup tables (Maglev or random selection) of backend ids.
 *
 * One hash map holds every table whole: key the table id, value the table's
 * size M then its M backend ids (abi/lb.h); every value has the room of the
 * largest table (cfg_maglev_size slots; the loader sets value_size to
 * DPV2_LB_TABLE_WORDS(cfg_maglev_size) * 4), so a pick is one hash lookup,
 * the size word and an index. The map is not preallocated: a table costs
 * memory only while it exists, but each one costs the largest table's.
 *
 * Why not a map of maps: every write to a map of maps (insert, replace or
 * delete of an inner map) makes the syscall wait for an RCU grace period
 * (about 14 ms here), and a table change is two such writes. Writes to this
 * map are plain hash updates that never wait.
 *
 * Tables are never rewritten in place: a change writes a new table id, the
 * frontend is switched to it (one service entry update), and the old id is
 * deleted only after a grace period (see ebpf_backend.cc: a deleted element's
 * memory may be reused by the next insert at once, while a packet that read
 * the old frontend could still be indexing it).
 *
 *   __u32 id;
 *   int rc = maglev_pick(table_id, hash, &id);   // < 0: -drop reason
 */
#ifndef DPV2_BPF_MAGLEV_H_
#define DPV2_BPF_MAGLEV_H_

#include "common.h"
#include "config.h"

/* No BTF types: value_size is set at load time, and the kernel would refuse
 * a BTF value type of another size. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(key_size, sizeof(__u32));
  /* Set by the loader from cfg_maglev_size. */
  __uint(value_size, sizeof(__u32) * DPV2_LB_TABLE_WORDS(DPV2_MAGLEV_DEFAULT_SIZE));
} dpv2_lookup_tables SEC(".maps");

static __always_inline int maglev_pick(__u32 table_id, __u32 hash, __u32 *backend_id) {
  __u32 *table = bpf_map_lookup_elem(&dpv2_lookup_tables, &table_id);
  if (!table) {
    return -DPV2_DROP_NO_LOOKUP_TABLE;
  }
  /* The table's own M (the loader writes 1..cfg_maglev_size; a modulo by
   * 0 would leave the hash as it is, which the bound below still holds). */
  __u32 slot = hash % table[DPV2_LB_TABLE_SIZE_WORD];
  /* cfg_maglev_size is a constant to the verifier (frozen .rodata): this
   * bound proves the slot lies inside the value. */
  if (slot >= cfg_maglev_size) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  __u32 id = table[DPV2_LB_TABLE_FIRST_SLOT + slot];
  if (id == 0) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  *backend_id = id;
  return 0;
}

#endif /* DPV2_BPF_MAGLEV_H_ */
