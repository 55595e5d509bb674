/* dpv2 datapath ABI: event records (ring buffer in BPF, queues elsewhere).
 *
 * One record per notable packet: a drop with its reason, a trace of a
 * forwarded packet (new connections and translations), a policy verdict per
 * new connection. The C++ side decodes them into dpv2::FlowEvent.
 *
 *   struct dpv2_event ev = {.type = DPV2_EVENT_DROP, .drop_reason = r, ...};
 */
#ifndef DPV2_ABI_EVENT_H_
#define DPV2_ABI_EVENT_H_

#include "types.h"

#define DPV2_EVENT_DROP 1
#define DPV2_EVENT_TRACE 2
#define DPV2_EVENT_POLICY_VERDICT 3

/* Observation points. */
#define DPV2_OBS_FROM_POD 1     /* tc ingress on the host side of a pod veth */
#define DPV2_OBS_TO_POD 2       /* delivery to a local pod */
#define DPV2_OBS_FROM_NETWORK 3 /* the node's external device (tc or XDP) */

/* dpv2_event.flags */
#define DPV2_EV_F_REPLY (1u << 0)
#define DPV2_EV_F_NEW (1u << 1)        /* created a conntrack entry */
#define DPV2_EV_F_TRANSLATED (1u << 2) /* DNAT or reverse NAT applied */
#define DPV2_EV_F_EGRESS (1u << 3)     /* policy verdict for the egress direction */
#define DPV2_EV_F_ALLOWED (1u << 4)    /* policy verdict: allowed */
#define DPV2_EV_F_REJECTED (1u << 5)   /* a RST / ICMP unreachable was sent back */

struct dpv2_event {
  __u64 timestamp_ns;
  __u8 type;        /* DPV2_EVENT_* */
  __u8 obs_point;   /* DPV2_OBS_* */
  __u16 drop_reason;
  __u16 flags;      /* DPV2_EV_F_* */
  __u8 family;
  __u8 proto;
  __u32 ifindex;
  __u32 pkt_len;
  __u32 src_identity;
  __u32 dst_identity;
  __u32 service_id;
  __u32 backend_id;
  __u32 policy_match_id;
  struct dpv2_addr saddr; /* as the packet left the datapath (after DNAT) */
  struct dpv2_addr daddr;
  __be16 sport;
  __be16 dport;
  struct dpv2_addr orig_daddr; /* before translation (the frontend) */
  __be16 orig_dport;
  __u8 tcp_flags;
  __u8 pad[5];
};

#endif /* DPV2_ABI_EVENT_H_ */
