// A Backend that hands every call to another one, for test and bench
// wrappers that watch or time a few calls (override those) and leave the
// rest to the backend they wrap.
//
//   class Timed : public testing::ForwardingBackend {
//     absl::Status Apply(const ChangeBatch& b) override { /* time */ return inner().Apply(b); }
//   };
#ifndef DPV2_TESTS_UNIT_AGENT_FORWARDING_BACKEND_H_
#define DPV2_TESTS_UNIT_AGENT_FORWARDING_BACKEND_H_

#include <memory>
#include <utility>
#include <vector>

#include "dpv2/backend.h"

namespace dpv2::agent::testing {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  absl::string_view Name() const override { return inner_->Name(); }
  absl::Status Apply(const ChangeBatch& batch) override { return inner_->Apply(batch); }
  absl::StatusOr<ChangeBatch> DumpState() override { return inner_->DumpState(); }
  absl::StatusOr<PacketOutcome> RunPacket(const PacketInput& input) override {
    return inner_->RunPacket(input);
  }
  absl::StatusOr<Counters> ReadCounters() override { return inner_->ReadCounters(); }
  absl::StatusOr<std::vector<FlowEvent>> DrainEvents(size_t max_events) override {
    return inner_->DrainEvents(max_events);
  }
  absl::StatusOr<std::vector<ConntrackEntry>> DumpConntrack() override {
    return inner_->DumpConntrack();
  }
  absl::Status FlushConntrack() override { return inner_->FlushConntrack(); }
  absl::StatusOr<GcStats> CollectGarbage() override { return inner_->CollectGarbage(); }

 protected:
  Backend& inner() { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace dpv2::agent::testing

#endif  // DPV2_TESTS_UNIT_AGENT_FORWARDING_BACKEND_H_
