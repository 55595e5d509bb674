// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only)
/* dpv2 BPF: tc entry programs.
 *
 * dpv2_from_pod runs at tc ingress on the host side of every pod veth;
 * dpv2_from_network at tc ingress of the node's external device. The *_test
 * twins are the same pipeline for BPF_PROG_TEST_RUN: they take the ingress
 * ifindex from __sk_buff.cb (a test run has no real ingress device) and leave
 * the outcome in cb, which the kernel copies back to user space.
 */
#include "datapath.h"
#include "fib.h"
#include "handoff.h"

/* `route`: a frame passed to the stack goes through host routing
 * (bpf/fib.h) first. */
static __always_inline int tc_action(struct __sk_buff *skb, const struct dpv2_result *res,
                                     int route) {
  switch (res->verdict) {
    case DPV2_V_PASS:
      return route ? fib_forward(skb) : TC_ACT_OK;
    case DPV2_V_REDIRECT:
    case DPV2_V_TX:
      return bpf_redirect(res->ifindex, 0);
    default:
      return TC_ACT_SHOT;
  }
}

static __always_inline int tc_entry(struct __sk_buff *skb, __u8 obs) {
  struct dpv2_result res;
  datapath_run(skb, skb->ifindex, obs, &res);
  /* Whatever a pod sends off the node; from the network only what a
   * Service translated (a NodePort to a remote backend, its replies). */
  return tc_action(skb, &res, obs == DPV2_OBS_FROM_POD || res.service_id != 0);
}

static __always_inline int tc_test_entry(struct __sk_buff *skb, __u8 obs) {
  struct dpv2_result res;
  datapath_run(skb, skb->cb[DPV2_CB_IN_IFINDEX], obs, &res);
  skb->cb[DPV2_CB_OUT_VERDICT] = res.verdict;
  skb->cb[DPV2_CB_OUT_DROP] = res.drop_reason;
  skb->cb[DPV2_CB_OUT_IFINDEX] = res.ifindex;
  return tc_action(skb, &res, 0);
}

SEC("tc")
int dpv2_from_pod(struct __sk_buff *skb) { return tc_entry(skb, DPV2_OBS_FROM_POD); }

/* A frame the XDP program already served: finish its delivery only. */
static __always_inline int tc_finish_xdp_handoff(struct __sk_buff *skb) {
  const struct dpv2_xdp_handoff *h = (const void *)(long)skb->data_meta;
  if ((const void *)(h + 1) > (const void *)(long)skb->data ||
      h->magic != DPV2_XDP_HANDOFF_MAGIC) {
    return -1;
  }
  /* XDP serves only Services: what it passes is translated. */
  return h->verdict == DPV2_V_REDIRECT ? bpf_redirect(h->ifindex, 0) : fib_forward(skb);
}

SEC("tc")
int dpv2_from_network(struct __sk_buff *skb) {
  int served = tc_finish_xdp_handoff(skb);
  if (served >= 0) {
    return served;
  }
  return tc_entry(skb, DPV2_OBS_FROM_NETWORK);
}

SEC("tc")
int dpv2_from_pod_test(struct __sk_buff *skb) { return tc_test_entry(skb, DPV2_OBS_FROM_POD); }

SEC("tc")
int dpv2_from_network_test(struct __sk_buff *skb) {
  return tc_test_entry(skb, DPV2_OBS_FROM_NETWORK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
