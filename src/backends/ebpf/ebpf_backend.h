// EbpfBackend: the Backend over the BPF datapath (see include/dpv2/ebpf.h).
//
// This header is internal: it adds what tests and tools need beyond the
// Backend interface, such as aging the datapath's timestamps (the kernel's
// clock cannot be faked, so conntrack and affinity entries are moved back in
// time instead).
//
//   auto* ebpf = dynamic_cast<dpv2::ebpf::EbpfBackend*>(backend.get());
//   DPV2_RETURN_IF_ERROR(ebpf->AgeState(61'000'000'000));   // 61 s later
#ifndef DPV2_BACKENDS_EBPF_EBPF_BACKEND_H_
#define DPV2_BACKENDS_EBPF_EBPF_BACKEND_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "backends/ebpf/bpf_map.h"
#include "backends/ebpf/skeleton.h"
#include "backends/ebpf/table_class.h"
#include "core/datapath/datapath_tables.h"
#include "dpv2/backend.h"
#include "dpv2/ebpf.h"

struct bpf_map;
struct ring_buffer;

namespace dpv2::ebpf {

// A lookup table the datapath's view no longer has, kept in the map until no
// program can still be reading it (ebpf_backend.cc, "Retired tables").
struct RetiredTable {
  uint32_t id;
  uint32_t table_class;       // the class map it is in (table_class.h)
  uint64_t release_after_ns;  // CLOCK_MONOTONIC
};

// Everything a loaded datapath holds: the bytes of every map of its objects
// (programs' globals included) and the loader's own state. Two instances
// loaded with the same options have equal images; Reset must give back that
// image (tests and the conformance harness compare them).
struct DatapathImage {
  // Map name -> key bytes -> value bytes (per-CPU maps: every CPU's value).
  // The event ring is not a map one can read: its unread events count in
  // `loader`.
  std::map<std::string, std::map<std::string, std::string>> maps;
  // Unread events, retired tables, frames XDP served, the validation model's
  // entry counts.
  std::map<std::string, uint64_t> loader;
};

// Empty when the images are equal; else the first difference, naming the
// map and the key (hex), e.g. "dpv2_ct_tcp: key 0a00... only in got".
std::string DescribeImageDifference(const DatapathImage& want, const DatapathImage& got);

class EbpfBackend : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<EbpfBackend>> Create(const EbpfOptions& options);
  ~EbpfBackend() override;

  absl::string_view Name() const override { return "ebpf"; }
  absl::Status Apply(const ChangeBatch& batch) override;
  absl::StatusOr<ChangeBatch> DumpState() override;  // state_dump.cc
  absl::StatusOr<PacketOutcome> RunPacket(const PacketInput& input) override;
  absl::StatusOr<Counters> ReadCounters() override;
  absl::StatusOr<std::vector<FlowEvent>> DrainEvents(size_t max_events) override;
  absl::StatusOr<std::vector<ConntrackEntry>> DumpConntrack() override;
  absl::Status FlushConntrack() override;
  absl::StatusOr<GcStats> CollectGarbage() override;

  // Makes every stored conntrack, SNAT and affinity timestamp `ns` older, as
  // if the datapath clock had advanced by `ns`.
  absl::Status AgeState(uint64_t ns);
  // The datapath clock now (CLOCK_MONOTONIC + kEbpfClockOffsetNs).
  static uint64_t Now();
  // Program file descriptors, for attaching and benchmarks.
  int from_pod_fd() const;
  int from_network_fd() const;
  int from_pod_test_fd() const;
  int from_network_test_fd() const;
  // The XDP program and its test-run twin; -1 without options.xdp.
  int xdp_fd() const;
  int xdp_test_fd() const;
  // What the load chose for this kernel (dpv2::EbpfLoadReportOf).
  const EbpfLoadReport& load_report() const { return skel_->report(); }
  // RunPacket frames the XDP program served by itself (not handed to tc).
  uint64_t xdp_served() const { return xdp_served_; }
  // Lookup tables the class maps hold, retired ones (deleted, waiting out
  // their grace period) included: in all, and per size class.
  absl::StatusOr<size_t> LookupTablesInMap();
  absl::StatusOr<std::array<size_t, kTableClasses>> LookupTablesPerClass();
  // Attaches the from-pod program at tc ingress of `ifindex` (atomic replace).
  absl::Status AttachFromPod(uint32_t ifindex);

