#include "backends/dpdk/dpdk_backend.h"

#include "backends/dpdk/rte.h"
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <thread>
#include <type_traits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backends/dpdk/datapath_program.h"
#include "backends/dpdk/eal.h"
#include "backends/dpdk/neighbor_reply.h"
#include "core/packet/parse.h"
#include "core/status_macros.h"

namespace dpv2::dpdk {
namespace {

constexpr absl::Duration kControlTimeout = absl::Seconds(5);
constexpr uint16_t kMaxRxBurst = static_cast<uint16_t>(kMaxBurst);
// Frames other lcores may hand one worker before it runs them.
constexpr unsigned kInboxSize = 4096;

static_assert(sizeof(dpv2_event) % 4 == 0, "rte_ring element sizes are multiples of 4");

// A frame handed to RunPacket: the worker fills `outcome` (verdict, drop
// reason, events) and sets `done` once its outputs sit in the injection
// port's TX ring.
struct InjectRequest {
  PacketInput input;
  PacketOutcome outcome;
  std::atomic<bool> done{false};
};

// Per-mbuf metadata in a dynamic field: the injection request an injected
// frame belongs to, and the verdict of a frame leaving by the injection port.
struct FrameMeta {
  InjectRequest* request;
  uint32_t out_ifindex;
  uint8_t verdict;
  uint16_t in_port;  // a frame handed to its owner lcore: the port it came in by
};

int meta_offset = -1;

absl::Status RegisterFrameMeta() {
  if (meta_offset >= 0) {
    return absl::OkStatus();
  }
  static const rte_mbuf_dynfield kDesc = {
      .name = "dpv2_frame_meta",
      .size = sizeof(FrameMeta),
      .align = alignof(FrameMeta),
      .flags = 0,
  };
  int offset = rte_mbuf_dynfield_register(&kDesc);
  if (offset < 0) {
    return absl::InternalError(absl::StrCat("dpdk: registering the mbuf field dpv2_frame_meta: ",
                                            rte_strerror(rte_errno)));
  }
  meta_offset = offset;
  return absl::OkStatus();
}

FrameMeta* Meta(rte_mbuf* m) { return RTE_MBUF_DYNFIELD(m, meta_offset, FrameMeta*); }

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool MacIsZero(const MacAddr& mac) {
  return std::all_of(mac.begin(), mac.end(), [](uint8_t b) { return b == 0; });
}

// Copies `bytes` into `m` as its only segment.
bool WriteFrame(rte_mbuf* m, absl::Span<const uint8_t> bytes) {
  rte_pktmbuf_reset(m);
  char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(bytes.size()));
  if (data == nullptr || bytes.size() > UINT16_MAX) {
    return false;
  }
  std::memcpy(data, bytes.data(), bytes.size());
  return true;
}

std::atomic<uint32_t> next_instance{0};

}  // namespace

struct PortRuntime {
  DpdkPortOptions options;
  uint16_t port_id = 0;
  rte_ether_addr mac{};
  size_t forward_index = 0;  // index in the backend's port list
  rte_mempool* pool = nullptr;
  bool injection = false;
  bool rewrite_l2 = false;
  bool started = false;
};

struct WorkerShared {
  explicit WorkerShared(size_t workers) : epoch(workers) {}
  QuiescentEpoch epoch;
  std::atomic<int> live_copy{0};
  std::atomic<int64_t> clock_offset_ns{0};
  std::vector<PortRuntime*> ports;
  absl::flat_hash_map<IpAddr, MacAddr> neighbors;
  const DatapathProgram* program = nullptr;  // for flow steering
  // Per worker, where other workers hand it the frames it owns (flow
  // steering, docs/dpdk.md); empty with one worker.
  std::vector<rte_ring*> inboxes;
  uint16_t burst = 32;
  uint64_t drain_tsc = 0;
  uint32_t idle_sleep_us = 0;
};

struct ControlCommand {
  enum class Kind {
    kCounters,
    kDumpConntrack,
    kFlushConntrack,
    kCollectGarbage,
    kSetNeighborAnswers,
  };
  Kind kind = Kind::kCounters;
  uint64_t now_ns = 0;
  Counters counters;
  std::vector<ConntrackEntry> entries;
  GcStats gc;
  std::shared_ptr<const NeighborAnswers> answers;  // kSetNeighborAnswers
  std::atomic<bool> done{false};
};

// The worker's event records go to its own single-producer ring; the
// control plane is the single consumer (DrainEvents).
class RingEventSink : public EventSink {
 public:
  explicit RingEventSink(rte_ring* ring) : ring_(ring) {}
  bool Emit(const dpv2_event& event) override {
    return rte_ring_sp_enqueue_elem(ring_, const_cast<dpv2_event*>(&event), sizeof(dpv2_event)) == 0;
  }

 private:
  rte_ring* ring_;
};

struct RxQueue {
  size_t port_index;
  uint16_t port_id;
};

