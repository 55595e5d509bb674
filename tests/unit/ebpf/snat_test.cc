// SNAT of external Cluster-policy connections to backends on other nodes in
// the eBPF datapath (docs/datapath.md, "SNAT") beyond what the conformance
// suite shows: the SNAT entries the programs write, the port claim's
// failures, entries gone under a connection, XDP handing SNATed connections
// to tc, garbage collection of SNAT entries, and the loader's node
// addresses (apply, dump, undo). BPF_PROG_TEST_RUN on the real programs;
// needs root (exits 77 otherwise, unless CI=true: ebpf_test_main.cc).
#include <arpa/inet.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "backends/ebpf/ebpf_backend.h"
#include "dpv2/abi/hash.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "program_map.h"
#include "small_config.h"

namespace dpv2 {
namespace {

using testing::SmallConfig;

constexpr uint32_t kExternalIfindex = 3;
constexpr const char* kNode = "192.168.1.10";
constexpr const char* kBackend = "10.0.3.9";  // a pod on another node
constexpr const char* kClient = "203.0.113.7";
constexpr uint16_t kNodePort = 30080;

dpv2_addr Addr(const char* text) { return IpAddr::Parse(text)->ToAbi(); }

// The node's IPv4 address and a NodePort 192.168.1.10:30080/TCP whose one
// backend, 10.0.3.9:8080, runs on another node.
ChangeBatch NodePortBatch(uint16_t frontend_flags = DPV2_LB_F_NODEPORT) {
  ChangeBatch b;
  b.node_addresses_upsert.push_back({.family = DPV2_FAMILY_V4, .addr = Addr(kNode)});
  BackendEntry be{.id = 1};
  be.value.addr = Addr(kBackend);
  be.value.port = htons(8080);
  be.value.proto = DPV2_PROTO_TCP;
  be.value.family = DPV2_FAMILY_V4;
  b.backends_upsert.push_back(be);
  b.tables_upsert.push_back(
      LookupTable{.id = 5, .slots = std::vector<uint32_t>(testing::kSmallMaglevTableSize, 1)});
  ServiceEntry svc{};
  svc.key.addr = Addr(kNode);
  svc.key.port = htons(kNodePort);
  svc.key.proto = DPV2_PROTO_TCP;
  svc.key.family = DPV2_FAMILY_V4;
  svc.key.scope = DPV2_LB_SCOPE_EXT;
  svc.value.service_id = 42;
  svc.value.table_id = 5;
  svc.value.backend_count = 1;
  svc.value.flags = frontend_flags;
  svc.value.affinity_timeout_s = (frontend_flags & DPV2_LB_F_AFFINITY) ? 600 : 0;
  b.services_upsert.push_back(svc);
  return b;
}

std::unique_ptr<ebpf::EbpfBackend> Load(const EbpfOptions& options,
                                        const ChangeBatch& batch = NodePortBatch()) {
  absl::StatusOr<std::unique_ptr<ebpf::EbpfBackend>> b = ebpf::EbpfBackend::Create(options);
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  absl::Status s = (*b)->Apply(batch);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return *std::move(b);
}

PacketOutcome FromNetwork(Backend& b, const std::vector<uint8_t>& frame) {
  absl::StatusOr<PacketOutcome> out =
      b.RunPacket({.entry = Entry::kFromNetwork, .ifindex = kExternalIfindex, .frame = frame});
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  return *std::move(out);
}

std::vector<uint8_t> ClientTcp(const char* client, uint16_t sport, uint8_t flags) {
  return PacketBuilder().IPv4(client, kNode).Tcp(sport, kNodePort, flags).Build();
}

std::vector<uint8_t> BackendTcp(uint16_t snat_port, uint8_t flags) {
  return PacketBuilder().IPv4(kBackend, kNode).Tcp(8080, snat_port, flags).Build();
}

// The source port an SNATed frame left with (its source must be the node).
uint16_t SnatPortOf(const PacketOutcome& out) {
  REQUIRE(out.verdict == Verdict::kPass);
  REQUIRE(out.outputs.size() == 1);
  ParseResult r = ParsePacket(out.outputs[0].frame);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.src.ToString() == kNode);
  CHECK(r.pkt.dst.ToString() == kBackend);
  return r.pkt.sport;
}

// The port the spec's first probe gives client:sport -> the NodePort.
uint16_t FirstProbe(const char* client, uint16_t sport, const DatapathConfig& config) {
  const dpv2_addr c = Addr(client);
  const dpv2_addr f = Addr(kNode);
  const uint32_t hash =
      dpv2_tuple_hash(&c, &f, htons(sport), htons(kNodePort), DPV2_PROTO_TCP, DPV2_FAMILY_V4);
  const uint32_t range = uint32_t{config.snat_port_max} - config.snat_port_min + 1;
  return static_cast<uint16_t>(config.snat_port_min + hash % range);
}

dpv2_ct_key CtKey(const char* saddr, uint16_t sport, const char* daddr, uint16_t dport,
                  uint8_t flags) {
  dpv2_ct_key k{};
  k.saddr = Addr(saddr);
  k.daddr = Addr(daddr);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = DPV2_PROTO_TCP;
  k.family = DPV2_FAMILY_V4;
  k.flags = flags;
  return k;
}

std::string Bytes(const dpv2_ct_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

// The SNAT table, key bytes -> value.
std::map<std::string, dpv2_snat_value> SnatEntries(ebpf::EbpfBackend& b) {
  absl::StatusOr<ebpf::DatapathImage> image = b.Image();
  REQUIRE(image.ok());
  std::map<std::string, dpv2_snat_value> out;
  for (const auto& [key, value] : image->maps["dpv2_snat"]) {
    REQUIRE(value.size() == sizeof(dpv2_snat_value));
    std::memcpy(&out[key], value.data(), sizeof(dpv2_snat_value));
  }
  return out;
}

// Deletes `key` from the map `name` behind the datapath's back.
void DeleteEntry(ebpf::EbpfBackend& b, absl::string_view name, const dpv2_ct_key& key) {
  const int fd = testing::ProgramMap(b.from_network_test_fd(),
                                     [name](const bpf_map_info& m) { return name == m.name; });
  REQUIRE(fd >= 0);
  const int rc = bpf_map_delete_elem(fd, &key);
  close(fd);
  REQUIRE(rc == 0);
}

uint64_t CounterOf(Backend& b, dpv2_counter c) {
  absl::StatusOr<Counters> counters = b.ReadCounters();
  REQUIRE(counters.ok());
  return counters->counter(c);
}

uint64_t DropsOf(Backend& b, dpv2_drop_reason r) {
  absl::StatusOr<Counters> counters = b.ReadCounters();
  REQUIRE(counters.ok());
  return counters->drop(r);
}

size_t ConntrackSize(Backend& b) {
  absl::StatusOr<std::vector<ConntrackEntry>> ct = b.DumpConntrack();
  REQUIRE(ct.ok());
  return ct->size();
}

TEST_CASE("a NodePort SYN from the network to a backend on another node leaves from the node "
          "address and its first probe's port with the C++ rewrite's bytes, writes both SNAT "
          "entries, and its reply goes back to the client from the NodePort") {
  const DatapathConfig config = SmallConfig();
  for (const EbpfChecksum checksum : {EbpfChecksum::kAuto, EbpfChecksum::kHelpers}) {
    INFO("checksum option " << static_cast<int>(checksum));
    std::unique_ptr<ebpf::EbpfBackend> b = Load({.config = config, .checksum = checksum});
    const std::vector<uint8_t> syn = ClientTcp(kClient, 5555, kTcpSyn);
    PacketOutcome out = FromNetwork(*b, syn);
    const uint16_t port = SnatPortOf(out);
    CHECK(port == FirstProbe(kClient, 5555, config));
    std::vector<uint8_t> want = syn;
    RewriteDestination(absl::MakeSpan(want), ParsePacket(want).pkt, *IpAddr::Parse(kBackend),
                       8080);
    RewriteSource(absl::MakeSpan(want), ParsePacket(want).pkt, *IpAddr::Parse(kNode), port);
    CHECK(out.outputs[0].frame == want);
    CHECK(CounterOf(*b, DPV2_CNT_SNAT_NEW) == 1);

    std::map<std::string, dpv2_snat_value> snat = SnatEntries(*b);
    REQUIRE(snat.size() == 2);
    const auto reverse = snat.find(Bytes(CtKey(kNode, port, kBackend, 8080, 0)));
    REQUIRE(reverse != snat.end());
    CHECK(IpAddr::FromAbi(reverse->second.addr, Family::kV4).ToString() == kClient);
    CHECK(ntohs(reverse->second.port) == 5555);
    const auto forward =
        snat.find(Bytes(CtKey(kClient, 5555, kNode, kNodePort, DPV2_CT_KEY_SERVICE)));
    REQUIRE(forward != snat.end());
    CHECK(IpAddr::FromAbi(forward->second.addr, Family::kV4).ToString() == kNode);
    CHECK(ntohs(forward->second.port) == port);
    CHECK(forward->second.created_ns != 0);

    const std::vector<uint8_t> synack = BackendTcp(port, kTcpSyn | kTcpAck);
    PacketOutcome reply = FromNetwork(*b, synack);
    REQUIRE(reply.verdict == Verdict::kPass);
    REQUIRE(reply.outputs.size() == 1);
    want = synack;
    RewriteSource(absl::MakeSpan(want), ParsePacket(want).pkt, *IpAddr::Parse(kNode), kNodePort);
    RewriteDestination(absl::MakeSpan(want), ParsePacket(want).pkt, *IpAddr::Parse(kClient),
                       5555);
    CHECK(reply.outputs[0].frame == want);

    // Established: the same port, and no entry ever stamped for the fast path.
    CHECK(SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpAck))) == port);
    CHECK(SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpAck))) == port);
    absl::StatusOr<std::vector<ConntrackEntry>> ct = b->DumpConntrack();
    REQUIRE(ct.ok());
    REQUIRE(ct->size() == 2);
    for (const ConntrackEntry& e : *ct) {
      CHECK(e.value.revision == 0);
      CHECK((e.value.flags & DPV2_CT_F_SNAT) != 0);
    }
    CHECK(CounterOf(*b, DPV2_CNT_SERVICE_ESTABLISHED) == 2);
    CHECK(CounterOf(*b, DPV2_CNT_SNAT_NEW) == 1);
  }
}

