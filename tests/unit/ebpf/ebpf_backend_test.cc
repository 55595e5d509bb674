// The eBPF backend through BPF_PROG_TEST_RUN: the real programs, real maps.
// Needs root (CAP_BPF); unprivileged it exits 77 (skip) unless CI=true
// (ebpf_test_main.cc).
#include <catch2/catch.hpp>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <bpf/bpf.h>

#include <array>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "backends/ebpf/bpf_map.h"
#include "backends/ebpf/ebpf_backend.h"
#include "backends/ebpf/table_class.h"
#include "dpv2/checksum.h"
#include "dpv2/ebpf.h"
#include "dpv2/maglev.h"
#include "dpv2/packet.h"
#include "small_config.h"

namespace dpv2 {
namespace {

using testing::SmallConfig;

constexpr uint32_t kM = testing::kSmallMaglevTableSize;  // a small prime table
constexpr uint32_t kClientIfindex = 7;
constexpr uint32_t kBackendIfindex = 9;
constexpr uint32_t kServiceId = 42;

dpv2_addr Addr(const char* text) { return IpAddr::Parse(text)->ToAbi(); }

EndpointEntry Pod(const char* addr, uint32_t id, uint32_t ifindex, uint8_t mac_last) {
  EndpointEntry e{};
  e.key.addr = Addr(addr);
  e.key.family = DPV2_FAMILY_V4;
  e.value.endpoint_id = id;
  e.value.ifindex = ifindex;
  e.value.identity = 1000 + id;
  const uint8_t mac[6] = {0x0a, 0, 0, 0, 0, mac_last};
  const uint8_t host_mac[6] = {0x0e, 0, 0, 0, 0, mac_last};
  std::memcpy(e.value.mac, mac, 6);
  std::memcpy(e.value.host_mac, host_mac, 6);
  return e;
}

// Client pod 10.0.1.5 (ifindex 7), backend pod 10.0.2.9:8080 (ifindex 9),
// ClusterIP 10.96.0.10:80/TCP with that one backend.
ChangeBatch ClusterIpBatch() {
  ChangeBatch b;
  BackendEntry be{.id = 1};
  be.value.addr = Addr("10.0.2.9");
  be.value.port = htons(8080);
  be.value.proto = DPV2_PROTO_TCP;
  be.value.family = DPV2_FAMILY_V4;
  b.backends_upsert.push_back(be);
  b.tables_upsert.push_back(LookupTable{.id = 5, .slots = std::vector<uint32_t>(kM, 1)});
  b.endpoints_upsert.push_back(Pod("10.0.1.5", 1, kClientIfindex, 1));
  b.endpoints_upsert.push_back(Pod("10.0.2.9", 2, kBackendIfindex, 2));
  ServiceEntry svc{};
  svc.key.addr = Addr("10.96.0.10");
  svc.key.port = htons(80);
  svc.key.proto = DPV2_PROTO_TCP;
  svc.key.family = DPV2_FAMILY_V4;
  svc.key.scope = DPV2_LB_SCOPE_EXT;
  svc.value.service_id = kServiceId;
  svc.value.table_id = 5;
  svc.value.backend_count = 1;
  b.services_upsert.push_back(svc);
  return b;
}

std::unique_ptr<Backend> MakeLoaded(const EbpfOptions& options = {.config = SmallConfig()}) {
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend(options);
  REQUIRE(b.ok());
  absl::Status s = (*b)->Apply(ClusterIpBatch());
  INFO(s.ToString());
  REQUIRE(s.ok());
  return *std::move(b);
}

PacketOutcome Run(Backend& b, uint32_t ifindex, const std::vector<uint8_t>& frame) {
  absl::StatusOr<PacketOutcome> out =
      b.RunPacket({.entry = Entry::kFromPod, .ifindex = ifindex, .frame = frame});
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  return *std::move(out);
}

std::vector<uint8_t> Syn() {
  return PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, kTcpSyn).Seq(100).Build();
}

// The frame an independent implementation (the C++ rewrite) produces.
void RequireValidChecksums(const std::vector<uint8_t>& frame) {
  ParseResult r = ParsePacket(frame);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  const size_t l3 = r.pkt.l3_offset;
  const size_t hl = (frame[l3] & 0xf) * 4;
  CHECK(InternetChecksum(absl::MakeConstSpan(frame.data() + l3, hl)) == 0);
  const size_t l4 = r.pkt.l4_offset;
  const size_t l4_len = r.pkt.l3_len - hl;
  const uint32_t pseudo = PseudoHeaderSum(r.pkt.src, r.pkt.dst, r.pkt.proto, l4_len);
  CHECK(InternetChecksum(absl::MakeConstSpan(frame.data() + l4, l4_len), pseudo) == 0);
}

TEST_CASE("a SYN from a pod to a ClusterIP is DNATed to its backend and delivered to the backend pod") {
  std::unique_ptr<Backend> b = MakeLoaded();
  PacketOutcome out = Run(*b, kClientIfindex, Syn());
  REQUIRE(out.verdict == Verdict::kRedirect);
  REQUIRE(out.outputs.size() == 1);
  CHECK(out.outputs[0].out_ifindex == kBackendIfindex);
  ParseResult r = ParsePacket(out.outputs[0].frame);
  CHECK(r.pkt.dst.ToString() == "10.0.2.9");
  CHECK(r.pkt.dport == 8080);
  CHECK(r.pkt.src.ToString() == "10.0.1.5");
  CHECK(out.outputs[0].frame[5] == 2);   // destination MAC: the backend pod's
  CHECK(out.outputs[0].frame[6] == 0x0e);  // source MAC: the host-side veth's
  RequireValidChecksums(out.outputs[0].frame);
  // The same bytes as the C++ reference rewrite.
  std::vector<uint8_t> expected = Syn();
  ParseResult in = ParsePacket(expected);
  RewriteDestination(absl::MakeSpan(expected), in.pkt, *IpAddr::Parse("10.0.2.9"), 8080);
  const uint8_t dst_mac[6] = {0x0a, 0, 0, 0, 0, 2}, src_mac[6] = {0x0e, 0, 0, 0, 0, 2};
  SetEthernet(absl::MakeSpan(expected), dst_mac, src_mac);
  CHECK(out.outputs[0].frame == expected);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == DPV2_EVENT_TRACE);
  CHECK(out.events[0].flags == (DPV2_EV_F_NEW | DPV2_EV_F_TRANSLATED));
  CHECK(out.events[0].orig_dst.ToString() == "10.96.0.10");
  CHECK(out.events[0].service_id == kServiceId);
  absl::StatusOr<std::vector<ConntrackEntry>> ct = b->DumpConntrack();
  REQUIRE(ct.ok());
  CHECK(ct->size() == 2);  // SERVICE entry + flow entry
  absl::StatusOr<Counters> c = b->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->counter(DPV2_CNT_SERVICE_NEW) == 1);
  CHECK(c->counter(DPV2_CNT_CT_CREATED) == 2);
}