// Everything one worker lcore owns. Only that lcore writes it while it runs;
// the control plane talks to it through `mailbox` and the event ring.
struct alignas(RTE_CACHE_LINE_SIZE) Worker {
  size_t index = 0;
  unsigned lcore = 0;
  uint16_t queue = 0;
  WorkerShared* shared = nullptr;
  std::vector<RxQueue> rx;
  std::vector<rte_eth_dev_tx_buffer*> tx;  // per port index
  std::unique_ptr<LcoreDatapath> datapath;
  rte_ring* events = nullptr;
  std::unique_ptr<EventSink> sink;
  std::vector<InjectRequest*> finished;  // requests of the current burst
  std::vector<dpv2_event> collected;     // events of an injected frame
  // Frames of the current burst owned by other workers, per worker
  // (capacity reserved at start: no allocation on the fast path).
  std::vector<std::vector<rte_mbuf*>> handoff;
  // The parse of each frame Steer kept (frame i of the compacted burst), or
  // nullptr: ProcessBurst reuses it instead of parsing the frame again.
  std::array<ParseResult, kMaxRxBurst> steer_parsed;
  std::array<const ParseResult*, kMaxRxBurst> kept_parsed{};
  // ARP/ND requests this worker answers (SetDpdkNeighborAnswers), and the
  // reply being sent.
  std::shared_ptr<const NeighborAnswers> answers;
  std::vector<uint8_t> neighbor_reply;
  bool launched = false;
  // Written by the worker only, read by anyone (relaxed).
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> busy_tsc{0};
  std::atomic<uint64_t> handed_off{0};
  std::atomic<uint64_t> handoff_drops{0};
  clockid_t cpu_clock{};
  std::atomic<bool> cpu_clock_ready{false};
  alignas(RTE_CACHE_LINE_SIZE) std::atomic<ControlCommand*> mailbox{nullptr};
  std::atomic<bool> stop{false};
};

namespace {

void ServeMailbox(Worker& w, uint64_t now_ns) {
  ControlCommand* cmd = w.mailbox.load(std::memory_order_acquire);
  if (cmd == nullptr) {
    return;
  }
  switch (cmd->kind) {
    case ControlCommand::Kind::kCounters:
      w.datapath->AddCounters(&cmd->counters);
      break;
    case ControlCommand::Kind::kDumpConntrack:
      w.datapath->DumpConntrack(&cmd->entries);
      break;
    case ControlCommand::Kind::kFlushConntrack:
      w.datapath->FlushConntrack();
      break;
    case ControlCommand::Kind::kCollectGarbage: {
      GcStats s = w.datapath->CollectGarbage(cmd->now_ns != 0 ? cmd->now_ns : now_ns);
      cmd->gc.scanned += s.scanned;
      cmd->gc.deleted += s.deleted;
      break;
    }
    case ControlCommand::Kind::kSetNeighborAnswers:
      w.answers = cmd->answers;
      break;
  }
  w.mailbox.store(nullptr, std::memory_order_relaxed);
  cmd->done.store(true, std::memory_order_release);
}

// Where a frame with this verdict leaves, as an index into shared.ports.
size_t OutputPort(const WorkerShared& shared, size_t in_index, Verdict verdict,
                  uint32_t out_ifindex) {
  const PortRuntime& in = *shared.ports[in_index];
  if (in.injection) {
    return in_index;
  }
  switch (verdict) {
    case Verdict::kTx:
      return in_index;
    case Verdict::kRedirect:
      for (size_t i = 0; i < shared.ports.size(); ++i) {
        const PortRuntime& p = *shared.ports[i];
        if (!p.injection && p.options.ifindex != 0 && p.options.ifindex == out_ifindex) {
          return i;
        }
      }
      return in.forward_index;
    default:
      return in.forward_index;
  }
}

// A box without ARP of its own re-addresses what it forwards: its own MAC as
// the source, the neighbour (or gateway) of the destination address as the
// destination. False when it found neither (the frame is unchanged).
bool RewriteL2(const WorkerShared& shared, const PortRuntime& in, const PortRuntime& out,
               rte_mbuf* m) {
  if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr)) {
    return false;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  const uint8_t* l3 = reinterpret_cast<const uint8_t*>(eth + 1);
  const size_t l3_len = rte_pktmbuf_data_len(m) - sizeof(rte_ether_hdr);
  const MacAddr* dst = MacIsZero(in.options.gateway_mac) ? nullptr : &in.options.gateway_mac;
  if (!shared.neighbors.empty()) {
    std::optional<IpAddr> addr;
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) && l3_len >= 20) {
      addr = IpAddr::V4Bytes(l3 + 16);
    } else if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6) && l3_len >= 40) {
      addr = IpAddr::V6Bytes(l3 + 24);
    }
    if (addr.has_value()) {
      auto it = shared.neighbors.find(*addr);
      if (it != shared.neighbors.end()) {
        dst = &it->second;
      }
    }
  }
  if (dst == nullptr) {
    return false;
  }
  std::memcpy(eth->dst_addr.addr_bytes, dst->data(), RTE_ETHER_ADDR_LEN);
  rte_ether_addr_copy(&out.mac, &eth->src_addr);
  return true;
}

