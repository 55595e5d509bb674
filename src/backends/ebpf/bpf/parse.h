/* dpv2 BPF: frame parsing into struct dpv2_pkt.
 *
 * The same checks, in the same order and with the same drop reasons, as the
 * C++ parser (src/core/packet/parse.cc, contract in include/dpv2/packet.h):
 * Ethernet with one optional 802.1Q tag (QinQ is BAD_L2), IPv4 with option
 * validation, IPv6 extension headers (at most 8, hop-by-hop only first),
 * fragments recognised (the pipeline drops them after anti-spoofing), TCP,
 * UDP, SCTP, ICMP/ICMPv6 with the packet an error quotes. Every read goes
 * through ctx_load, bounded by the end of the IP packet, never its padding.
 *
 *   int rc = parse_frame(ctx, pkt);   // < 0: -drop reason; pkt->is_ip
 */
#ifndef DPV2_BPF_PARSE_H_
#define DPV2_BPF_PARSE_H_

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "common.h"

#define DPV2_ETH_P_8021Q 0x8100
#define DPV2_ETH_P_QINQ 0x88a8
#define DPV2_ETH_P_IP 0x0800
#define DPV2_ETH_P_IPV6 0x86DD
#define DPV2_IPV6_MAX_EXT 8
#define DPV2_IPV6_NO_NEXT 59

/* TCP flag bits as in byte 13 of the TCP header. */
#define DPV2_TCP_FIN 0x01
#define DPV2_TCP_SYN 0x02
#define DPV2_TCP_RST 0x04
#define DPV2_TCP_PSH 0x08
#define DPV2_TCP_ACK 0x10

struct dpv2_pkt {
  __u32 len;        /* frame length */
  __u16 l3_off;     /* IP header (14 or 18) */
  __u16 l4_off;     /* L4 header */
  __u16 ip_len;     /* the IP packet: v4 total length, v6 40 + payload */
  __u16 ip_hl;      /* v4: IHL * 4; v6: 40 */
  __u16 payload_len; /* L4 payload (TCP: after its options) */
  __u16 inner_l3_off; /* ICMP errors: the quoted IP header */
  __u16 inner_l4_off;
  __u8 is_ip;
  __u8 family;
  __u8 proto;
  __u8 tcp_flags;
  __u8 icmp_type;
  __u8 is_fragment;
  __u8 is_first_fragment;
  __u8 is_icmp_error;
  __u8 has_inner;
  __u8 inner_has_l4;
  __u8 inner_proto;
  __u8 pad;
  __be32 tcp_seq;
  __be32 tcp_ack;
  struct dpv2_addr saddr;
  struct dpv2_addr daddr;
  struct dpv2_addr inner_saddr;
  struct dpv2_addr inner_daddr;
  __be16 sport;  /* ICMP echo: the identifier (in both) */
  __be16 dport;
  __be16 inner_sport;
  __be16 inner_dport;
};

struct dpv2_ext_walk {
  __u32 l4_off;
  __u8 proto;
  __u8 is_fragment;
  __u8 first_fragment;
  __u8 non_first_fragment;
};

static __always_inline int icmp_is_echo(int v6, __u8 type) {
  return v6 ? (type == 128 || type == 129) : (type == 0 || type == 8);
}

static __always_inline int icmp_is_error(int v6, __u8 type) {
  return v6 ? (type >= 1 && type <= 4)
            : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
}

static __always_inline int ipv6_is_generic_ext(__u8 nh) {
  return nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140;
}

/* Walks the extension headers of the IPv6 header at `off`, up to `end`. */
DPV2_VERIFIED_ALONE int ipv6_walk(DPV2_CTX *ctx, __u32 off, __u32 end, struct dpv2_ext_walk *w) {
  if (!w) {
    return -DPV2_DROP_INTERNAL;
  }
  __u8 nh;
  if (ctx_load(ctx, off + 6, &nh, 1) < 0) {
    return -DPV2_DROP_TRUNCATED;
  }
  __u32 cur = off + 40;
  w->is_fragment = 0;
  w->first_fragment = 0;
  w->non_first_fragment = 0;
  for (int count = 0; count <= DPV2_IPV6_MAX_EXT; count++) {
    int generic = ipv6_is_generic_ext(nh);
    if (!generic && nh != 44 && nh != 51) {
      break;
    }
    if (count >= DPV2_IPV6_MAX_EXT) {
      return -DPV2_DROP_BAD_EXT_HEADER;
    }
    if (nh == 0 && count != 0) {
      return -DPV2_DROP_BAD_EXT_HEADER;
    }
    w->proto = nh;
    w->l4_off = cur;
    if (end < cur || end - cur < 8) {
      return -DPV2_DROP_TRUNCATED;
    }
    __u8 h[4];
    if (ctx_load(ctx, cur, h, sizeof(h)) < 0) {
      return -DPV2_DROP_TRUNCATED;
    }
    __u32 len;
    if (nh == 44) {
      len = 8;
      __u16 off_flags = ((__u16)h[2] << 8) | h[3];
      __u16 frag_offset = off_flags & 0xfff8;
      int more = off_flags & 1;
      if (frag_offset != 0 || more) {
        w->is_fragment = 1;
        w->first_fragment = frag_offset == 0;
      }
      if (frag_offset != 0) {
        w->non_first_fragment = 1;
        w->proto = h[0];
        w->l4_off = cur + len;
        return 0;
      }
    } else if (nh == 51) {
      len = ((__u32)h[1] + 2) * 4;
    } else {
      len = ((__u32)h[1] + 1) * 8;
    }
    if (end - cur < len) {
      return -DPV2_DROP_TRUNCATED;
    }
    nh = h[0];
    cur += len;
  }
  w->proto = nh;
  w->l4_off = cur;
  return 0;
}

