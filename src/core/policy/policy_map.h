// PolicyMap: the in-memory policy table of the sim and DPDK datapaths, and the
// reference for the BPF LPM-trie lookup over the same dpv2_policy_key entries.
//
// Keys are LPM prefixes over (endpoint_id, identity, direction, proto, dport):
// the first DPV2_POLICY_PREFIX_DIR (72) bits are always fixed; the remaining
// 24 bits (proto, then the port in network order) form a prefix of length
// 0..24. Length 0 matches every protocol and port, 8 every port of one
// protocol, 24 one port; 9..23 are aligned port ranges (an endPort range is
// split into a few of them).
//
// Lookup algorithm (all backends, at most two LPM lookups):
//   1. longest match among entries with identity == peer identity; a hit is
//      the answer;
//   2. else longest match among entries with identity 0 (any peer); a hit is
//      the answer;
//   3. else kNoMatch, which the datapath treats as deny (fail closed).
// The compiler (PolicyState) folds broader and wildcard entries into narrower
// ones, so the longest match carries the final verdict; nothing is compared at
// packet time. The lookup is only done for a direction whose endpoint flag
// (DPV2_EP_F_INGRESS_POLICY / DPV2_EP_F_EGRESS_POLICY) is set; a direction
// without it allows everything. Host identity at ingress is compiled as an
// explicit allow entry, so the datapath needs no special case for it.
//
//   dpv2::PolicyMap map;
//   map.Upsert(entry.key, entry.value);
//   dpv2::PolicyDecision d = map.Lookup(ep, DPV2_DIR_INGRESS, peer_id, 6, 80);
#ifndef DPV2_CORE_POLICY_POLICY_MAP_H_
#define DPV2_CORE_POLICY_POLICY_MAP_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "dpv2/abi/policy.h"
#include "dpv2/batch.h"

namespace dpv2 {

struct PolicyDecision {
  enum class Verdict : uint8_t { kNoMatch, kAllow, kDeny };
  Verdict verdict = Verdict::kNoMatch;
  uint8_t tier = DPV2_POLICY_TIER_DEFAULT;  // DPV2_POLICY_TIER_*
  uint32_t match_id = 0;                    // 0 = none

  bool allowed() const { return verdict == Verdict::kAllow; }
};

// The number of key bits after the fixed part: proto (8) + dport (16).
inline constexpr int kPolicyVariableBits = 24;

// A key is valid when its prefixlen is within [72, 96], the bits beyond it are
// zero, direction is a DPV2_DIR_*, and the value's verdict is ALLOW or DENY.
absl::Status ValidatePolicyKey(const dpv2_policy_key& key);
absl::Status ValidatePolicyEntry(const PolicyEntry& entry);

// Builds a key; `port_prefix_bits` counts the bits of (proto, dport) that are
// significant (0, 8, 9..24). Bits beyond it are cleared.
dpv2_policy_key MakePolicyKey(uint32_t endpoint_id, uint32_t identity, uint8_t direction,
                              uint8_t proto, uint16_t dport_host_order, int variable_bits);

class PolicyMap {
 public:
  // Replaces the value of an existing key. The key must be valid
  // (ValidatePolicyKey); invalid keys are rejected without change.
  absl::Status Upsert(const dpv2_policy_key& key, const dpv2_policy_value& value);
  // Returns whether the key was present.
  bool Erase(const dpv2_policy_key& key);
  // Exact key lookup (no LPM): what is stored under this key.
  std::optional<dpv2_policy_value> Find(const dpv2_policy_key& key) const;

  // The per-connection decision (see the algorithm above).
  PolicyDecision Lookup(uint32_t endpoint_id, uint8_t direction, uint32_t peer_identity,
                        uint8_t proto, uint16_t dport_host_order) const;

  // Applies the policy part of a batch (upserts, then deletes), all or
  // nothing: every upsert key is validated first.
  absl::Status Apply(const ChangeBatch& batch);

  size_t size() const { return entries_.size(); }
  void Clear();
  std::vector<PolicyEntry> Entries() const;  // unordered

 private:
  struct GroupKey {
    uint32_t endpoint_id;
    uint32_t identity;
    uint8_t direction;
    friend bool operator==(const GroupKey&, const GroupKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const GroupKey& k) {
      return H::combine(std::move(h), k.endpoint_id, k.identity, k.direction);
    }
  };
  struct EntryKey {
    GroupKey group;
    uint32_t bits;  // (variable_bits << 24) | masked (proto << 16 | dport)
    friend bool operator==(const EntryKey&, const EntryKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const EntryKey& k) {
      return H::combine(std::move(h), k.group, k.bits);
    }
  };
  // Which prefix lengths a group holds, longest probed first.
  struct Group {
    uint32_t length_mask = 0;  // bit L set: some entry has variable_bits L
    std::array<uint32_t, kPolicyVariableBits + 1> count{};
  };

  static EntryKey ToEntryKey(const dpv2_policy_key& key);
  const dpv2_policy_value* LongestMatch(const GroupKey& group, uint32_t variable) const;

  absl::flat_hash_map<GroupKey, Group> groups_;
  absl::flat_hash_map<EntryKey, dpv2_policy_value> entries_;
};

}  // namespace dpv2

#endif  // DPV2_CORE_POLICY_POLICY_MAP_H_
