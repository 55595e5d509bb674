// The eBPF established fast path (bpf/revision.h, docs/datapath.md
// "Established fast path"): a forward packet whose conntrack entry was
// stamped at the current tables revision skips anti-spoofing, policy and the
// frontend lookup. Every case runs the same packets through the eBPF backend
// and the sim (the reference) and requires the same outcome at each step,
// after changes the stamp must not hide: a removed allow, an identity
// change, a pod moved to another interface, a deleted or readdressed
// backend (the SERVICE entry caches its address), a remote destination
// becoming a local pod (the entry caches "passes to the stack"), the same
// tuple from another interface. Needs root (ebpf_test_main.cc).
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <cstring>
#include <memory>
#include <vector>

#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"
#include "../datapath/pipeline_fixtures.h"
#include "small_config.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = testing::kSmallMaglevTableSize;
constexpr uint32_t kClientIfindex = 7;
constexpr uint32_t kBackendIfindex = 9;
constexpr uint32_t kMovedIfindex = 11;
constexpr uint32_t kUplinkIfindex = 2;
constexpr uint32_t kClientIdentity = 1001;
constexpr uint32_t kRemoteIdentity = 2000;

EndpointEntry ClientPod(uint32_t flags = 0) {
  return Pod("10.0.1.5", 1, kClientIfindex, kClientIdentity, flags);
}
EndpointEntry BackendPod(uint32_t ifindex = kBackendIfindex) {
  return Pod("10.0.2.9", 2, ifindex, 1002, DPV2_EP_F_INGRESS_POLICY);
}

PolicyEntry Allow(uint32_t endpoint_id, uint8_t dir, uint32_t peer, uint16_t port) {
  return {.key = {.prefixlen = DPV2_POLICY_PREFIX_FIXED + 16, .endpoint_id = endpoint_id,
                  .identity = peer, .direction = dir, .proto = DPV2_PROTO_TCP,
                  .dport = htons(port)},
          .value = {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NETWORK,
                    .match_id = 1}};
}

BackendEntry BackendAt(uint32_t id, const char* addr) {
  BackendEntry be{.id = id};
  be.value.addr = Addr(addr);
  be.value.port = htons(8080);
  be.value.proto = DPV2_PROTO_TCP;
  be.value.family = DPV2_FAMILY_V4;
  return be;
}

ServiceEntry ClusterIp(uint32_t table_id, uint16_t backend_count) {
  ServiceEntry svc{};
  svc.key.addr = Addr("10.96.0.10");
  svc.key.port = htons(80);
  svc.key.proto = DPV2_PROTO_TCP;
  svc.key.family = DPV2_FAMILY_V4;
  svc.key.scope = DPV2_LB_SCOPE_EXT;
  svc.value.service_id = 42;
  svc.value.table_id = table_id;
  svc.value.backend_count = backend_count;
  return svc;
}

// Client pod 10.0.1.5 (ifindex 7); backend pod 10.0.2.9:8080 (ifindex 9),
// isolated for ingress and allowing the client's identity on 8080; ClusterIP
// 10.96.0.10:80 with that one backend.
ChangeBatch ServiceBatch() {
  ChangeBatch b;
  b.backends_upsert.push_back(BackendAt(1, "10.0.2.9"));
  b.tables_upsert.push_back(LookupTable{.id = 5, .slots = std::vector<uint32_t>(kM, 1)});
  b.endpoints_upsert = {ClientPod(), BackendPod()};
  b.policy_upsert.push_back(Allow(2, DPV2_DIR_INGRESS, kClientIdentity, 8080));
  b.services_upsert.push_back(ClusterIp(5, 1));
  return b;
}

// The eBPF backend and the sim, fed the same batches and packets.
class Twins {
 public:
  Twins() {
    absl::StatusOr<std::unique_ptr<Backend>> e =
        MakeEbpfBackend({.config = testing::SmallConfig(16)});
    REQUIRE(e.ok());
    ebpf_ = *std::move(e);
    absl::StatusOr<std::unique_ptr<Backend>> s =
        MakeSimBackend({.config = testing::SmallConfig(16)});
    REQUIRE(s.ok());
    sim_ = *std::move(s);
  }

  void Apply(const ChangeBatch& b) {
    absl::Status e = ebpf_->Apply(b);
    INFO(e.ToString());
    REQUIRE(e.ok());
    absl::Status s = sim_->Apply(b);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }

  // The eBPF outcome, after checking it is the sim's.
  PacketOutcome Run(uint32_t ifindex, const std::vector<uint8_t>& frame,
                    Entry entry = Entry::kFromPod) {
    const PacketInput in{.entry = entry, .ifindex = ifindex, .frame = frame};
    absl::StatusOr<PacketOutcome> e = ebpf_->RunPacket(in);
    absl::StatusOr<PacketOutcome> s = sim_->RunPacket(in);
    REQUIRE(e.ok());
    REQUIRE(s.ok());
    CHECK(e->verdict == s->verdict);
    CHECK(e->drop_reason == s->drop_reason);
    REQUIRE(e->outputs.size() == s->outputs.size());
    for (size_t i = 0; i < e->outputs.size(); ++i) {
      CHECK(e->outputs[i].out_ifindex == s->outputs[i].out_ifindex);
      CHECK(e->outputs[i].frame == s->outputs[i].frame);
    }
    REQUIRE(e->events.size() == s->events.size());
    for (size_t i = 0; i < e->events.size(); ++i) {
      CHECK(e->events[i].type == s->events[i].type);
      CHECK(e->events[i].flags == s->events[i].flags);
      CHECK(e->events[i].drop_reason == s->events[i].drop_reason);
    }
    return *std::move(e);
  }

  // Counters the fast path must keep as the full path does.
  void RequireSameCounters() {
    absl::StatusOr<Counters> e = ebpf_->ReadCounters();
    absl::StatusOr<Counters> s = sim_->ReadCounters();
    REQUIRE(e.ok());
    REQUIRE(s.ok());
    for (dpv2_counter c : {DPV2_CNT_POLICY_ALLOWED, DPV2_CNT_POLICY_DENIED,
                           DPV2_CNT_SERVICE_NEW, DPV2_CNT_SERVICE_ESTABLISHED,
                           DPV2_CNT_CT_CREATED, DPV2_CNT_REDIRECTED, DPV2_CNT_PASSED,
                           DPV2_CNT_DROPPED}) {
      INFO("counter " << c);
      CHECK(e->counter(c) == s->counter(c));
    }
  }

  // ServiceBatch applied and the connection established (SYN, then an ACK
  // that finds the SERVICE entry stamped).
  void EstablishService(const ChangeBatch& batch = ServiceBatch()) {
    Apply(batch);
    for (uint8_t flags : {kTcpSyn, kTcpAck}) {
      const std::vector<uint8_t> frame =
          PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, flags).Build();
      REQUIRE(Run(kClientIfindex, frame).verdict == Verdict::kRedirect);
    }
  }

  Backend& ebpf() { return *ebpf_; }

 private:
  std::unique_ptr<Backend> ebpf_;
  std::unique_ptr<Backend> sim_;
};

std::vector<uint8_t> ToService(uint8_t flags) {
  return PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, flags).Build();
}

TEST_CASE("an established service connection's forward packets carry the stamp of the "
          "revision that checked them") {
  Twins t;
  t.Apply(ServiceBatch());
  CHECK(t.Run(kClientIfindex, ToService(kTcpSyn)).verdict == Verdict::kRedirect);
  for (int i = 0; i < 3; ++i) {
    PacketOutcome out = t.Run(kClientIfindex, ToService(kTcpAck));
    CHECK(out.verdict == Verdict::kRedirect);
    CHECK(out.events.empty());
  }
  absl::StatusOr<std::vector<ConntrackEntry>> ct = t.ebpf().DumpConntrack();
  REQUIRE(ct.ok());
  REQUIRE(ct->size() == 2);
  for (const ConntrackEntry& e : *ct) {
    const bool service = (e.key.flags & DPV2_CT_KEY_SERVICE) != 0;
    INFO("service entry " << service);
    CHECK(e.value.packets == 4);
    // Reported as on the sim, though the SERVICE entry caches its backend.
    CHECK(IpAddr::FromAbi(e.value.nat_addr, Family::kV4).ToString() == "10.96.0.10");
    CHECK(ntohs(e.value.nat_port) == 80);
    if (service) {
      CHECK(e.value.revision != 0);
      CHECK(e.value.in_ifindex == kClientIfindex);
      CHECK(e.value.cache_flags == (DPV2_CT_C_FROM_POD | DPV2_CT_C_INGRESS));
    } else {
      CHECK(e.value.revision == 0);  // forward packets find the SERVICE entry
    }
  }
  t.RequireSameCounters();
}

