// See packet_fuzz_body.h.
#include "tests/fuzz/packet_fuzz_body.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dpv2/packet.h"

namespace dpv2::fuzz {
namespace {

uint16_t Be16(const std::vector<uint8_t>& f, size_t at) {
  return static_cast<uint16_t>(f[at] << 8 | f[at + 1]);
}

// Whether the checksums of a whole (unfragmented) packet verify. Only the
// ones the rewrites maintain: IPv4 header, TCP, UDP, ICMP, ICMPv6, SCTP.
bool ChecksumsOk(const std::vector<uint8_t>& f, const ParsedPacket& p) {
  absl::Span<const uint8_t> frame(f);
  size_t end = p.l3_offset + p.l3_len;
  if (p.family == Family::kV4) {
    size_t hl = static_cast<size_t>(f[p.l3_offset] & 0xf) * 4;
    if (InternetChecksum(frame.subspan(p.l3_offset, hl)) != 0) return false;
  }
  if (p.is_fragment) return true;
  absl::Span<const uint8_t> l4 = frame.subspan(p.l4_offset, end - p.l4_offset);
  uint32_t pseudo = PseudoHeaderSum(p.src, p.dst, p.proto, static_cast<uint32_t>(l4.size()));
  bool v6 = p.family == Family::kV6;
  switch (p.proto) {
    case DPV2_PROTO_TCP:
      return InternetChecksum(l4, pseudo) == 0;
    case DPV2_PROTO_UDP: {
      if (!v6 && Be16(f, p.l4_offset + 6) == 0) return true;
      uint16_t ulen = Be16(f, p.l4_offset + 4);
      return InternetChecksum(l4.subspan(0, ulen), PseudoHeaderSum(p.src, p.dst, p.proto, ulen)) == 0;
    }
    case DPV2_PROTO_ICMP:
      return v6 || InternetChecksum(l4) == 0;
    case DPV2_PROTO_ICMPV6:
      return !v6 || InternetChecksum(l4, pseudo) == 0;
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

std::string CheckLayout(const ParsedPacket& p, size_t size) {
  size_t end = p.l3_offset + p.l3_len;
  if (p.l3_offset != 14 && p.l3_offset != 18) return "l3_offset not 14 or 18";
  if (end > size) return "IP packet past the frame";
  if (p.l4_offset < p.l3_offset + 20 || p.l4_offset > end) return "l4_offset outside the packet";
  if (p.payload_offset < p.l4_offset || p.payload_offset > end) return "payload_offset outside";
  if (p.payload_offset + p.payload_len > end) return "payload past the packet";
  if (p.has_inner) {
    if (!p.is_icmp_error) return "inner packet without an ICMP error";
    if (p.inner_l3_offset != p.l4_offset + 8) return "inner packet not after the ICMP header";
    if (p.inner_l4_offset > end || p.inner_l4_offset < p.inner_l3_offset + 20) {
      return "inner l4 outside the quote";
    }
    if (p.inner_has_l4 && p.inner_l4_offset + 8 > end) return "inner ports past the quote";
  }
  return "";
}

// An address of `family` and a port derived from the input, so that the
// fuzzer steers them too.
IpAddr DerivedAddr(absl::Span<const uint8_t> data, Family family, uint8_t salt) {
  uint8_t b[16];
  for (size_t i = 0; i < 16; ++i) {
    b[i] = static_cast<uint8_t>((data.empty() ? 0 : data[(i * 7 + salt) % data.size()]) ^ (salt + i));
  }
  return family == Family::kV4 ? IpAddr::V4Bytes(b) : IpAddr::V6Bytes(b);
}

bool HasPorts(const ParsedPacket& p) {
  return (p.proto == DPV2_PROTO_TCP || p.proto == DPV2_PROTO_UDP || p.proto == DPV2_PROTO_SCTP) &&
         (!p.is_fragment || p.is_first_fragment);
}

std::string CheckReply(const std::vector<uint8_t>& reply, const char* what) {
  if (reply.empty()) return "";
  ParseResult r = ParsePacket(reply);
  if (r.drop != DPV2_DROP_NONE || !r.is_ip) return absl::StrCat(what, " does not parse");
  if (!ChecksumsOk(reply, r.pkt)) return absl::StrCat(what, " has a bad checksum");
  return "";
}

}  // namespace

std::string CheckPacketInvariants(absl::Span<const uint8_t> data) {
  // An exactly sized copy, so that a sanitizer sees any read past the frame.
  std::vector<uint8_t> frame(data.begin(), data.end());
  ParseResult r = ParsePacket(frame);
  std::string described = DescribePacket(frame);
  if (described.empty()) return "empty description";
  if (r.drop >= DPV2_DROP_MAX) return "drop reason out of range";
  if (r.drop != DPV2_DROP_NONE || !r.is_ip) return "";
  const ParsedPacket& p = r.pkt;
  if (std::string err = CheckLayout(p, frame.size()); !err.empty()) {
    return absl::StrCat(err, ": ", described);
  }
  bool sums_ok = ChecksumsOk(frame, p);

  uint16_t port = static_cast<uint16_t>(data.size() * 2654435761u >> 7);
  for (int which = 0; which < 4; ++which) {
    if (which >= 2 && !p.has_inner) break;
    std::vector<uint8_t> f = frame;
    IpAddr addr = DerivedAddr(data, p.family, static_cast<uint8_t>(which * 31 + 1));
    switch (which) {
      case 0:
        RewriteSource(absl::MakeSpan(f), p, addr, port);
        break;
      case 1:
        RewriteDestination(absl::MakeSpan(f), p, addr, port);
        break;
      case 2:
        RewriteInnerSource(absl::MakeSpan(f), p, addr, port);
        break;
      case 3:
        RewriteInnerDestination(absl::MakeSpan(f), p, addr, port);
        break;
    }
    ParseResult after = ParsePacket(f);
    std::string label = absl::StrCat("rewrite ", which, " of ", described);
    if (after.drop != DPV2_DROP_NONE) return absl::StrCat(label, ": no longer parses");
    if (which == 0 && after.pkt.src != addr) return absl::StrCat(label, ": source not written");
    if (which == 1 && after.pkt.dst != addr) return absl::StrCat(label, ": destination not written");
    if (which == 2 && after.pkt.inner_src != addr) return absl::StrCat(label, ": inner source");
    if (which == 3 && after.pkt.inner_dst != addr) return absl::StrCat(label, ": inner destination");
    if (which == 0 && HasPorts(p) && after.pkt.sport != port) return absl::StrCat(label, ": sport");
    if (which == 1 && HasPorts(p) && after.pkt.dport != port) return absl::StrCat(label, ": dport");
    if (sums_ok && !ChecksumsOk(f, after.pkt)) {
      return absl::StrCat(label, ": checksums broken -> ", DescribePacket(f));
    }
  }
  if (std::string err = CheckReply(BuildTcpReset(frame, p), "RST"); !err.empty()) {
    return absl::StrCat(err, " for ", described);
  }
  if (p.proto == DPV2_PROTO_TCP && HasPorts(p) && BuildTcpReset(frame, p).empty()) {
    return absl::StrCat("no RST for ", described);
  }
  std::vector<uint8_t> unreachable = BuildPortUnreachable(frame, p);
  if (unreachable.empty()) return absl::StrCat("no port unreachable for ", described);
  // A quote shorter than IP header + 8 (a tiny unknown-protocol packet) is
  // still an error our parser accepts, with no inner ports.
  if (std::string err = CheckReply(unreachable, "port unreachable"); !err.empty()) {
    return absl::StrCat(err, " for ", described, " -> ", DescribePacket(unreachable));
  }
  return "";
}

}  // namespace dpv2::fuzz
