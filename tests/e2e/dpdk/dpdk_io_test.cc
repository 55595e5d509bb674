// The DPDK backend's I/O, threading and publication, with a datapath program
// of the test's own (the core pipeline is covered by conformance_dpdk): real
// EAL, real ring-based ethdev ports, a real worker lcore.
#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/dpdk/datapath_program.h"
#include "backends/dpdk/dpdk_backend.h"
#include "backends/dpdk/rte.h"
#include "dpdk_test_eal.h"
#include "dpv2/dpdk.h"
#include "dpv2/packet.h"

namespace dpv2::dpdk {
namespace {

// Tables of the test program: `cells` all hold the number of batches
// applied. Apply writes them one at a time, so a worker that read a copy
// while it was being written would see unequal cells (a torn read).
struct MarkerTables {
  std::vector<uint32_t> cells = std::vector<uint32_t>(4096, 0);
};

// Marks each frame: byte 14 = 1 if the worker saw a torn copy, bytes 15..18
// = the generation it saw; swaps the MACs; PASSes it (kTx when byte 19 is
// 0xEE, with a reply of 60 bytes of 0xAB). A batch with a backend id 0 is
// rejected.
class MarkerLcore : public LcoreDatapath {
 public:
  MarkerLcore(const MarkerTables* copies, EventSink* sink) : copies_(copies), sink_(sink) {}

  FrameResult Process(int copy, Entry entry, uint32_t ifindex, absl::Span<uint8_t> frame,
                      uint64_t now_ns, std::vector<dpv2_event>* collected) override {
    (void)entry;
    FrameResult r;
    ++packets_;
    if (frame.size() < 20) {
      r.verdict = Verdict::kDrop;
      r.drop_reason = DPV2_DROP_TRUNCATED;
      ++drops_;
      return r;
    }
    const std::vector<uint32_t>& cells = copies_[copy].cells;
    const uint32_t gen = cells[0];
    bool torn = false;
    for (uint32_t c : cells) {
      torn |= (c != gen);
    }
    uint8_t mac[6];
    std::memcpy(mac, frame.data(), 6);
    std::memcpy(frame.data(), frame.data() + 6, 6);
    std::memcpy(frame.data() + 6, mac, 6);
    frame[14] = torn ? 1 : 0;
    std::memcpy(frame.data() + 15, &gen, 4);
    dpv2_event ev{};
    ev.timestamp_ns = now_ns;
    ev.type = DPV2_EVENT_TRACE;
    ev.ifindex = ifindex;
    ev.pkt_len = static_cast<uint32_t>(frame.size());
    sink_->Emit(ev);
    if (collected != nullptr) {
      collected->push_back(ev);
    }
    if (frame[19] == 0xEE) {
      r.verdict = Verdict::kTx;
      r.out_ifindex = ifindex;
      reply_.fill(0xAB);
      r.reply = absl::MakeConstSpan(reply_);
      return r;
    }
    r.verdict = Verdict::kPass;
    return r;
  }
  void AddCounters(Counters* total) const override {
    total->counters[DPV2_CNT_PACKETS] += packets_;
    total->drops[DPV2_DROP_TRUNCATED] += drops_;
  }
  void DumpConntrack(std::vector<ConntrackEntry>* out) const override {
    ConntrackEntry e{};
    e.value.packets = packets_;
    out->push_back(e);
  }
  void FlushConntrack() override { packets_ = 0; }
  GcStats CollectGarbage(uint64_t) override { return {.scanned = packets_, .deleted = 0}; }

