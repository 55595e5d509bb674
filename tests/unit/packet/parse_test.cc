// ParsePacket: every protocol, both families, VLAN, and each drop reason.
#include <catch2/catch.hpp>

#include "dpv2/packet.h"
#include "tests/unit/packet/packet_test_util.h"

namespace dpv2 {
namespace {

using testing::Ip;

ParseResult Parse(const std::vector<uint8_t>& f) { return ParsePacket(f); }

TEST_CASE("a TCP SYN over IPv4 yields every header field", "[parse]") {
  std::vector<uint8_t> f = PacketBuilder()
                               .IPv4("10.0.0.1", "10.96.0.10")
                               .Ttl(61)
                               .Tcp(40000, 80, kTcpSyn)
                               .Seq(1000)
                               .Ack(7)
                               .Payload("hello")
                               .Build();
  ParseResult r = Parse(f);
  INFO(DescribePacket(f));
  REQUIRE(r.drop == DPV2_DROP_NONE);
  REQUIRE(r.is_ip);
  const ParsedPacket& p = r.pkt;
  CHECK(p.ethertype == kEtherTypeIPv4);
  CHECK_FALSE(p.has_vlan);
  CHECK(p.l3_offset == 14);
  CHECK(p.family == Family::kV4);
  CHECK(p.src == Ip("10.0.0.1"));
  CHECK(p.dst == Ip("10.96.0.10"));
  CHECK(p.ttl == 61);
  CHECK(p.proto == DPV2_PROTO_TCP);
  CHECK(p.l3_len == 20 + 20 + 5);
  CHECK(p.l4_offset == 34);
  CHECK(p.payload_offset == 54);
  CHECK(p.payload_len == 5);
  CHECK(p.sport == 40000);
  CHECK(p.dport == 80);
  CHECK(p.tcp_flags == kTcpSyn);
  CHECK(p.tcp_seq == 1000);
  CHECK(p.tcp_ack == 7);
  CHECK_FALSE(p.is_fragment);
  CHECK_FALSE(p.is_icmp_error);
  CHECK(p.tuple().ToString() == "TCP 10.0.0.1:40000 -> 10.96.0.10:80");
}

TEST_CASE("an 802.1Q tag moves L3 by four bytes and gives the VLAN id", "[parse]") {
  std::vector<uint8_t> f =
      PacketBuilder().Vlan(1234, 5).IPv6("fd00::1", "fd00::2").Udp(5353, 53).Payload("q").Build();
  ParseResult r = Parse(f);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.has_vlan);
  CHECK(r.pkt.vlan_id == 1234);
  CHECK(r.pkt.ethertype == kEtherTypeIPv6);
  CHECK(r.pkt.l3_offset == 18);
  CHECK(r.pkt.l4_offset == 58);
  CHECK(r.pkt.tuple().ToString() == "UDP [fd00::1]:5353 -> [fd00::2]:53");
  CHECK(r.pkt.payload_len == 1);
}

TEST_CASE("IPv4 options are skipped by the header length", "[parse]") {
  const std::vector<uint8_t> options = {0x94, 0x04, 0x00, 0x00,  // router alert
                                        0x01, 0x07, 0x07, 0x04, 0, 0, 0};  // NOP, record route
  std::vector<uint8_t> f =
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IPv4Options(options).Udp(1, 2).Build();
  ParseResult r = Parse(f);
  INFO(DescribePacket(f));
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.l4_offset == 14 + 20 + 12);
  CHECK(r.pkt.sport == 1);
  CHECK(r.pkt.dport == 2);
  CHECK(testing::ChecksumsValid(f));
}

