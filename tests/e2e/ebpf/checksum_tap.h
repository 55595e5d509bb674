// Checking L4 checksums of real kernel traffic as a receiver meets it.
//
// A veth hands a CHECKSUM_PARTIAL skb to the other end unverified: the TCP/UDP
// field then holds only the folded pseudo-header sum, which the receiving
// stack trusts. A datapath that rewrites addresses in such a skb must keep
// that sum right, and no connection fails when it does not. ChecksumTap is a
// packet socket (PACKET_AUXDATA) on one interface of a namespace: it sees each
// frame with the kernel's checksum state (TP_STATUS_CSUMNOTREADY for PARTIAL)
// and CheckL4Checksum judges it by that state (the pseudo-header sum for the
// packet's own addresses and length, or a full checksum that verifies).
// SetTxChecksum turns a device's tx checksum offload on (PARTIAL skbs) or off
// (the stack sums in software and the receiver verifies), and CsumErrors reads
// a namespace's InCsumErrors to prove what the receiver dropped.
//
//   ChecksumTap tap = Must(ChecksumTap::Open(pod.netns(), pod.eth0().ifindex));
//   ... traffic ...
//   for (const L4Checksum& c : Must(tap.Drain())) CHECK(c.valid);
#ifndef DPV2_TESTS_E2E_EBPF_CHECKSUM_TAP_H_
#define DPV2_TESTS_E2E_EBPF_CHECKSUM_TAP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dpv2/net.h"
#include "netlab/netlab.h"

namespace dpv2::e2e {

// One TCP segment or UDP datagram and the verdict on its checksum field.
struct L4Checksum {
  FiveTuple tuple;
  // The frame arrived CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY): the field
  // holds the pseudo-header sum for the device, not a finished checksum.
  bool partial = false;
  uint16_t field = 0;     // the checksum field as it arrived (host order)
  uint16_t expected = 0;  // what it should hold (partial: the folded pseudo-header sum)
  bool valid = false;

  std::string ToString() const;  // "TCP 10.244.1.20:40000 -> 10.244.1.11:8080 partial 0x1234 ..."
};

// Judges the L4 checksum of an Ethernet frame. `partial`: the field must be
// the folded pseudo-header sum of the packet's addresses, protocol and L4
// length (0 and 0xffff are the same one's complement value); otherwise the
// full checksum must verify, and an IPv4 UDP checksum of 0 ("none") is
// invalid too: every sender here computes one, so a zero was written on the
// way. nullopt for frames that are not an unfragmented IPv4/IPv6 TCP or UDP
// packet; InvalidArgument for a malformed frame.
absl::StatusOr<std::optional<L4Checksum>> CheckL4Checksum(absl::Span<const uint8_t> frame,
                                                          bool partial);

// A packet socket on one interface of a namespace that keeps, until drained,
// every frame the interface receives (not the ones it sends).
class ChecksumTap {
 public:
  static absl::StatusOr<ChecksumTap> Open(const netlab::Netns& ns, uint32_t ifindex);
  ChecksumTap(ChecksumTap&& other) noexcept;
  ChecksumTap& operator=(ChecksumTap&& other) noexcept;
  ChecksumTap(const ChecksumTap&) = delete;
  ChecksumTap& operator=(const ChecksumTap&) = delete;
  ~ChecksumTap();

  // The TCP/UDP frames received since the last drain, judged; an error when
  // a frame was malformed, cut short or dropped by the socket (a verdict on
  // fewer frames than arrived proves nothing about the rest).
  absl::StatusOr<std::vector<L4Checksum>> Drain();

 private:
  explicit ChecksumTap(int fd, uint32_t ifindex) : fd_(fd), ifindex_(ifindex) {}

  int fd_ = -1;
  uint32_t ifindex_ = 0;
};

// Turns tx checksum offload of `ifname` in `ns` on or off (SIOCETHTOOL
// ETHTOOL_STXCSUM, as `ethtool -K <dev> tx on|off`), and reads it back.
absl::Status SetTxChecksum(const netlab::Netns& ns, absl::string_view ifname, bool on);

// InCsumErrors of TCP (both families), UDP and UDP6 in `ns`
// (/proc/net/snmp and snmp6 as seen from there), summed.
absl::StatusOr<uint64_t> CsumErrors(const netlab::Netns& ns);

}  // namespace dpv2::e2e

#endif  // DPV2_TESTS_E2E_EBPF_CHECKSUM_TAP_H_
