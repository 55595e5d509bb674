// DescribePacket: a frame decoded field by field, for test failure messages.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/packet/wire.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

using wire::Load16;

absl::string_view DropLabel(dpv2_drop_reason r) {
  switch (r) {
#define DPV2_X_CASE(name, value, label) \
  case name:                            \
    return label;
    DPV2_DROP_REASONS(DPV2_X_CASE)
#undef DPV2_X_CASE
    default:
      return "unknown";
  }
}

std::string TcpFlags(uint8_t flags) {
  static constexpr char kNames[] = "FSRPAUEC";
  std::string s;
  for (int i = 0; i < 8; ++i) {
    if (flags & (1 << i)) s += kNames[i];
  }
  return s.empty() ? "." : s;
}

std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case DPV2_PROTO_TCP:
      return "tcp";
    case DPV2_PROTO_UDP:
      return "udp";
    case DPV2_PROTO_SCTP:
      return "sctp";
    case DPV2_PROTO_ICMP:
      return "icmp";
    case DPV2_PROTO_ICMPV6:
      return "icmpv6";
    default:
      return absl::StrCat("proto ", proto);
  }
}

std::string Hex(absl::Span<const uint8_t> bytes, size_t max) {
  std::string s;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    absl::StrAppendFormat(&s, "%02x", bytes[i]);
  }
  if (bytes.size() > max) s += "...";
  return s;
}

// "csum 0x1234 ok" or "csum 0x1234 bad (want 0x1233)"; `field` is the
// offset of the checksum in `covered`.
std::string CsumText(absl::Span<const uint8_t> covered, size_t field, uint32_t initial) {
  uint16_t have = Load16(covered.data() + field);
  uint16_t residue = InternetChecksum(covered, initial);
  if (residue == 0) {
    return absl::StrFormat("csum 0x%04x ok", have);
  }
  // The value that would have made the residue 0.
  uint16_t want = static_cast<uint16_t>(~ChecksumFold(ChecksumAdd(covered, initial) +
                                             static_cast<uint16_t>(~have)));
  return absl::StrFormat("csum 0x%04x bad (want 0x%04x)", have, want);
}

}  // namespace