 private:
  const MarkerTables* copies_;
  EventSink* sink_;
  std::array<uint8_t, 60> reply_{};  // FrameResult::reply points here
  uint64_t packets_ = 0;
  uint64_t drops_ = 0;
};

class MarkerProgram : public DatapathProgram {
 public:
  absl::Status Apply(int copy, const ChangeBatch& batch) override {
    for (const BackendEntry& b : batch.backends_upsert) {
      if (b.id == 0) {
        return absl::InvalidArgumentError("marker: backend id 0");
      }
    }
    for (uint32_t& c : copies_[copy].cells) {
      c += 1;
      // Slow the write down so that an unsafe publication would be seen.
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    return absl::OkStatus();
  }
  absl::Status Resync(int to, int from) override {
    copies_[to] = copies_[from];
    return absl::OkStatus();
  }
  std::unique_ptr<LcoreDatapath> MakeLcore(EventSink* events, uint64_t, uint32_t) override {
    return std::make_unique<MarkerLcore>(copies_, events);
  }

 private:
  MarkerTables copies_[2];
};

std::vector<uint8_t> Frame(uint8_t last = 0) {
  std::vector<uint8_t> f(64, 0);
  for (int i = 0; i < 6; ++i) {
    f[i] = 0x02;        // destination 02:02:02:02:02:02
    f[6 + i] = 0x04;    // source 04:04:04:04:04:04
  }
  f[12] = 0x08;
  f[19] = last;
  return f;
}

// A ring-based ethdev whose two sides the test holds: it writes the port's
// RX ring and reads its TX ring.
struct TestRingPort {
  std::string name;
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
  rte_mempool* pool = nullptr;
};

TestRingPort MakeTestRingPort(const std::string& name) {
  TestRingPort p{.name = name};
  p.rx = rte_ring_create((name + "r").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.tx = rte_ring_create((name + "t").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.pool = rte_pktmbuf_pool_create((name + "p").c_str(), 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  REQUIRE(p.rx != nullptr);
  REQUIRE(p.tx != nullptr);
  REQUIRE(p.pool != nullptr);
  const int id = rte_eth_from_rings(name.c_str(), &p.rx, 1, &p.tx, 1, SOCKET_ID_ANY);
  REQUIRE(id >= 0);
  // The ring PMD names the device after the rings ("net_ring_" + name).
  char dev_name[RTE_ETH_NAME_MAX_LEN];
  REQUIRE(rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev_name) == 0);
  p.name = dev_name;
  return p;
}

std::vector<std::vector<uint8_t>> ReadTx(TestRingPort& p, size_t want) {
  std::vector<std::vector<uint8_t>> frames;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (frames.size() < want && std::chrono::steady_clock::now() < deadline) {
    void* obj;
    if (rte_ring_dequeue(p.tx, &obj) != 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    auto* m = static_cast<rte_mbuf*>(obj);
    const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
    frames.emplace_back(d, d + rte_pktmbuf_data_len(m));
    rte_pktmbuf_free(m);
  }
  return frames;
}

// One worker (lcore 1); the steering test uses both worker lcores.
DpdkOptions Options(std::vector<DpdkPortOptions> ports) {
  return DpdkOptions{.ports = std::move(ports), .lcores = {1}, .idle_sleep_us = 20};
}

std::unique_ptr<DpdkBackend> MakeBackend(const DpdkOptions& options) {
  absl::StatusOr<std::unique_ptr<DpdkBackend>> b =
      DpdkBackend::Create(options, std::make_unique<MarkerProgram>());
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  return std::move(*b);
}

TEST_CASE("RunPacket carries a frame through a worker lcore and returns its rewritten bytes") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_a");
  std::unique_ptr<DpdkBackend> b = MakeBackend(Options({{.device = port.name}}));
  absl::StatusOr<PacketOutcome> out =
      b->RunPacket({.entry = Entry::kFromNetwork, .ifindex = 9, .frame = Frame()});
  REQUIRE(out.ok());
  CHECK(out->verdict == Verdict::kPass);
  REQUIRE(out->outputs.size() == 1);
  const std::vector<uint8_t>& f = out->outputs[0].frame;
  REQUIRE(f.size() == 64);
  CHECK(f[0] == 0x04);  // MACs swapped by the program, on the worker
  CHECK(f[6] == 0x02);
  CHECK(out->outputs[0].verdict == Verdict::kPass);
  REQUIRE(out->events.size() == 1);
  CHECK(out->events[0].ifindex == 9);
  // The same event is also queued for DrainEvents.
  absl::StatusOr<std::vector<FlowEvent>> evs = b->DrainEvents(100);
  REQUIRE(evs.ok());
  CHECK(evs->size() == 1);
}

TEST_CASE("RunPacket returns a generated reply with verdict TX and the input interface") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_b");
  std::unique_ptr<DpdkBackend> b = MakeBackend(Options({{.device = port.name}}));
  absl::StatusOr<PacketOutcome> out = b->RunPacket({.ifindex = 3, .frame = Frame(0xEE)});
  REQUIRE(out.ok());
  CHECK(out->verdict == Verdict::kTx);
  REQUIRE(out->outputs.size() == 1);
  CHECK(out->outputs[0].verdict == Verdict::kTx);
  CHECK(out->outputs[0].out_ifindex == 3);
  CHECK(out->outputs[0].frame == std::vector<uint8_t>(60, 0xAB));
}

TEST_CASE("a dropped frame yields no output and is counted") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_c");
  std::unique_ptr<DpdkBackend> b = MakeBackend(Options({{.device = port.name}}));
  absl::StatusOr<PacketOutcome> out = b->RunPacket({.frame = std::vector<uint8_t>(16, 0)});
  REQUIRE(out.ok());
  CHECK(out->verdict == Verdict::kDrop);
  CHECK(out->drop_reason == DPV2_DROP_TRUNCATED);
  CHECK(out->outputs.empty());
  absl::StatusOr<Counters> c = b->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->drop(DPV2_DROP_TRUNCATED) == 1);
  CHECK(c->counter(DPV2_CNT_PACKETS) == 1);
}

TEST_CASE("frames received on a port are processed and sent out of it in bursts") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_d");
  std::unique_ptr<DpdkBackend> b = MakeBackend(Options({{.device = port.name, .ifindex = 5}}));
  constexpr int kFrames = 100;
  for (int i = 0; i < kFrames; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
    REQUIRE(m != nullptr);
    std::vector<uint8_t> f = Frame();
    std::memcpy(rte_pktmbuf_append(m, f.size()), f.data(), f.size());
    REQUIRE(rte_ring_enqueue(port.rx, m) == 0);
  }
  std::vector<std::vector<uint8_t>> out = ReadTx(port, kFrames);
  REQUIRE(out.size() == kFrames);
  for (const auto& f : out) {
    CHECK(f[0] == 0x04);
    CHECK(f[14] == 0);
  }
  absl::StatusOr<Counters> c = b->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->counter(DPV2_CNT_PACKETS) == kFrames);
  std::vector<PortStats> stats = b->ReadPortStats();
  REQUIRE(stats.size() == 1);
  CHECK(stats[0].rx_packets == kFrames);
  CHECK(stats[0].tx_packets == kFrames);
}

