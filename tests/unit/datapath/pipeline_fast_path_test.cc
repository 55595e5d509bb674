// The core pipeline's established fast path (pipeline.cc ForwardFast,
// docs/datapath.md "Established fast path"): a forward packet whose
// conntrack entry was stamped at the tables' current revision, from the
// same interface, skips anti-spoofing, the frontend lookup and policy. These
// tests hold it to the full pipeline's answers: after any Apply, against
// another tables object, from another interface; and over a whole
// connection run beside a state whose tables change before every packet
// (so that it never takes the fast path).
#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
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
constexpr uint32_t kClientIfindex = 3;
constexpr uint32_t kOtherIfindex = 4;
constexpr uint32_t kBackendIfindex = 7;
constexpr uint32_t kClientIdentity = 1001;
constexpr uint32_t kBackendIdentity = 1002;
constexpr uint64_t kNow = 5'000'000'000;

DatapathConfig Config() {
  DatapathConfig c;
  c.maglev_table_size = kM;
  c.max_services = 4;
  c.max_backends = 4;
  c.max_tables = 4;
  c.ct_tcp_entries = 64;
  return c;
}

// 10.96.0.1:80/TCP -> backend pod 10.0.2.9:8080 (ifindex 7); client pod
// 10.0.1.5 (ifindex 3); pod 10.0.3.7 (ifindex 7 too, a plain flow's peer).
// Both pods of a connection are isolated (egress at the client, ingress at
// the backend) and allowed: an established forward packet makes two
// policy lookups on the full pipeline.
ChangeBatch Cluster() {
  ChangeBatch b = OneServiceBatch("10.0.2.9", kM);
  b.endpoints_upsert = {
      Pod("10.0.1.5", 1, kClientIfindex, kClientIdentity, DPV2_EP_F_EGRESS_POLICY),
      Pod("10.0.2.9", 2, kBackendIfindex, kBackendIdentity, DPV2_EP_F_INGRESS_POLICY),
      Pod("10.0.3.7", 3, kBackendIfindex, kBackendIdentity, DPV2_EP_F_INGRESS_POLICY)};
  b.policy_upsert = {AllowTcp(1, DPV2_DIR_EGRESS, kBackendIdentity, 8080),
                     AllowTcp(1, DPV2_DIR_EGRESS, kBackendIdentity, 9000),
                     AllowTcp(2, DPV2_DIR_INGRESS, kClientIdentity, 8080),
                     AllowTcp(3, DPV2_DIR_INGRESS, kClientIdentity, 9000)};
  return b;
}

// The batch that takes the backend's ingress allow away.
ChangeBatch RemoveBackendAllowTcp() {
  ChangeBatch b;
  b.policy_delete = {AllowTcp(2, DPV2_DIR_INGRESS, kClientIdentity, 8080).key};
  return b;
}

std::vector<uint8_t> ClientToService(uint8_t flags) {
  return PacketBuilder().IPv4("10.0.1.5", "10.96.0.1").Tcp(40000, 80, flags).Build();
}
std::vector<uint8_t> BackendToClient(uint8_t flags) {
  return PacketBuilder().IPv4("10.0.2.9", "10.0.1.5").Tcp(8080, 40000, flags).Build();
}
std::vector<uint8_t> ClientToPod(uint8_t flags) {
  return PacketBuilder().IPv4("10.0.1.5", "10.0.3.7").Tcp(40001, 9000, flags).Build();
}

FrameResult Run(const DatapathTables& tables, DatapathState& state, std::vector<uint8_t> frame,
                uint32_t ifindex = kClientIfindex) {
  return ProcessFrame(tables, state, Entry::kFromPod, ifindex, absl::MakeSpan(frame), kNow);
}

// Opens the client's connection to the service: SYN, SYN-ACK, ACK.
void Open(const DatapathTables& tables, DatapathState& state) {
  REQUIRE(Run(tables, state, ClientToService(kTcpSyn)).verdict == Verdict::kRedirect);
  REQUIRE(Run(tables, state, BackendToClient(kTcpSyn | kTcpAck), kBackendIfindex).verdict ==
          Verdict::kRedirect);
  REQUIRE(Run(tables, state, ClientToService(kTcpAck)).verdict == Verdict::kRedirect);
}

