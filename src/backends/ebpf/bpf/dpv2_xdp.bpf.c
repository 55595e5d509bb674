// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only)
/* dpv2 BPF: the XDP entry program of the node's external device.
 *
 * The same pipeline as tc (datapath.h, compiled over struct xdp_md), in XDP
 * scope: NodePort/LoadBalancer/external-IP connections are served here;
 * everything else returns XDP_PASS untouched and tc's dpv2_from_network runs
 * it. The loader shares every state map with the tc object (one datapath).
 * dpv2_xdp_from_network_test is the BPF_PROG_TEST_RUN twin: it takes the
 * ingress ifindex from, and leaves the outcome in, dpv2_xdp_test_io.
 */
#define DPV2_CTX_XDP 1
#include "datapath.h"
#include "handoff.h"

struct dpv2_xdp_test_io {
  __u32 in_ifindex;
  __u32 verdict; /* DPV2_V_*, including DPV2_V_NEXT */
  __u32 drop_reason;
  __u32 ifindex;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dpv2_xdp_test_io);
} dpv2_xdp_test_io SEC(".maps");

static __always_inline int xdp_action(struct xdp_md *ctx, const struct dpv2_result *res) {
  switch (res->verdict) {
    case DPV2_V_NEXT:
      return XDP_PASS;
    case DPV2_V_TX:
      return XDP_TX;
    case DPV2_V_PASS:
    case DPV2_V_REDIRECT:
      break;
    default:
      return XDP_DROP;
  }
  /* Served, but delivered as an skb: tells tc so (handoff.h). */
  if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct dpv2_xdp_handoff)) < 0) {
    count(DPV2_CNT_DROPPED, 1);
    count_drop(DPV2_DROP_INTERNAL);
    return XDP_DROP;
  }
  struct dpv2_xdp_handoff *h = (void *)(long)ctx->data_meta;
  if ((void *)(h + 1) > (void *)(long)ctx->data) {
    return XDP_DROP;
  }
  h->magic = DPV2_XDP_HANDOFF_MAGIC;
  h->verdict = res->verdict;
  h->ifindex = res->ifindex;
  h->pad = 0;
  return XDP_PASS;
}

SEC("xdp")
int dpv2_xdp_from_network(struct xdp_md *ctx) {
  struct dpv2_result res;
  datapath_run(ctx, ctx->ingress_ifindex, DPV2_OBS_FROM_NETWORK, &res);
  return xdp_action(ctx, &res);
}

SEC("xdp")
int dpv2_xdp_from_network_test(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct dpv2_xdp_test_io *io = bpf_map_lookup_elem(&dpv2_xdp_test_io, &zero);
  if (!io) {
    return XDP_ABORTED;
  }
  struct dpv2_result res;
  datapath_run(ctx, io->in_ifindex, DPV2_OBS_FROM_NETWORK, &res);
  io->verdict = res.verdict;
  io->drop_reason = res.drop_reason;
  io->ifindex = res.ifindex;
  /* The output frame is what the test run returns: no handoff record. */
  switch (res.verdict) {
    case DPV2_V_TX:
      return XDP_TX;
    case DPV2_V_DROP:
      return XDP_DROP;
    default:
      return XDP_PASS;
  }
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
