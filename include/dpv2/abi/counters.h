/* dpv2 datapath ABI: named counters.
 *
 * Backends keep one u64 per counter (per CPU or per lcore) plus one per drop
 * reason (abi/drop.h). Counter ids index the per-CPU counter array map in BPF
 * and the counter arrays of the sim and DPDK backends alike.
 *
 *   counters[DPV2_CNT_PACKETS] += 1;
 *
 * The host_routed pair counts what eBPF host routing (bpf/fib.h) sent on
 * itself: every packet it redirected after a FIB lookup, and of those the
 * ones whose next hop had no neighbour entry yet, handed to the kernel's
 * neighbour resolution (bpf_redirect_neigh). Sim and DPDK never route: 0.
 *
 * nat_collisions counts the new service connections whose source port was
 * remapped because another connection held their flow key
 * (docs/datapath.md, "Source port collisions"); snat_connections counts
 * only the connections SNATed to the node's address.
 */
#ifndef DPV2_ABI_COUNTERS_H_
#define DPV2_ABI_COUNTERS_H_

#define DPV2_COUNTERS(X)                                        \
  X(DPV2_CNT_PACKETS, 0, "packets")                             \
  X(DPV2_CNT_BYTES, 1, "bytes")                                 \
  X(DPV2_CNT_PASSED, 2, "passed")                               \
  X(DPV2_CNT_REDIRECTED, 3, "redirected")                       \
  X(DPV2_CNT_TX, 4, "transmitted")                              \
  X(DPV2_CNT_DROPPED, 5, "dropped")                             \
  X(DPV2_CNT_REJECTED, 6, "rejected")                           \
  X(DPV2_CNT_SERVICE_NEW, 7, "service_new_connections")         \
  X(DPV2_CNT_SERVICE_ESTABLISHED, 8, "service_established_packets") \
  X(DPV2_CNT_REV_NAT, 9, "reverse_nat_packets")                 \
  X(DPV2_CNT_CT_CREATED, 10, "conntrack_created")               \
  X(DPV2_CNT_CT_REOPENED, 11, "conntrack_reopened")             \
  X(DPV2_CNT_AFFINITY_HIT, 12, "affinity_hits")                 \
  X(DPV2_CNT_POLICY_ALLOWED, 13, "policy_allowed")              \
  X(DPV2_CNT_POLICY_DENIED, 14, "policy_denied")                \
  X(DPV2_CNT_EVENTS_LOST, 15, "events_lost")                   \
  X(DPV2_CNT_HOST_ROUTED, 16, "host_routed")                   \
  X(DPV2_CNT_HOST_ROUTED_NEIGH, 17, "host_routed_neigh_resolve") \
  X(DPV2_CNT_SNAT_NEW, 18, "snat_connections")                  \
  X(DPV2_CNT_NAT_COLLISION, 19, "nat_collisions")

enum dpv2_counter {
#define DPV2_X_ENUM(name, value, label) name = value,
  DPV2_COUNTERS(DPV2_X_ENUM)
#undef DPV2_X_ENUM
  DPV2_CNT_MAX
};

#endif /* DPV2_ABI_COUNTERS_H_ */
