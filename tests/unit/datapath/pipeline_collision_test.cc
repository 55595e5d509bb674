// Source port collisions with flow steering (docs/datapath.md, "Source port
// collisions"): a port the core remaps must bring the connection's replies
// to the instance (DPDK lcore) that runs its forward packets.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/datapath/datapath_tables.h"
#include "core/datapath/pipeline.h"
#include "core/datapath/steering.h"
#include "dpv2/net.h"
#include "dpv2/packet.h"
#include "pipeline_fixtures.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = 7;
constexpr uint64_t kNow = 5'000'000'000;
constexpr const char* kClient = "203.0.113.7";

// OneServiceBatch's 10.96.0.1:80 and a second frontend, 10.96.0.2:80 (service
// 101), on the same backend.
ChangeBatch TwoFrontends() {
  ChangeBatch b = OneServiceBatch("10.0.0.1", kM);
  ServiceEntry second = b.services_upsert[0];
  second.key.addr = Addr("10.96.0.2");
  second.value.service_id = 101;
  b.services_upsert.push_back(second);
  return b;
}

// The source port the second connection from kClient:`cport` leaves with.
uint16_t RemappedPort(const DatapathTables& tables, DatapathState& state, uint16_t cport) {
  for (const char* vip : {"10.96.0.1", "10.96.0.2"}) {
    std::vector<uint8_t> f = PacketBuilder().IPv4(kClient, vip).Tcp(cport, 80, kTcpSyn).Build();
    const FrameResult r = ProcessFrame(tables, state, Entry::kFromNetwork, 1, absl::MakeSpan(f),
                                       kNow);
    REQUIRE(r.verdict == Verdict::kPass);
    if (std::string(vip) == "10.96.0.2") {
      return ParsePacket(f).pkt.sport;
    }
  }
  return 0;
}

uint32_t Owner(uint16_t port, uint32_t instances) {
  return ClientSteeringHash(Addr(kClient), port, DPV2_PROTO_TCP, DPV2_FAMILY_V4) % instances;
}

TEST_CASE("a source port remapped for a collision is steered to the instance of the original "
          "port") {
  DatapathConfig config;
  config.maglev_table_size = kM;
  DatapathTables tables(config);
  REQUIRE(tables.Apply(TwoFrontends()).ok());
  constexpr uint32_t kInstances = 4;
  DatapathState one(config, nullptr);
  DatapathState four(config, nullptr);
  four.steering_instances = kInstances;
  int moved = 0;
  for (uint16_t cport = 40000; cport < 40032; ++cport) {
    INFO("client port " << cport);
    const uint16_t p1 = RemappedPort(tables, one, cport);
    const uint16_t p4 = RemappedPort(tables, four, cport);
    CHECK(p1 != cport);
    CHECK(p4 != cport);
    CHECK(Owner(p4, kInstances) == Owner(cport, kInstances));
    moved += p4 != p1;
  }
  CHECK(one.counters[DPV2_CNT_NAT_COLLISION] == 32);
  CHECK(four.counters[DPV2_CNT_NAT_COLLISION] == 32);
  // About 3 in 4 first probes belong to another instance.
  CHECK(moved > 8);
}

}  // namespace
}  // namespace dpv2