TEST_CASE("IPv6 extension headers are walked to the L4 header", "[parse]") {
  std::vector<uint8_t> f = PacketBuilder()
                               .IPv6("fd00::1", "fd00::2")
                               .HopByHop()
                               .Routing(2, 0)
                               .DestOptions(12)
                               .Tcp(1000, 443, kTcpAck)
                               .Build();
  ParseResult r = Parse(f);
  INFO(DescribePacket(f));
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.proto == DPV2_PROTO_TCP);
  CHECK(r.pkt.l4_offset == 14 + 40 + 8 + 8 + 16);
  CHECK(r.pkt.dport == 443);
  CHECK(r.pkt.tcp_flags == kTcpAck);
  CHECK(testing::ChecksumsValid(f));
}

TEST_CASE("an authentication header is walked in 4-octet units", "[parse]") {
  std::vector<uint8_t> f = PacketBuilder().IPv6("fd00::1", "fd00::2").Udp(7, 9).Build();
  // Insert AH (next header UDP, length 4 -> (4+2)*4 = 24 bytes) after the IPv6 header.
  std::vector<uint8_t> ah(24, 0);
  ah[0] = DPV2_PROTO_UDP;
  ah[1] = 4;
  f.insert(f.begin() + 14 + 40, ah.begin(), ah.end());
  f[14 + 6] = kIPv6Auth;
  f[14 + 5] = static_cast<uint8_t>(f[14 + 5] + 24);
  ParseResult r = Parse(f);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.proto == DPV2_PROTO_UDP);
  CHECK(r.pkt.l4_offset == 14 + 40 + 24);
  CHECK(r.pkt.dport == 9);
}

TEST_CASE("IPv4 fragments are recognised; only the first has ports", "[parse]") {
  std::vector<uint8_t> first =
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(0, true, 9).Udp(53, 5353).Payload("abcdefgh").Build();
  ParseResult r = Parse(first);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.is_fragment);
  CHECK(r.pkt.is_first_fragment);
  CHECK(r.pkt.sport == 53);
  CHECK(r.pkt.dport == 5353);

  std::vector<uint8_t> later =
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(2, false, 9).Proto(DPV2_PROTO_UDP).Payload("ijklmnop").Build();
  r = Parse(later);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.is_fragment);
  CHECK_FALSE(r.pkt.is_first_fragment);
  CHECK(r.pkt.proto == DPV2_PROTO_UDP);
  CHECK(r.pkt.sport == 0);
  CHECK(r.pkt.dport == 0);
  CHECK(r.pkt.l4_offset == r.pkt.payload_offset);
  CHECK(r.pkt.payload_len == 8);

  // A fragment too short for its UDP header is still parsed as a fragment
  // when it is not the first: it carries no L4 header at all.
  std::vector<uint8_t> tiny =
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(1, true).Proto(DPV2_PROTO_TCP).Payload("x").Build();
  CHECK(Parse(tiny).drop == DPV2_DROP_NONE);
}

TEST_CASE("an IPv6 fragment header marks fragments; later ones stop the walk", "[parse]") {
  std::vector<uint8_t> first = PacketBuilder()
                                   .IPv6("fd00::1", "fd00::2")
                                   .Fragment(0, true, 77)
                                   .Tcp(1, 2, kTcpSyn)
                                   .Build();
  ParseResult r = Parse(first);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.is_fragment);
  CHECK(r.pkt.is_first_fragment);
  CHECK(r.pkt.proto == DPV2_PROTO_TCP);
  CHECK(r.pkt.dport == 2);

  std::vector<uint8_t> later = PacketBuilder()
                                   .IPv6("fd00::1", "fd00::2")
                                   .Fragment(100, false, 77)
                                   .Proto(DPV2_PROTO_TCP)
                                   .Payload("zz")
                                   .Build();
  r = Parse(later);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.is_fragment);
  CHECK_FALSE(r.pkt.is_first_fragment);
  CHECK(r.pkt.proto == DPV2_PROTO_TCP);
  CHECK(r.pkt.dport == 0);
  CHECK(r.pkt.payload_len == 2);

  // An atomic fragment (offset 0, no more) is a whole packet.
  std::vector<uint8_t> atomic =
      PacketBuilder().IPv6("fd00::1", "fd00::2").Fragment(0, false, 1).Udp(1, 2).Build();
  r = Parse(atomic);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK_FALSE(r.pkt.is_fragment);
  CHECK(r.pkt.dport == 2);
}

