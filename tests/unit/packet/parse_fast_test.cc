// The common-frame parser (ParseCommonFrame) against the full one
// (ParseAnyFrame): on every frame the fast path accepts, the two give the
// same ParseResult field by field; it accepts exactly the frames it is for
// and declines the rest; ParsePacket equals the full parser on any input.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/packet/parse.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

// Every field of a ParseResult that differs, named (empty when equal).
std::string Differences(const ParseResult& a, const ParseResult& b) {
  std::string out;
  auto field = [&out](const char* name, auto x, auto y) {
    if (!(x == y)) {
      absl::StrAppend(&out, name, " ");
    }
  };
  field("drop", a.drop, b.drop);
  field("is_ip", a.is_ip, b.is_ip);
  const ParsedPacket& p = a.pkt;
  const ParsedPacket& q = b.pkt;
  field("ethertype", p.ethertype, q.ethertype);
  field("has_vlan", p.has_vlan, q.has_vlan);
  field("vlan_id", p.vlan_id, q.vlan_id);
  field("l3_offset", p.l3_offset, q.l3_offset);
  field("family", p.family, q.family);
  field("src", p.src, q.src);
  field("dst", p.dst, q.dst);
  field("ttl", p.ttl, q.ttl);
  field("l3_len", p.l3_len, q.l3_len);
  field("proto", p.proto, q.proto);
  field("is_fragment", p.is_fragment, q.is_fragment);
  field("is_first_fragment", p.is_first_fragment, q.is_first_fragment);
  field("l4_offset", p.l4_offset, q.l4_offset);
  field("payload_offset", p.payload_offset, q.payload_offset);
  field("payload_len", p.payload_len, q.payload_len);
  field("sport", p.sport, q.sport);
  field("dport", p.dport, q.dport);
  field("tcp_flags", p.tcp_flags, q.tcp_flags);
  field("tcp_seq", p.tcp_seq, q.tcp_seq);
  field("tcp_ack", p.tcp_ack, q.tcp_ack);
  field("sctp_vtag", p.sctp_vtag, q.sctp_vtag);
  field("sctp_first_chunk", p.sctp_first_chunk, q.sctp_first_chunk);
  field("icmp_type", p.icmp_type, q.icmp_type);
  field("icmp_code", p.icmp_code, q.icmp_code);
  field("is_icmp_error", p.is_icmp_error, q.is_icmp_error);
  field("has_inner", p.has_inner, q.has_inner);
  field("inner_l3_offset", p.inner_l3_offset, q.inner_l3_offset);
  field("inner_l4_offset", p.inner_l4_offset, q.inner_l4_offset);
  field("inner_proto", p.inner_proto, q.inner_proto);
  field("inner_src", p.inner_src, q.inner_src);
  field("inner_dst", p.inner_dst, q.inner_dst);
  field("inner_sport", p.inner_sport, q.inner_sport);
  field("inner_dport", p.inner_dport, q.inner_dport);
  field("inner_has_l4", p.inner_has_l4, q.inner_has_l4);
  return out;
}

ParseResult Full(const std::vector<uint8_t>& f) {
  ParseResult r;
  ParseAnyFrame(f, &r);
  return r;
}

