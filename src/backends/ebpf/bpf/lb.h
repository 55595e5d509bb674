/* dpv2 BPF: service frontends, backends, source ranges and ClientIP affinity.
 *
 * Frontends are keyed by (address, port, protocol, family, scope). Traffic
 * from a local pod uses the INT-scope entry when the EXT entry says one
 * exists (externalTrafficPolicy Local); traffic from the network uses EXT.
 *
 *   struct dpv2_lb_value *svc = lb_lookup_service(pkt, from_pod);
 */
#ifndef DPV2_BPF_LB_H_
#define DPV2_BPF_LB_H_

#include "common.h"
#include "parse.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct dpv2_lb_key);
  __type(value, struct dpv2_lb_value);
} dpv2_services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct dpv2_backend);
} dpv2_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_src_range_key);
  __type(value, __u8);
} dpv2_source_ranges SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct dpv2_affinity_key);
  __type(value, struct dpv2_affinity_value);
} dpv2_affinity SEC(".maps");

static __always_inline struct dpv2_lb_value *lb_lookup_service(const struct dpv2_pkt *pkt,
                                                               int from_pod) {
  struct dpv2_lb_key key = {};
  addr_copy(&key.addr, &pkt->daddr);
  key.port = pkt->dport;
  key.proto = pkt->proto;
  key.family = pkt->family;
  key.scope = DPV2_LB_SCOPE_EXT;
  struct dpv2_lb_value *svc = bpf_map_lookup_elem(&dpv2_services, &key);
  if (svc && from_pod && (svc->flags & DPV2_LB_F_TWO_SCOPES)) {
    key.scope = DPV2_LB_SCOPE_INT;
    struct dpv2_lb_value *internal = bpf_map_lookup_elem(&dpv2_services, &key);
    if (internal) {
      svc = internal;
    }
  }
  return svc;
}

/* loadBalancerSourceRanges: 0 when the client may use the frontend. */
static __always_inline int lb_check_source_range(const struct dpv2_lb_value *svc,
                                                 const struct dpv2_pkt *pkt) {
  if (!(svc->flags & DPV2_LB_F_SOURCE_RANGES)) {
    return 0;
  }
  struct dpv2_src_range_key key = {
      .prefixlen = 64 + addr_len(pkt->family) * 8,
      .service_id = svc->service_id,
      .family = pkt->family,
  };
  addr_copy(&key.addr, &pkt->saddr);
  if (!bpf_map_lookup_elem(&dpv2_source_ranges, &key)) {
    return -DPV2_DROP_SOURCE_RANGE;
  }
  return 0;
}

static __always_inline struct dpv2_backend *lb_lookup_backend(__u32 id) {
  return bpf_map_lookup_elem(&dpv2_backends, &id);
}

static __always_inline void lb_affinity_key(struct dpv2_affinity_key *key, __u32 service_id,
                                            const struct dpv2_pkt *pkt) {
  __builtin_memset(key, 0, sizeof(*key));
  addr_copy(&key->client, &pkt->saddr);
  key->service_id = service_id;
  key->family = pkt->family;
}

#endif /* DPV2_BPF_LB_H_ */
