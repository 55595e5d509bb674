// ParsePacket: Ethernet, 802.1Q, IPv4, IPv6 extension headers, L4 and the
// packet an ICMP error quotes.
//
// Every read is preceded by a length check against the frame or, past the IP
// header, against the end of the IP packet (l3_offset + l3_len), so a packet
// never lends bytes from its Ethernet padding to its L4 header. The order of
// the checks is the contract the BPF parser follows (see dpv2/packet.h).
#include <cstring>

#include "core/packet/parse.h"

#include "core/packet/wire.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

using wire::Load16;
using wire::Load32;

constexpr uint16_t kEtherTypeQinQ = 0x88a8;

// Whether next-header `nh` is an IPv6 extension header with the generic
// layout (next header, length in 8-octet units not counting the first).
bool IsGenericExtHeader(uint8_t nh) {
  return nh == kIPv6HopByHop || nh == kIPv6Routing || nh == kIPv6DestOptions ||
         nh == 135 /* mobility */ || nh == 139 /* HIP */ || nh == 140 /* shim6 */;
}

struct ExtWalk {
  uint8_t proto = 0;
  size_t l4_offset = 0;
  bool is_fragment = false;
  bool first_fragment = false;
  bool non_first_fragment = false;
};

// Walks the extension headers of the IPv6 header at `off` up to `end`.
// Returns NONE or the drop reason; `walk` tells where L4 starts.
dpv2_drop_reason WalkIPv6(const uint8_t* f, size_t off, size_t end, ExtWalk* walk) {
  uint8_t nh = f[off + 6];
  size_t cur = off + wire::kIPv6HeaderLen;
  for (int count = 0;; ++count) {
    bool generic = IsGenericExtHeader(nh);
    if (!generic && nh != kIPv6Fragment && nh != kIPv6Auth) {
      break;
    }
    if (count >= kMaxIPv6ExtHeaders) {
      return DPV2_DROP_BAD_EXT_HEADER;
    }
    if (nh == kIPv6HopByHop && count != 0) {
      return DPV2_DROP_BAD_EXT_HEADER;  // RFC 8200 4.1: only right after the header
    }
    // Where the walk stopped, for a caller that accepts a cut chain.
    walk->proto = nh;
    walk->l4_offset = cur;
    if (end - cur < 8) {
      return DPV2_DROP_TRUNCATED;
    }
    size_t len;
    if (nh == kIPv6Fragment) {
      len = 8;
      uint16_t off_flags = Load16(f + cur + 2);
      uint16_t frag_offset = off_flags & 0xfff8;
      bool more = (off_flags & 1) != 0;
      if (frag_offset != 0 || more) {
        walk->is_fragment = true;
        walk->first_fragment = frag_offset == 0;
      }
      if (frag_offset != 0) {
        walk->non_first_fragment = true;
        walk->proto = f[cur];
        walk->l4_offset = cur + len;
        return DPV2_DROP_NONE;
      }
    } else if (nh == kIPv6Auth) {
      len = (static_cast<size_t>(f[cur + 1]) + 2) * 4;  // RFC 4302: 4-octet units
    } else {
      len = (static_cast<size_t>(f[cur + 1]) + 1) * 8;
    }
    if (end - cur < len) {
      return DPV2_DROP_TRUNCATED;
    }
    nh = f[cur];
    cur += len;
  }
  walk->proto = nh;
  walk->l4_offset = cur;
  return DPV2_DROP_NONE;
}

// IPv4 options (RFC 791): EOL ends the list, NOP is one byte, every other
// option has a length byte >= 2 that stays inside the header.
bool IPv4OptionsValid(const uint8_t* f, size_t start, size_t end) {
  size_t i = start;
  while (i < end) {
    uint8_t type = f[i];
    if (type == 0) {
      return true;
    }
    if (type == 1) {
      ++i;
      continue;
    }
    if (end - i < 2) {
      return false;
    }
    uint8_t len = f[i + 1];
    if (len < 2 || len > end - i) {
      return false;
    }
    i += len;
  }
  return true;
}

