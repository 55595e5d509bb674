#include "agent/daemon/pod_interfaces.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dpv2::agent::daemon {
namespace {

// Closes the socket on every path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) {
      close(fd);
    }
  }
};

void AddAttr(std::vector<uint8_t>& msg, uint16_t type, const void* data, size_t len) {
  size_t offset = msg.size();
  msg.resize(offset + RTA_SPACE(len));
  auto* rta = reinterpret_cast<rtattr*>(msg.data() + offset);
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(len);
  std::memcpy(RTA_DATA(rta), data, len);
}

// One RTM_GETLINK request and its RTM_NEWLINK answer, parsed. `what` names
// the interface in errors.
absl::StatusOr<LinkInfo> GetLink(uint32_t ifindex, const std::string& name,
                                 std::optional<int32_t> netnsid, const std::string& what) {
  Fd sock{socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)};
  if (sock.fd < 0) {
    return absl::InternalError(absl::StrCat(what, ": netlink socket: ", strerror(errno)));
  }
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  setsockopt(sock.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::vector<uint8_t> msg(NLMSG_SPACE(sizeof(ifinfomsg)));
  auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = 1;
  auto* ifi = reinterpret_cast<ifinfomsg*>(NLMSG_DATA(nlh));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(ifindex);
  if (!name.empty()) {
    AddAttr(msg, IFLA_IFNAME, name.c_str(), name.size() + 1);
  }
  if (netnsid) {
    int32_t id = *netnsid;
    AddAttr(msg, IFLA_TARGET_NETNSID, &id, sizeof(id));
  }
  uint32_t mask = RTEXT_FILTER_SKIP_STATS;
  AddAttr(msg, IFLA_EXT_MASK, &mask, sizeof(mask));
  nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  nlh->nlmsg_len = msg.size();
  if (send(sock.fd, msg.data(), msg.size(), 0) < 0) {
    return absl::InternalError(absl::StrCat(what, ": netlink send: ", strerror(errno)));
  }
  std::vector<uint8_t> buf(32768);
  ssize_t received = recv(sock.fd, buf.data(), buf.size(), 0);
  if (received < 0) {
    return absl::InternalError(absl::StrCat(what, ": netlink recv: ", strerror(errno)));
  }
  int n = static_cast<int>(received);
  for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      int err = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      if (err == ENODEV) {
        return absl::NotFoundError(absl::StrCat(what, ": no such interface"));
      }
      return absl::UnavailableError(absl::StrCat(what, ": ", strerror(err)));
    }
    if (h->nlmsg_type != RTM_NEWLINK) {
      continue;
    }
    auto* info = reinterpret_cast<ifinfomsg*>(NLMSG_DATA(h));
    LinkInfo link{.ifindex = static_cast<uint32_t>(info->ifi_index)};
    bool have_mac = false;
    int len = IFLA_PAYLOAD(h);
    for (auto* rta = IFLA_RTA(info); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
      if (rta->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(rta) == 6) {
        std::memcpy(link.mac.data(), RTA_DATA(rta), 6);
        have_mac = true;
      } else if (rta->rta_type == IFLA_LINK && RTA_PAYLOAD(rta) >= 4) {
        link.peer_ifindex = *reinterpret_cast<uint32_t*>(RTA_DATA(rta));
      } else if (rta->rta_type == IFLA_LINK_NETNSID && RTA_PAYLOAD(rta) >= 4) {
        link.peer_netnsid = *reinterpret_cast<int32_t*>(RTA_DATA(rta));
      }
    }
    if (!have_mac) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": has no Ethernet address"));
    }
    return link;
  }
  return absl::InternalError(absl::StrCat(what, ": no RTM_NEWLINK in the netlink answer"));
}

}  // namespace

absl::StatusOr<LinkInfo> NetlinkLinks::ByName(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("interface \"", name, "\": names are 1-", IFNAMSIZ - 1, " bytes"));
  }
  return GetLink(0, name, std::nullopt, absl::StrCat("interface ", name));
}

absl::StatusOr<LinkInfo> NetlinkLinks::InNamespace(int32_t netnsid, uint32_t ifindex) {
  return GetLink(ifindex, "", netnsid,
                 absl::StrCat("interface ", ifindex, " of netns id ", netnsid));
}

absl::StatusOr<std::array<uint8_t, 6>> ParseMac(absl::string_view text) {
  std::array<uint8_t, 6> mac{};
  if (text.size() != 17) {
    return absl::InvalidArgumentError(absl::StrCat("MAC \"", text, "\": not 6 hex pairs"));
  }
  for (int i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':' && text[i * 3 - 1] != '-') {
      return absl::InvalidArgumentError(absl::StrCat("MAC \"", text, "\": bad separator"));
    }
    int value = 0;
    for (char c : text.substr(i * 3, 2)) {
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat("MAC \"", text, "\": not hex"));
      }
      value = value * 16 + d;
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

absl::StatusOr<LocalEndpoint> ResolvePodEndpoint(const k8s::PodObject& pod, LinkLookup& links) {
  std::string who = absl::StrCat("pod ", pod.info.namespace_name, "/", pod.info.name);
  auto annotation = [&pod](absl::string_view key) -> const std::string* {
    auto it = pod.annotations.find(std::string(key));
    return it == pod.annotations.end() ? nullptr : &it->second;
  };
  const std::string* ifname = annotation(kHostInterfaceAnnotation);
  if (ifname == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, ": no annotation ", kHostInterfaceAnnotation, " naming its host interface"));
  }
  absl::StatusOr<LinkInfo> host = links.ByName(*ifname);
  if (!host.ok()) {
    return absl::Status(host.status().code(), absl::StrCat(who, ": ", host.status().message()));
  }
  LocalEndpoint ep{.ifindex = host->ifindex, .host_mac = host->mac};
  if (const std::string* mac = annotation(kPodMacAnnotation)) {
    absl::StatusOr<std::array<uint8_t, 6>> parsed = ParseMac(*mac);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": annotation ", kPodMacAnnotation,
                                                     ": ", parsed.status().message()));
    }
    ep.mac = *parsed;
    return ep;
  }
  if (!host->peer_netnsid || host->peer_ifindex == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, ": interface ", *ifname,
                     " has no peer in another namespace (not a veth?); set annotation ",
                     kPodMacAnnotation));
  }
  absl::StatusOr<LinkInfo> peer = links.InNamespace(*host->peer_netnsid, host->peer_ifindex);
  if (!peer.ok()) {
    return absl::Status(peer.status().code(),
                        absl::StrCat(who, ": peer of ", *ifname, ": ", peer.status().message()));
  }
  ep.mac = peer->mac;
  return ep;
}

}  // namespace dpv2::agent::daemon