struct dpv2_ipv4_options {
  __u8 o[64];
  __u32 n;
  __u32 i;
  __u32 ok;
};

/* One option per bpf_loop step (checked once by the verifier). */
static long ipv4_option_step(__u32 index, void *data) {
  struct dpv2_ipv4_options *st = data;
  __u32 i = st->i;
  if (i >= st->n) {
    return 1;
  }
  __u8 type = st->o[i & 63];
  if (type == 0) {
    return 1;
  }
  if (type == 1) {
    st->i = i + 1;
    return 0;
  }
  if (st->n - i < 2) {
    st->ok = 0;
    return 1;
  }
  __u8 len = st->o[(i + 1) & 63];
  if (len < 2 || len > st->n - i) {
    st->ok = 0;
    return 1;
  }
  st->i = i + len;
  return 0;
}

/* IPv4 options (RFC 791): EOL ends the list, NOP is one byte, every other
 * option has a length >= 2 that stays inside the header. */
static __always_inline int ipv4_options_valid(DPV2_CTX *ctx, __u32 start, __u32 n) {
  if (n == 0) {
    return 1;
  }
  struct dpv2_ipv4_options st = {.n = n, .ok = 1};
  if (n > 40 || ctx_load(ctx, start, st.o, ((n - 1) & 63) + 1) < 0) {
    return 0;
  }
  bpf_loop(41, ipv4_option_step, &st, 0);
  return st.ok;
}

/* Ports of a quoted (or outer) L4 header at `l4`: TCP/UDP/SCTP ports, or the
 * echo identifier in both. */
static __always_inline void parse_fill_ports(DPV2_CTX *ctx, __u32 l4, __u8 proto, int v6,
                                             __be16 *sport, __be16 *dport) {
  __u8 h[6];
  if (ctx_load(ctx, l4, h, sizeof(h)) < 0) {
    return;
  }
  if (proto == DPV2_PROTO_TCP || proto == DPV2_PROTO_UDP || proto == DPV2_PROTO_SCTP) {
    __builtin_memcpy(sport, &h[0], 2);
    __builtin_memcpy(dport, &h[2], 2);
  } else if ((proto == DPV2_PROTO_ICMP || proto == DPV2_PROTO_ICMPV6) &&
             (proto == DPV2_PROTO_ICMPV6) == v6 && icmp_is_echo(v6, h[0])) {
    __builtin_memcpy(sport, &h[4], 2);
    __builtin_memcpy(dport, &h[4], 2);
  }
}

/* The quoted packet of an ICMP error, from `off` to `end`. */
static __always_inline int parse_inner(DPV2_CTX *ctx, struct dpv2_pkt *p, __u32 off, __u32 end,
                                       struct dpv2_ext_walk *w) {
  int v6 = p->family == DPV2_FAMILY_V6;
  __u32 avail = end - off;
  __u32 l4;
  __u8 proto;
  int non_first = 0;
  if (!v6) {
    struct iphdr ip;
    if (avail < 20 || ctx_load(ctx, off, &ip, sizeof(ip)) < 0 || ip.version != 4) {
      return -DPV2_DROP_BAD_ICMP;
    }
    __u32 hl = ip.ihl * 4;
    if (hl < 20 || hl > avail) {
      return -DPV2_DROP_BAD_ICMP;
    }
    proto = ip.protocol;
    non_first = (bpf_ntohs(ip.frag_off) & 0x1fff) != 0;
    l4 = off + hl;
    __builtin_memset(&p->inner_saddr, 0, 16);
    __builtin_memset(&p->inner_daddr, 0, 16);
    __builtin_memcpy(p->inner_saddr.b, &ip.saddr, 4);
    __builtin_memcpy(p->inner_daddr.b, &ip.daddr, 4);
  } else {
    __u8 vb;
    if (avail < 40 || ctx_load(ctx, off, &vb, 1) < 0 || (vb >> 4) != 6) {
      return -DPV2_DROP_BAD_ICMP;
    }
    int rc = ipv6_walk(ctx, off, end, w);
    if (rc < 0 && rc != -DPV2_DROP_TRUNCATED) {
      return -DPV2_DROP_BAD_ICMP;
    }
    proto = w->proto;
    l4 = w->l4_off;
    non_first = w->non_first_fragment || rc == -DPV2_DROP_TRUNCATED;
    if (ctx_load(ctx, off + 8, p->inner_saddr.b, 16) < 0 ||
        ctx_load(ctx, off + 24, p->inner_daddr.b, 16) < 0) {
      return -DPV2_DROP_BAD_ICMP;
    }
  }
  p->inner_l3_off = off;
  p->inner_l4_off = l4;
  p->inner_proto = proto;
  if (!non_first && end >= l4 && end - l4 >= 8) {
    parse_fill_ports(ctx, l4, proto, v6, &p->inner_sport, &p->inner_dport);
    p->inner_has_l4 = 1;
  }
  p->has_inner = 1;
  return 0;
}

