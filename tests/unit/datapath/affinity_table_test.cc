#include "core/datapath/affinity_table.h"

#include <catch2/catch.hpp>

#include "core/datapath/conntrack_table.h"

namespace dpv2 {
namespace {

constexpr uint64_t kS = kNanosPerSecond;

dpv2_affinity_key Key(uint8_t last, uint32_t service_id = 7) {
  dpv2_affinity_key k{};
  k.client.b[0] = 10;
  k.client.b[3] = last;
  k.service_id = service_id;
  k.family = DPV2_FAMILY_V4;
  return k;
}

TEST_CASE("an affinity entry is valid until the client was idle for the timeout") {
  AffinityTable t(16);
  REQUIRE(t.Record(Key(1), 42, 100 * kS));
  const dpv2_affinity_value* v = t.Find(Key(1), 10, 109 * kS);
  REQUIRE(v != nullptr);
  CHECK(v->backend_id == 42);
  CHECK(t.Find(Key(1), 10, 110 * kS) == nullptr);
  CHECK(t.Find(Key(1, 8), 10, 101 * kS) == nullptr);  // another frontend
}

TEST_CASE("recording again refreshes the entry and may change its backend") {
  AffinityTable t(16);
  t.Record(Key(1), 42, 100 * kS);
  t.Record(Key(1), 43, 108 * kS);
  const dpv2_affinity_value* v = t.Find(Key(1), 10, 115 * kS);
  REQUIRE(v != nullptr);
  CHECK(v->backend_id == 43);
}

TEST_CASE("a full affinity table refuses new clients but refreshes known ones") {
  AffinityTable t(1);
  CHECK(t.Record(Key(1), 42, 0));
  CHECK_FALSE(t.Record(Key(2), 42, 0));
  CHECK(t.Record(Key(1), 44, kS));
  CHECK(t.size() == 1);
}

TEST_CASE("garbage collection removes entries idle for the largest allowed timeout") {
  AffinityTable t(16);
  t.Record(Key(1), 42, 0);
  t.Record(Key(2), 42, 1000 * kS);
  GcStats gc = t.CollectGarbage(uint64_t{DPV2_AFFINITY_MAX_TIMEOUT_S} * kS);
  CHECK(gc.scanned == 2);
  CHECK(gc.deleted == 1);
  CHECK(t.size() == 1);
}

}  // namespace
}  // namespace dpv2
