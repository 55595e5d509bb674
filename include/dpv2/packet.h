// dpv2 packets: parsing, in-place rewriting, reply frames and a builder.
//
// ParsePacket decodes an Ethernet frame (one optional 802.1Q tag, IPv4 with
// options, IPv6 with extension headers, TCP, UDP, SCTP, ICMP, ICMPv6 and the
// packet an ICMP error quotes) without ever reading outside the frame; a
// malformed or truncated frame yields a named drop reason. The rewrite
// functions translate addresses and ports in place and update checksums
// incrementally (RFC 1624). BuildTcpReset and BuildPortUnreachable make the
// REJECT replies of docs/datapath.md byte for byte. PacketBuilder describes
// frames for tests and fixtures; DescribePacket prints one field by field.
//
//   std::vector<uint8_t> f = dpv2::PacketBuilder().IPv4("10.0.0.1", "10.96.0.10")
//                                .Tcp(40000, 80, dpv2::kTcpSyn).Build();
//   dpv2::ParseResult r = dpv2::ParsePacket(f);   // r.pkt.tuple(): TCP 10.0.0.1:40000 -> ...
#ifndef DPV2_PACKET_H_
#define DPV2_PACKET_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dpv2/abi/drop.h"
#include "dpv2/checksum.h"
#include "dpv2/net.h"

namespace dpv2 {

// Ethernet.
using MacAddr = std::array<uint8_t, 6>;
absl::StatusOr<MacAddr> ParseMac(absl::string_view text);  // "02:00:00:00:00:01"
std::string MacToString(const MacAddr& mac);

inline constexpr uint16_t kEtherTypeIPv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIPv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kVlanTagLen = 4;

// TCP flags (the low byte of the flags field).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

// IPv6 extension headers ParsePacket walks (at most kMaxIPv6ExtHeaders).
inline constexpr uint8_t kIPv6HopByHop = 0;
inline constexpr uint8_t kIPv6Routing = 43;
inline constexpr uint8_t kIPv6Fragment = 44;
inline constexpr uint8_t kIPv6Auth = 51;
inline constexpr uint8_t kIPv6NoNext = 59;
inline constexpr uint8_t kIPv6DestOptions = 60;
inline constexpr int kMaxIPv6ExtHeaders = 8;

// ICMP types used by the datapath.
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpPortUnreachableCode = 3;
inline constexpr uint8_t kIcmpFragNeededCode = 4;
inline constexpr uint8_t kIcmp6DestUnreachable = 1;
inline constexpr uint8_t kIcmp6PacketTooBig = 2;
inline constexpr uint8_t kIcmp6TimeExceeded = 3;
inline constexpr uint8_t kIcmp6ParamProblem = 4;
inline constexpr uint8_t kIcmp6EchoRequest = 128;
inline constexpr uint8_t kIcmp6EchoReply = 129;
inline constexpr uint8_t kIcmp6PortUnreachableCode = 4;

// A decoded frame. Offsets are into the frame; ports are in host order.
struct ParsedPacket {
  // L2.
  uint16_t ethertype = 0;  // after the VLAN tag, if any
  bool has_vlan = false;
  uint16_t vlan_id = 0;  // 12 bits
  size_t l3_offset = 0;
  // L3.
  Family family = Family::kV4;
  IpAddr src;
  IpAddr dst;
  uint8_t ttl = 0;  // IPv6: hop limit
  // Total IP packet length per its header (IPv6: 40 + payload length).
  // Bytes of the frame after l3_offset + l3_len are Ethernet padding.
  uint16_t l3_len = 0;
  // IANA number; for IPv6 the final next header after extension headers.
  uint8_t proto = 0;
  bool is_fragment = false;        // IPv4 MF or offset, or an IPv6 fragment header
  bool is_first_fragment = false;  // offset 0 with more to come: has the L4 header
  // L4 (for a non-first fragment l4_offset == payload_offset: no L4 header).
  size_t l4_offset = 0;
  size_t payload_offset = 0;
  uint16_t payload_len = 0;  // L4 payload bytes
  // TCP/UDP/SCTP ports; ICMP/ICMPv6 echo request and reply: both are the
  // identifier; other ICMP: 0.
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint8_t tcp_flags = 0;
  uint32_t tcp_seq = 0;
  uint32_t tcp_ack = 0;
  uint32_t sctp_vtag = 0;
  uint8_t sctp_first_chunk = 0;  // the first chunk's type (1 = INIT); 0 if none
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  // Destination unreachable, time exceeded, parameter problem (and v4
  // redirect, source quench; v6 packet too big).
  bool is_icmp_error = false;
  // The packet an ICMP error quotes (same family as the outer packet): its
  // IP header, and when inner_has_l4 the first 8 bytes of its L4 header.
  bool has_inner = false;
  size_t inner_l3_offset = 0;
  size_t inner_l4_offset = 0;
  uint8_t inner_proto = 0;
  IpAddr inner_src;
  IpAddr inner_dst;
  uint16_t inner_sport = 0;
  uint16_t inner_dport = 0;
  // The quote holds the first 8 bytes of the inner L4 header, so the inner
  // ports or echo identifier are meaningful. False for a non-first fragment
  // or a quote cut short (RFC 792 asks for 8 bytes; an IPv6 quote of 48
  // bytes may end inside extension headers); inner ports are then 0.
  bool inner_has_l4 = false;