TEST_CASE("passed frames get the port's MAC as source and the gateway MAC as destination") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_e");
  const MacAddr gw = {0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
  std::unique_ptr<DpdkBackend> b =
      MakeBackend(Options({{.device = port.name, .gateway_mac = gw}}));
  uint16_t port_id;
  REQUIRE(rte_eth_dev_get_port_by_name(port.name.c_str(), &port_id) == 0);
  rte_ether_addr own;
  REQUIRE(rte_eth_macaddr_get(port_id, &own) == 0);
  rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
  std::vector<uint8_t> f = Frame();
  std::memcpy(rte_pktmbuf_append(m, f.size()), f.data(), f.size());
  REQUIRE(rte_ring_enqueue(port.rx, m) == 0);
  std::vector<std::vector<uint8_t>> out = ReadTx(port, 1);
  REQUIRE(out.size() == 1);
  CHECK(std::equal(gw.begin(), gw.end(), out[0].begin()));
  CHECK(std::memcmp(out[0].data() + 6, own.addr_bytes, 6) == 0);
}

TEST_CASE("Apply publishes whole table copies: no worker ever reads a copy being written") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_f");
  std::unique_ptr<DpdkBackend> b = MakeBackend(Options({{.device = port.name}}));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> frames{0};
  std::atomic<uint32_t> last_gen{0};
  std::atomic<bool> went_back{false};
  std::thread traffic([&] {
    // Frames through the port, concurrent with the control plane.
    while (!done.load()) {
      rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
      if (m == nullptr) {
        continue;
      }
      std::vector<uint8_t> f = Frame();
      std::memcpy(rte_pktmbuf_append(m, f.size()), f.data(), f.size());
      if (rte_ring_enqueue(port.rx, m) != 0) {
        rte_pktmbuf_free(m);
      }
      void* obj;
      while (rte_ring_dequeue(port.tx, &obj) == 0) {
        auto* o = static_cast<rte_mbuf*>(obj);
        const uint8_t* d = rte_pktmbuf_mtod(o, const uint8_t*);
        torn += d[14];
        uint32_t gen;
        std::memcpy(&gen, d + 15, 4);
        if (gen < last_gen.load()) {
          went_back = true;
        }
        last_gen = gen;
        ++frames;
        rte_pktmbuf_free(o);
      }
    }
  });
  constexpr uint32_t kBatches = 200;
  for (uint32_t i = 0; i < kBatches; ++i) {
    REQUIRE(b->Apply(ChangeBatch{}).ok());
  }
  // A rejected batch changes neither copy.
  ChangeBatch bad;
  bad.backends_upsert.push_back({.id = 0, .value = {}});
  CHECK_FALSE(b->Apply(bad).ok());
  absl::StatusOr<PacketOutcome> out = b->RunPacket({.frame = Frame()});
  done = true;
  traffic.join();
  REQUIRE(out.ok());
  uint32_t gen;
  std::memcpy(&gen, out->outputs.at(0).frame.data() + 15, 4);
  CHECK(gen == kBatches);
  CHECK(out->outputs[0].frame[14] == 0);
  CHECK(frames.load() > 0);
  CHECK(torn.load() == 0);
  CHECK_FALSE(went_back.load());
}

