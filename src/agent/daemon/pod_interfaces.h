// How the agent finds a local pod's datapath endpoint on a real node: the
// pod's annotation `dpv2.dev/host-interface` names the host side of its veth
// (in the node's network namespace); the kernel gives that interface's
// ifindex and MAC, and the pod's MAC is the MAC of the veth peer, read across
// namespaces with RTM_GETLINK + IFLA_TARGET_NETNSID (the peer's netns id is
// the link-netnsid of the host side). Annotation `dpv2.dev/pod-mac` overrides
// the peer lookup (for interfaces that are not veths).
//
//   NetlinkLinks links;
//   absl::StatusOr<LocalEndpoint> ep = ResolvePodEndpoint(pod, links);
//   if (!ep.ok()) { /* hold the pod back and retry */ }
#ifndef DPV2_AGENT_DAEMON_POD_INTERFACES_H_
#define DPV2_AGENT_DAEMON_POD_INTERFACES_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/k8s/objects.h"
#include "dpv2/policy.h"

namespace dpv2::agent::daemon {

inline constexpr absl::string_view kHostInterfaceAnnotation = "dpv2.dev/host-interface";
inline constexpr absl::string_view kPodMacAnnotation = "dpv2.dev/pod-mac";

struct LinkInfo {
  uint32_t ifindex = 0;
  std::array<uint8_t, 6> mac{};
  // IFLA_LINK: for a veth, the peer's ifindex (in the peer's namespace).
  uint32_t peer_ifindex = 0;
  // IFLA_LINK_NETNSID: the peer's namespace, as this namespace numbers it.
  std::optional<int32_t> peer_netnsid;
};

// The kernel's view of links; a class so that tests can stand in for it.
class LinkLookup {
 public:
  virtual ~LinkLookup() = default;
  // NotFound when no such interface exists in this namespace.
  virtual absl::StatusOr<LinkInfo> ByName(const std::string& name) = 0;
  // An interface of the namespace `netnsid` (as numbered from this one).
  virtual absl::StatusOr<LinkInfo> InNamespace(int32_t netnsid, uint32_t ifindex) = 0;
};

// rtnetlink (NETLINK_ROUTE) in the calling thread's network namespace.
class NetlinkLinks : public LinkLookup {
 public:
  absl::StatusOr<LinkInfo> ByName(const std::string& name) override;
  absl::StatusOr<LinkInfo> InNamespace(int32_t netnsid, uint32_t ifindex) override;
};

// "02:00:00:00:00:01" (case-insensitive, ':' or '-').
absl::StatusOr<std::array<uint8_t, 6>> ParseMac(absl::string_view text);

// The endpoint of a local pod, or an error naming the pod and what is
// missing (no annotation, no such interface, no peer) so the agent can say
// why the pod is held back.
absl::StatusOr<LocalEndpoint> ResolvePodEndpoint(const k8s::PodObject& pod, LinkLookup& links);

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_POD_INTERFACES_H_
