/* dpv2 datapath ABI: compiled per-endpoint policy.
 *
 * The policy compiler (src/core/policy) turns NetworkPolicy, AdminNetworkPolicy
 * and BaselineAdminNetworkPolicy into entries keyed by (local endpoint,
 * peer identity, direction, protocol, destination port prefix). The table is
 * an LPM over those bits, so an endPort range becomes a few prefixes and the
 * per-packet cost does not depend on the number of policies.
 *
 * Lookup (every backend alike; src/core/policy/policy_map.h is the reference):
 *   1. LPM with the exact peer identity; a hit is the answer.
 *   2. Else LPM with identity 0 (the wildcard "any peer"); a hit is the answer.
 *   3. Else no match: the connection is denied (fail closed).
 * The compiler folds every broader or wildcard entry into the narrower ones,
 * so the longest match alone carries the final verdict: the datapath never
 * compares entries. A direction whose endpoint flag (DPV2_EP_F_*_POLICY) is
 * clear is not looked up at all: it allows everything.
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

/* Bits of the key up to and including direction: an entry of this length
 * matches every protocol and port (a rule without ports). */
#define DPV2_POLICY_PREFIX_DIR (32 + 32 + 8)
/* Bits of the key before the port: endpoint_id, identity, direction, proto.
 * An entry of this length matches every port of one protocol; + 16 is one
 * port; lengths in between are port ranges. */
#define DPV2_POLICY_PREFIX_FIXED (32 + 32 + 8 + 8)

struct dpv2_policy_key {
  __u32 prefixlen;
  __u32 endpoint_id;
  __u32 identity;  /* 0: any peer */
  __u8 direction;  /* DPV2_DIR_* */
  __u8 proto;      /* 0 when prefixlen == DPV2_POLICY_PREFIX_DIR */
  __be16 dport;    /* bits beyond prefixlen are zero */
};

#define DPV2_POLICY_ALLOW 1
#define DPV2_POLICY_DENY 2

/* Which tier decided (for flow records and logs; the datapath ignores it). */
#define DPV2_POLICY_TIER_DEFAULT 0  /* isolated by NetworkPolicy, nothing allowed */
#define DPV2_POLICY_TIER_ADMIN 1    /* AdminNetworkPolicy */
#define DPV2_POLICY_TIER_NETWORK 2  /* NetworkPolicy */
#define DPV2_POLICY_TIER_BASELINE 3 /* BaselineAdminNetworkPolicy */
#define DPV2_POLICY_TIER_NONE 4     /* no policy decided: default allow */

struct dpv2_policy_value {
  __u8 verdict;     /* DPV2_POLICY_* */
  __u8 tier;        /* DPV2_POLICY_TIER_* */
  __u16 pad;
  __u32 match_id;   /* names the deciding policies for logging; 0 = none */
};

#endif /* DPV2_ABI_POLICY_H_ */
