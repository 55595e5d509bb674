// Proves that the suite can fail: the sim behind a harness whose clock never
// moves must fail the timeout cases (meson expects this program to fail).
#include <memory>

#include "conformance.h"
#include "dpv2/sim.h"

namespace dpv2::conformance {
namespace {

class FrozenClockHarness : public ConformanceHarness {
 public:
  std::string Name() const override { return "sim with a frozen clock"; }
  absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) override {
    return MakeSimBackend({.config = config, .clock = [] { return uint64_t{1'000'000'000}; }});
  }
  absl::Status AdvanceTime(Backend&, uint64_t) override { return absl::OkStatus(); }
};

}  // namespace
}  // namespace dpv2::conformance

int main(int argc, char** argv) {
  return dpv2::conformance::RunConformanceMain(
      argc, argv, std::make_unique<dpv2::conformance::FrozenClockHarness>());
}
