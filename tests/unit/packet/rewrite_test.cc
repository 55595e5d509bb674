// Address and port rewrites: the result equals the frame built directly with
// the new values, byte for byte, so every incremental checksum update equals
// a full recomputation.
#include <catch2/catch.hpp>

#include <random>

#include "dpv2/packet.h"
#include "tests/unit/packet/packet_test_util.h"

namespace dpv2 {
namespace {

using testing::Be16;
using testing::Ip;

enum class Kind { kTcp, kUdp, kSctp, kEcho, kRaw };

// One packet description; Make() builds it with the given endpoints.
struct Shape {
  Kind kind;
  bool v6;
  bool vlan;
  bool extras;  // IPv4 options / IPv6 extension headers
  std::string payload;
  uint32_t seq;

  std::vector<uint8_t> Make(const IpAddr& src, uint16_t sport, const IpAddr& dst,
                            uint16_t dport) const {
    PacketBuilder b;
    if (vlan) b.Vlan(100);
    if (v6) {
      b.IPv6(src, dst).FlowLabel(0x12345);
      if (extras) b.HopByHop().DestOptions();
    } else {
      b.IPv4(src, dst).IpId(0x4242).DontFragment();
      if (extras) b.IPv4Options(std::vector<uint8_t>{0x94, 0x04, 0, 0});
    }
    switch (kind) {
      case Kind::kTcp:
        b.Tcp(sport, dport, kTcpAck | kTcpPsh).Seq(seq).Ack(~seq);
        break;
      case Kind::kUdp:
        b.Udp(sport, dport);
        break;
      case Kind::kSctp:
        b.Sctp(sport, dport, SctpChunk::kData, seq);
        break;
      case Kind::kEcho:
        // The identifier is the "port"; the source side owns it.
        b.IcmpEcho(sport, 3);
        break;
      case Kind::kRaw:
        b.Proto(47);
        break;
    }
    return b.Payload(payload).Build();
  }
};

IpAddr RandomAddr(std::mt19937& rng, bool v6) {
  uint8_t b[16];
  for (uint8_t& x : b) x = static_cast<uint8_t>(rng());
  return v6 ? IpAddr::V6Bytes(b) : IpAddr::V4Bytes(b);
}

TEST_CASE("a DNAT rewrite equals the frame built with the backend address", "[rewrite]") {
  for (bool v6 : {false, true}) {
    for (Kind kind : {Kind::kTcp, Kind::kUdp, Kind::kSctp}) {
      Shape s{.kind = kind, .v6 = v6, .vlan = true, .extras = true, .payload = "GET /", .seq = 1};
      IpAddr client = Ip(v6 ? "fd00::1" : "10.0.0.1");
      IpAddr vip = Ip(v6 ? "fd00:96::10" : "10.96.0.10");
      IpAddr backend = Ip(v6 ? "fd00:1:2::33" : "10.1.2.33");
      std::vector<uint8_t> f = s.Make(client, 40000, vip, 80);
      ParseResult r = ParsePacket(f);
      REQUIRE(r.drop == DPV2_DROP_NONE);
      RewriteDestination(absl::MakeSpan(f), r.pkt, backend, 8080);
      std::vector<uint8_t> want = s.Make(client, 40000, backend, 8080);
      INFO("got  " << DescribePacket(f) << "\nwant " << DescribePacket(want));
      CHECK(f == want);
      CHECK(testing::ChecksumsValid(f));
    }
  }
}

TEST_CASE("random rewrites of random packets equal a full rebuild", "[rewrite][property]") {
  std::mt19937 rng(20240601);
  int checked = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    Shape s{.kind = static_cast<Kind>(rng() % 5), .v6 = rng() % 2 == 1, .vlan = rng() % 3 == 0,
            .extras = rng() % 3 == 0, .payload = std::string(rng() % 64, 'x'),
            .seq = static_cast<uint32_t>(rng())};
    for (char& c : s.payload) c = static_cast<char>(rng());
    IpAddr a = RandomAddr(rng, s.v6), b = RandomAddr(rng, s.v6), c = RandomAddr(rng, s.v6);
    uint16_t pa = static_cast<uint16_t>(rng()), pb = static_cast<uint16_t>(rng()),
             pc = static_cast<uint16_t>(rng());
    bool source = rng() % 2 == 0;
    std::vector<uint8_t> f = s.Make(a, pa, b, pb);
    ParseResult r = ParsePacket(f);
    REQUIRE(r.drop == DPV2_DROP_NONE);
    std::vector<uint8_t> want;
    if (source) {
      RewriteSource(absl::MakeSpan(f), r.pkt, c, pc);
      want = s.Make(c, pc, b, pb);
    } else {
      // For echo the identifier is the source's; a destination rewrite with
      // the same identifier changes only the address.
      uint16_t port = s.kind == Kind::kEcho ? pa : pc;
      RewriteDestination(absl::MakeSpan(f), r.pkt, c, port);
      want = s.Make(a, pa, c, s.kind == Kind::kEcho ? pb : pc);
    }
    INFO("iteration " << iter << "\ngot  " << DescribePacket(f) << "\nwant " << DescribePacket(want));
    REQUIRE(f == want);
    ++checked;
  }
  CHECK(checked == 3000);
}

TEST_CASE("an echo rewrite replaces the identifier and keeps the checksum right", "[rewrite]") {
  for (bool v6 : {false, true}) {
    Shape s{.kind = Kind::kEcho, .v6 = v6, .vlan = false, .extras = false, .payload = "ping", .seq = 0};
    IpAddr pod = Ip(v6 ? "fd00::5" : "10.0.0.5");
    IpAddr node = Ip(v6 ? "2001:db8::1" : "192.0.2.1");
    IpAddr world = Ip(v6 ? "2001:db8::99" : "198.51.100.9");
    std::vector<uint8_t> f = s.Make(pod, 7, world, 0);
    ParseResult r = ParsePacket(f);
    RewriteSource(absl::MakeSpan(f), r.pkt, node, 60001);
    CHECK(f == s.Make(node, 60001, world, 0));
    CHECK(testing::ChecksumsValid(f));
  }
}

TEST_CASE("a UDP checksum of 0 over IPv4 stays 0 after a rewrite", "[rewrite]") {
  std::vector<uint8_t> f =
      PacketBuilder().IPv4("10.0.0.1", "10.96.0.10").Udp(1000, 53).UdpZeroChecksum().Payload("q").Build();
  ParseResult r = ParsePacket(f);
  RewriteDestination(absl::MakeSpan(f), r.pkt, Ip("10.1.1.1"), 5353);
  ParseResult after = ParsePacket(f);
  CHECK(after.pkt.dst == Ip("10.1.1.1"));
  CHECK(after.pkt.dport == 5353);
  CHECK(Be16(f, after.pkt.l4_offset + 6) == 0);
  CHECK(testing::ChecksumsValid(f));
}

TEST_CASE("a UDP checksum that computes to 0 is written as 0xffff", "[rewrite]") {
  for (bool v6 : {false, true}) {
    IpAddr src = Ip(v6 ? "fd00::1" : "10.0.0.1");
    IpAddr dst = Ip(v6 ? "fd00::2" : "10.0.0.2");
    // The checksum is linear in the destination port: with port 0 it is c,
    // so port c makes the one's complement sum 0xffff and the checksum 0.
    PacketBuilder b;
    if (v6) {
      b.IPv6(src, dst);
    } else {
      b.IPv4(src, dst);
    }
    std::vector<uint8_t> zero = b.Udp(1, 0).Payload("abc").Build();
    ParseResult r = ParsePacket(zero);
    uint16_t c = Be16(zero, r.pkt.l4_offset + 6);
    RewriteDestination(absl::MakeSpan(zero), r.pkt, dst, c);
    INFO(DescribePacket(zero));
    CHECK(Be16(zero, r.pkt.l4_offset + 2) == c);
    CHECK(Be16(zero, r.pkt.l4_offset + 6) == 0xffff);
    CHECK(testing::ChecksumsValid(zero));
  }
}

TEST_CASE("a non-first fragment gets only its address rewritten", "[rewrite]") {
  for (bool v6 : {false, true}) {
    PacketBuilder b;
    if (v6) {
      b.IPv6("fd00::1", "fd00::2");
    } else {
      b.IPv4("10.0.0.1", "10.0.0.2");
    }
    std::vector<uint8_t> f = b.Fragment(8, false, 5).Proto(DPV2_PROTO_TCP).Payload("0123456789abcdefghij").Build();
    std::vector<uint8_t> before = f;
    ParseResult r = ParsePacket(f);
    RewriteDestination(absl::MakeSpan(f), r.pkt, Ip(v6 ? "fd00::9" : "10.0.0.9"), 9999);
    ParseResult after = ParsePacket(f);
    CHECK(after.pkt.dst == Ip(v6 ? "fd00::9" : "10.0.0.9"));
    // The fragment's data (which looks like a TCP header) is untouched.
    CHECK(std::equal(f.begin() + r.pkt.payload_offset, f.end(), before.begin() + r.pkt.payload_offset));
    if (!v6) CHECK(testing::ChecksumsValid(f));
  }
}

TEST_CASE("a first fragment's L4 checksum is updated incrementally", "[rewrite]") {
  std::vector<uint8_t> f = PacketBuilder().IPv4("10.0.0.1", "10.96.0.1").Fragment(0, true, 3).Udp(1, 53).Payload("abcdefgh").Build();
  std::vector<uint8_t> want = PacketBuilder().IPv4("10.0.0.1", "10.2.0.1").Fragment(0, true, 3).Udp(1, 5353).Payload("abcdefgh").Build();
  ParseResult r = ParsePacket(f);
  RewriteDestination(absl::MakeSpan(f), r.pkt, Ip("10.2.0.1"), 5353);
  CHECK(f == want);
}

TEST_CASE("a rewrite with an address of the other family leaves the frame alone", "[rewrite]") {
  std::vector<uint8_t> f = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, kTcpSyn).Build();
  std::vector<uint8_t> before = f;
  ParseResult r = ParsePacket(f);
  RewriteDestination(absl::MakeSpan(f), r.pkt, Ip("fd00::1"), 3);
  RewriteInnerSource(absl::MakeSpan(f), r.pkt, Ip("10.0.0.3"), 3);  // no inner packet
  CHECK(f == before);
}

