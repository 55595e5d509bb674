/* dpv2 BPF: address and port rewriting (service DNAT, reverse NAT, and the
 * packet quoted by a related ICMP error).
 *
 * The same updates in the same order as the C++ rewrite
 * (src/core/packet/rewrite.cc), so the bytes agree: RFC 1624 incremental
 * updates of the IPv4 header checksum and of every L4 checksum that covers a
 * changed word (pseudo-header addresses, ports, ICMP echo identifiers); an
 * IPv4 UDP datagram without a checksum keeps none and a computed 0 is sent as
 * 0xffff (RFC 768); SCTP's CRC32c is recomputed (sctp.h).
 *
 *   int rc = nat_rewrite(ctx, pkt, NAT_DST, &backend->addr, backend->port);
 */
#ifndef DPV2_BPF_NAT_H_
#define DPV2_BPF_NAT_H_

#include "common.h"
#include "csum.h"
#include "parse.h"
#include "sctp.h"

#define NAT_SRC 0
#define NAT_DST 1

static __always_inline __u16 load16(DPV2_CTX *ctx, __u32 off, int *err) {
  __u16 v = 0;
  if (ctx_load(ctx, off, &v, 2) < 0) {
    *err = 1;
  }
  return v;
}

/* nat_rewrite's common case through direct packet access: an unfragmented
 * TCP or UDP packet whose headers lie in the linear part of the frame. The
 * address, port and IPv4 header checksum are written in place; the L4
 * checksum follows the same two RFC 1624 steps as the general path (address,
 * then port), in place as well unless the skb carries CHECKSUM_COMPLETE
 * (its skb->csum must follow the bytes, which only bpf_l4_csum_replace can
 * do) or the object cannot read the skb's state (the helper-only build,
 * DPV2_CSUM_KFUNC 0, csum.h): then through the helper, last, since it voids
 * packet pointers. The two helper calls cost ~100-150 ns a translated
 * packet here (docs/datapath.md). 1 when
 * done, 0 when the packet needs the general path, < 0 a drop reason. */
static __always_inline int nat_rewrite_direct(DPV2_CTX *ctx, struct dpv2_pkt *pkt, int src,
                                              const struct dpv2_addr *addr, __be16 port) {
  const int tcp = pkt->proto == DPV2_PROTO_TCP;
  if (pkt->is_fragment || (!tcp && pkt->proto != DPV2_PROTO_UDP)) {
    return 0;
  }
  const int v6 = pkt->family == DPV2_FAMILY_V6;
  const __u32 l3 = pkt->l3_off;
  const __u32 l4 = pkt->l4_off;
  if (l3 > 64 || l4 > 1024) {
    return 0; /* bounds the offsets for the verifier */
  }
  __u8 *data = ctx_data(ctx);
  void *end = ctx_data_end(ctx);
  __u8 *ip = data + l3;
  __u8 *th = data + l4;
  if ((void *)(ip + 40) > end || (void *)(th + 18) > end) {
    return 0;
  }
  __u16 *l4_csum = (__u16 *)(th + (tcp ? 16 : 6));
  /* RFC 768: an IPv4 UDP datagram without a checksum keeps none. */
  const int use_csum = !(!tcp && !v6 && *l4_csum == 0);
  struct dpv2_addr old = {};
  __be16 *port_p = (__be16 *)(th + (src ? 0 : 2));
  const __be16 old_port = *port_p;
  if (!v6) {
    __u32 *a = (__u32 *)(ip + (src ? 12 : 16));
    *(__u32 *)old.b = *a;
    *a = *(const __u32 *)addr->b;
    __u16 *ip_csum = (__u16 *)(ip + 10);
    *ip_csum = csum_replace(*ip_csum, old.b, addr->b, 4);
  } else {
    __u32 *a = (__u32 *)(ip + (src ? 8 : 24));
#pragma unroll
    for (int i = 0; i < 4; i++) {
      ((__u32 *)old.b)[i] = a[i];
      a[i] = ((const __u32 *)addr->b)[i];
    }
  }
  *port_p = port;
  const __u32 alen = v6 ? 16 : 4;
  if (use_csum) {
    const int summed = ctx_ip_summed(ctx);
    if (summed == DPV2_CHECKSUM_NONE || summed == DPV2_CHECKSUM_UNNECESSARY) {
      /* A finished checksum: RFC 1624, what the helper computes. */
      __u16 c = csum_replace(*l4_csum, old.b, addr->b, alen);
      if (old_port != port) {
        c = csum_replace2(c, old_port, port);
      }
      *l4_csum = (!tcp && c == 0) ? 0xffff : c;
    } else if (summed == DPV2_CHECKSUM_PARTIAL) {
      /* The field holds the folded pseudo-header sum, not complemented,
       * for the device to finish over the segment: an address moves it
       * the other way, a port not at all (the device sums the header). */
      __u16 c = ~csum_replace(~*l4_csum, old.b, addr->b, alen);
      *l4_csum = (!tcp && c == 0) ? 0xffff : c;
    }
#ifndef DPV2_CTX_XDP
    else {
      /* CHECKSUM_COMPLETE, or a state this object cannot read. */
      const __u32 csum_off = l4 + (tcp ? 16 : 6);
      if (l4_csum_replace(ctx, csum_off, old.b, addr->b, alen, 1) < 0 ||
          (old_port != port && l4_csum_replace(ctx, csum_off, &old_port, &port, 2, 0) < 0)) {
        return -DPV2_DROP_NAT_FAILED;
      }
      if (!tcp) {
        /* RFC 768: a computed 0 is sent as all ones. Pointers again: the
         * helper may have moved the packet. */
        __u8 *d = ctx_data(ctx);
        __u16 *c = (__u16 *)(d + csum_off);
        if (csum_off > 1100 || (void *)(c + 1) > ctx_data_end(ctx)) {
          return -DPV2_DROP_NAT_FAILED;
        }
        if (*c == 0) {
          *c = 0xffff;
        }
      }
    }
#endif
  }
  addr_copy(src ? &pkt->saddr : &pkt->daddr, addr);
  if (src) {
    pkt->sport = port;
  } else {
    pkt->dport = port;
  }
  return 1;
}

