// Shared bits of the packet tests: address literals and checksum checks.
#ifndef DPV2_TESTS_UNIT_PACKET_PACKET_TEST_UTIL_H_
#define DPV2_TESTS_UNIT_PACKET_PACKET_TEST_UTIL_H_

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "dpv2/packet.h"

namespace dpv2::testing {

inline IpAddr Ip(absl::string_view text) {
  absl::StatusOr<IpAddr> a = IpAddr::Parse(text);
  REQUIRE(a.ok());
  return *a;
}

inline uint16_t Be16(const std::vector<uint8_t>& f, size_t at) {
  return static_cast<uint16_t>(f.at(at) << 8 | f.at(at + 1));
}
inline uint32_t Be32(const std::vector<uint8_t>& f, size_t at) {
  return static_cast<uint32_t>(Be16(f, at)) << 16 | Be16(f, at + 2);
}

// Whether every checksum of a parsed, unfragmented packet verifies: the IPv4
// header, and TCP/UDP/ICMP/ICMPv6 (Internet checksum) or SCTP (CRC32c).
inline bool ChecksumsValid(const std::vector<uint8_t>& f) {
  ParseResult r = ParsePacket(f);
  if (r.drop != DPV2_DROP_NONE || !r.is_ip) return false;
  const ParsedPacket& p = r.pkt;
  absl::Span<const uint8_t> frame(f);
  size_t end = p.l3_offset + p.l3_len;
  if (p.family == Family::kV4 &&
      InternetChecksum(frame.subspan(p.l3_offset, p.l4_offset - p.l3_offset)) != 0) {
    // l4_offset - l3_offset is the header length for IPv4
    return false;
  }
  if (p.is_fragment) return true;
  absl::Span<const uint8_t> l4 = frame.subspan(p.l4_offset, end - p.l4_offset);
  uint32_t pseudo = PseudoHeaderSum(p.src, p.dst, p.proto, static_cast<uint32_t>(l4.size()));
  switch (p.proto) {
    case DPV2_PROTO_TCP:
      return InternetChecksum(l4, pseudo) == 0;
    case DPV2_PROTO_UDP:
      if (p.family == Family::kV4 && l4[6] == 0 && l4[7] == 0) return true;
      return InternetChecksum(l4.subspan(0, Be16(f, p.l4_offset + 4)),
                              PseudoHeaderSum(p.src, p.dst, p.proto, Be16(f, p.l4_offset + 4))) == 0;
    case DPV2_PROTO_ICMP:
      return p.family == Family::kV6 || InternetChecksum(l4) == 0;
    case DPV2_PROTO_ICMPV6:
      return p.family == Family::kV4 || InternetChecksum(l4, pseudo) == 0;
    case DPV2_PROTO_SCTP: {
      std::vector<uint8_t> copy(l4.begin(), l4.end());
      uint32_t have = copy[8] | copy[9] << 8 | copy[10] << 16 | static_cast<uint32_t>(copy[11]) << 24;
      copy[8] = copy[9] = copy[10] = copy[11] = 0;
      return Crc32c(copy) == have;
    }
    default:
      return true;
  }
}

}  // namespace dpv2::testing

#endif  // DPV2_TESTS_UNIT_PACKET_PACKET_TEST_UTIL_H_