TEST_CASE("SCTP gives ports, verification tag and first chunk", "[parse]") {
  for (bool v6 : {false, true}) {
    PacketBuilder b;
    if (v6) {
      b.IPv6("fd00::1", "fd00::2");
    } else {
      b.IPv4("10.0.0.1", "10.0.0.2");
    }
    std::vector<uint8_t> f = b.Sctp(3868, 3869, SctpChunk::kData, 0xdeadbeef).Payload("abc").Build();
    ParseResult r = Parse(f);
    REQUIRE(r.drop == DPV2_DROP_NONE);
    CHECK(r.pkt.proto == DPV2_PROTO_SCTP);
    CHECK(r.pkt.sport == 3868);
    CHECK(r.pkt.dport == 3869);
    CHECK(r.pkt.sctp_vtag == 0xdeadbeef);
    CHECK(r.pkt.sctp_first_chunk == 0);
    CHECK(testing::ChecksumsValid(f));
    std::vector<uint8_t> init = PacketBuilder(b).Sctp(1, 2, SctpChunk::kInit).Build();
    CHECK(Parse(init).pkt.sctp_first_chunk == 1);
  }
}

TEST_CASE("ICMP and ICMPv6 echo carry the identifier as both ports", "[parse]") {
  std::vector<uint8_t> v4 = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IcmpEcho(0x1234, 7).Payload("ping").Build();
  ParseResult r = Parse(v4);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.proto == DPV2_PROTO_ICMP);
  CHECK(r.pkt.icmp_type == kIcmpEchoRequest);
  CHECK(r.pkt.sport == 0x1234);
  CHECK(r.pkt.dport == 0x1234);
  CHECK_FALSE(r.pkt.is_icmp_error);
  CHECK(r.pkt.payload_len == 4);
  CHECK(testing::ChecksumsValid(v4));

  std::vector<uint8_t> v6 = PacketBuilder().IPv6("fd00::1", "fd00::2").IcmpEcho(99, 1, /*reply=*/true).Build();
  r = Parse(v6);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.proto == DPV2_PROTO_ICMPV6);
  CHECK(r.pkt.icmp_type == kIcmp6EchoReply);
  CHECK(r.pkt.sport == 99);
  CHECK(testing::ChecksumsValid(v6));

  // Neighbour solicitation: ICMPv6 without ports.
  std::vector<uint8_t> ns = PacketBuilder().IPv6("fd00::1", "ff02::1:ff00:2").Icmp(135, 0).Build();
  r = Parse(ns);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.icmp_type == 135);
  CHECK(r.pkt.sport == 0);
  CHECK_FALSE(r.pkt.is_icmp_error);
}

