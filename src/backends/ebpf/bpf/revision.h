/* dpv2 BPF: the tables revision, a counter the loader increments after
 * every apply (DatapathSkeleton::BumpRevision) and at every load.
 *
 * A conntrack entry remembers the revision at which one of its forward
 * packets passed the full checks (abi/ct.h: revision, in_ifindex,
 * cache_flags). While the counter still reads that value no endpoint,
 * ipcache, policy, frontend or backend entry has changed since, so the same
 * checks would give the same answer and later forward packets skip them; the
 * first packet after a change sees a different value and runs them all
 * again, which keeps docs/datapath.md's re-check of established flows.
 * 0 is never a valid stamp (a fresh map reads 0 until the first bump).
 *
 *   __u32 rev = tables_revision();
 *   if (rev != 0 && e->revision == rev) ...  // checked at this revision
 */
#ifndef DPV2_BPF_REVISION_H_
#define DPV2_BPF_REVISION_H_

#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} dpv2_revision SEC(".maps");

/* An array lookup the verifier inlines: a few instructions, no call. */
static __always_inline __u32 tables_revision(void) {
  __u32 zero = 0;
  const __u32 *rev = bpf_map_lookup_elem(&dpv2_revision, &zero);
  return rev ? *rev : 0;
}

#endif /* DPV2_BPF_REVISION_H_ */
