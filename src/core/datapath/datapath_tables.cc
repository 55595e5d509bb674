#include "core/datapath/datapath_tables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "dpv2/net.h"

namespace dpv2 {
namespace {

bool ValidFamily(uint8_t family) { return FamilyBits(family) != 0; }

absl::string_view ProtoName(uint8_t proto) {
  switch (proto) {
    case DPV2_PROTO_TCP:
      return "TCP";
    case DPV2_PROTO_UDP:
      return "UDP";
    case DPV2_PROTO_SCTP:
      return "SCTP";
    case DPV2_PROTO_ICMP:
      return "ICMP";
    case DPV2_PROTO_ICMPV6:
      return "ICMPv6";
    default:
      return "proto";
  }
}

std::string DescribeAddr(const dpv2_addr& addr, uint8_t family) {
  if (!ValidFamily(family)) {
    return absl::StrCat("<family ", family, ">");
  }
  return IpAddr::FromAbi(addr, static_cast<Family>(family)).ToString();
}

absl::Status Full(absl::string_view table, uint32_t capacity) {
  return absl::ResourceExhaustedError(
      absl::StrCat("apply: ", table, " table full (", capacity, " entries)"));
}

// The number of entries a table holds after a batch: the distinct upserted
// keys not yet present are added, the distinct deleted keys present after the
// upserts are removed.
template <typename Key, typename UpsertRange, typename DeleteRange, typename KeyOfUpsert,
          typename ExistsFn>
size_t SizeAfter(size_t current, const UpsertRange& upserts, const DeleteRange& deletes,
                 KeyOfUpsert key_of, ExistsFn exists) {
  absl::flat_hash_set<Key> added;
  for (const auto& u : upserts) {
    Key k = key_of(u);
    if (!exists(k)) {
      added.insert(k);
    }
  }
  absl::flat_hash_set<Key> removed;
  for (const auto& d : deletes) {
    Key k(d);
    if (exists(k) || added.contains(k)) {
      removed.insert(k);
    }
  }
  return current + added.size() - removed.size();
}

// Calls f(id, first_slot) once for each distinct backend id of a lookup
// table's slots. A table holds few distinct ids in many slots (10 in 16,381
// is usual), so a small direct-mapped filter of ids already seen answers most
// slots with one compare; only its misses probe the set. Hashing every slot
// into a set cost ~0.2 ms a table; Apply scans each table it writes once.
template <typename F>
void ForEachDistinct(absl::Span<const uint32_t> slots, F f) {
  constexpr size_t kFilter = 64;
  std::array<uint32_t, kFilter> seen;
  seen.fill(0);
  bool zero_seen = false;  // 0 is the filter's empty mark
  absl::flat_hash_set<uint32_t> distinct;
  for (size_t i = 0; i < slots.size(); ++i) {
    const uint32_t id = slots[i];
    uint32_t& cached = seen[id % kFilter];
    if (id == 0) {
      if (zero_seen) {
        continue;
      }
      zero_seen = true;
    } else if (cached == id) {
      continue;
    } else {
      cached = id;
      if (!distinct.insert(id).second) {
        continue;
      }
    }
    f(id, i);
  }
}

}  // namespace

std::string DescribeServiceKey(const dpv2_lb_key& key) {
  const uint16_t port = ntohs(key.port);
  std::string addr = DescribeAddr(key.addr, key.family);
  if (key.family == DPV2_FAMILY_V6) {
    addr = absl::StrCat("[", addr, "]");
  }
  return absl::StrCat(ProtoName(key.proto), " ", addr, ":", port,
                      key.scope == DPV2_LB_SCOPE_INT ? " INT" : " EXT");
}

absl::Status DatapathTables::Validate(const ChangeBatch& batch, TableBackends* upserted) const {
  const uint32_t max_table_size = config_.maglev_table_size;
  upserted->clear();
  upserted->reserve(batch.tables_upsert.size());

  // Final state of every key the batch touches (later upserts win, deletes
  // come after every upsert).
  absl::flat_hash_set<uint32_t> backends_deleted(batch.backends_delete.begin(),
                                                 batch.backends_delete.end());
  absl::flat_hash_set<uint32_t> backends_upserted;
  for (const BackendEntry& b : batch.backends_upsert) {
    if (b.id == 0) {
      return absl::InvalidArgumentError("apply: backend id must not be 0");
    }
    if (!ValidFamily(b.value.family)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "apply: backend ", b.id, ": family ", b.value.family, " is not 4 or 6"));
    }
    backends_upserted.insert(b.id);
  }
  auto backend_after = [&](uint32_t id) {
    return (backends_upserted.contains(id) || backends_.Contains(id)) &&
           !backends_deleted.contains(id);
  };

  for (const NodeAddressEntry& n : batch.node_addresses_upsert) {
    if (!ValidFamily(n.family)) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: node address: family ", n.family, " is not 4 or 6"));
    }
    if (n.family == DPV2_FAMILY_V4 &&
        std::any_of(n.addr.b + 4, n.addr.b + 16, [](uint8_t byte) { return byte != 0; })) {
      return absl::InvalidArgumentError(
          "apply: node address of family 4: addr has bytes beyond the first 4");
    }
  }
  for (uint8_t family : batch.node_addresses_delete) {
    if (!ValidFamily(family)) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: node address delete: family ", family, " is not 4 or 6"));
    }
  }

  absl::flat_hash_set<uint32_t> tables_deleted(batch.tables_delete.begin(),
                                               batch.tables_delete.end());
  absl::flat_hash_map<uint32_t, size_t> tables_final;  // id -> its last index in tables_upsert
  for (const LookupTable& t : batch.tables_upsert) {
    if (t.id == 0) {
      return absl::InvalidArgumentError("apply: lookup table id must not be 0");
    }
    // Each table has its own M (the pick is hash % its slot count); the
    // eBPF datapath holds at most maglev_table_size slots a table.
    if (t.slots.empty() || t.slots.size() > max_table_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: lookup table ", t.id, ": ", t.slots.size(),
                       " slots, want 1 to maglev_table_size ", max_table_size));
    }
    std::optional<std::pair<uint32_t, size_t>> absent;  // first bad (backend, slot)
    std::vector<uint32_t>& ids = upserted->emplace_back();
    ForEachDistinct(t.slots, [&](uint32_t id, size_t slot) {
      if (!absent && (id == 0 || !backend_after(id))) {
        absent.emplace(id, slot);
      }
      ids.push_back(id);
    });
    if (absent) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: lookup table ", t.id, ": slot ", absent->second,
                       " names backend ", absent->first, ", absent after the batch"));
    }
    tables_final[t.id] = upserted->size() - 1;
  }
  auto table_after = [&](uint32_t id) {
    return (tables_final.contains(id) || tables_.Contains(id)) && !tables_deleted.contains(id);
  };

  for (const dpv2_src_range_key& r : batch.source_ranges_upsert) {
    if (r.service_id == 0) {
      return absl::InvalidArgumentError("apply: source range: service_id must not be 0");
    }
    const int bits = FamilyBits(r.family);
    if (bits == 0 || r.prefixlen < 64 || r.prefixlen > 64u + bits) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: source range of service ", r.service_id, ": family ", r.family,
                       " prefixlen ", r.prefixlen, " out of range"));
    }
  }
  for (const EndpointEntry& e : batch.endpoints_upsert) {
    const std::string name =
        absl::StrCat("apply: endpoint ", DescribeAddr(e.key.addr, e.key.family));
    if (!ValidFamily(e.key.family)) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: endpoint: family ", e.key.family, " is not 4 or 6"));
    }
    if (e.value.endpoint_id == 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": endpoint_id must not be 0"));
    }
    if (e.value.ifindex == 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ifindex must not be 0"));
    }
  }
  for (const IpcacheEntry& e : batch.ipcache_upsert) {
    const int bits = FamilyBits(e.key.family);
    if (bits == 0 || e.key.prefixlen < 32 || e.key.prefixlen > 32u + bits) {
      return absl::InvalidArgumentError(absl::StrCat("apply: ipcache: family ", e.key.family,
                                                     " prefixlen ", e.key.prefixlen,
                                                     " out of range"));
    }
  }
  for (const dpv2_ipcache_key& k : batch.ipcache_delete) {
    const int bits = FamilyBits(k.family);
    if (bits == 0 || k.prefixlen < 32 || k.prefixlen > 32u + bits) {
      return absl::InvalidArgumentError(absl::StrCat("apply: ipcache delete: family ", k.family,
                                                     " prefixlen ", k.prefixlen,
                                                     " out of range"));
    }
  }
  for (const dpv2_src_range_key& r : batch.source_ranges_delete) {
    const int bits = FamilyBits(r.family);
    if (bits == 0 || r.prefixlen < 64 || r.prefixlen > 64u + bits) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: source range delete of service ", r.service_id, ": family ",
                       r.family, " prefixlen ", r.prefixlen, " out of range"));
    }
  }
  for (const PolicyEntry& p : batch.policy_upsert) {
    DPV2_RETURN_IF_ERROR(ValidatePolicyEntry(p));
    if (p.key.endpoint_id == 0) {
      return absl::InvalidArgumentError("apply: policy entry: endpoint_id must not be 0");
    }
  }
  for (const dpv2_policy_key& k : batch.policy_delete) {
    DPV2_RETURN_IF_ERROR(ValidatePolicyKey(k));
  }

  absl::flat_hash_set<ServiceKey> services_deleted;
  for (const dpv2_lb_key& k : batch.services_delete) {
    services_deleted.insert(ServiceKey(k));
  }
  absl::flat_hash_map<ServiceKey, const dpv2_lb_value*> services_final;
  for (const ServiceEntry& s : batch.services_upsert) {
    const std::string name = absl::StrCat("apply: service ", DescribeServiceKey(s.key));
    if (!ValidFamily(s.key.family)) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply: service: family ", s.key.family, " is not 4 or 6"));
    }
    if (s.key.scope != DPV2_LB_SCOPE_EXT && s.key.scope != DPV2_LB_SCOPE_INT) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": scope ", s.key.scope, " is not EXT (0) or INT (1)"));
    }
    if (s.value.service_id == 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": service_id must not be 0"));
    }
    if (s.value.backend_count > 0 && !table_after(s.value.table_id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": table_id ", s.value.table_id, " absent after the batch"));
    }
    services_final[ServiceKey(s.key)] = &s.value;
  }

  // A table deleted while a service keeps pointing at it.
  if (!batch.tables_delete.empty()) {
    absl::flat_hash_map<uint32_t, int64_t> users;
    auto count = [&](uint32_t table_id, int64_t delta) {
      if (table_id != 0) {
        users[table_id] += delta;
      }
    };
    absl::flat_hash_set<ServiceKey> touched;
    for (const auto& [key, value] : services_final) {
      touched.insert(key);
    }
    for (const ServiceKey& key : services_deleted) {
      touched.insert(key);
    }
    for (const ServiceKey& key : touched) {
      if (const dpv2_lb_value* v = services_.Find(key.raw); v != nullptr) {
        count(v->table_id, -1);
      }
      if (services_deleted.contains(key)) {
        continue;
      }
      if (auto it = services_final.find(key); it != services_final.end()) {
        count(it->second->table_id, +1);
      }
    }
    for (uint32_t id : tables_deleted) {
      int64_t n = users[id];
      if (auto it = table_users_.find(id); it != table_users_.end()) {
        n += it->second;
      }
      if (n > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "apply: lookup table ", id, ": deleted while ", n, " service(s) still use it"));
      }
    }
  }

  // A backend deleted while a lookup table keeps naming it.
  if (!batch.backends_delete.empty()) {
    absl::flat_hash_map<uint32_t, int64_t> users;
    auto count_table = [&](absl::Span<const uint32_t> backend_ids, int64_t delta) {
      for (uint32_t id : backend_ids) {
        users[id] += delta;
      }
    };
    absl::flat_hash_set<uint32_t> touched = tables_deleted;
    for (const auto& [id, index] : tables_final) {
      touched.insert(id);
    }
    for (uint32_t id : touched) {
      if (auto old = table_backends_.find(id); old != table_backends_.end()) {
        count_table(old->second, -1);
      }
      if (tables_deleted.contains(id)) {
        continue;
      }
      if (auto it = tables_final.find(id); it != tables_final.end()) {
        count_table((*upserted)[it->second], +1);
      }
    }
    for (uint32_t id : backends_deleted) {
      int64_t n = users[id];
      if (auto it = backend_users_.find(id); it != backend_users_.end()) {
        n += it->second;
      }
      if (n > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "apply: backend ", id, ": deleted while ", n, " lookup table(s) still name it"));
      }
    }
  }

  // Capacities, counted on the contents after the batch.
  const size_t services_after = SizeAfter<ServiceKey>(
      services_.size(), batch.services_upsert, batch.services_delete,
      [](const ServiceEntry& s) { return ServiceKey(s.key); },
      [&](const ServiceKey& k) { return services_.Contains(k.raw); });
  if (services_after > config_.max_services) {
    return Full("services", config_.max_services);
  }
  const size_t backends_after = SizeAfter<uint32_t>(
      backends_.size(), batch.backends_upsert, batch.backends_delete,
      [](const BackendEntry& b) { return b.id; },
      [&](uint32_t id) { return backends_.Contains(id); });
  if (backends_after > config_.max_backends) {
    return Full("backends", config_.max_backends);
  }
  const size_t tables_after = SizeAfter<uint32_t>(
      tables_.size(), batch.tables_upsert, batch.tables_delete,
      [](const LookupTable& t) { return t.id; },
      [&](uint32_t id) { return tables_.Contains(id); });
  if (tables_after > config_.max_tables) {
    return Full("lookup tables", config_.max_tables);
  }
  using RangeKey = AbiKey<dpv2_src_range_key>;
  const size_t ranges_after = SizeAfter<RangeKey>(
      source_ranges_.size(), batch.source_ranges_upsert, batch.source_ranges_delete,
      [](const dpv2_src_range_key& r) { return RangeKey(r); },
      [&](const RangeKey& k) {
        return source_ranges_.Contains(k.raw.service_id, k.raw.family, k.raw.addr,
                                       static_cast<int>(k.raw.prefixlen) - 64);
      });
  if (ranges_after > config_.max_source_ranges) {
    return Full("source ranges", config_.max_source_ranges);
  }
  const size_t endpoints_after = SizeAfter<EndpointKey>(
      endpoints_.size(), batch.endpoints_upsert, batch.endpoints_delete,
      [](const EndpointEntry& e) { return EndpointKey(e.key); },
      [&](const EndpointKey& k) { return endpoints_.Contains(k.raw); });
  if (endpoints_after > config_.max_endpoints) {
    return Full("endpoints", config_.max_endpoints);
  }
  using IpcacheKey = AbiKey<dpv2_ipcache_key>;
  const size_t ipcache_after = SizeAfter<IpcacheKey>(
      ipcache_.size(), batch.ipcache_upsert, batch.ipcache_delete,
      [](const IpcacheEntry& e) { return IpcacheKey(e.key); },
      [&](const IpcacheKey& k) {
        return ipcache_.Contains(0, k.raw.family, k.raw.addr,
                                 static_cast<int>(k.raw.prefixlen) - 32);
      });
  if (ipcache_after > config_.max_ipcache) {
    return Full("ipcache", config_.max_ipcache);
  }
  using PolicyKey = AbiKey<dpv2_policy_key>;
  const size_t policy_after = SizeAfter<PolicyKey>(
      policy_.size(), batch.policy_upsert, batch.policy_delete,
      [](const PolicyEntry& p) { return PolicyKey(p.key); },
      [&](const PolicyKey& k) { return policy_.Find(k.raw).has_value(); });
  if (policy_after > config_.max_policy_entries) {
    return Full("policy", config_.max_policy_entries);
  }
  return absl::OkStatus();
}

