/* dpv2 BPF: compile-time features of an object.
 *
 * Each is a -D switch (meson compiles and CI loads every combination, so
 * none rots unseen) read through a predicate, never an #ifdef at a call site:
 * off, the predicate is the constant 0 and clang removes the feature's code
 * and the maps it alone reaches. Default: everything on.
 *
 *   if (!feature_policy()) return 0;
 */
#ifndef DPV2_BPF_FEATURES_H_
#define DPV2_BPF_FEATURES_H_

#ifndef DPV2_FEATURE_IPV6
#define DPV2_FEATURE_IPV6 1 /* off: IPv6 frames pass untouched, like non-IP */
#endif
#ifndef DPV2_FEATURE_POLICY
#define DPV2_FEATURE_POLICY 1 /* off: no NetworkPolicy lookups (all allowed) */
#endif
#ifndef DPV2_FEATURE_EVENTS
#define DPV2_FEATURE_EVENTS 1 /* off: no ring-buffer records (counters stay) */
#endif

static __always_inline int feature_ipv6(void) { return DPV2_FEATURE_IPV6; }
static __always_inline int feature_policy(void) { return DPV2_FEATURE_POLICY; }
static __always_inline int feature_events(void) { return DPV2_FEATURE_EVENTS; }

/* The hook an object is built for: the XDP build serves only what XDP can
 * finish and hands everything else, untouched, to the tc programs. */
static __always_inline int hook_is_xdp(void) {
#ifdef DPV2_CTX_XDP
  return 1;
#else
  return 0;
#endif
}

#endif /* DPV2_BPF_FEATURES_H_ */