TEST_CASE("control requests reach every worker through its mailbox") {
  REQUIRE(RequireTestEal() == "");
  TestRingPort port = MakeTestRingPort("io_g");
  std::unique_ptr<DpdkBackend> b = MakeBackend(Options({{.device = port.name}}));
  for (int i = 0; i < 3; ++i) {
    REQUIRE(b->RunPacket({.frame = Frame()}).ok());
  }
  absl::StatusOr<std::vector<ConntrackEntry>> ct = b->DumpConntrack();
  REQUIRE(ct.ok());
  REQUIRE(ct->size() == b->worker_count());
  CHECK(ct->at(0).value.packets == 3);
  absl::StatusOr<GcStats> gc = b->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->scanned == 3);
  REQUIRE(b->FlushConntrack().ok());
  ct = b->DumpConntrack();
  REQUIRE(ct.ok());
  CHECK(ct->at(0).value.packets == 0);
}

TEST_CASE("malformed DPDK options are rejected naming the field") {
  REQUIRE(RequireTestEal() == "");
  auto error = [](const DpdkOptions& o) {
    absl::StatusOr<std::unique_ptr<DpdkBackend>> b =
        DpdkBackend::Create(o, std::make_unique<MarkerProgram>());
    REQUIRE_FALSE(b.ok());
    return std::string(b.status().message());
  };
  CHECK_THAT(error(DpdkOptions{}), Catch::Contains("ports"));
  CHECK_THAT(error(Options({{.device = ""}})), Catch::Contains("ports[0]: device is empty"));
  CHECK_THAT(error(Options({{.device = "x"}, {.device = "x"}})), Catch::Contains("listed twice"));
  CHECK_THAT(error(Options({{.device = "net_nonexistent9"}})),
             Catch::Contains("\"net_nonexistent9\" is not an EAL port"));
  DpdkOptions o = Options({{.device = "x"}});
  o.burst_size = 0;
  CHECK_THAT(error(o), Catch::Contains("burst_size 0"));
  o = Options({{.device = "x"}});
  o.event_ring_size = 1000;
  CHECK_THAT(error(o), Catch::Contains("event_ring_size 1000 is not a power of two"));
  o = Options({{.device = "x"}});
  o.config.ct_tcp_entries = 1000;
  o.config.ct_other_entries = 24;
  o.conntrack_reserve = 1025;
  CHECK_THAT(error(o), Catch::Contains("conntrack_reserve 1025 exceeds the conntrack capacity 1024"));
  o = Options({{.device = "x"}});
  o.config.maglev_table_size = 16380;
  CHECK_THAT(error(o), Catch::Contains("maglev_table_size"));
  TestRingPort port = MakeTestRingPort("io_h");
  o = Options({{.device = port.name}});
  o.lcores = {0};
  CHECK_THAT(error(o), Catch::Contains("main lcore"));
  o.lcores = {7};
  CHECK_THAT(error(o), Catch::Contains("lcore 7 is not enabled"));
  o.lcores = {};
  o.ports[0].forward_to = "elsewhere";
  CHECK_THAT(error(o), Catch::Contains("forward_to \"elsewhere\""));
}

// A ring port with one RX/TX ring pair per queue, both sides held by the test.
struct TestMultiQueuePort {
  std::string name;
  std::vector<rte_ring*> rx;
  std::vector<rte_ring*> tx;
  rte_mempool* pool = nullptr;
};