void FillPorts(const uint8_t* f, size_t l4, uint8_t proto, bool v6, uint16_t* sport,
               uint16_t* dport) {
  switch (proto) {
    case DPV2_PROTO_TCP:
    case DPV2_PROTO_UDP:
    case DPV2_PROTO_SCTP:
      *sport = Load16(f + l4);
      *dport = Load16(f + l4 + 2);
      return;
    case DPV2_PROTO_ICMP:
    case DPV2_PROTO_ICMPV6:
      if ((proto == DPV2_PROTO_ICMPV6) == v6 && wire::IsIcmpEcho(v6, f[l4])) {
        *sport = *dport = Load16(f + l4 + 4);
      }
      return;
    default:
      return;
  }
}

// The quoted packet of an ICMP error, from `off` to `end` (it is cut short
// by design, so its own length fields are not checked against `end`). Its IP
// header must be whole; its L4 header may be missing.
dpv2_drop_reason ParseInner(const uint8_t* f, size_t off, size_t end, ParsedPacket* p) {
  bool v6 = p->family == Family::kV6;
  size_t avail = end - off;
  size_t l4;
  uint8_t proto;
  bool non_first_fragment = false;
  if (!v6) {
    if (avail < wire::kIPv4MinHeaderLen || (f[off] >> 4) != 4) {
      return DPV2_DROP_BAD_ICMP;
    }
    size_t hl = static_cast<size_t>(f[off] & 0xf) * 4;
    if (hl < wire::kIPv4MinHeaderLen || hl > avail) {
      return DPV2_DROP_BAD_ICMP;
    }
    proto = f[off + 9];
    non_first_fragment = (Load16(f + off + 6) & 0x1fff) != 0;
    l4 = off + hl;
    p->inner_src = IpAddr::V4Bytes(f + off + wire::kIPv4SrcOffset);
    p->inner_dst = IpAddr::V4Bytes(f + off + wire::kIPv4DstOffset);
  } else {
    if (avail < wire::kIPv6HeaderLen || (f[off] >> 4) != 6) {
      return DPV2_DROP_BAD_ICMP;
    }
    ExtWalk walk;
    dpv2_drop_reason drop = WalkIPv6(f, off, end, &walk);
    if (drop != DPV2_DROP_NONE && drop != DPV2_DROP_TRUNCATED) {
      return DPV2_DROP_BAD_ICMP;
    }
    proto = walk.proto;
    l4 = walk.l4_offset;
    // A quote cut inside the extension headers has no L4 header.
    non_first_fragment = walk.non_first_fragment || drop == DPV2_DROP_TRUNCATED;
    p->inner_src = IpAddr::V6Bytes(f + off + wire::kIPv6SrcOffset);
    p->inner_dst = IpAddr::V6Bytes(f + off + wire::kIPv6DstOffset);
  }
  p->inner_l3_offset = off;
  p->inner_l4_offset = l4;
  p->inner_proto = proto;
  // RFC 792 asks for 64 bits of L4, but a shorter quote still names the
  // flow's addresses; without the ports the datapath matches no NAT entry.
  if (!non_first_fragment && end - l4 >= 8) {
    FillPorts(f, l4, proto, v6, &p->inner_sport, &p->inner_dport);
    p->inner_has_l4 = true;
  }
  p->has_inner = true;
  return DPV2_DROP_NONE;
}

