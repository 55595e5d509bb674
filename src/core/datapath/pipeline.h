// The per-packet datapath of docs/datapath.md, once, in portable C++ over byte
// spans: the sim backend runs it on vectors and the DPDK backend on mbuf data
// from its lcores; the BPF programs reimplement it and the conformance suite
// checks that all three agree byte for byte.
//
// The pipeline reads the configuration tables (DatapathTables, shared and
// read-only) and updates one instance's mutable state (DatapathState:
// conntrack, affinity, counters, the event sink). Per-packet work is a fixed
// number of hash probes: it never grows with the number of services, backends
// or policies.
//
// One implementation, three doors. ProcessBurst is the fast path (DPDK): it
// rewrites each frame in place and reports in-place verdicts, allocates
// nothing, and first parses every frame of the burst and prefetches the
// table slots the frames will look up, so that cache misses on large tables
// overlap instead of adding up. ProcessFrame is a burst of one (plus the
// event records, for RunPacket). Process wraps it in the PacketOutcome of the
// Backend interface (copies, vectors: for the sim backend and tests).
//
//   DatapathState state(config, &sink);
//   FrameResult r = ProcessFrame(tables, state, Entry::kFromPod, 7, frame_span, now_ns);
//   if (r.verdict == Verdict::kRedirect) send(frame_span, r.out_ifindex);
#ifndef DPV2_CORE_DATAPATH_PIPELINE_H_
#define DPV2_CORE_DATAPATH_PIPELINE_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "core/datapath/affinity_table.h"
#include "core/datapath/conntrack_table.h"
#include "core/datapath/datapath_tables.h"
#include "core/datapath/snat_table.h"
#include "dpv2/abi/abi.h"
#include "dpv2/backend.h"
#include "dpv2/datapath_config.h"
#include "dpv2/packet.h"

namespace dpv2 {

// The most frames one ProcessBurst call takes.
inline constexpr size_t kMaxBurst = 64;

// Where the datapath's event records go (a bounded queue, a DPDK ring...).
class EventSink {
 public:
  virtual ~EventSink() = default;
  // False when the record could not be queued; the datapath counts it as
  // DPV2_CNT_EVENTS_LOST.
  virtual bool Emit(const dpv2_event& event) = 0;
};

// What the first pass of a burst learns about a frame: its parse and the
// keys (with their hashes) of the lookups every IP frame makes.
struct PreparedFrame {
  // The frame's parse: the caller's (BurstFrame::parsed) or `own`, written
  // in place by the first pass (never copied).
  const ParseResult* parsed = nullptr;
  ParseResult own;
  bool keyed = false;  // an IP frame the pipeline looks up (keys below valid)
  // A forward packet the established fast path may serve (TCP/UDP/SCTP,
  // whole, not an ICMP error, not a SYN).
  bool fast_candidate = false;
  dpv2_addr saddr{};   // parsed.pkt's addresses in ABI form (IP frames)
  dpv2_addr daddr{};
  // The reversed tuple: is this a reply? Its hash is the tuple's, that of
  // the packet's plain entry too (ConntrackTable::TupleHash).
  dpv2_ct_key reply_key{};
  uint64_t reply_hash = 0;
  dpv2_ct_key service_ct_key{};  // the SERVICE entry, should this be a service
  uint64_t service_ct_hash = 0;
  // The frontend, EXT scope (HasPorts only), keyed when some pass or the
  // run needs it: never for a packet the fast path serves.
  bool service_keyed = false;
  dpv2_lb_key service_key{};
  uint64_t service_hash = 0;
  // Bursts: the answers of the conntrack lookups, found ahead of the run
  // while the table's generation was `ct_generation` (reused only if it
  // still is), and of the service lookup (tables do not change in a
  // burst), made unless the SERVICE or plain entry carried a current stamp.
  bool looked_up = false;
  uint64_t ct_generation = 0;
  dpv2_ct_value* reply_entry = nullptr;
  dpv2_ct_value* service_entry = nullptr;
  bool plain_looked_up = false;  // a fast-path candidate without SERVICE entry
  dpv2_ct_value* plain_entry = nullptr;
  // The SERVICE or plain entry carried a current stamp (fast path ahead).
  bool stamped = false;
  bool service_looked_up = false;
  const dpv2_lb_value* service = nullptr;
  // A new connection to `service` (not RANDOM): its Maglev table and the
  // slot its tuple hash selects, found while that slot (then the slot's
  // backend) was prefetched; has_maglev_slot says they are set.
  bool wants_slot = false;
  bool has_maglev_slot = false;
  uint32_t maglev_slot = 0;
  absl::Span<const uint32_t> maglev_table;
  // A service connection whose backend the burst knew ahead (the SERVICE
  // entry's, or the Maglev slot's): that backend, and the key and hash of
  // the connection's flow entry (client -> backend), whose slot was
  // prefetched; `backend` is null otherwise.
  const dpv2_backend* backend = nullptr;
  uint32_t backend_id = 0;
  dpv2_ct_key flow_key{};
  uint64_t flow_hash = 0;
  // flow_key was built from a stamped SERVICE entry's backend (nat_addr),
  // with no backend lookup; `backend` is null then.
  bool flow_from_stamp = false;
  // A reply of a NATed connection (reply_entry with REV_NAT): the key and
  // hash of its SERVICE entry (client -> frontend), whose TCP state the
  // reply keeps in step, built and its slot prefetched by the look-ahead.
  bool reply_service_keyed = false;
  dpv2_ct_key reply_service_key{};
  uint64_t reply_service_hash = 0;
};

// The mutable state of one datapath instance; owned by one thread.
struct DatapathState {
  DatapathState(const DatapathConfig& config, EventSink* sink, uint64_t random_seed = 1)
      : conntrack(config), affinity(config.max_affinity), snat(config.snat_entries),
        snat_port_min(static_cast<uint16_t>(config.snat_port_min)),
        snat_port_max(static_cast<uint16_t>(config.snat_port_max)), events(sink),
        random_state(random_seed == 0 ? 1 : random_seed) {}