const dpv2_ct_value* ServiceEntryOf(DatapathState& state) {
  dpv2_ct_key key{};
  key.saddr = Addr("10.0.1.5");
  key.daddr = Addr("10.96.0.1");
  key.sport = htons(40000);
  key.dport = htons(80);
  key.proto = DPV2_PROTO_TCP;
  key.family = DPV2_FAMILY_V4;
  key.flags = DPV2_CT_KEY_SERVICE;
  return state.conntrack.Find(key, kNow);
}

TEST_CASE("an established forward packet is stamped with the tables revision, its ingress and "
          "the policy directions that allowed it") {
  const DatapathConfig config = Config();
  DatapathTables tables(config);
  REQUIRE(tables.Apply(Cluster()).ok());
  DatapathState state(config, nullptr);
  Open(tables, state);
  const dpv2_ct_value* se = ServiceEntryOf(state);
  REQUIRE(se != nullptr);
  CHECK(se->revision == tables.revision());
  CHECK(se->in_ifindex == kClientIfindex);
  CHECK(se->cache_flags == (DPV2_CT_C_FROM_POD | DPV2_CT_C_EGRESS | DPV2_CT_C_INGRESS));
  // A dump reports the frontend where the stamp keeps the backend.
  for (const ConntrackEntry& e : state.conntrack.Dump()) {
    if (e.key.flags & DPV2_CT_KEY_SERVICE) {
      CHECK(std::memcmp(&e.value.nat_addr, &e.key.daddr, sizeof(dpv2_addr)) == 0);
      CHECK(e.value.nat_port == htons(80));
    }
  }
  // The flow entry (client -> backend) is found only by replies: no stamp.
  for (const ConntrackEntry& e : state.conntrack.Dump()) {
    if (!(e.key.flags & DPV2_CT_KEY_SERVICE)) {
      CHECK(e.value.revision == 0);
      CHECK(e.value.cache_flags == 0);
    }
  }
}

TEST_CASE("an Apply moves the tables revision, so the next established packet is checked "
          "against the new policy") {
  const DatapathConfig config = Config();
  DatapathTables tables(config);
  REQUIRE(tables.Apply(Cluster()).ok());
  const uint32_t before = tables.revision();
  DatapathState state(config, nullptr);
  Open(tables, state);
  REQUIRE(tables.Apply(RemoveBackendAllowTcp()).ok());
  CHECK(tables.revision() != before);
  CHECK(tables.revision() != 0);
  const uint64_t denied = state.counters[DPV2_CNT_POLICY_DENIED];
  const FrameResult r = Run(tables, state, ClientToService(kTcpAck));
  CHECK(r.verdict == Verdict::kDrop);
  CHECK(r.drop_reason == DPV2_DROP_POLICY_DENY);
  CHECK(state.counters[DPV2_CNT_POLICY_DENIED] == denied + 1);
  // A rejected batch changes nothing, the revision included.
  const uint32_t after = tables.revision();
  ChangeBatch bad;
  bad.backends_upsert = {BackendEntry{.id = 0, .value = {}}};
  CHECK_FALSE(tables.Apply(bad).ok());
  CHECK(tables.revision() == after);
}

TEST_CASE("a state run against another tables object re-checks its stamped connections") {
  // Two objects that took the same number of batches (a DPDK backend's two
  // copies, or a test's twins) still have different revisions.
  const DatapathConfig config = Config();
  DatapathTables allowing(config);
  DatapathTables denying(config);
  REQUIRE(allowing.Apply(Cluster()).ok());
  ChangeBatch without_allow = Cluster();
  without_allow.policy_upsert.erase(without_allow.policy_upsert.begin() + 2);
  REQUIRE(denying.Apply(without_allow).ok());
  CHECK(allowing.revision() != denying.revision());
  DatapathState state(config, nullptr);
  Open(allowing, state);
  const FrameResult r = Run(denying, state, ClientToService(kTcpAck));
  CHECK(r.drop_reason == DPV2_DROP_POLICY_DENY);
  // A copy holds the same content: its revision may be shared.
  DatapathTables copy = allowing;
  CHECK(copy.revision() == allowing.revision());
  CHECK(Run(copy, state, ClientToService(kTcpAck)).verdict == Verdict::kRedirect);
}

