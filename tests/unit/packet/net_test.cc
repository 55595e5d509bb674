// Addresses, prefixes, protocol names and 5-tuples (dpv2/net.h).
#include <catch2/catch.hpp>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "dpv2/net.h"

namespace dpv2 {
namespace {

IpAddr Ip(absl::string_view text) {
  absl::StatusOr<IpAddr> a = IpAddr::Parse(text);
  REQUIRE(a.ok());
  return *a;
}

TEST_CASE("IPv4 addresses parse and print back unchanged", "[net]") {
  for (const char* text : {"0.0.0.0", "10.0.0.1", "255.255.255.255", "192.168.1.10"}) {
    IpAddr a = Ip(text);
    CHECK(a.is_v4());
    CHECK(a.size() == 4);
    CHECK(a.ToString() == text);
  }
  CHECK(Ip("10.1.2.3") == IpAddr::V4(0x0a010203));
}

TEST_CASE("IPv6 addresses print in RFC 5952 canonical form", "[net]") {
  struct Case {
    const char* in;
    const char* out;
  };
  for (const Case& c : {
           Case{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
           Case{"2001:DB8::1", "2001:db8::1"},                       // 4.3 lower case
           Case{"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},     // 4.2.2 one group stays
           Case{"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},              // 4.2.3 longest run
           Case{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},        // 4.2.3 first on a tie
           Case{"::", "::"},
           Case{"::1", "::1"},
           Case{"fd00::", "fd00::"},
           Case{"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
           Case{"::ffff:10.0.0.1", "::ffff:10.0.0.1"},               // 5: mapped keeps dots
           Case{"64:ff9b::192.0.2.33", "64:ff9b::c000:221"},
       }) {
    INFO(c.in);
    IpAddr a = Ip(c.in);
    CHECK_FALSE(a.is_v4());
    CHECK(a.ToString() == c.out);
    CHECK(Ip(a.ToString()) == a);
  }
}

TEST_CASE("malformed addresses are rejected with the bad text in the error", "[net]") {
  for (const char* text :
       {"", "10.0.0", "10.0.0.256", "10.0.0.1.", "010.0.0.1", "1.2.3.4.5", "a.b.c.d", " 10.0.0.1",
        "10.0.0.1/32", "1::2::3", ":1", "1:", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::",
        "g::1", "fe80::1%eth0", "[::1]", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:6:7:8::"}) {
    INFO(text);
    absl::StatusOr<IpAddr> a = IpAddr::Parse(text);
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(a.status().message()).find(absl::StrCat("\"", text, "\"")) !=
          std::string::npos);
  }
}

TEST_CASE("addresses convert to and from the ABI form", "[net]") {
  IpAddr v4 = Ip("10.96.0.10");
  dpv2_addr abi = v4.ToAbi();
  CHECK(abi.b[0] == 10);
  CHECK(abi.b[3] == 10);
  for (int i = 4; i < 16; ++i) CHECK(abi.b[i] == 0);
  CHECK(IpAddr::FromAbi(abi, Family::kV4) == v4);
  IpAddr v6 = Ip("fd00::1:2");
  CHECK(IpAddr::FromAbi(v6.ToAbi(), Family::kV6) == v6);
  CHECK(IpAddr() == Ip("0.0.0.0"));
}

TEST_CASE("equal addresses hash equal and families never collide", "[net]") {
  absl::flat_hash_set<IpAddr> set = {Ip("10.0.0.1"), Ip("::a00:1"), Ip("10.0.0.1")};
  CHECK(set.size() == 2);
  CHECK(Ip("10.0.0.1") != Ip("::a00:1"));
  CHECK(Ip("10.0.0.1") < Ip("10.0.0.2"));
}

TEST_CASE("strict prefixes reject host bits and lenient ones mask them", "[net]") {
  absl::StatusOr<Prefix> p = Prefix::Parse("10.0.0.0/8");
  REQUIRE(p.ok());
  CHECK(p->length() == 8);
  CHECK(p->ToString() == "10.0.0.0/8");

  absl::StatusOr<Prefix> host = Prefix::Parse("10.1.0.1/4");
  REQUIRE_FALSE(host.ok());
  CHECK(std::string(host.status().message()).find("\"10.1.0.1/4\"") != std::string::npos);
  CHECK(std::string(host.status().message()).find("host bits") != std::string::npos);

  bool had = false;
  absl::StatusOr<Prefix> lenient = Prefix::ParseLenient("10.1.0.1/4", &had);
  REQUIRE(lenient.ok());
  CHECK(had);
  CHECK(lenient->ToString() == "0.0.0.0/4");
  lenient = Prefix::ParseLenient("192.168.0.0/16", &had);
  REQUIRE(lenient.ok());
  CHECK_FALSE(had);

  absl::StatusOr<Prefix> v6 = Prefix::ParseLenient("fd00::1:2/112", &had);
  REQUIRE(v6.ok());
  CHECK(had);
  CHECK(v6->ToString() == "fd00::1:0/112");

  absl::StatusOr<Prefix> plain = Prefix::Parse("10.0.0.7");
  REQUIRE(plain.ok());
  CHECK(plain->ToString() == "10.0.0.7/32");
  CHECK(Prefix::Parse("fd00::7")->length() == 128);
  CHECK(Prefix::Parse("0.0.0.0/0")->Contains(Ip("1.2.3.4")));
}

TEST_CASE("malformed prefixes are rejected naming the text", "[net]") {
  for (const char* text : {"10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/8/8",
                           "10.0.0/8", "/8", "fd00::/129", "fd00::/abc", "10.0.0.0/ 8"}) {
    INFO(text);
    absl::StatusOr<Prefix> p = Prefix::Parse(text);
    REQUIRE_FALSE(p.ok());
    CHECK(std::string(p.status().message()).find(absl::StrCat("\"", text, "\"")) !=
          std::string::npos);
    bool had = false;
    CHECK_FALSE(Prefix::ParseLenient(text, &had).ok());
  }
}

TEST_CASE("prefix containment respects length and family", "[net]") {
  Prefix p8 = *Prefix::Parse("10.0.0.0/8");
  Prefix p16 = *Prefix::Parse("10.1.0.0/16");
  CHECK(p8.Contains(Ip("10.255.0.1")));
  CHECK_FALSE(p8.Contains(Ip("11.0.0.1")));
  CHECK_FALSE(p8.Contains(Ip("::a00:1")));
  CHECK(p8.Contains(p16));
  CHECK_FALSE(p16.Contains(p8));
  CHECK(p8.Contains(p8));
  Prefix v6 = *Prefix::Parse("fd00:1::/32");
  CHECK(v6.Contains(Ip("fd00:1:ffff::1")));
  CHECK_FALSE(v6.Contains(Ip("fd00:2::1")));
  Prefix odd = *Prefix::Parse("10.0.0.128/25");
  CHECK(odd.Contains(Ip("10.0.0.200")));
  CHECK_FALSE(odd.Contains(Ip("10.0.0.127")));
}

TEST_CASE("Prefix::Make masks host bits and checks the length", "[net]") {
  absl::StatusOr<Prefix> p = Prefix::Make(Ip("10.1.2.3"), 16);
  REQUIRE(p.ok());
  CHECK(p->ToString() == "10.1.0.0/16");
  CHECK_FALSE(Prefix::Make(Ip("10.1.2.3"), 33).ok());
  CHECK_FALSE(Prefix::Make(Ip("10.1.2.3"), -1).ok());
  CHECK(Prefix::Make(Ip("fd00::1"), 128).ok());
  CHECK(Prefix::Make(Ip("fd00::1"), 0)->ToString() == "::/0");
}

TEST_CASE("L4 protocol names parse case-insensitively and print canonically", "[net]") {
  CHECK(*ParseL4Proto("TCP") == L4Proto::kTCP);
  CHECK(*ParseL4Proto("udp") == L4Proto::kUDP);
  CHECK(*ParseL4Proto("Sctp") == L4Proto::kSCTP);
  CHECK(*ParseL4Proto("ICMP") == L4Proto::kICMP);
  CHECK(*ParseL4Proto("icmpv6") == L4Proto::kICMPv6);
  for (L4Proto p : {L4Proto::kTCP, L4Proto::kUDP, L4Proto::kSCTP, L4Proto::kICMP, L4Proto::kICMPv6}) {
    CHECK(*ParseL4Proto(L4ProtoName(p)) == p);
  }
  absl::StatusOr<L4Proto> bad = ParseL4Proto("tcpx");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("\"tcpx\"") != std::string::npos);
  CHECK_FALSE(ParseL4Proto("").ok());
}

TEST_CASE("five-tuples print with brackets around IPv6 and reverse", "[net]") {
  FiveTuple t{.src = Ip("10.0.0.1"), .dst = Ip("10.96.0.1"), .sport = 1234, .dport = 80,
              .proto = L4Proto::kTCP};
  CHECK(t.ToString() == "TCP 10.0.0.1:1234 -> 10.96.0.1:80");
  CHECK(t.Reversed().ToString() == "TCP 10.96.0.1:80 -> 10.0.0.1:1234");
  CHECK(t.Reversed().Reversed() == t);
  FiveTuple u{.src = Ip("fd00::1"), .dst = Ip("fd00::2"), .sport = 53, .dport = 5353,
              .proto = L4Proto::kUDP};
  CHECK(u.ToString() == "UDP [fd00::1]:53 -> [fd00::2]:5353");
  FiveTuple gre = t;
  gre.proto = static_cast<L4Proto>(47);
  CHECK(gre.ToString() == "proto 47 10.0.0.1:1234 -> 10.96.0.1:80");
  absl::flat_hash_set<FiveTuple> set = {t, t.Reversed(), t};
  CHECK(set.size() == 2);
}

}  // namespace
}  // namespace dpv2
