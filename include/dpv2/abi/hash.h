/* dpv2 datapath ABI: the tuple hash that picks a lookup-table slot.
 *
 * Every backend picks the backend of a new service connection as
 *   slot = dpv2_tuple_hash(saddr, daddr, sport, dport, proto, family) % M
 * (M the lookup table's own size) so that the same tuple lands on the same backend in the sim, BPF and DPDK
 * datapaths (the conformance suite compares exact output bytes). The hash is
 * Bob Jenkins' lookup3 final mixing (the kernel's jhash) over ten fixed
 * 32-bit words: the 16 address bytes of the source and of the destination
 * read big-endian, then (sport << 16 | dport) with the ports in host order,
 * then (proto << 8 | family); the seed is DPV2_TUPLE_HASH_SEED. Words never
 * depend on the host's byte order. Plain C with no loops and no libc, so it
 * compiles unchanged with clang -target bpf.
 *
 *   __u32 h = dpv2_tuple_hash(&key.saddr, &key.daddr, key.sport, key.dport,
 *                             key.proto, key.family);
 *   __u32 backend_id = slots[h % m];   // m: this table's own size (abi/lb.h)
 */
#ifndef DPV2_ABI_HASH_H_
#define DPV2_ABI_HASH_H_

#include "types.h"

#define DPV2_TUPLE_HASH_SEED 0x6470763bu /* "dpv;" */

static inline __u32 dpv2_hash_rol32(__u32 word, unsigned int shift) {
  return (word << shift) | (word >> ((-shift) & 31));
}

/* lookup3 mix() and final(), as the kernel's __jhash_mix / __jhash_final. */
#define DPV2_HASH_MIX(a, b, c)                  \
  do {                                          \
    a -= c; a ^= dpv2_hash_rol32(c, 4);  c += b; \
    b -= a; b ^= dpv2_hash_rol32(a, 6);  a += c; \
    c -= b; c ^= dpv2_hash_rol32(b, 8);  b += a; \
    a -= c; a ^= dpv2_hash_rol32(c, 16); c += b; \
    b -= a; b ^= dpv2_hash_rol32(a, 19); a += c; \
    c -= b; c ^= dpv2_hash_rol32(b, 4);  b += a; \
  } while (0)

#define DPV2_HASH_FINAL(a, b, c)              \
  do {                                        \
    c ^= b; c -= dpv2_hash_rol32(b, 14);      \
    a ^= c; a -= dpv2_hash_rol32(c, 11);      \
    b ^= a; b -= dpv2_hash_rol32(a, 25);      \
    c ^= b; c -= dpv2_hash_rol32(b, 16);      \
    a ^= c; a -= dpv2_hash_rol32(c, 4);       \
    b ^= a; b -= dpv2_hash_rol32(a, 14);      \
    c ^= b; c -= dpv2_hash_rol32(b, 24);      \
  } while (0)

/* Word i of an address: bytes 4i..4i+3 read big-endian. */
static inline __u32 dpv2_hash_addr_word(const struct dpv2_addr *addr, int i) {
  return ((__u32)addr->b[4 * i] << 24) | ((__u32)addr->b[4 * i + 1] << 16) |
         ((__u32)addr->b[4 * i + 2] << 8) | (__u32)addr->b[4 * i + 3];
}

/* A port as stored in a key (network order) to its numeric value. */
static inline __u32 dpv2_hash_port(__be16 port) {
  const __u8 *p = (const __u8 *)&port;
  return ((__u32)p[0] << 8) | (__u32)p[1];
}

/* Ports in network byte order, exactly as in dpv2_ct_key. ICMP echo uses the
 * identifier as sport and 0 as dport. */
static inline __u32 dpv2_tuple_hash(const struct dpv2_addr *saddr,
                                    const struct dpv2_addr *daddr, __be16 sport,
                                    __be16 dport, __u8 proto, __u8 family) {
  __u32 a, b, c;
  a = b = c = 0xdeadbeefu + (10u << 2) + DPV2_TUPLE_HASH_SEED;

  a += dpv2_hash_addr_word(saddr, 0);
  b += dpv2_hash_addr_word(saddr, 1);
  c += dpv2_hash_addr_word(saddr, 2);
  DPV2_HASH_MIX(a, b, c);
  a += dpv2_hash_addr_word(saddr, 3);
  b += dpv2_hash_addr_word(daddr, 0);
  c += dpv2_hash_addr_word(daddr, 1);
  DPV2_HASH_MIX(a, b, c);
  a += dpv2_hash_addr_word(daddr, 2);
  b += dpv2_hash_addr_word(daddr, 3);
  c += (dpv2_hash_port(sport) << 16) | dpv2_hash_port(dport);
  DPV2_HASH_MIX(a, b, c);
  a += ((__u32)proto << 8) | (__u32)family;
  DPV2_HASH_FINAL(a, b, c);
  return c;
}

#endif /* DPV2_ABI_HASH_H_ */
