// The tables revision of the in-memory datapaths (sim, DPDK): a number that
// names one content of one DatapathTables object. Apply takes a new one
// after every batch, and a new object takes one too, so two revisions are
// equal only for the same object (or a copy of it) with nothing applied
// since. A conntrack entry stamped with it (pipeline.cc, the established
// fast path; docs/datapath.md) therefore tells a later packet that no
// table its checks read has changed, even when one DatapathState is run
// against several tables objects (the two copies a DPDK backend publishes,
// a test's twins). 0 is never taken: it means "never checked".
//
//   uint32_t revision_ = NextTablesRevision();        // construction
//   ApplyValidated(batch); revision_ = NextTablesRevision();
#ifndef DPV2_CORE_DATAPATH_TABLES_REVISION_H_
#define DPV2_CORE_DATAPATH_TABLES_REVISION_H_

#include <atomic>
#include <cstdint>

namespace dpv2 {

// Process-wide, so that no two tables objects share a revision. It wraps
// after 2^32 - 1 applies, as the eBPF backend's 32-bit counter does.
inline uint32_t NextTablesRevision() {
  static std::atomic<uint32_t> last{0};
  uint32_t r = last.fetch_add(1, std::memory_order_relaxed) + 1;
  while (r == 0) {
    r = last.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  return r;
}

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_TABLES_REVISION_H_