// L4 from `l4` to the end of the IP packet `end`. `fragmented`: the packet is
// a first fragment, so UDP's length covers more than this packet.
dpv2_drop_reason ParseL4(const uint8_t* f, size_t l4, size_t end, bool fragmented,
                         ParsedPacket* p) {
  bool v6 = p->family == Family::kV6;
  size_t avail = end - l4;
  p->l4_offset = l4;
  switch (p->proto) {
    case DPV2_PROTO_TCP: {
      if (avail < wire::kTcpMinHeaderLen) {
        return DPV2_DROP_TRUNCATED;
      }
      size_t hl = static_cast<size_t>(f[l4 + 12] >> 4) * 4;
      if (hl < wire::kTcpMinHeaderLen || hl > avail) {
        return DPV2_DROP_BAD_L4_HEADER;
      }
      p->sport = Load16(f + l4);
      p->dport = Load16(f + l4 + 2);
      p->tcp_seq = Load32(f + l4 + 4);
      p->tcp_ack = Load32(f + l4 + 8);
      p->tcp_flags = f[l4 + 13];
      p->payload_offset = l4 + hl;
      p->payload_len = static_cast<uint16_t>(avail - hl);
      return DPV2_DROP_NONE;
    }
    case DPV2_PROTO_UDP: {
      if (avail < wire::kUdpHeaderLen) {
        return DPV2_DROP_TRUNCATED;
      }
      uint16_t ulen = Load16(f + l4 + 4);
      if (ulen < wire::kUdpHeaderLen || (!fragmented && ulen > avail)) {
        return DPV2_DROP_BAD_L4_HEADER;
      }
      p->sport = Load16(f + l4);
      p->dport = Load16(f + l4 + 2);
      p->payload_offset = l4 + wire::kUdpHeaderLen;
      p->payload_len = static_cast<uint16_t>(fragmented ? avail - wire::kUdpHeaderLen
                                                        : ulen - wire::kUdpHeaderLen);
      return DPV2_DROP_NONE;
    }
    case DPV2_PROTO_SCTP: {
      if (avail < wire::kSctpCommonHeaderLen) {
        return DPV2_DROP_TRUNCATED;
      }
      p->sport = Load16(f + l4);
      p->dport = Load16(f + l4 + 2);
      p->sctp_vtag = Load32(f + l4 + 4);
      if (avail >= wire::kSctpCommonHeaderLen + 4) {
        p->sctp_first_chunk = f[l4 + wire::kSctpCommonHeaderLen];
      }
      p->payload_offset = l4 + wire::kSctpCommonHeaderLen;
      p->payload_len = static_cast<uint16_t>(avail - wire::kSctpCommonHeaderLen);
      return DPV2_DROP_NONE;
    }
    case DPV2_PROTO_ICMP:
    case DPV2_PROTO_ICMPV6: {
      if ((p->proto == DPV2_PROTO_ICMPV6) != v6) {
        break;  // ICMP in IPv6 or ICMPv6 in IPv4: an unknown protocol there
      }
      if (avail < wire::kIcmpHeaderLen) {
        return DPV2_DROP_TRUNCATED;
      }
      p->icmp_type = f[l4];
      p->icmp_code = f[l4 + 1];
      p->payload_offset = l4 + wire::kIcmpHeaderLen;
      p->payload_len = static_cast<uint16_t>(avail - wire::kIcmpHeaderLen);
      if (wire::IsIcmpEcho(v6, p->icmp_type)) {
        p->sport = p->dport = Load16(f + l4 + 4);
      } else if (wire::IsIcmpError(v6, p->icmp_type)) {
        p->is_icmp_error = true;
        return ParseInner(f, l4 + wire::kIcmpHeaderLen, end, p);
      }
      return DPV2_DROP_NONE;
    }
    default:
      break;
  }
  p->payload_offset = l4;
  p->payload_len = static_cast<uint16_t>(avail);
  return DPV2_DROP_NONE;
}

dpv2_drop_reason ParseIPv4(const uint8_t* f, size_t n, size_t off, ParsedPacket* p) {
  if (n - off < wire::kIPv4MinHeaderLen) {
    return DPV2_DROP_TRUNCATED;
  }
  if ((f[off] >> 4) != 4) {
    return DPV2_DROP_BAD_IP_VERSION;
  }
  size_t hl = static_cast<size_t>(f[off] & 0xf) * 4;
  if (hl < wire::kIPv4MinHeaderLen) {
    return DPV2_DROP_BAD_IP_HEADER;
  }
  if (n - off < hl) {
    return DPV2_DROP_TRUNCATED;
  }
  uint16_t total = Load16(f + off + 2);
  if (total < hl) {
    return DPV2_DROP_BAD_IP_LENGTH;
  }
  if (total > n - off) {
    return DPV2_DROP_TRUNCATED;
  }
  if (!IPv4OptionsValid(f, off + wire::kIPv4MinHeaderLen, off + hl)) {
    return DPV2_DROP_BAD_IP_HEADER;
  }
  p->family = Family::kV4;
  p->src = IpAddr::V4Bytes(f + off + wire::kIPv4SrcOffset);
  p->dst = IpAddr::V4Bytes(f + off + wire::kIPv4DstOffset);
  p->ttl = f[off + 8];
  p->proto = f[off + 9];
  p->l3_len = total;
  uint16_t frag = Load16(f + off + 6);
  bool more = (frag & 0x2000) != 0;
  uint16_t frag_offset = frag & 0x1fff;
  p->is_fragment = more || frag_offset != 0;
  p->is_first_fragment = p->is_fragment && frag_offset == 0;
  size_t l4 = off + hl;
  size_t end = off + total;
  if (frag_offset != 0) {
    p->l4_offset = p->payload_offset = l4;
    p->payload_len = static_cast<uint16_t>(end - l4);
    return DPV2_DROP_NONE;
  }
  return ParseL4(f, l4, end, p->is_fragment, p);
}

