/* dpv2 BPF: the datapath pipeline shared by every entry program.
 *
 * docs/datapath.md is the specification and src/core/datapath/pipeline.cc
 * the reference the conformance suite compares against; the stages run in the
 * same order: parse, neighbor discovery bypass, anti-spoofing, fragments, ICMP
 * errors related to a tracked flow, the reply direction, service
 * connections, plain flows; policy after translation; delivery. Steps return
 * >= 0 to continue or a negative drop reason.
 *
 *   struct dpv2_result res;
 *   datapath_run(ctx, ifindex, DPV2_OBS_FROM_POD, &res);
 */
#ifndef DPV2_BPF_DATAPATH_H_
#define DPV2_BPF_DATAPATH_H_

#include "common.h"
#include "config.h"
#include "conntrack.h"
#include "counters.h"
#include "endpoint.h"
#include "events.h"
#include "frontend_hint.h"
#include "lb.h"
#include "maglev.h"
#include "nat.h"
#include "parse.h"
#include "policy.h"
#include "reject.h"
#include "revision.h"
#include "snat.h"

struct dpv2_result {
  __u32 verdict;     /* DPV2_V_* */
  __u32 drop_reason; /* enum dpv2_drop_reason */
  __u32 ifindex;     /* REDIRECT / TX target */
  /* The flow's Service (0: none), which host routing forwards from the
   * network (bpf/fib.h): only translated traffic, never plain transit. */
  __u32 service_id;
};

/* The connection as it leaves the datapath (after translation): what events
 * report and what policy sees. */
struct dpv2_flow {
  struct dpv2_addr saddr;
  struct dpv2_addr daddr;
  struct dpv2_addr orig_daddr; /* the frontend when translated */
  __be16 sport;
  __be16 dport;
  __be16 orig_dport;
  __u16 pad;
  __u32 service_id;
  __u32 backend_id;
  __u32 src_identity;
  __u32 dst_identity;
};

/* dpv2_scratch.snat_on: why a new connection is SNATed. */
enum {
  DPV2_SNAT_ON_NODE = 1,      /* to the node's address ("SNAT") */
  DPV2_SNAT_ON_COLLISION = 2, /* to the client's own ("Source port collisions") */
};

/* Per-CPU working memory: the BPF stack (512 bytes) cannot hold it all. */
struct dpv2_scratch {
  struct dpv2_pkt pkt;
  struct dpv2_flow flow;
  struct dpv2_ct_value ct;
  struct dpv2_ct_key key;
  struct dpv2_ct_key key2;
  struct dpv2_addr dnat_addr; /* handle_service's verdict: DNAT to this */
  __be16 dnat_port;
  __u8 dnat;
  __u8 from_pod;
  __u32 ifindex; /* ingress interface */
  __u8 obs;      /* DPV2_OBS_* */
  /* flow's identities are not looked up yet: an established packet that no
   * policy checks never pays for them (the sim resolves lazily too). */
  __u8 identities_pending;
  /* DPV2_EP_*: the local endpoints of flow.saddr and flow.daddr, each
   * looked up once per packet (anti-spoofing, policy, identities and
   * delivery all ask) and kept here; the destination again after DNAT. */
  __u8 src_ep_state;
  __u8 dst_ep_state;
  /* DPV2_CT_C_EGRESS / _INGRESS: the policy lookups that allowed this
   * packet (what a stamped entry's fast path counts again). */
  __u8 policy_checked;
  __u32 revision; /* tables_revision() as this packet began */
  /* datapath_clock's cache: the clock as read at jiffy clock_jiffies. */
  __u64 clock_jiffies;
  __u64 clock_ns;
  /* Per-connection flags kept here, not in registers: a flag the verifier
   * tracks through a function splits its states (processed instructions). */
  __u8 replaces_service; /* handle_service: a SERVICE entry, live or not, exists */
  __u8 reopened;         /* a SYN reopens a closing entry */
  /* No SERVICE entry to serve: forward_fast's first call found none, or
   * the destination is no hinted frontend (see datapath_pipeline). */
  __u8 service_missed;
  __u8 affinity_hit; /* select_backend took the client's affinity entry */
  __u32 tuple_hash;  /* select_backend: dpv2_tuple_hash of the packet's tuple */
  /* handle_service: the connection is SNATed (DPV2_SNAT_ON_*), its source
   * leaves as `snat` (the node's or the client's address and the port, its
   * forward SNAT entry's value). */
  __u8 snat_on;
  /* handle_service: an established SNATed connection's reverse SNAT entry
   * is missing, to be written again (with s->snat_client). */
  __u8 snat_restore;
  struct dpv2_snat_value snat;
  /* The client of an SNATed connection (its reverse SNAT entry's value). */
  struct dpv2_snat_value snat_client;
  struct dpv2_endpoint_value src_ep;
  struct dpv2_endpoint_value dst_ep;
};

#define DPV2_EP_UNKNOWN 0
#define DPV2_EP_ABSENT 1
#define DPV2_EP_PRESENT 2

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dpv2_scratch);
} dpv2_scratch_map SEC(".maps");

static __always_inline const struct dpv2_endpoint_value *
ep_memo(struct dpv2_endpoint_value *copy, __u8 *state, const struct dpv2_addr *addr, __u8 family) {
  if (*state == DPV2_EP_UNKNOWN) {
    const struct dpv2_endpoint_value *ep = endpoint_lookup(addr, family);
    *state = ep ? DPV2_EP_PRESENT : DPV2_EP_ABSENT;
    if (ep) {
      *copy = *ep;
    }
  }
  return *state == DPV2_EP_PRESENT ? copy : 0;
}

/* The conntrack clock (datapath_now), read again only when the jiffies
 * counter has moved since this CPU last read it: the coarse clock advances
 * only at a tick, when jiffies do, so the cached value is at most one tick
 * older than a fresh read (and never ahead of it), while bpf_jiffies64 is a
 * load the verifier inlines and the clock helper a call (~40 ns here,
 * docs/datapath.md). */
static __always_inline __u64 datapath_clock(struct dpv2_scratch *s) {
  const __u64 jiffies = bpf_jiffies64();
  if (jiffies != s->clock_jiffies || s->clock_ns == 0) {
    s->clock_jiffies = jiffies;
    s->clock_ns = datapath_now();
  }
  return s->clock_ns;
}

/* The local endpoint of the flow's source / destination address, or 0. */
static __always_inline const struct dpv2_endpoint_value *flow_src_ep(struct dpv2_scratch *s) {
  return ep_memo(&s->src_ep, &s->src_ep_state, &s->flow.saddr, s->pkt.family);
}

static __always_inline const struct dpv2_endpoint_value *flow_dst_ep(struct dpv2_scratch *s) {
  return ep_memo(&s->dst_ep, &s->dst_ep_state, &s->flow.daddr, s->pkt.family);
}

/* The flow's destination became `addr` (DNAT). */
static __always_inline void flow_set_daddr(struct dpv2_scratch *s, const struct dpv2_addr *addr) {
  addr_copy(&s->flow.daddr, addr);
  s->dst_ep_state = DPV2_EP_UNKNOWN;
}

