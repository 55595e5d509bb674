// dpv2 Maglev lookup tables (Eisenbud et al., NSDI 2016).
//
// A MaglevTable turns a set of backends into M slots (M a prime) so that a
// 5-tuple hash picks a backend, each backend owns about M/N slots, and a change
// of one backend moves about M/N slots. Offsets and skips derive from a stable
// hash of each backend's identity string (e.g. "10.0.0.1:8080/TCP") and the
// seed, never from ids or input order: every node computes the same table.
// MaglevTableSizeFor gives a Service's M from its backend count and the
// datapath config, so that the size, too, is the same on every node.
//
//   absl::StatusOr<dpv2::MaglevTable> m = dpv2::MaglevTable::Create(
//       {.table_size = dpv2::MaglevTableSizeFor(config, 2), .seed = 7});
//   absl::StatusOr<std::vector<uint32_t>> slots = m->Populate(
//       {{.id = 1, .identity = "10.0.0.1:80/TCP"}, {.id = 2, .identity = "10.0.0.2:80/TCP"}});
#ifndef DPV2_MAGLEV_H_
#define DPV2_MAGLEV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dpv2/abi/lb.h"
#include "dpv2/datapath_config.h"

namespace dpv2 {

struct MaglevBackend {
  uint32_t id = 0;       // caller's backend id, written into the slots; never 0
  std::string identity;  // stable name of the backend, unique within a table
  uint32_t weight = 1;   // relative share of slots; 0 leaves the backend out
};

struct MaglevOptions {
  uint32_t table_size = DPV2_MAGLEV_DEFAULT_SIZE;  // a prime
  uint64_t seed = 0;  // same seed + same backends => same table on every node
};

class MaglevTable {
 public:
  // Rejects a table_size that is not a prime >= 3 (or above 2^24).
  static absl::StatusOr<MaglevTable> Create(const MaglevOptions& options);

  // table_size() slots of backend ids. Empty when no backend has a weight.
  // Errors: id 0, duplicate identity, more backends than slots.
  absl::StatusOr<std::vector<uint32_t>> Populate(absl::Span<const MaglevBackend> backends) const;

  uint32_t table_size() const { return options_.table_size; }
  uint64_t seed() const { return options_.seed; }

 private:
  explicit MaglevTable(const MaglevOptions& options) : options_(options) {}
  MaglevOptions options_;
};

// The table sizes a Service may get: the largest prime below each power of
// two from 2^8 to 2^24. One step per doubling keeps a table within 2x of
// the slots it asks for while a Service crosses a step (and every flow it
// serves is re-hashed) only when its backend count doubles; power-of-two
// bounds fit allocator size classes, 4 bytes a slot. 251 is the floor: a
// smaller table saves under 1 KiB and would add steps for 1-2 backends.
inline constexpr uint32_t kMaglevSizeLadder[] = {
    251,    509,    1021,    2039,    4093,    8191,    16381,   32749,   65521,
    131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213};

// M for a table of `backend_count` backends: the smallest ladder size of at
// least config.maglev_slots_per_backend * backend_count slots, capped at
// config.maglev_table_size (a size off the ladder is used as the cap as it
// is); config.maglev_table_size whenever maglev_slots_per_backend is 0. A
// function of the config and the count only: nodes agree on it.
uint32_t MaglevTableSizeFor(const DatapathConfig& config, size_t backend_count);

// The stable 64-bit hash Maglev uses (FNV-1a folded with a splitmix64
// finalizer): the same on every platform and process, unlike absl::Hash.
uint64_t MaglevHash(absl::string_view data, uint64_t seed);

}  // namespace dpv2

#endif  // DPV2_MAGLEV_H_
