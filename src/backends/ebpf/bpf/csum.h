/* dpv2 BPF: Internet checksums (RFC 1071) and their incremental update
 * (RFC 1624 equation 3).
 *
 * Checksum fields and the words they cover are handled as they lie in memory
 * (network order loaded natively): one's complement sums do not depend on the
 * byte order as long as every word is loaded the same way.
 *
 *   ip.check = csum_replace(ip.check, &old_daddr, &new_daddr, 4);
 */
#ifndef DPV2_BPF_CSUM_H_
#define DPV2_BPF_CSUM_H_

#include "common.h"

/* The frame's checksum state, skb->ip_summed (include/linux/skbuff.h):
 * __sk_buff does not carry it, so tc reads the kernel's own sk_buff
 * (bpf_cast_to_kern_ctx, a kfunc the verifier turns into a register move;
 * CO-RE relocates the bitfield against the running kernel's BTF). An XDP
 * frame has no such state: its checksums are finished bytes.
 *
 * DPV2_CSUM_KFUNC is a -D switch like those of features.h: 0 builds the tc
 * object for kernels without the kfunc (before Linux 6.2) or without BTF,
 * which references neither the kfunc nor any CO-RE relocation; it cannot
 * read the state (DPV2_CHECKSUM_UNKNOWN), so every L4 checksum update goes
 * through bpf_l4_csum_replace, which knows it. The loader picks the object
 * (src/backends/ebpf/skeleton.cc). */
#ifndef DPV2_CSUM_KFUNC
#define DPV2_CSUM_KFUNC 1
#endif

#define DPV2_CHECKSUM_UNKNOWN (-1)
#define DPV2_CHECKSUM_NONE 0
#define DPV2_CHECKSUM_UNNECESSARY 1
#define DPV2_CHECKSUM_COMPLETE 2
#define DPV2_CHECKSUM_PARTIAL 3

#if DPV2_CSUM_KFUNC && !defined(DPV2_CTX_XDP)
#include <bpf/bpf_core_read.h>

struct sk_buff___dpv2 {
  __u8 ip_summed : 2;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *) __ksym;
#endif

static __always_inline int ctx_ip_summed(DPV2_CTX *ctx) {
#if defined(DPV2_CTX_XDP)
  return DPV2_CHECKSUM_NONE;
#elif DPV2_CSUM_KFUNC
  struct sk_buff___dpv2 *skb = bpf_cast_to_kern_ctx(ctx);
  return (int)BPF_CORE_READ_BITFIELD(skb, ip_summed);
#else
  return DPV2_CHECKSUM_UNKNOWN;
#endif
}

static __always_inline __u16 csum_fold(__u64 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

/* HC' = ~(~HC + ~m + m') over `len` bytes (even, at most 16) that changed
 * from `from` to `to`. */
static __always_inline __u16 csum_replace(__u16 csum, const void *from, const void *to, int len) {
  const __u16 *f = (const __u16 *)from;
  const __u16 *t = (const __u16 *)to;
  __u64 sum = (__u16)~csum;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    if (i * 2 >= len) {
      break;
    }
    sum += (__u16)~f[i];
    sum += t[i];
  }
  return (__u16)~csum_fold(sum);
}

static __always_inline __u16 csum_replace2(__u16 csum, __u16 from, __u16 to) {
  return csum_replace(csum, &from, &to, 2);
}

/* Unfolded sum of `len` bytes (even, at most 128) of a buffer on the stack. */
static __always_inline __u64 csum_add_buf(__u64 sum, const void *buf, int len) {
  const __u16 *w = (const __u16 *)buf;
  for (int i = 0; i < 64; i++) {
    if (i * 2 >= len) {
      break;
    }
    sum += w[i];
  }
  return sum;
}

/* An L4 checksum field at `off` after `len` bytes (2, 4 or 16) that it
 * covers changed from `from` to `to`; `pseudo` when they are pseudo-header
 * (address) bytes. tc goes through the kernel, which knows the state of the
 * skb's checksum: a frame a local socket sent over a veth still carries only
 * the pseudo-header sum for the device to complete (CHECKSUM_PARTIAL: a port
 * change must leave it alone, an address change must update it the other
 * way), and a received one may carry skb->csum (CHECKSUM_COMPLETE), which
 * must follow the bytes. On a finished checksum (CHECKSUM_NONE, the test
 * runs) both ways compute RFC 1624 equation 3, the same bytes. XDP frames
 * have no such state: RFC 1624 in place. */
static __always_inline int l4_csum_replace(DPV2_CTX *ctx, __u32 off, const void *from,
                                           const void *to, int len, int pseudo) {
#ifndef DPV2_CTX_XDP
  __u64 flags = pseudo ? BPF_F_PSEUDO_HDR : 0;
  if (len == 2) {
    return bpf_l4_csum_replace(ctx, off, *(const __u16 *)from, *(const __u16 *)to, flags | 2);
  }
  if (len == 4) {
    return bpf_l4_csum_replace(ctx, off, *(const __u32 *)from, *(const __u32 *)to, flags | 4);
  }
  __s64 diff = bpf_csum_diff((__be32 *)from, 16, (__be32 *)to, 16, 0);
  if (diff < 0) {
    return (int)diff;
  }
  return bpf_l4_csum_replace(ctx, off, 0, diff, flags);
#else
  __u16 c;
  if (ctx_load(ctx, off, &c, 2) < 0) {
    return -1;
  }
  c = csum_replace(c, from, to, len);
  return ctx_store(ctx, off, &c, 2) < 0 ? -1 : 0;
#endif
}

#endif /* DPV2_BPF_CSUM_H_ */
