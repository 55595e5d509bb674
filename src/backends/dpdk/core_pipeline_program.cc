// The core pipeline as a DPDK DatapathProgram, and the public factory that
// runs it.
#include <algorithm>
#include <memory>

#include "backends/dpdk/datapath_program.h"
#include "backends/dpdk/dpdk_backend.h"
#include "core/datapath/datapath_tables.h"
#include "core/datapath/pipeline.h"
#include "core/datapath/steering.h"
#include "core/status_macros.h"
#include "dpv2/dpdk.h"

namespace dpv2 {
namespace dpdk {
namespace {

class CoreLcoreDatapath : public LcoreDatapath {
 public:
  CoreLcoreDatapath(const DatapathTables* copies, const DatapathConfig& config,
                    size_t conntrack_reserve, EventSink* events, uint64_t seed, uint32_t workers)
      : copies_(copies), state_(config, events, seed) {
    state_.steering_instances = workers;
    // Growing a table rehashes all of it: a pause an lcore should not take
    // while the first connections arrive (DpdkOptions::conntrack_reserve).
    state_.conntrack.Reserve(std::min<size_t>(
        conntrack_reserve, size_t{config.ct_tcp_entries} + config.ct_other_entries));
  }

  FrameResult Process(int copy, Entry entry, uint32_t ifindex, absl::Span<uint8_t> frame,
                      uint64_t now_ns, std::vector<dpv2_event>* collected) override {
    return ProcessFrame(copies_[copy], state_, entry, ifindex, frame, now_ns, collected);
  }
  void ProcessBurst(int copy, absl::Span<const BurstFrame> frames, uint64_t now_ns,
                    FrameResult* results) override {
    dpv2::ProcessBurst(copies_[copy], state_, frames, now_ns, results);
  }
  void AddCounters(Counters* total) const override {
    for (size_t i = 0; i < state_.counters.size(); ++i) {
      total->counters[i] += state_.counters[i];
    }
    for (size_t i = 0; i < state_.drops.size(); ++i) {
      total->drops[i] += state_.drops[i];
    }
  }
  void DumpConntrack(std::vector<ConntrackEntry>* out) const override {
    std::vector<ConntrackEntry> entries = state_.conntrack.Dump();
    out->insert(out->end(), entries.begin(), entries.end());
  }
  void FlushConntrack() override {
    state_.FlushConntrack();
    state_.affinity.Flush();
  }
  GcStats CollectGarbage(uint64_t now_ns) override { return state_.CollectGarbage(now_ns); }

 private:
  const DatapathTables* copies_;  // [2], owned by the program
  DatapathState state_;
};

class CorePipelineProgram : public DatapathProgram {
 public:
  CorePipelineProgram(const DatapathConfig& config, size_t conntrack_reserve)
      : config_(config),
        conntrack_reserve_(conntrack_reserve),
        copies_{DatapathTables(config), DatapathTables(config)} {}

  absl::Status Apply(int copy, const ChangeBatch& batch) override {
    return copies_[copy].Apply(batch);
  }
  absl::Status Resync(int to, int from) override {
    copies_[to] = copies_[from];
    return absl::OkStatus();
  }
  absl::StatusOr<ChangeBatch> Dump(int copy) const override { return copies_[copy].Dump(); }
  bool SteeringHash(int copy, const ParseResult& parsed, uint32_t* hash) const override {
    return FlowSteeringHash(copies_[copy], parsed, hash);
  }
  std::unique_ptr<LcoreDatapath> MakeLcore(EventSink* events, uint64_t random_seed,
                                           uint32_t workers) override {
    return std::make_unique<CoreLcoreDatapath>(copies_, config_, conntrack_reserve_, events,
                                               random_seed, workers);
  }

 private:
  DatapathConfig config_;
  size_t conntrack_reserve_;
  DatapathTables copies_[2];
};

}  // namespace

absl::StatusOr<std::unique_ptr<DatapathProgram>> MakeCorePipelineProgram(
    const DatapathConfig& config, size_t conntrack_reserve) {
  DPV2_RETURN_IF_ERROR(config.Validate());
  return std::make_unique<CorePipelineProgram>(config, conntrack_reserve);
}

absl::StatusOr<std::unique_ptr<DpdkBackend>> MakeCorePipelineDpdkBackend(
    const DpdkOptions& options) {
  DPV2_RETURN_IF_ERROR(options.Validate());
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<DatapathProgram> program,
                        MakeCorePipelineProgram(options.config, options.conntrack_reserve));
  return DpdkBackend::Create(options, std::move(program));
}

}  // namespace dpdk

absl::StatusOr<std::unique_ptr<Backend>> MakeDpdkBackend(const DpdkOptions& options) {
  DPV2_ASSIGN_OR_RETURN(std::unique_ptr<dpdk::DpdkBackend> backend,
                        dpdk::MakeCorePipelineDpdkBackend(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace dpv2