void DatapathTables::ApplyValidated(const ChangeBatch& batch, TableBackends upserted) {
  for (const NodeAddressEntry& n : batch.node_addresses_upsert) {
    node_addrs_[NodeAddressIndex(n.family)] = n.addr;
  }
  auto add_table_users = [this](absl::Span<const uint32_t> backend_ids, int delta) {
    for (uint32_t id : backend_ids) {
      if ((backend_users_[id] += delta) == 0) {
        backend_users_.erase(id);
      }
    }
  };
  auto add_service_user = [this](uint32_t table_id, int delta) {
    if (table_id != 0 && (table_users_[table_id] += delta) == 0) {
      table_users_.erase(table_id);
    }
  };
  auto add_backend_addr = [this](const dpv2_backend& b, int delta) {
    const BackendAddrKey key = BackendAddrOf(b);
    uint32_t* users = backend_addrs_.Find(key);
    if (users == nullptr) {
      if (delta > 0) {
        backend_addrs_.Insert(key, static_cast<uint32_t>(delta));
      }
      return;
    }
    *users = static_cast<uint32_t>(static_cast<int64_t>(*users) + delta);
    if (*users == 0) {
      backend_addrs_.Erase(key);
    }
  };

  // Upserts: backends, lookup tables, source ranges, endpoints, ipcache,
  // policy, services.
  for (const BackendEntry& b : batch.backends_upsert) {
    if (const dpv2_backend* old = backends_.Find(b.id); old != nullptr) {
      add_backend_addr(*old, -1);
    }
    backends_.Insert(b.id, b.value);
    add_backend_addr(b.value, +1);
  }
  absl::flat_hash_map<uint32_t, size_t> new_tables;  // size -> tables of it to add
  for (const LookupTable& t : batch.tables_upsert) {
    if (!tables_.Contains(t.id)) {
      ++new_tables[static_cast<uint32_t>(t.slots.size())];
    }
  }
  for (const auto& [size, tables] : new_tables) {
    tables_.Reserve(size, tables);
  }
  for (size_t i = 0; i < batch.tables_upsert.size(); ++i) {
    const LookupTable& t = batch.tables_upsert[i];
    std::vector<uint32_t>& ids = table_backends_[t.id];
    add_table_users(ids, -1);
    tables_.Upsert(t.id, t.slots);
    add_table_users(upserted[i], +1);
    ids = std::move(upserted[i]);
  }
  for (const dpv2_src_range_key& r : batch.source_ranges_upsert) {
    source_ranges_.Upsert(r.service_id, r.family, r.addr, static_cast<int>(r.prefixlen) - 64, 1);
  }
  for (const EndpointEntry& e : batch.endpoints_upsert) {
    endpoints_.Insert(EndpointKey(e.key).raw, e.value);
  }
  for (const IpcacheEntry& e : batch.ipcache_upsert) {
    ipcache_.Upsert(0, e.key.family, e.key.addr, static_cast<int>(e.key.prefixlen) - 32,
                    e.value);
  }
  for (const PolicyEntry& p : batch.policy_upsert) {
    // Validated above: cannot fail.
    policy_.Upsert(p.key, p.value).IgnoreError();
  }
  for (const ServiceEntry& s : batch.services_upsert) {
    const dpv2_lb_key key = ServiceKey(s.key).raw;
    if (const dpv2_lb_value* old = services_.Find(key); old != nullptr) {
      add_service_user(old->table_id, -1);
    }
    services_.Insert(key, s.value);
    add_service_user(s.value.table_id, +1);
  }

  // Deletes: services, policy, ipcache, endpoints, source ranges, lookup
  // tables, backends.
  for (const dpv2_lb_key& k : batch.services_delete) {
    const dpv2_lb_key key = ServiceKey(k).raw;
    if (const dpv2_lb_value* v = services_.Find(key); v != nullptr) {
      add_service_user(v->table_id, -1);
      services_.Erase(key);
    }
  }
  for (const dpv2_policy_key& k : batch.policy_delete) {
    policy_.Erase(k);
  }
  for (const dpv2_ipcache_key& k : batch.ipcache_delete) {
    ipcache_.Erase(0, k.family, k.addr, static_cast<int>(k.prefixlen) - 32);
  }
  for (const dpv2_endpoint_key& k : batch.endpoints_delete) {
    endpoints_.Erase(EndpointKey(k).raw);
  }
  for (const dpv2_src_range_key& r : batch.source_ranges_delete) {
    source_ranges_.Erase(r.service_id, r.family, r.addr, static_cast<int>(r.prefixlen) - 64);
  }
  for (uint32_t id : batch.tables_delete) {
    if (auto old = table_backends_.find(id); old != table_backends_.end()) {
      add_table_users(old->second, -1);
      table_backends_.erase(old);
      tables_.Erase(id);
    }
  }
  for (uint32_t id : batch.backends_delete) {
    if (const dpv2_backend* old = backends_.Find(id); old != nullptr) {
      add_backend_addr(*old, -1);
      backends_.Erase(id);
    }
  }
  for (uint8_t family : batch.node_addresses_delete) {
    node_addrs_[NodeAddressIndex(family)].reset();
  }
}

