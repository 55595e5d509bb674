// Lookup-table size classes of the eBPF datapath (include/dpv2/abi/lb.h,
// bpf/maglev.h): which class map holds a table of M slots, how much room a
// class's values have under a DatapathConfig, and the class maps of a
// skeleton in class order. The loader, the writer (ebpf_backend.cc) and the
// dump (state_dump.cc) agree through these three functions only.
//
//   const uint32_t c = TableClassOf(table.slots.size());      // 1021 -> 2
//   const uint32_t room = TableClassSlots(config, c);          // 1021
//   bpf_map* map = TableClassMaps(skel->maps)[c];              // dpv2_tables_2
#ifndef DPV2_BACKENDS_EBPF_TABLE_CLASS_H_
#define DPV2_BACKENDS_EBPF_TABLE_CLASS_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>

#include "dpv2/abi/lb.h"
#include "dpv2/datapath_config.h"
#include "dpv2/maglev.h"

struct bpf_map;

namespace dpv2::ebpf {

inline constexpr uint32_t kTableClasses = DPV2_LB_TABLE_CLASSES;
static_assert(std::size(kMaglevSizeLadder) == kTableClasses,
              "one lookup-table class map per step of the Maglev size ladder");
static_assert(((kTableClasses - 1) << DPV2_LB_TABLE_CLASS_SHIFT) <= DPV2_LB_F_TABLE_CLASS,
              "every class fits the flags' class bits");
static_assert((DPV2_LB_F_TABLE_CLASS &
               (DPV2_LB_F_AFFINITY | DPV2_LB_F_SOURCE_RANGES | DPV2_LB_F_EMPTY_DROP |
                DPV2_LB_F_TWO_SCOPES | DPV2_LB_F_RANDOM | DPV2_LB_F_NODEPORT |
                DPV2_LB_F_LOADBALANCER | DPV2_LB_F_LOCAL)) == 0,
              "the class bits are no frontend flag's");
static_assert(kMaglevSizeLadder[kTableClasses - 1] >= kMaxMaglevTableSize - 3,
              "the last class holds the largest table DatapathConfig allows");

// The class of a table of `slots` slots: the first ladder step >= slots.
inline uint32_t TableClassOf(uint32_t slots) {
  const uint32_t* step = std::lower_bound(std::begin(kMaglevSizeLadder),
                                          std::end(kMaglevSizeLadder), slots);
  return step == std::end(kMaglevSizeLadder)
             ? kTableClasses - 1
             : static_cast<uint32_t>(step - std::begin(kMaglevSizeLadder));
}

// Slots a value of class `c` has room for: its step, maglev_table_size for
// the class that holds it, 0 above (no table can be in those classes).
inline uint32_t TableClassSlots(const DatapathConfig& config, uint32_t c) {
  if (c > TableClassOf(config.maglev_table_size)) {
    return 0;
  }
  return std::min(kMaglevSizeLadder[c], config.maglev_table_size);
}

// The class maps of a skeleton's maps (the tc or the XDP object's), in class
// order.
template <typename Maps>
std::array<bpf_map*, kTableClasses> TableClassMaps(const Maps& m) {
  return {m.dpv2_tables_0,  m.dpv2_tables_1,  m.dpv2_tables_2,  m.dpv2_tables_3,
          m.dpv2_tables_4,  m.dpv2_tables_5,  m.dpv2_tables_6,  m.dpv2_tables_7,
          m.dpv2_tables_8,  m.dpv2_tables_9,  m.dpv2_tables_10, m.dpv2_tables_11,
          m.dpv2_tables_12, m.dpv2_tables_13, m.dpv2_tables_14, m.dpv2_tables_15,
          m.dpv2_tables_16};
}

}  // namespace dpv2::ebpf

#endif  // DPV2_BACKENDS_EBPF_TABLE_CLASS_H_