TEST_CASE("a full conntrack table, preallocated or not, drops a new connection as CT_FULL and "
          "leaves every entry and established connection as it was") {
  for (bool prealloc : {false, true}) {
    INFO("conntrack_prealloc " << prealloc);
    DatapathConfig config = SmallConfig();
    config.ct_tcp_entries = 7;  // 3 connections; the 4th fits its SERVICE entry only
    std::unique_ptr<Backend> b = MakeLoaded({.config = config, .conntrack_prealloc = prealloc});
    auto to_service = [](uint16_t sport, uint8_t flags) {
      return PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(sport, 80, flags).Build();
    };
    for (uint16_t sport = 40000; sport < 40003; ++sport) {
      REQUIRE(Run(*b, kClientIfindex, to_service(sport, kTcpSyn)).verdict == Verdict::kRedirect);
    }
    absl::StatusOr<std::vector<ConntrackEntry>> before = b->DumpConntrack();
    REQUIRE(before.ok());
    REQUIRE(before->size() == 6);
    PacketOutcome full = Run(*b, kClientIfindex, to_service(40003, kTcpSyn));
    CHECK(full.verdict == Verdict::kDrop);
    CHECK(full.drop_reason == DPV2_DROP_CT_FULL);
    absl::StatusOr<std::vector<ConntrackEntry>> after = b->DumpConntrack();
    REQUIRE(after.ok());
    REQUIRE(after->size() == before->size());
    for (size_t i = 0; i < after->size(); ++i) {
      CHECK(std::memcmp(&(*after)[i], &(*before)[i], sizeof(ConntrackEntry)) == 0);
    }
    CHECK(Run(*b, kClientIfindex, to_service(40001, kTcpAck)).verdict == Verdict::kRedirect);
    absl::StatusOr<Counters> c = b->ReadCounters();
    REQUIRE(c.ok());
    CHECK(c->drop(DPV2_DROP_CT_FULL) == 1);
  }
}

// Backend 1 of ClusterIpBatch moved to another (remote) address, or
// replaced by backend 2 there: either way the connection needs a flow entry
// under a new key.
BackendEntry RemoteBackend(uint32_t id) {
  BackendEntry be{.id = id};
  be.value.addr = Addr("10.0.3.3");
  be.value.port = htons(8080);
  be.value.proto = DPV2_PROTO_TCP;
  be.value.family = DPV2_FAMILY_V4;
  return be;
}

TEST_CASE("an established connection whose flow entry cannot be recreated in a full table is "
          "dropped as CT_FULL and leaves its SERVICE entry, stamp included, as it was") {
  DatapathConfig config = SmallConfig();
  config.ct_tcp_entries = 2;  // the connection's two entries
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  std::vector<uint8_t> ack =
      PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, kTcpAck).Build();
  REQUIRE(Run(*b, kClientIfindex, Syn()).verdict == Verdict::kRedirect);
  REQUIRE(Run(*b, kClientIfindex, ack).verdict == Verdict::kRedirect);
  ChangeBatch moved;
  moved.backends_upsert.push_back(RemoteBackend(1));
  REQUIRE(b->Apply(moved).ok());
  absl::StatusOr<std::vector<ConntrackEntry>> before = b->DumpConntrack();
  REQUIRE(before.ok());
  REQUIRE(before->size() == 2);
  for (int i = 0; i < 2; ++i) {
    INFO("packet " << i);
    PacketOutcome out = Run(*b, kClientIfindex, ack);
    CHECK(out.drop_reason == DPV2_DROP_CT_FULL);
  }
  absl::StatusOr<std::vector<ConntrackEntry>> after = b->DumpConntrack();
  REQUIRE(after.ok());
  REQUIRE(after->size() == 2);
  for (size_t i = 0; i < after->size(); ++i) {
    INFO("entry " << i << " revision " << (*before)[i].value.revision << " -> "
                  << (*after)[i].value.revision);
    CHECK(std::memcmp(&(*after)[i], &(*before)[i], sizeof(ConntrackEntry)) == 0);
  }
}

TEST_CASE("a connection re-chosen after its backend was deleted, whose new flow entry finds the "
          "table full, is dropped as CT_FULL and leaves no stamped entry") {
  DatapathConfig config = SmallConfig();
  config.ct_tcp_entries = 2;
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  REQUIRE(Run(*b, kClientIfindex, Syn()).verdict == Verdict::kRedirect);
  ChangeBatch swap;
  swap.backends_upsert.push_back(RemoteBackend(2));
  swap.tables_upsert.push_back(LookupTable{.id = 6, .slots = std::vector<uint32_t>(kM, 2)});
  ChangeBatch services = ClusterIpBatch();
  services.services_upsert[0].value.table_id = 6;
  swap.services_upsert = services.services_upsert;
  swap.tables_delete.push_back(5);
  swap.backends_delete.push_back(1);
  REQUIRE(b->Apply(swap).ok());
  PacketOutcome out = Run(*b, kClientIfindex, Syn());
  CHECK(out.drop_reason == DPV2_DROP_CT_FULL);
  absl::StatusOr<std::vector<ConntrackEntry>> ct = b->DumpConntrack();
  REQUIRE(ct.ok());
  REQUIRE(ct->size() == 2);  // the replaced SERVICE entry and the old flow entry
  for (const ConntrackEntry& e : *ct) {
    INFO("service entry " << ((e.key.flags & DPV2_CT_KEY_SERVICE) != 0));
    CHECK(e.value.revision == 0);
    CHECK(e.value.in_ifindex == 0);
    CHECK(e.value.cache_flags == 0);
  }
}