// ICMP errors about a translated flow: the quoted packet is rewritten as if
// it had been built with the new values, and the outer ICMP checksum follows.
TEST_CASE("an inner rewrite of an ICMP error equals the error built for the new flow", "[rewrite][icmp]") {
  struct Case {
    bool v6;
    Kind kind;
    std::optional<size_t> quote;
  };
  for (const Case& c : {Case{false, Kind::kUdp, 28}, Case{false, Kind::kTcp, 28},
                        Case{false, Kind::kTcp, std::nullopt}, Case{false, Kind::kEcho, std::nullopt},
                        Case{false, Kind::kSctp, 28}, Case{true, Kind::kUdp, std::nullopt},
                        Case{true, Kind::kTcp, 48}, Case{true, Kind::kTcp, std::nullopt},
                        Case{true, Kind::kEcho, std::nullopt}}) {
    Shape inner{.kind = c.kind, .v6 = c.v6, .vlan = false, .extras = false, .payload = "data!", .seq = 9};
    IpAddr backend = Ip(c.v6 ? "fd00:1::7" : "10.1.0.7");
    IpAddr vip = Ip(c.v6 ? "fd00:96::1" : "10.96.0.1");
    IpAddr client = Ip(c.v6 ? "fd00::2" : "10.0.0.2");
    IpAddr router = Ip(c.v6 ? "fd00::fe" : "10.0.0.254");
    // Build the ICMP error quoting `in` (the full IP packet, cut to c.quote).
    auto build = [&](const IpAddr& inner_src, uint16_t inner_sport, const IpAddr& outer_dst) {
      std::vector<uint8_t> in = inner.Make(inner_src, inner_sport, client, 40000);
      std::vector<uint8_t> ip(in.begin() + 14, in.end());
      if (c.quote && *c.quote < ip.size()) ip.resize(*c.quote);
      PacketBuilder outer;
      if (c.v6) {
        outer.IPv6(router, outer_dst);
      } else {
        outer.IPv4(router, outer_dst);
      }
      uint8_t type = c.v6 ? kIcmp6TimeExceeded : kIcmpTimeExceeded;
      return outer.Icmp(type, 0).Payload(ip).Build();
    };
    std::vector<uint8_t> f = build(backend, 8080, backend);
    ParseResult r = ParsePacket(f);
    INFO("case v6=" << c.v6 << " kind=" << static_cast<int>(c.kind) << " " << DescribePacket(f));
    REQUIRE(r.drop == DPV2_DROP_NONE);
    REQUIRE(r.pkt.has_inner);
    uint16_t new_port = c.kind == Kind::kEcho ? 8080 : 80;
    RewriteInnerSource(absl::MakeSpan(f), r.pkt, vip, new_port);
    RewriteDestination(absl::MakeSpan(f), r.pkt, client, 0);
    std::vector<uint8_t> want = build(vip, new_port, client);
    INFO("got  " << DescribePacket(f) << "\nwant " << DescribePacket(want));
    CHECK(f == want);
    CHECK(testing::ChecksumsValid(f));
    ParseResult after = ParsePacket(f);
    CHECK(after.pkt.inner_src == vip);
    if (c.kind != Kind::kEcho) CHECK(after.pkt.inner_sport == 80);
  }
}