  FiveTuple tuple() const;        // {src, dst, sport, dport, proto}
  FiveTuple inner_tuple() const;  // of the quoted packet (as it was sent)
};

struct ParseResult {
  // NONE for a well-formed frame, including a non-IP one (is_ip false).
  dpv2_drop_reason drop = DPV2_DROP_NONE;
  bool is_ip = false;
  ParsedPacket pkt;  // filled as far as parsing got
};

// Drop reasons (a BPF parser matches these by doing the checks in the order
// of src/core/packet/parse.cc: L2, IP header, lengths, options/extension
// headers, L4):
//  TRUNCATED: the frame ends before an Ethernet/VLAN/IP header, the IP total
//    length (or 40 + IPv6 payload length) exceeds the frame, or the IP packet
//    ends before a fixed L4 header (TCP 20, UDP 8, SCTP 12, ICMP 8) or an
//    IPv6 extension header.
//  BAD_L2: an 802.1ad (0x88a8) tag or a second 802.1Q tag (stacked VLANs
//    are not supported).
//  BAD_IP_VERSION: the version nibble disagrees with the ethertype.
//  BAD_IP_HEADER: IPv4 IHL < 5, or a malformed IPv4 option (length < 2 or
//    past the header). The IPv4 header checksum is NOT verified.
//  BAD_IP_LENGTH: IPv4 total length < IHL*4; IPv6 payload length 0 with a
//    hop-by-hop header (jumbograms are not supported) or above 65495.
//  BAD_EXT_HEADER: more than kMaxIPv6ExtHeaders, or hop-by-hop not first.
//  BAD_L4_HEADER: TCP data offset < 5 or past the IP packet; UDP length < 8
//    or past the IP packet (unfragmented only).
//  BAD_ICMP: an ICMP error whose quote is not a whole IP header of the
//    outer family (version, IHL >= 5, IHL*4 or 40 bytes present) or has
//    malformed IPv6 extension headers (too many, hop-by-hop not first).
// L4 checksums are not verified. Unknown L4 protocols parse with ports 0.
// Fragments are recognised, not dropped: the datapath decides (FRAGMENT).
// IPv6 extension headers walked: hop-by-hop, routing, fragment, destination
// options, AH, mobility, HIP, shim6; ESP or anything else ends the walk.
ParseResult ParsePacket(absl::Span<const uint8_t> frame);

// In-place translation of the source or destination address and port, with
// the IPv4 header checksum and the TCP/UDP/ICMPv6 checksums (pseudo-header
// and port) updated incrementally; a UDP checksum of 0 on IPv4 stays 0, a
// computed 0 is written as 0xffff. SCTP: the CRC32c is recomputed over the
// SCTP packet. ICMP/ICMPv6 echo: `port` replaces the identifier (ICMP
// checksum updated). Other protocols and non-first fragments: address only.
// `pkt` must be ParsePacket(frame).pkt with no drop; `addr` must be of
// pkt.family, otherwise the frame is left unchanged. `pkt` is not updated.
void RewriteSource(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                   const IpAddr& addr, uint16_t port);
void RewriteDestination(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                        const IpAddr& addr, uint16_t port);

// For an ICMP error about a translated flow (pkt.has_inner): rewrite the
// quoted packet's source (or destination) address and port, its IPv4 header
// checksum, its TCP/UDP checksum when the quote holds it, and the outer ICMP
// checksum for every changed byte. No-op when !pkt.has_inner.
void RewriteInnerSource(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                        const IpAddr& addr, uint16_t port);
void RewriteInnerDestination(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                             const IpAddr& addr, uint16_t port);

// Writes the Ethernet destination and source (no-op on a frame < 12 bytes).
void SetEthernet(absl::Span<uint8_t> frame, const uint8_t dst[6], const uint8_t src[6]);
void SetEthernet(absl::Span<uint8_t> frame, const MacAddr& dst, const MacAddr& src);

// REJECT replies (docs/datapath.md "Frames the datapath emits"). Ethernet
// addresses swapped, the input's 802.1Q tag kept; IPv4 TOS 0, ID 0, no DF,
// TTL 64; IPv6 traffic class 0, flow label 0, hop limit 64, no extension
// headers. No Ethernet padding. `pkt` is ParsePacket(frame).pkt.
// TCP RST from pkt.dst:dport to pkt.src:sport: if the input had ACK, seq =
// its ack and flags RST; else seq 0, ack = seq + payload_len + SYN + FIN and
// flags RST|ACK; window 0, no options. Empty when pkt is not TCP.
std::vector<uint8_t> BuildTcpReset(absl::Span<const uint8_t> frame, const ParsedPacket& pkt);
// ICMP port unreachable (v4 type 3 code 3, v6 type 1 code 4) from pkt.dst to
// pkt.src quoting the invoking IP packet's first L3-header-length + 8 bytes
// (v4: IHL*4 + 8; v6: 40 + 8), fewer if the packet is shorter.
std::vector<uint8_t> BuildPortUnreachable(absl::Span<const uint8_t> frame,
                                          const ParsedPacket& pkt);
// The same two written into `out` (no allocation, for a datapath's fast
// path); return the reply's length, 0 when there is none or `out` is shorter
// than the reply. kMaxRejectReplyLen always suffices.
inline constexpr size_t kMaxRejectReplyLen = 128;
size_t WriteTcpReset(absl::Span<const uint8_t> frame, const ParsedPacket& pkt,
                     absl::Span<uint8_t> out);
size_t WritePortUnreachable(absl::Span<const uint8_t> frame, const ParsedPacket& pkt,
                            absl::Span<uint8_t> out);

// Decodes a frame field by field for test failure messages, e.g.
// "eth 02:00:00:00:00:01->02:00:00:00:00:02; ipv4 10.0.0.1->10.96.0.10 ttl 64
// id 0 csum 0x1234 ok; tcp 40000->80 [S] seq 1 ack 0 csum 0xabcd ok".
// Malformed frames are described up to the fault and name the drop reason.
std::string DescribePacket(absl::Span<const uint8_t> frame);

// SCTP chunk a builder puts in its packet.
enum class SctpChunk : uint8_t { kData = 0, kInit = 1, kInitAck = 2, kAbort = 6, kShutdown = 7 };

// Describes a frame layer by layer; Build() fills every length and checksum
// unless a corruption setter overrides one. Setters apply to the layer last
// added (e.g. Ttl after IPv4). Text addresses that do not parse make Build()
// abort with a message (the builder is for literals in tests); TryBuild()
// returns the error instead.
//
//   PacketBuilder().Eth("02:00:00:00:00:01", "02:00:00:00:00:02").Vlan(10)
//       .IPv6("fd00::1", "fd00::2").HopByHop().Udp(5353, 53).Payload("q").Build();
class PacketBuilder {
 public:
  PacketBuilder();