absl::Status DatapathTables::Apply(const ChangeBatch& batch) {
  TableBackends upserted;
  DPV2_RETURN_IF_ERROR(Validate(batch, &upserted));
  ApplyValidated(batch, std::move(upserted));
  revision_ = NextTablesRevision();
  return absl::OkStatus();
}

ChangeBatch DatapathTables::Dump() const {
  ChangeBatch b;
  for (uint8_t family : {DPV2_FAMILY_V4, DPV2_FAMILY_V6}) {
    if (const dpv2_addr* addr = NodeAddress(family); addr != nullptr) {
      b.node_addresses_upsert.push_back({.family = family, .addr = *addr});
    }
  }
  backends_.ForEach([&b](uint32_t id, const dpv2_backend& value) {
    b.backends_upsert.push_back({.id = id, .value = value});
  });
  tables_.ForEach([&b](uint32_t id, absl::Span<const uint32_t> slots) {
    b.tables_upsert.push_back({.id = id, .slots = std::vector<uint32_t>(slots.begin(), slots.end())});
  });
  source_ranges_.ForEach([&b](uint32_t service_id, uint8_t family, const dpv2_addr& addr,
                              int length, char) {
    dpv2_src_range_key k{};
    k.prefixlen = 64 + static_cast<uint32_t>(length);
    k.service_id = service_id;
    k.family = family;
    k.addr = addr;
    b.source_ranges_upsert.push_back(k);
  });
  endpoints_.ForEach([&b](const dpv2_endpoint_key& key, const dpv2_endpoint_value& value) {
    b.endpoints_upsert.push_back({.key = key, .value = value});
  });
  ipcache_.ForEach([&b](uint32_t, uint8_t family, const dpv2_addr& addr, int length,
                        const dpv2_ipcache_value& value) {
    dpv2_ipcache_key k{};
    k.prefixlen = 32 + static_cast<uint32_t>(length);
    k.family = family;
    k.addr = addr;
    b.ipcache_upsert.push_back({.key = k, .value = value});
  });
  b.policy_upsert = policy_.Entries();
  services_.ForEach([&b](const dpv2_lb_key& key, const dpv2_lb_value& value) {
    b.services_upsert.push_back({.key = key, .value = value});
  });
  SortBatch(&b);
  return b;
}

