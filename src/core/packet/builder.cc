// PacketBuilder: frames described layer by layer, for tests and fixtures.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/packet/wire.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

using wire::Store16;
using wire::Store32;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t PadTo4(size_t n) { return (n + 3) & ~size_t{3}; }

void Append(std::vector<uint8_t>* out, absl::Span<const uint8_t> bytes) {
  out->insert(out->end(), bytes.begin(), bytes.end());
}

}  // namespace

absl::StatusOr<MacAddr> ParseMac(absl::string_view text) {
  MacAddr mac{};
  bool ok = text.size() == 17;
  for (size_t i = 0; ok && i < 6; ++i) {
    int hi = HexDigit(text[3 * i]);
    int lo = HexDigit(text[3 * i + 1]);
    ok = hi >= 0 && lo >= 0 && (i == 5 || text[3 * i + 2] == ':' || text[3 * i + 2] == '-');
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid MAC address \"", text, "\": want six hex pairs like 02:00:00:00:00:01"));
  }
  return mac;
}

std::string MacToString(const MacAddr& mac) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0) s += ':';
    s += kHex[mac[i] >> 4];
    s += kHex[mac[i] & 0xf];
  }
  return s;
}

PacketBuilder::PacketBuilder() : eth_src_{2, 0, 0, 0, 0, 1}, eth_dst_{2, 0, 0, 0, 0, 2} {}

void PacketBuilder::SetError(absl::string_view what, absl::string_view text) {
  if (error_.ok()) {
    error_ = absl::InvalidArgumentError(absl::StrCat("PacketBuilder: ", what, ": ", text));
  }
}

PacketBuilder& PacketBuilder::Eth(const MacAddr& src, const MacAddr& dst) {
  eth_src_ = src;
  eth_dst_ = dst;
  return *this;
}

PacketBuilder& PacketBuilder::Eth(absl::string_view src, absl::string_view dst) {
  absl::StatusOr<MacAddr> s = ParseMac(src);
  absl::StatusOr<MacAddr> d = ParseMac(dst);
  if (!s.ok()) {
    SetError("Eth source", s.status().message());
  } else if (!d.ok()) {
    SetError("Eth destination", d.status().message());
  } else {
    Eth(*s, *d);
  }
  return *this;
}

PacketBuilder& PacketBuilder::Vlan(uint16_t vlan_id, uint8_t pcp) {
  has_vlan_ = true;
  vlan_tci_ = static_cast<uint16_t>((pcp & 7) << 13 | (vlan_id & 0x0fff));
  return *this;
}

PacketBuilder& PacketBuilder::EtherType(uint16_t ethertype) {
  ethertype_ = ethertype;
  return *this;
}

PacketBuilder& PacketBuilder::IPv4(const IpAddr& src, const IpAddr& dst) {
  if (!src.is_v4() || !dst.is_v4()) {
    SetError("IPv4", absl::StrCat(src.ToString(), " -> ", dst.ToString(), " is not IPv4"));
  }
  has_l3_ = true;
  family_ = Family::kV4;
  src_ = src;
  dst_ = dst;
  return *this;
}

PacketBuilder& PacketBuilder::IPv4(absl::string_view src, absl::string_view dst) {
  absl::StatusOr<IpAddr> s = IpAddr::Parse(src);
  absl::StatusOr<IpAddr> d = IpAddr::Parse(dst);
  if (!s.ok()) {
    SetError("IPv4 source", s.status().message());
  } else if (!d.ok()) {
    SetError("IPv4 destination", d.status().message());
  } else {
    return IPv4(*s, *d);
  }
  has_l3_ = true;
  family_ = Family::kV4;
  return *this;
}

PacketBuilder& PacketBuilder::IPv6(const IpAddr& src, const IpAddr& dst) {
  if (src.is_v4() || dst.is_v4()) {
    SetError("IPv6", absl::StrCat(src.ToString(), " -> ", dst.ToString(), " is not IPv6"));
  }
  has_l3_ = true;
  family_ = Family::kV6;
  src_ = src;
  dst_ = dst;
  return *this;
}

PacketBuilder& PacketBuilder::IPv6(absl::string_view src, absl::string_view dst) {
  absl::StatusOr<IpAddr> s = IpAddr::Parse(src);
  absl::StatusOr<IpAddr> d = IpAddr::Parse(dst);
  if (!s.ok()) {
    SetError("IPv6 source", s.status().message());
  } else if (!d.ok()) {
    SetError("IPv6 destination", d.status().message());
  } else {
    return IPv6(*s, *d);
  }
  has_l3_ = true;
  family_ = Family::kV6;
  return *this;
}