// Adds `n` to a counter only its worker writes.
void Bump(std::atomic<uint64_t>& counter, uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// ARP and neighbour solicitations for the box's own addresses are among the
// passed frames: answer them (SetDpdkNeighborAnswers).
void AnswerNeighbors(Worker& w, const PortRuntime& in_port, absl::Span<const uint8_t> frame,
                     FrameResult& r) {
  if (r.verdict != Verdict::kPass || w.answers == nullptr) {
    return;
  }
  MacAddr mac;
  std::memcpy(mac.data(), in_port.mac.addr_bytes, mac.size());
  if (std::optional<std::vector<uint8_t>> reply = w.answers->Reply(frame, mac)) {
    w.neighbor_reply = std::move(*reply);
    r.verdict = Verdict::kTx;
    r.reply = w.neighbor_reply;
  }
}

// Frees `m`, or turns it into its reply, and queues it on the TX buffer of
// its output port (this worker's queue).
void SendResult(Worker& w, size_t in_index, const FrameResult& r, rte_mbuf* m) {
  WorkerShared& shared = *w.shared;
  PortRuntime& in_port = *shared.ports[in_index];
  if (r.verdict == Verdict::kDrop) {
    rte_pktmbuf_free(m);
    return;
  }
  if (r.verdict == Verdict::kTx && !WriteFrame(m, r.reply)) {
    rte_pktmbuf_free(m);
    return;
  }
  const size_t out_index = OutputPort(shared, in_index, r.verdict, r.out_ifindex);
  PortRuntime& out_port = *shared.ports[out_index];
  if (out_port.injection) {
    FrameMeta* meta = Meta(m);
    meta->request = nullptr;
    meta->verdict = static_cast<uint8_t>(r.verdict);
    meta->out_ifindex = r.out_ifindex;
  } else if (r.verdict == Verdict::kPass && in_port.rewrite_l2 &&
             !RewriteL2(shared, in_port, out_port, m) && out_index == in_index) {
    // One-armed with nowhere to send it (no neighbour, no gateway): echoing
    // the frame back unchanged would teach the segment's switches that its
    // sender lives behind the box (a broadcast ARP, flooded unicast).
    rte_pktmbuf_free(m);
    return;
  }
  rte_eth_tx_buffer(out_port.port_id, w.queue, w.tx[out_index], m);
}

// A chained frame too long for one segment (the PMD's jumbo setting and the
// pool's data room disagree) is nothing the datapath can parse: false, and
// the frame is freed.
bool MakeContiguous(rte_mbuf* m) {
  if (!rte_pktmbuf_is_contiguous(m) && rte_pktmbuf_linearize(m) != 0) {
    rte_pktmbuf_free(m);
    return false;
  }
  return true;
}

absl::Span<uint8_t> FrameBytes(rte_mbuf* m) {
  return absl::Span<uint8_t>(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
}

// A frame RunPacket injected: one at a time, with its events collected.
void ProcessInjected(Worker& w, int copy, uint64_t now_ns, size_t in_index, rte_mbuf* m) {
  PortRuntime& in_port = *w.shared->ports[in_index];
  InjectRequest* request = Meta(m)->request;
  if (request == nullptr || !MakeContiguous(m)) {
    if (request == nullptr) {
      rte_pktmbuf_free(m);
    }
    return;
  }
  const absl::Span<uint8_t> frame = FrameBytes(m);
  w.collected.clear();
  FrameResult r = w.datapath->Process(copy, request->input.entry, request->input.ifindex, frame,
                                      now_ns, &w.collected);
  AnswerNeighbors(w, in_port, frame, r);
  PacketOutcome& out = request->outcome;
  out.verdict = r.verdict;
  out.drop_reason = r.drop_reason;
  for (const dpv2_event& ev : w.collected) {
    out.events.push_back(FlowEvent::FromAbi(ev));
  }
  w.finished.push_back(request);
  SendResult(w, in_index, r, m);
}

// Frames of the ports (not injected), rewritten in place as one burst;
// in_index[i] is the port frame i came in by; parsed, when not null, holds
// each frame's parse or nullptr (Steer's).
void ProcessMbufs(Worker& w, int copy, uint64_t now_ns, rte_mbuf** ms, const uint16_t* in_index,
                  uint16_t n, const ParseResult* const* parsed = nullptr) {
  WorkerShared& shared = *w.shared;
  BurstFrame frames[kMaxBurst];
  FrameResult results[kMaxBurst];
  rte_mbuf* kept[kMaxBurst];
  uint16_t kept_in[kMaxBurst];
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (!MakeContiguous(ms[i])) {
      continue;
    }
    const PortRuntime& port = *shared.ports[in_index[i]];
    frames[k] = {.frame = FrameBytes(ms[i]),
                 .entry = port.options.entry,
                 .ifindex = port.options.ifindex,
                 .parsed = parsed != nullptr ? parsed[i] : nullptr};
    kept[k] = ms[i];
    kept_in[k] = in_index[i];
    ++k;
  }
  w.datapath->ProcessBurst(copy, absl::MakeConstSpan(frames, k), now_ns, results);
  for (uint16_t i = 0; i < k; ++i) {
    AnswerNeighbors(w, *shared.ports[kept_in[i]], frames[i].frame, results[i]);
    SendResult(w, kept_in[i], results[i], kept[i]);
  }
  Bump(w.packets, k);
}

// Flow steering (docs/dpdk.md): hands the frames of `ms` whose connection
// another worker owns to that worker's inbox and compacts the rest, which
// this worker runs, to the front, with their parse in w.kept_parsed;
// returns how many remain.
uint16_t Steer(Worker& w, int copy, rte_mbuf** ms, uint16_t in_index, uint16_t n) {
  WorkerShared& shared = *w.shared;
  const size_t workers = shared.inboxes.size();
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = ms[i];
    uint32_t hash = 0;
    const ParseResult* parsed = nullptr;
    if (rte_pktmbuf_is_contiguous(m)) {
      // Parsed into the slot the frame takes if kept (a handed-off frame's
      // slot is reused by the next one).
      ParsePacketInto(FrameBytes(m), &w.steer_parsed[kept]);
      parsed = &w.steer_parsed[kept];
      if (shared.program->SteeringHash(copy, *parsed, &hash)) {
        const size_t owner = hash % workers;
        if (owner != w.index) {
          Meta(m)->in_port = in_index;
          w.handoff[owner].push_back(m);
          continue;
        }
      }
    }
    w.kept_parsed[kept] = parsed;
    ms[kept++] = m;
  }
  for (size_t owner = 0; owner < workers; ++owner) {
    std::vector<rte_mbuf*>& out = w.handoff[owner];
    if (out.empty()) {
      continue;
    }
    const unsigned sent = rte_ring_mp_enqueue_burst(
        shared.inboxes[owner], reinterpret_cast<void* const*>(out.data()),
        static_cast<unsigned>(out.size()), nullptr);
    for (size_t i = sent; i < out.size(); ++i) {
      rte_pktmbuf_free(out[i]);  // the owner is saturated: drop, as a full RX ring would
    }
    Bump(w.handed_off, sent);
    Bump(w.handoff_drops, out.size() - sent);
    out.clear();
  }
  return kept;
}

