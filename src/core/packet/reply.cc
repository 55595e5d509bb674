// REJECT replies: the TCP RST and the ICMP port unreachable the datapath
// sends back for a frontend without backends (docs/datapath.md).
#include <algorithm>
#include <cstring>

#include "core/packet/wire.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

using wire::Store16;
using wire::Store32;

constexpr uint8_t kReplyTtl = 64;

// Writes Ethernet (addresses swapped, the input's 802.1Q tag kept) and an
// IP header from pkt.dst to pkt.src for `l4_len` bytes of `proto` at the
// start of `out`, zeroing the rest of the reply; returns the offset of L4, 0
// when `out` cannot hold the reply.
size_t WriteHeaders(absl::Span<const uint8_t> frame, const ParsedPacket& pkt, uint8_t proto,
                    size_t l4_len, absl::Span<uint8_t> out) {
  bool v6 = pkt.family == Family::kV6;
  size_t l2 = pkt.l3_offset;  // 14 or 18
  size_t l3_hl = v6 ? wire::kIPv6HeaderLen : wire::kIPv4MinHeaderLen;
  if (out.size() < l2 + l3_hl + l4_len) {
    return 0;
  }
  uint8_t* o = out.data();
  std::memset(o, 0, l2 + l3_hl + l4_len);
  std::memcpy(o, frame.data() + 6, 6);
  std::memcpy(o + 6, frame.data(), 6);
  std::memcpy(o + 12, frame.data() + 12, l2 - 12);  // tag (if any) and ethertype
  uint8_t* ip = o + l2;
  if (!v6) {
    ip[0] = 0x45;
    Store16(ip + 2, static_cast<uint16_t>(l3_hl + l4_len));
    ip[8] = kReplyTtl;
    ip[9] = proto;
    std::memcpy(ip + wire::kIPv4SrcOffset, pkt.dst.bytes().data(), 4);
    std::memcpy(ip + wire::kIPv4DstOffset, pkt.src.bytes().data(), 4);
    Store16(ip + wire::kIPv4CsumOffset, InternetChecksum(absl::MakeConstSpan(ip, l3_hl)));
  } else {
    ip[0] = 0x60;
    Store16(ip + 4, static_cast<uint16_t>(l4_len));
    ip[6] = proto;
    ip[7] = kReplyTtl;
    std::memcpy(ip + wire::kIPv6SrcOffset, pkt.dst.bytes().data(), 16);
    std::memcpy(ip + wire::kIPv6DstOffset, pkt.src.bytes().data(), 16);
  }
  return l2 + l3_hl;
}

bool Usable(absl::Span<const uint8_t> frame, const ParsedPacket& pkt) {
  return pkt.l3_offset >= kEthHeaderLen && pkt.l3_len > 0 &&
         pkt.l3_offset + pkt.l3_len <= frame.size();
}

std::vector<uint8_t> ToVector(absl::Span<const uint8_t> bytes) {
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

}  // namespace

size_t WriteTcpReset(absl::Span<const uint8_t> frame, const ParsedPacket& pkt,
                     absl::Span<uint8_t> out) {
  if (!Usable(frame, pkt) || pkt.proto != DPV2_PROTO_TCP ||
      (pkt.is_fragment && !pkt.is_first_fragment)) {
    return 0;
  }
  size_t l4 = WriteHeaders(frame, pkt, DPV2_PROTO_TCP, wire::kTcpMinHeaderLen, out);
  if (l4 == 0) {
    return 0;
  }
  uint8_t* t = out.data() + l4;
  Store16(t, pkt.dport);
  Store16(t + 2, pkt.sport);
  // RFC 793 "Reset Generation": take the sequence number from the ACK if
  // there is one, else acknowledge everything the segment occupied.
  if ((pkt.tcp_flags & kTcpAck) != 0) {
    Store32(t + 4, pkt.tcp_ack);
    t[13] = kTcpRst;
  } else {
    uint32_t ack = pkt.tcp_seq + pkt.payload_len + ((pkt.tcp_flags & kTcpSyn) ? 1 : 0) +
                   ((pkt.tcp_flags & kTcpFin) ? 1 : 0);
    Store32(t + 8, ack);
    t[13] = kTcpRst | kTcpAck;
  }
  t[12] = 5 << 4;
  uint32_t pseudo = PseudoHeaderSum(pkt.dst, pkt.src, DPV2_PROTO_TCP, wire::kTcpMinHeaderLen);
  Store16(t + wire::kTcpCsumOffset,
          InternetChecksum(absl::MakeConstSpan(t, wire::kTcpMinHeaderLen), pseudo));
  return l4 + wire::kTcpMinHeaderLen;
}

size_t WritePortUnreachable(absl::Span<const uint8_t> frame, const ParsedPacket& pkt,
                            absl::Span<uint8_t> out) {
  if (!Usable(frame, pkt)) {
    return 0;
  }
  bool v6 = pkt.family == Family::kV6;
  size_t l3_hl = v6 ? wire::kIPv6HeaderLen
                    : static_cast<size_t>(frame[pkt.l3_offset] & 0xf) * 4;
  size_t quote = std::min<size_t>(l3_hl + 8, pkt.l3_len);
  uint8_t proto = v6 ? DPV2_PROTO_ICMPV6 : DPV2_PROTO_ICMP;
  size_t icmp_len = wire::kIcmpHeaderLen + quote;
  size_t l4 = WriteHeaders(frame, pkt, proto, icmp_len, out);
  if (l4 == 0) {
    return 0;
  }
  uint8_t* c = out.data() + l4;
  c[0] = v6 ? kIcmp6DestUnreachable : kIcmpDestUnreachable;
  c[1] = v6 ? kIcmp6PortUnreachableCode : kIcmpPortUnreachableCode;
  std::memcpy(c + wire::kIcmpHeaderLen, frame.data() + pkt.l3_offset, quote);
  uint32_t pseudo =
      v6 ? PseudoHeaderSum(pkt.dst, pkt.src, DPV2_PROTO_ICMPV6, static_cast<uint32_t>(icmp_len))
         : 0;
  Store16(c + wire::kIcmpCsumOffset, InternetChecksum(absl::MakeConstSpan(c, icmp_len), pseudo));
  return l4 + icmp_len;
}

std::vector<uint8_t> BuildTcpReset(absl::Span<const uint8_t> frame, const ParsedPacket& pkt) {
  uint8_t out[kMaxRejectReplyLen];
  return ToVector(absl::MakeConstSpan(out, WriteTcpReset(frame, pkt, absl::MakeSpan(out))));
}

std::vector<uint8_t> BuildPortUnreachable(absl::Span<const uint8_t> frame,
                                          const ParsedPacket& pkt) {
  uint8_t out[kMaxRejectReplyLen];
  return ToVector(
      absl::MakeConstSpan(out, WritePortUnreachable(frame, pkt, absl::MakeSpan(out))));
}

}  // namespace dpv2
