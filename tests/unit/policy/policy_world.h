// A test harness around PolicyState: applies every Diff() to an in-memory
// datapath (endpoints, ipcache, PolicyMap) the way a backend would, and
// answers "is this connection allowed" with the lookup every backend does.
#ifndef DPV2_TESTS_UNIT_POLICY_POLICY_WORLD_H_
#define DPV2_TESTS_UNIT_POLICY_POLICY_WORLD_H_

#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/policy/policy_map.h"
#include "dpv2/policy_state.h"

namespace dpv2::testing {

struct Conn {
  bool allowed = false;
  PolicyDecision egress;   // kNoMatch with egress_checked false: not isolated
  PolicyDecision ingress;
  bool egress_checked = false;
  bool ingress_checked = false;
};

class PolicyWorld {
 public:
  PolicyWorld() : state_({.node_name = "node-1"}) {}

  PolicyState& state() { return state_; }

  // Applies Diff() and acknowledges it; returns the batch.
  ChangeBatch Sync();
  // Applies only part of a batch (for intermediate-state tests).
  void ApplyUpserts(const ChangeBatch& b);
  void ApplyDeletes(const ChangeBatch& b);

  void Namespace(const std::string& name, Labels labels = {});
  // A local pod with one IPv4 address.
  void Pod(const std::string& ns, const std::string& name, Labels labels, const std::string& ip,
           std::vector<ContainerPort> ports = {}, bool local = true, bool host_network = false);

  Conn Check(const std::string& src_ip, const std::string& dst_ip, uint16_t port,
             L4Proto proto = L4Proto::kTCP) const;
  bool Allowed(const std::string& src_ip, const std::string& dst_ip, uint16_t port,
               L4Proto proto = L4Proto::kTCP) const {
    return Check(src_ip, dst_ip, port, proto).allowed;
  }

  uint32_t IdentityOfIp(const IpAddr& ip) const;
  const dpv2_endpoint_value* Endpoint(const std::string& ip) const;
  size_t policy_entries() const { return map_.size(); }
  size_t ipcache_entries() const { return ipcache_by_prefix_.size(); }

 private:
  PolicyState state_;
  absl::flat_hash_map<IpAddr, dpv2_endpoint_value> endpoints_;
  absl::flat_hash_map<Prefix, uint32_t> ipcache_by_prefix_;
  PolicyMap map_;
};

IpAddr Ip(const std::string& text);

}  // namespace dpv2::testing

#endif  // DPV2_TESTS_UNIT_POLICY_POLICY_WORLD_H_