void FlushAll(Worker& w) {
  for (size_t i = 0; i < w.tx.size(); ++i) {
    rte_eth_tx_buffer_flush(w.shared->ports[i]->port_id, w.queue, w.tx[i]);
  }
}

int WorkerMain(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  WorkerShared& shared = *w.shared;
  rte_mbuf* burst[kMaxRxBurst];
  uint16_t in_index[kMaxRxBurst];
  uint64_t last_drain = rte_rdtsc();
  if (pthread_getcpuclockid(pthread_self(), &w.cpu_clock) == 0) {
    w.cpu_clock_ready.store(true, std::memory_order_release);
  }
  shared.epoch.SetOnline(w.index);
  while (!w.stop.load(std::memory_order_relaxed)) {
    // A busy iteration is timed whole (quiescent point, clock, mailbox, the
    // polls, the drain), as a forwarding loop's per-packet cost is.
    const uint64_t start_tsc = rte_rdtsc();
    // The top of the loop holds no reference into the tables: a quiescent
    // point for the control plane's publication.
    shared.epoch.Quiesce(w.index);
    const uint64_t now_ns =
        MonotonicNs() + shared.clock_offset_ns.load(std::memory_order_relaxed);
    ServeMailbox(w, now_ns);
    const int copy = shared.live_copy.load(std::memory_order_acquire);
    bool busy = false;
    for (const RxQueue& q : w.rx) {
      uint16_t n = rte_eth_rx_burst(q.port_id, w.queue, burst, shared.burst);
      if (n == 0) {
        continue;
      }
      busy = true;
      if (shared.ports[q.port_index]->injection) {
        for (uint16_t i = 0; i < n; ++i) {
          ProcessInjected(w, copy, now_ns, q.port_index, burst[i]);
        }
        Bump(w.packets, n);
        continue;
      }
      const ParseResult* const* parsed = nullptr;
      if (!shared.inboxes.empty()) {
        n = Steer(w, copy, burst, static_cast<uint16_t>(q.port_index), n);
        parsed = w.kept_parsed.data();
      }
      std::fill_n(in_index, n, static_cast<uint16_t>(q.port_index));
      ProcessMbufs(w, copy, now_ns, burst, in_index, n, parsed);
    }
    if (!shared.inboxes.empty()) {
      // Frames other workers received for connections this one owns.
      const uint16_t n = static_cast<uint16_t>(rte_ring_sc_dequeue_burst(
          shared.inboxes[w.index], reinterpret_cast<void**>(burst), shared.burst, nullptr));
      if (n > 0) {
        busy = true;
        for (uint16_t i = 0; i < n; ++i) {
          in_index[i] = Meta(burst[i])->in_port;
        }
        ProcessMbufs(w, copy, now_ns, burst, in_index, n);
      }
    }
    const uint64_t tsc = rte_rdtsc();
    if (!w.finished.empty()) {
      // RunPacket waits for its outputs: hand them over now, not at the
      // next drain.
      FlushAll(w);
      for (InjectRequest* r : w.finished) {
        r->done.store(true, std::memory_order_release);
      }
      w.finished.clear();
      last_drain = tsc;
    } else if (tsc - last_drain >= shared.drain_tsc) {
      FlushAll(w);
      last_drain = tsc;
    }
    if (busy) {
      w.busy_tsc.store(w.busy_tsc.load(std::memory_order_relaxed) + (rte_rdtsc() - start_tsc),
                       std::memory_order_relaxed);
    } else if (shared.idle_sleep_us != 0) {
      rte_delay_us_sleep(shared.idle_sleep_us);
    }
  }
  FlushAll(w);
  shared.epoch.SetOffline(w.index);
  return 0;
}

absl::Status ConfigurePort(PortRuntime& port, uint16_t queues, const DpdkOptions& options) {
  rte_eth_dev_info info;
  if (int rc = rte_eth_dev_info_get(port.port_id, &info); rc != 0) {
    return absl::InternalError(absl::StrCat("dpdk port ", port.options.device,
                                            ": rte_eth_dev_info_get: ", rte_strerror(-rc)));
  }
  if (queues > info.max_rx_queues || queues > info.max_tx_queues) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "dpdk port %s: %d worker lcores need %d RX/TX queues, the device has %d/%d "
        "(net_af_packet: add qpairs=%d to its --vdev)",
        port.options.device, queues, queues, info.max_rx_queues, info.max_tx_queues, queues));
  }
  rte_eth_conf conf{};
  if (queues > 1 && info.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_SCTP) &
        info.flow_type_rss_offloads;
  }
  if (int rc = rte_eth_dev_configure(port.port_id, queues, queues, &conf); rc != 0) {
    return absl::InternalError(absl::StrCat("dpdk port ", port.options.device,
                                            ": rte_eth_dev_configure: ", rte_strerror(-rc)));
  }
  uint16_t rx_desc = options.rx_descriptors;
  uint16_t tx_desc = options.tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port.port_id, &rx_desc, &tx_desc);
  const int socket = rte_eth_dev_socket_id(port.port_id);
  const unsigned socket_id = socket < 0 ? SOCKET_ID_ANY : static_cast<unsigned>(socket);
  for (uint16_t q = 0; q < queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(port.port_id, q, rx_desc, socket_id, nullptr, port.pool);
        rc != 0) {
      return absl::InternalError(absl::StrCat("dpdk port ", port.options.device, ": rx queue ",
                                              q, ": ", rte_strerror(-rc)));
    }
    if (int rc = rte_eth_tx_queue_setup(port.port_id, q, tx_desc, socket_id, nullptr); rc != 0) {
      return absl::InternalError(absl::StrCat("dpdk port ", port.options.device, ": tx queue ",
                                              q, ": ", rte_strerror(-rc)));
    }
  }
  if (int rc = rte_eth_dev_start(port.port_id); rc != 0) {
    return absl::InternalError(
        absl::StrCat("dpdk port ", port.options.device, ": rte_eth_dev_start: ", rte_strerror(-rc)));
  }
  port.started = true;
  rte_eth_promiscuous_enable(port.port_id);  // not every PMD has it; not needed when absent
  rte_eth_macaddr_get(port.port_id, &port.mac);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DpdkBackend>> DpdkBackend::Create(
    const DpdkOptions& options, std::unique_ptr<DatapathProgram> program) {
  DPV2_RETURN_IF_ERROR(options.Validate());
  if (program == nullptr) {
    return absl::InvalidArgumentError("dpdk backend: no datapath program");
  }
  std::unique_ptr<DpdkBackend> b(new DpdkBackend());
  b->options_ = options;
  b->program_ = std::move(program);
  DPV2_RETURN_IF_ERROR(AcquireEal(options.eal_args));
  b->eal_acquired_ = true;
  DPV2_RETURN_IF_ERROR(b->Start());
  return b;
}

