#include "core/policy/policy_map.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

constexpr uint32_t kVariableMask = (1u << kPolicyVariableBits) - 1;

uint32_t PrefixMask(int variable_bits) {
  if (variable_bits <= 0) {
    return 0;
  }
  return (kVariableMask << (kPolicyVariableBits - variable_bits)) & kVariableMask;
}

uint32_t VariableOf(uint8_t proto, uint16_t dport_host_order) {
  return (static_cast<uint32_t>(proto) << 16) | dport_host_order;
}

}  // namespace

absl::Status ValidatePolicyKey(const dpv2_policy_key& key) {
  if (key.prefixlen < DPV2_POLICY_PREFIX_DIR ||
      key.prefixlen > DPV2_POLICY_PREFIX_DIR + kPolicyVariableBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy key for endpoint ", key.endpoint_id, ": prefixlen ", key.prefixlen,
                     " outside [", DPV2_POLICY_PREFIX_DIR, ", ",
                     DPV2_POLICY_PREFIX_DIR + kPolicyVariableBits, "]"));
  }
  if (key.direction != DPV2_DIR_INGRESS && key.direction != DPV2_DIR_EGRESS) {
    return absl::InvalidArgumentError(absl::StrCat("policy key for endpoint ", key.endpoint_id,
                                                   ": direction ", key.direction,
                                                   " is neither ingress nor egress"));
  }
  const int variable_bits = static_cast<int>(key.prefixlen) - DPV2_POLICY_PREFIX_DIR;
  const uint32_t variable = VariableOf(key.proto, ntohs(key.dport));
  if ((variable & ~PrefixMask(variable_bits)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy key for endpoint ", key.endpoint_id, ": proto/dport bits set beyond prefixlen ",
        key.prefixlen));
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicyEntry(const PolicyEntry& entry) {
  if (absl::Status s = ValidatePolicyKey(entry.key); !s.ok()) {
    return s;
  }
  if (entry.value.verdict != DPV2_POLICY_ALLOW && entry.value.verdict != DPV2_POLICY_DENY) {
    return absl::InvalidArgumentError(absl::StrCat("policy entry for endpoint ",
                                                   entry.key.endpoint_id, ": verdict ",
                                                   entry.value.verdict, " is not allow/deny"));
  }
  return absl::OkStatus();
}

dpv2_policy_key MakePolicyKey(uint32_t endpoint_id, uint32_t identity, uint8_t direction,
                              uint8_t proto, uint16_t dport_host_order, int variable_bits) {
  if (variable_bits < 0) {
    variable_bits = 0;
  }
  if (variable_bits > kPolicyVariableBits) {
    variable_bits = kPolicyVariableBits;
  }
  const uint32_t variable = VariableOf(proto, dport_host_order) & PrefixMask(variable_bits);
  dpv2_policy_key key{};
  key.prefixlen = DPV2_POLICY_PREFIX_DIR + variable_bits;
  key.endpoint_id = endpoint_id;
  key.identity = identity;
  key.direction = direction;
  key.proto = static_cast<uint8_t>(variable >> 16);
  key.dport = htons(static_cast<uint16_t>(variable & 0xffff));
  return key;
}

PolicyMap::EntryKey PolicyMap::ToEntryKey(const dpv2_policy_key& key) {
  const uint32_t variable_bits = key.prefixlen - DPV2_POLICY_PREFIX_DIR;
  return EntryKey{
      .group = {.endpoint_id = key.endpoint_id, .identity = key.identity,
                .direction = key.direction},
      .bits = (variable_bits << 24) | VariableOf(key.proto, ntohs(key.dport)),
  };
}

absl::Status PolicyMap::Upsert(const dpv2_policy_key& key, const dpv2_policy_value& value) {
  if (absl::Status s = ValidatePolicyKey(key); !s.ok()) {
    return s;
  }
  const EntryKey ek = ToEntryKey(key);
  auto [it, inserted] = entries_.insert_or_assign(ek, value);
  (void)it;
  if (inserted) {
    Group& g = groups_[ek.group];
    const uint32_t len = ek.bits >> 24;
    if (g.count[len]++ == 0) {
      g.length_mask |= 1u << len;
    }
  }
  return absl::OkStatus();
}