TEST_CASE("the backend's reply is reverse-NATed to come from the ClusterIP and port") {
  std::unique_ptr<Backend> b = MakeLoaded();
  Run(*b, kClientIfindex, Syn());
  std::vector<uint8_t> reply = PacketBuilder()
                                   .IPv4("10.0.2.9", "10.0.1.5")
                                   .Tcp(8080, 40000, kTcpSyn | kTcpAck)
                                   .Seq(7000)
                                   .Ack(101)
                                   .Build();
  PacketOutcome out = Run(*b, kBackendIfindex, reply);
  REQUIRE(out.verdict == Verdict::kRedirect);
  CHECK(out.outputs[0].out_ifindex == kClientIfindex);
  ParseResult r = ParsePacket(out.outputs[0].frame);
  CHECK(r.pkt.src.ToString() == "10.96.0.10");
  CHECK(r.pkt.sport == 80);
  RequireValidChecksums(out.outputs[0].frame);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].flags == (DPV2_EV_F_REPLY | DPV2_EV_F_TRANSLATED));
  // Later packets of the connection emit nothing and keep the backend.
  std::vector<uint8_t> ack =
      PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, kTcpAck).Build();
  PacketOutcome again = Run(*b, kClientIfindex, ack);
  CHECK(again.verdict == Verdict::kRedirect);
  CHECK(again.events.empty());
  CHECK(b->ReadCounters()->counter(DPV2_CNT_REV_NAT) == 1);
}

TEST_CASE("a pod sending from an address that is not its own is dropped as spoofed") {
  std::unique_ptr<Backend> b = MakeLoaded();
  PacketOutcome out = Run(*b, kBackendIfindex, Syn());  // 10.0.1.5 is not on ifindex 9
  CHECK(out.verdict == Verdict::kDrop);
  CHECK(out.drop_reason == DPV2_DROP_SPOOFED_SOURCE);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == DPV2_EVENT_DROP);
  CHECK(b->ReadCounters()->drop(DPV2_DROP_SPOOFED_SOURCE) == 1);
}

TEST_CASE("malformed frames are dropped with the parser's reasons") {
  std::unique_ptr<Backend> b = MakeLoaded();
  std::vector<uint8_t> cut = Syn();
  cut.resize(14 + 20 + 10);  // the IP total length promises more than is there
  CHECK(Run(*b, kClientIfindex, cut).drop_reason == DPV2_DROP_TRUNCATED);
  std::vector<uint8_t> bad_ihl =
      PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").IpHeaderWords(4).Tcp(1, 80, kTcpSyn).Build();
  CHECK(Run(*b, kClientIfindex, bad_ihl).drop_reason == DPV2_DROP_BAD_IP_HEADER);
  std::vector<uint8_t> bad_doff = PacketBuilder()
                                      .IPv4("10.0.1.5", "10.96.0.10")
                                      .Tcp(1, 80, kTcpSyn)
                                      .TcpDataOffsetWords(3)
                                      .Build();
  CHECK(Run(*b, kClientIfindex, bad_doff).drop_reason == DPV2_DROP_BAD_L4_HEADER);
  // Shorter than Ethernet: the kernel would never deliver it; RunPacket says so.
  CHECK(!b->RunPacket({.entry = Entry::kFromPod, .ifindex = 7, .frame = {1, 2, 3}}).ok());
}

TEST_CASE("a batch naming a missing lookup table is rejected and changes nothing") {
  std::unique_ptr<Backend> b = MakeLoaded();
  ChangeBatch bad;
  ServiceEntry svc = ClusterIpBatch().services_upsert[0];
  svc.key.port = htons(81);
  svc.value.table_id = 99;  // no such table
  bad.services_upsert.push_back(svc);
  bad.backends_delete.push_back(1);  // still in use, too
  CHECK(!b->Apply(bad).ok());
  PacketOutcome out = Run(*b, kClientIfindex, Syn());
  CHECK(out.verdict == Verdict::kRedirect);  // the old state still serves
}

TEST_CASE("a table larger than maglev_table_size, or of no slots, is rejected") {
  std::unique_ptr<Backend> b = MakeLoaded();
  ChangeBatch bad;
  bad.tables_upsert.push_back(LookupTable{.id = 6, .slots = std::vector<uint32_t>(kM + 1, 1)});
  CHECK(!b->Apply(bad).ok());
  bad.tables_upsert[0].slots.clear();
  CHECK(!b->Apply(bad).ok());
}

TEST_CASE("a table smaller than maglev_table_size is stored and dumped at its own size") {
  // Each table has its own M (abi/lb.h): the map value holds M, then the
  // slots; the dump gives back exactly those M slots.
  std::unique_ptr<Backend> b = MakeLoaded();
  ChangeBatch small;
  small.tables_upsert.push_back(LookupTable{.id = 6, .slots = {1, 1, 1, 1, 1, 1, 1}});
  REQUIRE(b->Apply(small).ok());
  absl::StatusOr<ChangeBatch> dump = b->DumpState();
  REQUIRE(dump.ok());
  std::map<uint32_t, size_t> sizes;
  for (const LookupTable& t : dump->tables_upsert) {
    sizes[t.id] = t.slots.size();
  }
  CHECK(sizes == std::map<uint32_t, size_t>{{5, kM}, {6, 7}});
}