static __always_inline int proto_is_icmp(__u8 proto) {
  return proto == DPV2_PROTO_ICMP || proto == DPV2_PROTO_ICMPV6;
}

static __always_inline int proto_has_ports(__u8 proto) {
  return proto == DPV2_PROTO_TCP || proto == DPV2_PROTO_UDP || proto == DPV2_PROTO_SCTP;
}

/* Conntrack keys: ICMP keeps the echo identifier in sport and 0 in dport in
 * both directions, so that a request and its reply are one flow. */
static __always_inline void ct_make_key(struct dpv2_ct_key *k, const struct dpv2_addr *saddr,
                                        const struct dpv2_addr *daddr, __be16 sport,
                                        __be16 dport, __u8 proto, __u8 family, __u8 flags) {
  __builtin_memset(k, 0, sizeof(*k));
  addr_copy(&k->saddr, saddr);
  addr_copy(&k->daddr, daddr);
  k->sport = sport;
  k->dport = proto_is_icmp(proto) ? 0 : dport;
  k->proto = proto;
  k->family = family;
  k->flags = flags;
}

static __always_inline void flow_from_packet(struct dpv2_flow *f, const struct dpv2_pkt *p) {
  __builtin_memset(f, 0, sizeof(*f));
  addr_copy(&f->saddr, &p->saddr);
  addr_copy(&f->daddr, &p->daddr);
  addr_copy(&f->orig_daddr, &p->daddr);
  f->sport = p->sport;
  f->dport = p->dport;
  f->orig_dport = p->dport;
}

/* One event; `flow` NULL for a frame that did not parse. */
static __always_inline void emit(struct dpv2_scratch *s, __u8 type, __u16 flags, __u32 reason,
                                 const struct dpv2_flow *flow, __u32 match_id) {
  if (!feature_events()) {
    return;
  }
  struct dpv2_event *ev = bpf_ringbuf_reserve(&dpv2_events, sizeof(*ev), 0);
  if (!ev) {
    count(DPV2_CNT_EVENTS_LOST, 1);
    return;
  }
  __builtin_memset(ev, 0, sizeof(*ev));
  ev->timestamp_ns = bpf_ktime_get_ns();
  ev->type = type;
  ev->obs_point = s->obs;
  ev->drop_reason = reason;
  ev->flags = flags;
  ev->ifindex = s->ifindex;
  ev->pkt_len = s->pkt.len;
  ev->policy_match_id = match_id;
  if (flow) {
    ev->family = s->pkt.family;
    ev->proto = s->pkt.proto;
    ev->src_identity = flow->src_identity;
    ev->dst_identity = flow->dst_identity;
    ev->service_id = flow->service_id;
    ev->backend_id = flow->backend_id;
    addr_copy(&ev->saddr, &flow->saddr);
    addr_copy(&ev->daddr, &flow->daddr);
    ev->sport = flow->sport;
    ev->dport = flow->dport;
    addr_copy(&ev->orig_daddr, &flow->orig_daddr);
    ev->orig_dport = flow->orig_dport;
    ev->tcp_flags = s->pkt.tcp_flags;
  }
  bpf_ringbuf_submit(ev, 0);
}

/* A drop: counted per reason, reported with the connection as far as known. */
static __always_inline int drop(struct dpv2_scratch *s, struct dpv2_result *res, __u32 reason,
                                const struct dpv2_flow *flow) {
  count(DPV2_CNT_DROPPED, 1);
  if (reason < DPV2_DROP_MAX) {
    count_drop(reason);
  }
  emit(s, DPV2_EVENT_DROP, 0, reason, flow, 0);
  res->verdict = DPV2_V_DROP;
  res->drop_reason = reason;
  return 0;
}

/* XDP: the frame is not XDP's to serve; tc will see it as it came. */
static __always_inline int next_hook(struct dpv2_result *res) {
  res->verdict = DPV2_V_NEXT;
  return 0;
}

static __always_inline __u32 identity_of(const struct dpv2_endpoint_value *ep,
                                         const struct dpv2_addr *addr, __u8 family) {
  return ep ? ep->identity : policy_identity_of(addr, family);
}

static __always_inline void resolve_identities(struct dpv2_scratch *s) {
  if (s->identities_pending) {
    s->flow.src_identity = identity_of(flow_src_ep(s), &s->flow.saddr, s->pkt.family);
    s->flow.dst_identity = identity_of(flow_dst_ep(s), &s->flow.daddr, s->pkt.family);
    s->identities_pending = 0;
  }
}

/* Policy after translation: egress at a local source pod (from pods only),
 * then ingress at a local destination pod, each only when isolated. Verdict
 * events for new connections. 0 when allowed, else a drop reason. */
DPV2_VERIFIED_ALONE int datapath_policy_lookup(struct dpv2_scratch *s, int new_connection) {
  if (!s) {
    return DPV2_DROP_INTERNAL;
  }
  struct dpv2_flow *flow = &s->flow;
  __u8 proto = s->pkt.proto;
  __be16 dport = proto_is_icmp(proto) ? 0 : flow->dport;
  const struct dpv2_endpoint_value *src_ep = s->from_pod ? flow_src_ep(s) : 0;
  const struct dpv2_endpoint_value *dst_ep = flow_dst_ep(s);
  struct dpv2_policy_value pv;
  s->policy_checked = 0;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const struct dpv2_endpoint_value *ep = i == 0 ? src_ep : dst_ep;
    __u8 dir = i == 0 ? DPV2_DIR_EGRESS : DPV2_DIR_INGRESS;
    __u32 flag = i == 0 ? DPV2_EP_F_EGRESS_POLICY : DPV2_EP_F_INGRESS_POLICY;
    if (!ep || !(ep->flags & flag)) {
      continue;
    }
    resolve_identities(s);
    __u32 peer = i == 0 ? flow->dst_identity : flow->src_identity;
    int allowed = policy_lookup(ep->endpoint_id, peer, dir, proto, dport, &pv);
    count(allowed ? DPV2_CNT_POLICY_ALLOWED : DPV2_CNT_POLICY_DENIED, 1);
    if (new_connection) {
      __u16 flags = (allowed ? DPV2_EV_F_ALLOWED : 0) | (i == 0 ? DPV2_EV_F_EGRESS : 0);
      emit(s, DPV2_EVENT_POLICY_VERDICT, flags, DPV2_DROP_NONE, flow, pv.match_id);
    }
    if (!allowed) {
      return DPV2_DROP_POLICY_DENY;
    }
    s->policy_checked |= i == 0 ? DPV2_CT_C_EGRESS : DPV2_CT_C_INGRESS;
  }
  return 0;
}

/* Policy off (bpf/features.h): no lookup function in the object at all. */
static __always_inline int datapath_policy(struct dpv2_scratch *s, int new_connection) {
  if (!feature_policy()) {
    s->policy_checked = 0;
    return 0;
  }
  return datapath_policy_lookup(s, new_connection);
}

