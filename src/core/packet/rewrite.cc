// In-place address and port translation with incremental checksum updates.
//
// Every checksum that covers a changed 16-bit word is updated with RFC 1624
// equation 3, which gives the same field as a full recomputation; SCTP's
// CRC32c cannot be updated that way and is recomputed over the SCTP packet.
// The BPF backend applies the same updates in the same order, so the bytes
// agree across backends.
#include <cstring>

#include "core/packet/rewrite.h"
#include "core/packet/wire.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

using wire::Load16;
using wire::Store16;

// The frame and `pkt` must agree: the IP packet lies inside the frame.
bool Consistent(absl::Span<uint8_t> frame, const ParsedPacket& pkt, Family family) {
  return family == pkt.family && pkt.l3_len > 0 && pkt.l3_offset + pkt.l3_len <= frame.size() &&
         pkt.l4_offset <= pkt.l3_offset + pkt.l3_len;
}
bool Consistent(absl::Span<uint8_t> frame, const ParsedPacket& pkt, const IpAddr& addr) {
  return Consistent(frame, pkt, addr.family());
}

bool HasL4Header(const ParsedPacket& pkt) { return !pkt.is_fragment || pkt.is_first_fragment; }

// Replaces `len` bytes at `p` with `bytes`, folding the change into every
// checksum in `csums` (nullptr entries are skipped).
void ReplaceAndUpdate(uint8_t* p, const uint8_t* bytes, size_t len,
                      std::initializer_list<uint16_t*> csums) {
  for (uint16_t* c : csums) {
    if (c != nullptr) {
      *c = ChecksumReplaceBytes(*c, absl::MakeConstSpan(p, len), absl::MakeConstSpan(bytes, len));
    }
  }
  std::memmove(p, bytes, len);
}

// The change of replacing `len` bytes (even) at `old` by `neu`, as a one's
// complement sum of 16-bit words: the same for every checksum covering them
// (IPv4 header and L4 pseudo-header), so computed once. At most 16 words,
// no overflow.
inline uint32_t ReplacementDelta(const uint8_t* old, const uint8_t* neu, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += static_cast<uint16_t>(~Load16(old + i));
    sum += Load16(neu + i);
  }
  return sum;
}

// RFC 1624 eqn. 3 with the change summed beforehand: equal to
// ChecksumReplaceBytes over the same bytes.
uint16_t ApplyDelta(uint16_t csum, uint32_t delta) {
  return static_cast<uint16_t>(~wire::Fold16(static_cast<uint16_t>(~csum) + delta));
}

void RecomputeSctpCrc(uint8_t* f, size_t l4, size_t end) {
  uint8_t* csum = f + l4 + wire::kSctpCsumOffset;
  std::memset(csum, 0, 4);
  wire::StoreLe32(csum, Crc32c(absl::MakeConstSpan(f + l4, end - l4)));
}

