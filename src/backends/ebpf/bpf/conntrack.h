/* dpv2 BPF: connection tracking (abi/ct.h), one table for TCP and one for
 * every other protocol, as Cilium sizes them.
 *
 * An entry is keyed by the tuple of the packet that created it; a reply finds
 * it through its reversed tuple. Lifetimes follow SEMANTICS.md section 3:
 * SYN-only flows use the SYN timeout, a non-SYN packet moves the flow to the
 * established lifetime, FIN/RST mark their direction closing and both closing
 * use the close timeout; a SYN on a closing entry reopens it. An entry whose
 * expiry has passed is dead even before the collector removes it.
 *
 *   struct dpv2_ct_value *v = ct_lookup(&key, now);
 *   if (v) ct_track(v, pkt->proto, pkt->tcp_flags, 0, pkt->len, now);
 */
#ifndef DPV2_BPF_CONNTRACK_H_
#define DPV2_BPF_CONNTRACK_H_

#include "common.h"
#include "config.h"
#include "parse.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, DPV2_CT_DEFAULT_TCP_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_ct_key);
  __type(value, struct dpv2_ct_value);
} dpv2_ct_tcp SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, DPV2_CT_DEFAULT_OTHER_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_ct_key);
  __type(value, struct dpv2_ct_value);
} dpv2_ct_other SEC(".maps");

static __always_inline void *ct_map(__u8 proto) {
  return proto == DPV2_PROTO_TCP ? (void *)&dpv2_ct_tcp : (void *)&dpv2_ct_other;
}

static __always_inline int ct_is_closing(const struct dpv2_ct_value *v) {
  return (v->flags & (DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING)) != 0;
}

/* A live entry, or 0 when absent or expired. */
static __always_inline struct dpv2_ct_value *ct_lookup(const struct dpv2_ct_key *key, __u64 now) {
  struct dpv2_ct_value *v = bpf_map_lookup_elem(ct_map(key->proto), key);
  if (!v || now >= v->expires_ns) {
    return 0;
  }
  return v;
}

/* Whether a flow entry is the connection translated from the frontend
 * `addr`:`port` with exactly `nat_flags` of REV_NAT | SNAT (REV_NAT: a
 * service connection; REV_NAT | SNAT: an SNATed or remapped one). */
static __always_inline int ct_flow_of(const struct dpv2_ct_value *e, __u16 nat_flags,
                                      const struct dpv2_addr *addr, __be16 port) {
  return (e->flags & (DPV2_CT_F_REV_NAT | DPV2_CT_F_SNAT)) == nat_flags &&
         addr_eq(&e->nat_addr, addr) && e->nat_port == port;
}

/* Folds one packet into an entry (src/core/datapath/conntrack_table.cc
 * UpdateConntrackEntry, step for step): RST closes both directions, FIN its
 * own, a SYN from the originator on a closing entry reopens it; then the
 * lifetime of the resulting state. */
static __always_inline void ct_track(struct dpv2_ct_value *v, __u8 proto, __u8 tcp_flags,
                                     int reply, __u32 bytes, __u64 now) {
  __u64 lifetime = cfg_ct_non_tcp_ns;
  __u16 flags = v->flags;
  if (proto == DPV2_PROTO_TCP) {
    const __u16 closing = DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING;
    if (tcp_flags & DPV2_TCP_RST) {
      flags |= closing;
    } else if (tcp_flags & DPV2_TCP_FIN) {
      flags |= reply ? DPV2_CT_F_RX_CLOSING : DPV2_CT_F_TX_CLOSING;
    } else if ((tcp_flags & DPV2_TCP_SYN) && !reply && (flags & closing)) {
      flags &= ~(closing | DPV2_CT_F_SEEN_NON_SYN);
    }
    if (!(tcp_flags & DPV2_TCP_SYN)) {
      flags |= DPV2_CT_F_SEEN_NON_SYN;
    }
    if ((flags & closing) == closing) {
      lifetime = cfg_ct_tcp_close_ns;
    } else if (flags & DPV2_CT_F_SEEN_NON_SYN) {
      lifetime = cfg_ct_tcp_established_ns;
    } else {
      lifetime = cfg_ct_tcp_syn_ns;
    }
    v->tcp_flags_seen |= tcp_flags;
  }
  if (reply) {
    flags |= DPV2_CT_F_REPLY_SEEN;
  }
  v->flags = flags;
  v->packets += 1;
  v->bytes += bytes;
  v->expires_ns = now + lifetime;
}

/* Creates or replaces the entry; < 0 when the table is full. */
static __always_inline int ct_insert(const struct dpv2_ct_key *key, const struct dpv2_ct_value *v) {
  return bpf_map_update_elem(ct_map(key->proto), key, v, BPF_ANY) < 0 ? -1 : 0;
}

#endif /* DPV2_BPF_CONNTRACK_H_ */
