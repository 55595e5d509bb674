/* dpv2 BPF: lookup tables (Maglev or random selection) of backend ids.
 *
 * Tables live whole in hash maps, one map per size class (abi/lb.h: a step
 * of the Maglev size ladder): key the table id, value the table's size M
 * then its M backend ids, with room for the class's slots. The loader sets
 * each class map's value size and entries, and cfg_table_class_slots, from
 * the datapath config; a class above maglev_table_size gets one entry of one
 * word and 0 slots, so nothing is ever served from it. The frontend's value
 * names the class (DPV2_LB_TABLE_CLASS_OF(flags)), so a pick is a branch on
 * the class, one hash lookup, the size word and an index, and the verifier
 * proves each class's index against that class's own constant room. The
 * maps are not preallocated: a table costs memory only while it exists, and
 * about its own size (4 bytes a slot, in a class at most 2x its M).
 *
 * Why not a map of maps: every write to a map of maps (insert, replace or
 * delete of an inner map) makes the syscall wait for an RCU grace period
 * (about 14 ms here), and a table change is two such writes. Writes to these
 * maps are plain hash updates that never wait.
 *
 * Tables are never rewritten in place: a change writes a new table id, the
 * frontend is switched to it (one service entry update, class included), and
 * the old id is deleted only after a grace period (see ebpf_backend.cc: a
 * deleted element's memory may be reused by the next insert at once, while
 * a packet that read the old frontend could still be indexing it).
 *
 *   __u32 id;
 *   int rc = maglev_pick(svc, hash, &id);   // < 0: -drop reason
 */
#ifndef DPV2_BPF_MAGLEV_H_
#define DPV2_BPF_MAGLEV_H_

#include "common.h"
#include "config.h"

/* No BTF types: value_size is set at load time, and the kernel would refuse
 * a BTF value type of another size. */
#define DPV2_LOOKUP_TABLE_CLASS(n)           \
  struct {                                   \
    __uint(type, BPF_MAP_TYPE_HASH);         \
    __uint(max_entries, 1);                  \
    __uint(map_flags, BPF_F_NO_PREALLOC);    \
    __uint(key_size, sizeof(__u32));         \
    __uint(value_size, sizeof(__u32));       \
  } dpv2_tables_##n SEC(".maps")

DPV2_LOOKUP_TABLE_CLASS(0);
DPV2_LOOKUP_TABLE_CLASS(1);
DPV2_LOOKUP_TABLE_CLASS(2);
DPV2_LOOKUP_TABLE_CLASS(3);
DPV2_LOOKUP_TABLE_CLASS(4);
DPV2_LOOKUP_TABLE_CLASS(5);
DPV2_LOOKUP_TABLE_CLASS(6);
DPV2_LOOKUP_TABLE_CLASS(7);
DPV2_LOOKUP_TABLE_CLASS(8);
DPV2_LOOKUP_TABLE_CLASS(9);
DPV2_LOOKUP_TABLE_CLASS(10);
DPV2_LOOKUP_TABLE_CLASS(11);
DPV2_LOOKUP_TABLE_CLASS(12);
DPV2_LOOKUP_TABLE_CLASS(13);
DPV2_LOOKUP_TABLE_CLASS(14);
DPV2_LOOKUP_TABLE_CLASS(15);
DPV2_LOOKUP_TABLE_CLASS(16);

/* Slots a value of each class has room for (set by the loader; 0 for the
 * classes above maglev_table_size). Frozen .rodata: the verifier reads each
 * element as a constant. */
const volatile __u32 cfg_table_class_slots[DPV2_LB_TABLE_CLASSES] = {};

/* The slot of `hash` in `table` (M, then its slots) whose value has room
 * for `room` slots; `room` is a constant on each path that calls this. */
static __always_inline int __maglev_slot(const __u32 *table, __u32 room, __u32 hash,
                                         __u32 *backend_id) {
  if (!table) {
    return -DPV2_DROP_NO_LOOKUP_TABLE;
  }
  /* The table's own M (the loader writes 1..room; a modulo by 0 would
   * leave the hash as it is, which the bound below still holds). */
  __u32 slot = hash % table[DPV2_LB_TABLE_SIZE_WORD];
  if (slot >= room) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  __u32 id = table[DPV2_LB_TABLE_FIRST_SLOT + slot];
  if (id == 0) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  *backend_id = id;
  return 0;
}

#define DPV2_PICK_IN_CLASS(n)                                                                \
  case n:                                                                                    \
    return __maglev_slot(bpf_map_lookup_elem(&dpv2_tables_##n, &table_id),                   \
                         cfg_table_class_slots[n], hash, backend_id)

static __always_inline int maglev_pick(const struct dpv2_lb_value *svc, __u32 hash,
                                       __u32 *backend_id) {
  __u32 table_id = svc->table_id;
  switch (DPV2_LB_TABLE_CLASS_OF(svc->flags)) {
    DPV2_PICK_IN_CLASS(0);
    DPV2_PICK_IN_CLASS(1);
    DPV2_PICK_IN_CLASS(2);
    DPV2_PICK_IN_CLASS(3);
    DPV2_PICK_IN_CLASS(4);
    DPV2_PICK_IN_CLASS(5);
    DPV2_PICK_IN_CLASS(6);
    DPV2_PICK_IN_CLASS(7);
    DPV2_PICK_IN_CLASS(8);
    DPV2_PICK_IN_CLASS(9);
    DPV2_PICK_IN_CLASS(10);
    DPV2_PICK_IN_CLASS(11);
    DPV2_PICK_IN_CLASS(12);
    DPV2_PICK_IN_CLASS(13);
    DPV2_PICK_IN_CLASS(14);
    DPV2_PICK_IN_CLASS(15);
    DPV2_PICK_IN_CLASS(16);
    default:
      return -DPV2_DROP_NO_LOOKUP_TABLE;
  }
}

#undef DPV2_PICK_IN_CLASS

#endif /* DPV2_BPF_MAGLEV_H_ */
