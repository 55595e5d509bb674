// The conformance suite against the DPDK backend: every frame goes through a
// real worker lcore via the backend's ring-based injection port (rx burst,
// the core pipeline on mbuf data, buffered tx), on an EAL with --no-huge and
// --no-pci. Same fixtures and expected bytes as the sim.
#include <unistd.h>

#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "backends/dpdk/dpdk_backend.h"
#include "backends/dpdk/eal.h"
#include "backends/dpdk/rte.h"
#include "conformance.h"
#include "core/status_macros.h"
#include "dpv2/dpdk.h"

namespace dpv2::conformance {
namespace {

class DpdkHarness : public ConformanceHarness {
 public:
  std::string Name() const override { return "dpdk"; }

  absl::Status Prepare() override {
    // One EAL for the program: two lcores (control + one worker), no
    // hugepages, no PCI, no shared config, a prefix of its own.
    const std::vector<std::string> args = {
        "-l", "0-1", "--no-huge", "--no-pci", "-m", "512", "--no-shconf",
        "--file-prefix", absl::StrCat("dpv2-conf-", getpid()), "--log-level", "*:error"};
    if (absl::Status s = dpdk::AcquireEal(args); !s.ok()) {
      if (geteuid() != 0) {
        return absl::UnavailableError(absl::StrCat("dpdk conformance needs root here: ", s.message()));
      }
      return s;
    }
    eal_ = true;
    // The backend needs one port of its own besides its injection port: a
    // ring-based ethdev that nothing feeds, shared by every case's backend.
    rte_ring* rx = rte_ring_create("dpv2cf_rx", 256, SOCKET_ID_ANY, 0);
    rte_ring* tx = rte_ring_create("dpv2cf_tx", 256, SOCKET_ID_ANY, 0);
    if (rx == nullptr || tx == nullptr) {
      return absl::ResourceExhaustedError("dpdk conformance: rings for the idle port");
    }
    const int id = rte_eth_from_rings("dpv2cf", &rx, 1, &tx, 1, SOCKET_ID_ANY);
    if (id < 0) {
      return absl::InternalError("dpdk conformance: rte_eth_from_rings failed");
    }
    char name[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), name);
    port_ = name;
    return absl::OkStatus();
  }

  absl::Status Cleanup() override {
    clocks_.clear();
    if (!eal_) {
      return absl::OkStatus();
    }
    dpdk::ReleaseEal();
    return ShutdownDpdk();
  }

  absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) override {
    DpdkOptions options{
        .config = config,
        .ports = {{.device = port_}},
        .rx_descriptors = 256,
        .tx_descriptors = 256,
        .mbufs_per_port = 1023,
        .idle_sleep_us = 10,
    };
    DPV2_ASSIGN_OR_RETURN(std::unique_ptr<dpdk::DpdkBackend> backend,
                          dpdk::MakeCorePipelineDpdkBackend(options));
    clocks_[backend.get()] = backend.get();
    return std::unique_ptr<Backend>(std::move(backend));
  }

  absl::Status AdvanceTime(Backend& backend, uint64_t ns) override {
    auto it = clocks_.find(&backend);
    if (it == clocks_.end()) {
      return absl::NotFoundError("dpdk harness: backend not made by this harness");
    }
    it->second->AdvanceClock(absl::Nanoseconds(ns));
    return absl::OkStatus();
  }

 private:
  bool eal_ = false;
  std::string port_;
  // Backends are destroyed by the runner; a stale entry is never looked up
  // again because each case makes a fresh backend.
  absl::flat_hash_map<const Backend*, dpdk::DpdkBackend*> clocks_;
};

}  // namespace
}  // namespace dpv2::conformance

int main(int argc, char** argv) {
  return dpv2::conformance::RunConformanceMain(
      argc, argv, std::make_unique<dpv2::conformance::DpdkHarness>());
}
