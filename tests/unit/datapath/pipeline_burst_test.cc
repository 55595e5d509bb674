// ProcessBurst looks every frame up ahead of running the burst and reuses
// those answers while the conntrack table has not changed; these tests hold
// it to "the same effect as one ProcessFrame call per frame, in order", with
// bursts whose later frames depend on entries the earlier ones create.
#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "core/datapath/conntrack_table.h"
#include "core/datapath/datapath_tables.h"
#include "core/datapath/pipeline.h"
#include "dpv2/net.h"
#include "dpv2/packet.h"
#include "pipeline_fixtures.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = 7;
constexpr uint32_t kBackendIfindex = 7;
constexpr uint64_t kNow = 5'000'000'000;

DatapathConfig Config(uint32_t ct_tcp_entries = 1024) {
  DatapathConfig c;
  c.maglev_table_size = kM;
  c.max_services = 4;
  c.max_backends = 4;
  c.max_tables = 4;
  c.ct_tcp_entries = ct_tcp_entries;
  return c;
}

// 10.96.0.1:80/TCP -> one backend, 10.0.0.1:8080, a local pod on ifindex 7.
ChangeBatch OneService() {
  ChangeBatch b = OneServiceBatch("10.0.0.1", kM);
  b.endpoints_upsert = {Pod("10.0.0.1", 1, kBackendIfindex, 1000, 0)};
  return b;
}

struct Input {
  std::vector<uint8_t> frame;
  Entry entry;
  uint32_t ifindex;
};

Input ToService(const char* client, uint16_t sport, uint8_t flags) {
  return {PacketBuilder().IPv4(client, "10.96.0.1").Tcp(sport, 80, flags).Build(),
          Entry::kFromNetwork, 1};
}
Input FromBackend(const char* client, uint16_t cport, uint8_t flags) {
  return {PacketBuilder().IPv4("10.0.0.1", client).Tcp(8080, cport, flags).Build(),
          Entry::kFromPod, kBackendIfindex};
}

// Runs `inputs` as one burst on one state and frame by frame on another,
// and requires the same verdicts, output bytes, counters and conntrack.
void RequireBurstMatchesFrames(const DatapathTables& tables, DatapathState& burst_state,
                               DatapathState& frame_state, const std::vector<Input>& inputs) {
  std::vector<Input> by_burst = inputs;
  std::vector<Input> by_frame = inputs;
  std::vector<BurstFrame> burst;
  for (Input& in : by_burst) {
    burst.push_back({.frame = absl::MakeSpan(in.frame), .entry = in.entry, .ifindex = in.ifindex});
  }
  std::vector<FrameResult> results(burst.size());
  ProcessBurst(tables, burst_state, burst, kNow, results.data());
  for (size_t i = 0; i < by_frame.size(); ++i) {
    INFO("frame " << i);
    std::vector<uint8_t> reply_of_burst(results[i].reply.begin(), results[i].reply.end());
    const FrameResult one = ProcessFrame(tables, frame_state, by_frame[i].entry,
                                         by_frame[i].ifindex, absl::MakeSpan(by_frame[i].frame),
                                         kNow);
    CHECK(results[i].verdict == one.verdict);
    CHECK(results[i].drop_reason == one.drop_reason);
    CHECK(results[i].out_ifindex == one.out_ifindex);
    CHECK(by_burst[i].frame == by_frame[i].frame);
    CHECK(reply_of_burst == std::vector<uint8_t>(one.reply.begin(), one.reply.end()));
  }
  CHECK(burst_state.counters == frame_state.counters);
  CHECK(burst_state.drops == frame_state.drops);
  const std::vector<ConntrackEntry> a = SortedDump(burst_state.conntrack);
  const std::vector<ConntrackEntry> b = SortedDump(frame_state.conntrack);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(std::memcmp(&a[i].key, &b[i].key, sizeof(a[i].key)) == 0);
    CHECK(std::memcmp(&a[i].value, &b[i].value, sizeof(a[i].value)) == 0);
  }
}