  // A uniformly spread 64-bit value (xorshift64*) for random backend selection.
  uint64_t NextRandom();

  // Conntrack, then affinity, then the SNAT entries conntrack no longer has.
  GcStats CollectGarbage(uint64_t now_ns);
  // Forgets every connection (conntrack and its SNAT entries).
  void FlushConntrack() {
    conntrack.Flush();
    snat.Flush();
  }

  ConntrackTable conntrack;
  AffinityTable affinity;
  SnatTable snat;
  uint16_t snat_port_min;
  uint16_t snat_port_max;
  // How many instances flow steering spreads connections over (DPDK worker
  // lcores; 1 otherwise): a source port remapped for a collision must be
  // steered to this instance (docs/datapath.md, "Source port collisions").
  uint32_t steering_instances = 1;
  std::array<uint64_t, DPV2_CNT_MAX> counters{};
  std::array<uint64_t, DPV2_DROP_MAX> drops{};
  EventSink* events;  // not owned; may be null
  uint64_t random_state;
  // Scratch of a burst: the first pass's findings, and the REJECT replies
  // FrameResult::reply points into (valid until the next call).
  std::array<PreparedFrame, kMaxBurst> prepared;
  std::array<std::array<uint8_t, kMaxRejectReplyLen>, kMaxBurst> replies{};
};

struct FrameResult {
  Verdict verdict = Verdict::kDrop;
  dpv2_drop_reason drop_reason = DPV2_DROP_NONE;
  uint32_t out_ifindex = 0;  // kRedirect: the endpoint; kTx: the input interface
  // kTx: the generated RST / ICMP error frame, in DatapathState::replies
  // (valid until the next call on the state).
  absl::Span<const uint8_t> reply;
};

// One frame of a burst and where it entered.
struct BurstFrame {
  absl::Span<uint8_t> frame;
  Entry entry = Entry::kFromNetwork;
  uint32_t ifindex = 0;
  // ParsePacket(frame), when the caller already needed it (flow steering
  // parses every frame it receives): the burst then does not parse again.
  const ParseResult* parsed = nullptr;
};

// Runs up to kMaxBurst frames, in order, with the same effect as one
// ProcessFrame call each (results[i] is frames[i]'s). Each frame is
// rewritten in place (NAT, MACs); its length never changes. With kTx the
// input is dropped and `reply` is to be sent out of `ifindex`.
void ProcessBurst(const DatapathTables& tables, DatapathState& state,
                  absl::Span<const BurstFrame> frames, uint64_t now_ns, FrameResult* results);

// One frame. `collected`, when not null, also receives every event record of
// this packet (for RunPacket).
FrameResult ProcessFrame(const DatapathTables& tables, DatapathState& state, Entry entry,
                         uint32_t ifindex, absl::Span<uint8_t> frame, uint64_t now_ns,
                         std::vector<dpv2_event>* collected = nullptr);

// ProcessFrame on a copy of input.frame, reported as a PacketOutcome.
PacketOutcome Process(const DatapathTables& tables, DatapathState& state,
                      const PacketInput& input, uint64_t now_ns);

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_PIPELINE_H_
