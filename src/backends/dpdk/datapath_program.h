// The per-packet logic a DPDK worker runs, seen from the I/O side.
//
// The DPDK folder owns I/O, memory and threading; what happens to a frame is
// the core pipeline's business (src/core/datapath ProcessFrame, the code the
// sim backend runs). This seam keeps the two apart: the backend holds two
// copies of the tables (DatapathProgram) and one LcoreDatapath per worker
// (its own conntrack, affinity and counters) and never looks inside either,
// which also lets the I/O plumbing be tested with a program of its own.
//
//   DPV2_ASSIGN_OR_RETURN(auto program, MakeCorePipelineProgram(config));
//   DPV2_RETURN_IF_ERROR(program->Apply(/*copy=*/1, batch));
//   FrameResult r = program->MakeLcore(&sink, seed, 1)->Process(1, Entry::kFromNetwork, 0, span, now, nullptr);
#ifndef DPV2_BACKENDS_DPDK_DATAPATH_PROGRAM_H_
#define DPV2_BACKENDS_DPDK_DATAPATH_PROGRAM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/datapath/pipeline.h"
#include "dpv2/backend.h"
#include "dpv2/batch.h"
#include "dpv2/datapath_config.h"

namespace dpv2::dpdk {

// One worker's datapath state. Called only from its own lcore: Process on
// the fast path, the rest when the control plane asks through the mailbox.
class LcoreDatapath {
 public:
  virtual ~LcoreDatapath() = default;
  // Runs one frame in place against table copy `copy` (length unchanged).
  // `collected`, when not null, also receives the frame's event records.
  virtual FrameResult Process(int copy, Entry entry, uint32_t ifindex, absl::Span<uint8_t> frame,
                              uint64_t now_ns, std::vector<dpv2_event>* collected) = 0;
  // Up to kMaxBurst frames in place, with the effect of one Process call
  // each (results[i] for frames[i]); the core pipeline overlaps their table
  // lookups. The results' reply bytes stay valid until the next call.
  virtual void ProcessBurst(int copy, absl::Span<const BurstFrame> frames, uint64_t now_ns,
                            FrameResult* results) {
    for (size_t i = 0; i < frames.size(); ++i) {
      results[i] = Process(copy, frames[i].entry, frames[i].ifindex, frames[i].frame, now_ns,
                           nullptr);
    }
  }
  // Adds this lcore's counters and drops to `total`.
  virtual void AddCounters(Counters* total) const = 0;
  virtual void DumpConntrack(std::vector<ConntrackEntry>* out) const = 0;
  virtual void FlushConntrack() = 0;
  virtual GcStats CollectGarbage(uint64_t now_ns) = 0;
};

// The tables, twice: copy 0 and copy 1. Workers read one copy while the
// control plane writes the other.
class DatapathProgram {
 public:
  virtual ~DatapathProgram() = default;
  // All or nothing: on error copy `copy` is unchanged.
  virtual absl::Status Apply(int copy, const ChangeBatch& batch) = 0;
  // Makes copy `to` equal to copy `from` (recovery should the second
  // application of a batch fail after the first succeeded).
  virtual absl::Status Resync(int to, int from) = 0;
  // Every entry of copy `copy` as a batch of upserts (DumpState); a program
  // that keeps no tables of its own has none to report.
  virtual absl::StatusOr<ChangeBatch> Dump(int /*copy*/) const {
    return absl::UnimplementedError("dpdk datapath program: no table dump");
  }
  // Flow steering across worker lcores (core/datapath/steering.h): the hash
  // whose value modulo the number of workers names the lcore that owns the
  // frame's connection; false when any lcore may run the frame. `parsed` is
  // ParsePacket of the frame (the caller keeps it for ProcessBurst).
  virtual bool SteeringHash(int /*copy*/, const ParseResult& /*parsed*/,
                            uint32_t* /*hash*/) const {
    return false;
  }
  // `events` receives the lcore's event records; it outlives the lcore.
  // `workers` is how many lcores flow steering spreads connections over
  // (a source port the lcore remaps must stay steered to it).
  virtual std::unique_ptr<LcoreDatapath> MakeLcore(EventSink* events, uint64_t random_seed,
                                                   uint32_t workers) = 0;
};

// The core pipeline (src/core/datapath): what MakeDpdkBackend runs. Each
// lcore's conntrack is reserved for `conntrack_reserve` entries (capped at
// the configured capacity; DpdkOptions::conntrack_reserve).
absl::StatusOr<std::unique_ptr<DatapathProgram>> MakeCorePipelineProgram(
    const DatapathConfig& config, size_t conntrack_reserve = 32768);

}  // namespace dpv2::dpdk

#endif  // DPV2_BACKENDS_DPDK_DATAPATH_PROGRAM_H_
