// The sim backend: the core pipeline behind the Backend interface, with a
// bounded event queue and a caller-supplied clock. One mutex serialises
// everything: the sim is for tests and what-if analysis, not for speed.
#include <chrono>
#include <deque>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/datapath/datapath_tables.h"
#include "core/datapath/pipeline.h"
#include "core/status_macros.h"
#include "dpv2/sim.h"

namespace dpv2 {
namespace {

class BoundedEventQueue : public EventSink {
 public:
  explicit BoundedEventQueue(size_t capacity) : capacity_(capacity) {}

  bool Emit(const dpv2_event& event) override {
    if (queue_.size() >= capacity_) {
      return false;
    }
    queue_.push_back(event);
    return true;
  }

  std::vector<FlowEvent> Drain(size_t max_events) {
    std::vector<FlowEvent> out;
    while (!queue_.empty() && out.size() < max_events) {
      out.push_back(FlowEvent::FromAbi(queue_.front()));
      queue_.pop_front();
    }
    return out;
  }

 private:
  size_t capacity_;
  std::deque<dpv2_event> queue_;
};

class SimBackend : public Backend {
 public:
  SimBackend(const SimOptions& options, std::function<uint64_t()> clock)
      : clock_(std::move(clock)),
        tables_(options.config),
        events_(options.event_queue_capacity),
        state_(options.config, &events_, options.random_seed) {}

  absl::string_view Name() const override { return "sim"; }

  absl::Status Apply(const ChangeBatch& batch) override {
    absl::MutexLock lock(&mu_);
    return tables_.Apply(batch);
  }

  absl::StatusOr<ChangeBatch> DumpState() override {
    absl::MutexLock lock(&mu_);
    return tables_.Dump();
  }

  absl::StatusOr<PacketOutcome> RunPacket(const PacketInput& input) override {
    DPV2_RETURN_IF_ERROR(CheckPacketInput(input, "sim"));
    absl::MutexLock lock(&mu_);
    return Process(tables_, state_, input, clock_());
  }

  absl::StatusOr<Counters> ReadCounters() override {
    absl::MutexLock lock(&mu_);
    Counters c;
    c.counters = state_.counters;
    c.drops = state_.drops;
    return c;
  }

  absl::StatusOr<std::vector<FlowEvent>> DrainEvents(size_t max_events) override {
    absl::MutexLock lock(&mu_);
    return events_.Drain(max_events);
  }

  absl::StatusOr<std::vector<ConntrackEntry>> DumpConntrack() override {
    absl::MutexLock lock(&mu_);
    return state_.conntrack.Dump();
  }

  absl::Status FlushConntrack() override {
    absl::MutexLock lock(&mu_);
    state_.FlushConntrack();
    return absl::OkStatus();
  }

  absl::StatusOr<GcStats> CollectGarbage() override {
    absl::MutexLock lock(&mu_);
    return state_.CollectGarbage(clock_());
  }

 private:
  absl::Mutex mu_;
  std::function<uint64_t()> clock_;
  DatapathTables tables_ ABSL_GUARDED_BY(mu_);
  BoundedEventQueue events_ ABSL_GUARDED_BY(mu_);
  DatapathState state_ ABSL_GUARDED_BY(mu_);
};

uint64_t SteadyClockNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> MakeSimBackend(const SimOptions& options) {
  DPV2_RETURN_IF_ERROR(options.config.Validate());
  std::function<uint64_t()> clock = options.clock ? options.clock : SteadyClockNanos;
  return std::unique_ptr<Backend>(std::make_unique<SimBackend>(options, std::move(clock)));
}

}  // namespace dpv2
