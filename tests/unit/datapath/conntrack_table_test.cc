#include "core/datapath/conntrack_table.h"

#include <catch2/catch.hpp>
#include <map>
#include <utility>
#include <vector>

namespace dpv2 {
namespace {

constexpr uint8_t kFin = 0x01;
constexpr uint8_t kSyn = 0x02;
constexpr uint8_t kRst = 0x04;
constexpr uint8_t kAck = 0x10;
constexpr uint64_t kS = kNanosPerSecond;

ConntrackTimeouts Timeouts() {
  return {.tcp_established_s = 1000, .tcp_syn_s = 60, .tcp_close_s = 10, .non_tcp_s = 30};
}

dpv2_ct_key Key(uint8_t proto, uint16_t sport) {
  dpv2_ct_key k{};
  k.saddr.b[0] = 10;
  k.saddr.b[3] = 1;
  k.daddr.b[0] = 10;
  k.daddr.b[3] = 2;
  k.sport = sport;
  k.dport = 80;
  k.proto = proto;
  k.family = DPV2_FAMILY_V4;
  return k;
}

// Lifetime left after applying `flags` in `dir` at t=0.
uint64_t Apply(dpv2_ct_value& v, CtDirection dir, uint8_t flags, uint64_t now = 0) {
  UpdateConntrackEntry(v, DPV2_PROTO_TCP, dir, flags, 60, now, Timeouts());
  return (v.expires_ns - now) / kS;
}

TEST_CASE("a TCP entry that saw only SYNs uses the SYN timeout") {
  dpv2_ct_value v{};
  CHECK(Apply(v, CtDirection::kOriginal, kSyn) == 60);
  CHECK(Apply(v, CtDirection::kReply, kSyn | kAck) == 60);
  CHECK((v.flags & DPV2_CT_F_SEEN_NON_SYN) == 0);
  CHECK((v.flags & DPV2_CT_F_REPLY_SEEN) != 0);
}

TEST_CASE("a non-SYN packet moves a TCP entry to the established lifetime") {
  dpv2_ct_value v{};
  Apply(v, CtDirection::kOriginal, kSyn);
  CHECK(Apply(v, CtDirection::kOriginal, kAck) == 1000);
  CHECK(v.packets == 2);
  CHECK(v.bytes == 120);
  CHECK(v.tcp_flags_seen == (kSyn | kAck));
}

TEST_CASE("FIN in one direction keeps the established lifetime, FIN in both closes") {
  dpv2_ct_value v{};
  Apply(v, CtDirection::kOriginal, kSyn);
  Apply(v, CtDirection::kOriginal, kAck);
  CHECK(Apply(v, CtDirection::kOriginal, kFin | kAck) == 1000);
  CHECK(v.flags & DPV2_CT_F_TX_CLOSING);
  CHECK_FALSE(v.flags & DPV2_CT_F_RX_CLOSING);
  CHECK(Apply(v, CtDirection::kReply, kFin | kAck) == 10);
  CHECK(Apply(v, CtDirection::kReply, kAck) == 10);  // the last ACK keeps closing
}

TEST_CASE("an RST in either direction closes the entry at once") {
  dpv2_ct_value v{};
  Apply(v, CtDirection::kOriginal, kSyn);
  CHECK(Apply(v, CtDirection::kReply, kRst) == 10);
  CHECK((v.flags & (DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING)) ==
        (DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING));
}

TEST_CASE("a SYN on a closing entry reopens it with the SYN timeout") {
  dpv2_ct_value v{};
  Apply(v, CtDirection::kOriginal, kSyn);
  Apply(v, CtDirection::kOriginal, kAck);
  Apply(v, CtDirection::kOriginal, kFin | kAck);
  CHECK(UpdateConntrackEntry(v, DPV2_PROTO_TCP, CtDirection::kOriginal, kSyn, 60, 0, Timeouts()) ==
        CtUpdateResult::kReopened);
  CHECK((v.flags & (DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING | DPV2_CT_F_SEEN_NON_SYN)) == 0);
  CHECK((v.expires_ns / kS) == 60);
}

TEST_CASE("a SYN on an open entry does not reopen it") {
  dpv2_ct_value v{};
  Apply(v, CtDirection::kOriginal, kSyn);
  CHECK(UpdateConntrackEntry(v, DPV2_PROTO_TCP, CtDirection::kOriginal, kSyn, 60, 0, Timeouts()) ==
        CtUpdateResult::kRefreshed);
}

TEST_CASE("UDP, SCTP and ICMP entries use the non-TCP timeout") {
  for (uint8_t proto : {DPV2_PROTO_UDP, DPV2_PROTO_SCTP, DPV2_PROTO_ICMP}) {
    dpv2_ct_value v{};
    UpdateConntrackEntry(v, proto, CtDirection::kOriginal, 0, 10, 5 * kS, Timeouts());
    CHECK(v.expires_ns == 35 * kS);
  }
}

DatapathConfig SmallConfig() {
  DatapathConfig c;
  c.ct_tcp_entries = 2;
  c.ct_other_entries = 1;
  c.timeouts = Timeouts();
  return c;
}

TEST_CASE("TCP and non-TCP entries fill separate capacities") {
  ConntrackTable ct(SmallConfig());
  dpv2_ct_value v{.expires_ns = 100 * kS};
  CHECK(ct.Create(Key(DPV2_PROTO_TCP, 1), v) != nullptr);
  CHECK(ct.Create(Key(DPV2_PROTO_TCP, 2), v) != nullptr);
  CHECK(ct.Create(Key(DPV2_PROTO_TCP, 3), v) == nullptr);
  CHECK(ct.Create(Key(DPV2_PROTO_UDP, 1), v) != nullptr);
  CHECK(ct.Create(Key(DPV2_PROTO_UDP, 2), v) == nullptr);
  // Overwriting an existing key needs no room.
  CHECK(ct.Create(Key(DPV2_PROTO_TCP, 1), v) != nullptr);
  CHECK(ct.tcp_entries() == 2);
  CHECK(ct.other_entries() == 1);
  CHECK(ct.Erase(Key(DPV2_PROTO_TCP, 2)));
  CHECK(ct.Create(Key(DPV2_PROTO_TCP, 3), v) != nullptr);
}

TEST_CASE("Find ignores expired entries, which still hold their slot until collected") {
  ConntrackTable ct(SmallConfig());
  dpv2_ct_value v{.expires_ns = 10 * kS};
  ct.Create(Key(DPV2_PROTO_UDP, 1), v);
  CHECK(ct.Find(Key(DPV2_PROTO_UDP, 1), 9 * kS) != nullptr);
  CHECK(ct.Find(Key(DPV2_PROTO_UDP, 1), 10 * kS) == nullptr);
  CHECK(ct.FindAny(Key(DPV2_PROTO_UDP, 1)) != nullptr);
  CHECK(ct.Create(Key(DPV2_PROTO_UDP, 2), v) == nullptr);
  GcStats gc = ct.CollectGarbage(10 * kS);
  CHECK(gc.scanned == 1);
  CHECK(gc.deleted == 1);
  CHECK(ct.Create(Key(DPV2_PROTO_UDP, 2), v) != nullptr);
}

TEST_CASE("garbage collection keeps live entries and deletes expired ones") {
  ConntrackTable ct(SmallConfig());
  ct.Create(Key(DPV2_PROTO_TCP, 1), dpv2_ct_value{.expires_ns = 10 * kS});
  ct.Create(Key(DPV2_PROTO_TCP, 2), dpv2_ct_value{.expires_ns = 20 * kS});
  GcStats gc = ct.CollectGarbage(15 * kS);
  CHECK(gc.deleted == 1);
  CHECK(ct.size() == 1);
  CHECK(ct.Find(Key(DPV2_PROTO_TCP, 2), 15 * kS) != nullptr);
}

TEST_CASE("an entry refreshed between the collector's scan and its delete survives") {
  ConntrackTable ct(SmallConfig());
  ct.Create(Key(DPV2_PROTO_UDP, 1), dpv2_ct_value{.expires_ns = 10 * kS});
  const std::vector<dpv2_ct_key> expired = ct.ExpiredKeys(10 * kS);
  REQUIRE(expired.size() == 1);
  // The datapath sees a packet of the flow after the scan.
  dpv2_ct_value* v = ct.FindAny(Key(DPV2_PROTO_UDP, 1));
  UpdateConntrackEntry(*v, DPV2_PROTO_UDP, CtDirection::kOriginal, 0, 10, 11 * kS, Timeouts());
  CHECK_FALSE(ct.EraseIfExpired(expired[0], 11 * kS));
  CHECK(ct.Find(Key(DPV2_PROTO_UDP, 1), 11 * kS) != nullptr);
}

TEST_CASE("flush empties the table and dump lists every entry") {
  ConntrackTable ct(SmallConfig());
  ct.Create(Key(DPV2_PROTO_TCP, 1), dpv2_ct_value{.expires_ns = 10 * kS, .backend_id = 4});
  ct.Create(Key(DPV2_PROTO_UDP, 1), dpv2_ct_value{.expires_ns = 10 * kS});
  std::vector<ConntrackEntry> dump = ct.Dump();
  CHECK(dump.size() == 2);
  ct.Flush();
  CHECK(ct.size() == 0);
  CHECK(ct.tcp_entries() == 0);
  CHECK(ct.Dump().empty());
}

TEST_CASE("the generation moves on every create, overwrite, erase and flush, not on lookups") {
  ConntrackTable ct(SmallConfig());
  auto Value = [](uint64_t expires) { return dpv2_ct_value{.expires_ns = expires}; };
  const dpv2_ct_key key = Key(DPV2_PROTO_TCP, 1000);
  const uint64_t hash = ConntrackTable::Hash(Normalized(key));
  uint64_t g = ct.generation();
  bool inserted = false;
  REQUIRE(ct.Create(Normalized(key), hash, Value(kS), &inserted) != nullptr);
  CHECK(inserted);
  CHECK(ct.generation() != g);
  g = ct.generation();
  CHECK(ct.Find(key, 0) != nullptr);
  CHECK(ct.FindAny(Normalized(key), hash) != nullptr);
  CHECK(ct.generation() == g);
  REQUIRE(ct.Create(key, Value(2 * kS)) != nullptr);  // overwrite
  CHECK(ct.generation() != g);
  REQUIRE(ct.Create(Normalized(key), hash, Value(3 * kS), &inserted) != nullptr);
  CHECK_FALSE(inserted);
  g = ct.generation();
  CHECK(ct.Erase(key));
  CHECK(ct.generation() != g);
  g = ct.generation();
  CHECK_FALSE(ct.Erase(key));  // nothing erased
  CHECK(ct.generation() == g);
  ct.Flush();
  CHECK(ct.generation() != g);
}

TEST_CASE("Create places a new key where its one walk ended, across growth, collisions and "
          "erasures") {
  // Keys that share their home slot (reversed tuples hash alike), erasures
  // that shift clusters back, overwrites and doublings: every key must be
  // found with its latest value and the count must follow a plain map.
  DatapathConfig config;
  config.ct_tcp_entries = 100000;
  config.timeouts = Timeouts();
  ConntrackTable ct(config);
  std::map<std::vector<uint8_t>, uint64_t> model;
  auto bytes = [](const dpv2_ct_key& k) {
    const dpv2_ct_key n = Normalized(k);
    const auto* p = reinterpret_cast<const uint8_t*>(&n);
    return std::vector<uint8_t>(p, p + sizeof(n));
  };
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  for (uint64_t step = 1; step <= 20000; ++step) {
    dpv2_ct_key k = Key(DPV2_PROTO_TCP, static_cast<uint16_t>(next() % 3000));
    if (next() % 2 == 0) {  // the reversed tuple: the same home slot
      std::swap(k.saddr, k.daddr);
      std::swap(k.sport, k.dport);
    }
    if (next() % 4 == 0) {
      CHECK(ct.Erase(k) == (model.erase(bytes(k)) == 1));
      continue;
    }
    bool inserted = false;
    const dpv2_ct_key n = Normalized(k);
    dpv2_ct_value* v =
        ct.Create(n, ConntrackTable::Hash(n), dpv2_ct_value{.expires_ns = step}, &inserted);
    REQUIRE(v != nullptr);
    CHECK(v->expires_ns == step);
    CHECK(inserted == model.insert_or_assign(bytes(k), step).second);
  }
  REQUIRE(ct.size() == model.size());
  CHECK(ct.capacity() > 16);  // it grew
  size_t found = 0;
  for (const ConntrackEntry& e : ct.Dump()) {
    const auto it = model.find(bytes(e.key));
    REQUIRE(it != model.end());
    CHECK(e.value.expires_ns == it->second);
    const dpv2_ct_value* v = ct.FindAny(e.key);
    REQUIRE(v != nullptr);
    CHECK(v->expires_ns == it->second);
    ++found;
  }
  CHECK(found == model.size());
}

}  // namespace
}  // namespace dpv2
