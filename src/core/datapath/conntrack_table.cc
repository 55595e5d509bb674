#include "core/datapath/conntrack_table.h"

namespace dpv2 {

ConntrackTable::ConntrackTable(const DatapathConfig& config)
    : timeouts_(config.timeouts),
      tcp_capacity_(config.ct_tcp_entries),
      other_capacity_(config.ct_other_entries) {}

void ConntrackTable::Count(uint8_t proto, int delta) {
  if (proto == DPV2_PROTO_TCP) {
    tcp_entries_ += delta;
  } else {
    other_entries_ += delta;
  }
}

dpv2_ct_value* ConntrackTable::Find(const dpv2_ct_key& key, uint64_t now_ns) {
  const dpv2_ct_key k = Normalized(key);
  return Find(k, Hash(k), now_ns);
}

dpv2_ct_value* ConntrackTable::FindAny(const dpv2_ct_key& key) {
  const dpv2_ct_key k = Normalized(key);
  return entries_.Find(k, Hash(k));
}

dpv2_ct_value* ConntrackTable::Create(const dpv2_ct_key& key, const dpv2_ct_value& value) {
  const dpv2_ct_key k = Normalized(key);
  return Create(k, Hash(k), value);
}

dpv2_ct_value* ConntrackTable::Create(const dpv2_ct_key& normalized_key, uint64_t hash,
                                      const dpv2_ct_value& value, bool* inserted) {
  if (inserted != nullptr) {
    *inserted = false;
  }
  const auto probe = entries_.Locate(normalized_key, hash);
  if (probe.found) {
    ++generation_;
    dpv2_ct_value* v = entries_.ValueAt(probe);
    *v = value;
    return v;
  }
  const bool tcp = normalized_key.proto == DPV2_PROTO_TCP;
  if (tcp ? tcp_entries_ >= tcp_capacity_ : other_entries_ >= other_capacity_) {
    return nullptr;
  }
  ++generation_;
  Count(normalized_key.proto, +1);
  if (inserted != nullptr) {
    *inserted = true;
  }
  return entries_.InsertAt(probe, normalized_key, hash, value);
}

bool ConntrackTable::Erase(const dpv2_ct_key& key) {
  const dpv2_ct_key k = Normalized(key);
  if (!entries_.Erase(k, Hash(k))) {
    return false;
  }
  ++generation_;
  Count(key.proto, -1);
  return true;
}

std::vector<dpv2_ct_key> ConntrackTable::ExpiredKeys(uint64_t now_ns) const {
  std::vector<dpv2_ct_key> keys;
  entries_.ForEach([&](const dpv2_ct_key& key, const dpv2_ct_value& value) {
    if (now_ns >= value.expires_ns) {
      keys.push_back(key);
    }
  });
  return keys;
}

bool ConntrackTable::EraseIfExpired(const dpv2_ct_key& key, uint64_t now_ns) {
  const dpv2_ct_key k = Normalized(key);
  const uint64_t hash = Hash(k);
  const dpv2_ct_value* v = entries_.Find(k, hash);
  if (v == nullptr || now_ns < v->expires_ns) {
    return false;
  }
  entries_.Erase(k, hash);
  ++generation_;
  Count(key.proto, -1);
  return true;
}

GcStats ConntrackTable::CollectGarbage(uint64_t now_ns) {
  GcStats stats{.scanned = entries_.size()};
  for (const dpv2_ct_key& key : ExpiredKeys(now_ns)) {
    if (EraseIfExpired(key, now_ns)) {
      ++stats.deleted;
    }
  }
  return stats;
}

void ConntrackTable::Flush() {
  entries_.ClearKeepCapacity();
  ++generation_;
  tcp_entries_ = 0;
  other_entries_ = 0;
}

std::vector<ConntrackEntry> ConntrackTable::Dump() const {
  std::vector<ConntrackEntry> out;
  out.reserve(entries_.size());
  entries_.ForEach([&](const dpv2_ct_key& key, const dpv2_ct_value& value) {
    out.push_back({.key = key, .value = value});
    if (key.flags & DPV2_CT_KEY_SERVICE) {
      // A stamped SERVICE entry keeps its backend there for the fast path
      // (pipeline.cc); a dump reports the frontend, as every backend does.
      out.back().value.nat_addr = key.daddr;
      out.back().value.nat_port = key.dport;
    }
  });
  return out;
}

}  // namespace dpv2