static __always_inline int parse_l4(DPV2_CTX *ctx, struct dpv2_pkt *p, __u32 l4, __u32 end,
                                    int fragmented, struct dpv2_ext_walk *w) {
  int v6 = p->family == DPV2_FAMILY_V6;
  __u32 avail = end - l4;
  p->l4_off = l4;
  switch (p->proto) {
    case DPV2_PROTO_TCP: {
      struct tcphdr th;
      if (avail < 20 || ctx_load(ctx, l4, &th, sizeof(th)) < 0) {
        return -DPV2_DROP_TRUNCATED;
      }
      __u32 hl = th.doff * 4;
      if (hl < 20 || hl > avail) {
        return -DPV2_DROP_BAD_L4_HEADER;
      }
      p->sport = th.source;
      p->dport = th.dest;
      p->tcp_seq = th.seq;
      p->tcp_ack = th.ack_seq;
      p->tcp_flags = ((__u8 *)&th)[13];
      p->payload_len = avail - hl;
      return 0;
    }
    case DPV2_PROTO_UDP: {
      struct udphdr uh;
      if (avail < 8 || ctx_load(ctx, l4, &uh, sizeof(uh)) < 0) {
        return -DPV2_DROP_TRUNCATED;
      }
      __u32 ulen = bpf_ntohs(uh.len);
      if (ulen < 8 || (!fragmented && ulen > avail)) {
        return -DPV2_DROP_BAD_L4_HEADER;
      }
      p->sport = uh.source;
      p->dport = uh.dest;
      p->payload_len = fragmented ? avail - 8 : ulen - 8;
      return 0;
    }
    case DPV2_PROTO_SCTP: {
      __be16 ports[2];
      if (avail < 12 || ctx_load(ctx, l4, ports, sizeof(ports)) < 0) {
        return -DPV2_DROP_TRUNCATED;
      }
      p->sport = ports[0];
      p->dport = ports[1];
      p->payload_len = avail - 12;
      return 0;
    }
    case DPV2_PROTO_ICMP:
    case DPV2_PROTO_ICMPV6: {
      if ((p->proto == DPV2_PROTO_ICMPV6) != v6) {
        break; /* ICMP in IPv6 or ICMPv6 in IPv4: an unknown protocol there */
      }
      __u8 h[8];
      if (avail < 8 || ctx_load(ctx, l4, h, sizeof(h)) < 0) {
        return -DPV2_DROP_TRUNCATED;
      }
      p->icmp_type = h[0];
      p->payload_len = avail - 8;
      if (icmp_is_echo(v6, h[0])) {
        __builtin_memcpy(&p->sport, &h[4], 2);
        __builtin_memcpy(&p->dport, &h[4], 2);
      } else if (icmp_is_error(v6, h[0])) {
        p->is_icmp_error = 1;
        return parse_inner(ctx, p, l4 + 8, end, w);
      }
      return 0;
    }
    default:
      break;
  }
  p->payload_len = avail;
  return 0;
}