/* Rewrites the outer source or destination address and port of `pkt`. */
DPV2_VERIFIED_ALONE int nat_rewrite(DPV2_CTX *ctx, struct dpv2_pkt *pkt, int which,
                                    const struct dpv2_addr *addr, __be16 port) {
  if (!pkt || !addr) {
    return -DPV2_DROP_INTERNAL;
  }
  int direct = nat_rewrite_direct(ctx, pkt, which == NAT_SRC, addr, port);
  if (direct != 0) {
    return direct < 0 ? direct : 0;
  }
  int src = which == NAT_SRC;
  int v6 = pkt->family == DPV2_FAMILY_V6;
  __u32 l3 = pkt->l3_off;
  __u32 end = l3 + pkt->ip_len;
  __u32 l4 = pkt->l4_off;
  __u32 alen = v6 ? 16 : 4;
  __u32 addr_off = l3 + (v6 ? (src ? 8 : 24) : (src ? 12 : 16));
  int err = 0;

  __u32 csum_off = 0;
  int pseudo = 0, has_ports = 0, echo = 0, udp_zero = 0, sctp = 0;
  if (!pkt->is_fragment || pkt->is_first_fragment) {
    switch (pkt->proto) {
      case DPV2_PROTO_TCP:
        csum_off = l4 + 16;
        pseudo = has_ports = 1;
        break;
      case DPV2_PROTO_UDP:
        csum_off = l4 + 6;
        pseudo = has_ports = 1;
        udp_zero = !v6 && load16(ctx, csum_off, &err) == 0;
        break;
      case DPV2_PROTO_SCTP:
        has_ports = sctp = 1;
        break;
      case DPV2_PROTO_ICMP:
      case DPV2_PROTO_ICMPV6:
        if ((pkt->proto == DPV2_PROTO_ICMPV6) == v6 && end - l4 >= 8) {
          csum_off = l4 + 2;
          pseudo = v6;
          echo = icmp_is_echo(v6, pkt->icmp_type);
        }
        break;
      default:
        break;
    }
  }
  int use_csum = csum_off != 0 && !udp_zero;

  struct dpv2_addr old;
  addr_copy(&old, src ? &pkt->saddr : &pkt->daddr);
  if (!v6) {
    __u16 ip_csum = load16(ctx, l3 + 10, &err);
    ip_csum = csum_replace(ip_csum, old.b, addr->b, 4);
    if (ctx_store(ctx, l3 + 10, &ip_csum, 2) < 0) {
      return -DPV2_DROP_NAT_FAILED;
    }
  }
  if (use_csum && pseudo && l4_csum_replace(ctx, csum_off, old.b, addr->b, alen, 1) < 0) {
    return -DPV2_DROP_NAT_FAILED;
  }
  if (ctx_store(ctx, addr_off, addr->b, alen) < 0) {
    return -DPV2_DROP_NAT_FAILED;
  }
  addr_copy(src ? &pkt->saddr : &pkt->daddr, addr);

  if (has_ports || echo) {
    __u32 off = echo ? l4 + 4 : (src ? l4 : l4 + 2);
    __u16 old_port = load16(ctx, off, &err);
    if (old_port != port) {
      if (use_csum && l4_csum_replace(ctx, csum_off, &old_port, &port, 2, 0) < 0) {
        return -DPV2_DROP_NAT_FAILED;
      }
      if (ctx_store(ctx, off, &port, 2) < 0) {
        return -DPV2_DROP_NAT_FAILED;
      }
    }
    if (has_ports) {
      if (src) {
        pkt->sport = port;
      } else {
        pkt->dport = port;
      }
    }
  }
  if (use_csum && pkt->proto == DPV2_PROTO_UDP && load16(ctx, csum_off, &err) == 0) {
    /* RFC 768: a computed 0 is sent as all ones (0 means "no checksum"). */
    const __u16 ones = 0xffff;
    if (ctx_store(ctx, csum_off, &ones, 2) < 0) {
      return -DPV2_DROP_NAT_FAILED;
    }
  }
  if (err) {
    return -DPV2_DROP_NAT_FAILED;
  }
  if (sctp && !pkt->is_fragment) {
    return sctp_update_crc(ctx, l4, end - l4);
  }
  return 0;
}

