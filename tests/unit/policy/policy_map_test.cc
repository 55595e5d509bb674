#include "core/policy/policy_map.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>

namespace dpv2 {
namespace {

constexpr uint8_t kTcp = DPV2_PROTO_TCP;
constexpr uint8_t kUdp = DPV2_PROTO_UDP;

dpv2_policy_value Allow(uint32_t match_id) {
  return {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NETWORK, .match_id = match_id};
}
dpv2_policy_value Deny(uint32_t match_id) {
  return {.verdict = DPV2_POLICY_DENY, .tier = DPV2_POLICY_TIER_ADMIN, .match_id = match_id};
}

TEST_CASE("policy map: an empty map matches nothing", "[policy_map]") {
  PolicyMap map;
  PolicyDecision d = map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 80);
  CHECK(d.verdict == PolicyDecision::Verdict::kNoMatch);
  CHECK(d.match_id == 0);
}

TEST_CASE("policy map: the longest port prefix of the exact identity wins", "[policy_map]") {
  PolicyMap map;
  REQUIRE(map.Upsert(MakePolicyKey(1, 300, DPV2_DIR_INGRESS, 0, 0, 0), Deny(1)).ok());
  REQUIRE(map.Upsert(MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 0, 8), Allow(2)).ok());
  REQUIRE(map.Upsert(MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 80, 24), Deny(3)).ok());
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 80).match_id == 3);
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 81).match_id == 2);
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 81).allowed());
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kUdp, 80).match_id == 1);
  CHECK_FALSE(map.Lookup(1, DPV2_DIR_INGRESS, 300, kUdp, 80).allowed());
  // Another endpoint or direction sees none of it.
  CHECK(map.Lookup(2, DPV2_DIR_INGRESS, 300, kTcp, 80).verdict == PolicyDecision::Verdict::kNoMatch);
  CHECK(map.Lookup(1, DPV2_DIR_EGRESS, 300, kTcp, 80).verdict == PolicyDecision::Verdict::kNoMatch);
}

TEST_CASE("policy map: a port range prefix covers exactly its ports", "[policy_map]") {
  PolicyMap map;
  // 8080/29 (24 - 3 bits): 8080..8087.
  REQUIRE(map.Upsert(MakePolicyKey(1, 300, DPV2_DIR_EGRESS, kTcp, 8080, 21), Allow(4)).ok());
  CHECK(map.Lookup(1, DPV2_DIR_EGRESS, 300, kTcp, 8080).allowed());
  CHECK(map.Lookup(1, DPV2_DIR_EGRESS, 300, kTcp, 8087).allowed());
  CHECK(map.Lookup(1, DPV2_DIR_EGRESS, 300, kTcp, 8088).verdict == PolicyDecision::Verdict::kNoMatch);
  CHECK(map.Lookup(1, DPV2_DIR_EGRESS, 300, kTcp, 8079).verdict == PolicyDecision::Verdict::kNoMatch);
}

TEST_CASE("policy map: the wildcard identity answers only when the exact identity misses",
          "[policy_map]") {
  PolicyMap map;
  REQUIRE(map.Upsert(MakePolicyKey(1, 0, DPV2_DIR_INGRESS, 0, 0, 0), Deny(9)).ok());
  REQUIRE(map.Upsert(MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 80, 24), Allow(5)).ok());
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 80).match_id == 5);
  // The exact identity has no entry for port 81: the wildcard decides.
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 81).match_id == 9);
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 301, kTcp, 80).match_id == 9);
}

TEST_CASE("policy map: erase removes only its key and upsert replaces", "[policy_map]") {
  PolicyMap map;
  const dpv2_policy_key k80 = MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 80, 24);
  const dpv2_policy_key ktcp = MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 0, 8);
  REQUIRE(map.Upsert(k80, Allow(1)).ok());
  REQUIRE(map.Upsert(ktcp, Allow(2)).ok());
  REQUIRE(map.Upsert(k80, Deny(3)).ok());
  CHECK(map.size() == 2);
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 80).match_id == 3);
  CHECK(map.Erase(k80));
  CHECK_FALSE(map.Erase(k80));
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 80).match_id == 2);
  CHECK(map.Erase(ktcp));
  CHECK(map.size() == 0);
  CHECK(map.Lookup(1, DPV2_DIR_INGRESS, 300, kTcp, 80).verdict == PolicyDecision::Verdict::kNoMatch);
}

TEST_CASE("policy map: malformed keys are rejected", "[policy_map]") {
  PolicyMap map;
  dpv2_policy_key k = MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 80, 24);
  k.prefixlen = 71;
  CHECK_FALSE(map.Upsert(k, Allow(1)).ok());
  k.prefixlen = 97;
  CHECK_FALSE(map.Upsert(k, Allow(1)).ok());
  k = MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 0, 8);
  k.dport = htons(80);  // bits beyond the prefix
  CHECK_FALSE(map.Upsert(k, Allow(1)).ok());
  k = MakePolicyKey(1, 300, 7, kTcp, 80, 24);
  CHECK_FALSE(map.Upsert(k, Allow(1)).ok());
  CHECK(map.size() == 0);
  ChangeBatch bad;
  bad.policy_upsert.push_back({.key = MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 80, 24),
                               .value = Allow(1)});
  bad.policy_upsert.push_back({.key = MakePolicyKey(1, 300, DPV2_DIR_INGRESS, kTcp, 81, 24),
                               .value = {.verdict = 0}});
  CHECK_FALSE(map.Apply(bad).ok());
  CHECK(map.size() == 0);  // all or nothing
}

TEST_CASE("policy map: entries round-trip through Entries()", "[policy_map]") {
  PolicyMap map;
  const dpv2_policy_key k = MakePolicyKey(7, 0, DPV2_DIR_EGRESS, kUdp, 53, 24);
  REQUIRE(map.Upsert(k, Allow(11)).ok());
  std::vector<PolicyEntry> all = map.Entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].key.prefixlen == k.prefixlen);
  CHECK(all[0].key.endpoint_id == 7);
  CHECK(all[0].key.proto == kUdp);
  CHECK(ntohs(all[0].key.dport) == 53);
  CHECK(all[0].value.match_id == 11);
}

}  // namespace
}  // namespace dpv2