dpv2_drop_reason ParseIPv6(const uint8_t* f, size_t n, size_t off, ParsedPacket* p) {
  if (n - off < wire::kIPv6HeaderLen) {
    return DPV2_DROP_TRUNCATED;
  }
  if ((f[off] >> 4) != 6) {
    return DPV2_DROP_BAD_IP_VERSION;
  }
  size_t payload = Load16(f + off + 4);
  if (wire::kIPv6HeaderLen + payload > n - off) {
    return DPV2_DROP_TRUNCATED;
  }
  // A zero payload length with hop-by-hop options announces a jumbogram
  // (RFC 2675); l3_len cannot express one.
  if ((payload == 0 && f[off + 6] == kIPv6HopByHop) ||
      wire::kIPv6HeaderLen + payload > 0xffff) {
    return DPV2_DROP_BAD_IP_LENGTH;
  }
  p->family = Family::kV6;
  p->src = IpAddr::V6Bytes(f + off + wire::kIPv6SrcOffset);
  p->dst = IpAddr::V6Bytes(f + off + wire::kIPv6DstOffset);
  p->ttl = f[off + 7];
  p->l3_len = static_cast<uint16_t>(wire::kIPv6HeaderLen + payload);
  size_t end = off + p->l3_len;
  ExtWalk walk;
  dpv2_drop_reason drop = WalkIPv6(f, off, end, &walk);
  p->proto = walk.proto;
  if (drop != DPV2_DROP_NONE) {
    return drop;
  }
  p->is_fragment = walk.is_fragment;
  p->is_first_fragment = walk.first_fragment;
  if (walk.non_first_fragment || walk.proto == kIPv6NoNext) {
    p->l4_offset = p->payload_offset = walk.l4_offset;
    p->payload_len = static_cast<uint16_t>(end - walk.l4_offset);
    return DPV2_DROP_NONE;
  }
  return ParseL4(f, walk.l4_offset, end, walk.is_fragment, p);
}

}  // namespace

FiveTuple ParsedPacket::tuple() const {
  return FiveTuple{.src = src, .dst = dst, .sport = sport, .dport = dport,
                   .proto = static_cast<L4Proto>(proto)};
}

FiveTuple ParsedPacket::inner_tuple() const {
  return FiveTuple{.src = inner_src, .dst = inner_dst, .sport = inner_sport,
                   .dport = inner_dport, .proto = static_cast<L4Proto>(inner_proto)};
}