TEST_CASE("an ICMP error exposes the packet it quotes", "[parse]") {
  PacketBuilder inner4 = PacketBuilder().IPv4("10.0.0.2", "10.96.0.10").Tcp(40000, 80, kTcpSyn);
  std::vector<uint8_t> v4 = PacketBuilder()
                                .IPv4("10.96.0.10", "10.0.0.2")
                                .IcmpError(kIcmpDestUnreachable, kIcmpPortUnreachableCode, inner4, 28)
                                .Build();
  ParseResult r = Parse(v4);
  INFO(DescribePacket(v4));
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.is_icmp_error);
  REQUIRE(r.pkt.has_inner);
  CHECK(r.pkt.inner_has_l4);
  CHECK(r.pkt.inner_l3_offset == 14 + 20 + 8);
  CHECK(r.pkt.inner_l4_offset == 14 + 20 + 8 + 20);
  CHECK(r.pkt.inner_proto == DPV2_PROTO_TCP);
  CHECK(r.pkt.inner_tuple().ToString() == "TCP 10.0.0.2:40000 -> 10.96.0.10:80");
  CHECK(r.pkt.sport == 0);
  CHECK(testing::ChecksumsValid(v4));

  PacketBuilder inner6 =
      PacketBuilder().IPv6("fd00::2", "fd00::10").DestOptions().Udp(5000, 53).Payload("query");
  std::vector<uint8_t> v6 = PacketBuilder()
                                .IPv6("fd00::99", "fd00::2")
                                .IcmpError(kIcmp6PacketTooBig, 0, inner6)
                                .Build();
  r = Parse(v6);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.is_icmp_error);
  REQUIRE(r.pkt.has_inner);
  CHECK(r.pkt.inner_proto == DPV2_PROTO_UDP);
  CHECK(r.pkt.inner_l4_offset == r.pkt.inner_l3_offset + 40 + 8);
  CHECK(r.pkt.inner_tuple().ToString() == "UDP [fd00::2]:5000 -> [fd00::10]:53");

  // Echo quoted: the identifier stands for the ports.
  PacketBuilder ping = PacketBuilder().IPv4("10.0.0.2", "8.8.8.8").IcmpEcho(4242, 1);
  std::vector<uint8_t> ttl = PacketBuilder().IPv4("10.0.0.254", "10.0.0.2").IcmpError(kIcmpTimeExceeded, 0, ping).Build();
  r = Parse(ttl);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.inner_sport == 4242);
  CHECK(r.pkt.inner_dport == 4242);
}

TEST_CASE("an ICMP error with a short quote has the inner addresses but no ports", "[parse]") {
  PacketBuilder udp = PacketBuilder().IPv4("10.0.0.2", "10.0.0.9").Udp(1000, 2000);
  for (size_t quote : {20, 27}) {
    std::vector<uint8_t> f = PacketBuilder().IPv4("10.0.0.9", "10.0.0.2").IcmpError(3, 3, udp, quote).Build();
    ParseResult r = ParsePacket(f);
    INFO(quote << ": " << DescribePacket(f));
    REQUIRE(r.drop == DPV2_DROP_NONE);
    CHECK(r.pkt.has_inner);
    CHECK_FALSE(r.pkt.inner_has_l4);
    CHECK(r.pkt.inner_src == Ip("10.0.0.2"));
    CHECK(r.pkt.inner_sport == 0);
  }
  // An IPv6 quote of 48 bytes ends inside a destination options header.
  PacketBuilder ext = PacketBuilder().IPv6("fd00::2", "fd00::9").DestOptions(12).Udp(1000, 2000);
  std::vector<uint8_t> f = PacketBuilder().IPv6("fd00::9", "fd00::2").IcmpError(1, 4, ext, 48).Build();
  ParseResult r = ParsePacket(f);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.has_inner);
  CHECK_FALSE(r.pkt.inner_has_l4);
  CHECK(r.pkt.inner_dst == Ip("fd00::9"));
}

TEST_CASE("non-IP frames parse without a drop and without IP fields", "[parse]") {
  std::vector<uint8_t> arp = PacketBuilder().Payload(std::string(28, '\0')).Build();
  ParseResult r = Parse(arp);
  CHECK(r.drop == DPV2_DROP_NONE);
  CHECK_FALSE(r.is_ip);
  CHECK(r.pkt.ethertype == kEtherTypeArp);
  std::vector<uint8_t> tagged_arp = PacketBuilder().Vlan(4).Payload("x").Build();
  r = Parse(tagged_arp);
  CHECK(r.drop == DPV2_DROP_NONE);
  CHECK_FALSE(r.is_ip);
  CHECK(r.pkt.has_vlan);
}