// The tables of OneService and two states that start alike: one for the
// burst, one for frame by frame.
struct Twins {
  explicit Twins(uint32_t ct_tcp_entries = 1024)
      : config(Config(ct_tcp_entries)),
        tables(config),
        burst_state(config, nullptr),
        frame_state(config, nullptr) {
    REQUIRE(tables.Apply(OneService()).ok());
  }
  void RequireSame(const std::vector<Input>& inputs) {
    RequireBurstMatchesFrames(tables, burst_state, frame_state, inputs);
  }

  DatapathConfig config;
  DatapathTables tables;
  DatapathState burst_state;
  DatapathState frame_state;
};

TEST_CASE("a burst whose frames depend on entries created earlier in it acts frame by frame") {
  Twins t;
  // The SYN-ACK is a reply only once the SYN before it created the entry;
  // the ACK is established only then; the RST closes and the next SYN
  // reopens; a runt and a non-IP frame sit in between.
  std::vector<Input> inputs = {
      ToService("192.0.2.1", 1000, kTcpSyn),
      FromBackend("192.0.2.1", 1000, kTcpSyn | kTcpAck),
      ToService("192.0.2.1", 1000, kTcpAck),
      ToService("192.0.2.2", 2000, kTcpSyn),
      {std::vector<uint8_t>(10, 0), Entry::kFromNetwork, 1},
      ToService("192.0.2.1", 1000, kTcpRst),
      ToService("192.0.2.1", 1000, kTcpSyn),
      {PacketBuilder().EtherType(0x0806).Build(), Entry::kFromNetwork, 1},
      ToService("192.0.2.2", 2000, kTcpAck),
      FromBackend("192.0.2.2", 2000, kTcpAck),
  };
  t.RequireSame(inputs);
  CHECK(t.burst_state.counters[DPV2_CNT_SERVICE_NEW] == 3);
  CHECK(t.burst_state.counters[DPV2_CNT_REV_NAT] == 2);
  CHECK(t.burst_state.counters[DPV2_CNT_CT_REOPENED] == 1);
}

TEST_CASE("a burst of established frames, whose look-ahead answers stay valid, acts frame by frame") {
  Twins t;
  std::vector<Input> open;
  for (uint16_t c = 0; c < 8; ++c) {
    open.push_back(ToService("192.0.2.1", static_cast<uint16_t>(3000 + c), kTcpSyn));
  }
  t.RequireSame(open);
  const uint64_t generation = t.burst_state.conntrack.generation();
  std::vector<Input> established;
  for (uint16_t c = 0; c < 8; ++c) {
    established.push_back(ToService("192.0.2.1", static_cast<uint16_t>(3000 + c), kTcpAck));
    established.push_back(FromBackend("192.0.2.1", static_cast<uint16_t>(3000 + c), kTcpAck));
  }
  t.RequireSame(established);
  CHECK(t.burst_state.conntrack.generation() == generation);  // nothing created
  CHECK(t.burst_state.counters[DPV2_CNT_SERVICE_ESTABLISHED] == 8);
  CHECK(t.burst_state.counters[DPV2_CNT_REV_NAT] == 8);
}

TEST_CASE("a burst that fills the conntrack table drops the same frames as frame by frame") {
  // Room for two connections (two entries each): the third SYN finds the
  // table full, the rest of the burst still runs.
  Twins t(/*ct_tcp_entries=*/4);
  std::vector<Input> inputs = {
      ToService("192.0.2.1", 1000, kTcpSyn), ToService("192.0.2.2", 1000, kTcpSyn),
      ToService("192.0.2.3", 1000, kTcpSyn), ToService("192.0.2.1", 1000, kTcpAck),
      ToService("192.0.2.3", 1000, kTcpAck),
  };
  t.RequireSame(inputs);
  CHECK(t.burst_state.drops[DPV2_DROP_CT_FULL] == 2);
  CHECK(t.burst_state.conntrack.size() == 4);
}

