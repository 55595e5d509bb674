// The eBPF datapath at PERF.md P9 scale: the 1,048,576-entry service-backend
// configuration (65,536 ClusterIPs x 16 backends, map sizes from the
// DatapathConfig) loads, applies in one batch and serves. Needs root.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

#include "../../bench/ebpf/service_fleet.h"
#include "absl/strings/match.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

using bench::ServiceFleet;

// A SYN from the fleet's client pod to frontend `service`.
PacketOutcome RunSyn(Backend& b, uint32_t service) {
  const std::vector<uint8_t> syn = PacketBuilder()
                                       .IPv4("10.0.1.5", ServiceFleet::Frontend(service).ToString())
                                       .Tcp(40000, 80, kTcpSyn)
                                       .Build();
  absl::StatusOr<PacketOutcome> out =
      b.RunPacket({.entry = Entry::kFromPod, .ifindex = bench::kFleetClientIfindex, .frame = syn});
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  return *std::move(out);
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST_CASE("the 1,048,576-entry service-backend configuration loads, applies and serves its last "
          "service") {
  const ServiceFleet fleet = ServiceFleet::Make(65536, 16);
  REQUIRE(fleet.entries() == 1048576);
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({.config = fleet.Config()});
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  const double load_s = SecondsSince(start);
  const ChangeBatch batch = fleet.Batch();
  start = std::chrono::steady_clock::now();
  absl::Status applied = (*b)->Apply(batch);
  INFO(applied.ToString());
  REQUIRE(applied.ok());
  std::printf("1,048,576 entries: load %.2f s, apply %.2f s (%zu operations)\n", load_s,
              SecondsSince(start), batch.size());
  const PacketOutcome out = RunSyn(**b, 65535);
  REQUIRE(out.verdict == Verdict::kPass);  // the backends are remote
  const IpAddr dst = ParsePacket(out.outputs[0].frame).pkt.dst;
  bool among_its_own = false;
  for (uint32_t k = 0; k < 16; ++k) {
    among_its_own |= dst == fleet.BackendAddr(65535 * 16 + 1 + k);
  }
  CHECK(among_its_own);
}

TEST_CASE("a batch larger than a map's configured size is refused whole, naming the table") {
  const ServiceFleet fleet = ServiceFleet::Make(64, 16);
  DatapathConfig config = fleet.Config();
  config.max_backends = 64 * 16 - 1;
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({.config = config});
  REQUIRE(b.ok());
  absl::Status s = (*b)->Apply(fleet.Batch());
  CHECK(!s.ok());
  CHECK(absl::StrContains(s.message(), "backend"));
  // Nothing of the batch is visible, not even the client pod's endpoint.
  CHECK(RunSyn(**b, 0).drop_reason == DPV2_DROP_SPOOFED_SOURCE);
}

TEST_CASE("the default map sizes are at least Cilium's and load") {
  const DatapathConfig defaults;
  CHECK(defaults.max_services >= 65536);
  CHECK(defaults.max_backends >= 65536);
  CHECK(defaults.ct_tcp_entries >= 524288);
  CHECK(defaults.ct_other_entries >= 262144);
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({});
  INFO(b.status().ToString());
  CHECK(b.ok());
}

}  // namespace
}  // namespace dpv2