TEST_CASE("a stamped tuple arriving from another interface is checked for spoofing") {
  const DatapathConfig config = Config();
  DatapathTables tables(config);
  REQUIRE(tables.Apply(Cluster()).ok());
  DatapathState state(config, nullptr);
  Open(tables, state);
  REQUIRE(Run(tables, state, ClientToPod(kTcpSyn)).verdict == Verdict::kRedirect);
  REQUIRE(Run(tables, state, ClientToPod(kTcpAck)).verdict == Verdict::kRedirect);
  const FrameResult service = Run(tables, state, ClientToService(kTcpAck), kOtherIfindex);
  CHECK(service.drop_reason == DPV2_DROP_SPOOFED_SOURCE);
  const FrameResult plain = Run(tables, state, ClientToPod(kTcpAck), kOtherIfindex);
  CHECK(plain.drop_reason == DPV2_DROP_SPOOFED_SOURCE);
  // From the network the same tuple is not anti-spoofed, but its stamp
  // (from a pod) does not serve it either: the full pipeline runs.
  std::vector<uint8_t> frame = ClientToService(kTcpAck);
  const FrameResult from_network = ProcessFrame(tables, state, Entry::kFromNetwork,
                                                kClientIfindex, absl::MakeSpan(frame), kNow);
  CHECK(from_network.verdict == Verdict::kRedirect);
  CHECK(ServiceEntryOf(state)->cache_flags == DPV2_CT_C_INGRESS);
}

TEST_CASE("what a stamp caches (the backend's address, no local destination) follows an Apply") {
  // The backend starts remote (no endpoint): delivery passes to the stack.
  const DatapathConfig config = Config();
  DatapathTables tables(config);
  ChangeBatch cluster = Cluster();
  cluster.endpoints_upsert.erase(cluster.endpoints_upsert.begin() + 1);  // 10.0.2.9
  cluster.policy_upsert.erase(cluster.policy_upsert.begin() + 2);       // its allow
  // A remote backend has no identity the client's egress allows: not isolated.
  cluster.endpoints_upsert[0] = Pod("10.0.1.5", 1, kClientIfindex, kClientIdentity, 0);
  REQUIRE(tables.Apply(cluster).ok());
  DatapathState state(config, nullptr);
  REQUIRE(Run(tables, state, ClientToService(kTcpSyn)).verdict == Verdict::kPass);
  std::vector<uint8_t> syn_ack = BackendToClient(kTcpSyn | kTcpAck);
  REQUIRE(ProcessFrame(tables, state, Entry::kFromNetwork, 1, absl::MakeSpan(syn_ack), kNow)
              .verdict == Verdict::kRedirect);
  CHECK(ServiceEntryOf(state)->cache_flags & DPV2_CT_C_PASS);
  CHECK(Run(tables, state, ClientToService(kTcpAck)).verdict == Verdict::kPass);
  // The backend's address becomes a local pod: delivered to it.
  ChangeBatch local;
  local.endpoints_upsert = {Pod("10.0.2.9", 2, kBackendIfindex, kBackendIdentity, 0)};
  REQUIRE(tables.Apply(local).ok());
  FrameResult r = Run(tables, state, ClientToService(kTcpAck));
  CHECK(r.verdict == Verdict::kRedirect);
  CHECK(r.out_ifindex == kBackendIfindex);
  // The backend is readdressed under its id: the next packet goes to the
  // new address (and its flow entry is made anew).
  ChangeBatch moved;
  moved.backends_upsert = OneServiceBatch("10.0.3.7", kM).backends_upsert;
  moved.policy_upsert = {AllowTcp(3, DPV2_DIR_INGRESS, kClientIdentity, 8080)};
  REQUIRE(tables.Apply(moved).ok());
  std::vector<uint8_t> frame = ClientToService(kTcpAck);
  r = ProcessFrame(tables, state, Entry::kFromPod, kClientIfindex, absl::MakeSpan(frame), kNow);
  CHECK(r.verdict == Verdict::kRedirect);
  // Untagged IPv4 without options: destination address at 30, port at 36.
  const uint8_t want[6] = {10, 0, 3, 7, 8080 >> 8, 8080 & 0xff};
  CHECK(std::memcmp(frame.data() + 30, want, 4) == 0);
  CHECK(std::memcmp(frame.data() + 36, want + 4, 2) == 0);
}

