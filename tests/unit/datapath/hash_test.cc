#include "dpv2/abi/hash.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <set>

#include "dpv2/net.h"

extern "C" __u32 dpv2_tuple_hash_from_c(const struct dpv2_addr* saddr,
                                        const struct dpv2_addr* daddr, __be16 sport,
                                        __be16 dport, __u8 proto, __u8 family);

namespace dpv2 {
namespace {

uint32_t Hash(const char* src, uint16_t sport, const char* dst, uint16_t dport,
              uint8_t proto = DPV2_PROTO_TCP) {
  const IpAddr s = *IpAddr::Parse(src);
  const IpAddr d = *IpAddr::Parse(dst);
  const dpv2_addr sa = s.ToAbi();
  const dpv2_addr da = d.ToAbi();
  return dpv2_tuple_hash(&sa, &da, htons(sport), htons(dport), proto,
                         static_cast<uint8_t>(s.family()));
}

TEST_CASE("the tuple hash is pinned: every backend must compute these values") {
  // Changing the hash moves every connection's backend choice between
  // backends; the BPF programs and the DPDK backend pin the same values.
  CHECK(Hash("10.0.1.5", 40000, "10.96.0.10", 80) == Hash("10.0.1.5", 40000, "10.96.0.10", 80));
  const uint32_t v4 = Hash("10.0.1.5", 40000, "10.96.0.10", 80);
  const uint32_t v6 = Hash("fd00:10:1::5", 40000, "fd00:96::10", 80);
  INFO("v4 " << v4 << " v6 " << v6);
  CHECK(v4 == 0xfe3109f5u);
  CHECK(v6 == 0xe3126999u);
}

TEST_CASE("the tuple hash compiled as C equals the C++ compilation") {
  const dpv2_addr s = IpAddr::Parse("2001:db8::7")->ToAbi();
  const dpv2_addr d = IpAddr::Parse("2001:db8:100::20")->ToAbi();
  for (uint16_t port = 1000; port < 1100; ++port) {
    CHECK(dpv2_tuple_hash_from_c(&s, &d, htons(port), htons(80), DPV2_PROTO_UDP, DPV2_FAMILY_V6) ==
          dpv2_tuple_hash(&s, &d, htons(port), htons(80), DPV2_PROTO_UDP, DPV2_FAMILY_V6));
  }
}

TEST_CASE("every field of the tuple changes the hash") {
  const uint32_t base = Hash("10.0.1.5", 40000, "10.96.0.10", 80);
  CHECK(Hash("10.0.1.6", 40000, "10.96.0.10", 80) != base);
  CHECK(Hash("10.0.1.5", 40001, "10.96.0.10", 80) != base);
  CHECK(Hash("10.0.1.5", 40000, "10.96.0.11", 80) != base);
  CHECK(Hash("10.0.1.5", 40000, "10.96.0.10", 81) != base);
  CHECK(Hash("10.0.1.5", 40000, "10.96.0.10", 80, DPV2_PROTO_UDP) != base);
  CHECK(Hash("10.96.0.10", 80, "10.0.1.5", 40000) != base);  // direction matters
}

TEST_CASE("client ports spread over the slots of a small table") {
  std::set<uint32_t> slots;
  for (uint16_t port = 40000; port < 40200; ++port) {
    slots.insert(Hash("10.0.1.5", port, "10.96.0.10", 80) % 13);
  }
  CHECK(slots.size() == 13);
}

}  // namespace
}  // namespace dpv2
