/* dpv2 BPF: lookup tables (Maglev or random selection) of backend ids.
 *
 * An outer hash-of-maps maps a table id to an inner array of M backend ids
 * (M = cfg_maglev_size, a prime). The loader creates a new inner array per
 * table id and fills it before inserting it, so a frontend never points to a
 * partial table; tables are never rewritten in place.
 *
 *   __u32 id;
 *   int rc = maglev_pick(table_id, hash, &id);   // < 0: -drop reason
 */
#ifndef DPV2_BPF_MAGLEV_H_
#define DPV2_BPF_MAGLEV_H_

#include "common.h"
#include "config.h"

struct dpv2_lookup_table {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, DPV2_MAGLEV_DEFAULT_SIZE); /* set to M by the loader */
  __type(key, __u32);
  __type(value, __u32);
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __array(values, struct dpv2_lookup_table);
} dpv2_lookup_tables SEC(".maps");

static __always_inline int maglev_pick(__u32 table_id, __u32 hash, __u32 *backend_id) {
  void *table = bpf_map_lookup_elem(&dpv2_lookup_tables, &table_id);
  if (!table) {
    return -DPV2_DROP_NO_LOOKUP_TABLE;
  }
  __u32 slot = hash % cfg_maglev_size;
  __u32 *id = bpf_map_lookup_elem(table, &slot);
  if (!id || *id == 0) {
    return -DPV2_DROP_BACKEND_MISSING;
  }
  *backend_id = *id;
  return 0;
}

#endif /* DPV2_BPF_MAGLEV_H_ */
