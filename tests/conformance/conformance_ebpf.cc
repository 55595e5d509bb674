// The conformance suite against the eBPF backend: every fixture runs through
// the real BPF programs with BPF_PROG_TEST_RUN (no interfaces needed). Time
// advances by ageing the timestamps stored in the conntrack and affinity
// maps, since the kernel's clock cannot be moved. Needs root (CAP_BPF).
//
// With --xdp (meson test conformance_ebpf_xdp) the backend also loads the
// XDP program: frames from the network run through its test-run twin first
// and through tc only when XDP hands them on, as on a node with XDP on its
// external device. Every case must give sim's result either way.
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/ebpf/ebpf_backend.h"
#include "conformance.h"
#include "dpv2/ebpf.h"

namespace dpv2::conformance {
namespace {

class EbpfHarness : public ConformanceHarness {
 public:
  explicit EbpfHarness(bool xdp) : xdp_(xdp) {}
  std::string Name() const override { return xdp_ ? "ebpf-xdp" : "ebpf"; }

  absl::Status Prepare() override {
    // Loading the programs once tells whether this process may use BPF.
    absl::StatusOr<std::unique_ptr<Backend>> probe =
        MakeEbpfBackend({.config = {.max_services = 16, .max_backends = 16, .max_tables = 16},
                         .xdp = xdp_});
    if (absl::IsPermissionDenied(probe.status())) {
      return absl::UnavailableError(absl::StrCat(
          "conformance_ebpf needs root or CAP_BPF + CAP_NET_ADMIN to load BPF programs: ",
          probe.status().message()));
    }
    return probe.status();
  }

  absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) override {
    return MakeEbpfBackend({.config = config, .xdp = xdp_});
  }

  absl::Status AdvanceTime(Backend& backend, uint64_t ns) override {
    auto* ebpf = dynamic_cast<ebpf::EbpfBackend*>(&backend);
    if (ebpf == nullptr) {
      return absl::InvalidArgumentError("ebpf harness: backend not made by this harness");
    }
    return ebpf->AgeState(ns);
  }

 private:
  bool xdp_;
};

}  // namespace
}  // namespace dpv2::conformance

int main(int argc, char** argv) {
  // --xdp is this program's; the rest goes to Catch.
  bool xdp = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--xdp") == 0) {
      xdp = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  return dpv2::conformance::RunConformanceMain(
      static_cast<int>(args.size()), args.data(),
      std::make_unique<dpv2::conformance::EbpfHarness>(xdp));
}
