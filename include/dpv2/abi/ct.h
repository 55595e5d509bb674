/* dpv2 datapath ABI: connection tracking.
 *
 * Entries are keyed by the tuple in the direction of the packet that created
 * them. A service connection owns two entries (as in Cilium): a SERVICE entry
 * keyed on client -> frontend that remembers the chosen backend, and a flow
 * entry keyed on client -> backend that carries the reverse-NAT address for
 * replies. A reply is found by looking up its reversed tuple.
 *
 *   struct dpv2_ct_key k = tuple_of(pkt);   // then swap for the reply lookup
 */
#ifndef DPV2_ABI_CT_H_
#define DPV2_ABI_CT_H_

#include "types.h"

/* dpv2_ct_key.flags */
#define DPV2_CT_KEY_SERVICE (1u << 0)

struct dpv2_ct_key {
  struct dpv2_addr saddr;
  struct dpv2_addr daddr;
  __be16 sport; /* ICMP echo: the identifier; 0 otherwise for ICMP */
  __be16 dport;
  __u8 proto;
  __u8 family;
  __u8 flags;
  __u8 pad;
};

/* dpv2_ct_value.flags */
#define DPV2_CT_F_TX_CLOSING (1u << 0)   /* FIN/RST seen from the originator */
#define DPV2_CT_F_RX_CLOSING (1u << 1)   /* FIN/RST seen from the replier */
#define DPV2_CT_F_SEEN_NON_SYN (1u << 2) /* established lifetime applies */
#define DPV2_CT_F_REPLY_SEEN (1u << 3)
#define DPV2_CT_F_REV_NAT (1u << 4)      /* replies get source = nat_addr:nat_port */
#define DPV2_CT_F_NODEPORT (1u << 5)
#define DPV2_CT_F_POLICY_DENIED (1u << 6)
#define DPV2_CT_F_SNAT (1u << 7)         /* source NATed to a node address (dpv2_snat_value) */

/* The value only grows at its end, and a field added there reads zero for
 * an entry an older build wrote: a restarted loader migrates pinned
 * conntrack maps of a shorter layout by zero-extending each value
 * (src/backends/ebpf/skeleton.cc). */
struct dpv2_ct_value {
  __u64 expires_ns;  /* monotonic clock; the entry is dead when now >= expires */
  __u64 created_ns;
  __u64 packets;
  __u64 bytes;
  /* Flow entries: the frontend, for reverse NAT. SERVICE entries (whose
   * key names the frontend): the chosen backend's address and port as the
   * last stamp found them, for the fast path; every backend's
   * DumpConntrack reports the frontend there. */
  struct dpv2_addr nat_addr;
  __be16 nat_port;
  __u16 flags;       /* DPV2_CT_F_* */
  __u32 backend_id;  /* SERVICE entries: the chosen backend */
  __u32 service_id;
  __u32 src_identity;
  __u32 dst_identity;
  __u8 tcp_flags_seen; /* union of TCP flags seen (both directions) */
  __u8 cache_flags;    /* DPV2_CT_C_*, with `revision` */
  /* eBPF, SERVICE entries: nonzero once an entry of the reverse tuple (keyed
   * frontend -> client) was created after this one. The eBPF fast path
   * looks a SERVICE entry up before the reply direction and serves it only
   * while this is 0; written once, never by a stamp, so a stamp racing the
   * creation cannot undo it (docs/datapath.md, "Established fast path").
   * The sim and DPDK look the reply direction up first and leave it 0. */
  __u8 reverse_tracked;
  __u8 pad;
  /* The eBPF forward fast path (docs/datapath.md, "Established fast path"):
   * a forward packet of this entry was last fully checked (anti-spoofing
   * from in_ifindex, policy allowed) while the loader's tables revision was
   * `revision`; while it still is, later forward packets skip those checks
   * and the frontend lookup. 0: never checked. The core pipeline of the
   * sim and DPDK stamps them alike, with its DatapathTables revision. */
  __u32 revision;
  __u32 in_ifindex;
};

/* dpv2_ct_value.cache_flags */
#define DPV2_CT_C_FROM_POD (1u << 0) /* checked as a from-pod packet */
#define DPV2_CT_C_EGRESS (1u << 1)   /* an egress policy lookup allowed it */
#define DPV2_CT_C_INGRESS (1u << 2)  /* an ingress policy lookup allowed it */
#define DPV2_CT_C_XDP (1u << 3)      /* a frontend XDP serves (SERVICE entries) */
#define DPV2_CT_C_PASS (1u << 4)     /* the destination was no local endpoint */

/* Default timeouts, seconds (Cilium's; SEMANTICS.md section 3). */
#define DPV2_CT_TIMEOUT_TCP_ESTABLISHED_S 8000
#define DPV2_CT_TIMEOUT_TCP_SYN_S 60
#define DPV2_CT_TIMEOUT_TCP_CLOSE_S 10
#define DPV2_CT_TIMEOUT_NON_TCP_S 60

#define DPV2_CT_DEFAULT_TCP_ENTRIES 524288
#define DPV2_CT_DEFAULT_OTHER_ENTRIES 262144

/* SNAT of external Cluster-policy traffic to a backend on another node
 * (SEMANTICS.md section 1; docs/datapath.md, "SNAT"). A connection the
 * datapath SNATs has two entries in the SNAT table, keyed like two of its
 * conntrack entries and living as long as they do (garbage collection
 * deletes an SNAT entry whose conntrack entry of the same key is gone):
 *   forward: its SERVICE key (client -> frontend) -> the node address and
 *            the source port it was given;
 *   reverse: its flow key (node:port -> backend, flags 0) -> the client's
 *            address and port, which replies get back as destination.
 * The conntrack entries hold the rest (the flow entry: the frontend for
 * reverse NAT, DPV2_CT_F_SNAT on both). */
struct dpv2_snat_value {
  struct dpv2_addr addr;
  __be16 port;
  __u16 pad;
  __u32 pad2;
  __u64 created_ns; /* garbage collection leaves younger entries alone */
};

/* Source ports of SNATed connections (Cilium's NodePort NAT range: above
 * Kubernetes' NodePort range 30000-32767); a connection's first probe is
 * port_min + dpv2_tuple_hash(client -> frontend) % range, then the next
 * ports, DPV2_SNAT_PROBES in all. */
#define DPV2_SNAT_DEFAULT_PORT_MIN 32768
#define DPV2_SNAT_DEFAULT_PORT_MAX 65535
#define DPV2_SNAT_PROBES 16
#define DPV2_SNAT_DEFAULT_ENTRIES 131072
/* An SNAT entry younger than this is never collected: the datapath writes
 * it just before the conntrack entry of its key. */
#define DPV2_SNAT_GC_GRACE_NS 1000000000ull

#endif /* DPV2_ABI_CT_H_ */
