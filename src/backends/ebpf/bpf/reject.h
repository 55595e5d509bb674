/* dpv2 BPF: REJECT replies for a frontend with no backend at all.
 *
 * The input frame is turned in place into the reply docs/datapath.md fixes
 * byte for byte: Ethernet addresses swapped (an 802.1Q tag is kept); IPv4
 * TTL 64, ID 0, no DF, TOS 0, or IPv6 hop limit 64, flow label 0; TCP gets an
 * RST from the frontend (RFC 793 rules), anything else an ICMP port
 * unreachable quoting the invoking packet's L3 header + 8 bytes (IPv6: 40 +
 * 8). The reply is composed in a per-CPU scratch buffer, the frame is resized
 * and then overwritten, so the same code serves tc and XDP.
 *
 *   int rc = reject_build(ctx, &pkt);   // then TX out of the input interface
 */
#ifndef DPV2_BPF_REJECT_H_
#define DPV2_BPF_REJECT_H_

#include "common.h"
#include "csum.h"
#include "parse.h"

/* The IP header sits at a fixed, aligned offset; the L2 header ends there. */
#define DPV2_REJECT_IP_OFF 24
#define DPV2_REJECT_BUF 256

struct dpv2_reject_buf {
  __u8 b[DPV2_REJECT_BUF];
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dpv2_reject_buf);
} dpv2_reject_scratch SEC(".maps");

static __always_inline void reject_put16(__u8 *p, __u16 host) {
  p[0] = host >> 8;
  p[1] = host & 0xff;
}

static __always_inline __u16 reject_fold_csum(__u64 sum) { return (__u16)~csum_fold(sum); }

static __always_inline int ctx_resize(DPV2_CTX *ctx, __u32 old_len, __u32 new_len) {
#ifndef DPV2_CTX_XDP
  (void)old_len;
  return bpf_skb_change_tail(ctx, new_len, 0);
#else
  return bpf_xdp_adjust_tail(ctx, (int)new_len - (int)old_len);
#endif
}