/* A forward packet passed anti-spoofing and policy: the entry remembers at
 * which tables revision, from where, which policy lookups allowed it and
 * whether its destination (after translation) is no local endpoint
 * (bpf/revision.h), as the core pipeline's stamp does. Policy has asked for
 * the destination's endpoint before every stamp; an object without policy
 * asks here (delivery asks next anyway, and the answer is remembered). */
static __always_inline void ct_stamp(struct dpv2_ct_value *e, struct dpv2_scratch *s,
                                     __u8 extra) {
  if (!feature_policy()) {
    flow_dst_ep(s);
  }
  const __u8 pass = s->dst_ep_state == DPV2_EP_ABSENT ? DPV2_CT_C_PASS : 0;
  e->revision = s->revision;
  e->in_ifindex = s->ifindex;
  e->cache_flags = (s->from_pod ? DPV2_CT_C_FROM_POD : 0) | s->policy_checked | extra | pass;
}

/* Takes a stamp back: the entry's next forward packet runs every check. */
static __always_inline void ct_unstamp(struct dpv2_ct_value *e) {
  e->revision = 0;
  e->in_ifindex = 0;
  e->cache_flags = 0;
}

/* A plain-keyed entry was just created under `key` (which this turns into
 * the reverse SERVICE key: the caller is done with it). A SERVICE entry keyed
 * in reverse (its client is this entry's destination, its frontend this
 * entry's source) now has a reply-direction entry its forward packets must
 * find first: reverse_tracked keeps forward_fast's SERVICE-first lookup off
 * it. Only a hinted source can be a frontend (bpf/frontend_hint.h), so an
 * ordinary connection looks nothing more up. Verified once, not at each of
 * its three callers. */
DPV2_VERIFIED_ALONE int ct_mark_reverse_service(struct dpv2_ct_key *key) {
  if (!key || !proto_has_ports(key->proto) ||
      !frontend_hinted(&key->saddr, key->sport, key->proto)) {
    return 0;
  }
  __u32 *x = (__u32 *)&key->saddr;
  __u32 *y = (__u32 *)&key->daddr;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const __u32 t = x[i];
    x[i] = y[i];
    y[i] = t;
  }
  const __be16 port = key->sport;
  key->sport = key->dport;
  key->dport = port;
  key->flags = DPV2_CT_KEY_SERVICE;
  struct dpv2_ct_value *se = bpf_map_lookup_elem(ct_map(key->proto), key);
  if (se && !se->reverse_tracked) {
    se->reverse_tracked = 1;
  }
  return 0;
}

/* The entry was stamped at this revision by a packet from the same place. */
static __always_inline int ct_stamp_current(const struct dpv2_ct_value *e,
                                            const struct dpv2_scratch *s) {
  return s->revision != 0 && e->revision == s->revision && e->in_ifindex == s->ifindex &&
         ((e->cache_flags & DPV2_CT_C_FROM_POD) != 0) == (s->from_pod != 0);
}

/* A SERVICE entry's nat_addr/nat_port hold its backend's address in the
 * eBPF datapath (abi/ct.h): valid while the stamp is current, since a
 * backend change bumps the revision; the fast path then needs no backend
 * lookup to find the flow entry or to translate. */
static __always_inline void ct_cache_backend(struct dpv2_ct_value *se,
                                             const struct dpv2_backend *be) {
  addr_copy(&se->nat_addr, &be->addr);
  se->nat_port = be->port;
}

/* POLICY_ALLOWED counts every lookup the full path would have made. */
static __always_inline void count_stamped_policy(const struct dpv2_ct_value *e) {
  if (!feature_policy()) {
    return;
  }
  const __u64 n =
      ((e->cache_flags & DPV2_CT_C_EGRESS) != 0) + ((e->cache_flags & DPV2_CT_C_INGRESS) != 0);
  if (n != 0) {
    count(DPV2_CNT_POLICY_ALLOWED, n);
  }
}

/* Delivers to the flow's destination (after translation). */
static __always_inline int deliver(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                   struct dpv2_result *res) {
  const struct dpv2_endpoint_value *ep = flow_dst_ep(s);
  if (ep) {
    if (ctx_store(ctx, 0, ep->mac, 6) < 0 || ctx_store(ctx, 6, ep->host_mac, 6) < 0) {
      return drop(s, res, DPV2_DROP_INTERNAL, &s->flow);
    }
    count(DPV2_CNT_REDIRECTED, 1);
    res->verdict = DPV2_V_REDIRECT;
    res->ifindex = ep->ifindex;
    return 0;
  }
  count(DPV2_CNT_PASSED, 1);
  res->verdict = DPV2_V_PASS;
  return 0;
}

/* Delivery of a packet on a stamped entry: one whose destination was no
 * local endpoint at the stamp's revision passes to the stack without the
 * endpoint lookup (the same verdict and counter as deliver). */
static __always_inline int deliver_stamped(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                           const struct dpv2_ct_value *e,
                                           struct dpv2_result *res) {
  if (e->cache_flags & DPV2_CT_C_PASS) {
    count(DPV2_CNT_PASSED, 1);
    res->verdict = DPV2_V_PASS;
    return 0;
  }
  return deliver(ctx, s, res);
}

/* The reverse NAT of an ICMP error whose quote `e`, found under s->key,
 * has REV_NAT (docs/datapath.md, "ICMP errors (RELATED)"): the quote's
 * destination becomes the frontend, and the outer source too when the
 * backend sent the error; an SNATed connection's also gets the client its
 * reverse SNAT entry names as the quote's source and the outer destination
 * (no such entry: NAT_FAILED, nothing rewritten). 0 or a negative drop
 * reason. Verified once, not in every path of the pipeline. */
DPV2_VERIFIED_ALONE int related_rev_nat(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                        const struct dpv2_ct_value *e) {
  if (!s || !e) {
    return -DPV2_DROP_INTERNAL;
  }
  struct dpv2_pkt *p = &s->pkt;
  const int snat = (e->flags & DPV2_CT_F_SNAT) != 0;
  if (snat) {
    const struct dpv2_snat_value *mapping = bpf_map_lookup_elem(&dpv2_snat, &s->key);
    if (!mapping) {
      return -DPV2_DROP_NAT_FAILED;
    }
    s->snat_client = *mapping;
    /* Routed like the connection's replies (host routing). */
    s->flow.service_id = e->service_id;
  }
  struct dpv2_addr frontend;
  addr_copy(&frontend, &e->nat_addr);
  const int from_backend = addr_eq(&p->saddr, &p->inner_daddr);
  int rc = nat_rewrite_inner(ctx, p, NAT_DST, &frontend, e->nat_port);
  if (rc == 0 && snat) {
    rc = nat_rewrite_inner(ctx, p, NAT_SRC, &s->snat_client.addr, s->snat_client.port);
    if (rc == 0) {
      rc = nat_rewrite(ctx, p, NAT_DST, &s->snat_client.addr, 0);
    }
    if (rc == 0) {
      flow_set_daddr(s, &s->snat_client.addr);
    }
  }
  if (rc == 0 && from_backend) {
    rc = nat_rewrite(ctx, p, NAT_SRC, &frontend, 0);
  }
  return rc;
}