  // L2 (default: 02:00:00:00:00:01 -> 02:00:00:00:00:02, no tag).
  PacketBuilder& Eth(const MacAddr& src, const MacAddr& dst);
  PacketBuilder& Eth(absl::string_view src, absl::string_view dst);
  PacketBuilder& Vlan(uint16_t vlan_id, uint8_t pcp = 0);
  PacketBuilder& EtherType(uint16_t ethertype);  // overrides; for non-IP frames

  // L3.
  PacketBuilder& IPv4(const IpAddr& src, const IpAddr& dst);
  PacketBuilder& IPv4(absl::string_view src, absl::string_view dst);
  PacketBuilder& IPv6(const IpAddr& src, const IpAddr& dst);
  PacketBuilder& IPv6(absl::string_view src, absl::string_view dst);
  PacketBuilder& Ttl(uint8_t ttl);  // IPv6 hop limit (default 64)
  PacketBuilder& Tos(uint8_t tos);  // IPv6 traffic class
  PacketBuilder& FlowLabel(uint32_t label);
  PacketBuilder& IpId(uint16_t id);
  PacketBuilder& DontFragment();
  // IPv4: sets MF and the offset (in 8-byte units). IPv6: appends a fragment
  // extension header at this point of the chain.
  PacketBuilder& Fragment(uint16_t offset_units, bool more_fragments, uint32_t id = 0);
  PacketBuilder& IPv4Options(absl::Span<const uint8_t> options);  // padded to 4
  // IPv6 extension headers, in call order; `pad` adds PadN bytes of options.
  PacketBuilder& HopByHop(size_t pad = 4);
  PacketBuilder& DestOptions(size_t pad = 4);
  PacketBuilder& Routing(uint8_t type = 0, uint8_t segments_left = 0);