DPV2_VERIFIED_ALONE int reject_build(DPV2_CTX *ctx, const struct dpv2_pkt *pkt) {
  if (!pkt) {
    return -DPV2_DROP_INTERNAL;
  }
  __u32 zero = 0;
  struct dpv2_reject_buf *rb = bpf_map_lookup_elem(&dpv2_reject_scratch, &zero);
  if (!rb) {
    return -DPV2_DROP_INTERNAL;
  }
  __u8 *buf = rb->b;
  __builtin_memset(buf, 0, DPV2_REJECT_BUF);
  __u32 l2 = pkt->l3_off == ETH_HLEN ? ETH_HLEN : ETH_HLEN + 4;
  __u32 start = DPV2_REJECT_IP_OFF - l2;
  __u8 eth[ETH_HLEN + 4];
  if (ctx_load(ctx, 0, eth, sizeof(eth)) < 0) {
    /* A frame without room for a tag: plain Ethernet only. */
    if (l2 != ETH_HLEN || ctx_load(ctx, 0, eth, ETH_HLEN) < 0) {
      return -DPV2_DROP_TRUNCATED;
    }
  }
  __u8 *e = buf + (l2 == ETH_HLEN ? DPV2_REJECT_IP_OFF - ETH_HLEN : DPV2_REJECT_IP_OFF - ETH_HLEN - 4);
  __builtin_memcpy(e, eth + 6, 6);
  __builtin_memcpy(e + 6, eth, 6);
  if (l2 == ETH_HLEN) {
    __builtin_memcpy(e + 12, eth + 12, 2);
  } else {
    __builtin_memcpy(e + 12, eth + 12, 6);
  }

  int v4 = pkt->family == DPV2_FAMILY_V4;
  __u32 ip_hl = v4 ? 20 : 40;
  __u8 *ip = buf + DPV2_REJECT_IP_OFF;
  __u8 *l4 = ip + ip_hl;
  __u32 l4_len;
  __u8 l4_proto;
  if (pkt->proto == DPV2_PROTO_TCP) {
    l4_proto = DPV2_PROTO_TCP;
    l4_len = 20;
    __builtin_memcpy(l4, &pkt->dport, 2);
    __builtin_memcpy(l4 + 2, &pkt->sport, 2);
    if (pkt->tcp_flags & DPV2_TCP_ACK) {
      __builtin_memcpy(l4 + 4, &pkt->tcp_ack, 4);
      l4[13] = DPV2_TCP_RST;
    } else {
      __u32 ack = bpf_ntohl(pkt->tcp_seq) + pkt->payload_len +
                  ((pkt->tcp_flags & DPV2_TCP_SYN) ? 1 : 0) + ((pkt->tcp_flags & DPV2_TCP_FIN) ? 1 : 0);
      __be32 ack_be = bpf_htonl(ack);
      __builtin_memcpy(l4 + 8, &ack_be, 4);
      l4[13] = DPV2_TCP_RST | DPV2_TCP_ACK;
    }
    l4[12] = 5 << 4;
  } else {
    __u32 quote = pkt->ip_hl + 8;
    if (quote > pkt->ip_len) {
      quote = pkt->ip_len;
    }
    if (quote > 68) {
      return -DPV2_DROP_BAD_IP_HEADER;
    }
    l4_proto = v4 ? DPV2_PROTO_ICMP : DPV2_PROTO_ICMPV6;
    l4_len = 8 + quote;
    l4[0] = v4 ? 3 : 1;
    l4[1] = v4 ? 3 : 4;
    /* quote is 28..68 here; the mask only shows the verifier a bound. */
    if (quote < 28 || ctx_load(ctx, pkt->l3_off, l4 + 8, ((quote - 1) & 127) + 1) < 0) {
      return -DPV2_DROP_TRUNCATED;
    }
  }
  __u32 ip_total = ip_hl + l4_len;
  __u64 sum = 0;
  if (v4) {
    ip[0] = 0x45;
    reject_put16(ip + 2, ip_total);
    ip[8] = 64;
    ip[9] = l4_proto;
    __builtin_memcpy(ip + 12, pkt->daddr.b, 4);
    __builtin_memcpy(ip + 16, pkt->saddr.b, 4);
    __u16 ipc = reject_fold_csum(csum_add_buf(0, ip, 20));
    __builtin_memcpy(ip + 10, &ipc, 2);
    if (l4_proto == DPV2_PROTO_TCP) {
      sum = csum_add_buf(0, ip + 12, 8);
    }
  } else {
    ip[0] = 0x60;
    reject_put16(ip + 4, l4_len);
    ip[6] = l4_proto;
    ip[7] = 64;
    __builtin_memcpy(ip + 8, pkt->daddr.b, 16);
    __builtin_memcpy(ip + 24, pkt->saddr.b, 16);
    sum = csum_add_buf(0, ip + 8, 32);
  }
  if (l4_proto != DPV2_PROTO_ICMP) {
    /* Pseudo-header length and next header, as 16-bit words. */
    sum += bpf_htons(l4_len);
    sum += bpf_htons(l4_proto);
  }
  sum = csum_add_buf(sum, l4, l4_len);
  __u16 l4c = reject_fold_csum(sum);
  __builtin_memcpy(l4 + (l4_proto == DPV2_PROTO_TCP ? 16 : 2), &l4c, 2);

  __u32 new_len = l2 + ip_total;
  if (new_len > DPV2_REJECT_BUF - start || new_len < ETH_HLEN) {
    return -DPV2_DROP_INTERNAL;
  }
  if (ctx_resize(ctx, pkt->len, new_len) < 0) {
    return -DPV2_DROP_INTERNAL;
  }
  if (ctx_store(ctx, 0, buf + start, new_len) < 0) {
    return -DPV2_DROP_INTERNAL;
  }
  return 0;
}

#endif /* DPV2_BPF_REJECT_H_ */