/* An ICMP error about a tracked flow: reverse NAT when its entry has
 * REV_NAT (related_rev_nat); no policy, like replies. Returns 1 when
 * handled. */
static __always_inline int handle_related_icmp(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                               struct dpv2_result *res, __u64 now) {
  struct dpv2_pkt *p = &s->pkt;
  ct_make_key(&s->key, &p->inner_saddr, &p->inner_daddr, p->inner_sport, p->inner_dport,
              p->inner_proto, p->family, 0);
  struct dpv2_ct_value *e = ct_lookup(&s->key, now);
  if (!e) {
    ct_make_key(&s->key, &p->inner_daddr, &p->inner_saddr,
                proto_is_icmp(p->inner_proto) ? p->inner_sport : p->inner_dport, p->inner_sport,
                p->inner_proto, p->family, 0);
    if (!ct_lookup(&s->key, now)) {
      return 0;
    }
  } else if (e->flags & DPV2_CT_F_REV_NAT) {
    int rc = related_rev_nat(ctx, s, e);
    if (rc < 0) {
      drop(s, res, -rc, &s->flow);
      return 1;
    }
    count(DPV2_CNT_REV_NAT, 1);
  }
  deliver(ctx, s, res);
  return 1;
}

DPV2_VERIFIED_ALONE int handle_reply(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                     struct dpv2_ct_value *e, struct dpv2_result *res,
                                     __u64 now) {
  if (!s || !e || !res) {
    return 0;
  }
  struct dpv2_pkt *p = &s->pkt;
  struct dpv2_flow *flow = &s->flow;
  int first = !(e->flags & DPV2_CT_F_REPLY_SEEN);
  flow->service_id = e->service_id;
  flow->backend_id = e->backend_id;
  flow->src_identity = e->dst_identity;
  flow->dst_identity = e->src_identity;
  s->identities_pending = 0;
  /* The client: the entry's source, or for an SNATed connection the one its
   * reverse SNAT entry (keyed like the entry) names. */
  const int snat = (e->flags & DPV2_CT_F_SNAT) != 0;
  const struct dpv2_addr *client = &s->key.saddr;
  __be16 client_port = s->key.sport;
  if (snat) {
    const struct dpv2_snat_value *mapping = bpf_map_lookup_elem(&dpv2_snat, &s->key);
    if (!mapping) {
      return drop(s, res, DPV2_DROP_NAT_FAILED, flow);
    }
    s->snat_client = *mapping;
    client = &s->snat_client.addr;
    client_port = s->snat_client.port;
  }
  ct_track(e, p->proto, p->tcp_flags, 1, p->len, now);
  __u16 flags = DPV2_EV_F_REPLY;
  if (e->flags & DPV2_CT_F_REV_NAT) {
    struct dpv2_addr frontend;
    addr_copy(&frontend, &e->nat_addr);
    __be16 frontend_port = e->nat_port;
    int rc = nat_rewrite(ctx, p, NAT_SRC, &frontend, frontend_port);
    if (rc == 0 && snat) {
      rc = nat_rewrite(ctx, p, NAT_DST, client, client_port);
    }
    if (rc < 0) {
      return drop(s, res, -rc, flow);
    }
    if (snat) {
      flow_set_daddr(s, client);
      flow->dport = client_port;
    }
    count(DPV2_CNT_REV_NAT, 1);
    flags |= DPV2_EV_F_TRANSLATED;
    addr_copy(&flow->saddr, &frontend);
    s->src_ep_state = DPV2_EP_UNKNOWN;
    flow->sport = frontend_port;
    addr_copy(&flow->orig_daddr, &frontend);
    flow->orig_dport = frontend_port;
    /* Keep the SERVICE entry's TCP state in step with the connection. */
    ct_make_key(&s->key2, client, &frontend, client_port, frontend_port, p->proto,
                p->family, DPV2_CT_KEY_SERVICE);
    struct dpv2_ct_value *svc_entry = ct_lookup(&s->key2, now);
    if (svc_entry) {
      ct_track(svc_entry, p->proto, p->tcp_flags, 1, p->len, now);
    }
  }
  if (first) {
    emit(s, DPV2_EVENT_TRACE, flags, DPV2_DROP_NONE, flow, 0);
  }
  return deliver(ctx, s, res);
}

/* A TCP SYN (without RST/FIN) on an entry with a closing bit reopens it. */
static __always_inline int ct_reopens(const struct dpv2_ct_value *v, const struct dpv2_pkt *p) {
  return p->proto == DPV2_PROTO_TCP && (p->tcp_flags & DPV2_TCP_SYN) &&
         !(p->tcp_flags & (DPV2_TCP_RST | DPV2_TCP_FIN)) && ct_is_closing(v);
}

static __always_inline int handle_reject(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                         struct dpv2_result *res) {
  int rc = reject_build(ctx, &s->pkt);
  if (rc < 0) {
    return drop(s, res, -rc, &s->flow);
  }
  count(DPV2_CNT_TX, 1);
  count(DPV2_CNT_REJECTED, 1);
  count_drop(DPV2_DROP_SERVICE_NO_BACKEND);
  emit(s, DPV2_EVENT_DROP, DPV2_EV_F_REJECTED, DPV2_DROP_SERVICE_NO_BACKEND, &s->flow, 0);
  res->verdict = DPV2_V_TX;
  res->drop_reason = DPV2_DROP_SERVICE_NO_BACKEND;
  res->ifindex = s->ifindex;
  return 0;
}

/* Picks the backend of a new connection: affinity first, then the lookup
 * table slot. 0 or a drop reason. Writes no map and counts nothing: an
 * affinity hit is counted by the caller once it serves the connection
 * (XDP may hand it to tc). */
static __always_inline int select_backend(struct dpv2_scratch *s, const struct dpv2_lb_value *svc,
                                          __u64 now, __u32 *backend_id) {
  struct dpv2_pkt *p = &s->pkt;
  /* The Maglev slot's hash, also where an SNATed connection's port probes
   * start (snat.h): computed for every frontend. */
  ct_make_key(&s->key2, &p->saddr, &p->daddr, p->sport, p->dport, p->proto, p->family, 0);
  s->tuple_hash = dpv2_tuple_hash(&s->key2.saddr, &s->key2.daddr, s->key2.sport,
                                  s->key2.dport, s->key2.proto, s->key2.family);
  s->affinity_hit = 0;
  if (svc->flags & DPV2_LB_F_AFFINITY) {
    struct dpv2_affinity_key akey;
    lb_affinity_key(&akey, svc->service_id, p);
    struct dpv2_affinity_value *a = bpf_map_lookup_elem(&dpv2_affinity, &akey);
    if (a && !(now < a->last_used_ns ||
               now - a->last_used_ns >= (__u64)svc->affinity_timeout_s * DPV2_NS_PER_S) &&
        lb_lookup_backend(a->backend_id)) {
      *backend_id = a->backend_id;
      s->affinity_hit = 1;
      return 0;
    }
  }
  const __u32 hash = (svc->flags & DPV2_LB_F_RANDOM) ? bpf_get_prandom_u32() : s->tuple_hash;
  int rc = maglev_pick(svc, hash, backend_id);
  return rc < 0 ? -rc : 0;
}

