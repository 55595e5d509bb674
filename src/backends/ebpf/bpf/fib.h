/* dpv2 BPF: host routing, the forwarding decision after the datapath.
 *
 * A packet the datapath passes to the stack (DPV2_V_PASS) only to be
 * forwarded (a pod's packet to another node or the outside, a connection to
 * a remote Service backend, a NodePort reply) would cross the node's whole IP
 * stack: netfilter hooks, routing, neighbor output. With host routing the
 * tc program asks the kernel's FIB itself (bpf_fib_lookup, the packet's
 * ingress ifindex, no BPF_FIB_LOOKUP_DIRECT so ip rules apply), forwards as
 * the stack would (TTL / hop limit decremented, MACs of the next hop) and
 * redirects to the egress device; anything the FIB does not forward plainly
 * (a local address, blackhole, unreachable, prohibit, fragmentation needed,
 * forwarding off) and TTL 1 go to the stack as before, so it answers as it
 * always did. Like Cilium's BPF host routing, forwarded packets no longer
 * meet the node's iptables FORWARD/POSTROUTING rules (docs/datapath.md,
 * "Host routing"). tc only: test runs (the *_test twins) never route, since
 * the lookup would read the host's routes.
 *
 *   case DPV2_V_PASS: return fib_forward(skb);
 */
#ifndef DPV2_BPF_FIB_H_
#define DPV2_BPF_FIB_H_

#include <linux/ip.h>
#include <linux/ipv6.h>

#include "common.h"
#include "counters.h"
#include "csum.h"

/* Set by the loader (EbpfOptions::host_routing): off, fib_forward is the
 * constant TC_ACT_OK and no instruction of it is loaded. */
const volatile __u8 cfg_host_routing = 1;
/* bpf_redirect_neigh (Linux 5.10+) is known to the running kernel: a next
 * hop with no neighbor entry yet is resolved by it; without, the stack does. */
const volatile __u8 cfg_redirect_neigh = 1;

#define DPV2_AF_INET 2
#define DPV2_AF_INET6 10

/* IPv6 addresses the stack never forwards: link-local (fe80::/10) and
 * multicast (ff00::/8). */
static __always_inline int fib_ip6_local_scope(const struct in6_addr *a) {
  return a->s6_addr[0] == 0xff || (a->s6_addr[0] == 0xfe && (a->s6_addr[1] & 0xc0) == 0x80);
}

/* The transport ports for the FIB's multipath hash: with
 * fib_multipath_hash_policy 1 (or 3 with ports in the field set) the kernel
 * spreads flows over the next hops by ports too, and it takes them from the
 * lookup, not the packet. TCP, UDP and SCTP carry both ports in their first
 * 4 bytes; other protocols and IPv4 fragments after the first leave them 0,
 * as the stack's own hash does. */
static __always_inline void fib_ports(struct bpf_fib_lookup *fib, void *l4, void *end) {
  if (fib->l4_protocol != IPPROTO_TCP && fib->l4_protocol != IPPROTO_UDP &&
      fib->l4_protocol != IPPROTO_SCTP) {
    return;
  }
  __be16 *ports = l4;
  if ((void *)(ports + 2) > end) {
    return;
  }
  fib->sport = ports[0];
  fib->dport = ports[1];
}

/* Fills the lookup from the frame's IP header and decrements its TTL / hop
 * limit once the FIB forwards (`commit`). Returns 0 when the frame is one to
 * look up (or was decremented), -1 when it belongs to the stack. */
static __always_inline int fib_ip_header(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
                                         int commit) {
  void *data = ctx_data(skb);
  void *end = ctx_data_end(skb);
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) {
    return -1;
  }
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->ttl <= 1) {
      return -1;
    }
    if (commit) {
      /* RFC 1624 on the TTL/protocol word; the sum over the header is
       * unchanged, so a CHECKSUM_COMPLETE skb->csum stays right too. */
      __u16 *word = (__u16 *)&ip->ttl;
      const __u16 old = *word;
      ip->ttl--;
      ip->check = csum_replace2(ip->check, old, *word);
      return 0;
    }
    fib->family = DPV2_AF_INET;
    fib->tos = ip->tos;
    fib->l4_protocol = ip->protocol;
    fib->ipv4_src = ip->saddr;
    fib->ipv4_dst = ip->daddr;
    if (!(ip->frag_off & bpf_htons(0x1fff))) {
      fib_ports(fib, (void *)ip + ip->ihl * 4, end);
    }
    return 0;
  }
  if (!feature_ipv6() || eth->h_proto != bpf_htons(ETH_P_IPV6)) {
    return -1;
  }
  struct ipv6hdr *ip6 = (void *)(eth + 1);
  if ((void *)(ip6 + 1) > end || ip6->hop_limit <= 1 || fib_ip6_local_scope(&ip6->daddr) ||
      fib_ip6_local_scope(&ip6->saddr)) {
    return -1;
  }
  if (commit) {
    /* No header checksum: a received skb's CHECKSUM_COMPLETE sum follows
     * the word (bpf_csum_update is a no-op for any other state). */
    __u16 *word = (__u16 *)&ip6->nexthdr;
    const __u16 old = *word;
    ip6->hop_limit--;
    bpf_csum_update(skb, (__u16)~old + *word);
    return 0;
  }
  fib->family = DPV2_AF_INET6;
  fib->flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
  fib->l4_protocol = ip6->nexthdr;
  __builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
  __builtin_memcpy(fib->ipv6_dst, &ip6->daddr, 16);
  fib_ports(fib, ip6 + 1, end);
  return 0;
}

/* The tc action for a frame the datapath passes to the stack. */
static __always_inline int fib_forward(struct __sk_buff *skb) {
  if (!cfg_host_routing) {
    return TC_ACT_OK;
  }
  /* tot_len 0: the kernel checks the skb against the egress MTU itself,
   * GSO packets included (a length here would refuse every GSO packet). */
  struct bpf_fib_lookup fib = {.ifindex = skb->ingress_ifindex};
  if (fib_ip_header(skb, &fib, 0) < 0) {
    return TC_ACT_OK;
  }
  const long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
  const int no_neigh = rc == BPF_FIB_LKUP_RET_NO_NEIGH && cfg_redirect_neigh;
  if ((rc != BPF_FIB_LKUP_RET_SUCCESS && !no_neigh) || fib_ip_header(skb, &fib, 1) < 0) {
    return TC_ACT_OK;
  }
  if (no_neigh) {
    /* The lookup left the next hop (the gateway, else the destination) in
     * the destination field: the neighbor subsystem resolves and sends. */
    struct bpf_redir_neigh nh = {.nh_family = fib.family};
    __builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
    count(DPV2_CNT_HOST_ROUTED, 1);
    count(DPV2_CNT_HOST_ROUTED_NEIGH, 1);
    return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
  }
  void *data = ctx_data(skb);
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > ctx_data_end(skb)) {
    return TC_ACT_OK;
  }
  __builtin_memcpy(eth->h_dest, fib.dmac, 6);
  __builtin_memcpy(eth->h_source, fib.smac, 6);
  count(DPV2_CNT_HOST_ROUTED, 1);
  return bpf_redirect(fib.ifindex, 0);
}

#endif /* DPV2_BPF_FIB_H_ */
