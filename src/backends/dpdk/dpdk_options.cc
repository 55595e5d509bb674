// DpdkOptions validation and the public factory.
#include "backends/dpdk/rte.h"

#include "absl/strings/str_cat.h"
#include "backends/dpdk/eal.h"
#include "core/status_macros.h"
#include "dpv2/dpdk.h"

namespace dpv2 {

absl::Status DpdkOptions::Validate() const {
  DPV2_RETURN_IF_ERROR(config.Validate());
  if (ports.empty()) {
    return absl::InvalidArgumentError("dpdk options: ports: at least one port is needed");
  }
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].device.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("dpdk options: ports[", i, "]: device is empty"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (ports[j].device == ports[i].device) {
        return absl::InvalidArgumentError(absl::StrCat("dpdk options: ports[", i, "]: device \"",
                                                       ports[i].device, "\" is listed twice"));
      }
    }
  }
  if (burst_size == 0 || burst_size > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("dpdk options: burst_size ", burst_size, " is outside 1..64"));
  }
  if (rx_descriptors == 0 || tx_descriptors == 0) {
    return absl::InvalidArgumentError("dpdk options: rx_descriptors and tx_descriptors must be > 0");
  }
  if (mbufs_per_port < 2u * rx_descriptors) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dpdk options: mbufs_per_port ", mbufs_per_port, " is less than twice rx_descriptors (",
        rx_descriptors, ")"));
  }
  if (const uint64_t capacity = uint64_t{config.ct_tcp_entries} + config.ct_other_entries;
      conntrack_reserve > capacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("dpdk options: conntrack_reserve ", conntrack_reserve,
                     " exceeds the conntrack capacity ", capacity,
                     " (config.ct_tcp_entries + config.ct_other_entries)"));
  }
  if (event_ring_size < 2 || (event_ring_size & (event_ring_size - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("dpdk options: event_ring_size ",
                                                   event_ring_size, " is not a power of two"));
  }
  if (drain_interval_us == 0) {
    return absl::InvalidArgumentError("dpdk options: drain_interval_us must be > 0");
  }
  return absl::OkStatus();
}

absl::Status ShutdownDpdk() { return dpdk::ShutdownEal(); }

}  // namespace dpv2
