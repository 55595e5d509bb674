// The map sizes of the eBPF unit tests: small, since every case loads the
// datapath (and some load it several times), with a prime Maglev table well
// above any backend count a case uses.
//
//   std::unique_ptr<Backend> b = *MakeEbpfBackend({.config = testing::SmallConfig()});
//   DatapathConfig tiny = testing::SmallConfig(/*entries=*/16);
//   tiny.ct_tcp_entries = 4;
#ifndef DPV2_TESTS_UNIT_EBPF_SMALL_CONFIG_H_
#define DPV2_TESTS_UNIT_EBPF_SMALL_CONFIG_H_

#include <cstdint>

#include "dpv2/datapath_config.h"

namespace dpv2::testing {

inline constexpr uint32_t kSmallMaglevTableSize = 251;

// `entries` services, backends, tables, endpoints, ... and 16 times as many
// conntrack entries of each kind.
inline DatapathConfig SmallConfig(uint32_t entries = 64) {
  return DatapathConfig{.maglev_table_size = kSmallMaglevTableSize,
                        .max_services = entries,
                        .max_backends = entries,
                        .max_tables = entries,
                        .ct_tcp_entries = 16 * entries,
                        .ct_other_entries = 16 * entries,
                        .max_affinity = entries,
                        .max_source_ranges = entries,
                        .max_endpoints = entries,
                        .max_ipcache = entries,
                        .max_policy_entries = entries};
}

}  // namespace dpv2::testing

#endif  // DPV2_TESTS_UNIT_EBPF_SMALL_CONFIG_H_