TestMultiQueuePort MakeTestMultiQueuePort(const std::string& name, int queues) {
  TestMultiQueuePort p;
  for (int q = 0; q < queues; ++q) {
    p.rx.push_back(rte_ring_create(absl::StrCat(name, "r", q).c_str(), 1024, SOCKET_ID_ANY,
                                   RING_F_SP_ENQ | RING_F_SC_DEQ));
    p.tx.push_back(rte_ring_create(absl::StrCat(name, "t", q).c_str(), 1024, SOCKET_ID_ANY,
                                   RING_F_SP_ENQ | RING_F_SC_DEQ));
    REQUIRE(p.rx.back() != nullptr);
    REQUIRE(p.tx.back() != nullptr);
  }
  p.pool = rte_pktmbuf_pool_create((name + "p").c_str(), 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  REQUIRE(p.pool != nullptr);
  const int id = rte_eth_from_rings(name.c_str(), p.rx.data(), queues, p.tx.data(), queues,
                                    SOCKET_ID_ANY);
  REQUIRE(id >= 0);
  char dev_name[RTE_ETH_NAME_MAX_LEN];
  REQUIRE(rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev_name) == 0);
  p.name = dev_name;
  return p;
}

void Enqueue(TestMultiQueuePort& p, int queue, const std::vector<uint8_t>& f) {
  rte_mbuf* m = rte_pktmbuf_alloc(p.pool);
  REQUIRE(m != nullptr);
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
  REQUIRE(rte_ring_enqueue(p.rx[queue], m) == 0);
}

// Frames sent on any TX queue, parsed, until `want` arrived or 10 s passed.
std::vector<ParsedPacket> ReadAllTx(TestMultiQueuePort& p, size_t want) {
  std::vector<ParsedPacket> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    bool any = false;
    for (rte_ring* r : p.tx) {
      void* obj;
      if (rte_ring_dequeue(r, &obj) != 0) {
        continue;
      }
      any = true;
      auto* m = static_cast<rte_mbuf*>(obj);
      const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
      ParseResult parsed = ParsePacket(absl::MakeConstSpan(d, rte_pktmbuf_data_len(m)));
      rte_pktmbuf_free(m);
      REQUIRE(parsed.drop == DPV2_DROP_NONE);
      out.push_back(parsed.pkt);
    }
    if (!any) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return out;
}

// One ClusterIP 10.96.0.10:80/TCP with the single backend 10.0.1.5:8080.
ChangeBatch OneService(uint32_t table_size) {
  ChangeBatch b;
  BackendEntry be{.id = 1, .value = {}};
  be.value.addr = IpAddr::V4(0x0a000105).ToAbi();
  be.value.port = htons(8080);
  be.value.proto = DPV2_PROTO_TCP;
  be.value.family = DPV2_FAMILY_V4;
  b.backends_upsert.push_back(be);
  b.tables_upsert.push_back({.id = 1, .slots = std::vector<uint32_t>(table_size, 1)});
  ServiceEntry se{};
  se.key.addr = IpAddr::V4(0x0a60000a).ToAbi();
  se.key.port = htons(80);
  se.key.proto = DPV2_PROTO_TCP;
  se.key.family = DPV2_FAMILY_V4;
  se.value.service_id = 1;
  se.value.table_id = 1;
  se.value.backend_count = 1;
  b.services_upsert.push_back(se);
  return b;
}

// A core-pipeline backend on `port` with worker lcores 1 and 2, serving
// OneService.
std::unique_ptr<DpdkBackend> TwoLcoreBackend(const TestMultiQueuePort& port) {
  DpdkOptions options{.ports = {{.device = port.name, .ifindex = 1}},
                      .lcores = {1, 2},
                      .idle_sleep_us = 20};
  absl::StatusOr<std::unique_ptr<DpdkBackend>> b = MakeCorePipelineDpdkBackend(options);
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  REQUIRE((*b)->worker_count() == 2);
  REQUIRE((*b)->Apply(OneService(options.config.maglev_table_size)).ok());
  return std::move(*b);
}

// Client i (address client_base + i, port first_port + i) sends a SYN to
// OneService's ClusterIP by queue i % 2; returns the frames that left.
std::vector<ParsedPacket> OpenConnections(TestMultiQueuePort& port, uint32_t client_base,
                                          uint16_t first_port, int count) {
  for (int i = 0; i < count; ++i) {
    Enqueue(port, i % 2,
            PacketBuilder()
                .IPv4(IpAddr::V4(client_base + static_cast<uint32_t>(i)), IpAddr::V4(0x0a60000a))
                .Tcp(static_cast<uint16_t>(first_port + i), 80, kTcpSyn)
                .Build());
  }
  return ReadAllTx(port, static_cast<size_t>(count));
}

