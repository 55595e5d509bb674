/* Compiles the tuple hash as plain C (as the BPF programs do) so that the
 * test can compare it with the C++ compilation of the same header. */
#include "dpv2/abi/hash.h"

__u32 dpv2_tuple_hash_from_c(const struct dpv2_addr *saddr, const struct dpv2_addr *daddr,
                             __be16 sport, __be16 dport, __u8 proto, __u8 family) {
  return dpv2_tuple_hash(saddr, daddr, sport, dport, proto, family);
}