TEST_CASE("a flow created in reverse of a stamped service connection (from its frontend to "
          "its client) makes the client's next packets that flow's replies, as on the sim") {
  // The eBPF fast path looks a SERVICE entry up before the reply direction;
  // the creation of the reverse-keyed plain entry must keep it off it.
  Twins t;
  t.EstablishService();
  const std::vector<uint8_t> from_frontend =
      PacketBuilder().IPv4("10.96.0.10", "10.0.1.5").Tcp(80, 40000, kTcpAck).Build();
  PacketOutcome in = t.Run(kUplinkIfindex, from_frontend, Entry::kFromNetwork);
  CHECK(in.verdict == Verdict::kRedirect);
  for (int i = 0; i < 2; ++i) {
    INFO("packet " << i);
    PacketOutcome out = t.Run(kClientIfindex, ToService(kTcpAck));
    CHECK(out.verdict == Verdict::kPass);  // untranslated: 10.96.0.10 is no local pod
    REQUIRE(out.outputs.size() == 1);
    CHECK(out.outputs[0].frame == ToService(kTcpAck));
  }
  t.RequireSameCounters();
}

TEST_CASE("removing the allow of an established service connection drops its next forward "
          "packet, and restoring it lets the next one through") {
  Twins t;
  t.EstablishService();
  ChangeBatch revoke;
  revoke.policy_delete.push_back(Allow(2, DPV2_DIR_INGRESS, kClientIdentity, 8080).key);
  t.Apply(revoke);
  PacketOutcome denied = t.Run(kClientIfindex, ToService(kTcpAck));
  CHECK(denied.verdict == Verdict::kDrop);
  CHECK(denied.drop_reason == DPV2_DROP_POLICY_DENY);
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).drop_reason == DPV2_DROP_POLICY_DENY);
  ChangeBatch restore;
  restore.policy_upsert.push_back(Allow(2, DPV2_DIR_INGRESS, kClientIdentity, 8080));
  t.Apply(restore);
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).verdict == Verdict::kRedirect);
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).verdict == Verdict::kRedirect);
  t.RequireSameCounters();
}

TEST_CASE("a backend pod moved to another interface receives the established connection's "
          "next packet there") {
  Twins t;
  t.EstablishService();
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).outputs.at(0).out_ifindex == kBackendIfindex);
  ChangeBatch moved;
  moved.endpoints_upsert.push_back(BackendPod(kMovedIfindex));
  t.Apply(moved);
  PacketOutcome out = t.Run(kClientIfindex, ToService(kTcpAck));
  REQUIRE(out.outputs.size() == 1);
  CHECK(out.outputs[0].out_ifindex == kMovedIfindex);
  CHECK(out.outputs[0].frame[5] == kMovedIfindex);  // the moved pod's MAC
}

TEST_CASE("a stamped connection's tuple arriving from another pod's interface is dropped as "
          "spoofed") {
  Twins t;
  t.EstablishService();
  PacketOutcome out = t.Run(kBackendIfindex, ToService(kTcpAck));
  CHECK(out.verdict == Verdict::kDrop);
  CHECK(out.drop_reason == DPV2_DROP_SPOOFED_SOURCE);
  // The connection itself is untouched.
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).verdict == Verdict::kRedirect);
}

TEST_CASE("deleting the backend of an established connection moves its next packet to "
          "another backend") {
  Twins t;
  ChangeBatch b = ServiceBatch();
  b.backends_upsert.push_back(BackendAt(2, "10.0.3.3"));
  t.EstablishService(b);
  ChangeBatch swap;
  swap.tables_upsert.push_back(LookupTable{.id = 6, .slots = std::vector<uint32_t>(kM, 2)});
  swap.services_upsert.push_back(ClusterIp(6, 1));
  swap.tables_delete.push_back(5);
  swap.backends_delete.push_back(1);
  t.Apply(swap);
  PacketOutcome out = t.Run(kClientIfindex, ToService(kTcpAck));
  REQUIRE(out.outputs.size() == 1);
  ParseResult r = ParsePacket(out.outputs[0].frame);
  CHECK(r.pkt.dst.ToString() == "10.0.3.3");
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).verdict == Verdict::kPass);
  t.RequireSameCounters();
}

