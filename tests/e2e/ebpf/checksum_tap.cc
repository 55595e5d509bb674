#include "checksum_tap.h"

#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "dpv2/checksum.h"
#include "dpv2/packet.h"

namespace dpv2::e2e {
namespace {

absl::Status Errno(int err, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

// One's complement values: 0x0000 and 0xffff are both zero.
bool SameOnesComplement(uint16_t a, uint16_t b) {
  return a == b || ((a == 0 || a == 0xffff) && (b == 0 || b == 0xffff));
}

}  // namespace

std::string L4Checksum::ToString() const {
  return absl::StrFormat("%s %s field 0x%04x expected 0x%04x %s", tuple.ToString(),
                         partial ? "partial" : "full", field, expected,
                         valid ? "valid" : "INVALID");
}

absl::StatusOr<std::optional<L4Checksum>> CheckL4Checksum(absl::Span<const uint8_t> frame,
                                                          bool partial) {
  const ParseResult r = ParsePacket(frame);
  if (r.drop != DPV2_DROP_NONE) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed frame (drop reason ", r.drop, "): ", DescribePacket(frame)));
  }
  const ParsedPacket& p = r.pkt;
  const bool tcp = p.proto == IPPROTO_TCP;
  if (!r.is_ip || p.is_fragment || (!tcp && p.proto != IPPROTO_UDP)) {
    return std::nullopt;
  }
  // The parser proved the L4 header lies inside the IP packet, and the IP
  // packet inside the frame.
  const size_t l4_len = p.l3_offset + p.l3_len - p.l4_offset;
  const absl::Span<const uint8_t> l4 = frame.subspan(p.l4_offset, l4_len);
  const size_t field_off = tcp ? 16 : 6;
  L4Checksum c{.tuple = p.tuple(),
               .partial = partial,
               .field = static_cast<uint16_t>(l4[field_off] << 8 | l4[field_off + 1])};
  const uint32_t pseudo = PseudoHeaderSum(p.src, p.dst, p.proto, static_cast<uint32_t>(l4_len));
  if (partial) {
    c.expected = ChecksumFold(pseudo);
    c.valid = SameOnesComplement(c.field, c.expected);
    return c;
  }
  std::vector<uint8_t> zeroed(l4.begin(), l4.end());
  zeroed[field_off] = 0;
  zeroed[field_off + 1] = 0;
  c.expected = InternetChecksum(zeroed, pseudo);
  if (!tcp && c.expected == 0) {
    c.expected = 0xffff;  // RFC 768: a computed 0 is sent as all ones
  }
  c.valid = InternetChecksum(l4, pseudo) == 0 && !(!tcp && c.field == 0);
  return c;
}

absl::StatusOr<ChecksumTap> ChecksumTap::Open(const netlab::Netns& ns, uint32_t ifindex) {
  // Protocol 0 at creation: the socket takes no frame before it is bound to
  // the one interface.
  DPV2_ASSIGN_OR_RETURN(int fd, ns.OpenSocket(AF_PACKET, SOCK_RAW, 0));
  ChecksumTap tap(fd, ifindex);
  const int one = 1;
  // Room for every frame of a test's bounded traffic: Drain reports drops.
  const int rcvbuf = 8 << 20;
  sockaddr_ll where{.sll_family = AF_PACKET,
                    .sll_protocol = htons(ETH_P_ALL),
                    .sll_ifindex = static_cast<int>(ifindex)};
  if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof(where)) != 0) {
    return Errno(errno, absl::StrCat("checksum tap on ifindex ", ifindex, " in ", ns.name()));
  }
  return tap;
}

ChecksumTap::ChecksumTap(ChecksumTap&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), ifindex_(other.ifindex_) {}

ChecksumTap& ChecksumTap::operator=(ChecksumTap&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    ifindex_ = other.ifindex_;
  }
  return *this;
}

ChecksumTap::~ChecksumTap() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

