// ARP replies and IPv6 neighbour advertisements for addresses a box answers
// for (an appliance's VIPs), so that routers and hosts on its ports find them
// without static neighbour entries. Pure bytes, no DPDK: the worker calls it
// for frames the datapath passed (non-IP frames and neighbour discovery are
// not the datapath's business, docs/datapath.md) and sends the reply back by
// the input port.
//
//   NeighborAnswers answers({*IpAddr::Parse("10.0.0.100")});
//   std::optional<std::vector<uint8_t>> reply = answers.Reply(frame, port_mac);
//   if (reply) { /* transmit *reply on the input port */ }
#ifndef DPV2_BACKENDS_DPDK_NEIGHBOR_REPLY_H_
#define DPV2_BACKENDS_DPDK_NEIGHBOR_REPLY_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/types/span.h"
#include "dpv2/net.h"

namespace dpv2::dpdk {

class NeighborAnswers {
 public:
  explicit NeighborAnswers(const std::vector<IpAddr>& addresses)
      : addresses_(addresses.begin(), addresses.end()) {}

  bool empty() const { return addresses_.empty(); }

  // The reply to `frame` when it is an ARP request (Ethernet/IPv4, one
  // optional 802.1Q tag kept) or an IPv6 neighbour solicitation (hop limit
  // 255, no extension headers) for one of the addresses, sent from `mac`;
  // nullopt for anything else, including gratuitous ARP and malformed frames.
  std::optional<std::vector<uint8_t>> Reply(absl::Span<const uint8_t> frame,
                                            const std::array<uint8_t, 6>& mac) const;

 private:
  absl::flat_hash_set<IpAddr> addresses_;
};

}  // namespace dpv2::dpdk

#endif  // DPV2_BACKENDS_DPDK_NEIGHBOR_REPLY_H_