TEST_CASE("with one SNAT port, another client's connection to the same backend is dropped as "
          "NAT_NO_PORT and leaves no entry, while the first client's reopened connection gets "
          "its port again") {
  DatapathConfig config = SmallConfig();
  config.snat_port_min = 40000;
  config.snat_port_max = 40000;
  std::unique_ptr<ebpf::EbpfBackend> b = Load({.config = config});
  CHECK(SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpSyn))) == 40000);
  PacketOutcome other = FromNetwork(*b, ClientTcp("203.0.113.8", 5555, kTcpSyn));
  CHECK(other.verdict == Verdict::kDrop);
  CHECK(other.drop_reason == DPV2_DROP_NAT_NO_PORT);
  CHECK(DropsOf(*b, DPV2_DROP_NAT_NO_PORT) == 1);
  CHECK(ConntrackSize(*b) == 2);
  CHECK(SnatEntries(*b).size() == 2);

  CHECK(SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpRst))) == 40000);
  CHECK(SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpSyn))) == 40000);
  CHECK(CounterOf(*b, DPV2_CNT_CT_REOPENED) == 1);
  CHECK(CounterOf(*b, DPV2_CNT_SNAT_NEW) == 2);
  CHECK(ConntrackSize(*b) == 2);
  CHECK(SnatEntries(*b).size() == 2);
}

