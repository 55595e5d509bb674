// dpv2 security identities: a numeric name for a set of identity-relevant
// labels, so that policy is compiled per identity instead of per address.
//
// A pod's identity is keyed by its namespace, its labels and the policy CIDRs
// that contain its address (so that an ipBlock can match a pod exactly);
// addresses outside the cluster get CIDR identities, nodes the reserved host /
// remote-node ones. IdentityAllocator hands out numbers >= 256 on this node
// without coordination, counts references and frees an identity with its last
// user. Freed numbers are reused oldest first (a late reuse keeps a stale
// number in a conntrack entry from naming a new label set soon); the space is
// the full u32 range, so there is no small ceiling to exhaust.
//
//   dpv2::IdentityAllocator ids;
//   uint32_t id = ids.Acquire("pod|default|app=web").value();
//   ids.Release(id);
#ifndef DPV2_IDENTITY_H_
#define DPV2_IDENTITY_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dpv2/abi/endpoint.h"

namespace dpv2 {

enum class ReservedIdentity : uint32_t {
  kUnknown = DPV2_IDENTITY_UNKNOWN,
  kHost = DPV2_IDENTITY_HOST,              // this node's addresses
  kWorld = DPV2_IDENTITY_WORLD,            // any address no prefix names
  kUnmanaged = DPV2_IDENTITY_UNMANAGED,    // a pod address not (yet) known
  kRemoteNode = DPV2_IDENTITY_REMOTE_NODE, // other nodes' addresses
};

// "host", "world", "unmanaged", "remote-node", "unknown"; "" for others.
absl::string_view ReservedIdentityName(uint32_t identity);

class IdentityAllocator {
 public:
  // The identity of `key`, allocated if new; counts one reference.
  // ResourceExhausted only when all 2^32 - 256 numbers are in use.
  absl::StatusOr<uint32_t> Acquire(absl::string_view key, bool* created = nullptr);
  // Like Acquire, but a new key takes `preferred` when that number is free,
  // >= 256 and below the fresh range (SkipTo): restart adoption keeps the
  // number the datapath holds.
  absl::StatusOr<uint32_t> AcquirePreferring(absl::string_view key, uint32_t preferred,
                                             bool* created = nullptr);
  // New numbers are drawn from `next` up (below it only as preferred ones),
  // so that none collides with a number an adopted datapath holds.
  void SkipTo(uint64_t next);
  // Drops one reference; returns true when that freed the identity.
  // Unknown identities are ignored (false).
  bool Release(uint32_t identity);

  std::optional<uint32_t> Find(absl::string_view key) const;
  // nullptr when not allocated.
  const std::string* KeyOf(uint32_t identity) const;
  uint64_t References(uint32_t identity) const;
  size_t size() const { return by_id_.size(); }

 private:
  struct Slot {
    std::string key;
    uint64_t references = 0;
  };
  absl::flat_hash_map<std::string, uint32_t> by_key_;
  absl::flat_hash_map<uint32_t, Slot> by_id_;
  std::deque<uint32_t> free_;  // FIFO: the longest-freed number is reused first
  uint64_t next_ = DPV2_IDENTITY_FIRST_ALLOCATED;
};

}  // namespace dpv2

#endif  // DPV2_IDENTITY_H_
