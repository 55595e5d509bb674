// A longest-prefix-match table over (scope id, family, address prefix), for
// the ipcache and the loadBalancerSourceRanges of the in-memory datapaths.
//
// One hash map holds every prefix with its host bits cleared; a lookup probes
// the prefix lengths in use for the family from the longest down. The cost is
// bounded by the address width (33 or 129 probes at worst, usually a handful),
// never by the number of entries.
//
//   LpmTable<uint32_t> ipcache;
//   ipcache.Upsert(0, DPV2_FAMILY_V4, addr, 24, identity);
//   const uint32_t* id = ipcache.Lookup(0, DPV2_FAMILY_V4, packet_saddr);
#ifndef DPV2_CORE_DATAPATH_LPM_TABLE_H_
#define DPV2_CORE_DATAPATH_LPM_TABLE_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "dpv2/abi/types.h"

namespace dpv2 {

// The address width of an ABI family, 0 for an unknown family.
inline int FamilyBits(uint8_t family) {
  return family == DPV2_FAMILY_V4 ? 32 : family == DPV2_FAMILY_V6 ? 128 : 0;
}

// `addr` with every bit beyond `length` cleared.
inline dpv2_addr MaskAddr(const dpv2_addr& addr, int length) {
  dpv2_addr out{};
  const int full = length / 8;
  std::memcpy(out.b, addr.b, full);
  if (length % 8 != 0) {
    out.b[full] = addr.b[full] & static_cast<uint8_t>(0xff << (8 - length % 8));
  }
  return out;
}

template <typename Value>
class LpmTable {
 public:
  // `length` must be within the family's width (callers validate).
  // Returns true when the prefix was new.
  bool Upsert(uint32_t scope, uint8_t family, const dpv2_addr& addr, int length,
              const Value& value) {
    auto [it, inserted] = entries_.insert_or_assign(MakeKey(scope, family, addr, length), value);
    if (inserted) {
      ++Lengths(family)[length];
    }
    return inserted;
  }

  // Returns true when the prefix was present.
  bool Erase(uint32_t scope, uint8_t family, const dpv2_addr& addr, int length) {
    if (entries_.erase(MakeKey(scope, family, addr, length)) == 0) {
      return false;
    }
    --Lengths(family)[length];
    return true;
  }

  bool Contains(uint32_t scope, uint8_t family, const dpv2_addr& addr, int length) const {
    return entries_.contains(MakeKey(scope, family, addr, length));
  }

  // The value of the longest prefix of `scope`/`family` containing `addr`.
  const Value* Lookup(uint32_t scope, uint8_t family, const dpv2_addr& addr) const {
    const int bits = FamilyBits(family);
    if (bits == 0 || entries_.empty()) {
      return nullptr;
    }
    const std::array<uint32_t, 129>& lengths = Lengths(family);
    for (int length = bits; length >= 0; --length) {
      if (lengths[length] == 0) {
        continue;
      }
      auto it = entries_.find(MakeKey(scope, family, addr, length));
      if (it != entries_.end()) {
        return &it->second;
      }
    }
    return nullptr;
  }

  size_t size() const { return entries_.size(); }

  // Calls fn(scope, family, addr, length, value) for every prefix (for dumps).
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const auto& [k, v] : entries_) {
      fn(k.scope, k.family, k.addr, static_cast<int>(k.length), v);
    }
  }

 private:
  struct Key {
    uint32_t scope;
    uint8_t family;
    uint8_t length;
    dpv2_addr addr;

    friend bool operator==(const Key& a, const Key& b) {
      return a.scope == b.scope && a.family == b.family && a.length == b.length &&
             std::memcmp(a.addr.b, b.addr.b, sizeof(a.addr.b)) == 0;
    }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.scope, k.family, k.length,
                        absl::string_view(reinterpret_cast<const char*>(k.addr.b),
                                          sizeof(k.addr.b)));
    }
  };

  static Key MakeKey(uint32_t scope, uint8_t family, const dpv2_addr& addr, int length) {
    return Key{.scope = scope,
               .family = family,
               .length = static_cast<uint8_t>(length),
               .addr = MaskAddr(addr, length)};
  }

  std::array<uint32_t, 129>& Lengths(uint8_t family) {
    return family == DPV2_FAMILY_V4 ? v4_lengths_ : v6_lengths_;
  }
  const std::array<uint32_t, 129>& Lengths(uint8_t family) const {
    return family == DPV2_FAMILY_V4 ? v4_lengths_ : v6_lengths_;
  }

  absl::flat_hash_map<Key, Value> entries_;
  // Number of entries per prefix length, so that lookups skip unused lengths.
  std::array<uint32_t, 129> v4_lengths_{};
  std::array<uint32_t, 129> v6_lengths_{};
};

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_LPM_TABLE_H_
