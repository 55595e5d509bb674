// dpv2 datapath configuration shared by every backend: table sizes and
// conntrack timeouts.
//
// Defaults follow Cilium's (SEMANTICS.md section 3 and 6). Each backend's
// options struct embeds one DatapathConfig, so that the same numbers mean the
// same thing everywhere.
//
//   dpv2::DatapathConfig cfg{.maglev_table_size = 65521, .maglev_slots_per_backend = 100};
//   cfg.timeouts.tcp_established_s = 21600;
#ifndef DPV2_DATAPATH_CONFIG_H_
#define DPV2_DATAPATH_CONFIG_H_

#include <cstdint>

#include "absl/status/status.h"
#include "dpv2/abi/abi.h"

namespace dpv2 {

// The limits DatapathConfig::Validate enforces on the Maglev fields, for the
// flag and file parsers that check them first: MaglevTable's largest table
// (large enough for any datapath, Cilium's largest is 131,071, while a table
// allocation stays bounded), and a slots per backend beyond which every
// Service would sit at the cap anyway.
inline constexpr uint32_t kMaxMaglevTableSize = 1u << 24;
inline constexpr uint32_t kMaxMaglevSlotsPerBackend = 65536;

struct ConntrackTimeouts {
  uint32_t tcp_established_s = DPV2_CT_TIMEOUT_TCP_ESTABLISHED_S;
  uint32_t tcp_syn_s = DPV2_CT_TIMEOUT_TCP_SYN_S;
  uint32_t tcp_close_s = DPV2_CT_TIMEOUT_TCP_CLOSE_S;
  uint32_t non_tcp_s = DPV2_CT_TIMEOUT_NON_TCP_S;
};

struct DatapathConfig {
  // The largest Maglev table (a prime): the size of every table when
  // maglev_slots_per_backend is 0, else the cap of the per-Service size.
  uint32_t maglev_table_size = DPV2_MAGLEV_DEFAULT_SIZE;
  // Each Service's table gets the smallest size of a fixed ladder of primes
  // (MaglevTableSizeFor in <dpv2/maglev.h>) holding this many slots per
  // backend, capped at maglev_table_size. Maglev's imbalance is bounded by
  // about N/M, so 100 keeps it near 1%; 0 gives every table
  // maglev_table_size. Every node with the same config computes the same
  // size (and table) for the same backends.
  uint32_t maglev_slots_per_backend = 100;
  uint32_t max_services = 65536;   // frontend entries
  uint32_t max_backends = 65536;   // service-backend entries
  uint32_t max_tables = 65536;     // lookup tables (one per frontend scope)
  uint32_t ct_tcp_entries = DPV2_CT_DEFAULT_TCP_ENTRIES;
  uint32_t ct_other_entries = DPV2_CT_DEFAULT_OTHER_ENTRIES;
  uint32_t max_affinity = 65536;
  uint32_t max_source_ranges = 16384;
  uint32_t max_endpoints = 4096;
  uint32_t max_ipcache = 524288;
  uint32_t max_policy_entries = 1048576;
  // SNAT of external Cluster-policy connections to backends on other nodes
  // (docs/datapath.md, "SNAT"): two entries a connection, and the source
  // ports they get (inclusive, 1 <= min <= max <= 65535).
  uint32_t snat_entries = DPV2_SNAT_DEFAULT_ENTRIES;
  uint32_t snat_port_min = DPV2_SNAT_DEFAULT_PORT_MIN;
  uint32_t snat_port_max = DPV2_SNAT_DEFAULT_PORT_MAX;
  ConntrackTimeouts timeouts;

  // Names the bad field: "datapath config: maglev_table_size 16380 is not a prime".
  // maglev_table_size must be a prime up to 2^24, maglev_slots_per_backend
  // at most 65536.
  absl::Status Validate() const;
};

}  // namespace dpv2

#endif  // DPV2_DATAPATH_CONFIG_H_