DpdkBackend::~DpdkBackend() {
  Stop();
  if (eal_acquired_) {
    ReleaseEal();
  }
}

absl::Status DpdkBackend::Start() {
  DPV2_RETURN_IF_ERROR(RegisterFrameMeta());
  const uint32_t instance = next_instance.fetch_add(1);

  // Worker lcores: the ones named, or every worker lcore of the EAL.
  std::vector<unsigned> lcores;
  if (options_.lcores.empty()) {
    unsigned lcore;
    RTE_LCORE_FOREACH_WORKER(lcore) { lcores.push_back(lcore); }
  } else {
    for (uint32_t l : options_.lcores) {
      if (l >= RTE_MAX_LCORE || !rte_lcore_is_enabled(l)) {
        return absl::InvalidArgumentError(
            absl::StrCat("dpdk options: lcores: lcore ", l, " is not enabled in the EAL (-l/--lcores)"));
      }
      if (l == rte_get_main_lcore()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dpdk options: lcores: lcore ", l, " is the main lcore, which runs the control plane"));
      }
      lcores.push_back(l);
    }
  }
  if (lcores.empty()) {
    return absl::InvalidArgumentError(
        "dpdk options: no worker lcore: give the EAL at least two lcores (e.g. -l 0-1)");
  }
  for (unsigned l : lcores) {
    if (rte_eal_get_lcore_state(l) != WAIT) {
      return absl::FailedPreconditionError(
          absl::StrCat("dpdk options: lcores: lcore ", l, " is busy (another backend?)"));
    }
  }
  const uint16_t queues = static_cast<uint16_t>(lcores.size());
  shared_ = std::make_unique<WorkerShared>(lcores.size());
  shared_->burst = std::min<uint16_t>(options_.burst_size, kMaxRxBurst);
  shared_->program = program_.get();
  shared_->drain_tsc = (rte_get_tsc_hz() + 999999) / 1000000 * options_.drain_interval_us;
  shared_->idle_sleep_us = options_.idle_sleep_us;
  for (const DpdkNeighbor& n : options_.neighbors) {
    shared_->neighbors[n.addr] = n.mac;
  }

  // The user's ports.
  for (size_t i = 0; i < options_.ports.size(); ++i) {
    auto port = std::make_unique<PortRuntime>();
    port->options = options_.ports[i];
    if (rte_eth_dev_get_port_by_name(port->options.device.c_str(), &port->port_id) != 0) {
      return absl::NotFoundError(absl::StrCat(
          "dpdk options: ports[", i, "]: device \"", port->options.device,
          "\" is not an EAL port (add it with --vdev or allow its PCI address)"));
    }
    port->rewrite_l2 = !MacIsZero(port->options.gateway_mac) || !options_.neighbors.empty();
    const std::string pool_name = absl::StrCat("dpv2p", instance, "_", i);
    const int socket = rte_eth_dev_socket_id(port->port_id);
    port->pool = rte_pktmbuf_pool_create(pool_name.c_str(), options_.mbufs_per_port, 256, 0,
                                         RTE_MBUF_DEFAULT_BUF_SIZE, socket < 0 ? SOCKET_ID_ANY : socket);
    if (port->pool == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("dpdk port ", port->options.device, ": mbuf pool of ",
                       options_.mbufs_per_port, ": ", rte_strerror(rte_errno)));
    }
    ports_.push_back(std::move(port));
  }
  for (size_t i = 0; i < ports_.size(); ++i) {
    ports_[i]->forward_index = i;
    const std::string& fwd = ports_[i]->options.forward_to;
    if (fwd.empty()) {
      continue;
    }
    bool found = false;
    for (size_t j = 0; j < ports_.size(); ++j) {
      if (ports_[j]->options.device == fwd) {
        ports_[i]->forward_index = j;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat("dpdk options: ports[", i, "]: forward_to \"",
                                                     fwd, "\" is not one of the ports"));
    }
  }
  for (auto& port : ports_) {
    DPV2_RETURN_IF_ERROR(ConfigurePort(*port, queues, options_));
  }

  // The injection port: rings in memory, one RX/TX pair per worker.
  {
    auto port = std::make_unique<PortRuntime>();
    port->injection = true;
    port->options.device = absl::StrCat("dpv2_inject", instance);
    const std::string pool_name = absl::StrCat("dpv2i", instance);
    port->pool = rte_pktmbuf_pool_create(pool_name.c_str(), 1023, 0, 0,
                                         RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (port->pool == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("dpdk injection port: mbuf pool: ", rte_strerror(rte_errno)));
    }
    inject_pool_ = port->pool;
    for (uint16_t q = 0; q < queues; ++q) {
      const std::string rx = absl::StrCat("dpv2i", instance, "r", q);
      const std::string tx = absl::StrCat("dpv2i", instance, "t", q);
      rte_ring* r = rte_ring_create(rx.c_str(), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
      rte_ring* t = rte_ring_create(tx.c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ);
      if (r == nullptr || t == nullptr) {
        rte_ring_free(r);
        rte_ring_free(t);
        return absl::ResourceExhaustedError(
            absl::StrCat("dpdk injection port: ring: ", rte_strerror(rte_errno)));
      }
      inject_rx_.push_back(r);
      inject_tx_.push_back(t);
    }
    const int id = rte_eth_from_rings(port->options.device.c_str(), inject_rx_.data(), queues,
                                      inject_tx_.data(), queues, SOCKET_ID_ANY);
    if (id < 0) {
      return absl::InternalError(
          absl::StrCat("dpdk injection port: rte_eth_from_rings: ", rte_strerror(rte_errno)));
    }
    port->port_id = static_cast<uint16_t>(id);
    inject_port_ = static_cast<int>(ports_.size());
    port->forward_index = ports_.size();
    DPV2_RETURN_IF_ERROR(ConfigurePort(*port, queues, options_));
    ports_.push_back(std::move(port));
  }
  for (auto& port : ports_) {
    shared_->ports.push_back(port.get());
  }

  // Workers.
  for (size_t i = 0; i < lcores.size(); ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->lcore = lcores[i];
    w->queue = static_cast<uint16_t>(i);
    w->shared = shared_.get();
    for (size_t p = 0; p < ports_.size(); ++p) {
      w->rx.push_back({.port_index = p, .port_id = ports_[p]->port_id});
      const int socket = static_cast<int>(rte_lcore_to_socket_id(w->lcore));
      auto* buf = static_cast<rte_eth_dev_tx_buffer*>(rte_zmalloc_socket(
          "dpv2_tx", RTE_ETH_TX_BUFFER_SIZE(shared_->burst), 0, socket));
      if (buf == nullptr) {
        return absl::ResourceExhaustedError("dpdk worker: tx buffer allocation failed");
      }
      rte_eth_tx_buffer_init(buf, shared_->burst);
      w->tx.push_back(buf);
    }
    const std::string ev_name = absl::StrCat("dpv2e", instance, "_", i);
    w->events = rte_ring_create_elem(ev_name.c_str(), sizeof(dpv2_event), options_.event_ring_size,
                                     static_cast<int>(rte_lcore_to_socket_id(w->lcore)),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (w->events == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("dpdk worker ", i, ": event ring of ", options_.event_ring_size, ": ",
                       rte_strerror(rte_errno)));
    }
    w->sink = std::make_unique<RingEventSink>(w->events);
    if (lcores.size() > 1) {
      const std::string inbox_name = absl::StrCat("dpv2s", instance, "_", i);
      rte_ring* inbox = rte_ring_create(inbox_name.c_str(), kInboxSize,
                                        static_cast<int>(rte_lcore_to_socket_id(w->lcore)),
                                        RING_F_SC_DEQ);
      if (inbox == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "dpdk worker ", i, ": steering inbox: ", rte_strerror(rte_errno)));
      }
      shared_->inboxes.push_back(inbox);
      w->handoff.resize(lcores.size());
      for (std::vector<rte_mbuf*>& h : w->handoff) {
        h.reserve(kMaxRxBurst);
      }
    }
    w->datapath = program_->MakeLcore(w->sink.get(), /*random_seed=*/0x9e3779b97f4a7c15ull + i,
                                      static_cast<uint32_t>(lcores.size()));
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    if (int rc = rte_eal_remote_launch(WorkerMain, w.get(), w->lcore); rc != 0) {
      return absl::InternalError(
          absl::StrCat("dpdk worker: launching on lcore ", w->lcore, ": ", rte_strerror(-rc)));
    }
    w->launched = true;
  }
  started_ = true;
  return absl::OkStatus();
}