static __always_inline int parse_ipv4(DPV2_CTX *ctx, struct dpv2_pkt *p, __u32 off,
                                      struct dpv2_ext_walk *w) {
  __u32 n = p->len;
  struct iphdr ip;
  if (n - off < 20 || ctx_load(ctx, off, &ip, sizeof(ip)) < 0) {
    return -DPV2_DROP_TRUNCATED;
  }
  if (ip.version != 4) {
    return -DPV2_DROP_BAD_IP_VERSION;
  }
  __u32 hl = ip.ihl * 4;
  if (hl < 20) {
    return -DPV2_DROP_BAD_IP_HEADER;
  }
  if (n - off < hl) {
    return -DPV2_DROP_TRUNCATED;
  }
  __u32 total = bpf_ntohs(ip.tot_len);
  if (total < hl) {
    return -DPV2_DROP_BAD_IP_LENGTH;
  }
  if (total > n - off) {
    return -DPV2_DROP_TRUNCATED;
  }
  if (!ipv4_options_valid(ctx, off + 20, hl - 20)) {
    return -DPV2_DROP_BAD_IP_HEADER;
  }
  p->family = DPV2_FAMILY_V4;
  __builtin_memcpy(p->saddr.b, &ip.saddr, 4);
  __builtin_memcpy(p->daddr.b, &ip.daddr, 4);
  p->proto = ip.protocol;
  p->ip_len = total;
  p->ip_hl = hl;
  __u16 frag = bpf_ntohs(ip.frag_off);
  int more = (frag & 0x2000) != 0;
  __u16 frag_offset = frag & 0x1fff;
  p->is_fragment = more || frag_offset != 0;
  p->is_first_fragment = p->is_fragment && frag_offset == 0;
  __u32 l4 = off + hl;
  __u32 end = off + total;
  if (frag_offset != 0) {
    p->l4_off = l4;
    p->payload_len = end - l4;
    return 0;
  }
  return parse_l4(ctx, p, l4, end, p->is_fragment, w);
}

static __always_inline int parse_ipv6(DPV2_CTX *ctx, struct dpv2_pkt *p, __u32 off,
                                      struct dpv2_ext_walk *w) {
  __u32 n = p->len;
  struct ipv6hdr ip;
  if (n - off < 40 || ctx_load(ctx, off, &ip, sizeof(ip)) < 0) {
    return -DPV2_DROP_TRUNCATED;
  }
  if (ip.version != 6) {
    return -DPV2_DROP_BAD_IP_VERSION;
  }
  __u32 payload = bpf_ntohs(ip.payload_len);
  if (40 + payload > n - off) {
    return -DPV2_DROP_TRUNCATED;
  }
  if ((payload == 0 && ip.nexthdr == 0) || 40 + payload > 0xffff) {
    return -DPV2_DROP_BAD_IP_LENGTH;
  }
  p->family = DPV2_FAMILY_V6;
  __builtin_memcpy(p->saddr.b, &ip.saddr, 16);
  __builtin_memcpy(p->daddr.b, &ip.daddr, 16);
  p->ip_len = 40 + payload;
  p->ip_hl = 40;
  __u32 end = off + p->ip_len;
  int rc = ipv6_walk(ctx, off, end, w);
  p->proto = w->proto;
  if (rc < 0) {
    return rc;
  }
  p->is_fragment = w->is_fragment;
  p->is_first_fragment = w->first_fragment;
  if (w->non_first_fragment || w->proto == DPV2_IPV6_NO_NEXT) {
    p->l4_off = w->l4_off;
    p->payload_len = end - w->l4_off;
    return 0;
  }
  return parse_l4(ctx, p, w->l4_off, end, w->is_fragment, w);
}

/* 0 for a parsed IP packet or a frame that is not IP (pkt->is_ip == 0),
 * else -drop reason. */
DPV2_VERIFIED_ALONE int parse_frame(DPV2_CTX *ctx, struct dpv2_pkt *p) {
  if (!p) {
    return -DPV2_DROP_INTERNAL;
  }
  struct dpv2_ext_walk w = {};
  __builtin_memset(p, 0, sizeof(*p));
  p->len = ctx_len(ctx);
  __be16 proto;
  if (p->len < ETH_HLEN || ctx_load(ctx, 12, &proto, sizeof(proto)) < 0) {
    return -DPV2_DROP_TRUNCATED;
  }
  __u32 off = ETH_HLEN;
  if (proto == bpf_htons(DPV2_ETH_P_QINQ)) {
    return -DPV2_DROP_BAD_L2;
  }
  if (proto == bpf_htons(DPV2_ETH_P_8021Q)) {
    if (p->len < ETH_HLEN + 4 || ctx_load(ctx, 16, &proto, sizeof(proto)) < 0) {
      return -DPV2_DROP_TRUNCATED;
    }
    off += 4;
    if (proto == bpf_htons(DPV2_ETH_P_8021Q) || proto == bpf_htons(DPV2_ETH_P_QINQ)) {
      return -DPV2_DROP_BAD_L2;
    }
  }
  p->l3_off = off;
  if (proto == bpf_htons(DPV2_ETH_P_IP)) {
    p->is_ip = 1;
    return parse_ipv4(ctx, p, off, &w);
  }
  if (proto == bpf_htons(DPV2_ETH_P_IPV6) && feature_ipv6()) {
    p->is_ip = 1;
    return parse_ipv6(ctx, p, off, &w);
  }
  return 0;
}

#endif /* DPV2_BPF_PARSE_H_ */
