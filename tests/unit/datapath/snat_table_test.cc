#include "core/datapath/snat_table.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "core/datapath/conntrack_table.h"

namespace dpv2 {
namespace {

constexpr uint64_t kS = kNanosPerSecond;

dpv2_ct_key Key(uint16_t sport) {
  dpv2_ct_key k{};
  k.saddr.b[0] = 192;
  k.saddr.b[3] = 10;
  k.daddr.b[0] = 10;
  k.daddr.b[3] = 8;
  k.sport = htons(sport);
  k.dport = htons(8080);
  k.proto = DPV2_PROTO_TCP;
  k.family = DPV2_FAMILY_V4;
  return k;
}

dpv2_snat_value Value(uint16_t port, uint64_t created_ns) {
  dpv2_snat_value v{};
  v.addr.b[0] = 203;
  v.addr.b[3] = 7;
  v.port = htons(port);
  v.created_ns = created_ns;
  return v;
}

TEST_CASE("an SNAT entry is refused when the table is full, and overwritten in place") {
  SnatTable t(2);
  CHECK(t.Upsert(Key(1), Value(50000, 0)));
  CHECK(t.Upsert(Key(2), Value(50001, 0)));
  CHECK_FALSE(t.Upsert(Key(3), Value(50002, 0)));
  CHECK(t.Find(Key(3)) == nullptr);
  CHECK(t.Upsert(Key(1), Value(50003, 0)));  // same key: no room needed
  REQUIRE(t.Find(Key(1)) != nullptr);
  CHECK(ntohs(t.Find(Key(1))->port) == 50003);
  CHECK(t.size() == 2);
}

TEST_CASE("SNAT garbage collection deletes only old entries whose conntrack entry is gone") {
  DatapathConfig config;
  ConntrackTable ct(config);
  SnatTable snat(16);
  // Key 1: its conntrack entry exists (live or not, GC of conntrack decides).
  dpv2_ct_value live{};
  live.expires_ns = 1000 * kS;
  REQUIRE(ct.Create(Key(1), live) != nullptr);
  REQUIRE(snat.Upsert(Key(1), Value(50000, 0)));
  // Key 2: no conntrack entry, old enough.
  REQUIRE(snat.Upsert(Key(2), Value(50001, 0)));
  // Key 3: no conntrack entry yet, but written within the grace period.
  REQUIRE(snat.Upsert(Key(3), Value(50002, 10 * kS)));

  const GcStats stats = snat.CollectGarbage(ct, 10 * kS + DPV2_SNAT_GC_GRACE_NS - 1);
  CHECK(stats.scanned == 3);
  CHECK(stats.deleted == 1);
  CHECK(snat.Find(Key(1)) != nullptr);
  CHECK(snat.Find(Key(2)) == nullptr);
  CHECK(snat.Find(Key(3)) != nullptr);
  CHECK(snat.CollectGarbage(ct, 10 * kS + DPV2_SNAT_GC_GRACE_NS).deleted == 1);
  CHECK(snat.Find(Key(3)) == nullptr);
}

}  // namespace
}  // namespace dpv2
