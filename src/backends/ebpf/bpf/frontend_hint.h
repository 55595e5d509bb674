/* dpv2 BPF: frontend hints, one byte per slot of a hash of (address, port,
 * protocol), set for every frontend a SERVICE conntrack entry is made for.
 *
 * The established fast path (docs/datapath.md) looks a hinted packet's
 * SERVICE entry up before the reply direction, so an established service
 * packet pays no reply-direction miss, while replies and plain flows (whose
 * destination is no frontend) keep the reply-first order and pay no
 * SERVICE-key miss. handle_service sets the hint of the frontend it serves
 * before it creates or stamps a SERVICE entry; nothing clears it. A stale or
 * colliding byte costs one lookup, never a wrong answer; a missing one (a
 * restarted loader starts with none) only the reply-first order. The hint
 * also gates ct_mark_reverse_service: an entry whose source is no hinted
 * frontend has no SERVICE entry keyed in reverse, so its creation looks
 * nothing more up.
 *
 *   if (frontend_hinted(&p->daddr, p->dport, p->proto)) ...
 */
#ifndef DPV2_BPF_FRONTEND_HINT_H_
#define DPV2_BPF_FRONTEND_HINT_H_

#include "common.h"

/* 128 KiB: a packet reads one line of it. At the default 65,536 frontends
 * about 40% of the slots are set (16 KiB was all set at that size, and then
 * every entry creation paid the reverse lookup). */
#define DPV2_FRONTEND_HINT_BITS 17
#define DPV2_FRONTEND_HINT_SLOTS (1u << DPV2_FRONTEND_HINT_BITS)

struct dpv2_frontend_hints {
  __u8 seen[DPV2_FRONTEND_HINT_SLOTS];
};

/* Shared by the tc and XDP objects (skeleton.cc), not pinned: a new load
 * starts with no hint, which the reply-first order covers. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dpv2_frontend_hints);
} dpv2_frontend_hints SEC(".maps");

/* The byte of (addr, port, proto), or 0 when the map cannot be read. */
static __always_inline __u8 *frontend_hint(const struct dpv2_addr *addr, __be16 port, __u8 proto) {
  __u32 zero = 0;
  struct dpv2_frontend_hints *h = bpf_map_lookup_elem(&dpv2_frontend_hints, &zero);
  if (!h) {
    return 0;
  }
  const __u32 *w = (const __u32 *)addr;
  __u32 x = (w[0] ^ w[1] ^ w[2] ^ w[3]) ^ ((__u32)port << 8) ^ proto;
  x *= 0x9e3779b1u; /* Fibonacci hashing: the top bits mix every input bit */
  return &h->seen[(x >> (32 - DPV2_FRONTEND_HINT_BITS)) & (DPV2_FRONTEND_HINT_SLOTS - 1)];
}

static __always_inline int frontend_hinted(const struct dpv2_addr *addr, __be16 port,
                                           __u8 proto) {
  const __u8 *b = frontend_hint(addr, port, proto);
  return b && *b;
}

/* Written once per slot: later packets only read the cache line. */
static __always_inline void frontend_hint_set(const struct dpv2_addr *addr, __be16 port,
                                              __u8 proto) {
  __u8 *b = frontend_hint(addr, port, proto);
  if (b && !*b) {
    *b = 1;
  }
}

#endif /* DPV2_BPF_FRONTEND_HINT_H_ */