// A random frame near the common case: mostly IPv4 TCP/UDP, sometimes with a
// VLAN tag, IP options, a fragment, another protocol or IPv6, with random
// addresses, ports, flags, payload and Ethernet padding.
std::vector<uint8_t> RandomFrame(std::mt19937& rng) {
  auto pick = [&rng](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  PacketBuilder b;
  if (pick(10) == 0) {
    b.Vlan(static_cast<uint16_t>(pick(4096)));
  }
  if (pick(10) == 0) {
    b.IPv6(IpAddr::V6Bytes(std::vector<uint8_t>(16, static_cast<uint8_t>(rng())).data()),
           IpAddr::V6Bytes(std::vector<uint8_t>(16, static_cast<uint8_t>(rng())).data()));
  } else {
    b.IPv4(IpAddr::V4(static_cast<uint32_t>(rng())), IpAddr::V4(static_cast<uint32_t>(rng())));
    b.Ttl(static_cast<uint8_t>(rng())).IpId(static_cast<uint16_t>(rng()));
    if (pick(2) == 0) {
      b.DontFragment();
    }
    if (pick(10) == 0) {
      b.IPv4Options(std::vector<uint8_t>{1, 1, 1, 0});
    }
  }
  if (pick(12) == 0) {
    b.Fragment(static_cast<uint16_t>(pick(3)), pick(2) == 0);
  }
  const uint16_t sport = static_cast<uint16_t>(rng());
  const uint16_t dport = static_cast<uint16_t>(rng());
  switch (pick(8)) {
    case 0:
      b.Sctp(sport, dport);
      break;
    case 1:
      b.IcmpEcho(sport, dport);
      break;
    case 2:
    case 3:
    case 4:
      b.Udp(sport, dport);
      break;
    default:
      b.Tcp(sport, dport, static_cast<uint8_t>(rng()))
          .Seq(static_cast<uint32_t>(rng()))
          .Ack(static_cast<uint32_t>(rng()));
      if (pick(4) == 0) {
        b.TcpOptions(std::vector<uint8_t>(4 * (1 + pick(10)), 1));
      }
      break;
  }
  b.Payload(std::string(pick(64), 'x'));
  if (pick(4) == 0) {
    b.TrailingBytes(pick(30));
  }
  return b.Build();
}

// Flips bytes of the headers, cuts the frame or grows it.
void Mutate(std::vector<uint8_t>& f, std::mt19937& rng) {
  const int steps = 1 + static_cast<int>(rng() % 3);
  for (int s = 0; s < steps && !f.empty(); ++s) {
    const size_t at = rng() % std::min<size_t>(f.size(), 64);
    switch (rng() % 4) {
      case 0:
        f[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        f[at] = static_cast<uint8_t>(rng());
        break;
      case 2:
        f.resize(rng() % f.size());
        break;
      default:
        f.push_back(static_cast<uint8_t>(rng()));
        break;
    }
  }
}

// A frame that sets most fields of a ParseResult.
const std::vector<uint8_t> kBusyFrame =
    PacketBuilder()
        .Vlan(12)
        .IPv4("10.0.0.9", "10.0.0.1")
        .IcmpError(3, 3, PacketBuilder().IPv4("10.0.0.1", "10.0.0.9").Tcp(40000, 80, kTcpSyn))
        .Build();

TEST_CASE("on random and mutated frames the fast path, when it takes a frame, gives the full "
          "parser's result, and ParsePacket always does",
          "[parse][fast]") {
  std::mt19937 rng(20261127);
  int taken = 0;
  int declined_ok = 0;
  int declined_dropped = 0;
  for (int i = 0; i < 40000; ++i) {
    std::vector<uint8_t> f = RandomFrame(rng);
    if (i % 2 == 1) {
      Mutate(f, rng);
    }
    const ParseResult full = Full(f);
    // Garbage the fast path must overwrite, as a burst's reused result
    // holds: the parse of a tagged ICMP error quoting a TCP packet (inner
    // fields, VLAN, ICMP type) and a drop reason.
    ParseResult fast = Full(kBusyFrame);
    fast.drop = DPV2_DROP_BAD_L2;
    fast.pkt.sctp_vtag = 5;
    fast.pkt.sctp_first_chunk = 1;
    fast.pkt.is_fragment = true;
    fast.pkt.is_first_fragment = true;
    if (ParseCommonFrame(f, &fast)) {
      ++taken;
      INFO(DescribePacket(f));
      REQUIRE(Differences(full, fast).empty());
      REQUIRE(full.drop == DPV2_DROP_NONE);
    } else if (full.drop == DPV2_DROP_NONE) {
      ++declined_ok;
    } else {
      ++declined_dropped;
    }
    const std::string diff = Differences(full, ParsePacket(f));
    INFO(DescribePacket(f));
    REQUIRE(diff.empty());
  }
  // Each class is well represented, so the property was exercised.
  CHECK(taken > 10000);
  CHECK(declined_ok > 4000);
  CHECK(declined_dropped > 4000);
}

TEST_CASE("the fast path takes untagged IPv4 TCP and UDP without options or fragmentation",
          "[parse][fast]") {
  ParseResult r;
  const std::vector<uint8_t> syn =
      PacketBuilder().IPv4("10.0.0.1", "10.96.0.10").Tcp(40000, 80, kTcpSyn).Build();
  REQUIRE(ParseCommonFrame(syn, &r));
  CHECK(r.pkt.tuple().ToString() == "TCP 10.0.0.1:40000 -> 10.96.0.10:80");
  CHECK(ParseCommonFrame(
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").DontFragment().Udp(5, 53).Payload("q").Build(),
      &r));
  CHECK(r.pkt.payload_len == 1);
  // TCP options are L4 payload for the datapath: still the common frame.
  CHECK(ParseCommonFrame(PacketBuilder()
                             .IPv4("10.0.0.1", "10.0.0.2")
                             .Tcp(1, 2, kTcpAck)
                             .TcpOptions(std::vector<uint8_t>{1, 1, 1, 1})
                             .TrailingBytes(6)
                             .Build(),
                         &r));
  CHECK(r.pkt.payload_offset == 14 + 20 + 24);
}

TEST_CASE("the fast path declines every other frame, well-formed or malformed",
          "[parse][fast]") {
  const std::vector<std::vector<uint8_t>> others = {
      PacketBuilder().Vlan(5).IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).Build(),
      PacketBuilder()
          .IPv4("10.0.0.1", "10.0.0.2")
          .IPv4Options(std::vector<uint8_t>{1, 1, 1, 0})
          .Udp(1, 2)
          .Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(0, true).Udp(1, 2).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(4, false).Proto(6).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Sctp(1, 2).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IcmpEcho(1, 2).Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Tcp(1, 2, kTcpSyn).Build(),
      PacketBuilder().Payload("arp arp arp arp arp arp arp arp arp").Build(),
      // Malformed: each is the general parser's, which names the reason.
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).IpTotalLength(300).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).TcpDataOffsetWords(4).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).TcpDataOffsetWords(15).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Udp(1, 2).UdpLength(4).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Udp(1, 2).UdpLength(200).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IpVersion(6).Udp(1, 2).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IpTotalLength(24).Tcp(1, 2, kTcpSyn).Build(),
  };
  for (size_t i = 0; i < others.size(); ++i) {
    INFO("frame " << i << ": " << DescribePacket(others[i]));
    ParseResult r;
    CHECK_FALSE(ParseCommonFrame(others[i], &r));
    CHECK(Differences(Full(others[i]), ParsePacket(others[i])).empty());
  }
  // A common frame cut anywhere before its end is no longer one.
  const std::vector<uint8_t> syn =
      PacketBuilder().IPv4("10.0.0.1", "10.96.0.10").Tcp(40000, 80, kTcpSyn).Build();
  for (size_t len = 0; len < syn.size(); ++len) {
    ParseResult r;
    const std::vector<uint8_t> cut(syn.begin(), syn.begin() + static_cast<long>(len));
    INFO("cut to " << len);
    CHECK_FALSE(ParseCommonFrame(cut, &r));
    CHECK(ParsePacket(cut).drop == DPV2_DROP_TRUNCATED);
  }
}

}  // namespace
}  // namespace dpv2
