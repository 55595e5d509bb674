// The in-place rewrites of dpv2/packet.h with the new address in ABI form,
// for the per-packet pipeline: tables hold dpv2_addr, and building an IpAddr
// for every translated packet only to read its bytes back costs a call and
// a copy. Same bytes as RewriteSource / RewriteDestination.
//
//   const dpv2_backend* b = tables.FindBackend(id);
//   RewriteDestinationAbi(frame, pkt, b->addr, ntohs(b->port));
//   SetEthernet(frame, ep->mac, ep->host_mac);
#ifndef DPV2_CORE_PACKET_REWRITE_H_
#define DPV2_CORE_PACKET_REWRITE_H_

#include <cstdint>

#include "absl/types/span.h"
#include "dpv2/abi/abi.h"
#include "dpv2/packet.h"

namespace dpv2 {

// `addr` is read as an address of pkt.family (its first 4 bytes for IPv4).
void RewriteSourceAbi(absl::Span<uint8_t> frame, const ParsedPacket& pkt, const dpv2_addr& addr,
                      uint16_t port);
void RewriteDestinationAbi(absl::Span<uint8_t> frame, const ParsedPacket& pkt,
                           const dpv2_addr& addr, uint16_t port);

}  // namespace dpv2

#endif  // DPV2_CORE_PACKET_REWRITE_H_