TEST_CASE("garbage collection deletes only entries that expired") {
  std::unique_ptr<Backend> b = MakeLoaded();
  auto* ebpf = dynamic_cast<ebpf::EbpfBackend*>(b.get());
  REQUIRE(ebpf != nullptr);
  Run(*b, kClientIfindex, Syn());
  absl::StatusOr<GcStats> gc = b->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->deleted == 0);
  CHECK(b->DumpConntrack()->size() == 2);
  // SYN-only flows live 60 s.
  REQUIRE(ebpf->AgeState(59'000'000'000ull).ok());
  CHECK(b->CollectGarbage()->deleted == 0);
  REQUIRE(ebpf->AgeState(2'000'000'000ull).ok());
  gc = b->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->deleted == 2);
  CHECK(b->DumpConntrack()->empty());
}

// ClusterIpBatch plus NodePort 192.168.1.10:30080 to the same backend.
ChangeBatch NodePortBatch() {
  ChangeBatch b = ClusterIpBatch();
  ServiceEntry np = b.services_upsert[0];
  np.key.addr = Addr("192.168.1.10");
  np.key.port = htons(30080);
  np.value.service_id = kServiceId + 1;
  np.value.flags = DPV2_LB_F_NODEPORT;
  b.services_upsert.push_back(np);
  return b;
}

constexpr uint32_t kExternalIfindex = 3;

PacketOutcome RunFromNetwork(Backend& b, const std::vector<uint8_t>& frame) {
  absl::StatusOr<PacketOutcome> out =
      b.RunPacket({.entry = Entry::kFromNetwork, .ifindex = kExternalIfindex, .frame = frame});
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  return *std::move(out);
}

uint64_t XdpServed(Backend& b) {
  auto* e = dynamic_cast<ebpf::EbpfBackend*>(&b);
  REQUIRE(e != nullptr);
  return e->xdp_served();
}

void RequireSameOutcome(const PacketOutcome& a, const PacketOutcome& b) {
  REQUIRE(a.verdict == b.verdict);
  CHECK(a.drop_reason == b.drop_reason);
  REQUIRE(a.outputs.size() == b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    CHECK(a.outputs[i].out_ifindex == b.outputs[i].out_ifindex);
    CHECK(a.outputs[i].frame == b.outputs[i].frame);
  }
  REQUIRE(a.events.size() == b.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) {
    CHECK(a.events[i].type == b.events[i].type);
    CHECK(a.events[i].flags == b.events[i].flags);
    CHECK(a.events[i].obs_point == b.events[i].obs_point);
    CHECK(a.events[i].tuple == b.events[i].tuple);
  }
}

TEST_CASE("with XDP, a NodePort connection from the network is served by XDP with the bytes, "
          "events and counters tc gives") {
  std::unique_ptr<Backend> tc = MakeLoaded();
  REQUIRE(tc->Apply(NodePortBatch()).ok());
  std::unique_ptr<Backend> xdp = MakeLoaded({.config = SmallConfig(), .xdp = true});
  REQUIRE(xdp->Apply(NodePortBatch()).ok());
  const std::vector<uint8_t> syn =
      PacketBuilder().IPv4("203.0.113.7", "192.168.1.10").Tcp(5555, 30080, kTcpSyn).Build();
  PacketOutcome by_xdp = RunFromNetwork(*xdp, syn);
  CHECK(XdpServed(*xdp) == 1);
  CHECK(by_xdp.verdict == Verdict::kRedirect);
  CHECK(by_xdp.outputs[0].out_ifindex == kBackendIfindex);
  RequireSameOutcome(by_xdp, RunFromNetwork(*tc, syn));
  // The backend answers from its pod (tc); the next client packet is an
  // established connection, served by XDP again.
  const std::vector<uint8_t> reply = PacketBuilder()
                                         .IPv4("10.0.2.9", "203.0.113.7")
                                         .Tcp(8080, 5555, kTcpSyn | kTcpAck)
                                         .Build();
  RequireSameOutcome(Run(*xdp, kBackendIfindex, reply), Run(*tc, kBackendIfindex, reply));
  const std::vector<uint8_t> ack =
      PacketBuilder().IPv4("203.0.113.7", "192.168.1.10").Tcp(5555, 30080, kTcpAck).Build();
  RequireSameOutcome(RunFromNetwork(*xdp, ack), RunFromNetwork(*tc, ack));
  CHECK(XdpServed(*xdp) == 2);
  absl::StatusOr<Counters> cx = xdp->ReadCounters();
  absl::StatusOr<Counters> ct = tc->ReadCounters();
  REQUIRE(cx.ok());
  REQUIRE(ct.ok());
  CHECK(cx->counters == ct->counters);
  CHECK(cx->counter(DPV2_CNT_PACKETS) == 3);
  CHECK(cx->counter(DPV2_CNT_SERVICE_ESTABLISHED) == 1);
}

TEST_CASE("with XDP, traffic it does not serve (a ClusterIP, a malformed frame) reaches tc "
          "untouched and is counted once") {
  std::unique_ptr<Backend> xdp = MakeLoaded({.config = SmallConfig(), .xdp = true});
  const std::vector<uint8_t> syn =
      PacketBuilder().IPv4("203.0.113.7", "10.96.0.10").Tcp(5555, 80, kTcpSyn).Build();
  PacketOutcome out = RunFromNetwork(*xdp, syn);
  CHECK(out.verdict == Verdict::kRedirect);  // tc served the ClusterIP
  std::vector<uint8_t> cut = syn;
  cut.resize(14 + 20 + 10);
  CHECK(RunFromNetwork(*xdp, cut).drop_reason == DPV2_DROP_TRUNCATED);
  CHECK(XdpServed(*xdp) == 0);
  absl::StatusOr<Counters> c = xdp->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->counter(DPV2_CNT_PACKETS) == 2);
  CHECK(c->drop(DPV2_DROP_TRUNCATED) == 1);
}

TEST_CASE("a restarted process finds its pinned maps: configuration and connections survive") {
  // A private mount namespace keeps the bpffs mount away from the host.
  REQUIRE(unshare(CLONE_NEWNS) == 0);
  REQUIRE(mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0);
  char dir[] = "/tmp/dpv2-ebpf-pin-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  REQUIRE(mount("bpf", dir, "bpf", 0, nullptr) == 0);
  const std::string pin = std::string(dir) + "/node";
  {
    std::unique_ptr<Backend> first = MakeLoaded({.config = SmallConfig(), .pin_path = pin});
    Run(*first, kClientIfindex, Syn());
  }
  absl::StatusOr<std::unique_ptr<Backend>> second =
      MakeEbpfBackend({.config = SmallConfig(), .pin_path = pin});
  REQUIRE(second.ok());
  CHECK((*second)->DumpConntrack()->size() == 2);
  std::vector<uint8_t> reply = PacketBuilder()
                                   .IPv4("10.0.2.9", "10.0.1.5")
                                   .Tcp(8080, 40000, kTcpSyn | kTcpAck)
                                   .Build();
  PacketOutcome out = Run(**second, kBackendIfindex, reply);
  CHECK(out.verdict == Verdict::kRedirect);
  CHECK(ParsePacket(out.outputs[0].frame).pkt.src.ToString() == "10.96.0.10");
  // Re-applying the same state is accepted (the model was rebuilt from maps).
  CHECK((*second)->Apply(ClusterIpBatch()).ok());
  // Another size is not reused as it is: the map is migrated, its entries
  // copied into one of the new size (ebpf_restart covers conntrack).
  DatapathConfig other = SmallConfig();
  other.max_services = 128;
  absl::StatusOr<std::unique_ptr<Backend>> resized =
      MakeEbpfBackend({.config = other, .pin_path = pin});
  REQUIRE(resized.ok());
  absl::StatusOr<ChangeBatch> kept = (*resized)->DumpState();
  absl::StatusOr<ChangeBatch> was = (*second)->DumpState();
  REQUIRE(kept.ok());
  REQUIRE(was.ok());
  CHECK(kept->services_upsert.size() == was->services_upsert.size());
  CHECK(!kept->services_upsert.empty());
  // A size too small for the pinned entries (two endpoints) is refused, and
  // the pins stay as they were for the next process.
  REQUIRE(kept->endpoints_upsert.size() == 2);
  DatapathConfig too_small = other;
  too_small.max_endpoints = 1;
  absl::StatusOr<std::unique_ptr<Backend>> refused =
      MakeEbpfBackend({.config = too_small, .pin_path = pin});
  REQUIRE_FALSE(refused.ok());
  CHECK(absl::StrContains(refused.status().message(), "dpv2_endpoints"));
  resized->reset();
  absl::StatusOr<std::unique_ptr<Backend>> next =
      MakeEbpfBackend({.config = other, .pin_path = pin});
  REQUIRE(next.ok());
  absl::StatusOr<ChangeBatch> still = (*next)->DumpState();
  REQUIRE(still.ok());
  CHECK(still->endpoints_upsert.size() == 2);
  CHECK(still->services_upsert.size() == kept->services_upsert.size());
  next->reset();
  second->reset();
  umount2(dir, MNT_DETACH);
  rmdir(dir);
}

// Lookup tables live whole in hash maps, one per size class (bpf/maglev.h);
// a deleted table waits out a grace period there before it is deleted, since
// its memory may be reused at once by the next insert (ebpf_backend.cc
// "Retired tables").

// A second backend of the same pod on port 9090 (id 3), and table `table_id`
// of `backend_id` with the frontend switched to it; `retire` is deleted.
ChangeBatch SwitchTable(uint32_t table_id, uint32_t backend_id, uint32_t retire) {
  ChangeBatch b;
  BackendEntry be = ClusterIpBatch().backends_upsert[0];
  be.id = 3;
  be.value.port = htons(9090);
  b.backends_upsert.push_back(be);
  b.tables_upsert.push_back(
      LookupTable{.id = table_id, .slots = std::vector<uint32_t>(kM, backend_id)});
  ServiceEntry svc = ClusterIpBatch().services_upsert[0];
  svc.value.table_id = table_id;
  b.services_upsert.push_back(svc);
  b.tables_delete.push_back(retire);
  return b;
}

uint16_t ServedPort(Backend& b, uint16_t client_port) {
  const std::vector<uint8_t> syn =
      PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(client_port, 80, kTcpSyn).Build();
  PacketOutcome out = Run(b, kClientIfindex, syn);
  REQUIRE(out.verdict == Verdict::kRedirect);
  return ParsePacket(out.outputs[0].frame).pkt.dport;
}

std::vector<uint32_t> DumpedTableIds(Backend& b) {
  absl::StatusOr<ChangeBatch> dump = b.DumpState();
  REQUIRE(dump.ok());
  std::vector<uint32_t> ids;
  for (const LookupTable& t : dump->tables_upsert) {
    ids.push_back(t.id);
  }
  return ids;
}

size_t TablesInMap(Backend& b) {
  absl::StatusOr<size_t> n = dynamic_cast<ebpf::EbpfBackend&>(b).LookupTablesInMap();
  REQUIRE(n.ok());
  return *n;
}

void WaitOutGrace() { usleep(150'000); }  // kTableGraceNs is 100 ms

TEST_CASE("a table switch serves the new table at once; the old one leaves the dump at once and "
          "the map after its grace period") {
  std::unique_ptr<Backend> b = MakeLoaded();
  CHECK(ServedPort(*b, 40001) == 8080);
  REQUIRE(b->Apply(SwitchTable(6, 3, 5)).ok());
  CHECK(ServedPort(*b, 40002) == 9090);
  CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{6});
  CHECK(TablesInMap(*b) == 2);  // 5 is retired, still readable
  WaitOutGrace();
  REQUIRE(b->Apply(ChangeBatch{}).ok());  // any Apply releases what is due
  CHECK(TablesInMap(*b) == 1);
  CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{6});
}

TEST_CASE("a retired table id written again serves its new contents") {
  std::unique_ptr<Backend> b = MakeLoaded();
  REQUIRE(b->Apply(SwitchTable(6, 3, 5)).ok());  // 5 (backend 1) retired
  absl::Status s = b->Apply(SwitchTable(5, 3, 6));  // 5 again, now backend 3
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(ServedPort(*b, 40003) == 9090);
  CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{5});
}