/* What XDP serves by itself: new and established connections to NodePort,
 * LoadBalancer and external-IP frontends (traffic from the network that
 * needs no reply-direction, related-ICMP or plain-flow state). */
static __always_inline int xdp_serves(const struct dpv2_lb_value *svc) {
  return (svc->flags & (DPV2_LB_F_NODEPORT | DPV2_LB_F_LOADBALANCER)) != 0;
}

/* A SERVICE entry this packet wrote for a connection that then failed: no
 * stamp outlives it. A new entry goes, a replaced one (reopened,
 * re-chosen) stays with its stamp taken back. */
static __always_inline void ct_undo_service(struct dpv2_scratch *s) {
  void *map = ct_map(s->pkt.proto);
  if (!s->replaces_service) {
    bpf_map_delete_elem(map, &s->key);
    return;
  }
  struct dpv2_ct_value *replaced = bpf_map_lookup_elem(map, &s->key);
  if (replaced) {
    ct_unstamp(replaced);
  }
}

/* Whether a live flow entry (0: none) under a new service connection's flow
 * key (client -> backend) is another connection's (docs/datapath.md,
 * "Source port collisions"): a plain flow, a remapped connection's (SNAT),
 * or one translated from another frontend. REV_NAT without SNAT and this
 * frontend is the connection's own, reopened. */
static __always_inline int ct_held_by_other(const struct dpv2_ct_value *e,
                                            const struct dpv2_pkt *p) {
  return e && !ct_flow_of(e, DPV2_CT_F_REV_NAT, &p->daddr, p->dport);
}

/* s->snat_client: the reverse SNAT entry this packet's client gets. */
static __always_inline void snat_set_client(struct dpv2_scratch *s, __u64 now) {
  struct dpv2_snat_value *client = &s->snat_client;
  __builtin_memset(client, 0, sizeof(*client));
  addr_copy(&client->addr, &s->pkt.saddr);
  client->port = s->pkt.sport;
  client->created_ns = now;
}

/* A new SNATed connection's SNAT entries, after its SERVICE entry: the
 * reverse one (its flow key, which gets the claimed port, -> the client),
 * then the forward one (its SERVICE key -> s->snat, the node address and
 * that port). 0, or a drop reason with neither entry left. */
static __always_inline int snat_create(struct dpv2_scratch *s, const struct dpv2_backend *be,
                                       __u64 now) {
  struct dpv2_pkt *p = &s->pkt;
  snat_set_client(s, now);
  ct_make_key(&s->key2, &s->snat.addr, &be->addr, 0, be->port, p->proto, p->family, 0);
  int rc = snat_claim_port(&s->key2, &s->snat_client, &s->key, s->tuple_hash);
  if (rc < 0) {
    return -rc;
  }
  s->snat.port = s->key2.sport;
  s->snat.created_ns = now;
  if (bpf_map_update_elem(&dpv2_snat, &s->key, &s->snat, BPF_ANY) < 0) {
    bpf_map_delete_elem(&dpv2_snat, &s->key2);
    return DPV2_DROP_CT_FULL;
  }
  return 0;
}