// RewriteOuter for an unfragmented IPv4 TCP or UDP packet (the frames
// ParseCommonFrame takes, most of the traffic): the same updates in the same
// order, at offsets known without the protocol dispatch. The arithmetic runs
// on words as they lie in memory, not in network order: a one's complement
// sum commutes with swapping the bytes of every word (RFC 1071 2(B)), so the
// stored checksums are the same bytes, for a few word loads instead of
// assembling each 16-bit word from two bytes.
void RewriteIPv4TcpUdp(uint8_t* f, const ParsedPacket& pkt, bool source, const uint8_t* addr,
                       uint16_t port) {
  const size_t l3 = pkt.l3_offset;
  const size_t l4 = pkt.l4_offset;
  const bool udp = pkt.proto == DPV2_PROTO_UDP;
  uint8_t* const ip_addr = f + l3 + (source ? wire::kIPv4SrcOffset : wire::kIPv4DstOffset);
  uint8_t* const ip_csum = f + l3 + wire::kIPv4CsumOffset;
  uint8_t* const l4_port = f + l4 + (source ? 0 : 2);
  uint8_t* const l4_csum = f + l4 + (udp ? wire::kUdpCsumOffset : wire::kTcpCsumOffset);
  uint32_t old_addr;
  uint32_t new_addr;
  std::memcpy(&old_addr, ip_addr, 4);
  std::memcpy(&new_addr, addr, 4);
  const uint32_t delta =
      (~old_addr & 0xffff) + (~old_addr >> 16) + (new_addr & 0xffff) + (new_addr >> 16);
  uint16_t ip_sum;
  std::memcpy(&ip_sum, ip_csum, 2);
  ip_sum = ApplyDelta(ip_sum, delta);
  std::memcpy(ip_csum, &ip_sum, 2);
  std::memcpy(ip_addr, addr, 4);
  uint16_t old_port;
  std::memcpy(&old_port, l4_port, 2);
  const uint16_t new_port = static_cast<uint16_t>(port << 8 | port >> 8);  // network order
  uint16_t csum;
  std::memcpy(&csum, l4_csum, 2);
  if (udp && csum == 0) {
    std::memcpy(l4_port, &new_port, 2);  // RFC 768: no checksum over IPv4, and none after
    return;
  }
  csum = ApplyDelta(csum, delta);
  if (old_port != new_port) {
    csum = wire::Replace16(csum, old_port, new_port);
    std::memcpy(l4_port, &new_port, 2);
  }
  if (udp && csum == 0) {
    csum = 0xffff;  // RFC 768: a computed 0 is sent as all ones
  }
  std::memcpy(l4_csum, &csum, 2);
}

// `addr` holds 4 (IPv4) or 16 bytes, of pkt.family (checked by the callers).
void RewriteOuter(absl::Span<uint8_t> frame, const ParsedPacket& pkt, bool source,
                  const uint8_t* addr, uint16_t port) {
  uint8_t* f = frame.data();
  bool v6 = pkt.family == Family::kV6;
  if (!v6 && !pkt.is_fragment &&
      (pkt.proto == DPV2_PROTO_TCP || pkt.proto == DPV2_PROTO_UDP)) {
    RewriteIPv4TcpUdp(f, pkt, source, addr, port);
    return;
  }
  size_t l3 = pkt.l3_offset;
  size_t end = l3 + pkt.l3_len;
  size_t l4 = pkt.l4_offset;
  size_t addr_off =
      l3 + (v6 ? (source ? wire::kIPv6SrcOffset : wire::kIPv6DstOffset)
               : (source ? wire::kIPv4SrcOffset : wire::kIPv4DstOffset));
  size_t port_off = l4 + (source ? 0 : 2);

  // The L4 checksum field, if this packet has one that covers the address
  // (pseudo-header) or the port.
  uint16_t l4_csum = 0;
  size_t l4_csum_off = 0;
  bool pseudo = false;      // covers the addresses
  bool has_ports = false;   // TCP/UDP/SCTP
  bool echo_id = false;     // ICMP echo identifier stands for the port
  bool udp_zero = false;
  bool sctp = false;
  if (HasL4Header(pkt)) {
    switch (pkt.proto) {
      case DPV2_PROTO_TCP:
        l4_csum_off = l4 + wire::kTcpCsumOffset;
        pseudo = has_ports = true;
        break;
      case DPV2_PROTO_UDP:
        l4_csum_off = l4 + wire::kUdpCsumOffset;
        pseudo = has_ports = true;
        // RFC 768: over IPv4 a zero checksum means "none" and stays so.
        udp_zero = !v6 && Load16(f + l4_csum_off) == 0;
        break;
      case DPV2_PROTO_SCTP:
        has_ports = sctp = true;
        break;
      case DPV2_PROTO_ICMP:
      case DPV2_PROTO_ICMPV6:
        if ((pkt.proto == DPV2_PROTO_ICMPV6) == v6 && end - l4 >= wire::kIcmpHeaderLen) {
          l4_csum_off = l4 + wire::kIcmpCsumOffset;
          pseudo = v6;
          echo_id = wire::IsIcmpEcho(v6, f[l4]);
        }
        break;
      default:
        break;
    }
  }
  bool use_csum = l4_csum_off != 0 && !udp_zero;
  if (use_csum) {
    l4_csum = Load16(f + l4_csum_off);
  }

  // Address: IPv4 header checksum and, through the pseudo-header, L4.
  // Constant lengths in each branch, so that the sum and the copy unroll.
  const uint32_t delta =
      v6 ? ReplacementDelta(f + addr_off, addr, 16) : ReplacementDelta(f + addr_off, addr, 4);
  if (!v6) {
    Store16(f + l3 + wire::kIPv4CsumOffset,
            ApplyDelta(Load16(f + l3 + wire::kIPv4CsumOffset), delta));
  }
  if (use_csum && pseudo) {
    l4_csum = ApplyDelta(l4_csum, delta);
  }
  if (v6) {
    std::memcpy(f + addr_off, addr, 16);
  } else {
    std::memcpy(f + addr_off, addr, 4);
  }

  // Port or echo identifier.
  if (has_ports || echo_id) {
    size_t off = echo_id ? l4 + 4 : port_off;
    uint16_t old_port = Load16(f + off);
    if (old_port != port) {
      if (use_csum) {
        l4_csum = wire::Replace16(l4_csum, old_port, port);
      }
      Store16(f + off, port);
    }
  }
  if (use_csum) {
    if (pkt.proto == DPV2_PROTO_UDP && l4_csum == 0) {
      l4_csum = 0xffff;  // RFC 768: a computed 0 is sent as all ones
    }
    Store16(f + l4_csum_off, l4_csum);
  }
  // SCTP's CRC covers the whole SCTP packet; a first fragment does not hold
  // it, so only an unfragmented packet gets a new CRC.
  if (sctp && !pkt.is_fragment) {
    RecomputeSctpCrc(f, l4, end);
  }
}