TEST_CASE("a table map holding retired tables makes room by waiting out their grace period") {
  DatapathConfig config = SmallConfig();
  config.max_tables = 2;
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  REQUIRE(b->Apply(SwitchTable(6, 3, 5)).ok());  // map: 5 (retired), 6
  absl::Status s = b->Apply(SwitchTable(7, 1, 6));  // map full until 5 goes
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(ServedPort(*b, 40004) == 8080);
  CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{7});
  CHECK(TablesInMap(*b) == 2);  // 6 retired, 7
}

TEST_CASE("a full table map fails the batch by name and is undone: new tables are retired, the "
          "old frontend still serves") {
  DatapathConfig config = SmallConfig();
  config.max_tables = 2;
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  // After the batch only 6 and 7 exist (the model's count is 2), but the map
  // needs room for both while 5 is still in use: no retired table to free.
  ChangeBatch batch = SwitchTable(7, 3, 5);
  batch.tables_upsert.insert(batch.tables_upsert.begin(),
                             LookupTable{.id = 6, .slots = std::vector<uint32_t>(kM, 3)});
  absl::Status s = b->Apply(batch);
  CHECK(absl::IsResourceExhausted(s));
  INFO(s.message());
  // The table that did not fit, its frontend and its class map.
  CHECK(absl::StrContains(s.message(), "lookup table 7 of frontend TCP 10.96.0.10:80 EXT"));
  CHECK(absl::StrContains(s.message(), "dpv2_tables_0"));
  CHECK(ServedPort(*b, 40005) == 8080);
  CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{5});
  CHECK(TablesInMap(*b) == 2);  // 6 retired: a frontend could have read it
  WaitOutGrace();
  REQUIRE(b->Apply(ChangeBatch{}).ok());
  CHECK(TablesInMap(*b) == 1);
  // The same batch fits once the map has room for it.
  batch.tables_upsert.erase(batch.tables_upsert.begin());
  s = b->Apply(batch);
  INFO(s.ToString());
  CHECK(s.ok());
  CHECK(ServedPort(*b, 40006) == 9090);
}

