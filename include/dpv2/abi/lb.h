/* dpv2 datapath ABI: service load-balancing tables.
 *
 * A frontend (address, port, protocol, scope) maps to a dpv2_lb_value that
 * names a lookup table (a Maglev table of backend ids, size a prime M). Lookup
 * tables are immutable once written: a change writes a new table id, then
 * repoints the frontend, then deletes the old table, so a packet never sees a
 * partial table. Backends are shared by id across frontends.
 *
 *   key = {.addr = vip, .port = htons(80), .proto = DPV2_PROTO_TCP,
 *          .family = DPV2_FAMILY_V4, .scope = DPV2_LB_SCOPE_EXT};
 *   backend_id = table slot hash(tuple) % M, M the table's own size;
 */
#ifndef DPV2_ABI_LB_H_
#define DPV2_ABI_LB_H_

#include "types.h"

/* Scope of a frontend entry. Every frontend has an EXT entry; a frontend whose
 * internal traffic sees a different backend set (externalTrafficPolicy Local on
 * a NodePort/LB/external IP) also has an INT entry and the EXT value carries
 * DPV2_LB_F_TWO_SCOPES. Traffic from a local pod uses INT when present. */
#define DPV2_LB_SCOPE_EXT 0
#define DPV2_LB_SCOPE_INT 1

/* dpv2_lb_value.flags */
#define DPV2_LB_F_AFFINITY (1u << 0)      /* sessionAffinity ClientIP */
#define DPV2_LB_F_SOURCE_RANGES (1u << 1) /* check dpv2_src_range_key */
#define DPV2_LB_F_EMPTY_DROP (1u << 2)    /* no backend: drop (Local), not reject */
#define DPV2_LB_F_TWO_SCOPES (1u << 3)    /* an INT-scope entry exists */
#define DPV2_LB_F_RANDOM (1u << 4)        /* random slot instead of tuple hash */
#define DPV2_LB_F_NODEPORT (1u << 5)      /* frontend is a NodePort on a node address */
#define DPV2_LB_F_LOADBALANCER (1u << 6)  /* LB ingress IP or external IP */
#define DPV2_LB_F_LOCAL (1u << 7)         /* traffic policy Local: no SNAT */

struct dpv2_lb_key {
  struct dpv2_addr addr;
  __be16 port;
  __u8 proto;
  __u8 family;
  __u8 scope;
  __u8 pad[3];
};

struct dpv2_lb_value {
  __u32 service_id;         /* stable per frontend; keys affinity and source ranges */
  __u32 table_id;           /* dpv2 lookup table; 0 when backend_count == 0 */
  __u32 affinity_timeout_s; /* with DPV2_LB_F_AFFINITY */
  __u16 backend_count;      /* distinct usable backends in the table */
  __u16 flags;              /* DPV2_LB_F_*; eBPF: table class in bits 11-15 */
};

/* dpv2_backend.flags */
#define DPV2_BACKEND_F_LOCAL (1u << 0) /* the backend pod runs on this node */

struct dpv2_backend {
  struct dpv2_addr addr;
  __be16 port;
  __u8 proto;
  __u8 family;
  __u8 flags;
  __u8 pad[3];
};

/* Lookup tables: id -> M backend ids. Each table has its own M, a prime the
 * control plane picks from the table's backend count and the datapath config
 * (MaglevTableSizeFor in dpv2/maglev.h: a ladder of primes, capped at
 * maglev_table_size, which is the configured maximum and is set at load);
 * the slot of a tuple is dpv2_tuple_hash(...) % M of that table. Backend id 0
 * is never used. DPV2_MAGLEV_DEFAULT_SIZE is the default maximum.
 *
 * M lives in the table, not in dpv2_lb_value: a table is never rewritten
 * (a change writes a new id), so its M and its slots cannot disagree, in no
 * datapath and in no dump, and the frontend switch stays the one update of
 * table_id. The in-memory datapaths (sim, DPDK) hold each table at its own
 * length and need no field at all. An eBPF value is word
 * DPV2_LB_TABLE_SIZE_WORD = M, then M slots from word
 * DPV2_LB_TABLE_FIRST_SLOT, then zeros up to its size class's room. The
 * price is that a new connection reads the table's first word as well as
 * its slot. */
#define DPV2_MAGLEV_DEFAULT_SIZE 16381
#define DPV2_LB_TABLE_SIZE_WORD 0
#define DPV2_LB_TABLE_FIRST_SLOT 1
#define DPV2_LB_TABLE_WORDS(max_slots) ((max_slots) + 1)

/* Size classes of the eBPF lookup tables: one hash map per step of the
 * Maglev size ladder (kMaglevSizeLadder in dpv2/maglev.h: 251, 509, ...,
 * 16,777,213), each value with room for that step's slots (the class that
 * holds maglev_table_size: for exactly that many), so that a table costs
 * the memory of its own M, not of the largest table. A table of M slots is
 * in the first class whose step is >= M.
 *
 * The frontend names its table's class in bits 11-15 of dpv2_lb_value.flags
 * (DPV2_LB_F_TABLE_CLASS): the eBPF loader sets them when it writes the
 * frontend and clears them in its dump; the core, sim and DPDK leave them 0.
 * So a switch to a table of another class is still one update of the
 * frontend's value, and table ids keep their whole range (the core's ids
 * only grow). src/backends/ebpf/table_class.h checks that the classes fit. */
#define DPV2_LB_TABLE_CLASSES 17
#define DPV2_LB_TABLE_CLASS_SHIFT 11
#define DPV2_LB_F_TABLE_CLASS (0x1fu << DPV2_LB_TABLE_CLASS_SHIFT)
#define DPV2_LB_TABLE_CLASS_OF(flags) \
  (((flags) & DPV2_LB_F_TABLE_CLASS) >> DPV2_LB_TABLE_CLASS_SHIFT)

/* The node's own address of each family, the source SNATed connections
 * leave with (dpv2_snat_value): key DPV2_FAMILY_V4 or DPV2_FAMILY_V6. The
 * control plane writes it from the Node object; a family without one is
 * never SNATed (the DPDK appliance writes none). */
struct dpv2_node_addr_key {
  __u8 family;
  __u8 pad[3];
};

struct dpv2_node_addr_value {
  struct dpv2_addr addr;
};

/* sessionAffinity ClientIP state, keyed per frontend and client address. */
struct dpv2_affinity_key {
  struct dpv2_addr client;
  __u32 service_id;
  __u8 family;
  __u8 pad[3];
};

/* sessionAffinityConfig.clientIP.timeoutSeconds is at most this (Kubernetes'
 * limit); garbage collection removes affinity entries idle this long. */
#define DPV2_AFFINITY_MAX_TIMEOUT_S 86400

struct dpv2_affinity_value {
  __u64 last_used_ns;
  __u32 backend_id;
  __u32 pad;
};

/* loadBalancerSourceRanges: an LPM key; prefixlen counts the service_id and
 * family words (64 bits) plus the CIDR bits. Presence means allowed. */
struct dpv2_src_range_key {
  __u32 prefixlen;
  __u32 service_id;
  __u8 family;
  __u8 pad[3];
  struct dpv2_addr addr;
};

#endif /* DPV2_ABI_LB_H_ */