void RewriteInner(absl::Span<uint8_t> frame, const ParsedPacket& pkt, bool source,
                  const IpAddr& addr, uint16_t port) {
  if (!pkt.has_inner || !Consistent(frame, pkt, addr)) {
    return;
  }
  uint8_t* f = frame.data();
  bool v6 = pkt.family == Family::kV6;
  size_t end = pkt.l3_offset + pkt.l3_len;  // end of the ICMP message
  size_t il3 = pkt.inner_l3_offset;
  size_t il4 = pkt.inner_l4_offset;
  if (il3 >= end || il4 > end) {
    return;
  }
  size_t outer_csum_off = pkt.l4_offset + wire::kIcmpCsumOffset;
  uint16_t outer = Load16(f + outer_csum_off);

  // Inner address and IPv4 header checksum. Each changed word of the quote
  // is also a changed word of the outer ICMP message.
  size_t addr_off = il3 + (v6 ? (source ? wire::kIPv6SrcOffset : wire::kIPv6DstOffset)
                              : (source ? wire::kIPv4SrcOffset : wire::kIPv4DstOffset));
  // Inner L4 checksum, if the quote holds it.
  size_t icsum_off = 0;
  bool inner_pseudo = false;
  bool inner_ports = false;
  bool inner_echo = false;
  size_t avail = end - il4;
  switch (pkt.inner_proto) {
    case DPV2_PROTO_TCP:
      inner_ports = avail >= 4;
      if (avail >= wire::kTcpCsumOffset + 2) {
        icsum_off = il4 + wire::kTcpCsumOffset;
        inner_pseudo = true;
      }
      break;
    case DPV2_PROTO_UDP:
      inner_ports = avail >= 4;
      if (avail >= wire::kUdpCsumOffset + 2 &&
          (v6 || Load16(f + il4 + wire::kUdpCsumOffset) != 0)) {
        icsum_off = il4 + wire::kUdpCsumOffset;
        inner_pseudo = true;
      }
      break;
    case DPV2_PROTO_SCTP:
      inner_ports = avail >= 4;  // the quote cannot hold the CRC's coverage
      break;
    case DPV2_PROTO_ICMP:
    case DPV2_PROTO_ICMPV6:
      if ((pkt.inner_proto == DPV2_PROTO_ICMPV6) == v6 && avail >= wire::kIcmpHeaderLen &&
          wire::IsIcmpEcho(v6, f[il4])) {
        inner_echo = true;
        icsum_off = il4 + wire::kIcmpCsumOffset;
        inner_pseudo = v6;
      }
      break;
    default:
      break;
  }
  // A non-first inner fragment has no L4 header in the quote.
  if (!pkt.inner_has_l4) {
    inner_ports = inner_echo = inner_pseudo = false;
    icsum_off = 0;
  }
  uint16_t icsum = icsum_off != 0 ? Load16(f + icsum_off) : 0;
  uint16_t old_icsum = icsum;

  if (!v6) {
    size_t ip_csum_off = il3 + wire::kIPv4CsumOffset;
    uint16_t ip_csum = Load16(f + ip_csum_off);
    uint16_t new_ip_csum =
        ChecksumReplaceBytes(ip_csum, absl::MakeConstSpan(f + addr_off, 4),
                             absl::MakeConstSpan(addr.bytes().data(), 4));
    outer = ChecksumReplace16(outer, ip_csum, new_ip_csum);
    Store16(f + ip_csum_off, new_ip_csum);
  }
  ReplaceAndUpdate(f + addr_off, addr.bytes().data(), addr.size(),
                   {&outer, inner_pseudo ? &icsum : nullptr});

  if (inner_ports || inner_echo) {
    size_t off = inner_echo ? il4 + 4 : il4 + (source ? 0 : 2);
    uint16_t old_port = Load16(f + off);
    if (old_port != port) {
      outer = ChecksumReplace16(outer, old_port, port);
      if (icsum_off != 0) {
        icsum = ChecksumReplace16(icsum, old_port, port);
      }
      Store16(f + off, port);
    }
  }
  if (icsum_off != 0) {
    if (pkt.inner_proto == DPV2_PROTO_UDP && icsum == 0) {
      icsum = 0xffff;
    }
    outer = ChecksumReplace16(outer, old_icsum, icsum);
    Store16(f + icsum_off, icsum);
  }
  Store16(f + outer_csum_off, outer);
}

}  // namespace