// What a packet did, for comparing two states packet by packet.
struct Outcome {
  Verdict verdict;
  dpv2_drop_reason drop_reason;
  uint32_t out_ifindex;
  std::vector<uint8_t> frame;
};

TEST_CASE("the fast path gives the full pipeline's bytes, verdicts, counters and entries") {
  // `fast` keeps its tables; `full` gets an empty batch before every packet,
  // so its stamps are always stale and every packet takes the full pipeline.
  const DatapathConfig config = Config();
  DatapathTables fast_tables(config);
  DatapathTables full_tables(config);
  REQUIRE(fast_tables.Apply(Cluster()).ok());
  REQUIRE(full_tables.Apply(Cluster()).ok());
  DatapathState fast(config, nullptr);
  DatapathState full(config, nullptr);
  struct Step {
    std::vector<uint8_t> frame;
    uint32_t ifindex;
  };
  std::vector<Step> steps = {
      {ClientToService(kTcpSyn), kClientIfindex},
      {BackendToClient(kTcpSyn | kTcpAck), kBackendIfindex},
      {ClientToService(kTcpAck), kClientIfindex},
      {ClientToService(kTcpAck | kTcpPsh), kClientIfindex},
      {BackendToClient(kTcpAck), kBackendIfindex},
      {ClientToPod(kTcpSyn), kClientIfindex},
      {ClientToPod(kTcpAck), kClientIfindex},
      {ClientToPod(kTcpAck | kTcpPsh), kClientIfindex},
      {ClientToService(kTcpAck), kOtherIfindex},
      {ClientToService(kTcpFin | kTcpAck), kClientIfindex},
      {ClientToService(kTcpAck), kClientIfindex},
      {ClientToPod(kTcpRst), kClientIfindex},
      {ClientToService(kTcpSyn), kClientIfindex},
      {ClientToService(kTcpAck), kClientIfindex},
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    INFO("step " << i);
    REQUIRE(full_tables.Apply(ChangeBatch{}).ok());
    Outcome o[2];
    DatapathState* states[2] = {&fast, &full};
    const DatapathTables* tables[2] = {&fast_tables, &full_tables};
    for (int k = 0; k < 2; ++k) {
      std::vector<uint8_t> frame = steps[i].frame;
      const FrameResult r = ProcessFrame(*tables[k], *states[k], Entry::kFromPod,
                                         steps[i].ifindex, absl::MakeSpan(frame), kNow + i);
      o[k] = {r.verdict, r.drop_reason, r.out_ifindex, frame};
    }
    CHECK(o[0].verdict == o[1].verdict);
    CHECK(o[0].drop_reason == o[1].drop_reason);
    CHECK(o[0].out_ifindex == o[1].out_ifindex);
    CHECK(o[0].frame == o[1].frame);
  }
  CHECK(fast.counters == full.counters);
  CHECK(fast.drops == full.drops);
  CHECK(fast.counters[DPV2_CNT_POLICY_ALLOWED] > 0);
  std::vector<ConntrackEntry> a = SortedDump(fast.conntrack);
  std::vector<ConntrackEntry> b = SortedDump(full.conntrack);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    // The revisions differ (two tables objects); everything else is alike.
    CHECK((a[i].value.revision != 0) == (b[i].value.revision != 0));
    a[i].value.revision = 0;
    b[i].value.revision = 0;
    CHECK(std::memcmp(&a[i].key, &b[i].key, sizeof(a[i].key)) == 0);
    CHECK(std::memcmp(&a[i].value, &b[i].value, sizeof(a[i].value)) == 0);
  }
}

}  // namespace
}  // namespace dpv2
