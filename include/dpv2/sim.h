// dpv2 sim backend: the datapath in process, over Ethernet frames held in
// memory. It runs the same core pipeline as the DPDK backend (and the one the
// BPF programs reimplement), needs no privileges, and lets a test control the
// clock, which is how conntrack and affinity timeouts are exercised.
//
//   uint64_t now = 0;
//   auto sim = dpv2::MakeSimBackend({.clock = [&now] { return now; }});
//   absl::StatusOr<dpv2::PacketOutcome> out = (*sim)->RunPacket(input);
#ifndef DPV2_SIM_H_
#define DPV2_SIM_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "dpv2/backend.h"
#include "dpv2/datapath_config.h"

namespace dpv2 {

struct SimOptions {
  DatapathConfig config;
  // Monotonic nanoseconds, read once per packet and per garbage collection.
  // Empty: std::chrono::steady_clock.
  std::function<uint64_t()> clock;
  // Events beyond this many undrained records are lost (and counted as
  // DPV2_CNT_EVENTS_LOST), like a full ring buffer.
  size_t event_queue_capacity = 65536;
  // Seeds random backend selection (DPV2_LB_F_RANDOM), for repeatable runs.
  uint64_t random_seed = 1;
};

// Fails when options.config does not validate.
absl::StatusOr<std::unique_ptr<Backend>> MakeSimBackend(const SimOptions& options = {});

}  // namespace dpv2

#endif  // DPV2_SIM_H_
