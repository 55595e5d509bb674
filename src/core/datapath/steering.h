// Flow steering for a datapath split over several instances that share the
// configuration tables but each keep their own conntrack (DPDK lcores): which
// instance must run a frame so that every packet of a connection, in both
// directions and before and after NAT, meets the same conntrack entries.
//
// RSS (or af_packet fanout) spreads frames by their addresses and ports as
// they are on the wire, and DNAT changes those between the two directions:
// a client's SYN to 10.96.0.10:80 and the backend's reply from 10.0.1.5:8080
// hash apart. The steering key therefore ignores the service side of a
// connection and keeps the side NAT never touches, the client:
//   - the destination is a frontend or a backend (address, port, protocol)
//     and the source is neither: the key is the source (a client's packet);
//   - the source is a frontend or a backend and the destination is neither:
//     the key is the destination (a service's packet to its client);
//   - otherwise (plain flows, pod to pod): a symmetric hash of both ends.
// ICMP errors are steered as the flow they quote, reversed (the direction
// they travel). A connection whose client itself uses a frontend's or a
// backend's address and port as its source falls in the symmetric case in
// one direction only and may split; a client's ephemeral port never does.
//
//   uint32_t h;
//   if (FlowSteeringHash(tables, ParsePacket(frame), &h)) owner = h % lcores;
#ifndef DPV2_CORE_DATAPATH_STEERING_H_
#define DPV2_CORE_DATAPATH_STEERING_H_

#include <cstdint>

#include "core/datapath/datapath_tables.h"
#include "dpv2/packet.h"

namespace dpv2 {

// False for frames that create no connection state (non-IP, malformed,
// fragments): any instance may run them.
bool FlowSteeringHash(const DatapathTables& tables, const ParseResult& parsed, uint32_t* hash);

// The hash FlowSteeringHash gives a connection keyed on its client end
// (address, host-order port): the pipeline keeps a remapped source port on
// the instance of the original one (docs/datapath.md, "Source port
// collisions").
uint32_t ClientSteeringHash(const dpv2_addr& addr, uint16_t port, uint8_t proto, uint8_t family);

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_STEERING_H_