TEST_CASE("a backend rewritten to another address under its id receives the established "
          "connection's next packets there, not at the address the entry cached") {
  Twins t;
  t.EstablishService();
  ChangeBatch readdressed;
  readdressed.backends_upsert.push_back(BackendAt(1, "10.0.3.3"));
  t.Apply(readdressed);
  // The first packet re-runs the full path; the second takes the fast path
  // with what the first one stamped.
  for (int i = 0; i < 2; ++i) {
    INFO("packet " << i);
    PacketOutcome out = t.Run(kClientIfindex, ToService(kTcpAck));
    CHECK(out.verdict == Verdict::kPass);  // 10.0.3.3 is no local pod
    REQUIRE(out.outputs.size() == 1);
    CHECK(ParsePacket(out.outputs[0].frame).pkt.dst.ToString() == "10.0.3.3");
  }
  t.RequireSameCounters();
}

TEST_CASE("a flow's remote destination that becomes a local pod receives the flow's next "
          "packets on that pod's interface") {
  Twins t;
  ChangeBatch b;
  b.endpoints_upsert.push_back(ClientPod());
  t.Apply(b);
  auto to_peer = [](uint8_t flags) {
    return PacketBuilder().IPv4("10.0.1.5", "10.0.4.4").Tcp(42000, 8080, flags).Build();
  };
  for (uint8_t flags : {kTcpSyn, kTcpAck, kTcpAck}) {
    CHECK(t.Run(kClientIfindex, to_peer(flags)).verdict == Verdict::kPass);
  }
  ChangeBatch arrived;
  arrived.endpoints_upsert.push_back(Pod("10.0.4.4", 3, kMovedIfindex, 1003, 0));
  t.Apply(arrived);
  for (int i = 0; i < 2; ++i) {
    INFO("packet " << i);
    PacketOutcome out = t.Run(kClientIfindex, to_peer(kTcpAck));
    CHECK(out.verdict == Verdict::kRedirect);
    REQUIRE(out.outputs.size() == 1);
    CHECK(out.outputs[0].out_ifindex == kMovedIfindex);
    CHECK(out.outputs[0].frame[5] == kMovedIfindex);  // the pod's MAC
  }
  t.RequireSameCounters();
}

TEST_CASE("a plain flow allowed by its peer's identity is dropped once the ipcache gives the "
          "peer another identity") {
  Twins t;
  ChangeBatch b;
  b.endpoints_upsert.push_back(ClientPod(DPV2_EP_F_EGRESS_POLICY));
  IpcacheEntry remote{};
  remote.key = {.prefixlen = 32 + 32, .family = DPV2_FAMILY_V4};
  remote.key.addr = Addr("10.0.3.3");
  remote.value.identity = kRemoteIdentity;
  b.ipcache_upsert.push_back(remote);
  b.policy_upsert.push_back(Allow(1, DPV2_DIR_EGRESS, kRemoteIdentity, 443));
  t.Apply(b);
  auto to_remote = [](uint8_t flags) {
    return PacketBuilder().IPv4("10.0.1.5", "10.0.3.3").Tcp(41000, 443, flags).Build();
  };
  CHECK(t.Run(kClientIfindex, to_remote(kTcpSyn)).verdict == Verdict::kPass);
  CHECK(t.Run(kClientIfindex, to_remote(kTcpAck)).verdict == Verdict::kPass);
  CHECK(t.Run(kClientIfindex, to_remote(kTcpAck)).verdict == Verdict::kPass);
  ChangeBatch relabel;
  remote.value.identity = kRemoteIdentity + 1;
  relabel.ipcache_upsert.push_back(remote);
  t.Apply(relabel);
  PacketOutcome out = t.Run(kClientIfindex, to_remote(kTcpAck));
  CHECK(out.verdict == Verdict::kDrop);
  CHECK(out.drop_reason == DPV2_DROP_POLICY_DENY);
  t.RequireSameCounters();
}

TEST_CASE("a closing connection reopened by a SYN takes the full path: new backend choice and "
          "events, as on the sim") {
  Twins t;
  t.EstablishService();
  t.Run(kClientIfindex, ToService(kTcpFin | kTcpAck));
  // A FIN-marked entry is still stamped: the next ACK is fast, the SYN is not.
  CHECK(t.Run(kClientIfindex, ToService(kTcpAck)).events.empty());
  PacketOutcome reopened = t.Run(kClientIfindex, ToService(kTcpSyn));
  CHECK(reopened.verdict == Verdict::kRedirect);
  CHECK(!reopened.events.empty());
  CHECK(t.ebpf().ReadCounters()->counter(DPV2_CNT_CT_REOPENED) == 1);
  t.RequireSameCounters();
}

}  // namespace
}  // namespace dpv2
