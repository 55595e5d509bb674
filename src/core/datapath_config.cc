#include "dpv2/datapath_config.h"

#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

}  // namespace

absl::Status DatapathConfig::Validate() const {
  if (!IsPrime(maglev_table_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "datapath config: maglev_table_size ", maglev_table_size, " is not a prime"));
  }
  if (maglev_table_size > kMaxMaglevTableSize) {
    return absl::InvalidArgumentError(absl::StrCat("datapath config: maglev_table_size ",
                                                   maglev_table_size, " is above ",
                                                   kMaxMaglevTableSize));
  }
  // A larger value is a typo (slots, not a table size, are meant).
  if (maglev_slots_per_backend > kMaxMaglevSlotsPerBackend) {
    return absl::InvalidArgumentError(
        absl::StrCat("datapath config: maglev_slots_per_backend ", maglev_slots_per_backend,
                     " is above ", kMaxMaglevSlotsPerBackend));
  }
  struct Field {
    const char* name;
    uint32_t value;
  };
  const Field fields[] = {
      {"max_services", max_services},       {"max_backends", max_backends},
      {"max_tables", max_tables},           {"ct_tcp_entries", ct_tcp_entries},
      {"ct_other_entries", ct_other_entries}, {"max_affinity", max_affinity},
      {"max_source_ranges", max_source_ranges}, {"max_endpoints", max_endpoints},
      {"max_ipcache", max_ipcache},         {"max_policy_entries", max_policy_entries},
      {"snat_entries", snat_entries},       {"snat_port_min", snat_port_min},
      {"timeouts.tcp_established_s", timeouts.tcp_established_s},
      {"timeouts.tcp_syn_s", timeouts.tcp_syn_s},
      {"timeouts.tcp_close_s", timeouts.tcp_close_s},
      {"timeouts.non_tcp_s", timeouts.non_tcp_s},
  };
  for (const Field& f : fields) {
    if (f.value == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("datapath config: ", f.name, " must be greater than 0"));
    }
  }
  if (snat_port_max > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("datapath config: snat_port_max ", snat_port_max, " is above 65535"));
  }
  if (snat_port_max < snat_port_min) {
    return absl::InvalidArgumentError(absl::StrCat("datapath config: snat_port_max ",
                                                   snat_port_max, " is below snat_port_min ",
                                                   snat_port_min));
  }
  return absl::OkStatus();
}

}  // namespace dpv2
