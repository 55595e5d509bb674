#include "dpv2/identity.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dpv2 {

absl::string_view ReservedIdentityName(uint32_t identity) {
  switch (identity) {
    case DPV2_IDENTITY_UNKNOWN:
      return "unknown";
    case DPV2_IDENTITY_HOST:
      return "host";
    case DPV2_IDENTITY_WORLD:
      return "world";
    case DPV2_IDENTITY_UNMANAGED:
      return "unmanaged";
    case DPV2_IDENTITY_REMOTE_NODE:
      return "remote-node";
    default:
      return "";
  }
}

absl::StatusOr<uint32_t> IdentityAllocator::Acquire(absl::string_view key, bool* created) {
  if (created != nullptr) {
    *created = false;
  }
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    ++by_id_[it->second].references;
    return it->second;
  }
  uint32_t id = 0;
  if (!free_.empty()) {
    id = free_.front();
    free_.pop_front();
  } else if (next_ <= std::numeric_limits<uint32_t>::max()) {
    id = static_cast<uint32_t>(next_++);
  } else {
    return absl::ResourceExhaustedError(
        absl::StrCat("identity for \"", key, "\": every identity number is in use"));
  }
  by_key_.emplace(std::string(key), id);
  by_id_.emplace(id, Slot{.key = std::string(key), .references = 1});
  if (created != nullptr) {
    *created = true;
  }
  return id;
}

absl::StatusOr<uint32_t> IdentityAllocator::AcquirePreferring(absl::string_view key,
                                                               uint32_t preferred,
                                                               bool* created) {
  if (preferred < DPV2_IDENTITY_FIRST_ALLOCATED || preferred >= next_ || by_key_.contains(key) ||
      by_id_.contains(preferred)) {
    return Acquire(key, created);
  }
  std::erase(free_, preferred);
  by_key_.emplace(std::string(key), preferred);
  by_id_.emplace(preferred, Slot{.key = std::string(key), .references = 1});
  if (created != nullptr) {
    *created = true;
  }
  return preferred;
}

void IdentityAllocator::SkipTo(uint64_t next) { next_ = std::max(next_, next); }

bool IdentityAllocator::Release(uint32_t identity) {
  auto it = by_id_.find(identity);
  if (it == by_id_.end()) {
    return false;
  }
  if (--it->second.references > 0) {
    return false;
  }
  by_key_.erase(it->second.key);
  by_id_.erase(it);
  free_.push_back(identity);
  return true;
}

std::optional<uint32_t> IdentityAllocator::Find(absl::string_view key) const {
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    return it->second;
  }
  return std::nullopt;
}

const std::string* IdentityAllocator::KeyOf(uint32_t identity) const {
  auto it = by_id_.find(identity);
  return it == by_id_.end() ? nullptr : &it->second.key;
}

uint64_t IdentityAllocator::References(uint32_t identity) const {
  auto it = by_id_.find(identity);
  return it == by_id_.end() ? 0 : it->second.references;
}

}  // namespace dpv2