namespace {

template <typename T>
bool BytesLess(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) < 0;
}

}  // namespace

void SortBatch(ChangeBatch* batch) {
  auto by_id = [](const auto& a, const auto& b) { return a.id < b.id; };
  auto by_key = [](const auto& a, const auto& b) { return BytesLess(a.key, b.key); };
  auto bytes = [](const auto& a, const auto& b) { return BytesLess(a, b); };
  auto by_family = [](const NodeAddressEntry& a, const NodeAddressEntry& b) {
    return a.family < b.family;
  };
  std::sort(batch->node_addresses_upsert.begin(), batch->node_addresses_upsert.end(), by_family);
  std::sort(batch->node_addresses_delete.begin(), batch->node_addresses_delete.end());
  std::sort(batch->backends_upsert.begin(), batch->backends_upsert.end(), by_id);
  std::sort(batch->tables_upsert.begin(), batch->tables_upsert.end(), by_id);
  std::sort(batch->source_ranges_upsert.begin(), batch->source_ranges_upsert.end(), bytes);
  std::sort(batch->endpoints_upsert.begin(), batch->endpoints_upsert.end(), by_key);
  std::sort(batch->ipcache_upsert.begin(), batch->ipcache_upsert.end(), by_key);
  std::sort(batch->policy_upsert.begin(), batch->policy_upsert.end(), by_key);
  std::sort(batch->services_upsert.begin(), batch->services_upsert.end(), by_key);
  std::sort(batch->services_delete.begin(), batch->services_delete.end(), bytes);
  std::sort(batch->policy_delete.begin(), batch->policy_delete.end(), bytes);
  std::sort(batch->ipcache_delete.begin(), batch->ipcache_delete.end(), bytes);
  std::sort(batch->endpoints_delete.begin(), batch->endpoints_delete.end(), bytes);
  std::sort(batch->source_ranges_delete.begin(), batch->source_ranges_delete.end(), bytes);
  std::sort(batch->tables_delete.begin(), batch->tables_delete.end());
  std::sort(batch->backends_delete.begin(), batch->backends_delete.end());
}