TEST_CASE("a reply whose reverse SNAT entry is gone is dropped as NAT_FAILED untracked, and a "
          "forward packet whose forward SNAT entry is gone starts the connection again") {
  std::unique_ptr<ebpf::EbpfBackend> b = Load({.config = SmallConfig()});
  const uint16_t port = SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpSyn)));
  DeleteEntry(*b, "dpv2_snat", CtKey(kNode, port, kBackend, 8080, 0));
  PacketOutcome reply = FromNetwork(*b, BackendTcp(port, kTcpSyn | kTcpAck));
  CHECK(reply.verdict == Verdict::kDrop);
  CHECK(reply.drop_reason == DPV2_DROP_NAT_FAILED);
  absl::StatusOr<std::vector<ConntrackEntry>> ct = b->DumpConntrack();
  REQUIRE(ct.ok());
  for (const ConntrackEntry& e : *ct) {
    CHECK((e.value.flags & DPV2_CT_F_REPLY_SEEN) == 0);
  }

  DeleteEntry(*b, "dpv2_snat", CtKey(kClient, 5555, kNode, kNodePort, DPV2_CT_KEY_SERVICE));
  CHECK(SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpAck))) == port);
  CHECK(CounterOf(*b, DPV2_CNT_SERVICE_NEW) == 2);
  CHECK(CounterOf(*b, DPV2_CNT_SNAT_NEW) == 2);
  CHECK(CounterOf(*b, DPV2_CNT_SERVICE_ESTABLISHED) == 0);
  CHECK(SnatEntries(*b).size() == 2);
  CHECK(FromNetwork(*b, BackendTcp(port, kTcpAck)).verdict == Verdict::kPass);
}

