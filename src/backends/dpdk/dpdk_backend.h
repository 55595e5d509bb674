// The DPDK Backend: ports, worker lcores and the control plane around a
// DatapathProgram (the core pipeline).
//
// Public users reach it through MakeDpdkBackend (include/dpv2/dpdk.h). This
// header adds what tests and the appliance need beyond the Backend port: a
// clock offset (the conformance suite's AdvanceTime), running another
// program, and port statistics.
//
//   DPV2_ASSIGN_OR_RETURN(std::unique_ptr<DpdkBackend> b, MakeCorePipelineDpdkBackend(opts));
//   b->AdvanceClock(absl::Seconds(61));
//   DPV2_ASSIGN_OR_RETURN(PacketOutcome out, b->RunPacket(input));
#ifndef DPV2_BACKENDS_DPDK_DPDK_BACKEND_H_
#define DPV2_BACKENDS_DPDK_DPDK_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backends/dpdk/epoch.h"
#include "dpv2/backend.h"
#include "dpv2/dpdk.h"

struct rte_mempool;
struct rte_ring;

namespace dpv2::dpdk {

class DatapathProgram;
struct Worker;
struct PortRuntime;
struct WorkerShared;
struct ControlCommand;

// Totals of the DPDK ports themselves (rte_eth_stats), per device.
struct PortStats {
  std::string device;
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  uint64_t rx_missed = 0;
  uint64_t rx_errors = 0;
  uint64_t tx_errors = 0;
};

// What one worker lcore did: frames it ran through the datapath (its own and
// those other workers handed it) and its busy time: the TSC time of the poll
// loop's iterations that found frames, each timed whole (quiescent point,
// clock read, mailbox, rx bursts, processing, tx, drain).
struct WorkerStats {
  unsigned lcore = 0;
  uint64_t packets = 0;
  // Flow steering: frames received here and handed to the lcore owning
  // their connection, and those dropped because its inbox was full.
  uint64_t handed_off = 0;
  uint64_t handoff_drops = 0;
  uint64_t busy_ns = 0;
  // CPU time the worker thread got from the kernel (busy and idle polls);
  // on a shared machine it is less than the wall time.
  uint64_t cpu_ns = 0;
};

class DpdkBackend : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<DpdkBackend>> Create(
      const DpdkOptions& options, std::unique_ptr<DatapathProgram> program);
  ~DpdkBackend() override;

  absl::string_view Name() const override { return "dpdk"; }
  absl::Status Apply(const ChangeBatch& batch) override;
  absl::StatusOr<ChangeBatch> DumpState() override;  // state_dump.cc
  absl::StatusOr<PacketOutcome> RunPacket(const PacketInput& input) override;
  absl::StatusOr<Counters> ReadCounters() override;
  absl::StatusOr<std::vector<FlowEvent>> DrainEvents(size_t max_events) override;
  absl::StatusOr<std::vector<ConntrackEntry>> DumpConntrack() override;
  absl::Status FlushConntrack() override;
  absl::StatusOr<GcStats> CollectGarbage() override;

  // SetDpdkNeighborAnswers (include/dpv2/dpdk.h).
  absl::Status SetNeighborAnswers(const std::vector<IpAddr>& addresses);

  // Moves the datapath's clock forward (timeouts, affinity) for every worker.
  void AdvanceClock(absl::Duration d);
  uint64_t NowNs() const;
  size_t worker_count() const { return workers_.size(); }
  std::vector<PortStats> ReadPortStats() const;
  std::vector<WorkerStats> ReadWorkerStats() const;

 private:
  DpdkBackend() = default;
  absl::Status Start();
  void Stop();
  // Runs `cmd` on every worker lcore, one after the other, and waits.
  absl::Status RunOnWorkers(ControlCommand& cmd);

  DpdkOptions options_;
  std::unique_ptr<DatapathProgram> program_;
  std::unique_ptr<WorkerShared> shared_;
  bool tables_broken_ = false;  // a publication did not complete: refuse Apply
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<PortRuntime>> ports_;
  rte_mempool* inject_pool_ = nullptr;
  std::vector<rte_ring*> inject_rx_;
  std::vector<rte_ring*> inject_tx_;
  int inject_port_ = -1;
  bool eal_acquired_ = false;
  bool started_ = false;
  std::mutex control_mu_;  // one control operation at a time
};

// A DpdkBackend running the core pipeline (what MakeDpdkBackend returns, with
// its concrete type for AdvanceClock and the statistics).
absl::StatusOr<std::unique_ptr<DpdkBackend>> MakeCorePipelineDpdkBackend(
    const DpdkOptions& options);

}  // namespace dpv2::dpdk

#endif  // DPV2_BACKENDS_DPDK_DPDK_BACKEND_H_
