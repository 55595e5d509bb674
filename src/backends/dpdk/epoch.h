// Quiescent-state epochs: how the control plane learns that no worker lcore
// still reads the table copy it is about to change.
//
// Each worker calls Quiesce() at the top of its poll loop, where it holds no
// reference into the tables. After publishing a new copy the control plane
// calls Synchronize(): once every worker has quiesced after the publication,
// none can see the old copy any more and it may be written. This is RCU's
// grace period, without a library: one cache line per reader, no locks.
//
//   epoch.Quiesce(worker);                  // worker, top of the loop
//   live.store(1); epoch.Synchronize();     // control plane, then write copy 0
#ifndef DPV2_BACKENDS_DPDK_EPOCH_H_
#define DPV2_BACKENDS_DPDK_EPOCH_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dpv2::dpdk {

class QuiescentEpoch {
 public:
  // An offline reader never blocks Synchronize (a worker that has stopped).
  static constexpr uint64_t kOffline = ~uint64_t{0};

  explicit QuiescentEpoch(size_t readers)
      : readers_(readers), seen_(std::make_unique<Slot[]>(readers)) {
    for (size_t i = 0; i < readers_; ++i) {
      seen_[i].epoch.store(kOffline, std::memory_order_relaxed);
    }
  }

  size_t readers() const { return readers_; }

  // Reader `reader` holds no reference to published data right now.
  void Quiesce(size_t reader) {
    seen_[reader].epoch.store(epoch_.load(std::memory_order_acquire), std::memory_order_release);
  }
  void SetOnline(size_t reader) { Quiesce(reader); }
  void SetOffline(size_t reader) {
    seen_[reader].epoch.store(kOffline, std::memory_order_release);
  }

  // Waits until every online reader has quiesced after this call began.
  absl::Status Synchronize(absl::Duration timeout) {
    const uint64_t target = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
    const absl::Time deadline = absl::Now() + timeout;
    for (size_t i = 0; i < readers_; ++i) {
      while (true) {
        const uint64_t seen = seen_[i].epoch.load(std::memory_order_acquire);
        if (seen == kOffline || seen >= target) {
          break;
        }
        if (absl::Now() > deadline) {
          return absl::DeadlineExceededError(absl::StrCat(
              "dpdk epoch: worker ", i, " did not pass a quiescent point within ",
              absl::FormatDuration(timeout)));
        }
        std::this_thread::yield();
      }
    }
    return absl::OkStatus();
  }

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> epoch{kOffline};
  };

  alignas(64) std::atomic<uint64_t> epoch_{0};
  size_t readers_;
  std::unique_ptr<Slot[]> seen_;
};

}  // namespace dpv2::dpdk

#endif  // DPV2_BACKENDS_DPDK_EPOCH_H_
