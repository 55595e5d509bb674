#include "dpv2/sim.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <set>

#include "dpv2/packet.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = 7;

DatapathConfig Config() {
  DatapathConfig c;
  c.maglev_table_size = kM;
  return c;
}

dpv2_addr Addr(const char* text) { return IpAddr::Parse(text)->ToAbi(); }

// 10.96.0.10:80/TCP -> backends 10.0.2.1..n:8080, every slot filled in turn.
ChangeBatch ServiceBatch(int backends, uint16_t flags = 0) {
  ChangeBatch b;
  LookupTable table{.id = 1, .slots = {}};
  for (int i = 1; i <= backends; ++i) {
    BackendEntry e{.id = static_cast<uint32_t>(i), .value = {}};
    e.value.addr = Addr("10.0.2.0");
    e.value.addr.b[3] = static_cast<uint8_t>(i);
    e.value.port = htons(8080);
    e.value.proto = DPV2_PROTO_TCP;
    e.value.family = DPV2_FAMILY_V4;
    b.backends_upsert.push_back(e);
  }
  for (uint32_t s = 0; s < kM; ++s) {
    table.slots.push_back(s % backends + 1);
  }
  b.tables_upsert = {table};
  ServiceEntry svc{};
  svc.key.addr = Addr("10.96.0.10");
  svc.key.port = htons(80);
  svc.key.proto = DPV2_PROTO_TCP;
  svc.key.family = DPV2_FAMILY_V4;
  svc.value.service_id = 5;
  svc.value.table_id = 1;
  svc.value.backend_count = static_cast<uint16_t>(backends);
  svc.value.flags = flags;
  b.services_upsert = {svc};
  return b;
}

PacketInput Syn(uint16_t sport) {
  return {.entry = Entry::kFromNetwork,
          .ifindex = 1,
          .frame = PacketBuilder().IPv4("203.0.113.7", "10.96.0.10").Tcp(sport, 80, kTcpSyn).Build()};
}

TEST_CASE("MakeSimBackend rejects a configuration that does not validate") {
  DatapathConfig c;
  c.maglev_table_size = 16380;
  absl::StatusOr<std::unique_ptr<Backend>> sim = MakeSimBackend({.config = c});
  CHECK(absl::IsInvalidArgument(sim.status()));
}

TEST_CASE("a batch the sim rejects leaves its datapath forwarding as before") {
  auto sim = MakeSimBackend({.config = Config()});
  REQUIRE(sim.ok());
  REQUIRE((*sim)->Apply(ServiceBatch(1)).ok());
  ChangeBatch bad;
  bad.tables_delete = {1};  // still used by the service
  CHECK_FALSE((*sim)->Apply(bad).ok());
  absl::StatusOr<PacketOutcome> out = (*sim)->RunPacket(Syn(1000));
  REQUIRE(out.ok());
  CHECK(out->verdict == Verdict::kPass);
  REQUIRE(out->outputs.size() == 1);
  ParseResult r = ParsePacket(out->outputs[0].frame);
  CHECK(r.pkt.dst.ToString() == "10.0.2.1");
  CHECK(r.pkt.dport == 8080);
}

TEST_CASE("random selection spreads new connections over the table's backends") {
  auto sim = MakeSimBackend({.config = Config(), .random_seed = 42});
  REQUIRE(sim.ok());
  REQUIRE((*sim)->Apply(ServiceBatch(3, DPV2_LB_F_RANDOM)).ok());
  std::set<std::string> seen;
  for (uint16_t port = 1000; port < 1060; ++port) {
    absl::StatusOr<PacketOutcome> out = (*sim)->RunPacket(Syn(port));
    REQUIRE(out.ok());
    REQUIRE(out->outputs.size() == 1);
    seen.insert(ParsePacket(out->outputs[0].frame).pkt.dst.ToString());
  }
  CHECK(seen == std::set<std::string>{"10.0.2.1", "10.0.2.2", "10.0.2.3"});
}

TEST_CASE("events beyond the sim's queue capacity are lost and counted") {
  auto sim = MakeSimBackend({.config = Config(), .event_queue_capacity = 2});
  REQUIRE(sim.ok());
  REQUIRE((*sim)->Apply(ServiceBatch(1)).ok());
  for (uint16_t port = 1000; port < 1005; ++port) {
    REQUIRE((*sim)->RunPacket(Syn(port)).ok());
  }
  absl::StatusOr<Counters> c = (*sim)->ReadCounters();
  REQUIRE(c.ok());
  CHECK(c->counter(DPV2_CNT_EVENTS_LOST) == 3);
  absl::StatusOr<std::vector<FlowEvent>> events = (*sim)->DrainEvents(10);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  CHECK((*events)[0].tuple.sport == 1000);
  CHECK((*events)[0].type == DPV2_EVENT_TRACE);
  CHECK((*sim)->DrainEvents(10)->empty());
}

TEST_CASE("the sim's garbage collector reads the injected clock") {
  uint64_t now = 1'000'000;
  auto sim = MakeSimBackend({.config = Config(), .clock = [&now] { return now; }});
  REQUIRE(sim.ok());
  REQUIRE((*sim)->Apply(ServiceBatch(1)).ok());
  REQUIRE((*sim)->RunPacket(Syn(1000)).ok());
  CHECK((*sim)->DumpConntrack()->size() == 2);
  now += uint64_t{59} * 1'000'000'000;
  CHECK((*sim)->CollectGarbage()->deleted == 0);
  now += uint64_t{2} * 1'000'000'000;
  absl::StatusOr<GcStats> gc = (*sim)->CollectGarbage();
  REQUIRE(gc.ok());
  CHECK(gc->deleted == 2);
  CHECK((*sim)->DumpConntrack()->empty());
}

TEST_CASE("flushing the sim's conntrack makes an established flow new again") {
  auto sim = MakeSimBackend({.config = Config()});
  REQUIRE(sim.ok());
  REQUIRE((*sim)->Apply(ServiceBatch(1)).ok());
  REQUIRE((*sim)->RunPacket(Syn(1000)).ok());
  REQUIRE((*sim)->FlushConntrack().ok());
  CHECK((*sim)->DumpConntrack()->empty());
  REQUIRE((*sim)->RunPacket(Syn(1000)).ok());
  CHECK((*sim)->ReadCounters()->counter(DPV2_CNT_SERVICE_NEW) == 2);
}

}  // namespace
}  // namespace dpv2