absl::StatusOr<std::vector<L4Checksum>> ChecksumTap::Drain() {
  std::vector<L4Checksum> out;
  std::vector<uint8_t> frame(65536 + 256);
  while (true) {
    sockaddr_ll from{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(tpacket_auxdata))];
    iovec iov{.iov_base = frame.data(), .iov_len = frame.size()};
    msghdr msg{.msg_name = &from,
               .msg_namelen = sizeof(from),
               .msg_iov = &iov,
               .msg_iovlen = 1,
               .msg_control = control,
               .msg_controllen = sizeof(control)};
    const ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      return Errno(errno, "checksum tap: recvmsg");
    }
    if (from.sll_pkttype == PACKET_OUTGOING) {
      continue;
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<size_t>(n) > frame.size()) {
      return absl::InternalError(absl::StrCat("checksum tap: a frame of ", n, " bytes cut short"));
    }
    std::optional<tpacket_auxdata> aux;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
        aux.emplace();
        std::memcpy(&*aux, CMSG_DATA(c), sizeof(*aux));
      }
    }
    if (!aux) {
      return absl::InternalError("checksum tap: a frame without PACKET_AUXDATA");
    }
    DPV2_ASSIGN_OR_RETURN(std::optional<L4Checksum> c,
                          CheckL4Checksum(absl::MakeConstSpan(frame.data(), static_cast<size_t>(n)),
                                          (aux->tp_status & TP_STATUS_CSUMNOTREADY) != 0));
    if (c) {
      out.push_back(*c);
    }
  }
  tpacket_stats stats{};
  socklen_t len = sizeof(stats);
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &stats, &len) != 0) {
    return Errno(errno, "checksum tap: PACKET_STATISTICS");
  }
  if (stats.tp_drops != 0) {
    return absl::InternalError(absl::StrCat("checksum tap on ifindex ", ifindex_, ": ",
                                            stats.tp_drops, " frames dropped"));
  }
  return out;
}

absl::Status SetTxChecksum(const netlab::Netns& ns, absl::string_view ifname, bool on) {
  const std::string what =
      absl::StrCat("tx checksum offload ", on ? "on" : "off", " on ", ifname, " in ", ns.name());
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad interface name"));
  }
  DPV2_ASSIGN_OR_RETURN(int fd, ns.OpenSocket(AF_INET, SOCK_DGRAM, 0));
  ifreq req{};
  std::memcpy(req.ifr_name, ifname.data(), ifname.size());
  ethtool_value value{.cmd = ETHTOOL_STXCSUM, .data = on ? 1u : 0u};
  req.ifr_data = reinterpret_cast<char*>(&value);
  int rc = ioctl(fd, SIOCETHTOOL, &req);
  ethtool_value now{.cmd = ETHTOOL_GTXCSUM};
  if (rc == 0) {
    req.ifr_data = reinterpret_cast<char*>(&now);
    rc = ioctl(fd, SIOCETHTOOL, &req);
  }
  const int err = errno;
  close(fd);
  if (rc != 0) {
    return Errno(err, what);
  }
  if ((now.data != 0) != on) {
    return absl::InternalError(
        absl::StrCat(what, ": the device kept it ", now.data ? "on" : "off"));
  }
  return absl::OkStatus();
}

namespace {

// The InCsumErrors column of `section` ("Tcp", "Udp") in /proc/net/snmp's
// text: a header line of names, then a line of values, both "<section>: ".
absl::StatusOr<uint64_t> SnmpInCsumErrors(const std::string& text, absl::string_view section) {
  const std::string prefix = absl::StrCat(section, ":");
  std::vector<absl::string_view> names;  // views into `text`
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.empty() || cols[0] != prefix) {
      continue;
    }
    if (names.empty()) {
      names.assign(cols.begin(), cols.end());
      continue;
    }
    for (size_t i = 1; i < cols.size() && i < names.size(); ++i) {
      uint64_t v = 0;
      if (names[i] == "InCsumErrors" && absl::SimpleAtoi(cols[i], &v)) {
        return v;
      }
    }
    break;
  }
  return absl::NotFoundError(absl::StrCat("/proc/net/snmp: no ", section, " InCsumErrors"));
}

absl::StatusOr<std::string> ReadProcNet(absl::string_view file) {
  // thread-self: the namespace of this thread (Netns::Run's), not of the process.
  const std::string path = absl::StrCat("/proc/thread-self/net/", file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::NotFoundError(absl::StrCat("read ", path));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<uint64_t> CsumErrors(const netlab::Netns& ns) {
  uint64_t total = 0;
  DPV2_RETURN_IF_ERROR(ns.Run([&]() -> absl::Status {
    DPV2_ASSIGN_OR_RETURN(std::string snmp, ReadProcNet("snmp"));
    DPV2_ASSIGN_OR_RETURN(uint64_t tcp, SnmpInCsumErrors(snmp, "Tcp"));
    DPV2_ASSIGN_OR_RETURN(uint64_t udp, SnmpInCsumErrors(snmp, "Udp"));
    DPV2_ASSIGN_OR_RETURN(std::string snmp6, ReadProcNet("snmp6"));
    uint64_t udp6 = 0;
    bool found = false;
    for (absl::string_view line : absl::StrSplit(snmp6, '\n')) {
      std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (cols.size() == 2 && cols[0] == "Udp6InCsumErrors") {
        found = absl::SimpleAtoi(cols[1], &udp6);
      }
    }
    if (!found) {
      return absl::NotFoundError("/proc/net/snmp6: no Udp6InCsumErrors");
    }
    total = tcp + udp + udp6;
    return absl::OkStatus();
  }));
  return total;
}

}  // namespace dpv2::e2e