BackendEntry OtherBackend(uint32_t id, uint16_t port) {
  BackendEntry be = ClusterIpBatch().backends_upsert[0];
  be.id = id;
  be.value.port = htons(port);
  return be;
}

size_t TablesInClass(Backend& b, uint32_t table_class) {
  absl::StatusOr<std::array<size_t, ebpf::kTableClasses>> n =
      dynamic_cast<ebpf::EbpfBackend&>(b).LookupTablesPerClass();
  REQUIRE(n.ok());
  return (*n)[table_class];
}

// The frontend value of 10.96.0.10:80 as the services map holds it.
dpv2_lb_value ServiceInMap(Backend& b) {
  absl::StatusOr<ebpf::DatapathImage> image = dynamic_cast<ebpf::EbpfBackend&>(b).Image();
  REQUIRE(image.ok());
  const dpv2_lb_key key = ClusterIpBatch().services_upsert[0].key;
  const auto& services = image->maps["dpv2_services"];
  auto it = services.find(std::string(reinterpret_cast<const char*>(&key), sizeof(key)));
  REQUIRE(it != services.end());
  dpv2_lb_value v;
  REQUIRE(it->second.size() == sizeof(v));
  std::memcpy(&v, it->second.data(), sizeof(v));
  return v;
}

TEST_CASE("a table of each size class serves its frontend from that class's map and dumps at "
          "its own size, the frontends without class bits") {
  DatapathConfig config = SmallConfig();
  config.maglev_table_size = 16381;  // classes 0-6 hold tables, 7-16 none
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  ChangeBatch batch;
  std::vector<uint32_t> sizes;
  for (uint32_t k = 0; k <= ebpf::TableClassOf(16381); ++k) {
    sizes.push_back(kMaglevSizeLadder[k]);
  }
  sizes.push_back(300);  // off the ladder: class 1 (509)
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    BackendEntry be = OtherBackend(100 + i, static_cast<uint16_t>(8100 + i));
    batch.backends_upsert.push_back(be);
    batch.tables_upsert.push_back(
        LookupTable{.id = 100 + i, .slots = std::vector<uint32_t>(sizes[i], 100 + i)});
    ServiceEntry svc = ClusterIpBatch().services_upsert[0];
    svc.key.addr = Addr(("10.96.1." + std::to_string(i + 1)).c_str());
    svc.value.service_id = 100 + i;
    svc.value.table_id = 100 + i;
    svc.value.flags = DPV2_LB_F_LOCAL;
    batch.services_upsert.push_back(svc);
  }
  absl::Status s = b->Apply(batch);
  INFO(s.ToString());
  REQUIRE(s.ok());
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    INFO("table of " << sizes[i] << " slots");
    const std::string vip = "10.96.1." + std::to_string(i + 1);
    PacketOutcome out = Run(*b, kClientIfindex,
                            PacketBuilder().IPv4("10.0.1.5", vip.c_str()).Tcp(40000, 80, kTcpSyn).Build());
    REQUIRE(out.verdict == Verdict::kRedirect);
    CHECK(ParsePacket(out.outputs[0].frame).pkt.dport == 8100 + i);
  }
  // ClusterIpBatch's table 5 (251 slots) and 100 in class 0, 300 slots in class 1.
  const std::vector<size_t> per_class = {2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (uint32_t k = 0; k < ebpf::kTableClasses; ++k) {
    INFO("class " << k);
    CHECK(TablesInClass(*b, k) == per_class[k]);
  }
  absl::StatusOr<ChangeBatch> dump = b->DumpState();
  REQUIRE(dump.ok());
  std::map<uint32_t, size_t> dumped_sizes;
  for (const LookupTable& t : dump->tables_upsert) {
    dumped_sizes[t.id] = t.slots.size();
  }
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    CHECK(dumped_sizes[100 + i] == sizes[i]);
  }
  for (const ServiceEntry& e : dump->services_upsert) {
    CHECK((e.value.flags & DPV2_LB_F_TABLE_CLASS) == 0);
  }
}

TEST_CASE("a Service growing across a ladder step moves to the next class's map: its connection "
          "keeps its backend, new ones use the new table, and the old class entry is freed") {
  DatapathConfig config = SmallConfig();
  config.maglev_table_size = 1021;
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  CHECK(DPV2_LB_TABLE_CLASS_OF(ServiceInMap(*b).flags) == 0);
  std::vector<uint8_t> ack =
      PacketBuilder().IPv4("10.0.1.5", "10.96.0.10").Tcp(40000, 80, kTcpAck).Build();
  REQUIRE(Run(*b, kClientIfindex, Syn()).verdict == Verdict::kRedirect);  // backend 1
  // A second backend: 509 slots, alternating (the Service's second step).
  ChangeBatch grow = SwitchTable(6, 3, 5);
  grow.tables_upsert[0].slots = std::vector<uint32_t>(509, 1);
  for (uint32_t slot = 1; slot < 509; slot += 2) {
    grow.tables_upsert[0].slots[slot] = 3;
  }
  grow.services_upsert[0].value.backend_count = 2;
  REQUIRE(b->Apply(grow).ok());
  CHECK(DPV2_LB_TABLE_CLASS_OF(ServiceInMap(*b).flags) == 1);
  CHECK(TablesInClass(*b, 0) == 1);  // 5, retired
  CHECK(TablesInClass(*b, 1) == 1);
  PacketOutcome established = Run(*b, kClientIfindex, ack);
  REQUIRE(established.verdict == Verdict::kRedirect);
  CHECK(ParsePacket(established.outputs[0].frame).pkt.dport == 8080);
  std::set<uint16_t> ports;
  for (uint16_t sport = 41000; sport < 41032; ++sport) {
    ports.insert(ServedPort(*b, sport));
  }
  CHECK(ports == std::set<uint16_t>{8080, 9090});
  WaitOutGrace();
  REQUIRE(b->Apply(ChangeBatch{}).ok());
  CHECK(TablesInClass(*b, 0) == 0);
  CHECK(TablesInClass(*b, 1) == 1);
  CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{6});
  // And back below the step: class 0 again, one frontend update.
  REQUIRE(b->Apply(SwitchTable(7, 3, 6)).ok());
  CHECK(DPV2_LB_TABLE_CLASS_OF(ServiceInMap(*b).flags) == 0);
  CHECK(ServedPort(*b, 42000) == 9090);
}