PacketBuilder& PacketBuilder::Ttl(uint8_t ttl) {
  ttl_ = ttl;
  return *this;
}

PacketBuilder& PacketBuilder::Tos(uint8_t tos) {
  tos_ = tos;
  return *this;
}

PacketBuilder& PacketBuilder::FlowLabel(uint32_t label) {
  flow_label_ = label & 0xfffff;
  return *this;
}

PacketBuilder& PacketBuilder::IpId(uint16_t id) {
  ip_id_ = id;
  return *this;
}

PacketBuilder& PacketBuilder::DontFragment() {
  dont_fragment_ = true;
  return *this;
}

PacketBuilder& PacketBuilder::Fragment(uint16_t offset_units, bool more_fragments, uint32_t id) {
  if (!has_l3_) {
    SetError("Fragment", "call IPv4() or IPv6() first");
    return *this;
  }
  if (family_ == Family::kV4) {
    frag_offset_ = offset_units & 0x1fff;
    more_fragments_ = more_fragments;
    if (id != 0) {
      ip_id_ = static_cast<uint16_t>(id);
    }
    return *this;
  }
  ExtHeader h{.type = kIPv6Fragment, .body = std::vector<uint8_t>(6, 0)};
  Store16(h.body.data(), static_cast<uint16_t>((offset_units & 0x1fff) << 3 | (more_fragments ? 1 : 0)));
  Store32(h.body.data() + 2, id);
  ext_headers_.push_back(std::move(h));
  return *this;
}

PacketBuilder& PacketBuilder::IPv4Options(absl::Span<const uint8_t> options) {
  ip_options_.assign(options.begin(), options.end());
  return *this;
}

namespace {
// Options area of a hop-by-hop or destination options header: one PadN
// option, sized so that the header is a multiple of 8 bytes.
std::vector<uint8_t> PadOptions(size_t pad) {
  size_t area = ((pad + 2 + 7) & ~size_t{7}) - 2;
  if (area < 6) area = 6;
  std::vector<uint8_t> body(area, 0);
  body[0] = 1;  // PadN
  body[1] = static_cast<uint8_t>(area - 2);
  return body;
}
}  // namespace

PacketBuilder& PacketBuilder::HopByHop(size_t pad) {
  ext_headers_.push_back({.type = kIPv6HopByHop, .body = PadOptions(pad)});
  return *this;
}

PacketBuilder& PacketBuilder::DestOptions(size_t pad) {
  ext_headers_.push_back({.type = kIPv6DestOptions, .body = PadOptions(pad)});
  return *this;
}

PacketBuilder& PacketBuilder::Routing(uint8_t type, uint8_t segments_left) {
  ext_headers_.push_back({.type = kIPv6Routing, .body = {type, segments_left, 0, 0, 0, 0}});
  return *this;
}

PacketBuilder& PacketBuilder::Tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  l4_ = L4Kind::kTcp;
  proto_ = DPV2_PROTO_TCP;
  sport_ = sport;
  dport_ = dport;
  tcp_flags_ = flags;
  return *this;
}

PacketBuilder& PacketBuilder::Seq(uint32_t seq) {
  seq_ = seq;
  return *this;
}

PacketBuilder& PacketBuilder::Ack(uint32_t ack) {
  ack_ = ack;
  return *this;
}

PacketBuilder& PacketBuilder::Window(uint16_t window) {
  window_ = window;
  return *this;
}

PacketBuilder& PacketBuilder::TcpOptions(absl::Span<const uint8_t> options) {
  tcp_options_.assign(options.begin(), options.end());
  return *this;
}

PacketBuilder& PacketBuilder::Udp(uint16_t sport, uint16_t dport) {
  l4_ = L4Kind::kUdp;
  proto_ = DPV2_PROTO_UDP;
  sport_ = sport;
  dport_ = dport;
  return *this;
}

PacketBuilder& PacketBuilder::Sctp(uint16_t sport, uint16_t dport, SctpChunk chunk,
                                   uint32_t vtag) {
  l4_ = L4Kind::kSctp;
  proto_ = DPV2_PROTO_SCTP;
  sport_ = sport;
  dport_ = dport;
  sctp_chunk_ = chunk;
  sctp_vtag_ = vtag;
  return *this;
}