TEST_CASE("Ethernet padding after the IP packet is not taken as payload", "[parse]") {
  std::vector<uint8_t> f = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpRst).TrailingBytes(6).Build();
  ParseResult r = Parse(f);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.l3_len == 40);
  CHECK(r.pkt.payload_len == 0);
  std::vector<uint8_t> u = PacketBuilder().IPv6("fd00::1", "fd00::2").Udp(1, 2).Payload("ab").TrailingBytes(4).Build();
  CHECK(Parse(u).pkt.payload_len == 2);
}

TEST_CASE("an unknown L4 protocol parses with ports 0", "[parse]") {
  std::vector<uint8_t> gre = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Proto(47).Payload("greeeeee").Build();
  ParseResult r = Parse(gre);
  REQUIRE(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.proto == 47);
  CHECK(r.pkt.sport == 0);
  CHECK(r.pkt.payload_len == 8);
  // ICMPv6 inside IPv4 is just another unknown protocol there.
  std::vector<uint8_t> odd = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Proto(58).Payload("x").Build();
  CHECK(Parse(odd).drop == DPV2_DROP_NONE);
  std::vector<uint8_t> none = PacketBuilder().IPv6("fd00::1", "fd00::2").Build();
  r = Parse(none);
  CHECK(r.drop == DPV2_DROP_NONE);
  CHECK(r.pkt.proto == kIPv6NoNext);
}

struct MalformedCase {
  const char* what;
  std::vector<uint8_t> frame;
  dpv2_drop_reason want;
};

