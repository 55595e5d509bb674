// Hashable wrappers around the plain-C ABI keys, for the in-memory tables of
// the sim and DPDK datapaths.
//
// ABI keys are hashed and compared as raw bytes, exactly as a BPF hash map
// does, so a key's padding must be zero: Normalized() clears every pad field
// before a key is stored or looked up, whatever the caller left in it.
//
//   absl::flat_hash_map<AbiKey<dpv2_lb_key>, dpv2_lb_value> services;
//   auto it = services.find(AbiKey<dpv2_lb_key>(key));
#ifndef DPV2_CORE_DATAPATH_ABI_KEY_H_
#define DPV2_CORE_DATAPATH_ABI_KEY_H_

#include <cstring>
#include <type_traits>
#include <utility>

#include "core/datapath/lpm_table.h"
#include "dpv2/abi/abi.h"

namespace dpv2 {

// Clears the padding of every ABI key type used as a table key.
inline dpv2_lb_key Normalized(dpv2_lb_key k) {
  std::memset(k.pad, 0, sizeof(k.pad));
  return k;
}
inline dpv2_ct_key Normalized(dpv2_ct_key k) {
  k.pad = 0;
  return k;
}
inline dpv2_affinity_key Normalized(dpv2_affinity_key k) {
  std::memset(k.pad, 0, sizeof(k.pad));
  return k;
}
inline dpv2_endpoint_key Normalized(dpv2_endpoint_key k) {
  std::memset(k.pad, 0, sizeof(k.pad));
  return k;
}
inline dpv2_policy_key Normalized(dpv2_policy_key k) { return k; }  // no padding
// Prefix keys also get the address bits beyond the prefix cleared, so that two
// spellings of one prefix are one key.
inline dpv2_src_range_key Normalized(dpv2_src_range_key k) {
  std::memset(k.pad, 0, sizeof(k.pad));
  const int bits = static_cast<int>(k.prefixlen) - 64;
  k.addr = MaskAddr(k.addr, bits < 0 ? 0 : bits > 128 ? 128 : bits);
  return k;
}
inline dpv2_ipcache_key Normalized(dpv2_ipcache_key k) {
  std::memset(k.pad, 0, sizeof(k.pad));
  const int bits = static_cast<int>(k.prefixlen) - 32;
  k.addr = MaskAddr(k.addr, bits < 0 ? 0 : bits > 128 ? 128 : bits);
  return k;
}

template <typename T>
struct AbiKey {
  static_assert(std::is_trivially_copyable_v<T>);

  AbiKey() { std::memset(&raw, 0, sizeof(raw)); }
  explicit AbiKey(const T& key) : raw(Normalized(key)) {}

  friend bool operator==(const AbiKey& a, const AbiKey& b) {
    return std::memcmp(&a.raw, &b.raw, sizeof(T)) == 0;
  }
  template <typename H>
  friend H AbslHashValue(H h, const AbiKey& k) {
    return H::combine_contiguous(std::move(h),
                                 reinterpret_cast<const unsigned char*>(&k.raw), sizeof(T));
  }

  T raw;
};

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_ABI_KEY_H_