DPV2_VERIFIED_ALONE int handle_service(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                       struct dpv2_lb_value *svc, struct dpv2_result *res,
                                       __u64 now) {
  if (!s || !svc || !res) {
    return 0;
  }
  struct dpv2_pkt *p = &s->pkt;
  struct dpv2_flow *flow = &s->flow;
  flow->service_id = svc->service_id;
  s->snat_on = 0;
  s->snat_restore = 0;
  /* Before any SERVICE entry of this frontend is made or stamped. */
  frontend_hint_set(&p->daddr, p->dport, p->proto);
  ct_make_key(&s->key, &p->saddr, &p->daddr, p->sport, p->dport, p->proto, p->family,
              DPV2_CT_KEY_SERVICE);
  /* One lookup, live or not: a new connection over an expired SERVICE
   * entry replaces it, which a full table still allows. */
  struct dpv2_ct_value *se_any = bpf_map_lookup_elem(ct_map(p->proto), &s->key);
  struct dpv2_ct_value *se = se_any && now < se_any->expires_ns ? se_any : 0;
  s->replaces_service = se_any != 0;
  struct dpv2_backend *be = 0;
  struct dpv2_ct_value *fe = 0; /* the flow entry of an established connection */
  s->reopened = 0;
  if (se) {
    if (hook_is_xdp() && (se->flags & DPV2_CT_F_SNAT)) {
      return next_hook(res); /* XDP serves no SNATed connection */
    }
    s->reopened = ct_reopens(se, p);
    if (!s->reopened) {
      /* Established: keep the backend even if it left the lookup table
       * (terminating); choose again only if it was deleted. */
      be = lb_lookup_backend(se->backend_id);
    }
    /* An SNATed connection's source (its forward SNAT entry), the reverse
     * SNAT entry under its port, keyed like its flow entry, and that flow
     * entry: without the first, or with the second naming another client or
     * the third another frontend (the port went to another connection), the
     * connection is handled as new. Not in XDP, which handed it to tc
     * above. */
    if (!hook_is_xdp() && be && (se->flags & DPV2_CT_F_SNAT)) {
      const struct dpv2_snat_value *source = bpf_map_lookup_elem(&dpv2_snat, &s->key);
      if (source) {
        s->snat = *source;
        ct_make_key(&s->key2, &s->snat.addr, &be->addr, s->snat.port, be->port, p->proto,
                    p->family, 0);
        snat_set_client(s, now);
        const struct dpv2_snat_value *reverse = bpf_map_lookup_elem(&dpv2_snat, &s->key2);
        s->snat_restore = !reverse;
        fe = ct_lookup(&s->key2, now);
        s->snat_on = (!reverse || snat_same_client(reverse, &s->snat_client)) &&
                     snat_own_flow(fe, &s->key);
      }
      if (!s->snat_on) {
        be = 0;
      }
    }
  }
  int rc;
  if (se && be) {
    flow->backend_id = se->backend_id;
    flow_set_daddr(s, &be->addr);
    flow->dport = be->port;
    if (!s->snat_on) {
      ct_make_key(&s->key2, &p->saddr, &be->addr, p->sport, be->port, p->proto, p->family, 0);
      fe = ct_lookup(&s->key2, now);
    }
    rc = datapath_policy(s, 0);
    if (rc) {
      return drop(s, res, rc, flow);
    }
    /* The reverse SNAT entry was collected (with the flow entry, whose key
     * it shares): written again, before the flow entry as at creation. A
     * key another CPU claimed since the look-up is left to its client. */
    if (s->snat_restore) {
      long err = bpf_map_update_elem(&dpv2_snat, &s->key2, &s->snat_client, BPF_NOEXIST);
      if (err) {
        return drop(s, res, err == -EEXIST ? DPV2_DROP_NAT_NO_PORT : DPV2_DROP_CT_FULL, flow);
      }
    }
    if (!fe) {
      /* The flow entry expired or was collected on its own: recreate it. */
      resolve_identities(s);
      struct dpv2_ct_value *v = &s->ct;
      __builtin_memset(v, 0, sizeof(*v));
      v->created_ns = now;
      addr_copy(&v->nat_addr, &p->daddr);
      v->nat_port = p->dport;
      v->flags = DPV2_CT_F_REV_NAT | (se->flags & (DPV2_CT_F_NODEPORT | DPV2_CT_F_SNAT));
      v->backend_id = flow->backend_id;
      v->service_id = svc->service_id;
      v->src_identity = flow->src_identity;
      v->dst_identity = flow->dst_identity;
      ct_track(v, p->proto, p->tcp_flags, 0, p->len, now);
      if (ct_insert(&s->key2, v) < 0) {
        if (s->snat_restore) {
          bpf_map_delete_elem(&dpv2_snat, &s->key2);
        }
        return drop(s, res, DPV2_DROP_CT_FULL, flow);
      }
      ct_mark_reverse_service(&s->key2);
      count(DPV2_CNT_CT_CREATED, 1);
    } else {
      ct_track(fe, p->proto, p->tcp_flags, 0, p->len, now);
    }
    /* Stamped once its flow entry exists: a packet dropped above leaves
     * the stamp it found. An SNATed connection never is: the fast path
     * knows no source translation. */
    if (!s->snat_on) {
      ct_stamp(se, s, xdp_serves(svc) ? DPV2_CT_C_XDP : 0);
    }
    ct_cache_backend(se, be);
    ct_track(se, p->proto, p->tcp_flags, 0, p->len, now);
    count(DPV2_CNT_SERVICE_ESTABLISHED, 1);
    /* The caller rewrites: its stack frame is smaller than this one. */
    addr_copy(&s->dnat_addr, &be->addr);
    s->dnat_port = be->port;
    s->dnat = 1;
    return 0;
  }

  /* A new connection (or a reopened one, or one whose backend was deleted). */
  if (lb_check_source_range(svc, p) < 0) {
    return drop(s, res, DPV2_DROP_SOURCE_RANGE, flow);
  }
  if (svc->backend_count == 0) {
    if (svc->flags & DPV2_LB_F_EMPTY_DROP) {
      return drop(s, res, DPV2_DROP_LOCAL_NO_BACKEND, flow);
    }
    return handle_reject(ctx, s, res);
  }
  __u32 backend_id = 0;
  rc = select_backend(s, svc, now, &backend_id);
  if (rc) {
    return drop(s, res, rc, flow);
  }
  be = lb_lookup_backend(backend_id);
  if (!be) {
    return drop(s, res, DPV2_DROP_BACKEND_MISSING, flow);
  }
  /* SNAT to the node's address (docs/datapath.md, "SNAT"), or to the
   * client's own when another connection holds this one's flow key ("Source
   * port collisions"): decided before anything is written, so that XDP can
   * hand the frame on untouched. */
  const struct dpv2_node_addr_value *node =
      snat_wanted(s->obs, svc, be) ? snat_node_addr(p->family) : 0;
  if (node) {
    __builtin_memset(&s->snat, 0, sizeof(s->snat));
    addr_copy(&s->snat.addr, &node->addr);
    s->snat_on = DPV2_SNAT_ON_NODE;
  } else {
    ct_make_key(&s->key2, &p->saddr, &be->addr, p->sport, be->port, p->proto, p->family, 0);
    if (ct_held_by_other(ct_lookup(&s->key2, now), p)) {
      __builtin_memset(&s->snat, 0, sizeof(s->snat));
      addr_copy(&s->snat.addr, &p->saddr);
      s->snat_on = DPV2_SNAT_ON_COLLISION;
    }
  }
  if (hook_is_xdp() && s->snat_on) {
    return next_hook(res);
  }
  if (s->affinity_hit) {
    count(DPV2_CNT_AFFINITY_HIT, 1);
  }
  addr_copy(&s->dnat_addr, &be->addr);
  s->dnat_port = be->port;
  flow->backend_id = backend_id;
  flow_set_daddr(s, &be->addr);
  flow->dport = be->port;
  resolve_identities(s);
  rc = datapath_policy(s, 1);
  if (rc) {
    return drop(s, res, rc, flow);
  }
  struct dpv2_ct_value *v = &s->ct;
  __builtin_memset(v, 0, sizeof(*v));
  v->created_ns = now;
  addr_copy(&v->nat_addr, &p->daddr);
  v->nat_port = p->dport;
  v->flags = ((svc->flags & DPV2_LB_F_NODEPORT) ? DPV2_CT_F_NODEPORT : 0) |
             (s->snat_on ? DPV2_CT_F_SNAT : 0);
  v->backend_id = backend_id;
  v->service_id = svc->service_id;
  v->src_identity = flow->src_identity;
  v->dst_identity = flow->dst_identity;
  ct_track(v, p->proto, p->tcp_flags, 0, p->len, now);
  /* An SNATed connection's SERVICE entry is never stamped (see above). */
  if (!s->snat_on) {
    ct_stamp(v, s, xdp_serves(svc) ? DPV2_CT_C_XDP : 0);
  }
  ct_cache_backend(v, be);
  /* A reopened or re-chosen connection overwrites its SERVICE entry, so
   * only a brand-new one can find the table full. */
  if (ct_insert(&s->key, v) < 0) {
    return drop(s, res, DPV2_DROP_CT_FULL, flow);
  }
  if (s->snat_on) {
    rc = snat_create(s, be, now);
    if (rc) {
      ct_undo_service(s);
      return drop(s, res, rc, flow);
    }
    /* The flow key snat_create claimed: node:port -> backend. */
  } else {
    ct_make_key(&s->key2, &p->saddr, &s->dnat_addr, p->sport, s->dnat_port, p->proto,
                p->family, 0);
  }
  addr_copy(&v->nat_addr, &p->daddr);
  v->nat_port = p->dport;
  v->flags |= DPV2_CT_F_REV_NAT;
  /* Forward packets find the SERVICE entry; the flow entry carries no stamp. */
  v->revision = 0;
  v->in_ifindex = 0;
  v->cache_flags = 0;
  if (ct_insert(&s->key2, v) < 0) {
    if (s->snat_on) {
      bpf_map_delete_elem(&dpv2_snat, &s->key2);
      bpf_map_delete_elem(&dpv2_snat, &s->key);
    }
    ct_undo_service(s);
    return drop(s, res, DPV2_DROP_CT_FULL, flow);
  }
  ct_mark_reverse_service(&s->key2);
  if (svc->flags & DPV2_LB_F_AFFINITY) {
    struct dpv2_affinity_key akey;
    lb_affinity_key(&akey, svc->service_id, p);
    struct dpv2_affinity_value av = {.last_used_ns = now, .backend_id = backend_id};
    bpf_map_update_elem(&dpv2_affinity, &akey, &av, BPF_ANY);
  }
  count(DPV2_CNT_SERVICE_NEW, 1);
  count(DPV2_CNT_CT_CREATED, 2);
  if (s->reopened) {
    count(DPV2_CNT_CT_REOPENED, 1);
  }
  if (s->snat_on) {
    count(s->snat_on == DPV2_SNAT_ON_NODE ? DPV2_CNT_SNAT_NEW : DPV2_CNT_NAT_COLLISION, 1);
  }
  emit(s, DPV2_EVENT_TRACE, DPV2_EV_F_NEW | DPV2_EV_F_TRANSLATED, DPV2_DROP_NONE, flow, 0);
  s->dnat = 1;
  return 0;
}

