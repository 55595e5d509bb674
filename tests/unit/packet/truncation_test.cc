// Every prefix of a valid frame is rejected as truncated, and parsing it
// reads only its own bytes (each prefix lives in a buffer of exactly its
// size, so the sanitizer build catches any read past it).
#include <catch2/catch.hpp>

#include <memory>

#include "dpv2/packet.h"
#include "tests/unit/packet/packet_test_util.h"

namespace dpv2 {
namespace {

std::vector<std::pair<std::string, std::vector<uint8_t>>> ValidFrames() {
  PacketBuilder tcp_inner = PacketBuilder().IPv4("10.0.0.2", "10.96.0.10").Tcp(40000, 80, kTcpSyn);
  PacketBuilder udp6_inner = PacketBuilder().IPv6("fd00::2", "fd00::10").HopByHop().Udp(5000, 53);
  return {
      {"tcp4 vlan options",
       PacketBuilder().Vlan(7).IPv4("10.0.0.1", "10.96.0.10").IPv4Options(std::vector<uint8_t>{1, 1, 1, 0})
           .Tcp(1, 80, kTcpSyn).TcpOptions(std::vector<uint8_t>{2, 4, 5, 0xb4}).Payload("data").Build()},
      {"udp6 ext headers",
       PacketBuilder().IPv6("fd00::1", "fd00::2").HopByHop().Routing().DestOptions().Udp(1, 2).Payload("q").Build()},
      {"sctp4", PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Sctp(1, 2).Build()},
      {"sctp6 vlan", PacketBuilder().Vlan(9).IPv6("fd00::1", "fd00::2").Sctp(1, 2, SctpChunk::kData).Payload("x").Build()},
      {"icmp4 echo", PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IcmpEcho(1, 2).Build()},
      {"icmp6 echo", PacketBuilder().IPv6("fd00::1", "fd00::2").IcmpEcho(1, 2, true).Build()},
      {"icmp4 error", PacketBuilder().IPv4("10.96.0.10", "10.0.0.2").IcmpError(3, 3, tcp_inner).Build()},
      {"icmp6 error", PacketBuilder().Vlan(2).IPv6("fd00::10", "fd00::2").IcmpError(1, 4, udp6_inner).Build()},
      {"tcp6 first fragment", PacketBuilder().IPv6("fd00::1", "fd00::2").Fragment(0, true).Tcp(1, 2, kTcpAck).Build()},
  };
}

TEST_CASE("every truncation of a valid frame is dropped as truncated", "[parse][truncation]") {
  int prefixes = 0;
  for (const auto& [name, frame] : ValidFrames()) {
    INFO(name << ": " << DescribePacket(frame));
    REQUIRE(ParsePacket(frame).drop == DPV2_DROP_NONE);
    for (size_t len = 0; len < frame.size(); ++len) {
      INFO("prefix of " << len << " bytes");
      std::unique_ptr<uint8_t[]> exact(new uint8_t[len > 0 ? len : 1]);
      std::copy(frame.begin(), frame.begin() + len, exact.get());
      ParseResult r = ParsePacket(absl::MakeConstSpan(exact.get(), len));
      CHECK(r.drop == DPV2_DROP_TRUNCATED);
      // Describing a truncated frame is as safe as parsing it.
      CHECK_FALSE(DescribePacket(absl::MakeConstSpan(exact.get(), len)).empty());
      ++prefixes;
    }
  }
  CHECK(prefixes > 500);
}

TEST_CASE("cutting the IP length short of L4 gives a drop, never a read past it", "[parse][truncation]") {
  // Shrink the IPv4 total length (fixing nothing else) byte by byte: the
  // parser must stop at the IP packet's end even though the frame goes on.
  std::vector<uint8_t> frame = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).Build();
  for (uint16_t total = 20; total < 40; ++total) {
    std::vector<uint8_t> f = frame;
    f[16] = static_cast<uint8_t>(total >> 8);
    f[17] = static_cast<uint8_t>(total);
    INFO("total length " << total);
    CHECK(ParsePacket(f).drop == DPV2_DROP_TRUNCATED);
  }
  std::vector<uint8_t> frame6 = PacketBuilder().IPv6("fd00::1", "fd00::2").DestOptions().Udp(1, 2).Build();
  for (uint16_t plen = 0; plen < 16; ++plen) {
    std::vector<uint8_t> f = frame6;
    f[18] = static_cast<uint8_t>(plen >> 8);
    f[19] = static_cast<uint8_t>(plen);
    INFO("payload length " << plen);
    CHECK(ParsePacket(f).drop == DPV2_DROP_TRUNCATED);
  }
}

}  // namespace
}  // namespace dpv2
