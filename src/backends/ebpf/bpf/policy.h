/* dpv2 BPF: identities (ipcache LPM) and compiled per-endpoint policy (LPM
 * over abi/policy.h keys).
 *
 * The lookup is the one abi/policy.h defines for every backend: the longest
 * match for the exact peer identity, else for the wildcard identity 0, else
 * deny. A direction whose endpoint flag is clear is not looked up at all.
 *
 *   struct dpv2_policy_value out;
 *   int allowed = policy_lookup(ep->endpoint_id, peer, DPV2_DIR_INGRESS, proto, dport, &out);
 */
#ifndef DPV2_BPF_POLICY_H_
#define DPV2_BPF_POLICY_H_

#include "common.h"
#include "parse.h"

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 524288);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_ipcache_key);
  __type(value, struct dpv2_ipcache_value);
} dpv2_ipcache SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 1048576);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dpv2_policy_key);
  __type(value, struct dpv2_policy_value);
} dpv2_policy SEC(".maps");

/* The identity of any address: longest ipcache prefix, else "world". */
static __always_inline __u32 policy_identity_of(const struct dpv2_addr *addr, __u8 family) {
  struct dpv2_ipcache_key key = {
      .prefixlen = 32 + addr_len(family) * 8,
      .family = family,
  };
  addr_copy(&key.addr, addr);
  struct dpv2_ipcache_value *v = bpf_map_lookup_elem(&dpv2_ipcache, &key);
  return v ? v->identity : DPV2_IDENTITY_WORLD;
}

/* 1 when allowed; *out holds the deciding entry (all zero when none). */
static __always_inline int policy_lookup(__u32 endpoint_id, __u32 peer_identity, __u8 direction,
                                         __u8 proto, __be16 dport,
                                         struct dpv2_policy_value *out) {
  struct dpv2_policy_key key = {
      .prefixlen = DPV2_POLICY_PREFIX_FIXED + 16,
      .endpoint_id = endpoint_id,
      .identity = peer_identity,
      .direction = direction,
      .proto = proto,
      .dport = dport,
  };
  struct dpv2_policy_value *v = 0;
  if (peer_identity != 0) {
    v = bpf_map_lookup_elem(&dpv2_policy, &key);
  }
  if (!v) {
    key.identity = 0;
    v = bpf_map_lookup_elem(&dpv2_policy, &key);
  }
  if (!v) {
    __builtin_memset(out, 0, sizeof(*out));
    return 0;
  }
  *out = *v;
  return v->verdict == DPV2_POLICY_ALLOW;
}

#endif /* DPV2_BPF_POLICY_H_ */
