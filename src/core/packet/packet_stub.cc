// Placeholder implementation of dpv2/packet.h while the real one is written.
#include "dpv2/packet.h"

#include <cstdlib>

namespace dpv2 {
absl::StatusOr<MacAddr> ParseMac(absl::string_view) { return absl::UnimplementedError("ParseMac"); }
std::string MacToString(const MacAddr&) { return ""; }
FiveTuple ParsedPacket::tuple() const { return {src, dst, sport, dport, static_cast<L4Proto>(proto)}; }
FiveTuple ParsedPacket::inner_tuple() const { return {inner_src, inner_dst, inner_sport, inner_dport, static_cast<L4Proto>(inner_proto)}; }
ParseResult ParsePacket(absl::Span<const uint8_t>) { return ParseResult{.drop = DPV2_DROP_INTERNAL}; }
void RewriteSource(absl::Span<uint8_t>, const ParsedPacket&, const IpAddr&, uint16_t) {}
void RewriteDestination(absl::Span<uint8_t>, const ParsedPacket&, const IpAddr&, uint16_t) {}
void RewriteInnerSource(absl::Span<uint8_t>, const ParsedPacket&, const IpAddr&, uint16_t) {}
void RewriteInnerDestination(absl::Span<uint8_t>, const ParsedPacket&, const IpAddr&, uint16_t) {}
void SetEthernet(absl::Span<uint8_t>, const uint8_t[6], const uint8_t[6]) {}
void SetEthernet(absl::Span<uint8_t>, const MacAddr&, const MacAddr&) {}
std::vector<uint8_t> BuildTcpReset(absl::Span<const uint8_t>, const ParsedPacket&) { return {}; }
std::vector<uint8_t> BuildPortUnreachable(absl::Span<const uint8_t>, const ParsedPacket&) { return {}; }
std::string DescribePacket(absl::Span<const uint8_t>) { return ""; }

PacketBuilder::PacketBuilder() : eth_src_{2, 0, 0, 0, 0, 1}, eth_dst_{2, 0, 0, 0, 0, 2} {}
PacketBuilder& PacketBuilder::Eth(const MacAddr&, const MacAddr&) { return *this; }
PacketBuilder& PacketBuilder::Eth(absl::string_view, absl::string_view) { return *this; }
PacketBuilder& PacketBuilder::Vlan(uint16_t, uint8_t) { return *this; }
PacketBuilder& PacketBuilder::EtherType(uint16_t) { return *this; }
PacketBuilder& PacketBuilder::IPv4(const IpAddr&, const IpAddr&) { return *this; }
PacketBuilder& PacketBuilder::IPv4(absl::string_view, absl::string_view) { return *this; }
PacketBuilder& PacketBuilder::IPv6(const IpAddr&, const IpAddr&) { return *this; }
PacketBuilder& PacketBuilder::IPv6(absl::string_view, absl::string_view) { return *this; }
PacketBuilder& PacketBuilder::Ttl(uint8_t) { return *this; }
PacketBuilder& PacketBuilder::Tos(uint8_t) { return *this; }
PacketBuilder& PacketBuilder::FlowLabel(uint32_t) { return *this; }
PacketBuilder& PacketBuilder::IpId(uint16_t) { return *this; }
PacketBuilder& PacketBuilder::DontFragment() { return *this; }
PacketBuilder& PacketBuilder::Fragment(uint16_t, bool, uint32_t) { return *this; }
PacketBuilder& PacketBuilder::IPv4Options(absl::Span<const uint8_t>) { return *this; }
PacketBuilder& PacketBuilder::HopByHop(size_t) { return *this; }
PacketBuilder& PacketBuilder::DestOptions(size_t) { return *this; }
PacketBuilder& PacketBuilder::Routing(uint8_t, uint8_t) { return *this; }
PacketBuilder& PacketBuilder::Tcp(uint16_t, uint16_t, uint8_t) { return *this; }
PacketBuilder& PacketBuilder::Seq(uint32_t) { return *this; }
PacketBuilder& PacketBuilder::Ack(uint32_t) { return *this; }
PacketBuilder& PacketBuilder::Window(uint16_t) { return *this; }
PacketBuilder& PacketBuilder::TcpOptions(absl::Span<const uint8_t>) { return *this; }
PacketBuilder& PacketBuilder::Udp(uint16_t, uint16_t) { return *this; }
PacketBuilder& PacketBuilder::Sctp(uint16_t, uint16_t, SctpChunk, uint32_t) { return *this; }
PacketBuilder& PacketBuilder::IcmpEcho(uint16_t, uint16_t, bool) { return *this; }
PacketBuilder& PacketBuilder::Icmp(uint8_t, uint8_t, uint32_t) { return *this; }
PacketBuilder& PacketBuilder::IcmpError(uint8_t, uint8_t, const PacketBuilder&, std::optional<size_t>) { return *this; }
PacketBuilder& PacketBuilder::Proto(uint8_t) { return *this; }
PacketBuilder& PacketBuilder::Payload(absl::string_view) { return *this; }
PacketBuilder& PacketBuilder::Payload(absl::Span<const uint8_t>) { return *this; }
PacketBuilder& PacketBuilder::BadChecksum() { return *this; }
PacketBuilder& PacketBuilder::BadIpChecksum() { return *this; }
PacketBuilder& PacketBuilder::UdpZeroChecksum() { return *this; }
PacketBuilder& PacketBuilder::IpVersion(uint8_t) { return *this; }
PacketBuilder& PacketBuilder::IpHeaderWords(uint8_t) { return *this; }
PacketBuilder& PacketBuilder::IpTotalLength(uint16_t) { return *this; }
PacketBuilder& PacketBuilder::TcpDataOffsetWords(uint8_t) { return *this; }
PacketBuilder& PacketBuilder::UdpLength(uint16_t) { return *this; }
PacketBuilder& PacketBuilder::TrailingBytes(size_t) { return *this; }
absl::StatusOr<std::vector<uint8_t>> PacketBuilder::TryBuild() const { return absl::UnimplementedError("PacketBuilder"); }
std::vector<uint8_t> PacketBuilder::Build() const { return {}; }
std::vector<uint8_t> PacketBuilder::BuildL3() const { return {}; }
}  // namespace dpv2
