/* dpv2 datapath ABI: base types shared by every map and event layout.
 *
 * Plain C with fixed-width kernel types so that BPF programs (clang -target
 * bpf), the C++ loader and the user-space backends include the same bytes.
 * Addresses are 16 raw bytes in network order: an IPv4 address fills the first
 * four and the rest are zero. Ports are in network byte order.
 *
 *   struct dpv2_addr a = {0};  a.b[0] = 10; a.b[3] = 1;   // 10.0.0.1
 */
#ifndef DPV2_ABI_TYPES_H_
#define DPV2_ABI_TYPES_H_

#include <linux/types.h>

#define DPV2_FAMILY_V4 4
#define DPV2_FAMILY_V6 6

/* IANA protocol numbers used by the datapath. */
#define DPV2_PROTO_ICMP 1
#define DPV2_PROTO_TCP 6
#define DPV2_PROTO_UDP 17
#define DPV2_PROTO_ICMPV6 58
#define DPV2_PROTO_SCTP 132

struct dpv2_addr {
  __u8 b[16];
};

#endif /* DPV2_ABI_TYPES_H_ */
