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

#endif /* DPV2_BPF_CSUM_H_ */