PacketBuilder& PacketBuilder::IcmpEcho(uint16_t id, uint16_t seq, bool reply) {
  l4_ = L4Kind::kIcmp;
  icmp_echo_ = true;
  icmp_echo_reply_ = reply;
  icmp_code_ = 0;
  icmp_rest_ = static_cast<uint32_t>(id) << 16 | seq;
  return *this;
}

PacketBuilder& PacketBuilder::Icmp(uint8_t type, uint8_t code, uint32_t rest_of_header) {
  l4_ = L4Kind::kIcmp;
  icmp_echo_ = false;
  icmp_type_ = type;
  icmp_code_ = code;
  icmp_rest_ = rest_of_header;
  return *this;
}

PacketBuilder& PacketBuilder::IcmpError(uint8_t type, uint8_t code, const PacketBuilder& inner,
                                        std::optional<size_t> quote_len) {
  Icmp(type, code, 0);
  absl::StatusOr<std::vector<uint8_t>> quoted = inner.BuildIp();
  if (!quoted.ok()) {
    SetError("IcmpError inner packet", quoted.status().message());
    return *this;
  }
  icmp_quote_ = *std::move(quoted);
  if (quote_len.has_value() && *quote_len < icmp_quote_.size()) {
    icmp_quote_.resize(*quote_len);
  }
  return *this;
}

PacketBuilder& PacketBuilder::Proto(uint8_t proto) {
  l4_ = L4Kind::kRaw;
  proto_ = proto;
  return *this;
}

PacketBuilder& PacketBuilder::Payload(absl::string_view bytes) {
  payload_.assign(bytes.begin(), bytes.end());
  return *this;
}

PacketBuilder& PacketBuilder::Payload(absl::Span<const uint8_t> bytes) {
  payload_.assign(bytes.begin(), bytes.end());
  return *this;
}

PacketBuilder& PacketBuilder::BadChecksum() {
  bad_l4_csum_ = true;
  return *this;
}

PacketBuilder& PacketBuilder::BadIpChecksum() {
  bad_ip_csum_ = true;
  return *this;
}

PacketBuilder& PacketBuilder::UdpZeroChecksum() {
  udp_zero_csum_ = true;
  return *this;
}

PacketBuilder& PacketBuilder::IpVersion(uint8_t version) {
  ip_version_ = version;
  return *this;
}

PacketBuilder& PacketBuilder::IpHeaderWords(uint8_t ihl) {
  ihl_ = ihl;
  return *this;
}

PacketBuilder& PacketBuilder::IpTotalLength(uint16_t length) {
  ip_total_length_ = length;
  return *this;
}

PacketBuilder& PacketBuilder::TcpDataOffsetWords(uint8_t doff) {
  tcp_doff_ = doff;
  return *this;
}

PacketBuilder& PacketBuilder::UdpLength(uint16_t length) {
  udp_length_ = length;
  return *this;
}

PacketBuilder& PacketBuilder::TrailingBytes(size_t n) {
  trailing_ = n;
  return *this;
}

