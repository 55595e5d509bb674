#include "backends/dpdk/neighbor_reply.h"

#include <cstring>

#include "dpv2/checksum.h"

namespace dpv2::dpdk {
namespace {

constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr size_t kArpLen = 28;
constexpr size_t kIpv6Len = 40;
constexpr uint8_t kIcmpv6 = 58;
constexpr uint8_t kNeighborSolicitation = 135;
constexpr uint8_t kNeighborAdvertisement = 136;
constexpr size_t kNdLen = 24;       // type, code, checksum, reserved/flags, target
constexpr size_t kNdOptionLen = 8;  // link-layer address option for Ethernet

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

}  // namespace

std::optional<std::vector<uint8_t>> NeighborAnswers::Reply(
    absl::Span<const uint8_t> frame, const std::array<uint8_t, 6>& mac) const {
  if (addresses_.empty() || frame.size() < 14) {
    return std::nullopt;
  }
  size_t l2 = 14;
  uint16_t ethertype = Load16(&frame[12]);
  if (ethertype == kEtherVlan) {
    if (frame.size() < 18) {
      return std::nullopt;
    }
    l2 = 18;
    ethertype = Load16(&frame[16]);
  }
  const uint8_t* in = frame.data() + l2;
  const size_t in_len = frame.size() - l2;

  if (ethertype == kEtherArp) {
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, oper request.
    if (in_len < kArpLen || Load16(in) != 1 || Load16(in + 2) != kEtherIpv4 || in[4] != 6 ||
        in[5] != 4 || Load16(in + 6) != 1) {
      return std::nullopt;
    }
    const uint8_t* sha = in + 8;
    const uint8_t* spa = in + 14;
    const uint8_t* tpa = in + 24;
    if (std::memcmp(spa, tpa, 4) == 0 || !addresses_.contains(IpAddr::V4Bytes(tpa))) {
      return std::nullopt;  // gratuitous, or not ours
    }
    std::vector<uint8_t> out(frame.begin(), frame.begin() + l2 + kArpLen);
    uint8_t* arp = out.data() + l2;
    std::memcpy(out.data(), sha, 6);  // Ethernet destination: the asker
    std::memcpy(out.data() + 6, mac.data(), 6);
    Store16(arp + 6, 2);  // reply
    std::memcpy(arp + 18, sha, 6);
    std::memcpy(arp + 24, spa, 4);
    std::memcpy(arp + 8, mac.data(), 6);
    std::memcpy(arp + 14, tpa, 4);
    return out;
  }

  if (ethertype != kEtherIpv6 || in_len < kIpv6Len + kNdLen || (in[0] >> 4) != 6 ||
      in[6] != kIcmpv6 || in[7] != 255) {
    return std::nullopt;
  }
  const size_t payload = Load16(in + 4);
  if (payload < kNdLen || kIpv6Len + payload > in_len) {
    return std::nullopt;
  }
  const uint8_t* icmp = in + kIpv6Len;
  if (icmp[0] != kNeighborSolicitation || icmp[1] != 0) {
    return std::nullopt;
  }
  const IpAddr src = IpAddr::V6Bytes(in + 8);
  const IpAddr dst = IpAddr::V6Bytes(in + 24);
  if (InternetChecksum(absl::MakeConstSpan(icmp, payload),
                       PseudoHeaderSum(src, dst, kIcmpv6, static_cast<uint32_t>(payload))) != 0) {
    return std::nullopt;
  }
  const IpAddr target = IpAddr::V6Bytes(icmp + 8);
  if (!addresses_.contains(target)) {
    return std::nullopt;
  }
  // Duplicate address detection comes from "::": answer all nodes, unsolicited.
  const bool from_unspecified = src == IpAddr::V6Bytes(std::array<uint8_t, 16>{}.data());
  IpAddr reply_dst = src;
  std::array<uint8_t, 6> eth_dst;
  std::memcpy(eth_dst.data(), frame.data() + 6, 6);
  if (from_unspecified) {
    std::array<uint8_t, 16> all_nodes{0xff, 0x02};
    all_nodes[15] = 1;
    reply_dst = IpAddr::V6Bytes(all_nodes.data());
    eth_dst = {0x33, 0x33, 0, 0, 0, 1};
  }
  std::vector<uint8_t> out(l2 + kIpv6Len + kNdLen + kNdOptionLen, 0);
  std::memcpy(out.data(), eth_dst.data(), 6);
  std::memcpy(out.data() + 6, mac.data(), 6);
  std::memcpy(out.data() + 12, frame.data() + 12, l2 - 12);  // VLAN tag and ethertype
  uint8_t* ip = out.data() + l2;
  ip[0] = 0x60;
  Store16(ip + 4, kNdLen + kNdOptionLen);
  ip[6] = kIcmpv6;
  ip[7] = 255;
  std::memcpy(ip + 8, target.bytes().data(), 16);
  std::memcpy(ip + 24, reply_dst.bytes().data(), 16);
  uint8_t* na = ip + kIpv6Len;
  na[0] = kNeighborAdvertisement;
  na[4] = from_unspecified ? 0x20 : 0x60;  // Override, plus Solicited when asked directly
  std::memcpy(na + 8, target.bytes().data(), 16);
  na[24] = 2;  // target link-layer address option, 8 bytes
  na[25] = 1;
  std::memcpy(na + 26, mac.data(), 6);
  Store16(na + 2, InternetChecksum(absl::MakeConstSpan(na, kNdLen + kNdOptionLen),
                                   PseudoHeaderSum(target, reply_dst, kIcmpv6,
                                                   kNdLen + kNdOptionLen)));
  return out;
}

}  // namespace dpv2::dpdk
