// dpv2 network basics: addresses, prefixes, L4 protocols and 5-tuples.
//
// Values are small, regular and hashable (absl::Hash), with parsing that
// returns absl::Status naming the bad text, and conversion to the ABI's
// 16-byte address form (IPv4 in the first four bytes).
//
//   absl::StatusOr<dpv2::IpAddr> vip = dpv2::IpAddr::Parse("10.96.0.10");
//   absl::StatusOr<dpv2::Prefix> p = dpv2::Prefix::Parse("10.0.0.0/8");
//   bool in = p->Contains(*vip);
#ifndef DPV2_NET_H_
#define DPV2_NET_H_

#include <array>
#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "dpv2/abi/types.h"

namespace dpv2 {

enum class Family : uint8_t { kV4 = DPV2_FAMILY_V4, kV6 = DPV2_FAMILY_V6 };

enum class L4Proto : uint8_t {
  kICMP = DPV2_PROTO_ICMP,
  kTCP = DPV2_PROTO_TCP,
  kUDP = DPV2_PROTO_UDP,
  kICMPv6 = DPV2_PROTO_ICMPV6,
  kSCTP = DPV2_PROTO_SCTP,
};

// "TCP", "UDP", "SCTP", "ICMP", "ICMPv6" (case-insensitive on input).
absl::StatusOr<L4Proto> ParseL4Proto(absl::string_view text);
absl::string_view L4ProtoName(L4Proto proto);

class IpAddr {
 public:
  IpAddr() = default;  // 0.0.0.0
  static absl::StatusOr<IpAddr> Parse(absl::string_view text);
  static IpAddr V4(uint32_t host_order);
  static IpAddr V4Bytes(const uint8_t bytes[4]);
  static IpAddr V6Bytes(const uint8_t bytes[16]);
  static IpAddr FromAbi(const dpv2_addr& addr, Family family);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  // 4 or 16 meaningful bytes, network order, at the front of a 16-byte array.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  size_t size() const { return is_v4() ? 4 : 16; }
  dpv2_addr ToAbi() const;
  std::string ToString() const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const IpAddr& a) {
    return H::combine(std::move(h), a.family_, a.bytes_);
  }

 private:
  Family family_ = Family::kV4;
  std::array<uint8_t, 16> bytes_{};
};

std::ostream& operator<<(std::ostream& os, const IpAddr& addr);

class Prefix {
 public:
  Prefix() = default;
  // Strict: "10.0.0.0/8"; a plain address is a host prefix. Host bits set
  // ("10.1.0.1/4") is an error here; see ParseLenient.
  static absl::StatusOr<Prefix> Parse(absl::string_view text);
  // Accepts host bits and masks them off, as Kubernetes does for ipBlock;
  // *had_host_bits says whether it did.
  static absl::StatusOr<Prefix> ParseLenient(absl::string_view text, bool* had_host_bits);
  static absl::StatusOr<Prefix> Make(const IpAddr& addr, int length);

  const IpAddr& addr() const { return addr_; }
  int length() const { return length_; }
  Family family() const { return addr_.family(); }
  bool Contains(const IpAddr& addr) const;
  bool Contains(const Prefix& other) const;
  std::string ToString() const;

  friend bool operator==(const Prefix&, const Prefix&) = default;
  friend auto operator<=>(const Prefix&, const Prefix&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Prefix& p) {
    return H::combine(std::move(h), p.addr_, p.length_);
  }

 private:
  IpAddr addr_;
  int length_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Prefix& prefix);

// Ports in host byte order. For ICMP echo, sport carries the identifier.
struct FiveTuple {
  IpAddr src;
  IpAddr dst;
  uint16_t sport = 0;
  uint16_t dport = 0;
  L4Proto proto = L4Proto::kTCP;

  FiveTuple Reversed() const { return {dst, src, dport, sport, proto}; }
  std::string ToString() const;  // "TCP 10.0.0.1:1234 -> 10.96.0.1:80"
  friend bool operator==(const FiveTuple&, const FiveTuple&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FiveTuple& t) {
    return H::combine(std::move(h), t.src, t.dst, t.sport, t.dport, t.proto);
  }
};

}  // namespace dpv2

#endif  // DPV2_NET_H_