TEST_CASE("a pinned instance leaves no retired table behind: the next process finds only live "
          "tables") {
  REQUIRE(unshare(CLONE_NEWNS) == 0);
  REQUIRE(mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0);
  char dir[] = "/tmp/dpv2-ebpf-retire-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  REQUIRE(mount("bpf", dir, "bpf", 0, nullptr) == 0);
  const std::string pin = std::string(dir) + "/node";
  {
    std::unique_ptr<Backend> first = MakeLoaded({.config = SmallConfig(), .pin_path = pin});
    REQUIRE(first->Apply(SwitchTable(6, 3, 5)).ok());
    CHECK(TablesInMap(*first) == 2);  // 5 retired when the process ends
  }
  absl::StatusOr<std::unique_ptr<Backend>> second =
      MakeEbpfBackend({.config = SmallConfig(), .pin_path = pin});
  INFO(second.status().ToString());
  REQUIRE(second.ok());
  CHECK(TablesInMap(**second) == 1);
  CHECK(DumpedTableIds(**second) == std::vector<uint32_t>{6});
  CHECK(ServedPort(**second, 40007) == 9090);
  second->reset();
  umount2(dir, MNT_DETACH);
  rmdir(dir);
}


// Undo's old values (ebpf_backend.cc MapTransaction): read key by key, from
// one whole-map batch read, or known absent from an empty map.

// The batch of the full-table-map case above: it fails at the table write,
// after the backends are written.
ChangeBatch OverflowingTables() {
  ChangeBatch batch = SwitchTable(7, 3, 5);
  batch.tables_upsert.insert(batch.tables_upsert.begin(),
                             LookupTable{.id = 6, .slots = std::vector<uint32_t>(kM, 3)});
  return batch;
}

// The bytes of plain records (the ABI structs have no operator==).
template <typename T>
std::string Raw(const std::vector<T>& records) {
  return std::string(reinterpret_cast<const char*>(records.data()), records.size() * sizeof(T));
}

TEST_CASE("a batch failing after it rewrote a few or most keys of a busy map restores every old "
          "value and removes every new key") {
  DatapathConfig config = SmallConfig();
  config.max_tables = 2;
  std::unique_ptr<Backend> b = MakeLoaded({.config = config});
  ChangeBatch more;
  for (uint32_t id = 10; id < 22; ++id) {
    more.backends_upsert.push_back(OtherBackend(id, static_cast<uint16_t>(7000 + id)));
  }
  REQUIRE(b->Apply(more).ok());  // 13 backends
  absl::StatusOr<ChangeBatch> before = b->DumpState();
  REQUIRE(before.ok());
  for (const size_t rewritten : {size_t{1}, size_t{12}}) {  // key by key; whole map
    INFO(rewritten << " backends rewritten");
    ChangeBatch batch = OverflowingTables();
    batch.backends_upsert.clear();
    for (uint32_t id = 10; id < 10 + rewritten; ++id) {
      batch.backends_upsert.push_back(OtherBackend(id, 9999));
    }
    batch.backends_upsert.push_back(OtherBackend(3, 9090));  // new
    CHECK(absl::IsResourceExhausted(b->Apply(batch)));
    absl::StatusOr<ChangeBatch> after = b->DumpState();
    REQUIRE(after.ok());
    CHECK(Raw(after->backends_upsert) == Raw(before->backends_upsert));
    CHECK(Raw(after->services_upsert) == Raw(before->services_upsert));
    CHECK(DumpedTableIds(*b) == std::vector<uint32_t>{5});
    WaitOutGrace();  // the new tables were retired
  }
}

TEST_CASE("an exact-prefix read of an LPM trie tells a stored prefix from one that only covers "
          "the key") {
  struct Key {
    uint32_t prefixlen;
    uint8_t addr[4];
  };
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  const int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "dpv2_lpm_test", sizeof(Key),
                                sizeof(uint32_t), 16, &opts);
  REQUIRE(fd >= 0);
  const ebpf::BpfMap map(fd, "dpv2_lpm_test", sizeof(Key), sizeof(uint32_t));
  auto put = [&](Key k, uint32_t v) { REQUIRE(map.Update(&k, &v).ok()); };
  // The value stored under exactly k, or -1.
  auto exact = [&](Key k) -> int64_t {
    absl::StatusOr<std::optional<std::string>> first = map.FirstKey();
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    uint32_t v = 0;
    absl::StatusOr<bool> found = map.LookupExactPrefix(&k, **first, &v);
    REQUIRE(found.ok());
    return *found ? int64_t{v} : -1;
  };
  CHECK(map.FirstKey()->has_value() == false);
  put({8, {10, 0, 0, 0}}, 1);
  uint32_t v = 0;
  const Key covered{32, {10, 0, 2, 9}};
  CHECK(*map.Lookup(&covered, &v));  // the /8 covers it
  CHECK(exact({32, {10, 0, 2, 9}}) == -1);
  CHECK(exact({8, {10, 0, 0, 0}}) == 1);  // the only (and last) key
  put({32, {10, 0, 2, 9}}, 2);
  put({16, {10, 1, 0, 0}}, 3);
  put({16, {192, 168, 0, 0}}, 4);
  put({0, {0, 0, 0, 0}}, 5);
  CHECK(exact({8, {10, 0, 0, 0}}) == 1);
  CHECK(exact({32, {10, 0, 2, 9}}) == 2);
  CHECK(exact({16, {10, 1, 0, 0}}) == 3);
  CHECK(exact({16, {192, 168, 0, 0}}) == 4);
  CHECK(exact({0, {0, 0, 0, 0}}) == 5);
  CHECK(exact({32, {10, 0, 2, 10}}) == -1);
  CHECK(exact({16, {10, 0, 0, 0}}) == -1);
  CHECK(exact({8, {11, 0, 0, 0}}) == -1);
  CHECK(exact({24, {192, 168, 1, 0}}) == -1);
  close(fd);
}