bool PolicyMap::Erase(const dpv2_policy_key& key) {
  if (!ValidatePolicyKey(key).ok()) {
    return false;
  }
  const EntryKey ek = ToEntryKey(key);
  if (entries_.erase(ek) == 0) {
    return false;
  }
  auto git = groups_.find(ek.group);
  const uint32_t len = ek.bits >> 24;
  if (--git->second.count[len] == 0) {
    git->second.length_mask &= ~(1u << len);
    if (git->second.length_mask == 0) {
      groups_.erase(git);
    }
  }
  return true;
}

std::optional<dpv2_policy_value> PolicyMap::Find(const dpv2_policy_key& key) const {
  if (!ValidatePolicyKey(key).ok()) {
    return std::nullopt;
  }
  auto it = entries_.find(ToEntryKey(key));
  if (it == entries_.end()) {
    return std::nullopt;
  }
  return it->second;
}

const dpv2_policy_value* PolicyMap::LongestMatch(const GroupKey& group,
                                                 uint32_t variable) const {
  auto git = groups_.find(group);
  if (git == groups_.end()) {
    return nullptr;
  }
  uint32_t mask = git->second.length_mask;
  while (mask != 0) {
    const int len = 31 - __builtin_clz(mask);
    mask &= ~(1u << len);
    const EntryKey ek{.group = group,
                      .bits = (static_cast<uint32_t>(len) << 24) | (variable & PrefixMask(len))};
    auto it = entries_.find(ek);
    if (it != entries_.end()) {
      return &it->second;
    }
  }
  return nullptr;
}

PolicyDecision PolicyMap::Lookup(uint32_t endpoint_id, uint8_t direction,
                                 uint32_t peer_identity, uint8_t proto,
                                 uint16_t dport_host_order) const {
  const uint32_t variable = VariableOf(proto, dport_host_order);
  const dpv2_policy_value* v = nullptr;
  if (peer_identity != 0) {
    v = LongestMatch({.endpoint_id = endpoint_id, .identity = peer_identity,
                      .direction = direction},
                     variable);
  }
  if (v == nullptr) {
    v = LongestMatch({.endpoint_id = endpoint_id, .identity = 0, .direction = direction},
                     variable);
  }
  if (v == nullptr) {
    return PolicyDecision{};
  }
  return PolicyDecision{
      .verdict = v->verdict == DPV2_POLICY_ALLOW ? PolicyDecision::Verdict::kAllow
                                                 : PolicyDecision::Verdict::kDeny,
      .tier = v->tier,
      .match_id = v->match_id,
  };
}

absl::Status PolicyMap::Apply(const ChangeBatch& batch) {
  for (const PolicyEntry& e : batch.policy_upsert) {
    if (absl::Status s = ValidatePolicyEntry(e); !s.ok()) {
      return s;
    }
  }
  for (const dpv2_policy_key& k : batch.policy_delete) {
    if (absl::Status s = ValidatePolicyKey(k); !s.ok()) {
      return s;
    }
  }
  for (const PolicyEntry& e : batch.policy_upsert) {
    (void)Upsert(e.key, e.value);
  }
  for (const dpv2_policy_key& k : batch.policy_delete) {
    Erase(k);
  }
  return absl::OkStatus();
}

void PolicyMap::Clear() {
  groups_.clear();
  entries_.clear();
}

std::vector<PolicyEntry> PolicyMap::Entries() const {
  std::vector<PolicyEntry> out;
  out.reserve(entries_.size());
  for (const auto& [ek, value] : entries_) {
    const int len = static_cast<int>(ek.bits >> 24);
    const uint32_t variable = ek.bits & kVariableMask;
    out.push_back(PolicyEntry{
        .key = MakePolicyKey(ek.group.endpoint_id, ek.group.identity, ek.group.direction,
                             static_cast<uint8_t>(variable >> 16),
                             static_cast<uint16_t>(variable & 0xffff), len),
        .value = value,
    });
  }
  return out;
}

}  // namespace dpv2
