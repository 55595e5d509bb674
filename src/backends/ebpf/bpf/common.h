/* dpv2 BPF: includes, the packet context abstraction and small shared types.
 *
 * The datapath is written once over a context type DPV2_CTX and compiled
 * twice: for tc (struct __sk_buff) and for XDP (struct xdp_md). Every packet
 * access goes through the ctx_* functions here, so the pipeline headers never
 * name one hook's helpers.
 *
 *   __u8 eth[14];
 *   if (ctx_load(ctx, 0, eth, sizeof(eth)) < 0) return -DPV2_DROP_TRUNCATED;
 */
#ifndef DPV2_BPF_COMMON_H_
#define DPV2_BPF_COMMON_H_

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "dpv2/abi/abi.h"
#include "dpv2/abi/hash.h"
#include "features.h"

#ifndef DPV2_CTX_XDP
#define DPV2_CTX struct __sk_buff
#else
#define DPV2_CTX struct xdp_md
#endif

/* What the pipeline decided for a frame (the C++ side maps it to Verdict). */
#define DPV2_V_PASS 0
#define DPV2_V_REDIRECT 1
#define DPV2_V_TX 2
#define DPV2_V_DROP 3
/* XDP only: not XDP's to serve; the frame goes on to tc untouched (nothing
 * counted, tracked or reported yet). */
#define DPV2_V_NEXT 4

/* Where the test entry programs leave the outcome of BPF_PROG_TEST_RUN:
 * __sk_buff.cb words, returned to user space in ctx_out. The input has a
 * word of its own: a run with repeat > 1 keeps cb from one repetition to
 * the next, and must read the same ingress every time. */
#define DPV2_CB_IN_IFINDEX 3  /* in: the ingress ifindex the frame claims */
#define DPV2_CB_OUT_VERDICT 0 /* out: DPV2_V_* */
#define DPV2_CB_OUT_DROP 1    /* out: enum dpv2_drop_reason */
#define DPV2_CB_OUT_IFINDEX 2 /* out: redirect / TX interface */

/* A global (non-static, not inlined) function is verified once, on its
 * own, instead of once per path that reaches it: the heavy, loop-bearing
 * steps use it to keep verification time and state counts small. Pointer
 * arguments may be NULL as far as the verifier knows: check them. */
#define DPV2_VERIFIED_ALONE __attribute__((noinline))

static __always_inline __u32 ctx_len(DPV2_CTX *ctx) {
#ifndef DPV2_CTX_XDP
  return ctx->len;
#else
  return bpf_xdp_get_buff_len(ctx);
#endif
}

/* Direct packet access: the linear part of the frame, [data, data_end).
 * Reads and writes through it cost no helper call, but the verifier wants
 * every pointer checked against data_end first, and any helper that may
 * move the packet (bpf_l4_csum_replace, bpf_skb_store_bytes, ...) voids
 * pointers taken before it. */
/* Loaded with one instruction at the context's own address: clang would
 * otherwise share `ctx + offset` between the two loads, and the verifier
 * refuses a context access through a modified pointer. */
#define DPV2_CTX_LOAD32(ctx, field)                                            \
  ({                                                                           \
    __u64 v_;                                                                  \
    asm volatile("%0 = *(u32 *)(%1 + %2)"                                      \
                 : "=r"(v_)                                                    \
                 : "r"(ctx), "i"(__builtin_offsetof(DPV2_CTX, field)));        \
    v_;                                                                        \
  })

static __always_inline void *ctx_data(DPV2_CTX *ctx) {
  return (void *)(long)DPV2_CTX_LOAD32(ctx, data);
}
static __always_inline void *ctx_data_end(DPV2_CTX *ctx) {
  return (void *)(long)DPV2_CTX_LOAD32(ctx, data_end);
}

/* The bytes [off, off + len) when they lie in the linear part and `len` is a
 * constant (a copy the compiler unrolls), else NULL. `off` stays under 16 KiB
 * so that the verifier can bound the pointer (offset + len <= 0xffff). */
static __always_inline __u8 *ctx_direct(DPV2_CTX *ctx, __u32 off, __u32 len) {
  if (!__builtin_constant_p(len) || len > 64 || off > 0x3fff) {
    return 0;
  }
  /* The mask repeats the test where the verifier sees it: clang may test
   * one register and index with another. */
  __u64 bounded = off;
  asm volatile("%0 &= 0x3fff" : "+r"(bounded));
  __u8 *p = (__u8 *)ctx_data(ctx) + bounded;
  if ((void *)(p + len) > ctx_data_end(ctx)) {
    return 0;
  }
  return p;
}

/* Packet reads and writes: direct when the bytes are in the linear part
 * (most headers; no helper call), else through the helpers, which also
 * reach paged data. */
static __always_inline long ctx_load(DPV2_CTX *ctx, __u32 off, void *to, __u32 len) {
  __u8 *p = ctx_direct(ctx, off, len);
  if (p) {
    /* Packet bytes are often not aligned: wide loads anyway, which the
     * verifier allows for packet memory on CPUs with efficient unaligned
     * access (x86-64, arm64). */
    __builtin_memcpy(to, __builtin_assume_aligned(p, 4), len);
    return 0;
  }
#ifndef DPV2_CTX_XDP
  return bpf_skb_load_bytes(ctx, off, to, len);
#else
  return bpf_xdp_load_bytes(ctx, off, to, len);
#endif
}

static __always_inline long ctx_store(DPV2_CTX *ctx, __u32 off, const void *from, __u32 len) {
  __u8 *p = ctx_direct(ctx, off, len);
  if (p) {
    __builtin_memcpy(__builtin_assume_aligned(p, 4), from, len);
    return 0;
  }
#ifndef DPV2_CTX_XDP
  return bpf_skb_store_bytes(ctx, off, from, len, 0);
#else
  return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
#endif
}

/* Every ABI record keeps its addresses 4-byte aligned, so 32-bit words are
 * safe on the stack and in map values (the verifier rejects misaligned stack
 * access). */
static __always_inline int addr_eq(const struct dpv2_addr *a, const struct dpv2_addr *b) {
  const __u32 *x = (const __u32 *)a;
  const __u32 *y = (const __u32 *)b;
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static __always_inline void addr_copy(struct dpv2_addr *to, const struct dpv2_addr *from) {
  __u32 *x = (__u32 *)to;
  const __u32 *y = (const __u32 *)from;
  x[0] = y[0];
  x[1] = y[1];
  x[2] = y[2];
  x[3] = y[3];
}

/* Size of an address on the wire. */
static __always_inline __u32 addr_len(__u8 family) {
  return family == DPV2_FAMILY_V4 ? 4 : 16;
}

#endif /* DPV2_BPF_COMMON_H_ */