bool ParseCommonFrame(absl::Span<const uint8_t> frame, ParseResult* out) {
  constexpr size_t kL3 = kEthHeaderLen;
  constexpr size_t kL4 = kL3 + wire::kIPv4MinHeaderLen;
  const uint8_t* f = frame.data();
  const size_t n = frame.size();
  // Untagged IPv4, version 4 and IHL 5 (no options), the whole IP packet in
  // the frame, neither MF nor a fragment offset (DF may be set).
  if (n < kL4 + wire::kUdpHeaderLen || Load16(f + 12) != kEtherTypeIPv4 || f[kL3] != 0x45) {
    return false;
  }
  const uint16_t total = Load16(f + kL3 + 2);
  if (total < wire::kIPv4MinHeaderLen || total > n - kL3 || (Load16(f + kL3 + 6) & 0x3fff) != 0) {
    return false;
  }
  const size_t avail = total - wire::kIPv4MinHeaderLen;
  const uint8_t proto = f[kL3 + 9];
  // The L4 header whole and its length fields consistent; anything else
  // (a drop, or another protocol) is the general parser's.
  size_t l4_len;
  size_t payload_len;
  if (proto == DPV2_PROTO_TCP) {
    if (avail < wire::kTcpMinHeaderLen) {
      return false;
    }
    l4_len = static_cast<size_t>(f[kL4 + 12] >> 4) * 4;
    if (l4_len < wire::kTcpMinHeaderLen || l4_len > avail) {
      return false;
    }
    payload_len = avail - l4_len;
  } else if (proto == DPV2_PROTO_UDP) {
    const uint16_t ulen = Load16(f + kL4 + 4);
    if (avail < wire::kUdpHeaderLen || ulen < wire::kUdpHeaderLen || ulen > avail) {
      return false;
    }
    l4_len = wire::kUdpHeaderLen;
    payload_len = ulen - wire::kUdpHeaderLen;
  } else {
    return false;
  }
  // Every field assigned, none left from the frame this result held before
  // (a burst reuses it). Not `*out = ParseResult{}` and then the fields
  // read: that zeroing compiled to a rep stosq of the whole result, whose
  // start-up alone cost about what these stores do. A field added to
  // ParsedPacket must be set here too: the size check stops the build.
  static_assert(sizeof(ParsedPacket) == 176, "ParseCommonFrame must set every field");
  const bool tcp = proto == DPV2_PROTO_TCP;
  out->drop = DPV2_DROP_NONE;
  out->is_ip = true;
  ParsedPacket& p = out->pkt;
  p.ethertype = kEtherTypeIPv4;
  p.has_vlan = false;
  p.vlan_id = 0;
  p.l3_offset = kL3;
  p.family = Family::kV4;
  p.src = IpAddr::V4Bytes(f + kL3 + wire::kIPv4SrcOffset);
  p.dst = IpAddr::V4Bytes(f + kL3 + wire::kIPv4DstOffset);
  p.ttl = f[kL3 + 8];
  p.l3_len = total;
  p.proto = proto;
  p.is_fragment = false;
  p.is_first_fragment = false;
  p.l4_offset = kL4;
  p.payload_offset = kL4 + l4_len;
  p.payload_len = static_cast<uint16_t>(payload_len);
  p.sport = Load16(f + kL4);
  p.dport = Load16(f + kL4 + 2);
  p.tcp_flags = tcp ? f[kL4 + 13] : 0;
  p.tcp_seq = tcp ? Load32(f + kL4 + 4) : 0;
  p.tcp_ack = tcp ? Load32(f + kL4 + 8) : 0;
  p.sctp_vtag = 0;
  p.sctp_first_chunk = 0;
  p.icmp_type = 0;
  p.icmp_code = 0;
  p.is_icmp_error = false;
  p.has_inner = false;
  p.inner_l3_offset = 0;
  p.inner_l4_offset = 0;
  p.inner_proto = 0;
  p.inner_src = IpAddr();
  p.inner_dst = IpAddr();
  p.inner_sport = 0;
  p.inner_dport = 0;
  p.inner_has_l4 = false;
  return true;
}

ParseResult ParsePacket(absl::Span<const uint8_t> frame) {
  ParseResult r;
  ParsePacketInto(frame, &r);
  return r;
}

void ParseAnyFrame(absl::Span<const uint8_t> frame, ParseResult* out) {
  *out = ParseResult{};
  ParseResult& r = *out;
  ParsedPacket& p = r.pkt;
  const uint8_t* f = frame.data();
  size_t n = frame.size();
  if (n < kEthHeaderLen) {
    r.drop = DPV2_DROP_TRUNCATED;
    return;
  }
  uint16_t ethertype = Load16(f + 12);
  size_t off = kEthHeaderLen;
  if (ethertype == kEtherTypeQinQ) {
    r.drop = DPV2_DROP_BAD_L2;
    return;
  }
  if (ethertype == kEtherTypeVlan) {
    if (n < kEthHeaderLen + kVlanTagLen) {
      r.drop = DPV2_DROP_TRUNCATED;
      return;
    }
    p.has_vlan = true;
    p.vlan_id = Load16(f + 14) & 0x0fff;
    ethertype = Load16(f + 16);
    off += kVlanTagLen;
    if (ethertype == kEtherTypeVlan || ethertype == kEtherTypeQinQ) {
      r.drop = DPV2_DROP_BAD_L2;
      return;
    }
  }
  p.ethertype = ethertype;
  p.l3_offset = off;
  if (ethertype == kEtherTypeIPv4) {
    r.is_ip = true;
    r.drop = ParseIPv4(f, n, off, &p);
  } else if (ethertype == kEtherTypeIPv6) {
    r.is_ip = true;
    r.drop = ParseIPv6(f, n, off, &p);
  }
}

}  // namespace dpv2
