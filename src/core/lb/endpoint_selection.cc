#include "dpv2/endpoint_selection.h"

#include "absl/strings/str_cat.h"

namespace dpv2 {

std::string EndpointString(const IpAddr& addr, uint16_t port) {
  if (addr.is_v4()) {
    return absl::StrCat(addr.ToString(), ":", port);
  }
  return absl::StrCat("[", addr.ToString(), "]:", port);
}

bool ServiceTopologyInfo::UsesClusterEndpoints() const {
  return !internal_policy_local || (externally_accessible && !external_policy_local);
}

bool ServiceTopologyInfo::UsesLocalEndpoints() const {
  return internal_policy_local || (externally_accessible && external_policy_local);
}

CategorizedEndpoints CategorizeEndpoints(absl::Span<const Endpoint> /*endpoints*/,
                                         const ServiceTopologyInfo& /*service*/,
                                         const NodeInfo& /*node*/) {
  return {};  // placeholder: implemented in the next commit
}

}  // namespace dpv2