TEST_CASE("a whole hash map read in batch calls gives every entry, across calls") {
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  const int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "dpv2_hash_test", sizeof(uint32_t),
                                sizeof(uint64_t), 8192, &opts);
  REQUIRE(fd >= 0);
  const ebpf::BpfMap map(fd, "dpv2_hash_test", sizeof(uint32_t), sizeof(uint64_t));
  CHECK(map.Entries()->empty());
  for (uint32_t k = 0; k < 5000; ++k) {  // more than one call's 4096
    const uint64_t value = uint64_t{k} * 3;
    REQUIRE(map.Update(&k, &value).ok());
  }
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> all = map.Entries();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 5000);
  for (uint32_t k = 0; k < 5000; ++k) {
    auto it = all->find(std::string(reinterpret_cast<const char*>(&k), sizeof(k)));
    REQUIRE(it != all->end());
    uint64_t value;
    std::memcpy(&value, it->second.data(), sizeof(value));
    CHECK(value == uint64_t{k} * 3);
  }
  close(fd);
}

// Reset (what the conformance harness runs between cases instead of a load).

IpcacheEntry Prefix(const char* addr, uint32_t bits, uint32_t identity) {
  IpcacheEntry e{};
  e.key.prefixlen = 32 + bits;
  e.key.family = DPV2_FAMILY_V4;
  e.key.addr = Addr(addr);
  e.value.identity = identity;
  return e;
}

ebpf::DatapathImage ImageOf(Backend& b) {
  absl::StatusOr<ebpf::DatapathImage> image = dynamic_cast<ebpf::EbpfBackend&>(b).Image();
  INFO(image.status().ToString());
  REQUIRE(image.ok());
  return *std::move(image);
}

TEST_CASE("a reset backend holds exactly what a freshly loaded one holds, after connections, "
          "events, drops, aged state, retired tables and LPM entries") {
  const EbpfOptions options{.config = SmallConfig(), .xdp = true};
  std::unique_ptr<Backend> busy = MakeLoaded(options);
  REQUIRE(busy->Apply(SwitchTable(6, 3, 5)).ok());  // table 5 retired
  ChangeBatch more;
  more.services_upsert = {NodePortBatch().services_upsert[1]};
  more.services_upsert[0].value.table_id = 6;
  more.ipcache_upsert = {Prefix("10.0.0.0", 8, 7), Prefix("10.0.2.9", 32, 1002)};
  REQUIRE(busy->Apply(more).ok());
  Run(*busy, kClientIfindex, Syn());  // conntrack, a trace event, counters
  RunFromNetwork(*busy,  // served by XDP
                 PacketBuilder().IPv4("203.0.113.7", "192.168.1.10").Tcp(5555, 30080, kTcpSyn).Build());
  Run(*busy, kClientIfindex,  // a drop
      PacketBuilder().IPv4("10.0.1.99", "10.96.0.10").Tcp(40000, 80, kTcpSyn).Build());
  auto& ebpf = dynamic_cast<ebpf::EbpfBackend&>(*busy);
  REQUIRE(ebpf.AgeState(1'000'000'000ull).ok());
  REQUIRE(XdpServed(*busy) == 1);
  std::unique_ptr<Backend> fresh = *MakeEbpfBackend(options);
  const ebpf::DatapathImage loaded = ImageOf(*fresh);
  // The image sees what the busy case left: the check below can fail.
  CHECK(!ebpf::DescribeImageDifference(loaded, ImageOf(*busy)).empty());

  absl::Status reset = ebpf.Reset();
  INFO(reset.ToString());
  REQUIRE(reset.ok());
  const std::string difference = ebpf::DescribeImageDifference(loaded, ImageOf(*busy));
  INFO(difference);
  CHECK(difference.empty());
  CHECK(busy->DumpState()->empty());
  CHECK(busy->DumpConntrack()->empty());
  CHECK(busy->DrainEvents(100)->empty());
  CHECK(XdpServed(*busy) == 0);
  // And it serves like a new one: the same state gives the same outcome.
  REQUIRE(busy->Apply(ClusterIpBatch()).ok());
  REQUIRE(fresh->Apply(ClusterIpBatch()).ok());
  RequireSameOutcome(Run(*busy, kClientIfindex, Syn()), Run(*fresh, kClientIfindex, Syn()));
  CHECK(busy->ReadCounters()->counters == fresh->ReadCounters()->counters);
}

TEST_CASE("an image difference names the map and the key left behind") {
  std::unique_ptr<Backend> b = *MakeEbpfBackend({.config = SmallConfig()});
  const ebpf::DatapathImage empty = ImageOf(*b);
  ChangeBatch batch;
  batch.ipcache_upsert = {Prefix("10.0.0.0", 8, 7)};
  REQUIRE(b->Apply(batch).ok());
  const std::string difference = ebpf::DescribeImageDifference(empty, ImageOf(*b));
  CHECK(absl::StartsWith(difference, "dpv2_ipcache: key 28000000040000000a"));
  CHECK(absl::EndsWith(difference, "left behind"));
}

TEST_CASE("Reset is refused for a pinned instance: its maps are also the next process's") {
  REQUIRE(unshare(CLONE_NEWNS) == 0);
  REQUIRE(mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0);
  char dir[] = "/tmp/dpv2-ebpf-reset-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  REQUIRE(mount("bpf", dir, "bpf", 0, nullptr) == 0);
  {
    std::unique_ptr<Backend> b =
        MakeLoaded({.config = SmallConfig(), .pin_path = std::string(dir) + "/node"});
    CHECK(absl::IsFailedPrecondition(dynamic_cast<ebpf::EbpfBackend&>(*b).Reset()));
    CHECK(b->DumpState()->services_upsert.size() == 1);
  }
  umount2(dir, MNT_DETACH);
  rmdir(dir);
}

}  // namespace
}  // namespace dpv2