static __always_inline int handle_plain_flow(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                             struct dpv2_result *res, __u64 now) {
  struct dpv2_pkt *p = &s->pkt;
  struct dpv2_flow *flow = &s->flow;
  const struct dpv2_endpoint_value *dst_ep = flow_dst_ep(s);
  /* Only connections of local pods are tracked (for policy and replies);
   * transit traffic passes untouched; ICMP errors that match no flow are
   * never tracked themselves. */
  int tracked = (s->from_pod || dst_ep) && !p->is_icmp_error;
  int rc;
  if (!tracked) {
    rc = datapath_policy(s, 0);
    if (rc) {
      return drop(s, res, rc, flow);
    }
    return deliver(ctx, s, res);
  }
  ct_make_key(&s->key, &p->saddr, &p->daddr, p->sport, p->dport, p->proto, p->family, 0);
  struct dpv2_ct_value *e = ct_lookup(&s->key, now);
  s->reopened = e && ct_reopens(e, p);
  const int new_connection = !e || s->reopened;
  if (new_connection) {
    resolve_identities(s);
  }
  rc = datapath_policy(s, new_connection);
  if (rc) {
    return drop(s, res, rc, flow);
  }
  if (!e) {
    struct dpv2_ct_value *v = &s->ct;
    __builtin_memset(v, 0, sizeof(*v));
    v->created_ns = now;
    v->src_identity = flow->src_identity;
    v->dst_identity = flow->dst_identity;
    ct_track(v, p->proto, p->tcp_flags, 0, p->len, now);
    ct_stamp(v, s, 0);
    if (ct_insert(&s->key, v) < 0) {
      return drop(s, res, DPV2_DROP_CT_FULL, flow);
    }
    ct_mark_reverse_service(&s->key);
    count(DPV2_CNT_CT_CREATED, 1);
  } else {
    ct_track(e, p->proto, p->tcp_flags, 0, p->len, now);
    ct_stamp(e, s, 0);
  }
  if (s->reopened) {
    count(DPV2_CNT_CT_REOPENED, 1);
  }
  if (!e || s->reopened) {
    emit(s, DPV2_EVENT_TRACE, DPV2_EV_F_NEW, DPV2_DROP_NONE, flow, 0);
  }
  return deliver(ctx, s, res);
}

/* The established fast path: a forward packet whose entry was stamped at
 * the current tables revision by a packet from the same place (ct_stamp)
 * would pass anti-spoofing and policy again and find the same frontend and
 * backend, so it skips them: a SERVICE entry needs only its backend and flow
 * entry, a plain entry nothing more (docs/datapath.md, "Established fast
 * path"). Returns 1 when it handled the packet, 0 when the full pipeline must
 * run (nothing changed yet: lookups only).
 *
 * Called twice at most. First, before the reply direction, for a packet to
 * a hinted frontend (reply_checked 0): only a SERVICE entry that no
 * reverse-keyed entry was created after (reverse_tracked 0) is served; a
 * stamp proves no reply-direction entry existed when it was set, and every
 * later creation of one marks the entry (ct_mark_reverse_service), so the
 * reply lookup would miss. Then, after the reply direction missed
 * (reply_checked 1): a SERVICE entry (not looked up when the first call
 * found none or was not made: the destination is no hinted frontend) or a
 * plain entry. */
DPV2_VERIFIED_ALONE int forward_fast(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                     struct dpv2_result *res, __u64 now, int reply_checked) {
  if (!s || !res) {
    return 0;
  }
  struct dpv2_pkt *p = &s->pkt;
  struct dpv2_flow *flow = &s->flow;
  struct dpv2_ct_value *se = 0;
  if (!reply_checked || !s->service_missed) {
    ct_make_key(&s->key, &p->saddr, &p->daddr, p->sport, p->dport, p->proto, p->family,
                DPV2_CT_KEY_SERVICE);
    se = ct_lookup(&s->key, now);
  }
  if (!se) {
    if (!reply_checked) {
      s->service_missed = 1;
      return 0;
    }
    if (hook_is_xdp()) {
      return 0;
    }
    ct_make_key(&s->key, &p->saddr, &p->daddr, p->sport, p->dport, p->proto, p->family, 0);
    struct dpv2_ct_value *e = ct_lookup(&s->key, now);
    if (!e || !ct_stamp_current(e, s) || ct_reopens(e, p)) {
      return 0;
    }
    count_stamped_policy(e);
    ct_track(e, p->proto, p->tcp_flags, 0, p->len, now);
    deliver_stamped(ctx, s, e, res);
    return 1;
  }
  if (!ct_stamp_current(se, s) || ct_reopens(se, p) ||
      (hook_is_xdp() && !(se->cache_flags & DPV2_CT_C_XDP)) ||
      (!reply_checked && se->reverse_tracked)) {
    return 0;
  }
  /* The backend as stamped (ct_cache_backend). */
  addr_copy(&s->dnat_addr, &se->nat_addr);
  s->dnat_port = se->nat_port;
  ct_make_key(&s->key2, &p->saddr, &s->dnat_addr, p->sport, s->dnat_port, p->proto, p->family,
              0);
  struct dpv2_ct_value *fe = ct_lookup(&s->key2, now);
  if (!fe) {
    return 0; /* the full path recreates it */
  }
  flow->service_id = se->service_id;
  flow->backend_id = se->backend_id;
  flow_set_daddr(s, &s->dnat_addr);
  flow->dport = s->dnat_port;
  count_stamped_policy(se);
  ct_track(fe, p->proto, p->tcp_flags, 0, p->len, now);
  ct_track(se, p->proto, p->tcp_flags, 0, p->len, now);
  count(DPV2_CNT_SERVICE_ESTABLISHED, 1);
  int rc = nat_rewrite(ctx, p, NAT_DST, &s->dnat_addr, s->dnat_port);
  if (rc < 0) {
    drop(s, res, -rc, flow);
    return 1;
  }
  deliver_stamped(ctx, s, se, res);
  return 1;
}

/* ICMPv6 that the node's stack handles for a pod, with addresses no endpoint
 * entry lists (docs/datapath.md, stage 2): neighbor discovery (133-137) from
 * any source, and MLD (queries 130, reports 131 and 143, done 132) from a
 * link-local (fe80::/10) or the unspecified source, the only sources RFC
 * 2710 and 3810 allow it. */