const dpv2_lb_value* DatapathTables::FindService(const dpv2_lb_key& key) const {
  const dpv2_lb_key k = Normalized(key);
  return services_.Find(k, KeyHash(k));
}

LookupTableStore::LookupTableStore(const LookupTableStore& other) {
  absl::flat_hash_map<uint32_t, size_t> per_size;
  other.ForEach([&](uint32_t, absl::Span<const uint32_t> slots) { ++per_size[slots.size()]; });
  for (const auto& [size, tables] : per_size) {
    Reserve(size, tables);
  }
  other.ForEach([this](uint32_t id, absl::Span<const uint32_t> slots) { Upsert(id, slots); });
}

LookupTableStore& LookupTableStore::operator=(const LookupTableStore& other) {
  if (this != &other) {
    *this = LookupTableStore(other);
  }
  return *this;
}

LookupTableStore::SizeClass& LookupTableStore::ClassOf(uint32_t size) {
  for (SizeClass& c : classes_) {
    if (c.size == size) {
      return c;
    }
  }
  classes_.push_back({.size = size, .chunks = {}, .free_blocks = {}});
  return classes_.back();
}

void LookupTableStore::Upsert(uint32_t id, absl::Span<const uint32_t> slots) {
  if (slots.empty()) {
    Erase(id);
    return;
  }
  const uint32_t size = static_cast<uint32_t>(slots.size());
  const uint64_t hash = KeyHash(id);
  Block* existing = index_.Find(id, hash);
  if (existing != nullptr && existing->size != size) {
    Release(*existing);
    index_.Erase(id, hash);
    existing = nullptr;
  }
  uint32_t* block;
  if (existing != nullptr) {
    block = existing->slots;
  } else {
    SizeClass& c = ClassOf(size);
    if (c.free_blocks.empty()) {
      AddChunk(c, kChunkTables);
    }
    block = c.free_blocks.back();
    c.free_blocks.pop_back();
    index_.InsertAbsent(id, hash, Block{.slots = block, .size = size});
  }
  std::copy(slots.begin(), slots.end(), block);
}

