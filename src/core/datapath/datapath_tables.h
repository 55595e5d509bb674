// DatapathTables: the configuration tables of the in-memory datapaths (sim,
// DPDK), i.e. everything in include/dpv2/abi that the control plane writes:
// services, backends, lookup tables, source ranges, endpoints, ipcache and
// policy.
//
// Apply() validates a whole ChangeBatch against the contents the tables would
// have after it (ids, table sizes, dangling references, capacities), and only
// then applies it in the order of include/dpv2/batch.h; a rejected batch
// changes nothing. Apply is deterministic, so a DPDK backend can keep two
// copies (one read by the lcores, one being updated) and apply the same batch
// to each. Lookups are hash probes: their cost does not grow with the number
// of entries.
//
//   DatapathTables tables(config);
//   DPV2_RETURN_IF_ERROR(tables.Apply(batch));
//   const dpv2_lb_value* svc = tables.FindService(key);
#ifndef DPV2_CORE_DATAPATH_DATAPATH_TABLES_H_
#define DPV2_CORE_DATAPATH_DATAPATH_TABLES_H_

#include <cstdint>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/datapath/abi_key.h"
#include "core/datapath/flat_table.h"
#include "core/datapath/lpm_table.h"
#include "core/datapath/tables_revision.h"
#include "core/policy/policy_map.h"
#include "dpv2/abi/abi.h"
#include "dpv2/batch.h"
#include "dpv2/datapath_config.h"

namespace dpv2 {

// The Maglev lookup tables, each of its own size M (LbState sizes a table by
// its backend count, MaglevTableSizeFor; at most maglev_table_size): each
// table is a block carved from a chunk of blocks of its size, with a
// FlatTable from table id to its block, so that a new connection's slot
// costs the index probe and one line of the block (a map of vectors costs a
// probe, the vector header, then the slot). Sizes come from a short ladder,
// so there are few size classes. An erased table's block goes on its size's
// free list, which new tables of that size take from first; chunks are freed
// only with the store, so its memory stays at its peak. When a size's free
// list is empty, a new chunk of kChunkTables blocks (or of what Reserve asks
// for) is allocated. Blocks never move, so growth copies no table's slots
// (one contiguous array copied all of them, 655 MB at 10,000, when a change
// needed one block more); what it does copy is pointers: the index rehashes
// (an id and a block per table) when it doubles, and the vectors of chunks
// and free blocks may reallocate. A span from Find stays valid until its
// table is erased or the store is assigned to (Upsert of an existing id at
// the same size rewrites the block in place; at another size it moves the
// table to a block of that size).
class LookupTableStore {
 public:
  LookupTableStore() = default;
  // A copy holds the same tables in blocks of its own (DPDK syncs its two
  // copies of DatapathTables by assignment).
  LookupTableStore(const LookupTableStore& other);
  LookupTableStore& operator=(const LookupTableStore& other);
  LookupTableStore(LookupTableStore&&) noexcept = default;
  LookupTableStore& operator=(LookupTableStore&&) noexcept = default;

  // Empty when absent; else the table's own M slots.
  absl::Span<const uint32_t> Find(uint32_t id) const {
    const Block* block = index_.Find(id, KeyHash(id));
    if (block == nullptr) {
      return {};
    }
    return absl::MakeConstSpan(block->slots, block->size);
  }
  bool Contains(uint32_t id) const { return index_.Contains(id); }
  void PrefetchIndex(uint32_t id) const { index_.Prefetch(KeyHash(id)); }
  // The table takes slots.size() slots; no slots erases it (a table of no
  // slots reads as absent either way).
  void Upsert(uint32_t id, absl::Span<const uint32_t> slots);
  void Erase(uint32_t id);
  // Room for `more` new tables of `size` slots at once: a full sync then
  // allocates one chunk a size instead of one per kChunkTables tables.
  void Reserve(uint32_t size, size_t more);
  size_t size() const { return index_.size(); }
  // f(id, slots) for every table.
  template <typename F>
  void ForEach(F f) const {
    index_.ForEach([&](uint32_t id, const Block& block) {
      f(id, absl::MakeConstSpan(block.slots, block.size));
    });
  }

 private:
  static constexpr size_t kChunkTables = 64;  // 4 MiB at 16,381 slots, 64 KiB at 251
  struct Block {
    uint32_t* slots;
    uint32_t size;
  };
  // The blocks of one table size.
  struct SizeClass {
    uint32_t size = 0;
    std::vector<std::unique_ptr<uint32_t[]>> chunks;
    std::vector<uint32_t*> free_blocks;  // in no table; the last one is used first
  };
  SizeClass& ClassOf(uint32_t size);
  static void AddChunk(SizeClass& c, size_t tables);
  void Release(const Block& block);

  FlatTable<uint32_t, Block> index_;  // table id -> its block
  std::vector<SizeClass> classes_;    // a few: one per table size in use
};

class DatapathTables {
 public:
  explicit DatapathTables(const DatapathConfig& config)
      : config_(config) {}

  // All or nothing; see the file comment. Deleting an absent key is not an
  // error (a batch may be re-applied after a restart).
  absl::Status Apply(const ChangeBatch& batch);