/* Rewrites the source or destination of the packet an ICMP error quotes
 * (the client must see the frontend it talked to, and for an SNATed
 * connection its own address as source), with the quoted checksums and the
 * outer ICMP checksum that covers them. */
DPV2_VERIFIED_ALONE int nat_rewrite_inner(DPV2_CTX *ctx, struct dpv2_pkt *pkt, int which,
                                          const struct dpv2_addr *addr, __be16 port) {
  if (!pkt || !addr) {
    return -DPV2_DROP_INTERNAL;
  }
  int src = which == NAT_SRC;
  int v6 = pkt->family == DPV2_FAMILY_V6;
  __u32 end = pkt->l3_off + pkt->ip_len;
  __u32 il3 = pkt->inner_l3_off;
  __u32 il4 = pkt->inner_l4_off;
  if (!pkt->has_inner || il3 >= end || il4 > end) {
    return 0;
  }
  int err = 0;
  __u32 outer_off = pkt->l4_off + 2;
  __u16 outer = load16(ctx, outer_off, &err);
  __u32 addr_off = il3 + (v6 ? (src ? 8 : 24) : (src ? 12 : 16));
  __u32 icsum_off = 0;
  int pseudo = 0, ports = 0, echo = 0;
  __u32 avail = end - il4;
  switch (pkt->inner_proto) {
    case DPV2_PROTO_TCP:
      ports = avail >= 4;
      if (avail >= 18) {
        icsum_off = il4 + 16;
        pseudo = 1;
      }
      break;
    case DPV2_PROTO_UDP:
      ports = avail >= 4;
      if (avail >= 8 && (v6 || load16(ctx, il4 + 6, &err) != 0)) {
        icsum_off = il4 + 6;
        pseudo = 1;
      }
      break;
    case DPV2_PROTO_SCTP:
      ports = avail >= 4;
      break;
    case DPV2_PROTO_ICMP:
    case DPV2_PROTO_ICMPV6: {
      __u8 type = 0;
      if ((pkt->inner_proto == DPV2_PROTO_ICMPV6) == v6 && avail >= 8 &&
          ctx_load(ctx, il4, &type, 1) == 0 && icmp_is_echo(v6, type)) {
        echo = 1;
        icsum_off = il4 + 2;
        pseudo = v6;
      }
      break;
    }
    default:
      break;
  }
  if (!pkt->inner_has_l4) {
    ports = echo = pseudo = 0;
    icsum_off = 0;
  }
  __u16 icsum = icsum_off ? load16(ctx, icsum_off, &err) : 0;
  __u16 old_icsum = icsum;
  struct dpv2_addr old = {};
  if (ctx_load(ctx, addr_off, old.b, v6 ? 16 : 4) < 0) {
    return -DPV2_DROP_NAT_FAILED;
  }
  if (!v6) {
    __u16 ip_csum = load16(ctx, il3 + 10, &err);
    __u16 new_ip_csum = csum_replace(ip_csum, old.b, addr->b, 4);
    outer = csum_replace2(outer, ip_csum, new_ip_csum);
    if (ctx_store(ctx, il3 + 10, &new_ip_csum, 2) < 0) {
      return -DPV2_DROP_NAT_FAILED;
    }
  }
  outer = csum_replace(outer, old.b, addr->b, v6 ? 16 : 4);
  if (pseudo) {
    icsum = csum_replace(icsum, old.b, addr->b, v6 ? 16 : 4);
  }
  if (ctx_store(ctx, addr_off, addr->b, v6 ? 16 : 4) < 0) {
    return -DPV2_DROP_NAT_FAILED;
  }
  if (ports || echo) {
    __u32 off = echo ? il4 + 4 : (src ? il4 : il4 + 2);
    __u16 old_port = load16(ctx, off, &err);
    if (old_port != port) {
      outer = csum_replace2(outer, old_port, port);
      if (icsum_off) {
        icsum = csum_replace2(icsum, old_port, port);
      }
      if (ctx_store(ctx, off, &port, 2) < 0) {
        return -DPV2_DROP_NAT_FAILED;
      }
    }
  }
  if (icsum_off) {
    if (pkt->inner_proto == DPV2_PROTO_UDP && icsum == 0) {
      icsum = 0xffff;
    }
    outer = csum_replace2(outer, old_icsum, icsum);
    if (ctx_store(ctx, icsum_off, &icsum, 2) < 0) {
      return -DPV2_DROP_NAT_FAILED;
    }
  }
  if (ctx_store(ctx, outer_off, &outer, 2) < 0 || err) {
    return -DPV2_DROP_NAT_FAILED;
  }
  return 0;
}

#endif /* DPV2_BPF_NAT_H_ */