// A plain flow (no service): from the network to the local pod 10.0.0.1
// (delivered to its veth) when `inbound`, else from that pod to a remote
// host (passed to the stack).
Input Plain(int flow, bool inbound, uint8_t flags) {
  const uint16_t port = static_cast<uint16_t>(5000 + flow);
  if (inbound) {
    const std::string client = "192.0.2." + std::to_string(10 + flow);
    return {PacketBuilder().IPv4(client, "10.0.0.1").Tcp(port, 8080, flags).Build(),
            Entry::kFromNetwork, 1};
  }
  return {PacketBuilder().IPv4("10.0.0.1", "198.51.100.9").Tcp(port, 443, flags).Build(),
          Entry::kFromPod, kBackendIfindex};
}

TEST_CASE("a burst's look-ahead gives each stamped plain flow its own entry, and none after an "
          "earlier frame of the burst moved the table") {
  Twins t;
  // Twelve plain flows, alternately to the local pod and from it to a
  // remote host:
  // their SYNs create and stamp one entry each, which leaves the table (16
  // slots, doubling at 3/4) one entry short of growing.
  constexpr int kOpen = 12;
  std::vector<Input> open;
  for (int c = 0; c < kOpen; ++c) {
    open.push_back(Plain(c, c % 2 == 0, kTcpSyn));
  }
  t.RequireSame(open);
  REQUIRE(t.burst_state.conntrack.size() == kOpen);
  const size_t capacity = t.burst_state.conntrack.capacity();

  // A burst of their ACKs: every frame is served by the fast path from the
  // entry the look-ahead found, which must be its own (a neighbour's would
  // deliver a local flow as remote or the reverse, and update the wrong
  // entry's counters).
  std::vector<Input> established;
  for (int c = 0; c < kOpen; ++c) {
    established.push_back(Plain(c, c % 2 == 0, kTcpAck));
  }
  t.RequireSame(established);
  for (int c = 0; c < kOpen; ++c) {
    INFO("flow " << c);
    const PreparedFrame& p = t.burst_state.prepared[static_cast<size_t>(c)];
    CHECK(p.plain_looked_up);
    CHECK(p.stamped);
    dpv2_ct_key own = p.service_ct_key;
    own.flags = 0;
    const dpv2_ct_value* entry = t.burst_state.conntrack.Find(own, kNow);
    REQUIRE(entry != nullptr);
    CHECK(p.plain_entry == entry);
    CHECK(entry->packets == 2);
  }
  CHECK(t.burst_state.counters[DPV2_CNT_PASSED] == kOpen);  // SYNs and ACKs to the remote host
  CHECK(t.burst_state.counters[DPV2_CNT_REDIRECTED] == kOpen);  // and to the pod
  CHECK(t.burst_state.conntrack.capacity() == capacity);

  // Then ACKs around a new flow's SYN whose entry doubles the table: the
  // later frames' look-ahead pointers point into the old slots and must be
  // looked up again (with them, their updates would land in freed memory).
  std::vector<Input> moved;
  for (int c = 0; c < 4; ++c) {
    moved.push_back(Plain(c, c % 2 == 0, kTcpAck));
  }
  moved.push_back(Plain(kOpen, true, kTcpSyn));
  for (int c = 0; c < kOpen; ++c) {
    moved.push_back(Plain(c, c % 2 == 0, kTcpAck));
  }
  t.RequireSame(moved);
  CHECK(t.burst_state.conntrack.capacity() > capacity);
  for (int c = 0; c < kOpen; ++c) {
    INFO("flow " << c);
    dpv2_ct_key own = t.burst_state.prepared[static_cast<size_t>(5 + c)].service_ct_key;
    own.flags = 0;
    const dpv2_ct_value* entry = t.burst_state.conntrack.Find(own, kNow);
    REQUIRE(entry != nullptr);
    CHECK(entry->packets == (c < 4 ? 4u : 3u));
  }
}

}  // namespace
}  // namespace dpv2