std::string DescribePacket(absl::Span<const uint8_t> frame) {
  std::string out;
  if (frame.size() < kEthHeaderLen) {
    return absl::StrCat("frame of ", frame.size(), " bytes: DROP truncated [",
                        Hex(frame, 64), "]");
  }
  MacAddr dst, src;
  std::copy(frame.begin(), frame.begin() + 6, dst.begin());
  std::copy(frame.begin() + 6, frame.begin() + 12, src.begin());
  out = absl::StrCat("eth ", MacToString(src), "->", MacToString(dst));
  ParseResult r = ParsePacket(frame);
  const ParsedPacket& p = r.pkt;
  if (p.has_vlan) {
    absl::StrAppend(&out, " vlan ", p.vlan_id);
  }
  if (r.drop != DPV2_DROP_NONE) {
    absl::StrAppend(&out, "; DROP ", DropLabel(r.drop), " (", frame.size(), " bytes) [",
                    Hex(frame.subspan(std::min(frame.size(), kEthHeaderLen)), 96), "]");
    return out;
  }
  if (!r.is_ip) {
    absl::StrAppendFormat(&out, " type 0x%04x; %d bytes", p.ethertype,
                          frame.size() - p.l3_offset);
    return out;
  }
  const uint8_t* f = frame.data();
  size_t l3 = p.l3_offset;
  size_t end = l3 + p.l3_len;
  bool v6 = p.family == Family::kV6;
  if (!v6) {
    size_t hl = static_cast<size_t>(f[l3] & 0xf) * 4;
    uint16_t frag = Load16(f + l3 + 6);
    absl::StrAppend(&out, "; ipv4 ", p.src.ToString(), "->", p.dst.ToString(), " ttl ", p.ttl,
                    " id ", Load16(f + l3 + 4));
    if (f[l3 + 1] != 0) absl::StrAppend(&out, " tos ", f[l3 + 1]);
    if (frag & 0x4000) out += " df";
    if (p.is_fragment) {
      absl::StrAppend(&out, " frag off ", (frag & 0x1fff) * 8, (frag & 0x2000) ? " mf" : "");
    }
    if (hl > wire::kIPv4MinHeaderLen) absl::StrAppend(&out, " opts ", hl - 20);
    absl::StrAppend(&out, " len ", p.l3_len, " ",
                    CsumText(frame.subspan(l3, hl), wire::kIPv4CsumOffset, 0));
  } else {
    uint32_t first = wire::Load32(f + l3);
    absl::StrAppend(&out, "; ipv6 ", p.src.ToString(), "->", p.dst.ToString(), " hlim ", p.ttl,
                    " plen ", p.l3_len - 40);
    if ((first >> 20 & 0xff) != 0) absl::StrAppend(&out, " tc ", first >> 20 & 0xff);
    if ((first & 0xfffff) != 0) absl::StrAppend(&out, " flow ", first & 0xfffff);
    if (f[l3 + 6] != p.proto || p.is_fragment) {
      absl::StrAppend(&out, " ext ", p.l4_offset - l3 - 40, " bytes");
    }
    if (p.is_fragment) absl::StrAppend(&out, p.is_first_fragment ? " frag first" : " frag");
  }
  size_t l4 = p.l4_offset;
  bool whole = !p.is_fragment;
  if (p.is_fragment && !p.is_first_fragment) {
    absl::StrAppend(&out, "; ", ProtoName(p.proto), " fragment data ", p.payload_len);
    return out;
  }
  absl::Span<const uint8_t> seg = frame.subspan(l4, end - l4);
  uint32_t pseudo = PseudoHeaderSum(p.src, p.dst, p.proto, static_cast<uint32_t>(end - l4));
  switch (p.proto) {
    case DPV2_PROTO_TCP:
      absl::StrAppend(&out, "; tcp ", p.sport, "->", p.dport, " [", TcpFlags(p.tcp_flags),
                      "] seq ", p.tcp_seq, " ack ", p.tcp_ack, " win ", Load16(f + l4 + 14));
      if (p.payload_offset - l4 > 20) absl::StrAppend(&out, " opts ", p.payload_offset - l4 - 20);
      if (whole) absl::StrAppend(&out, " ", CsumText(seg, wire::kTcpCsumOffset, pseudo));
      break;
    case DPV2_PROTO_UDP:
      absl::StrAppend(&out, "; udp ", p.sport, "->", p.dport, " len ", Load16(f + l4 + 4));
      if (!v6 && Load16(f + l4 + 6) == 0) {
        out += " csum none";
      } else if (whole) {
        absl::StrAppend(&out, " ",
                        CsumText(seg.subspan(0, Load16(f + l4 + 4)), wire::kUdpCsumOffset,
                                 PseudoHeaderSum(p.src, p.dst, p.proto, Load16(f + l4 + 4))));
      }
      break;
    case DPV2_PROTO_SCTP: {
      absl::StrAppendFormat(&out, "; sctp %d->%d vtag 0x%08x chunk %d", p.sport, p.dport,
                            p.sctp_vtag, p.sctp_first_chunk);
      if (whole) {
        std::vector<uint8_t> copy(seg.begin(), seg.end());
        uint32_t have = wire::LoadLe32(copy.data() + wire::kSctpCsumOffset);
        std::fill(copy.begin() + 8, copy.begin() + 12, 0);
        uint32_t want = Crc32c(copy);
        absl::StrAppendFormat(&out, " crc 0x%08x %s", have,
                              have == want ? "ok" : absl::StrFormat("bad (want 0x%08x)", want));
      }
      break;
    }
    case DPV2_PROTO_ICMP:
    case DPV2_PROTO_ICMPV6:
      if ((p.proto == DPV2_PROTO_ICMPV6) != v6) {
        absl::StrAppend(&out, "; ", ProtoName(p.proto), " ", seg.size(), " bytes");
        return out;
      }
      absl::StrAppend(&out, "; ", ProtoName(p.proto), " type ", p.icmp_type, " code ",
                      p.icmp_code);
      if (wire::IsIcmpEcho(v6, p.icmp_type)) {
        absl::StrAppend(&out, " id ", p.sport, " seq ", Load16(f + l4 + 6));
      }
      if (whole) absl::StrAppend(&out, " ", CsumText(seg, wire::kIcmpCsumOffset, v6 ? pseudo : 0));
      if (p.has_inner) {
        absl::StrAppend(&out, "; quoting ", v6 ? "ipv6 " : "ipv4 ", p.inner_src.ToString(), "->",
                        p.inner_dst.ToString(), " ", ProtoName(p.inner_proto));
        if (p.inner_has_l4) absl::StrAppend(&out, " ", p.inner_sport, "->", p.inner_dport);
        absl::StrAppend(&out, " (", end - p.inner_l3_offset, " bytes)");
      }
      return out;
    default:
      absl::StrAppend(&out, "; ", ProtoName(p.proto), " ", seg.size(), " bytes");
      return out;
  }
  if (p.payload_len > 0) {
    absl::StrAppend(&out, "; payload ", p.payload_len);
  }
  if (frame.size() > end) {
    absl::StrAppend(&out, "; padding ", frame.size() - end);
  }
  return out;
}

}  // namespace dpv2