absl::StatusOr<std::vector<uint8_t>> PacketBuilder::BuildIp() const {
  if (!error_.ok()) {
    return error_;
  }
  if (!has_l3_) {
    return absl::FailedPreconditionError("PacketBuilder: no IPv4() or IPv6() layer");
  }
  bool v6 = family_ == Family::kV6;
  std::vector<uint8_t> l4;
  uint8_t proto = proto_;
  size_t csum_off = 0;  // offset of the Internet checksum in l4, 0: none
  bool pseudo = true;
  switch (l4_) {
    case L4Kind::kNone:
      proto = v6 ? kIPv6NoNext : 253;  // RFC 3692 experimentation
      l4 = payload_;
      break;
    case L4Kind::kRaw:
      l4 = payload_;
      break;
    case L4Kind::kTcp: {
      size_t hl = wire::kTcpMinHeaderLen + PadTo4(tcp_options_.size());
      l4.assign(hl, 0);
      Store16(l4.data(), sport_);
      Store16(l4.data() + 2, dport_);
      Store32(l4.data() + 4, seq_);
      Store32(l4.data() + 8, ack_);
      l4[12] = static_cast<uint8_t>(tcp_doff_.value_or(hl / 4) << 4);
      l4[13] = tcp_flags_;
      Store16(l4.data() + 14, window_);
      std::copy(tcp_options_.begin(), tcp_options_.end(), l4.begin() + wire::kTcpMinHeaderLen);
      Append(&l4, payload_);
      csum_off = wire::kTcpCsumOffset;
      break;
    }
    case L4Kind::kUdp:
      l4.assign(wire::kUdpHeaderLen, 0);
      Store16(l4.data(), sport_);
      Store16(l4.data() + 2, dport_);
      Store16(l4.data() + 4,
              udp_length_.value_or(static_cast<uint16_t>(wire::kUdpHeaderLen + payload_.size())));
      Append(&l4, payload_);
      csum_off = wire::kUdpCsumOffset;
      break;
    case L4Kind::kSctp: {
      l4.assign(wire::kSctpCommonHeaderLen, 0);
      Store16(l4.data(), sport_);
      Store16(l4.data() + 2, dport_);
      Store32(l4.data() + 4, sctp_vtag_);
      std::vector<uint8_t> chunk;
      switch (sctp_chunk_) {
        case SctpChunk::kData: {
          chunk.assign(16, 0);
          chunk[1] = 0x03;  // B and E: one whole message
          Store16(chunk.data() + 2, static_cast<uint16_t>(16 + payload_.size()));
          Store32(chunk.data() + 4, 1);  // TSN
          Append(&chunk, payload_);
          chunk.resize(PadTo4(chunk.size()), 0);
          break;
        }
        case SctpChunk::kInit:
        case SctpChunk::kInitAck:
          chunk.assign(20, 0);
          Store16(chunk.data() + 2, 20);
          Store32(chunk.data() + 4, 0x01020304);  // initiate tag
          Store32(chunk.data() + 8, 65535);       // a_rwnd
          Store16(chunk.data() + 12, 1);          // outbound streams
          Store16(chunk.data() + 14, 1);          // inbound streams
          Store32(chunk.data() + 16, 1);          // initial TSN
          break;
        case SctpChunk::kAbort:
          chunk.assign(4, 0);
          Store16(chunk.data() + 2, 4);
          break;
        case SctpChunk::kShutdown:
          chunk.assign(8, 0);
          Store16(chunk.data() + 2, 8);
          break;
      }
      chunk[0] = static_cast<uint8_t>(sctp_chunk_);
      Append(&l4, chunk);
      if (sctp_chunk_ != SctpChunk::kData) {
        Append(&l4, payload_);  // further chunks, raw
      }
      break;
    }
    case L4Kind::kIcmp: {
      proto = v6 ? DPV2_PROTO_ICMPV6 : DPV2_PROTO_ICMP;
      l4.assign(wire::kIcmpHeaderLen, 0);
      l4[0] = icmp_echo_ ? (v6 ? (icmp_echo_reply_ ? kIcmp6EchoReply : kIcmp6EchoRequest)
                               : (icmp_echo_reply_ ? kIcmpEchoReply : kIcmpEchoRequest))
                         : icmp_type_;
      l4[1] = icmp_code_;
      Store32(l4.data() + 4, icmp_rest_);
      Append(&l4, icmp_quote_);
      Append(&l4, payload_);
      csum_off = wire::kIcmpCsumOffset;
      pseudo = v6;
      break;
    }
  }

  // L4 checksum: pseudo-header with the final length of this packet's L4.
  if (csum_off != 0 && l4.size() >= csum_off + 2) {
    uint32_t initial =
        pseudo ? PseudoHeaderSum(src_, dst_, proto, static_cast<uint32_t>(l4.size())) : 0;
    uint16_t csum = InternetChecksum(l4, initial);
    if (l4_ == L4Kind::kUdp) {
      if (csum == 0) csum = 0xffff;
      if (udp_zero_csum_ && !v6) csum = 0;
    }
    if (bad_l4_csum_) csum = static_cast<uint16_t>(csum + 1);
    Store16(l4.data() + csum_off, csum);
  } else if (l4_ == L4Kind::kSctp) {
    uint32_t crc = Crc32c(l4);
    if (bad_l4_csum_) crc += 1;
    wire::StoreLe32(l4.data() + wire::kSctpCsumOffset, crc);
  }

  std::vector<uint8_t> ip;
  if (!v6) {
    size_t hl = wire::kIPv4MinHeaderLen + PadTo4(ip_options_.size());
    ip.assign(hl, 0);
    ip[0] = static_cast<uint8_t>(ip_version_.value_or(4) << 4 | (ihl_.value_or(hl / 4) & 0xf));
    ip[1] = tos_;
    Store16(ip.data() + 2, ip_total_length_.value_or(static_cast<uint16_t>(hl + l4.size())));
    Store16(ip.data() + 4, ip_id_);
    Store16(ip.data() + 6, static_cast<uint16_t>((dont_fragment_ ? 0x4000 : 0) |
                                                 (more_fragments_ ? 0x2000 : 0) | frag_offset_));
    ip[8] = ttl_;
    ip[9] = proto;
    std::memcpy(ip.data() + wire::kIPv4SrcOffset, src_.bytes().data(), 4);
    std::memcpy(ip.data() + wire::kIPv4DstOffset, dst_.bytes().data(), 4);
    std::copy(ip_options_.begin(), ip_options_.end(), ip.begin() + wire::kIPv4MinHeaderLen);
    uint16_t csum = InternetChecksum(ip);
    if (bad_ip_csum_) csum = static_cast<uint16_t>(csum + 1);
    Store16(ip.data() + wire::kIPv4CsumOffset, csum);
  } else {
    std::vector<uint8_t> ext;
    for (size_t i = 0; i < ext_headers_.size(); ++i) {
      const ExtHeader& h = ext_headers_[i];
      uint8_t next = i + 1 < ext_headers_.size() ? ext_headers_[i + 1].type : proto;
      size_t total = 2 + h.body.size();
      ext.push_back(next);
      ext.push_back(h.type == kIPv6Fragment ? 0 : static_cast<uint8_t>(total / 8 - 1));
      Append(&ext, h.body);
    }
    ip.assign(wire::kIPv6HeaderLen, 0);
    Store32(ip.data(), static_cast<uint32_t>(ip_version_.value_or(6)) << 28 |
                           static_cast<uint32_t>(tos_) << 20 | flow_label_);
    Store16(ip.data() + 4,
            ip_total_length_.value_or(static_cast<uint16_t>(ext.size() + l4.size())));
    ip[6] = ext_headers_.empty() ? proto : ext_headers_.front().type;
    ip[7] = ttl_;
    std::memcpy(ip.data() + wire::kIPv6SrcOffset, src_.bytes().data(), 16);
    std::memcpy(ip.data() + wire::kIPv6DstOffset, dst_.bytes().data(), 16);
    Append(&ip, ext);
  }
  Append(&ip, l4);
  return ip;
}

