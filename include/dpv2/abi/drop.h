/* dpv2 datapath ABI: drop reasons.
 *
 * Every backend (BPF C, sim, DPDK) reports drops with these codes, and the
 * C++ side turns them into metric labels with dpv2_drop_reason_name(). The list
 * is an X-macro so that the enum and the names are generated from one place.
 *
 *   if (reason != DPV2_DROP_NONE) count(reason);
 *   const char* label = dpv2_drop_reason_name(reason);   // "policy_deny"
 */
#ifndef DPV2_ABI_DROP_H_
#define DPV2_ABI_DROP_H_

/* X(enum name, value, metric label). Values are stable: never renumber. */
#define DPV2_DROP_REASONS(X)                                             \
  X(DPV2_DROP_NONE, 0, "none")                                           \
  X(DPV2_DROP_TRUNCATED, 1, "truncated")                                 \
  X(DPV2_DROP_BAD_L2, 2, "bad_l2_header")                                \
  X(DPV2_DROP_BAD_IP_VERSION, 3, "bad_ip_version")                       \
  X(DPV2_DROP_BAD_IP_HEADER, 4, "bad_ip_header")                         \
  X(DPV2_DROP_BAD_IP_LENGTH, 5, "bad_ip_length")                         \
  X(DPV2_DROP_BAD_EXT_HEADER, 6, "bad_ipv6_extension_header")            \
  X(DPV2_DROP_BAD_L4_HEADER, 7, "bad_l4_header")                         \
  X(DPV2_DROP_BAD_ICMP, 8, "bad_icmp")                                   \
  X(DPV2_DROP_FRAGMENT, 9, "fragment_not_supported")                     \
  X(DPV2_DROP_SERVICE_NO_BACKEND, 10, "service_no_backend")              \
  X(DPV2_DROP_LOCAL_NO_BACKEND, 11, "service_no_local_backend")          \
  X(DPV2_DROP_SOURCE_RANGE, 12, "lb_source_range_denied")                \
  X(DPV2_DROP_CT_FULL, 13, "conntrack_full")                             \
  X(DPV2_DROP_POLICY_DENY, 14, "policy_deny")                            \
  X(DPV2_DROP_SPOOFED_SOURCE, 15, "spoofed_source")                      \
  X(DPV2_DROP_NO_LOOKUP_TABLE, 16, "service_lookup_table_missing")       \
  X(DPV2_DROP_BACKEND_MISSING, 17, "service_backend_missing")            \
  X(DPV2_DROP_NAT_FAILED, 18, "nat_failed")                              \
  X(DPV2_DROP_UNSUPPORTED_L4, 19, "unsupported_l4_protocol")             \
  X(DPV2_DROP_CT_INVALID, 20, "conntrack_invalid")                       \
  X(DPV2_DROP_MAP_FULL, 21, "map_full")                                  \
  X(DPV2_DROP_INTERNAL, 22, "internal_error")                            \
  X(DPV2_DROP_NAT_NO_PORT, 23, "nat_no_port")

enum dpv2_drop_reason {
#define DPV2_X_ENUM(name, value, label) name = value,
  DPV2_DROP_REASONS(DPV2_X_ENUM)
#undef DPV2_X_ENUM
  DPV2_DROP_MAX
};

#endif /* DPV2_ABI_DROP_H_ */