  // L4 (one of).
  PacketBuilder& Tcp(uint16_t sport, uint16_t dport, uint8_t flags);
  PacketBuilder& Seq(uint32_t seq);
  PacketBuilder& Ack(uint32_t ack);
  PacketBuilder& Window(uint16_t window);
  PacketBuilder& TcpOptions(absl::Span<const uint8_t> options);  // padded to 4
  PacketBuilder& Udp(uint16_t sport, uint16_t dport);
  PacketBuilder& Sctp(uint16_t sport, uint16_t dport, SctpChunk chunk = SctpChunk::kInit,
                      uint32_t vtag = 0);
  // ICMP (IPv4) or ICMPv6 by the family of the L3 layer.
  PacketBuilder& IcmpEcho(uint16_t id, uint16_t seq, bool reply = false);
  PacketBuilder& Icmp(uint8_t type, uint8_t code, uint32_t rest_of_header = 0);
  // An error quoting `inner`'s IP packet (cut to `quote_len` bytes if set).
  PacketBuilder& IcmpError(uint8_t type, uint8_t code, const PacketBuilder& inner,
                           std::optional<size_t> quote_len = std::nullopt);
  // Any other protocol: the L4 bytes are the payload.
  PacketBuilder& Proto(uint8_t proto);
  PacketBuilder& Payload(absl::string_view bytes);
  PacketBuilder& Payload(absl::Span<const uint8_t> bytes);

  // Corruptions for malformed-input tests.
  PacketBuilder& BadChecksum();       // L4 checksum off by one
  PacketBuilder& BadIpChecksum();     // IPv4 header checksum off by one
  PacketBuilder& UdpZeroChecksum();   // IPv4 UDP without checksum
  PacketBuilder& IpVersion(uint8_t version);
  PacketBuilder& IpHeaderWords(uint8_t ihl);        // IPv4 IHL as written
  PacketBuilder& IpTotalLength(uint16_t length);    // IPv4 total / IPv6 payload length
  PacketBuilder& TcpDataOffsetWords(uint8_t doff);
  PacketBuilder& UdpLength(uint16_t length);
  PacketBuilder& TrailingBytes(size_t n);           // Ethernet padding after the IP packet

  absl::StatusOr<std::vector<uint8_t>> TryBuild() const;
  std::vector<uint8_t> Build() const;
  // The IP packet without Ethernet (what an ICMP error quotes).
  std::vector<uint8_t> BuildL3() const;

 private:
  struct ExtHeader {
    uint8_t type;
    std::vector<uint8_t> body;  // after next-header and length bytes
  };
  enum class L4Kind : uint8_t { kNone, kTcp, kUdp, kSctp, kIcmp, kRaw };
  void SetError(absl::string_view what, absl::string_view text);
  absl::StatusOr<std::vector<uint8_t>> BuildIp() const;

  absl::Status error_;
  MacAddr eth_src_;
  MacAddr eth_dst_;
  std::optional<uint16_t> ethertype_;
  bool has_vlan_ = false;
  uint16_t vlan_tci_ = 0;
  bool has_l3_ = false;
  Family family_ = Family::kV4;
  IpAddr src_;
  IpAddr dst_;
  uint8_t ttl_ = 64;
  uint8_t tos_ = 0;
  uint32_t flow_label_ = 0;
  uint16_t ip_id_ = 0;
  bool dont_fragment_ = false;
  uint16_t frag_offset_ = 0;
  bool more_fragments_ = false;
  std::vector<uint8_t> ip_options_;
  std::vector<ExtHeader> ext_headers_;
  L4Kind l4_ = L4Kind::kNone;
  uint8_t proto_ = 0;
  uint16_t sport_ = 0;
  uint16_t dport_ = 0;
  uint8_t tcp_flags_ = 0;
  uint32_t seq_ = 0;
  uint32_t ack_ = 0;
  uint16_t window_ = 65535;
  std::vector<uint8_t> tcp_options_;
  SctpChunk sctp_chunk_ = SctpChunk::kInit;
  uint32_t sctp_vtag_ = 0;
  uint8_t icmp_type_ = 0;
  uint8_t icmp_code_ = 0;
  uint32_t icmp_rest_ = 0;
  bool icmp_echo_ = false;  // type chosen by family at Build()
  bool icmp_echo_reply_ = false;
  std::vector<uint8_t> icmp_quote_;
  std::vector<uint8_t> payload_;
  bool bad_l4_csum_ = false;
  bool bad_ip_csum_ = false;
  bool udp_zero_csum_ = false;
  std::optional<uint8_t> ip_version_;
  std::optional<uint8_t> ihl_;
  std::optional<uint16_t> ip_total_length_;
  std::optional<uint8_t> tcp_doff_;
  std::optional<uint16_t> udp_length_;
  size_t trailing_ = 0;
};

}  // namespace dpv2

#endif  // DPV2_PACKET_H_
