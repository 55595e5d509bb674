#include "core/datapath/steering.h"

#include <arpa/inet.h>

#include "core/datapath/flat_table.h"

namespace dpv2 {
namespace {

struct End {
  dpv2_addr addr;
  uint16_t port;  // host order
};

struct EndKey {
  dpv2_addr addr;
  uint16_t port;
  uint8_t proto;
  uint8_t family;
};

uint32_t HashEnd(const End& e, uint8_t proto, uint8_t family) {
  const EndKey key{.addr = e.addr, .port = e.port, .proto = proto, .family = family};
  return static_cast<uint32_t>(KeyHash(key));
}

bool ServiceSide(const DatapathTables& tables, const End& e, uint8_t proto, uint8_t family) {
  if (proto != DPV2_PROTO_TCP && proto != DPV2_PROTO_UDP && proto != DPV2_PROTO_SCTP) {
    return false;  // frontends and backends are TCP, UDP or SCTP
  }
  dpv2_lb_key key{};
  key.addr = e.addr;
  key.port = htons(e.port);
  key.proto = proto;
  key.family = family;
  key.scope = DPV2_LB_SCOPE_EXT;
  return tables.FindService(key, KeyHash(key)) != nullptr ||
         tables.IsBackendAddress(family, e.addr, key.port, proto);
}

uint32_t Steer(const DatapathTables& tables, const End& src, const End& dst, uint8_t proto,
               uint8_t family) {
  const bool src_service = ServiceSide(tables, src, proto, family);
  const bool dst_service = ServiceSide(tables, dst, proto, family);
  if (dst_service && !src_service) {
    return HashEnd(src, proto, family);
  }
  if (src_service && !dst_service) {
    return HashEnd(dst, proto, family);
  }
  return HashEnd(src, proto, family) ^ HashEnd(dst, proto, family);
}

}  // namespace

uint32_t ClientSteeringHash(const dpv2_addr& addr, uint16_t port, uint8_t proto, uint8_t family) {
  return HashEnd({addr, port}, proto, family);
}

bool FlowSteeringHash(const DatapathTables& tables, const ParseResult& parsed, uint32_t* hash) {
  const ParsedPacket& pkt = parsed.pkt;
  if (parsed.drop != DPV2_DROP_NONE || !parsed.is_ip || pkt.is_fragment) {
    return false;
  }
  const uint8_t family = static_cast<uint8_t>(pkt.family);
  if (pkt.is_icmp_error && pkt.has_inner) {
    // The quoted packet went the other way: steer as its reverse.
    *hash = Steer(tables, {pkt.inner_dst.ToAbi(), pkt.inner_dport},
                  {pkt.inner_src.ToAbi(), pkt.inner_sport}, pkt.inner_proto, family);
    return true;
  }
  *hash = Steer(tables, {pkt.src.ToAbi(), pkt.sport}, {pkt.dst.ToAbi(), pkt.dport}, pkt.proto,
                family);
  return true;
}

}  // namespace dpv2
