// dpv2 backend interface: the one port through which anything drives a datapath.
//
// A Backend executes the datapath (sim in process, eBPF in the kernel, DPDK
// on poll-mode drivers). Configuration arrives as ChangeBatches, applied all
// or nothing; observations leave as counters, events and conntrack dumps.
// RunPacket pushes one frame through the real datapath of the backend (the sim
// pipeline, BPF_PROG_TEST_RUN, a DPDK burst) and reports what happened: it
// serves `dpv2ctl trace`, what-if analysis and the conformance suite.
//
//   std::unique_ptr<dpv2::Backend> b = dpv2::MakeSimBackend({});
//   DPV2_RETURN_IF_ERROR(b->Apply(batch));
//   absl::StatusOr<dpv2::PacketOutcome> out =
//       b->RunPacket({.entry = dpv2::Entry::kFromPod, .ifindex = 7, .frame = f});
#ifndef DPV2_BACKEND_H_
#define DPV2_BACKEND_H_

#include <array>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dpv2/abi/abi.h"
#include "dpv2/batch.h"
#include "dpv2/net.h"

namespace dpv2 {

// Where a frame enters the datapath.
enum class Entry : uint8_t {
  kFromPod,      // tc ingress on the host side of a local pod's veth (ifindex)
  kFromNetwork,  // the node's external device (tc ingress, or XDP)
};

// What the datapath did with a frame.
enum class Verdict : uint8_t {
  kPass,      // handed to the kernel stack / routing, possibly rewritten
  kRedirect,  // delivered to a local pod: out_ifindex is its host-side veth
  kTx,        // sent back out of the interface it came in on (RST, ICMP error)
  kDrop,      // dropped with drop_reason
};
absl::string_view VerdictName(Verdict v);

struct PacketInput {
  Entry entry = Entry::kFromPod;
  uint32_t ifindex = 0;
  std::vector<uint8_t> frame;  // Ethernet frame
};

// No interface hands a datapath less than an Ethernet header (drivers drop
// runts; BPF_PROG_TEST_RUN refuses them), nor more than an IP packet can be.
inline constexpr size_t kMinFrameLen = 14;
inline constexpr size_t kMaxFrameLen = 14 + 4 + 65535;
// The input check every backend's RunPacket makes first, so that all of them
// refuse the same inputs: InvalidArgument naming the backend and the length.
absl::Status CheckPacketInput(const PacketInput& input, absl::string_view backend);

struct OutputFrame {
  Verdict verdict = Verdict::kPass;
  uint32_t out_ifindex = 0;  // kRedirect: target interface; kTx: input interface
  std::vector<uint8_t> frame;
};

// A decoded dpv2_event.
struct FlowEvent {
  uint64_t timestamp_ns = 0;
  uint8_t type = 0;       // DPV2_EVENT_*
  uint8_t obs_point = 0;  // DPV2_OBS_*
  dpv2_drop_reason drop_reason = DPV2_DROP_NONE;
  uint16_t flags = 0;     // DPV2_EV_F_*
  FiveTuple tuple;        // as it left the datapath
  IpAddr orig_dst;        // before translation (== tuple.dst when untranslated)
  uint16_t orig_dport = 0;
  uint32_t ifindex = 0;
  uint32_t pkt_len = 0;
  uint32_t src_identity = 0;
  uint32_t dst_identity = 0;
  uint32_t service_id = 0;
  uint32_t backend_id = 0;
  uint32_t policy_match_id = 0;
  uint8_t tcp_flags = 0;

  static FlowEvent FromAbi(const dpv2_event& ev);
  std::string ToString() const;  // one readable line
};

struct PacketOutcome {
  // The verdict of the input frame. kTx means a reply was generated and the
  // input dropped (REJECT): drop_reason then says why.
  Verdict verdict = Verdict::kDrop;
  dpv2_drop_reason drop_reason = DPV2_DROP_NONE;
  std::vector<OutputFrame> outputs;
  std::vector<FlowEvent> events;
};

// Totals over every CPU / lcore.
struct Counters {
  std::array<uint64_t, DPV2_CNT_MAX> counters{};
  std::array<uint64_t, DPV2_DROP_MAX> drops{};

  uint64_t counter(dpv2_counter c) const { return counters[c]; }
  uint64_t drop(dpv2_drop_reason r) const { return drops[r]; }
};
absl::string_view CounterName(dpv2_counter c);            // "packets"
absl::string_view DropReasonName(dpv2_drop_reason r);     // "policy_deny"

struct ConntrackEntry {
  dpv2_ct_key key;
  dpv2_ct_value value;
};

struct GcStats {
  uint64_t scanned = 0;
  uint64_t deleted = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual absl::string_view Name() const = 0;

  // All or nothing: on error nothing of `batch` is visible to packets.
  virtual absl::Status Apply(const ChangeBatch& batch) = 0;
  // Every configuration entry the datapath holds now (services, backends,
  // lookup tables, source ranges, endpoints, ipcache, policy) as one batch of
  // upserts, each list sorted: what a restarted agent adopts
  // (LbState::Adopt, PolicyState::Adopt; docs/datapath.md "Restart adoption").
  virtual absl::StatusOr<ChangeBatch> DumpState() = 0;

  // Refuses (CheckPacketInput) a frame no interface could deliver.
  virtual absl::StatusOr<PacketOutcome> RunPacket(const PacketInput& input) = 0;

  virtual absl::StatusOr<Counters> ReadCounters() = 0;
  // Up to max_events events, oldest first.
  virtual absl::StatusOr<std::vector<FlowEvent>> DrainEvents(size_t max_events) = 0;

  virtual absl::StatusOr<std::vector<ConntrackEntry>> DumpConntrack() = 0;
  virtual absl::Status FlushConntrack() = 0;
  // Deletes expired conntrack and affinity entries; an entry the datapath
  // refreshed meanwhile is never deleted.
  virtual absl::StatusOr<GcStats> CollectGarbage() = 0;
};

}  // namespace dpv2

#endif  // DPV2_BACKEND_H_