void LookupTableStore::AddChunk(SizeClass& c, size_t tables) {
  c.chunks.push_back(std::make_unique_for_overwrite<uint32_t[]>(tables * c.size));
  // Last block first on the free list, so blocks are used in address order.
  for (size_t b = tables; b-- > 0;) {
    c.free_blocks.push_back(c.chunks.back().get() + b * c.size);
  }
}

void LookupTableStore::Reserve(uint32_t size, size_t more) {
  if (size == 0) {
    return;
  }
  SizeClass& c = ClassOf(size);
  if (more > c.free_blocks.size()) {
    AddChunk(c, more - c.free_blocks.size());
  }
}

void LookupTableStore::Release(const Block& block) {
  ClassOf(block.size).free_blocks.push_back(block.slots);
}

void LookupTableStore::Erase(uint32_t id) {
  const uint64_t hash = KeyHash(id);
  if (const Block* block = index_.Find(id, hash); block != nullptr) {
    Release(*block);
    index_.Erase(id, hash);
  }
}

bool DatapathTables::SourceRangeAllows(uint32_t service_id, uint8_t family,
                                       const dpv2_addr& client) const {
  return source_ranges_.Lookup(service_id, family, client) != nullptr;
}

DatapathTables::BackendAddrKey DatapathTables::BackendAddrOf(const dpv2_backend& b) {
  return BackendAddrKey{.addr = b.addr, .port = b.port, .proto = b.proto, .family = b.family};
}

bool DatapathTables::IsBackendAddress(uint8_t family, const dpv2_addr& addr, uint16_t port_be,
                                      uint8_t proto) const {
  const BackendAddrKey key{.addr = addr, .port = port_be, .proto = proto, .family = family};
  return backend_addrs_.Find(key, KeyHash(key)) != nullptr;
}

const dpv2_ipcache_value* DatapathTables::LookupIpcache(uint8_t family,
                                                        const dpv2_addr& addr) const {
  return ipcache_.Lookup(0, family, addr);
}

}  // namespace dpv2
