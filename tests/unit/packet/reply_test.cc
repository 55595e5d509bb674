// REJECT replies, checked field by field against docs/datapath.md "Frames
// the datapath emits", and against the same frame described with the builder.
#include <catch2/catch.hpp>

#include "dpv2/packet.h"
#include "tests/unit/packet/packet_test_util.h"

namespace dpv2 {
namespace {

using testing::Be16;
using testing::Be32;
using testing::Ip;

const MacAddr kClientMac = {0x02, 0, 0, 0, 0, 0xc1};
const MacAddr kNodeMac = {0x02, 0, 0, 0, 0, 0x0d};

TEST_CASE("a SYN to a frontend without backends gets RST|ACK acknowledging the SYN", "[reply]") {
  std::vector<uint8_t> in = PacketBuilder()
                                .Eth(kClientMac, kNodeMac)
                                .IPv4("10.0.0.2", "10.96.0.10")
                                .Tos(0x10)
                                .Ttl(63)
                                .IpId(777)
                                .DontFragment()
                                .Tcp(40000, 80, kTcpSyn)
                                .Seq(1000)
                                .TcpOptions(std::vector<uint8_t>{2, 4, 5, 0xb4})
                                .Build();
  ParseResult r = ParsePacket(in);
  std::vector<uint8_t> out = BuildTcpReset(in, r.pkt);
  INFO(DescribePacket(out));
  REQUIRE(out.size() == 14 + 20 + 20);
  // Ethernet: addresses swapped.
  CHECK(std::equal(kClientMac.begin(), kClientMac.end(), out.begin()));
  CHECK(std::equal(kNodeMac.begin(), kNodeMac.end(), out.begin() + 6));
  CHECK(Be16(out, 12) == kEtherTypeIPv4);
  // IPv4: version 4, IHL 5, TOS 0, length 40, ID 0, no DF, TTL 64, TCP.
  CHECK(out[14] == 0x45);
  CHECK(out[15] == 0);
  CHECK(Be16(out, 16) == 40);
  CHECK(Be16(out, 18) == 0);
  CHECK(Be16(out, 20) == 0);
  CHECK(out[22] == 64);
  CHECK(out[23] == DPV2_PROTO_TCP);
  CHECK(InternetChecksum(absl::MakeConstSpan(out).subspan(14, 20)) == 0);
  CHECK(IpAddr::V4Bytes(&out[26]) == Ip("10.96.0.10"));
  CHECK(IpAddr::V4Bytes(&out[30]) == Ip("10.0.0.2"));
  // TCP: from the frontend port, seq 0, ack = seq + 1 (SYN), RST|ACK,
  // data offset 5, window 0, urgent 0.
  CHECK(Be16(out, 34) == 80);
  CHECK(Be16(out, 36) == 40000);
  CHECK(Be32(out, 38) == 0);
  CHECK(Be32(out, 42) == 1001);
  CHECK(out[46] == 0x50);
  CHECK(out[47] == (kTcpRst | kTcpAck));
  CHECK(Be16(out, 48) == 0);
  CHECK(Be16(out, 52) == 0);
  CHECK(testing::ChecksumsValid(out));

  std::vector<uint8_t> want = PacketBuilder()
                                  .Eth(kNodeMac, kClientMac)
                                  .IPv4("10.96.0.10", "10.0.0.2")
                                  .Tcp(80, 40000, kTcpRst | kTcpAck)
                                  .Ack(1001)
                                  .Window(0)
                                  .Build();
  CHECK(out == want);
}

TEST_CASE("a segment with ACK gets a bare RST with its ack as sequence", "[reply]") {
  std::vector<uint8_t> in = PacketBuilder()
                                .IPv4("10.0.0.2", "10.96.0.10")
                                .Tcp(40000, 80, kTcpAck | kTcpPsh)
                                .Seq(5000)
                                .Ack(0xfffffff0)
                                .Payload("GET / HTTP/1.1\r\n")
                                .Build();
  std::vector<uint8_t> out = BuildTcpReset(in, ParsePacket(in).pkt);
  std::vector<uint8_t> want = PacketBuilder()
                                  .Eth("02:00:00:00:00:02", "02:00:00:00:00:01")
                                  .IPv4("10.96.0.10", "10.0.0.2")
                                  .Tcp(80, 40000, kTcpRst)
                                  .Seq(0xfffffff0)
                                  .Window(0)
                                  .Build();
  INFO("got  " << DescribePacket(out) << "\nwant " << DescribePacket(want));
  CHECK(out == want);
}

TEST_CASE("the RST acknowledges payload and FIN of a segment without ACK", "[reply]") {
  std::vector<uint8_t> in = PacketBuilder()
                                .IPv4("10.0.0.2", "10.96.0.10")
                                .Tcp(1, 2, kTcpFin)
                                .Seq(0xfffffffe)
                                .Payload("abc")
                                .Build();
  std::vector<uint8_t> out = BuildTcpReset(in, ParsePacket(in).pkt);
  REQUIRE(out.size() == 54);
  CHECK(Be32(out, 38) == 0);
  CHECK(Be32(out, 42) == 0xfffffffeu + 3 + 1);  // wraps to 2
  CHECK(out[47] == (kTcpRst | kTcpAck));
}

TEST_CASE("an IPv6 RST keeps the VLAN tag and zeroes class and flow label", "[reply]") {
  std::vector<uint8_t> in = PacketBuilder()
                                .Eth(kClientMac, kNodeMac)
                                .Vlan(42, 3)
                                .IPv6("fd00::2", "fd00:96::10")
                                .Tos(0xb8)
                                .FlowLabel(0xabcde)
                                .Ttl(7)
                                .HopByHop()
                                .Tcp(40000, 443, kTcpSyn)
                                .Seq(1)
                                .Build();
  std::vector<uint8_t> out = BuildTcpReset(in, ParsePacket(in).pkt);
  INFO(DescribePacket(out));
  REQUIRE(out.size() == 18 + 40 + 20);
  CHECK(Be16(out, 12) == kEtherTypeVlan);
  CHECK(Be16(out, 14) == (3 << 13 | 42));
  CHECK(Be16(out, 16) == kEtherTypeIPv6);
  CHECK(Be32(out, 18) == 0x60000000u);
  CHECK(Be16(out, 22) == 20);
  CHECK(out[24] == DPV2_PROTO_TCP);
  CHECK(out[25] == 64);
  std::vector<uint8_t> want = PacketBuilder()
                                  .Eth(kNodeMac, kClientMac)
                                  .Vlan(42, 3)
                                  .IPv6("fd00:96::10", "fd00::2")
                                  .Tcp(443, 40000, kTcpRst | kTcpAck)
                                  .Ack(2)
                                  .Window(0)
                                  .Build();
  CHECK(out == want);
}

TEST_CASE("BuildTcpReset refuses what is not a TCP header", "[reply]") {
  std::vector<uint8_t> udp = PacketBuilder().IPv4("10.0.0.2", "10.96.0.10").Udp(1, 2).Build();
  CHECK(BuildTcpReset(udp, ParsePacket(udp).pkt).empty());
  std::vector<uint8_t> frag = PacketBuilder().IPv4("10.0.0.2", "10.96.0.10").Fragment(4, false).Proto(DPV2_PROTO_TCP).Payload(std::string(20, 'x')).Build();
  CHECK(BuildTcpReset(frag, ParsePacket(frag).pkt).empty());
  CHECK(BuildTcpReset({}, ParsedPacket{}).empty());
}

TEST_CASE("UDP to a frontend without backends gets ICMP port unreachable quoting header + 8", "[reply]") {
  PacketBuilder request = PacketBuilder()
                              .Eth(kClientMac, kNodeMac)
                              .IPv4("10.0.0.2", "10.96.0.10")
                              .IPv4Options(std::vector<uint8_t>{0x94, 0x04, 0, 0})
                              .Ttl(9)
                              .IpId(31)
                              .Udp(5000, 53)
                              .Payload("a DNS query");
  std::vector<uint8_t> in = request.Build();
  ParseResult r = ParsePacket(in);
  std::vector<uint8_t> out = BuildPortUnreachable(in, r.pkt);
  INFO(DescribePacket(out));
  size_t quote = 24 + 8;  // IHL*4 (with options) + 8
  REQUIRE(out.size() == 14 + 20 + 8 + quote);
  CHECK(std::equal(kClientMac.begin(), kClientMac.end(), out.begin()));
  CHECK(out[14] == 0x45);
  CHECK(Be16(out, 16) == 20 + 8 + quote);
  CHECK(Be16(out, 18) == 0);
  CHECK(Be16(out, 20) == 0);
  CHECK(out[22] == 64);
  CHECK(out[23] == DPV2_PROTO_ICMP);
  CHECK(IpAddr::V4Bytes(&out[26]) == Ip("10.96.0.10"));
  CHECK(IpAddr::V4Bytes(&out[30]) == Ip("10.0.0.2"));
  CHECK(out[34] == 3);
  CHECK(out[35] == 3);
  CHECK(Be32(out, 38) == 0);
  CHECK(std::equal(out.begin() + 42, out.end(), in.begin() + 14));
  CHECK(testing::ChecksumsValid(out));
  ParseResult back = ParsePacket(out);
  REQUIRE(back.pkt.has_inner);
  CHECK(back.pkt.inner_tuple() == r.pkt.tuple());

  std::vector<uint8_t> want = PacketBuilder()
                                  .Eth(kNodeMac, kClientMac)
                                  .IPv4("10.96.0.10", "10.0.0.2")
                                  .IcmpError(3, 3, request, quote)
                                  .Build();
  CHECK(out == want);
}

TEST_CASE("IPv6 port unreachable is type 1 code 4 and quotes 48 bytes", "[reply]") {
  PacketBuilder request = PacketBuilder()
                              .Vlan(5)
                              .IPv6("fd00::2", "fd00:96::10")
                              .FlowLabel(99)
                              .DestOptions()
                              .Sctp(3868, 3868, SctpChunk::kInit);
  std::vector<uint8_t> in = request.Build();
  std::vector<uint8_t> out = BuildPortUnreachable(in, ParsePacket(in).pkt);
  INFO(DescribePacket(out));
  REQUIRE(out.size() == 18 + 40 + 8 + 48);
  CHECK(Be16(out, 14) == 5);
  CHECK(Be32(out, 18) == 0x60000000u);
  CHECK(Be16(out, 22) == 8 + 48);
  CHECK(out[24] == DPV2_PROTO_ICMPV6);
  CHECK(out[25] == 64);
  CHECK(out[58] == 1);
  CHECK(out[59] == 4);
  CHECK(std::equal(out.begin() + 66, out.end(), in.begin() + 18));
  CHECK(testing::ChecksumsValid(out));
  std::vector<uint8_t> want = PacketBuilder()
                                  .Eth("02:00:00:00:00:02", "02:00:00:00:00:01")
                                  .Vlan(5)
                                  .IPv6("fd00:96::10", "fd00::2")
                                  .IcmpError(1, 4, request, 48)
                                  .Build();
  CHECK(out == want);
}

TEST_CASE("a packet shorter than header + 8 is quoted whole", "[reply]") {
  std::vector<uint8_t> in = PacketBuilder().IPv4("10.0.0.2", "10.96.0.10").Proto(99).Payload("ab").TrailingBytes(10).Build();
  std::vector<uint8_t> out = BuildPortUnreachable(in, ParsePacket(in).pkt);
  REQUIRE(out.size() == 14 + 20 + 8 + 22);
  CHECK(std::equal(out.begin() + 42, out.end(), in.begin() + 14));
  CHECK(InternetChecksum(absl::MakeConstSpan(out).subspan(14, 20)) == 0);
  CHECK(InternetChecksum(absl::MakeConstSpan(out).subspan(34)) == 0);
}

}  // namespace
}  // namespace dpv2
