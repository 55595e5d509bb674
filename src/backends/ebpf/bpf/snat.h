/* dpv2 BPF: SNAT of external Cluster-policy connections to backends on
 * other nodes (docs/datapath.md, "SNAT"; abi/ct.h dpv2_snat_value).
 *
 * The node's address of each family is a table the loader writes; a
 * connection the datapath SNATs has two entries in dpv2_snat, keyed like two
 * of its conntrack entries: its SERVICE key -> the node address and source
 * port it leaves with (forward), its flow key (node:port -> backend) -> the
 * client, which replies get back as destination (reverse). The loader's
 * garbage collection deletes an entry whose conntrack entry is gone.
 *
 *   const struct dpv2_node_addr_value *node = snat_node_addr(family);
 *   int rc = snat_claim_port(&flow_key, &client, &service_key, tuple_hash);
 *
 * A connection whose flow key another live connection of its client holds
 * (docs/datapath.md, "Source port collisions") is SNATed the same way to
 * the client's own address.
 */
#ifndef DPV2_BPF_SNAT_H_
#define DPV2_BPF_SNAT_H_

#include <linux/errno.h>

#include "common.h"
#include "conntrack.h"

/* DatapathConfig::snat_port_min / _max (inclusive), set by the loader. */
const volatile __u16 cfg_snat_port_min = DPV2_SNAT_DEFAULT_PORT_MIN;
const volatile __u16 cfg_snat_port_max = DPV2_SNAT_DEFAULT_PORT_MAX;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, DPV2_SNAT_DEFAULT_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_ct_key);
  __type(value, struct dpv2_snat_value);
} dpv2_snat SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 2);
  __type(key, struct dpv2_node_addr_key);
  __type(value, struct dpv2_node_addr_value);
} dpv2_node_addrs SEC(".maps");

/* The node's address of `family`, or 0: that family is never SNATed. */
static __always_inline const struct dpv2_node_addr_value *snat_node_addr(__u8 family) {
  struct dpv2_node_addr_key key = {.family = family};
  return bpf_map_lookup_elem(&dpv2_node_addrs, &key);
}

/* A new connection is SNATed when it came from the network to an external
 * frontend with Cluster policy (NodePort, LoadBalancer, external IP) and
 * its backend runs on another node; the node address is the caller's. */
static __always_inline int snat_wanted(__u8 obs, const struct dpv2_lb_value *svc,
                                       const struct dpv2_backend *be) {
  return obs == DPV2_OBS_FROM_NETWORK &&
         (svc->flags & (DPV2_LB_F_NODEPORT | DPV2_LB_F_LOADBALANCER)) != 0 &&
         !(svc->flags & DPV2_LB_F_LOCAL) && !(be->flags & DPV2_BACKEND_F_LOCAL);
}

/* Whether a reverse SNAT entry's value names the same client. */
static __always_inline int snat_same_client(const struct dpv2_snat_value *a,
                                            const struct dpv2_snat_value *b) {
  return addr_eq(&a->addr, &b->addr) && a->port == b->port;
}

/* Whether `flow`, the live flow entry under an SNAT port's key (0: none),
 * is the connection's whose SERVICE key is `service`: REV_NAT | SNAT and
 * its frontend (the SERVICE key's destination). With the reverse entry
 * there naming its client it is then the same connection; otherwise
 * another connection of that client holds the port. */
static __always_inline int snat_own_flow(const struct dpv2_ct_value *flow,
                                         const struct dpv2_ct_key *service) {
  return !flow ||
         ct_flow_of(flow, DPV2_CT_F_REV_NAT | DPV2_CT_F_SNAT, &service->daddr, service->dport);
}

/* Claims a source port for a new connection: `key` is its flow key
 * (source address -> backend, flags 0) whose sport this sets, `client` the
 * reverse entry's value (created now), `service` its SERVICE key (client ->
 * frontend), `hash` dpv2_tuple_hash of that tuple (whatever the frontend's
 * backend selection). With first = hash % range, probe i tries port
 * min + (first + i) % range; a port is free when the live flow entry under
 * its key, if any, is this connection's (snat_own_flow: another
 * connection's, even a direct one of the client, holds the port) and no
 * SNAT entry has the key (BPF_NOEXIST makes the insert the claim) or the
 * entry there names this client's address and port (the same connection
 * reopened), which is rewritten. 0, or -DPV2_DROP_NAT_NO_PORT when every
 * probe was taken, -DPV2_DROP_CT_FULL when the table is full. Verified
 * once, not in every path of handle_service. */
DPV2_VERIFIED_ALONE int snat_claim_port(struct dpv2_ct_key *key,
                                        const struct dpv2_snat_value *client,
                                        const struct dpv2_ct_key *service, __u32 hash) {
  if (!key || !client || !service) {
    return -DPV2_DROP_INTERNAL;
  }
  const __u32 range = (__u32)cfg_snat_port_max - cfg_snat_port_min + 1;
  const __u32 first = hash % range;
  for (__u32 i = 0; i < DPV2_SNAT_PROBES; i++) {
    key->sport = bpf_htons((__u16)(cfg_snat_port_min + (first + i) % range));
    if (!snat_own_flow(ct_lookup(key, client->created_ns), service)) {
      continue;
    }
    long rc = bpf_map_update_elem(&dpv2_snat, key, client, BPF_NOEXIST);
    if (rc == 0) {
      return 0;
    }
    if (rc != -EEXIST) {
      return -DPV2_DROP_CT_FULL;
    }
    const struct dpv2_snat_value *taken = bpf_map_lookup_elem(&dpv2_snat, key);
    if (taken && snat_same_client(taken, client)) {
      return bpf_map_update_elem(&dpv2_snat, key, client, BPF_EXIST) < 0 ? -DPV2_DROP_CT_FULL
                                                                        : 0;
    }
  }
  return -DPV2_DROP_NAT_NO_PORT;
}

#endif /* DPV2_BPF_SNAT_H_ */
