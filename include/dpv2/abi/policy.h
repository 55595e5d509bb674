/* dpv2 datapath ABI: compiled per-endpoint policy.
 *
 * The policy compiler (src/core/policy) turns NetworkPolicy, AdminNetworkPolicy
 * and BaselineAdminNetworkPolicy into entries keyed by (local endpoint,
 * direction, peer identity, protocol, destination port prefix). The lookup is
 * an LPM over the port bits, so an endPort range becomes a few prefixes and
 * the per-packet cost does not depend on the number of policies. Identity 0
 * in a key is the wildcard "any peer"; the datapath tries the exact identity,
 * then the wildcard, and takes the entry with the higher precedence.
 *
 *   key = {.prefixlen = DPV2_POLICY_PREFIX_FIXED + 16, .endpoint_id = ep,
 *          .identity = peer, .direction = DPV2_DIR_INGRESS, .proto = 6,
 *          .dport = htons(80)};
 */
#ifndef DPV2_ABI_POLICY_H_
#define DPV2_ABI_POLICY_H_

#include "types.h"

#define DPV2_DIR_INGRESS 0
#define DPV2_DIR_EGRESS 1

/* Bits of the key before the port: endpoint_id, identity, direction, proto. */
#define DPV2_POLICY_PREFIX_FIXED (32 + 32 + 8 + 8)

struct dpv2_policy_key {
  __u32 prefixlen;
  __u32 endpoint_id;
  __u32 identity;
  __u8 direction;
  __u8 proto;  /* 0: any protocol (then prefixlen stops before the port) */
  __be16 dport;
};

#define DPV2_POLICY_ALLOW 1
#define DPV2_POLICY_DENY 2

struct dpv2_policy_value {
  __u8 verdict;     /* DPV2_POLICY_* */
  __u8 pad;
  __u16 precedence; /* higher wins when an exact and a wildcard entry both match */
  __u32 match_id;   /* names the matching policies for logging; 0 = none */
};

#endif /* DPV2_ABI_POLICY_H_ */