  const dpv2_lb_value* FindService(const dpv2_lb_key& key) const;
  // The same with the hash computed once by the caller (KeyHash of a key
  // with clear padding), who may have prefetched it.
  const dpv2_lb_value* FindService(const dpv2_lb_key& normalized_key, uint64_t hash) const {
    return services_.Find(normalized_key, hash);
  }
  void PrefetchService(uint64_t hash) const { services_.Prefetch(hash); }
  const dpv2_backend* FindBackend(uint32_t backend_id) const {
    return backends_.Find(backend_id, KeyHash(backend_id));
  }
  void PrefetchBackend(uint32_t backend_id) const { backends_.Prefetch(KeyHash(backend_id)); }
  // The slots of a lookup table (its own M, at most maglev_table_size),
  // empty if absent.
  absl::Span<const uint32_t> FindTable(uint32_t table_id) const { return tables_.Find(table_id); }
  void PrefetchTable(uint32_t table_id) const { tables_.PrefetchIndex(table_id); }
  // loadBalancerSourceRanges: whether some range of `service_id` holds `client`.
  bool SourceRangeAllows(uint32_t service_id, uint8_t family, const dpv2_addr& client) const;
  // Whether some backend has this address, port (network order) and
  // protocol: the service side of a connection (flow steering).
  bool IsBackendAddress(uint8_t family, const dpv2_addr& addr, uint16_t port_be,
                        uint8_t proto) const;
  const dpv2_endpoint_value* FindEndpoint(uint8_t family, const dpv2_addr& addr) const {
    dpv2_endpoint_key key{};
    key.addr = addr;
    key.family = family;
    return endpoints_.Find(key, KeyHash(key));
  }
  // Longest-prefix match; nullptr when no prefix holds `addr`.
  const dpv2_ipcache_value* LookupIpcache(uint8_t family, const dpv2_addr& addr) const;
  const PolicyMap& policy() const { return policy_; }
  // The node's address of `family` (the source of SNATed connections), or
  // null: that family is never SNATed.
  const dpv2_addr* NodeAddress(uint8_t family) const {
    const std::optional<dpv2_addr>& a = node_addrs_[NodeAddressIndex(family)];
    return a.has_value() ? &*a : nullptr;
  }
  // Every entry as one batch of upserts, each list sorted (Backend::DumpState).
  ChangeBatch Dump() const;

  const DatapathConfig& config() const { return config_; }
  // Changes at every successful Apply and differs between tables objects
  // (tables_revision.h): a conntrack entry checked at this revision needs
  // no check again while it holds (the established fast path, pipeline.cc).
  uint32_t revision() const { return revision_; }
  size_t service_count() const { return services_.size(); }
  size_t backend_count() const { return backends_.size(); }
  size_t table_count() const { return tables_.size(); }
  size_t source_range_count() const { return source_ranges_.size(); }
  size_t endpoint_count() const { return endpoints_.size(); }
  size_t ipcache_count() const { return ipcache_.size(); }
  size_t policy_count() const { return policy_.size(); }

 private:
  using ServiceKey = AbiKey<dpv2_lb_key>;
  using EndpointKey = AbiKey<dpv2_endpoint_key>;

  // The distinct backend ids of each of a batch's tables_upsert, in batch
  // order: Validate finds them (one scan of the slots) and ApplyValidated
  // counts them without scanning again.
  using TableBackends = std::vector<std::vector<uint32_t>>;
  absl::Status Validate(const ChangeBatch& batch, TableBackends* upserted) const;
  void ApplyValidated(const ChangeBatch& batch, TableBackends upserted);

  static size_t NodeAddressIndex(uint8_t family) { return family == DPV2_FAMILY_V6 ? 1 : 0; }

  DatapathConfig config_;
  uint32_t revision_ = NextTablesRevision();
  std::array<std::optional<dpv2_addr>, 2> node_addrs_;  // IPv4, IPv6
  // Keys stored normalized (clear padding).
  FlatTable<dpv2_lb_key, dpv2_lb_value> services_;
  FlatTable<uint32_t, dpv2_backend> backends_;
  // Backends by address, port and protocol -> how many backend ids have them.
  struct BackendAddrKey {
    dpv2_addr addr;
    uint16_t port;  // network order
    uint8_t proto;
    uint8_t family;
  };
  static BackendAddrKey BackendAddrOf(const dpv2_backend& b);
  FlatTable<BackendAddrKey, uint32_t> backend_addrs_;
  LookupTableStore tables_;
  LpmTable<char> source_ranges_;  // scope = service_id; presence means allowed
  FlatTable<dpv2_endpoint_key, dpv2_endpoint_value> endpoints_;
  LpmTable<dpv2_ipcache_value> ipcache_;  // scope 0
  PolicyMap policy_;
  // Reference counts that let Apply reject a delete of something still in
  // use without scanning: services per table id, tables per backend id.
  absl::flat_hash_map<uint32_t, uint32_t> table_users_;
  absl::flat_hash_map<uint32_t, uint32_t> backend_users_;
  // The distinct backend ids of each stored lookup table, so that replacing
  // or deleting a table, or checking a backend delete, scans no slots (each
  // scan of 16,381 slots cost ~50 us, five per endpoint change).
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> table_backends_;
};

// "TCP 10.96.0.10:80 EXT" for error messages.
std::string DescribeServiceKey(const dpv2_lb_key& key);

// Orders every list of `batch` (ids ascending, else key bytes), so that dumps
// of equal contents compare equal whatever order a table iterates in.
void SortBatch(ChangeBatch* batch);

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_DATAPATH_TABLES_H_