  // Returns the datapath to the state it had just after loading, without
  // loading again (the verifier takes most of a second per load): every hash
  // and LPM map emptied, every array (counters, scratch, globals) rewritten
  // with its content at load, events dropped, retired tables and the
  // validation model forgotten. Only for an unpinned instance with nothing
  // attached (FailedPrecondition otherwise): pinned maps are another
  // process's state too, and attached programs would see a half-empty
  // datapath. Used by tests that run many cases on one load.
  absl::Status Reset();
  // See DatapathImage. Reads every map entry by entry: for tests.
  absl::StatusOr<DatapathImage> Image();

 private:
  explicit EbpfBackend(const EbpfOptions& options);
  absl::Status Init();
  // Entries of each configuration map before a batch (the model's counts).
  struct EntryCounts {
    size_t services, backends, tables, source_ranges, endpoints, ipcache, policy;
  };
  // `deleted_classes[i]`: the class of batch.tables_delete[i] (the model
  // forgets a deleted table's size).
  absl::Status ApplyToMaps(const ChangeBatch& batch, const EntryCounts& before,
                           const std::vector<uint32_t>& deleted_classes);
  // Deletes the retired tables whose grace period is over; with `wait`,
  // first sleeps until every retired table's is.
  absl::Status ReleaseRetiredTables(bool wait);
  // Every entry of the configuration maps (inner lookup tables included),
  // sorted; state_dump.cc.
  absl::StatusOr<ChangeBatch> ReadMaps() const;
  absl::Status RebuildModelFromMaps();
  // f(map, its BpfMap) for every map of the loaded objects, once each (the
  // XDP object shares the tc object's state maps).
  absl::Status ForEachMap(const std::function<absl::Status(bpf_map*, const BpfMap&)>& f) const;
  // Every entry of one map, read one by one (state_dump.cc).
  absl::StatusOr<std::map<std::string, std::string>> ReadMapEntries(const BpfMap& m) const;
  absl::Status ConsumeRing();
  absl::Status AttachTc(uint32_t ifindex, int prog_fd);
  // bpf_link on the external device, pinned as <pin_path>/xdp_link so that
  // a restarted process replaces the program atomically (bpf_link_update).
  absl::Status AttachXdp(uint32_t ifindex);
  // One test run each; RunXdp is false when XDP handed the frame on.
  absl::StatusOr<bool> RunXdp(const PacketInput& input, PacketOutcome& out);
  absl::Status RunTc(const PacketInput& input, PacketOutcome& out);
  absl::Status DetachTc(uint32_t ifindex);

  static int OnEvent(void* self, void* data, size_t size);

  EbpfOptions options_;
  absl::Mutex mu_;
  std::unique_ptr<DatapathSkeleton> skel_;
  // What the maps hold, for validating batches exactly as the sim does.
  std::unique_ptr<DatapathTables> model_;
  BpfMap services_, backends_, source_ranges_, endpoints_, ipcache_, policy_;
  std::array<BpfMap, kTableClasses> table_classes_;  // by size class
  BpfMap ct_tcp_, ct_other_, affinity_, counters_, drops_;
  BpfMap snat_, node_addrs_;  // docs/datapath.md, "SNAT"
  std::vector<RetiredTable> retired_tables_;  // oldest first
  ring_buffer* ring_ = nullptr;
  std::deque<dpv2_event> pending_;
  std::vector<uint32_t> attached_;  // tc ingress hooks this instance attached
  int xdp_link_fd_ = -1;
  uint64_t xdp_served_ = 0;
  // Arrays (counters, scratch, writable globals) as loaded, for Reset; only
  // taken for unpinned instances.
  std::map<std::string, std::map<std::string, std::string>> arrays_at_load_;
};

}  // namespace dpv2::ebpf

#endif  // DPV2_BACKENDS_EBPF_EBPF_BACKEND_H_