absl::StatusOr<std::vector<uint8_t>> PacketBuilder::TryBuild() const {
  std::vector<uint8_t> frame(12, 0);
  std::memcpy(frame.data(), eth_dst_.data(), 6);
  std::memcpy(frame.data() + 6, eth_src_.data(), 6);
  if (has_vlan_) {
    frame.resize(16);
    Store16(frame.data() + 12, kEtherTypeVlan);
    Store16(frame.data() + 14, vlan_tci_);
  }
  uint16_t ethertype = ethertype_.value_or(
      !has_l3_ ? kEtherTypeArp : family_ == Family::kV4 ? kEtherTypeIPv4 : kEtherTypeIPv6);
  frame.resize(frame.size() + 2);
  Store16(frame.data() + frame.size() - 2, ethertype);
  if (has_l3_) {
    absl::StatusOr<std::vector<uint8_t>> ip = BuildIp();
    if (!ip.ok()) {
      return ip.status();
    }
    Append(&frame, *ip);
  } else {
    if (!error_.ok()) {
      return error_;
    }
    Append(&frame, payload_);
  }
  frame.resize(frame.size() + trailing_, 0);
  return frame;
}

std::vector<uint8_t> PacketBuilder::Build() const {
  absl::StatusOr<std::vector<uint8_t>> frame = TryBuild();
  if (!frame.ok()) {
    // The builder serves literals in tests: a typo there is a bug in the
    // test, reported loudly rather than turned into an empty frame.
    std::fprintf(stderr, "%s\n", std::string(frame.status().message()).c_str());
    std::abort();
  }
  return *std::move(frame);
}

std::vector<uint8_t> PacketBuilder::BuildL3() const {
  absl::StatusOr<std::vector<uint8_t>> ip = BuildIp();
  if (!ip.ok()) {
    std::fprintf(stderr, "%s\n", std::string(ip.status().message()).c_str());
    std::abort();
  }
  return *std::move(ip);
}

}  // namespace dpv2
