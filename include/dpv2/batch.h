// dpv2 change batches: what the core asks a backend to change.
//
// The core turns desired state (services, endpoints, identities, compiled
// policy) into a ChangeBatch holding only what changed, expressed in the ABI
// records of <dpv2/abi/abi.h>. A backend applies a batch all or nothing:
// Backend::Apply validates the whole batch against its current contents and
// capacities first, and a rejected batch leaves the datapath as it was.
//
// Ordering contract (every backend): upserts are applied in the order node
// addresses, backends, lookup tables, source ranges, endpoints, ipcache,
// policy, services; then deletes in the order services, policy, ipcache,
// endpoints, source ranges, lookup tables, backends, node addresses. With lookup tables that are never rewritten in place
// (a change writes a new table id), a packet never sees a frontend pointing to
// a missing or partial table, or a table naming a missing backend.
//
//   dpv2::ChangeBatch batch = desired.Diff(previous);
//   if (absl::Status s = backend->Apply(batch); !s.ok()) { ... }
#ifndef DPV2_BATCH_H_
#define DPV2_BATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "dpv2/abi/abi.h"

namespace dpv2 {

struct ServiceEntry {
  dpv2_lb_key key;
  dpv2_lb_value value;
};

struct BackendEntry {
  uint32_t id;  // never 0
  dpv2_backend value;
};

// A Maglev (or random-selection) lookup table: size is the datapath's table
// size (a prime); every slot names a backend id present after the batch.
struct LookupTable {
  uint32_t id;  // never 0
  std::vector<uint32_t> slots;
};

struct EndpointEntry {
  dpv2_endpoint_key key;
  dpv2_endpoint_value value;
};

struct IpcacheEntry {
  dpv2_ipcache_key key;
  dpv2_ipcache_value value;
};

// The node's address of one family (DPV2_FAMILY_V4 / V6), the source of
// SNATed connections (abi/lb.h dpv2_node_addr_key).
struct NodeAddressEntry {
  uint8_t family;
  dpv2_addr addr;
};

struct PolicyEntry {
  dpv2_policy_key key;
  dpv2_policy_value value;
};

// Restart adoption (LbState::Adopt, PolicyState::Adopt) keeps the ids of a
// dumped batch only up to this value: fresh ids are allocated above the
// adopted ones, so a larger one would leave no room (no dpv2 writer makes one).
inline constexpr uint32_t kMaxAdoptedId = 0x7fffffff;

struct ChangeBatch {
  std::vector<NodeAddressEntry> node_addresses_upsert;
  std::vector<BackendEntry> backends_upsert;
  std::vector<LookupTable> tables_upsert;
  std::vector<dpv2_src_range_key> source_ranges_upsert;
  std::vector<EndpointEntry> endpoints_upsert;
  std::vector<IpcacheEntry> ipcache_upsert;
  std::vector<PolicyEntry> policy_upsert;
  std::vector<ServiceEntry> services_upsert;

  std::vector<dpv2_lb_key> services_delete;
  std::vector<dpv2_policy_key> policy_delete;
  std::vector<dpv2_ipcache_key> ipcache_delete;
  std::vector<dpv2_endpoint_key> endpoints_delete;
  std::vector<dpv2_src_range_key> source_ranges_delete;
  std::vector<uint32_t> tables_delete;
  std::vector<uint32_t> backends_delete;
  std::vector<uint8_t> node_addresses_delete;  // families

  bool empty() const;
  size_t size() const;           // number of operations
  std::string Summary() const;   // "3 services +, 1 table -, ..." for logs
  // Appends `other` (later wins for the same key when applied in order).
  void Append(const ChangeBatch& other);
};

}  // namespace dpv2

#endif  // DPV2_BATCH_H_