void DpdkBackend::Stop() {
  for (auto& w : workers_) {
    w->stop.store(true, std::memory_order_relaxed);
  }
  for (auto& w : workers_) {
    if (w->launched) {
      rte_eal_wait_lcore(w->lcore);
      w->launched = false;
    }
  }
  for (auto& port : ports_) {
    if (port->started) {
      rte_eth_dev_stop(port->port_id);
      port->started = false;
    }
    // The user's ports stay open (they belong to the EAL's device list and
    // may serve a later backend); the injection port is ours.
    if (port->injection) {
      rte_eth_dev_close(port->port_id);
    }
  }
  for (auto& w : workers_) {
    for (rte_eth_dev_tx_buffer* buf : w->tx) {
      rte_free(buf);
    }
    w->tx.clear();
    if (w->events != nullptr) {
      rte_ring_free(w->events);
      w->events = nullptr;
    }
  }
  // Frames handed over but not yet run go back to their pools.
  if (shared_ != nullptr) {
    for (rte_ring* r : shared_->inboxes) {
      void* m;
      while (rte_ring_dequeue(r, &m) == 0) {
        rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      }
      rte_ring_free(r);
    }
    shared_->inboxes.clear();
  }
  workers_.clear();
  // Frames still sitting in the injection rings go back to their pool.
  for (rte_ring* r : inject_rx_) {
    void* m;
    while (rte_ring_dequeue(r, &m) == 0) {
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
  }
  for (rte_ring* r : inject_tx_) {
    void* m;
    while (rte_ring_dequeue(r, &m) == 0) {
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
  }
  for (auto& port : ports_) {
    rte_mempool_free(port->pool);
    port->pool = nullptr;
  }
  ports_.clear();
  for (rte_ring* r : inject_rx_) {
    rte_ring_free(r);
  }
  for (rte_ring* r : inject_tx_) {
    rte_ring_free(r);
  }
  inject_rx_.clear();
  inject_tx_.clear();
  inject_pool_ = nullptr;
  started_ = false;
}

absl::Status DpdkBackend::Apply(const ChangeBatch& batch) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (tables_broken_) {
    return absl::FailedPreconditionError(
        "dpdk backend: an earlier publication did not complete; recreate the backend");
  }
  // Flow steering keys a connection on its client (core/datapath/steering.h):
  // a reply to an SNAT port names no client, so its lcore is unknown.
  if (!batch.node_addresses_upsert.empty() && workers_.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dpdk backend: node_addresses_upsert: SNAT needs a single worker lcore (",
        workers_.size(), " run): flow steering cannot bring a reply to an SNAT port back to "
        "its connection's lcore"));
  }
  const int live = shared_->live_copy.load(std::memory_order_relaxed);
  const int standby = 1 - live;
  // Validation and application on the copy no worker reads: a rejected batch
  // leaves both copies as they were.
  DPV2_RETURN_IF_ERROR(program_->Apply(standby, batch));
  shared_->live_copy.store(standby, std::memory_order_release);
  if (absl::Status s = shared_->epoch.Synchronize(kControlTimeout); !s.ok()) {
    tables_broken_ = true;
    return s;
  }
  // No worker reads the former copy any more: bring it up to date so that
  // it can take the next batch.
  if (absl::Status s = program_->Apply(live, batch); !s.ok()) {
    if (absl::Status r = program_->Resync(live, standby); !r.ok()) {
      tables_broken_ = true;
      return absl::InternalError(absl::StrCat(
          "dpdk backend: the batch applied to one table copy but not the other (", s.message(),
          ") and resynchronising failed: ", r.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PacketOutcome> DpdkBackend::RunPacket(const PacketInput& input) {
  DPV2_RETURN_IF_ERROR(CheckPacketInput(input, "dpdk"));
  std::lock_guard<std::mutex> lock(control_mu_);
  if (input.frame.size() > RTE_MBUF_DEFAULT_DATAROOM) {
    return absl::InvalidArgumentError(absl::StrCat("dpdk RunPacket: frame of ", input.frame.size(),
                                                   " bytes exceeds the mbuf data room of ",
                                                   RTE_MBUF_DEFAULT_DATAROOM));
  }
  rte_mbuf* m = rte_pktmbuf_alloc(inject_pool_);
  if (m == nullptr) {
    return absl::ResourceExhaustedError("dpdk RunPacket: injection pool exhausted");
  }
  // Heap-allocated: should a worker never answer, it may still write here.
  auto* request = new InjectRequest();
  request->input.entry = input.entry;
  request->input.ifindex = input.ifindex;
  if (!WriteFrame(m, input.frame)) {
    rte_pktmbuf_free(m);
    delete request;
    return absl::InternalError("dpdk RunPacket: could not copy the frame into an mbuf");
  }
  Meta(m)->request = request;
  // The worker that owns the frame's connection runs it (flow steering's
  // owner, the worker the ports hand its frames to), so that an injected
  // frame meets the conntrack entries its connection's frames made; frames
  // no worker owns go to worker 0. Apply holds control_mu_ too: the live
  // copy does not change under the lookup.
  size_t worker = 0;
  if (workers_.size() > 1) {
    ParseResult parsed;
    ParsePacketInto(input.frame, &parsed);
    uint32_t hash = 0;
    if (program_->SteeringHash(shared_->live_copy.load(std::memory_order_relaxed), parsed,
                               &hash)) {
      worker = hash % workers_.size();
    }
  }
  if (rte_ring_enqueue(inject_rx_[worker], m) != 0) {
    rte_pktmbuf_free(m);
    delete request;
    return absl::ResourceExhaustedError("dpdk RunPacket: injection ring full");
  }
  const absl::Time deadline = absl::Now() + kControlTimeout;
  while (!request->done.load(std::memory_order_acquire)) {
    if (absl::Now() > deadline) {
      tables_broken_ = true;  // the worker is stuck; `request` is leaked on purpose
      return absl::DeadlineExceededError("dpdk RunPacket: the worker did not process the frame");
    }
    std::this_thread::yield();
  }
  PacketOutcome outcome = std::move(request->outcome);
  delete request;
  void* obj;
  while (rte_ring_dequeue(inject_tx_[worker], &obj) == 0) {
    auto* o = static_cast<rte_mbuf*>(obj);
    const FrameMeta* meta = Meta(o);
    OutputFrame frame{.verdict = static_cast<Verdict>(meta->verdict),
                      .out_ifindex = meta->out_ifindex};
    const uint8_t* data = rte_pktmbuf_mtod(o, const uint8_t*);
    frame.frame.assign(data, data + rte_pktmbuf_data_len(o));
    outcome.outputs.push_back(std::move(frame));
    rte_pktmbuf_free(o);
  }
  return outcome;
}

absl::Status DpdkBackend::RunOnWorkers(ControlCommand& cmd) {
  for (auto& w : workers_) {
    cmd.done.store(false, std::memory_order_relaxed);
    w->mailbox.store(&cmd, std::memory_order_release);
    const absl::Time deadline = absl::Now() + kControlTimeout;
    while (!cmd.done.load(std::memory_order_acquire)) {
      if (absl::Now() > deadline) {
        // Take the command back if the worker has not started it.
        ControlCommand* expected = &cmd;
        if (w->mailbox.compare_exchange_strong(expected, nullptr)) {
          return absl::DeadlineExceededError(
              absl::StrCat("dpdk backend: worker on lcore ", w->lcore, " did not answer"));
        }
      }
      std::this_thread::yield();
    }
  }
  return absl::OkStatus();
}

absl::Status DpdkBackend::SetNeighborAnswers(const std::vector<IpAddr>& addresses) {
  std::lock_guard<std::mutex> lock(control_mu_);
  ControlCommand cmd{.kind = ControlCommand::Kind::kSetNeighborAnswers};
  if (!addresses.empty()) {
    cmd.answers = std::make_shared<const NeighborAnswers>(addresses);
  }
  return RunOnWorkers(cmd);
}

absl::StatusOr<Counters> DpdkBackend::ReadCounters() {
  std::lock_guard<std::mutex> lock(control_mu_);
  ControlCommand cmd{.kind = ControlCommand::Kind::kCounters};
  DPV2_RETURN_IF_ERROR(RunOnWorkers(cmd));
  return cmd.counters;
}

absl::StatusOr<std::vector<FlowEvent>> DpdkBackend::DrainEvents(size_t max_events) {
  std::lock_guard<std::mutex> lock(control_mu_);
  std::vector<FlowEvent> events;
  std::vector<dpv2_event> records;
  for (auto& w : workers_) {
    if (events.size() >= max_events) {
      break;
    }
    records.resize(std::min<size_t>(max_events - events.size(), rte_ring_count(w->events)));
    const unsigned n = rte_ring_sc_dequeue_burst_elem(w->events, records.data(), sizeof(dpv2_event),
                                                      static_cast<unsigned>(records.size()), nullptr);
    for (unsigned k = 0; k < n; ++k) {
      events.push_back(FlowEvent::FromAbi(records[k]));
    }
  }
  // Each worker's ring is in order; merge them by time.
  std::stable_sort(events.begin(), events.end(), [](const FlowEvent& a, const FlowEvent& b) {
    return a.timestamp_ns < b.timestamp_ns;
  });
  return events;
}

absl::StatusOr<std::vector<ConntrackEntry>> DpdkBackend::DumpConntrack() {
  std::lock_guard<std::mutex> lock(control_mu_);
  ControlCommand cmd{.kind = ControlCommand::Kind::kDumpConntrack};
  DPV2_RETURN_IF_ERROR(RunOnWorkers(cmd));
  return std::move(cmd.entries);
}

absl::Status DpdkBackend::FlushConntrack() {
  std::lock_guard<std::mutex> lock(control_mu_);
  ControlCommand cmd{.kind = ControlCommand::Kind::kFlushConntrack};
  return RunOnWorkers(cmd);
}

absl::StatusOr<GcStats> DpdkBackend::CollectGarbage() {
  std::lock_guard<std::mutex> lock(control_mu_);
  ControlCommand cmd{.kind = ControlCommand::Kind::kCollectGarbage, .now_ns = NowNs()};
  DPV2_RETURN_IF_ERROR(RunOnWorkers(cmd));
  return cmd.gc;
}

void DpdkBackend::AdvanceClock(absl::Duration d) {
  shared_->clock_offset_ns.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_relaxed);
}

uint64_t DpdkBackend::NowNs() const {
  return MonotonicNs() + shared_->clock_offset_ns.load(std::memory_order_relaxed);
}

std::vector<WorkerStats> DpdkBackend::ReadWorkerStats() const {
  std::vector<WorkerStats> out;
  const double ns_per_tsc = 1e9 / static_cast<double>(rte_get_tsc_hz());
  for (const auto& w : workers_) {
    uint64_t cpu_ns = 0;
    timespec ts;
    if (w->cpu_clock_ready.load(std::memory_order_acquire) &&
        clock_gettime(w->cpu_clock, &ts) == 0) {
      cpu_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
    }
    out.push_back({.lcore = w->lcore,
                   .packets = w->packets.load(std::memory_order_relaxed),
                   .handed_off = w->handed_off.load(std::memory_order_relaxed),
                   .handoff_drops = w->handoff_drops.load(std::memory_order_relaxed),
                   .busy_ns = static_cast<uint64_t>(
                       static_cast<double>(w->busy_tsc.load(std::memory_order_relaxed)) *
                       ns_per_tsc),
                   .cpu_ns = cpu_ns});
  }
  return out;
}

std::vector<PortStats> DpdkBackend::ReadPortStats() const {
  std::vector<PortStats> out;
  for (const auto& port : ports_) {
    if (port->injection) {
      continue;
    }
    rte_eth_stats st{};
    rte_eth_stats_get(port->port_id, &st);
    out.push_back({.device = port->options.device,
                   .rx_packets = st.ipackets,
                   .tx_packets = st.opackets,
                   .rx_missed = st.imissed,
                   .rx_errors = st.ierrors,
                   .tx_errors = st.oerrors});
  }
  return out;
}

}  // namespace dpv2::dpdk

namespace dpv2 {

absl::Status SetDpdkNeighborAnswers(Backend& backend, const std::vector<IpAddr>& addresses) {
  auto* dpdk_backend = dynamic_cast<dpdk::DpdkBackend*>(&backend);
  if (dpdk_backend == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SetDpdkNeighborAnswers: the ", backend.Name(), " backend is not a DPDK backend"));
  }
  return dpdk_backend->SetNeighborAnswers(addresses);
}

}  // namespace dpv2
