/* dpv2 BPF: what the XDP program tells tc about a frame it served.
 *
 * XDP serves NodePort/LoadBalancer traffic completely (lookup, conntrack,
 * NAT, policy, counters, events) but a frame delivered to a local pod or to
 * the stack still travels up as an skb, through tc ingress of the same
 * device. XDP leaves this record in the frame's metadata (bpf_xdp_adjust_meta)
 * and tc, finding it, only finishes the delivery: the frame is never run
 * through the pipeline twice. Delivery to a pod goes through tc's
 * bpf_redirect rather than XDP_REDIRECT so that it works whatever the pod
 * veth's XDP/GRO set-up is.
 *
 *   struct dpv2_xdp_handoff h = {.magic = DPV2_XDP_HANDOFF_MAGIC, .verdict = DPV2_V_PASS};
 */
#ifndef DPV2_BPF_HANDOFF_H_
#define DPV2_BPF_HANDOFF_H_

#include "common.h"

#define DPV2_XDP_HANDOFF_MAGIC 0xd7f2a55au

struct dpv2_xdp_handoff {
  __u32 magic;
  __u32 verdict; /* DPV2_V_PASS or DPV2_V_REDIRECT */
  __u32 ifindex; /* DPV2_V_REDIRECT: the pod's host-side veth */
  __u32 pad;
};

#endif /* DPV2_BPF_HANDOFF_H_ */
