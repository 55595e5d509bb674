/* dpv2 BPF: lookup tables (Maglev or random selection) of backend ids.
 *
 * One hash map holds every table whole: key the table id, value the M backend
 * ids (M = cfg_maglev_size, a prime; the loader sets value_size to M * 4), so
 * a pick is one hash lookup and an index. The map is not preallocated: a
 * table costs memory only while it exists.
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
  __uint(value_size, sizeof(__u32) * DPV2_MAGLEV_DEFAULT_SIZE); /* M * 4, set by the loader */
} dpv2_lookup_tables SEC(".maps");

static __always_inline int maglev_pick(__u32 table_id, __u32 hash, __u32 *backend_id) {
  __u32 *slots = bpf_map_lookup_elem(&dpv2_lookup_tables, &table_id);
  if (!slots) {
    return -DPV2_DROP_NO_LOOKUP_TABLE;
  }
  __u32 slot = hash % cfg_maglev_size;
  /* cfg_maglev_size is a constant to the verifier (frozen .rodata): this
   * bound proves slots[slot] lies inside the M * 4-byte value. */
  if (slot >= cfg_maglev_size) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  __u32 id = slots[slot];
  if (id == 0) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  *backend_id = id;
  return 0;
}

#endif /* DPV2_BPF_MAGLEV_H_ */