TEST_CASE("malformed frames yield their named drop reason", "[parse]") {
  auto v4 = [] { return PacketBuilder().IPv4("10.0.0.1", "10.0.0.2"); };
  auto v6 = [] { return PacketBuilder().IPv6("fd00::1", "fd00::2"); };
  std::vector<uint8_t> qinq = v4().Udp(1, 2).Build();
  qinq[12] = 0x88;
  qinq[13] = 0xa8;
  std::vector<uint8_t> double_tag = PacketBuilder().Vlan(1).EtherType(kEtherTypeVlan).Payload(std::string("\x00\x02\x08\x00", 4)).Build();
  std::vector<uint8_t> jumbo = v6().HopByHop().Udp(1, 2).IpTotalLength(0).Build();
  PacketBuilder nine = v6();
  for (int i = 0; i < 9; ++i) nine.DestOptions();
  std::vector<uint8_t> hbh_late = v6().DestOptions().HopByHop().Udp(1, 2).Build();
  std::vector<uint8_t> bad_opt = v4().IPv4Options(std::vector<uint8_t>{0x07, 0x09, 0, 0}).Udp(1, 2).Build();
  std::vector<uint8_t> opt_zero_len = v4().IPv4Options(std::vector<uint8_t>{0x44, 0x00, 0, 0}).Udp(1, 2).Build();
  std::vector<uint8_t> ext_overrun = v6().DestOptions().Udp(1, 2).Build();
  ext_overrun[14 + 40 + 1] = 20;  // claims 168 bytes
  PacketBuilder short_quote_inner = PacketBuilder().IPv4("10.0.0.2", "10.0.0.9").Udp(1, 2);
  PacketBuilder v6_inner = PacketBuilder().IPv6("fd00::2", "fd00::9").Udp(1, 2);

  std::vector<MalformedCase> cases = {
      {"frame shorter than Ethernet", {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08}, DPV2_DROP_TRUNCATED},
      {"QinQ outer tag", qinq, DPV2_DROP_BAD_L2},
      {"stacked 802.1Q tags", double_tag, DPV2_DROP_BAD_L2},
      {"IPv4 ethertype with version 6", v4().Udp(1, 2).IpVersion(6).Build(), DPV2_DROP_BAD_IP_VERSION},
      {"IPv6 ethertype with version 4", v6().Udp(1, 2).IpVersion(4).Build(), DPV2_DROP_BAD_IP_VERSION},
      {"IPv4 IHL 4", v4().Udp(1, 2).IpHeaderWords(4).Build(), DPV2_DROP_BAD_IP_HEADER},
      {"IPv4 IHL past the frame", v4().IpHeaderWords(15).Build(), DPV2_DROP_TRUNCATED},
      {"IPv4 total length below the header", v4().Udp(1, 2).IpTotalLength(19).Build(), DPV2_DROP_BAD_IP_LENGTH},
      {"IPv4 total length past the frame", v4().Udp(1, 2).IpTotalLength(100).Build(), DPV2_DROP_TRUNCATED},
      {"IPv4 option past the header", bad_opt, DPV2_DROP_BAD_IP_HEADER},
      {"IPv4 option of length 0", opt_zero_len, DPV2_DROP_BAD_IP_HEADER},
      {"IPv6 payload length past the frame", v6().Udp(1, 2).IpTotalLength(9).Build(), DPV2_DROP_TRUNCATED},
      {"IPv6 jumbogram", jumbo, DPV2_DROP_BAD_IP_LENGTH},
      {"nine extension headers", PacketBuilder(nine).Udp(1, 2).Build(), DPV2_DROP_BAD_EXT_HEADER},
      {"hop-by-hop after another header", hbh_late, DPV2_DROP_BAD_EXT_HEADER},
      {"extension header past the packet", ext_overrun, DPV2_DROP_TRUNCATED},
      {"TCP data offset 4", v4().Tcp(1, 2, kTcpSyn).TcpDataOffsetWords(4).Build(), DPV2_DROP_BAD_L4_HEADER},
      {"TCP data offset past the packet", v6().Tcp(1, 2, kTcpSyn).TcpDataOffsetWords(15).Build(), DPV2_DROP_BAD_L4_HEADER},
      {"TCP header cut by the IP length", v4().Proto(DPV2_PROTO_TCP).Payload("0123456789").Build(), DPV2_DROP_TRUNCATED},
      {"UDP length 7", v4().Udp(1, 2).UdpLength(7).Build(), DPV2_DROP_BAD_L4_HEADER},
      {"UDP length past the packet", v6().Udp(1, 2).Payload("ab").UdpLength(11).Build(), DPV2_DROP_BAD_L4_HEADER},
      {"UDP header cut", v6().Proto(DPV2_PROTO_UDP).Payload("0123").Build(), DPV2_DROP_TRUNCATED},
      {"SCTP header cut", v4().Proto(DPV2_PROTO_SCTP).Payload("01234567890").Build(), DPV2_DROP_TRUNCATED},
      {"ICMP header cut", v4().Proto(DPV2_PROTO_ICMP).Payload("0123").Build(), DPV2_DROP_TRUNCATED},
      {"ICMP error quoting 19 bytes", v4().IcmpError(3, 1, short_quote_inner, 19).Build(), DPV2_DROP_BAD_ICMP},
      {"ICMP error quoting IHL 4", v4().IcmpError(3, 1, PacketBuilder(short_quote_inner).IpHeaderWords(4)).Build(), DPV2_DROP_BAD_ICMP},
      {"ICMP error quoting nothing", v4().Icmp(3, 1).Build(), DPV2_DROP_BAD_ICMP},
      {"ICMP error quoting the other family", v4().IcmpError(3, 1, v6_inner).Build(), DPV2_DROP_BAD_ICMP},
      {"ICMPv6 error quoting 39 bytes", v6().IcmpError(1, 4, v6_inner, 39).Build(), DPV2_DROP_BAD_ICMP},
      {"ICMPv6 error quoting nine extension headers", v6().IcmpError(1, 4, nine).Build(), DPV2_DROP_BAD_ICMP},
  };
  for (const MalformedCase& c : cases) {
    INFO(c.what << ": " << DescribePacket(c.frame));
    ParseResult r = Parse(c.frame);
    CHECK(r.drop == c.want);
    CHECK(DescribePacket(c.frame).find("DROP") != std::string::npos);
  }
}

}  // namespace
}  // namespace dpv2