TEST_CASE("with two lcores, a NATed reply arriving on the other lcore's queue is steered to the "
          "lcore holding its conntrack entry and reverse-NATed") {
  REQUIRE(RequireTestEal() == "");
  TestMultiQueuePort port = MakeTestMultiQueuePort("io_steer", 2);
  std::unique_ptr<DpdkBackend> b = TwoLcoreBackend(port);

  // Each client's SYN enters by one queue, the backend's SYN-ACK by the
  // other, as RSS on addresses before and after NAT would spread them.
  constexpr int kClients = 64;
  const IpAddr vip = IpAddr::V4(0x0a60000a);
  const IpAddr backend = IpAddr::V4(0x0a000105);
  auto client = [](int i) { return IpAddr::V4(0xc0a80100 + static_cast<uint32_t>(i)); };
  std::vector<ParsedPacket> syns = OpenConnections(port, 0xc0a80100, 40000, kClients);
  REQUIRE(syns.size() == kClients);
  for (const ParsedPacket& p : syns) {
    CHECK(p.dst == backend);  // DNATed
    CHECK(p.dport == 8080);
  }
  for (int i = 0; i < kClients; ++i) {
    Enqueue(port, (i + 1) % 2,
            PacketBuilder().IPv4(backend, client(i)).Tcp(8080, static_cast<uint16_t>(40000 + i),
                                                         kTcpSyn | kTcpAck).Build());
  }
  std::vector<ParsedPacket> replies = ReadAllTx(port, kClients);
  REQUIRE(replies.size() == kClients);
  for (const ParsedPacket& p : replies) {
    CHECK(p.src == vip);  // reverse-NATed: the lcore had the connection's entries
    CHECK(p.sport == 80);
  }
  absl::StatusOr<Counters> c = b->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->counter(DPV2_CNT_SERVICE_NEW) == kClients);
  CHECK(c->counter(DPV2_CNT_REV_NAT) == kClients);
  // Both lcores worked, and frames did cross between them.
  uint64_t handed_off = 0;
  for (const WorkerStats& w : b->ReadWorkerStats()) {
    CHECK(w.packets > 0);
    CHECK(w.handoff_drops == 0);
    handed_off += w.handed_off;
  }
  CHECK(handed_off > 0);
}

TEST_CASE("with two lcores, RunPacket runs a frame on the lcore owning its connection, so a "
          "backend's reply to connections opened on the ports is reverse-NATed on both lcores") {
  REQUIRE(RequireTestEal() == "");
  TestMultiQueuePort port = MakeTestMultiQueuePort("io_inject", 2);
  std::unique_ptr<DpdkBackend> b = TwoLcoreBackend(port);
  // 32 connections opened by port frames: their owners are spread over both
  // lcores (worker 0 alone would hold about half of them).
  constexpr int kClients = 32;
  const IpAddr vip = IpAddr::V4(0x0a60000a);
  const IpAddr backend = IpAddr::V4(0x0a000105);
  auto client = [](int i) { return IpAddr::V4(0xc0a80200 + static_cast<uint32_t>(i)); };
  REQUIRE(OpenConnections(port, 0xc0a80200, 41000, kClients).size() == kClients);
  for (int i = 0; i < kClients; ++i) {
    absl::StatusOr<PacketOutcome> out = b->RunPacket(
        {.entry = Entry::kFromNetwork,
         .ifindex = 1,
         .frame = PacketBuilder()
                      .IPv4(backend, client(i))
                      .Tcp(8080, static_cast<uint16_t>(41000 + i), kTcpSyn | kTcpAck)
                      .Build()});
    REQUIRE(out.ok());
    REQUIRE(out->outputs.size() == 1);
    const ParsedPacket p = ParsePacket(out->outputs[0].frame).pkt;
    INFO("client " << i);
    CHECK(p.src == vip);
    CHECK(p.sport == 80);
    // The first reply of a connection: its TRACE REPLY|TRANSLATED event.
    REQUIRE(out->events.size() == 1);
    CHECK(out->events[0].type == DPV2_EVENT_TRACE);
  }
  absl::StatusOr<Counters> c = b->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->counter(DPV2_CNT_REV_NAT) == kClients);
  CHECK(c->counter(DPV2_CNT_CT_CREATED) == 2 * kClients);  // no entry made by a stray lcore
}

TEST_CASE("a second EAL with different arguments is refused") {
  REQUIRE(RequireTestEal() == "");
  absl::Status s = AcquireEal({"--no-huge", "-l", "0"});
  CHECK_FALSE(s.ok());
  CHECK_THAT(std::string(s.message()), Catch::Contains("already running"));
}

}  // namespace
}  // namespace dpv2::dpdk
