/* dpv2 BPF: per-CPU counters (abi/counters.h) and per-reason drop counts
 * (abi/drop.h). The loader sums them over CPUs.
 *
 *   count(DPV2_CNT_PASSED, 1);
 */
#ifndef DPV2_BPF_COUNTERS_H_
#define DPV2_BPF_COUNTERS_H_

#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DPV2_CNT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} dpv2_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DPV2_DROP_MAX);
  __type(key, __u32);
  __type(value, __u64);
} dpv2_drops SEC(".maps");

static __always_inline void count(__u32 id, __u64 n) {
  __u64 *c = bpf_map_lookup_elem(&dpv2_counters, &id);
  if (c) {
    *c += n;
  }
}

static __always_inline void count_drop(__u32 reason) {
  __u64 *c = bpf_map_lookup_elem(&dpv2_drops, &reason);
  if (c) {
    *c += 1;
  }
}

#endif /* DPV2_BPF_COUNTERS_H_ */
