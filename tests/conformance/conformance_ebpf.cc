// The conformance suite against the eBPF backend: every fixture runs through
// the real BPF programs with BPF_PROG_TEST_RUN (no interfaces needed). Time
// advances by ageing the timestamps stored in the conntrack and affinity
// maps, since the kernel's clock cannot be moved. Needs root (CAP_BPF).
#include <memory>

#include "absl/strings/str_cat.h"
#include "backends/ebpf/ebpf_backend.h"
#include "conformance.h"
#include "dpv2/ebpf.h"

namespace dpv2::conformance {
namespace {

class EbpfHarness : public ConformanceHarness {
 public:
  std::string Name() const override { return "ebpf"; }

  absl::Status Prepare() override {
    // Loading the programs once tells whether this process may use BPF.
    absl::StatusOr<std::unique_ptr<Backend>> probe =
        MakeEbpfBackend({.config = {.max_services = 16, .max_backends = 16, .max_tables = 16}});
    if (absl::IsPermissionDenied(probe.status())) {
      return absl::UnavailableError(absl::StrCat(
          "conformance_ebpf needs root or CAP_BPF + CAP_NET_ADMIN to load BPF programs: ",
          probe.status().message()));
    }
    return probe.status();
  }

  absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) override {
    return MakeEbpfBackend({.config = config});
  }

  absl::Status AdvanceTime(Backend& backend, uint64_t ns) override {
    auto* ebpf = dynamic_cast<ebpf::EbpfBackend*>(&backend);
    if (ebpf == nullptr) {
      return absl::InvalidArgumentError("ebpf harness: backend not made by this harness");
    }
    return ebpf->AgeState(ns);
  }
};

}  // namespace
}  // namespace dpv2::conformance

int main(int argc, char** argv) {
  return dpv2::conformance::RunConformanceMain(
      argc, argv, std::make_unique<dpv2::conformance::EbpfHarness>());
}