TEST_CASE("a full SNAT table drops a new SNATed connection as CT_FULL and leaves none of its "
          "entries") {
  for (const uint32_t entries : {1u, 2u}) {
    INFO(entries << " SNAT entries");
    DatapathConfig config = SmallConfig();
    config.snat_entries = entries;
    std::unique_ptr<ebpf::EbpfBackend> b = Load({.config = config});
    // One entry: the forward entry finds no room. Two: the first connection
    // takes both, the second's reverse entry finds none.
    if (entries == 2) {
      SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpSyn)));
    }
    const size_t ct_before = ConntrackSize(*b);
    const size_t snat_before = SnatEntries(*b).size();
    PacketOutcome out = FromNetwork(*b, ClientTcp("203.0.113.8", 6666, kTcpSyn));
    CHECK(out.verdict == Verdict::kDrop);
    CHECK(out.drop_reason == DPV2_DROP_CT_FULL);
    CHECK(ConntrackSize(*b) == ct_before);
    CHECK(SnatEntries(*b).size() == snat_before);
  }
}

TEST_CASE("with XDP, SNATed connections go to tc as they came: the same bytes, events and "
          "counters as tc alone (affinity hits counted once), none served by XDP") {
  const ChangeBatch batch = NodePortBatch(DPV2_LB_F_NODEPORT | DPV2_LB_F_AFFINITY);
  std::unique_ptr<ebpf::EbpfBackend> tc = Load({.config = SmallConfig()}, batch);
  std::unique_ptr<ebpf::EbpfBackend> xdp = Load({.config = SmallConfig(), .xdp = true}, batch);
  const uint16_t port = FirstProbe(kClient, 5555, SmallConfig());
  for (const std::vector<uint8_t>& frame :
       {ClientTcp(kClient, 5555, kTcpSyn), BackendTcp(port, kTcpSyn | kTcpAck),
        ClientTcp(kClient, 5555, kTcpAck), ClientTcp(kClient, 5556, kTcpSyn)}) {
    PacketOutcome a = FromNetwork(*tc, frame);
    PacketOutcome b = FromNetwork(*xdp, frame);
    REQUIRE(a.verdict == Verdict::kPass);
    REQUIRE(b.verdict == a.verdict);
    REQUIRE(b.outputs.size() == a.outputs.size());
    CHECK(b.outputs[0].frame == a.outputs[0].frame);
    REQUIRE(b.events.size() == a.events.size());
    for (size_t i = 0; i < a.events.size(); ++i) {
      CHECK(b.events[i].type == a.events[i].type);
      CHECK(b.events[i].flags == a.events[i].flags);
      CHECK(b.events[i].tuple == a.events[i].tuple);
    }
  }
  CHECK(xdp->xdp_served() == 0);
  absl::StatusOr<Counters> ct = tc->ReadCounters();
  absl::StatusOr<Counters> cx = xdp->ReadCounters();
  REQUIRE(ct.ok());
  REQUIRE(cx.ok());
  CHECK(cx->counters == ct->counters);
  CHECK(cx->counter(DPV2_CNT_AFFINITY_HIT) == 1);
  CHECK(cx->counter(DPV2_CNT_SNAT_NEW) == 2);

  // A backend on this node is not SNATed: XDP serves its connection.
  ChangeBatch local;
  BackendEntry be = batch.backends_upsert[0];
  be.value.flags = DPV2_BACKEND_F_LOCAL;
  local.backends_upsert.push_back(be);
  REQUIRE(xdp->Apply(local).ok());
  PacketOutcome out = FromNetwork(*xdp, ClientTcp("203.0.113.9", 7777, kTcpSyn));
  REQUIRE(out.outputs.size() == 1);
  CHECK(ParsePacket(out.outputs[0].frame).pkt.src.ToString() == "203.0.113.9");
  CHECK(xdp->xdp_served() == 1);
}

TEST_CASE("garbage collection deletes an SNAT entry once its conntrack entry is gone and it is "
          "older than the grace period; a young or a live one stays") {
  std::unique_ptr<ebpf::EbpfBackend> b = Load({.config = SmallConfig()});
  SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpSyn)));
  REQUIRE(b->AgeState(2 * DPV2_SNAT_GC_GRACE_NS).ok());
  absl::StatusOr<GcStats> gc = b->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->deleted == 0);  // live: its conntrack entries exist
  CHECK(gc->scanned == 4);  // two conntrack, two SNAT entries

  // A second connection whose conntrack entries go behind the datapath's
  // back: its SNAT entries are orphans, young, then old.
  const uint16_t port = SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 6666, kTcpSyn)));
  DeleteEntry(*b, "dpv2_ct_tcp", CtKey(kClient, 6666, kNode, kNodePort, DPV2_CT_KEY_SERVICE));
  DeleteEntry(*b, "dpv2_ct_tcp", CtKey(kNode, port, kBackend, 8080, 0));
  gc = b->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->deleted == 0);
  CHECK(SnatEntries(*b).size() == 4);
  REQUIRE(b->AgeState(2 * DPV2_SNAT_GC_GRACE_NS).ok());
  gc = b->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->deleted == 2);
  std::map<std::string, dpv2_snat_value> left = SnatEntries(*b);
  CHECK(left.size() == 2);
  CHECK(!left.contains(Bytes(CtKey(kNode, port, kBackend, 8080, 0))));

  // Every connection forgotten, its SNAT entries with it.
  REQUIRE(b->FlushConntrack().ok());
  CHECK(SnatEntries(*b).empty());
}

