/* dpv2 BPF: local endpoints (pods on this node) by address.
 *
 * Delivery to a local pod redirects to its host-side veth with the pod's MAC
 * as destination; the same entry names the pod's policy endpoint id and
 * identity, and proves that a pod's source address is its own.
 *
 *   struct dpv2_endpoint_value *ep = endpoint_lookup(&pkt.daddr, pkt.family);
 */
#ifndef DPV2_BPF_ENDPOINT_H_
#define DPV2_BPF_ENDPOINT_H_

#include "common.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_endpoint_key);
  __type(value, struct dpv2_endpoint_value);
} dpv2_endpoints SEC(".maps");

static __always_inline struct dpv2_endpoint_value *endpoint_lookup(const struct dpv2_addr *addr,
                                                                   __u8 family) {
  struct dpv2_endpoint_key key = {.family = family};
  addr_copy(&key.addr, addr);
  return bpf_map_lookup_elem(&dpv2_endpoints, &key);
}

#endif /* DPV2_BPF_ENDPOINT_H_ */