TEST_CASE("an inner destination rewrite fixes the quoted request", "[rewrite][icmp]") {
  // A client's SYN to a VIP was DNATed to a backend; a router answers the
  // backend-addressed packet, and the datapath restores the VIP in the quote.
  auto make = [](const char* inner_dst, uint16_t dport) {
    PacketBuilder syn = PacketBuilder().IPv4("10.0.0.2", inner_dst).Tcp(40000, dport, kTcpSyn).Seq(5);
    return PacketBuilder().IPv4("10.0.0.254", "10.0.0.2").IcmpError(3, 4, syn).Build();
  };
  std::vector<uint8_t> f = make("10.1.0.7", 8080);
  ParseResult r = ParsePacket(f);
  RewriteInnerDestination(absl::MakeSpan(f), r.pkt, Ip("10.96.0.1"), 80);
  CHECK(f == make("10.96.0.1", 80));
}

TEST_CASE("SetEthernet writes both addresses", "[rewrite]") {
  std::vector<uint8_t> f = PacketBuilder().IPv4("10.0.0.1", "10.0.0.2").Build();
  MacAddr dst = *ParseMac("0a:0b:0c:0d:0e:0f");
  MacAddr src = *ParseMac("02:42:ac:11:00:02");
  SetEthernet(absl::MakeSpan(f), dst, src);
  CHECK(std::equal(dst.begin(), dst.end(), f.begin()));
  CHECK(std::equal(src.begin(), src.end(), f.begin() + 6));
  std::vector<uint8_t> tiny(8, 0);
  SetEthernet(absl::MakeSpan(tiny), dst, src);
  CHECK(tiny == std::vector<uint8_t>(8, 0));
}

}  // namespace
}  // namespace dpv2
