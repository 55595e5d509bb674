// Tables and helpers the core pipeline's unit tests share: a service of one
// backend, pods as endpoint entries, policy allows, conntrack dumps in key
// order (so that two states compare entry by entry).
//
//   ChangeBatch b = OneServiceBatch("10.0.0.1", /*m=*/7);
//   b.endpoints_upsert = {Pod("10.0.0.1", 1, 7, 1000, 0)};
//   REQUIRE(tables.Apply(b).ok());
#ifndef DPV2_TESTS_UNIT_DATAPATH_PIPELINE_FIXTURES_H_
#define DPV2_TESTS_UNIT_DATAPATH_PIPELINE_FIXTURES_H_

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/datapath/conntrack_table.h"
#include "dpv2/batch.h"
#include "dpv2/net.h"

namespace dpv2 {

inline dpv2_addr Addr(const char* text) { return IpAddr::Parse(text)->ToAbi(); }

// 10.96.0.1:80/TCP (service 100, EXT scope) -> backend 1 at `backend`:8080,
// through a lookup table of `m` slots.
inline ChangeBatch OneServiceBatch(const char* backend, uint32_t m) {
  ChangeBatch b;
  BackendEntry be{.id = 1, .value = {}};
  be.value.addr = Addr(backend);
  be.value.port = htons(8080);
  be.value.proto = DPV2_PROTO_TCP;
  be.value.family = DPV2_FAMILY_V4;
  b.backends_upsert = {be};
  b.tables_upsert = {LookupTable{.id = 1, .slots = std::vector<uint32_t>(m, 1)}};
  ServiceEntry s{};
  s.key.addr = Addr("10.96.0.1");
  s.key.port = htons(80);
  s.key.proto = DPV2_PROTO_TCP;
  s.key.family = DPV2_FAMILY_V4;
  s.key.scope = DPV2_LB_SCOPE_EXT;
  s.value.service_id = 100;
  s.value.table_id = 1;
  s.value.backend_count = 1;
  b.services_upsert = {s};
  return b;
}

// A local pod at `addr` behind host-side veth `ifindex`.
inline EndpointEntry Pod(const char* addr, uint32_t id, uint32_t ifindex, uint32_t identity,
                         uint32_t flags) {
  EndpointEntry e{};
  e.key.addr = Addr(addr);
  e.key.family = DPV2_FAMILY_V4;
  e.value = {.endpoint_id = id, .ifindex = ifindex, .identity = identity, .flags = flags};
  const uint8_t mac[6] = {0x0a, 0, 0, 0, 0, static_cast<uint8_t>(ifindex)};
  const uint8_t host_mac[6] = {0x0e, 0, 0, 0, 0, static_cast<uint8_t>(ifindex)};
  std::memcpy(e.value.mac, mac, 6);
  std::memcpy(e.value.host_mac, host_mac, 6);
  return e;
}

// Allows TCP to `port` between `endpoint_id` and identity `peer`.
inline PolicyEntry AllowTcp(uint32_t endpoint_id, uint8_t dir, uint32_t peer, uint16_t port) {
  return {.key = {.prefixlen = DPV2_POLICY_PREFIX_FIXED + 16, .endpoint_id = endpoint_id,
                  .identity = peer, .direction = dir, .proto = DPV2_PROTO_TCP,
                  .dport = htons(port)},
          .value = {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NETWORK,
                    .match_id = 1}};
}

inline std::vector<ConntrackEntry> SortedDump(const ConntrackTable& ct) {
  std::vector<ConntrackEntry> d = ct.Dump();
  std::sort(d.begin(), d.end(), [](const ConntrackEntry& a, const ConntrackEntry& b) {
    return std::memcmp(&a.key, &b.key, sizeof(a.key)) < 0;
  });
  return d;
}

}  // namespace dpv2

#endif  // DPV2_TESTS_UNIT_DATAPATH_PIPELINE_FIXTURES_H_
