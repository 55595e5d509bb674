// Runs the libFuzzer body (tests/fuzz/packet_fuzz_body.cc) over thousands of
// random and mutated frames, so that every build exercises it without clang.
#include <catch2/catch.hpp>

#include <random>

#include "dpv2/packet.h"
#include "tests/fuzz/packet_fuzz_body.h"

namespace dpv2 {
namespace {

std::vector<std::vector<uint8_t>> Seeds() {
  PacketBuilder tcp_inner = PacketBuilder().IPv4("10.0.0.2", "10.96.0.10").Tcp(40000, 80, kTcpSyn);
  PacketBuilder udp6_inner = PacketBuilder().IPv6("fd00::2", "fd00::10").DestOptions().Udp(5000, 53);
  PacketBuilder echo_inner = PacketBuilder().IPv4("10.0.0.2", "8.8.8.8").IcmpEcho(5, 5);
  return {
      PacketBuilder().IPv4("10.0.0.1", "10.96.0.10").Tcp(1, 80, kTcpSyn).Payload("data").Build(),
      PacketBuilder().Vlan(7).IPv4("10.0.0.1", "10.96.0.10").IPv4Options(std::vector<uint8_t>{0x94, 4, 0, 0}).Udp(1, 53).Payload("q").Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").UdpZeroChecksum().Udp(1, 2).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Sctp(1, 2).Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").IcmpEcho(1, 2).Payload("ping").Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(0, true).Udp(1, 2).Payload("12345678").Build(),
      PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Fragment(3, false).Proto(6).Payload("12345678").Build(),
      PacketBuilder().IPv4("10.96.0.10", "10.0.0.2").IcmpError(3, 3, tcp_inner).Build(),
      PacketBuilder().IPv4("10.0.0.254", "10.0.0.2").IcmpError(11, 0, echo_inner).Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").HopByHop().Routing().DestOptions().Tcp(1, 2, kTcpAck).Build(),
      PacketBuilder().Vlan(3).IPv6("fd00::1", "fd00::2").Udp(1, 2).Payload("xyz").Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Sctp(1, 2, SctpChunk::kData).Payload("abcd").Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").IcmpEcho(9, 9).Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Fragment(0, true).Udp(1, 2).Build(),
      PacketBuilder().IPv6("fd00::1", "fd00::2").Fragment(9, false).Proto(17).Payload("zz").Build(),
      PacketBuilder().IPv6("fd00::10", "fd00::2").IcmpError(1, 4, udp6_inner).Build(),
      PacketBuilder().IPv6("fd00::10", "fd00::2").IcmpError(2, 0, udp6_inner, 48).Build(),
      PacketBuilder().Payload("arp arp arp").Build(),
  };
}

// Mutations a fuzzer tends to find useful: bit flips, interesting byte
// values, cuts, insertions and length fields set to extremes.
void Mutate(std::vector<uint8_t>& f, std::mt19937& rng) {
  static constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x05, 0x06, 0x0f, 0x11, 0x2c, 0x3a,
                                             0x40, 0x45, 0x60, 0x7f, 0x80, 0x84, 0xff};
  int steps = 1 + static_cast<int>(rng() % 4);
  for (int s = 0; s < steps && !f.empty(); ++s) {
    size_t at = rng() % f.size();
    switch (rng() % 6) {
      case 0:
        f[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        f[at] = kInteresting[rng() % sizeof(kInteresting)];
        break;
      case 2:
        f.resize(at);
        break;
      case 3:
        f.insert(f.begin() + static_cast<long>(at), static_cast<uint8_t>(rng()));
        break;
      case 4:
        f[at] = static_cast<uint8_t>(rng());
        break;
      case 5:
        if (at + 1 < f.size()) {
          uint16_t v = (rng() % 2) ? 0xffff : static_cast<uint16_t>(rng() % 64);
          f[at] = static_cast<uint8_t>(v >> 8);
          f[at + 1] = static_cast<uint8_t>(v);
        }
        break;
    }
  }
}

TEST_CASE("the fuzz body holds on the seed frames", "[fuzz]") {
  for (const std::vector<uint8_t>& f : Seeds()) {
    INFO(DescribePacket(f));
    CHECK(fuzz::CheckPacketInvariants(f) == "");
  }
}

TEST_CASE("the fuzz body holds on thousands of mutated frames", "[fuzz]") {
  std::mt19937 rng(0xd9a2);
  std::vector<std::vector<uint8_t>> seeds = Seeds();
  int runs = 0;
  int parsed_ip = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> f = seeds[rng() % seeds.size()];
    Mutate(f, rng);
    std::string err = fuzz::CheckPacketInvariants(f);
    if (!err.empty()) {
      FAIL_CHECK(err);
    }
    ParseResult r = ParsePacket(f);
    if (r.drop == DPV2_DROP_NONE && r.is_ip) ++parsed_ip;
    ++runs;
  }
  CHECK(runs == 20000);
  // The mutations keep many frames valid, so the rewrite checks ran too.
  CHECK(parsed_ip > 3000);
}

TEST_CASE("the fuzz body holds on random frames with IP ethertypes", "[fuzz]") {
  std::mt19937 rng(77);
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> f(rng() % 200);
    for (uint8_t& b : f) b = static_cast<uint8_t>(rng());
    if (f.size() > 14 && i % 2 == 0) {
      bool v6 = rng() % 2 == 1;
      f[12] = v6 ? 0x86 : 0x08;
      f[13] = v6 ? 0xdd : 0x00;
      f[14] = static_cast<uint8_t>(v6 ? 0x60 : 0x45);
    }
    std::string err = fuzz::CheckPacketInvariants(f);
    if (!err.empty()) {
      FAIL_CHECK(err);
    }
  }
}

}  // namespace
}  // namespace dpv2
