/* dpv2 BPF: tunables, set by the loader through the skeleton before load.
 *
 * const volatile globals land in .rodata, so the verifier sees them as
 * constants: a feature that is off costs nothing at run time.
 *
 *   skel->rodata->cfg_ct_tcp_syn_ns = options.config.timeouts.tcp_syn_s * 1000000000ull;
 */
#ifndef DPV2_BPF_CONFIG_H_
#define DPV2_BPF_CONFIG_H_

#include "common.h"

#define DPV2_NS_PER_S 1000000000ull

const volatile __u64 cfg_ct_tcp_established_ns = DPV2_CT_TIMEOUT_TCP_ESTABLISHED_S * DPV2_NS_PER_S;
const volatile __u64 cfg_ct_tcp_syn_ns = DPV2_CT_TIMEOUT_TCP_SYN_S * DPV2_NS_PER_S;
const volatile __u64 cfg_ct_tcp_close_ns = DPV2_CT_TIMEOUT_TCP_CLOSE_S * DPV2_NS_PER_S;
const volatile __u64 cfg_ct_non_tcp_ns = DPV2_CT_TIMEOUT_NON_TCP_S * DPV2_NS_PER_S;
/* The datapath clock is CLOCK_MONOTONIC + this offset (dpv2::kEbpfClockOffsetNs,
 * set by the loader), so that stored timestamps can be aged in place. */
const volatile __u64 cfg_clock_offset_ns = 0;
/* Anti-spoofing of pod sources (off only for benchmarks of the bare path). */
const volatile __u8 cfg_enforce_source = 1;

/* The coarse clock (CLOCK_MONOTONIC_COARSE: the same clock at the last
 * tick, a few ms behind at most) costs a load where the precise one reads
 * the TSC (~40 ns a packet here): conntrack lifetimes are seconds. Events
 * keep the precise clock. */
static __always_inline __u64 datapath_now(void) {
  return bpf_ktime_get_coarse_ns() + cfg_clock_offset_ns;
}

#endif /* DPV2_BPF_CONFIG_H_ */
