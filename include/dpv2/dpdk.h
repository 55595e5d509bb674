// dpv2 DPDK backend: the datapath on poll-mode drivers, for bare-metal boxes.
//
// MakeDpdkBackend initialises the DPDK EAL with the caller's arguments
// (passed through verbatim: dpv2 never assumes hugepages or PCI devices),
// configures the named ports with one RX/TX queue pair per worker lcore (RSS
// spreads flows where the PMD supports it) and starts one poll loop per worker
// lcore. Each worker owns its conntrack, affinity, counters and event ring;
// Apply publishes a new version of the tables (two copies, epoch swap) so a
// worker never sees a half-applied batch. RunPacket injects one frame through
// a ring-based port into a worker's real burst path.
//
//   dpv2::DpdkOptions opts{.eal_args = {"-l", "0-1", "--no-huge", "--no-pci",
//                                       "--vdev", "net_ring0"}, .ports = {{.device = "net_ring0"}}};
//   absl::StatusOr<std::unique_ptr<dpv2::Backend>> b = dpv2::MakeDpdkBackend(opts);
#ifndef DPV2_DPDK_H_
#define DPV2_DPDK_H_

#include "dpv2_build_config.h"

#if DPV2_HAVE_DPDK

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dpv2/backend.h"
#include "dpv2/datapath_config.h"
#include "dpv2/net.h"

namespace dpv2 {

using MacAddr = std::array<uint8_t, 6>;

// A static neighbour: where frames the datapath PASSes towards `addr` go at
// layer 2. A box without ARP/ND of its own (the appliance) is given these.
struct DpdkNeighbor {
  IpAddr addr;
  MacAddr mac{};
};

struct DpdkPortOptions {
  // The EAL device name: "net_ring0", "net_af_packet0", "0000:3b:00.0".
  std::string device;
  // How frames received on this port enter the datapath.
  Entry entry = Entry::kFromNetwork;
  // The ifindex the datapath sees for this port's frames; a kRedirect to this
  // ifindex leaves by this port.
  uint32_t ifindex = 0;
  // The port kPass frames leave by; empty means this port (one-armed).
  std::string forward_to;
  // When set (non-zero), kPass frames are re-addressed at layer 2: source =
  // the output port's MAC, destination = the neighbour's MAC for the frame's
  // destination address, else this gateway MAC. Zero leaves MACs as the
  // datapath wrote them (what the conformance suite expects).
  MacAddr gateway_mac{};
};

struct DpdkOptions {
  DatapathConfig config;
  // rte_eal_init arguments without argv[0], e.g. {"-l", "0-1", "--no-huge",
  // "--no-pci", "-m", "256", "--file-prefix", "lb1", "--vdev", "net_ring0"}.
  // The EAL is initialised once per process; a second backend in the same
  // process must pass the same arguments (or none).
  std::vector<std::string> eal_args;
  std::vector<DpdkPortOptions> ports;
  // Worker lcores; empty means every EAL worker lcore. The main lcore runs
  // the control plane and never polls.
  std::vector<uint32_t> lcores;
  std::vector<DpdkNeighbor> neighbors;
  uint16_t burst_size = 32;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint32_t mbufs_per_port = 8191;
  // Buffered TX is flushed at least this often even when bursts are short.
  uint32_t drain_interval_us = 100;
  // Per-lcore event ring (a power of two); full means events_lost counts.
  uint32_t event_ring_size = 4096;
  // Conntrack entries (two per service connection) each worker has room for
  // from the start, at most config.ct_tcp_entries + ct_other_entries. Past
  // it the table doubles as it fills, which rehashes every entry: a pause of
  // tens of milliseconds at a few hundred thousand entries. A box that must
  // not pause reserves its peak (171-341 bytes a reserved entry: 128-byte
  // slots, at most 3/4 full, a power of two of them).
  uint32_t conntrack_reserve = 32768;
  // An idle worker (empty polls) sleeps this long between polls; 0 is pure
  // polling (a dedicated box). Shared machines and tests want a few tens.
  uint32_t idle_sleep_us = 0;

  absl::Status Validate() const;
};

absl::StatusOr<std::unique_ptr<Backend>> MakeDpdkBackend(const DpdkOptions& options);

// The addresses a DPDK backend answers ARP requests and IPv6 neighbour
// solicitations for, on every port, with the port's MAC (an appliance's VIPs:
// routers and hosts then find them without static entries). Replaces the
// previous set (initially none); each worker swaps it at its quiescent point.
// InvalidArgument when `backend` is not a DPDK backend.
absl::Status SetDpdkNeighborAnswers(Backend& backend, const std::vector<IpAddr>& addresses);

// Releases the EAL (rte_eal_cleanup) once every DPDK backend of the process
// is destroyed. The EAL cannot be initialised again afterwards.
absl::Status ShutdownDpdk();

}  // namespace dpv2

#endif  // DPV2_HAVE_DPDK
#endif  // DPV2_DPDK_H_
