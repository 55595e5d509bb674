// ServiceFleet: a synthetic node configuration of N service-backend entries
// (frontends x backends each), for the eBPF scale test and ebpf_bench.
//
// Frontends are ClusterIPs 10.96.x.y:80/TCP (service i), each with its own
// backends 10.(128 + i / 65536).x.y:8080 and a lookup table filling its M
// slots round-robin with them. One local client pod 10.0.1.5 on ifindex 7
// is isolated for egress, with one rule allowing any peer on TCP 8080: a new
// connection pays service lookup, slot pick, two conntrack inserts and two
// policy LPM lookups (exact identity, then wildcard).
//
//   ServiceFleet fleet = ServiceFleet::Make(65536, 16);   // 1,048,576 entries
//   DatapathConfig cfg = fleet.Config();
//   backend->Apply(fleet.Batch());
#ifndef DPV2_TESTS_BENCH_EBPF_SERVICE_FLEET_H_
#define DPV2_TESTS_BENCH_EBPF_SERVICE_FLEET_H_

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dpv2/batch.h"
#include "dpv2/datapath_config.h"
#include "dpv2/net.h"

namespace dpv2::bench {

inline constexpr uint32_t kFleetClientIfindex = 7;
inline constexpr uint32_t kFleetClientEndpoint = 1;

struct ServiceFleet {
  uint32_t services = 0;
  uint32_t backends_per_service = 0;
  uint32_t maglev_size = 0;  // a prime above 10 x backends_per_service

  static ServiceFleet Make(uint32_t services, uint32_t backends_per_service) {
    uint32_t m = backends_per_service * 10 + 1;
    while (!IsPrime(m)) {
      ++m;
    }
    return {.services = services, .backends_per_service = backends_per_service, .maglev_size = m};
  }

  uint64_t entries() const { return uint64_t{services} * backends_per_service; }

  // Map sizes from the fleet; conntrack at the defaults (Cilium's).
  DatapathConfig Config() const {
    return DatapathConfig{.maglev_table_size = maglev_size,
                          .max_services = services,
                          .max_backends = services * backends_per_service,
                          .max_tables = services,
                          .max_endpoints = 16,
                          .max_ipcache = 16,
                          .max_policy_entries = 16};
  }

  static IpAddr Frontend(uint32_t i) { return IpAddr::V4((10u << 24) | (96u << 16) | i); }
  IpAddr BackendAddr(uint32_t id) const {  // id counts from 1
    return IpAddr::V4((10u << 24) | ((128u + id / 65536) << 16) | (id % 65536));
  }

  ChangeBatch Batch() const {
    ChangeBatch b;
    b.backends_upsert.reserve(entries());
    b.tables_upsert.reserve(services);
    b.services_upsert.reserve(services);
    for (uint32_t s = 0; s < services; ++s) {
      LookupTable t{.id = s + 1, .slots = std::vector<uint32_t>(maglev_size)};
      const uint32_t first = s * backends_per_service + 1;
      for (uint32_t k = 0; k < backends_per_service; ++k) {
        BackendEntry be{.id = first + k};
        be.value.addr = BackendAddr(first + k).ToAbi();
        be.value.port = htons(8080);
        be.value.proto = DPV2_PROTO_TCP;
        be.value.family = DPV2_FAMILY_V4;
        b.backends_upsert.push_back(be);
      }
      for (uint32_t slot = 0; slot < maglev_size; ++slot) {
        t.slots[slot] = first + slot % backends_per_service;
      }
      b.tables_upsert.push_back(std::move(t));
      ServiceEntry svc{};
      svc.key.addr = Frontend(s).ToAbi();
      svc.key.port = htons(80);
      svc.key.proto = DPV2_PROTO_TCP;
      svc.key.family = DPV2_FAMILY_V4;
      svc.key.scope = DPV2_LB_SCOPE_EXT;
      svc.value.service_id = s + 1;
      svc.value.table_id = s + 1;
      svc.value.backend_count = static_cast<uint16_t>(backends_per_service);
      b.services_upsert.push_back(svc);
    }
    EndpointEntry client{};
    client.key.addr = IpAddr::V4((10u << 24) | (1u << 8) | 5).ToAbi();
    client.key.family = DPV2_FAMILY_V4;
    client.value = {.endpoint_id = kFleetClientEndpoint, .ifindex = kFleetClientIfindex,
                    .identity = 1000, .flags = DPV2_EP_F_EGRESS_POLICY};
    b.endpoints_upsert.push_back(client);
    PolicyEntry allow{};
    allow.key = {.prefixlen = DPV2_POLICY_PREFIX_FIXED + 16, .endpoint_id = kFleetClientEndpoint,
                 .identity = 0, .direction = DPV2_DIR_EGRESS, .proto = DPV2_PROTO_TCP,
                 .dport = htons(8080)};
    allow.value = {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NETWORK, .match_id = 1};
    b.policy_upsert.push_back(allow);
    return b;
  }

 private:
  static bool IsPrime(uint32_t n) {
    if (n < 2) {
      return false;
    }
    for (uint32_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        return false;
      }
    }
    return true;
  }
};

}  // namespace dpv2::bench

#endif  // DPV2_TESTS_BENCH_EBPF_SERVICE_FLEET_H_