void RewriteSource(absl::Span<uint8_t> frame, const ParsedPacket& pkt, const IpAddr& addr,
                   uint16_t port) {
  if (Consistent(frame, pkt, addr)) {
    RewriteOuter(frame, pkt, /*source=*/true, addr.bytes().data(), port);
  }
}

void RewriteDestination(absl::Span<uint8_t> frame, const ParsedPacket& pkt, const IpAddr& addr,
                        uint16_t port) {
  if (Consistent(frame, pkt, addr)) {
    RewriteOuter(frame, pkt, /*source=*/false, addr.bytes().data(), port);
  }
}

void RewriteSourceAbi(absl::Span<uint8_t> frame, const ParsedPacket& pkt, const dpv2_addr& addr,
                      uint16_t port) {
  if (Consistent(frame, pkt, pkt.family)) {
    RewriteOuter(frame, pkt, /*source=*/true, addr.b, port);
  }
}

void RewriteDestinationAbi(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                           const dpv2_addr& addr, uint16_t port) {
  if (Consistent(frame, pkt, pkt.family)) {
    RewriteOuter(frame, pkt, /*source=*/false, addr.b, port);
  }
}

void RewriteInnerSource(absl::Span<uint8_t> frame, const ParsedPacket& pkt, const IpAddr& addr,
                        uint16_t port) {
  RewriteInner(frame, pkt, /*source=*/true, addr, port);
}

void RewriteInnerDestination(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                             const IpAddr& addr, uint16_t port) {
  RewriteInner(frame, pkt, /*source=*/false, addr, port);
}

void SetEthernet(absl::Span<uint8_t> frame, const uint8_t dst[6], const uint8_t src[6]) {
  if (frame.size() < 12) {
    return;
  }
  std::memcpy(frame.data(), dst, 6);
  std::memcpy(frame.data() + 6, src, 6);
}

void SetEthernet(absl::Span<uint8_t> frame, const MacAddr& dst, const MacAddr& src) {
  SetEthernet(frame, dst.data(), src.data());
}

}  // namespace dpv2
