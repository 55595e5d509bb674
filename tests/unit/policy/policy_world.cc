#include "policy_world.h"

#include <catch2/catch.hpp>

namespace dpv2::testing {

IpAddr Ip(const std::string& text) { return IpAddr::Parse(text).value(); }

namespace {
Prefix PrefixOf(const dpv2_ipcache_key& k) {
  const Family f = k.family == DPV2_FAMILY_V6 ? Family::kV6 : Family::kV4;
  return Prefix::Make(IpAddr::FromAbi(k.addr, f), static_cast<int>(k.prefixlen) - 32).value();
}
IpAddr IpOf(const dpv2_endpoint_key& k) {
  return IpAddr::FromAbi(k.addr, k.family == DPV2_FAMILY_V6 ? Family::kV6 : Family::kV4);
}
}  // namespace

void PolicyWorld::ApplyUpserts(const ChangeBatch& b) {
  for (const EndpointEntry& e : b.endpoints_upsert) {
    endpoints_[IpOf(e.key)] = e.value;
  }
  for (const IpcacheEntry& e : b.ipcache_upsert) {
    ipcache_by_prefix_[PrefixOf(e.key)] = e.value.identity;
  }
  for (const PolicyEntry& e : b.policy_upsert) {
    REQUIRE(map_.Upsert(e.key, e.value).ok());
  }
}

void PolicyWorld::ApplyDeletes(const ChangeBatch& b) {
  for (const dpv2_policy_key& k : b.policy_delete) {
    REQUIRE(map_.Erase(k));
  }
  for (const dpv2_ipcache_key& k : b.ipcache_delete) {
    REQUIRE(ipcache_by_prefix_.erase(PrefixOf(k)) == 1);
  }
  for (const dpv2_endpoint_key& k : b.endpoints_delete) {
    REQUIRE(endpoints_.erase(IpOf(k)) == 1);
  }
}

ChangeBatch PolicyWorld::Sync() {
  ChangeBatch b = state_.Diff();
  ApplyUpserts(b);
  ApplyDeletes(b);
  state_.Acknowledge(b);
  // Acknowledged: nothing left to do.
  REQUIRE(state_.Diff().empty());
  return b;
}

void PolicyWorld::Namespace(const std::string& name, Labels labels) {
  REQUIRE(state_.SetNamespace({.name = name, .labels = std::move(labels)}).ok());
}

void PolicyWorld::Pod(const std::string& ns, const std::string& name, Labels labels,
                      const std::string& ip, std::vector<ContainerPort> ports, bool local,
                      bool host_network) {
  PodInfo pod{.namespace_name = ns,
              .name = name,
              .labels = std::move(labels),
              .ips = {Ip(ip)},
              .node_name = local ? "node-1" : "node-2",
              .host_network = host_network,
              .container_ports = std::move(ports)};
  std::optional<LocalEndpoint> ep;
  if (local) {
    ep = LocalEndpoint{.ifindex = 100 + static_cast<uint32_t>(Ip(ip).bytes()[3])};
  }
  absl::Status s = state_.SetPod(pod, ep);
  INFO(s.message());
  REQUIRE(s.ok());
}

uint32_t PolicyWorld::IdentityOfIp(const IpAddr& ip) const {
  if (auto it = endpoints_.find(ip); it != endpoints_.end()) {
    return it->second.identity;
  }
  for (int len = ip.is_v4() ? 32 : 128; len >= 0; --len) {
    if (auto it = ipcache_by_prefix_.find(Prefix::Make(ip, len).value());
        it != ipcache_by_prefix_.end()) {
      return it->second;
    }
  }
  return DPV2_IDENTITY_WORLD;
}

const dpv2_endpoint_value* PolicyWorld::Endpoint(const std::string& ip) const {
  auto it = endpoints_.find(Ip(ip));
  return it == endpoints_.end() ? nullptr : &it->second;
}

Conn PolicyWorld::Check(const std::string& src_ip, const std::string& dst_ip, uint16_t port,
                        L4Proto proto) const {
  const IpAddr src = Ip(src_ip), dst = Ip(dst_ip);
  const uint32_t src_id = IdentityOfIp(src), dst_id = IdentityOfIp(dst);
  Conn c{.allowed = true};
  if (auto it = endpoints_.find(src);
      it != endpoints_.end() && (it->second.flags & DPV2_EP_F_EGRESS_POLICY)) {
    c.egress_checked = true;
    c.egress = map_.Lookup(it->second.endpoint_id, DPV2_DIR_EGRESS, dst_id,
                           static_cast<uint8_t>(proto), port);
    c.allowed = c.allowed && c.egress.allowed();
  }
  if (auto it = endpoints_.find(dst);
      it != endpoints_.end() && (it->second.flags & DPV2_EP_F_INGRESS_POLICY)) {
    c.ingress_checked = true;
    c.ingress = map_.Lookup(it->second.endpoint_id, DPV2_DIR_INGRESS, src_id,
                            static_cast<uint8_t>(proto), port);
    c.allowed = c.allowed && c.ingress.allowed();
  }
  return c;
}

}  // namespace dpv2::testing