static __always_inline int icmp6_link_control(const struct dpv2_pkt *p) {
  if (p->family != DPV2_FAMILY_V6 || p->proto != DPV2_PROTO_ICMPV6) {
    return 0;
  }
  const __u8 t = p->icmp_type;
  if (t >= 133 && t <= 137) {
    return 1;
  }
  if (!((t >= 130 && t <= 132) || t == 143)) {
    return 0;
  }
  const __u32 *w = (const __u32 *)p->saddr.b;
  const int link_local = p->saddr.b[0] == 0xfe && (p->saddr.b[1] & 0xc0) == 0x80;
  return link_local || (w[0] | w[1] | w[2] | w[3]) == 0;
}

/* The key a reply of this packet's connection was tracked under. */
static __always_inline void ct_make_reply_key(struct dpv2_scratch *s) {
  const struct dpv2_pkt *p = &s->pkt;
  ct_make_key(&s->key, &p->daddr, &p->saddr, proto_is_icmp(p->proto) ? p->sport : p->dport,
              p->sport, p->proto, p->family, 0);
}

/* Packets forward_fast may serve: port-bearing, whole, not an ICMP error,
 * and not a TCP SYN (a new or reopening connection, which the full path
 * handles and stamps). */
static __always_inline int fast_path_candidate(const struct dpv2_scratch *s) {
  const struct dpv2_pkt *p = &s->pkt;
  return s->revision != 0 && !p->is_fragment && !p->is_icmp_error &&
         proto_has_ports(p->proto) &&
         !(p->proto == DPV2_PROTO_TCP && (p->tcp_flags & DPV2_TCP_SYN));
}

static __always_inline int datapath_pipeline(DPV2_CTX *ctx, struct dpv2_scratch *s,
                                             struct dpv2_result *res) {
  struct dpv2_pkt *p = &s->pkt;
  int rc = parse_frame(ctx, p);
  if (hook_is_xdp() && (rc < 0 || !p->is_ip || p->is_fragment || p->is_icmp_error ||
                        !proto_has_ports(p->proto))) {
    return next_hook(res);
  }
  if (rc < 0) {
    return drop(s, res, -rc, 0);
  }
  if (!p->is_ip) {
    /* ARP and other non-IP frames are not the datapath's business. */
    count(DPV2_CNT_PASSED, 1);
    res->verdict = DPV2_V_PASS;
    return 0;
  }
  if (icmp6_link_control(p)) {
    count(DPV2_CNT_PASSED, 1);
    res->verdict = DPV2_V_PASS;
    return 0;
  }
  flow_from_packet(&s->flow, p);
  s->identities_pending = 1;
  s->src_ep_state = DPV2_EP_UNKNOWN;
  s->dst_ep_state = DPV2_EP_UNKNOWN;
  s->revision = tables_revision();
  __u64 now = datapath_clock(s);
  /* A packet to a hinted frontend tries its stamped SERVICE entry first
   * (forward_fast says why no reply-direction entry can exist then); any
   * other packet looks up stage 6's reply direction first, and a forward
   * packet of a stamped connection then needs nothing else before its own
   * entry. Only lookups happen before anti-spoofing, so a packet the fast
   * path declines meets the stages in their order.
   * A packet to no hinted frontend skips the SERVICE key altogether: a
   * SERVICE entry stamped at the current revision exists only for a hinted
   * frontend (handle_service sets the hint before it stamps, and hints go
   * only with a new load, which bumps the revision). A SERVICE entry with
   * a stale stamp would send the packet down the full path, and a plain
   * entry stamped at this revision proves that the frontend lookup missed
   * at it, so serving that entry is what the full path would do. A plain
   * flow thus pays no SERVICE-key miss. */
  s->service_missed = 1;
  if (fast_path_candidate(s) && frontend_hinted(&p->daddr, p->dport, p->proto)) {
    s->service_missed = 0;
    if (forward_fast(ctx, s, res, now, 0)) {
      return 0;
    }
  }
  ct_make_reply_key(s);
  struct dpv2_ct_value *e = ct_lookup(&s->key, now);
  if (!e && fast_path_candidate(s) && forward_fast(ctx, s, res, now, 1)) {
    return 0;
  }
  if (s->from_pod && cfg_enforce_source) {
    const struct dpv2_endpoint_value *ep = flow_src_ep(s);
    if (!ep || ep->ifindex != s->ifindex) {
      return drop(s, res, DPV2_DROP_SPOOFED_SOURCE, &s->flow);
    }
  }
  if (p->is_fragment) {
    return drop(s, res, DPV2_DROP_FRAGMENT, &s->flow);
  }
  /* XDP handed every ICMP error to tc above. */
  if (!hook_is_xdp() && p->is_icmp_error && p->has_inner) {
    if (handle_related_icmp(ctx, s, res, now)) {
      return 0;
    }
    ct_make_reply_key(s); /* handle_related_icmp used s->key */
  }
  /* The reply direction first: a reply of a tracked flow is never a new
   * connection, whatever its destination port. */
  if (e) {
    if (hook_is_xdp()) {
      return next_hook(res);
    }
    return handle_reply(ctx, s, e, res, now);
  }
  if (proto_has_ports(p->proto)) {
    struct dpv2_lb_value *svc = lb_lookup_service(p, s->from_pod);
    if (hook_is_xdp() && (!svc || !xdp_serves(svc))) {
      return next_hook(res);
    }
    if (svc) {
      s->dnat = 0;
      handle_service(ctx, s, svc, res, now);
      if (!s->dnat) {
        return 0;
      }
      rc = nat_rewrite(ctx, p, NAT_DST, &s->dnat_addr, s->dnat_port);
      if (rc == 0 && s->snat_on) {
        rc = nat_rewrite(ctx, p, NAT_SRC, &s->snat.addr, s->snat.port);
      }
      if (rc < 0) {
        return drop(s, res, -rc, &s->flow);
      }
      return deliver(ctx, s, res);
    }
  }
  if (hook_is_xdp()) {
    return next_hook(res);
  }
  return handle_plain_flow(ctx, s, res, now);
}

static __always_inline void datapath_run(DPV2_CTX *ctx, __u32 ifindex, __u8 obs,
                                         struct dpv2_result *res) {
  res->verdict = DPV2_V_DROP;
  res->drop_reason = DPV2_DROP_NONE;
  res->ifindex = 0;
  res->service_id = 0;
  /* Counted at the end, so that a frame XDP hands on is counted once, by tc;
   * the length as received (REJECT resizes the frame). */
  const __u32 len = ctx_len(ctx);
  __u32 zero = 0;
  struct dpv2_scratch *s = bpf_map_lookup_elem(&dpv2_scratch_map, &zero);
  if (!s) {
    count(DPV2_CNT_DROPPED, 1);
    count_drop(DPV2_DROP_INTERNAL);
    res->drop_reason = DPV2_DROP_INTERNAL;
  } else {
    s->ifindex = ifindex;
    s->obs = obs;
    s->from_pod = obs == DPV2_OBS_FROM_POD;
    s->flow.service_id = 0; /* frames that end before flow_from_packet */
    datapath_pipeline(ctx, s, res);
    res->service_id = s->flow.service_id;
  }
  if (res->verdict != DPV2_V_NEXT) {
    count(DPV2_CNT_PACKETS, 1);
    count(DPV2_CNT_BYTES, len);
  }
}

#endif /* DPV2_BPF_DATAPATH_H_ */