TEST_CASE("node addresses are written, dumped and deleted; a bad family is refused naming the "
          "field with nothing applied, and a batch failing later takes its node address back") {
  DatapathConfig config = SmallConfig();
  config.max_tables = 2;
  std::unique_ptr<ebpf::EbpfBackend> b = Load({.config = config});
  ChangeBatch v6;
  v6.node_addresses_upsert.push_back({.family = DPV2_FAMILY_V6, .addr = Addr("fd00:1::10")});
  REQUIRE(b->Apply(v6).ok());
  absl::StatusOr<ChangeBatch> dump = b->DumpState();
  REQUIRE(dump.ok());
  REQUIRE(dump->node_addresses_upsert.size() == 2);
  CHECK(dump->node_addresses_upsert[0].family == DPV2_FAMILY_V4);
  CHECK(IpAddr::FromAbi(dump->node_addresses_upsert[0].addr, Family::kV4).ToString() == kNode);
  CHECK(dump->node_addresses_upsert[1].family == DPV2_FAMILY_V6);
  CHECK(IpAddr::FromAbi(dump->node_addresses_upsert[1].addr, Family::kV6).ToString() ==
        "fd00:1::10");

  ChangeBatch remove;
  remove.node_addresses_delete.push_back(DPV2_FAMILY_V6);
  REQUIRE(b->Apply(remove).ok());
  dump = b->DumpState();
  REQUIRE(dump.ok());
  REQUIRE(dump->node_addresses_upsert.size() == 1);
  CHECK(dump->node_addresses_upsert[0].family == DPV2_FAMILY_V4);

  ChangeBatch bad = v6;
  bad.node_addresses_upsert.push_back({.family = 9, .addr = Addr(kNode)});
  absl::Status s = b->Apply(bad);
  CHECK(absl::IsInvalidArgument(s));
  CHECK(absl::StrContains(s.message(), "node address"));
  CHECK(absl::StrContains(s.message(), "family 9"));
  ChangeBatch long_v4 = v6;
  long_v4.node_addresses_upsert.push_back({.family = DPV2_FAMILY_V4, .addr = Addr("fd00:1::10")});
  s = b->Apply(long_v4);
  CHECK(absl::IsInvalidArgument(s));
  CHECK(absl::StrContains(s.message(), "node address of family 4"));
  dump = b->DumpState();
  REQUIRE(dump.ok());
  CHECK(dump->node_addresses_upsert.size() == 1);

  // Tables 6 and 7 replace 5: two tables for the model, three in the map
  // while 5 is still in use, which has room for two.
  ChangeBatch failing = v6;
  for (const uint32_t id : {6u, 7u}) {
    failing.tables_upsert.push_back(
        LookupTable{.id = id, .slots = std::vector<uint32_t>(testing::kSmallMaglevTableSize, 1)});
  }
  ServiceEntry svc = NodePortBatch().services_upsert[0];
  svc.value.table_id = 7;
  failing.services_upsert.push_back(svc);
  failing.tables_delete.push_back(5);
  s = b->Apply(failing);
  INFO(s.ToString());
  CHECK(absl::IsResourceExhausted(s));
  dump = b->DumpState();
  REQUIRE(dump.ok());
  REQUIRE(dump->node_addresses_upsert.size() == 1);
  CHECK(dump->node_addresses_upsert[0].family == DPV2_FAMILY_V4);
  // The IPv4 address still SNATs; without it nothing is.
  SnatPortOf(FromNetwork(*b, ClientTcp(kClient, 5555, kTcpSyn)));
  ChangeBatch no_v4;
  no_v4.node_addresses_delete.push_back(DPV2_FAMILY_V4);
  REQUIRE(b->Apply(no_v4).ok());
  PacketOutcome out = FromNetwork(*b, ClientTcp(kClient, 5556, kTcpSyn));
  REQUIRE(out.outputs.size() == 1);
  CHECK(ParsePacket(out.outputs[0].frame).pkt.src.ToString() == kClient);
}

}  // namespace
}  // namespace dpv2
