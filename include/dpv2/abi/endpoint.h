/* dpv2 datapath ABI: local endpoints and the ipcache.
 *
 * A local endpoint is a pod on this node: its address maps to the interface
 * (host side of its veth) that delivers to it and to the MACs to write. The
 * ipcache maps any address or prefix in the cluster (and the CIDRs policies
 * name) to a numeric security identity; longest prefix wins.
 *
 *   ep = lookup(endpoints, {.addr = daddr, .family = 4});
 *   if (ep) redirect(ep->ifindex);
 */
#ifndef DPV2_ABI_ENDPOINT_H_
#define DPV2_ABI_ENDPOINT_H_

#include "types.h"

/* Reserved identities (Cilium's numbering). */
#define DPV2_IDENTITY_UNKNOWN 0
#define DPV2_IDENTITY_HOST 1
#define DPV2_IDENTITY_WORLD 2
#define DPV2_IDENTITY_UNMANAGED 3
#define DPV2_IDENTITY_REMOTE_NODE 6
#define DPV2_IDENTITY_FIRST_ALLOCATED 256

struct dpv2_endpoint_key {
  struct dpv2_addr addr;
  __u8 family;
  __u8 pad[3];
};

/* dpv2_endpoint_value.flags */
#define DPV2_EP_F_INGRESS_POLICY (1u << 0) /* isolated for ingress */
#define DPV2_EP_F_EGRESS_POLICY (1u << 1)  /* isolated for egress */

struct dpv2_endpoint_value {
  __u32 endpoint_id; /* keys this endpoint's policy entries */
  __u32 ifindex;     /* host side of the pod's veth */
  __u32 identity;
  __u32 flags;       /* DPV2_EP_F_* */
  __u8 mac[6];       /* the pod's MAC: destination of delivered frames */
  __u8 host_mac[6];  /* the host-side veth MAC: their source */
  __u8 pad[4];
};

struct dpv2_ipcache_key {
  __u32 prefixlen; /* 32 (family word) + CIDR bits */
  __u8 family;
  __u8 pad[3];
  struct dpv2_addr addr;
};

struct dpv2_ipcache_value {
  __u32 identity;
  __u32 flags;
};

#endif /* DPV2_ABI_ENDPOINT_H_ */
