// PacketBuilder, DescribePacket and MAC addresses.
#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "dpv2/packet.h"
#include "tests/unit/packet/packet_test_util.h"

namespace dpv2 {
namespace {

using testing::Be16;

TEST_CASE("the builder fills lengths and checksums of every protocol", "[builder]") {
  PacketBuilder inner = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Udp(1, 2);
  PacketBuilder inner6 = PacketBuilder().IPv6("fd00::1", "fd00::2").Udp(1, 2);
  std::vector<std::vector<uint8_t>> frames = {
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).Payload("x").Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Udp(1, 2).Payload("xyz").Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Sctp(1, 2, SctpChunk::kAbort).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Sctp(1, 2, SctpChunk::kShutdown).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IcmpEcho(1, 1).Build(),
      PacketBuilder().IPv4("10.0.0.9", "10.0.0.1").IcmpError(3, 3, inner).Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Tcp(1, 2, kTcpSyn).Payload("x").Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Routing().Udp(1, 2).Payload("xyz").Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Sctp(1, 2, SctpChunk::kInitAck).Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").IcmpEcho(1, 1).Build(),
      PacketBuilder().IPv6("fd00::9", "fd00::1").IcmpError(1, 4, inner6).Build(),
  };
  for (const std::vector<uint8_t>& f : frames) {
    INFO(DescribePacket(f));
    CHECK(testing::ChecksumsValid(f));
    CHECK(DescribePacket(f).find("bad") == std::string::npos);
  }
}

TEST_CASE("corruption setters break exactly the field they name", "[builder]") {
  auto base = [] { return PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Udp(1, 2).Payload("abc"); };
  std::vector<uint8_t> good = base().Build();
  std::vector<uint8_t> bad_l4 = base().BadChecksum().Build();
  std::vector<uint8_t> bad_ip = base().BadIpChecksum().Build();
  CHECK(testing::ChecksumsValid(good));
  CHECK_FALSE(testing::ChecksumsValid(bad_l4));
  CHECK_FALSE(testing::ChecksumsValid(bad_ip));
  CHECK(ParsePacket(bad_l4).drop == DPV2_DROP_NONE);  // checksums are not the parser's business
  CHECK(DescribePacket(bad_l4).find("udp 1->2 len 11 csum") != std::string::npos);
  CHECK(DescribePacket(bad_l4).find("bad (want") != std::string::npos);
  CHECK(Be16(base().UdpZeroChecksum().Build(), 40) == 0);
  std::vector<uint8_t> sctp_bad = PacketBuilder().IPv6("fd00::1", "fd00::2").Sctp(1, 2).BadChecksum().Build();
  CHECK_FALSE(testing::ChecksumsValid(sctp_bad));
  CHECK(DescribePacket(sctp_bad).find("crc") != std::string::npos);
}

TEST_CASE("DescribePacket decodes a frame field by field", "[builder][describe]") {
  std::vector<uint8_t> f = PacketBuilder()
                               .Eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                               .IPv4("10.0.0.1", "10.96.0.10")
                               .Tcp(40000, 80, kTcpSyn)
                               .Seq(1)
                               .Payload("hi")
                               .Build();
  std::string d = DescribePacket(f);
  CHECK(d.rfind("eth 02:00:00:00:00:01->02:00:00:00:00:02; ipv4 10.0.0.1->10.96.0.10 ttl 64 id 0 len 42 csum 0x", 0) == 0);
  CHECK(d.find("tcp 40000->80 [S] seq 1 ack 0 win 65535 csum 0x") != std::string::npos);
  CHECK(d.find("; payload 2") != std::string::npos);
  CHECK(d.find("bad") == std::string::npos);

  std::vector<uint8_t> cut(f.begin(), f.begin() + 30);
  CHECK(DescribePacket(cut).find("DROP truncated") != std::string::npos);
  CHECK(DescribePacket(std::vector<uint8_t>{1, 2, 3}) == "frame of 3 bytes: DROP truncated [010203]");
}

TEST_CASE("the builder reports bad literals naming them", "[builder]") {
  absl::StatusOr<std::vector<uint8_t>> r = PacketBuilder().IPv4("10.0.0.300", "10.0.0.1").Udp(1, 2).TryBuild();
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("10.0.0.300") != std::string::npos);
  r = PacketBuilder().Eth("02:00:00:00:00", "02:00:00:00:00:02").TryBuild();
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("02:00:00:00:00") != std::string::npos);
  r = PacketBuilder().IPv4(testing::Ip("fd00::1"), testing::Ip("10.0.0.1")).TryBuild();
  CHECK_FALSE(r.ok());
  r = PacketBuilder().Fragment(1, true).TryBuild();
  CHECK_FALSE(r.ok());
  PacketBuilder broken_inner = PacketBuilder().IPv6("nope", "fd00::1");
  r = PacketBuilder().IPv6("fd00::1", "fd00::2").IcmpError(1, 4, broken_inner).TryBuild();
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("nope") != std::string::npos);
}

TEST_CASE("MAC addresses parse and print", "[builder]") {
  absl::StatusOr<MacAddr> m = ParseMac("0A:1b:2c:3d:4e:5F");
  REQUIRE(m.ok());
  CHECK(MacToString(*m) == "0a:1b:2c:3d:4e:5f");
  CHECK(ParseMac("0a-1b-2c-3d-4e-5f").ok());
  for (const char* bad : {"", "0a:1b:2c:3d:4e", "0a:1b:2c:3d:4e:5f:", "0g:1b:2c:3d:4e:5f", "0a1b2c3d4e5f"}) {
    INFO(bad);
    absl::StatusOr<MacAddr> b = ParseMac(bad);
    REQUIRE_FALSE(b.ok());
    CHECK(std::string(b.status().message()).find(absl::StrCat("\"", bad, "\"")) != std::string::npos);
  }
}

}  // namespace
}  // namespace dpv2
