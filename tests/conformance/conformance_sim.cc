// The conformance suite against the sim backend, with a fake clock.
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "conformance.h"
#include "dpv2/sim.h"

namespace dpv2::conformance {
namespace {

class SimHarness : public ConformanceHarness {
 public:
  std::string Name() const override { return "sim"; }

  absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) override {
    // Each backend gets its own clock, starting at an arbitrary non-zero time.
    auto clock = std::make_shared<uint64_t>(uint64_t{1'000'000'000'000});
    absl::StatusOr<std::unique_ptr<Backend>> backend =
        MakeSimBackend({.config = config, .clock = [clock] { return *clock; }});
    if (backend.ok()) {
      clocks_[backend->get()] = clock;
    }
    return backend;
  }

  absl::Status AdvanceTime(Backend& backend, uint64_t ns) override {
    auto it = clocks_.find(&backend);
    if (it == clocks_.end()) {
      return absl::NotFoundError("sim harness: backend not made by this harness");
    }
    *it->second += ns;
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_map<const Backend*, std::shared_ptr<uint64_t>> clocks_;
};

}  // namespace
}  // namespace dpv2::conformance

int main(int argc, char** argv) {
  return dpv2::conformance::RunConformanceMain(
      argc, argv, std::make_unique<dpv2::conformance::SimHarness>());
}
