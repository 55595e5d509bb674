// The eBPF NAT keeps TCP and UDP checksums right for real kernel traffic in
// each checksum state the tc programs meet on veths: CHECKSUM_PARTIAL (the
// senders' tx checksum offload on: the field holds the pseudo-header sum,
// which a DNAT or reverse NAT must move for the new address) and finished
// software sums (offload off: CHECKSUM_NONE, which the receiving stack
// verifies and drops when wrong). A veth hands PARTIAL skbs on unverified,
// so a connection proves nothing there: packet sockets on the receiving pods'
// and the outside client's interfaces judge every segment and datagram by
// the state it arrived in (checksum_tap.h). Needs root and BPF; unprivileged
// it exits 77 (skip) unless CI=true.
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "catch_session.h"
#include "checksum_tap.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "ebpf_node.h"
#include "netlab/netlab.h"
#include "netlab/require_ok.h"

namespace dpv2::e2e {
namespace {

using netlab::Must;
using netlab::RequireOk;
using netlab::TcpExchange;
using netlab::UdpExchange;

// Exchanges per path and protocol in one run: each makes at least one
// translated packet each way (a datagram; a SYN, its data and more).
constexpr int kRounds = 4;

IpAddr Ip(const char* text) { return *IpAddr::Parse(text); }

// ---- the verdict on frames (no namespaces needed) ----

std::vector<uint8_t> UdpFrame() {
  return PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").Udp(40000, 8080).Payload("q1").Build();
}

L4Checksum Judge(const std::vector<uint8_t>& frame, bool partial) {
  absl::StatusOr<std::optional<L4Checksum>> c = CheckL4Checksum(frame, partial);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  REQUIRE(c->has_value());
  return **c;
}

// The pseudo-header sum a sender leaves for the device in a PARTIAL frame.
std::vector<uint8_t> WithPseudoHeaderSum(std::vector<uint8_t> frame) {
  const ParsedPacket p = ParsePacket(frame).pkt;
  const size_t off = p.l4_offset + (p.proto == IPPROTO_TCP ? 16 : 6);
  const uint16_t sum = ChecksumFold(PseudoHeaderSum(
      p.src, p.dst, p.proto, static_cast<uint32_t>(p.l3_offset + p.l3_len - p.l4_offset)));
  frame[off] = sum >> 8;
  frame[off + 1] = sum & 0xff;
  return frame;
}

TEST_CASE("a finished TCP or UDP checksum verifies and one bit off does not, IPv4 and IPv6") {
  const std::vector<std::vector<uint8_t>> good = {
      UdpFrame(), PacketBuilder().IPv4("10.244.1.20", "10.96.0.10").Tcp(40000, 80, kTcpSyn).Build(),
      PacketBuilder().IPv6("fd00:244:1::20", "fd00:96::53").Udp(40000, 53).Payload("q").Build(),
      PacketBuilder()
          .IPv6("fd00:244:1::11", "fd00:244:1::20")
          .Tcp(8080, 40000, kTcpAck | kTcpPsh)
          .Payload("web-1 hi\n")
          .Build()};
  for (const std::vector<uint8_t>& frame : good) {
    INFO(DescribePacket(frame));
    const L4Checksum c = Judge(frame, /*partial=*/false);
    CHECK(c.valid);
    CHECK(c.field == c.expected);
    std::vector<uint8_t> bad = frame;
    const ParsedPacket p = ParsePacket(frame).pkt;
    bad[p.l3_offset + p.l3_len - 1] ^= 0x01;  // the L4 packet's last bit
    CHECK_FALSE(Judge(bad, /*partial=*/false).valid);
  }
  CHECK_FALSE(Judge(PacketBuilder()
                        .IPv4("10.244.1.20", "10.96.0.10")
                        .Tcp(40000, 80, kTcpSyn)
                        .BadChecksum()
                        .Build(),
                    false)
                  .valid);
}

TEST_CASE(
    "a PARTIAL frame must hold the folded pseudo-header sum of its own addresses and length") {
  const std::vector<uint8_t> partial = WithPseudoHeaderSum(UdpFrame());
  const L4Checksum c = Judge(partial, /*partial=*/true);
  CHECK(c.valid);
  CHECK(c.field == c.expected);
  // The same field judged as a finished checksum is wrong: the states differ.
  CHECK_FALSE(Judge(partial, /*partial=*/false).valid);
  // A full checksum where the pseudo-header sum belongs is wrong too.
  CHECK_FALSE(Judge(UdpFrame(), /*partial=*/true).valid);
  // The sum of the address before a DNAT (the VIP) is wrong for the backend.
  std::vector<uint8_t> stale = WithPseudoHeaderSum(
      PacketBuilder().IPv4("10.244.1.20", "10.96.0.53").Udp(40000, 8080).Payload("q1").Build());
  std::vector<uint8_t> dnated = partial;
  const size_t off = ParsePacket(dnated).pkt.l4_offset + 6;
  dnated[off] = stale[off];
  dnated[off + 1] = stale[off + 1];
  CHECK_FALSE(Judge(dnated, /*partial=*/true).valid);
  // The ports are not in the pseudo-header: a port change leaves it as is.
  std::vector<uint8_t> ported = WithPseudoHeaderSum(
      PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").Udp(40000, 53).Payload("q1").Build());
  CHECK(Judge(ported, /*partial=*/true).field == c.field);
  // IPv6 and TCP: the same rule.
  CHECK(Judge(WithPseudoHeaderSum(PacketBuilder()
                                      .IPv6("fd00:244:1::20", "fd00:244:1::11")
                                      .Tcp(40000, 8080, kTcpSyn)
                                      .Build()),
              true)
            .valid);
}

TEST_CASE("an IPv4 UDP checksum of zero is flagged: every sender here computes one") {
  const L4Checksum c = Judge(
      PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").Udp(40000, 8080).UdpZeroChecksum().Build(),
      false);
  CHECK(c.field == 0);
  CHECK_FALSE(c.valid);
}

TEST_CASE("malformed frames are errors and frames other than TCP or UDP are passed over") {
  std::vector<uint8_t> cut = UdpFrame();
  cut.resize(kEthHeaderLen + 20 + 4);  // ends inside the UDP header
  CHECK(absl::IsInvalidArgument(CheckL4Checksum(cut, false).status()));
  const std::vector<uint8_t> short_ihl =
      PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").Udp(40000, 8080).IpHeaderWords(4).Build();
  CHECK(absl::IsInvalidArgument(CheckL4Checksum(short_ihl, false).status()));
  const std::vector<uint8_t> long_udp =
      PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").Udp(40000, 8080).UdpLength(200).Build();
  CHECK(absl::IsInvalidArgument(CheckL4Checksum(long_udp, true).status()));
  CHECK(absl::IsInvalidArgument(CheckL4Checksum({}, false).status()));
  const std::vector<uint8_t> ping =
      PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").IcmpEcho(1, 1).Build();
  CHECK(!Must(CheckL4Checksum(ping, false)).has_value());
  const std::vector<uint8_t> arp = PacketBuilder().EtherType(kEtherTypeArp).Payload("arp").Build();
  CHECK(!Must(CheckL4Checksum(arp, false)).has_value());
  const std::vector<uint8_t> fragment =
      PacketBuilder().IPv4("10.244.1.20", "10.244.1.11").Fragment(10, false).Udp(1, 2).Build();
  CHECK(!Must(CheckL4Checksum(fragment, false)).has_value());
}

// ---- real traffic through the node ----

// The node with one web backend, every sender's tx checksum offload set as
// asked, and a tap on each receiving interface: web-1 (the DNATed forward
// packets of the ClusterIPs and NodePorts), the client pod (the ClusterIPs'
// reverse-NATed replies) and the outside client (the NodePorts' replies).
struct Topology {
  std::unique_ptr<EbpfNode> node;
  std::map<std::string, ChecksumTap> taps;  // by receiver: "web-1", "client", "outside"

  Topology(bool tx_offload, EbpfChecksum tc_object) {
    node = Must(EbpfNode::Start({.web = {{.pod = "web-1"}}}, {.checksum = tc_object}));
    for (const char* pod : {"client", "web-1"}) {
      const netlab::Pod& p = node->pod(pod);
      RequireOk(SetTxChecksum(p.netns(), p.eth0().name, tx_offload));
      taps.emplace(pod, Must(ChecksumTap::Open(p.netns(), p.eth0().ifindex)));
    }
    RequireOk(SetTxChecksum(node->client(), "eth0", tx_offload));
    taps.emplace(
        "outside",
        Must(ChecksumTap::Open(node->client(), Must(node->client().GetInterface("eth0")).ifindex)));
  }

  const netlab::Netns& Receiver(const std::string& name) const {
    return name == "outside" ? node->client() : node->pod(name).netns();
  }
};

// Which translated path a packet seen at `receiver` belongs to ("" for none
// of them): "ClusterIP TCP forward", "NodePort UDP reply", ...
std::string PathOf(const std::string& receiver, const FiveTuple& t) {
  const char* proto = t.proto == L4Proto::kTCP ? "TCP" : "UDP";
  const PodPlan* web1 = nullptr;
  const PodPlan* client = nullptr;
  for (const PodPlan& p : Pods()) {
    if (p.name == "web-1") {
      web1 = &p;
    } else if (p.name == "client") {
      client = &p;
    }
  }
  const bool v6 = !t.src.is_v4();
  const IpAddr client_ip = Ip(v6 ? client->ip6.c_str() : client->ip.c_str());
  const IpAddr web_ip = Ip(v6 ? web1->ip6.c_str() : web1->ip.c_str());
  const IpAddr vip =
      Ip(t.proto == L4Proto::kTCP ? (v6 ? kWebVip6 : kWebVip) : (v6 ? kUdpVip6 : kUdpVip));
  const uint16_t vport = t.proto == L4Proto::kTCP ? 80 : 53;
  const uint16_t node_port = t.proto == L4Proto::kTCP ? kWebNodePort : kUdpNodePort;
  const char* family = v6 ? " IPv6" : "";
  if (receiver == "web-1" && t.dst == web_ip && t.dport == kPodPort) {
    if (t.src == client_ip) {
      return absl::StrCat("ClusterIP", family, " ", proto, " forward");
    }
    if (t.src == Ip(kOutsideIp)) {
      return absl::StrCat("NodePort ", proto, " forward");
    }
  }
  if (receiver == "client" && t.src == vip && t.sport == vport && t.dst == client_ip) {
    return absl::StrCat("ClusterIP", family, " ", proto, " reply");
  }
  if (receiver == "outside" && t.src == Ip(kNodeIp) && t.sport == node_port &&
      t.dst == Ip(kOutsideIp)) {
    return absl::StrCat("NodePort ", proto, " reply");
  }
  return "";
}

// Every translated path: six forward, six reply.
std::vector<std::string> AllPaths() {
  std::vector<std::string> paths;
  for (const char* dir : {"forward", "reply"}) {
    for (const char* proto : {"TCP", "UDP"}) {
      for (const char* svc : {"ClusterIP", "ClusterIP IPv6", "NodePort"}) {
        paths.push_back(absl::StrCat(svc, " ", proto, " ", dir));
      }
    }
  }
  return paths;
}

// kRounds exchanges over each Service path, each one answered. UDP goes
// twice a round: a datagram of 2 bytes ends before the 18 bytes after its
// UDP header that the programs' in-place rewrite reads (bpf/nat.h), so it is
// translated by the general path through the helpers; one of 40 bytes is
// rewritten in place.
void SendThroughServices(const EbpfNode& node) {
  const netlab::Netns& client = node.pod("client").netns();
  for (int i = 0; i < kRounds; ++i) {
    const std::string m = absl::StrCat("m", i);
    CHECK(Must(TcpExchange(client, Ip(kWebVip), 80, m)) == "web-1 " + m);
    CHECK(Must(TcpExchange(client, Ip(kWebVip6), 80, m)) == "web-1 " + m);
    CHECK(Must(TcpExchange(node.client(), Ip(kNodeIp), kWebNodePort, m)) == "web-1 " + m);
    for (const std::string& d : {m, absl::StrCat(m, std::string(38, '.'))}) {
      CHECK(Must(UdpExchange(client, Ip(kUdpVip), 53, d)) == "web-1 " + d);
      CHECK(Must(UdpExchange(client, Ip(kUdpVip6), 53, d)) == "web-1 " + d);
      CHECK(Must(UdpExchange(node.client(), Ip(kNodeIp), kUdpNodePort, d)) == "web-1 " + d);
    }
  }
  // The closing FIN/ACKs are still in flight when the last exchange returns.
  absl::SleepFor(absl::Milliseconds(200));
}

struct PathCount {
  int frames = 0;
  int partial = 0;
};

// Drains every tap: each frame's checksum must be right for the state it
// arrived in. Returns the translated frames seen on each of AllPaths().
std::map<std::string, PathCount> DrainAndJudge(Topology& topo) {
  std::map<std::string, PathCount> paths;
  for (const std::string& path : AllPaths()) {
    paths[path] = {};
  }
  std::vector<std::string> invalid;
  int frames = 0;
  for (auto& [receiver, tap] : topo.taps) {
    for (const L4Checksum& c : Must(tap.Drain())) {
      ++frames;
      const std::string path = PathOf(receiver, c.tuple);
      if (!path.empty()) {
        ++paths[path].frames;
        paths[path].partial += c.partial ? 1 : 0;
      }
      if (!c.valid) {
        invalid.push_back(absl::StrCat("at ", receiver, " (", path.empty() ? "untranslated" : path,
                                       "): ", c.ToString()));
      }
    }
  }
  std::string listing;
  for (size_t i = 0; i < invalid.size() && i < 12; ++i) {
    absl::StrAppend(&listing, "\n  ", invalid[i]);
  }
  INFO(invalid.size() << " of " << frames << " TCP/UDP frames with a wrong checksum:" << listing);
  CHECK(invalid.empty());
  return paths;
}

std::map<std::string, uint64_t> CsumErrorsAt(const Topology& topo) {
  std::map<std::string, uint64_t> errors;
  for (const auto& [receiver, tap] : topo.taps) {
    errors[receiver] = Must(CsumErrors(topo.Receiver(receiver)));
  }
  return errors;
}

// The tc objects the NAT cases run with: the in-place checksum update (the
// kfunc, Linux 6.2+ with BTF) and the helper build, each asked for by name
// (a load that cannot give it fails). A kernel without the kfunc runs the
// helper build only, and says so.
std::vector<EbpfChecksum> TcObjects() {
  static const std::vector<EbpfChecksum> objects = [] {
    absl::StatusOr<std::unique_ptr<Backend>> in_place =
        MakeEbpfBackend({.config = LoaderConfig(), .checksum = EbpfChecksum::kInPlace});
    if (!in_place.ok()) {
      std::fprintf(stderr,
                   "ebpf_csum_test: the in-place tc object does not load here (%s): "
                   "helper object only\n",
                   in_place.status().ToString().c_str());
      return std::vector<EbpfChecksum>{EbpfChecksum::kHelpers};
    }
    return std::vector<EbpfChecksum>{EbpfChecksum::kInPlace, EbpfChecksum::kHelpers};
  }();
  return objects;
}

const char* TcObjectName(EbpfChecksum c) {
  return c == EbpfChecksum::kInPlace   ? "in-place"
         : c == EbpfChecksum::kHelpers ? "helpers"
                                       : "auto";
}

TEST_CASE(
    "with the senders' tx checksum offload on, DNAT and reverse NAT leave every PARTIAL "
    "segment and datagram holding the pseudo-header sum of its new addresses") {
  const EbpfChecksum tc_object = GENERATE(from_range(TcObjects()));
  INFO("tc object: " << TcObjectName(tc_object));
  Topology topo(/*tx_offload=*/true, tc_object);
  SendThroughServices(*topo.node);
  for (const auto& [path, n] : DrainAndJudge(topo)) {
    INFO(path << ": " << n.frames << " frames, " << n.partial << " PARTIAL");
    // Each exchange sent at least one PARTIAL frame this way (a datagram, a
    // SYN or data): otherwise this run did not test the PARTIAL update.
    CHECK(n.partial >= kRounds);
  }
}

TEST_CASE(
    "with the senders' tx checksum offload off, DNAT and reverse NAT keep software checksums "
    "right, and the receivers, which verify them, drop nothing") {
  const EbpfChecksum tc_object = GENERATE(from_range(TcObjects()));
  INFO("tc object: " << TcObjectName(tc_object));
  Topology topo(/*tx_offload=*/false, tc_object);
  const std::map<std::string, uint64_t> before = CsumErrorsAt(topo);
  SendThroughServices(*topo.node);
  for (const auto& [path, n] : DrainAndJudge(topo)) {
    INFO(path << ": " << n.frames << " frames, " << n.partial << " PARTIAL");
    CHECK(n.frames >= kRounds);
    CHECK(n.partial == 0);
  }
  CHECK(CsumErrorsAt(topo) == before);
}

TEST_CASE(
    "a datagram with a wrong checksum stays wrong through the ClusterIP DNAT: the backend's stack "
    "drops it and counts InCsumErrors, and the tap flags it") {
  Topology topo(/*tx_offload=*/false, EbpfChecksum::kAuto);
  const netlab::Pod& client = topo.node->pod("client");
  const netlab::Netns& web = topo.node->pod("web-1").netns();
  const uint64_t before = Must(CsumErrors(web));
  // Sent below the client's stack, as the pod's eth0 would put it on the wire.
  const std::vector<uint8_t> frame = PacketBuilder()
                                         .Eth(client.eth0().mac.bytes, client.host().mac.bytes)
                                         .IPv4(client.ip(), Ip(kUdpVip))
                                         .Udp(40999, 53)
                                         .Payload("corrupt")
                                         .BadChecksum()
                                         .Build();
  const int fd = Must(client.netns().OpenSocket(AF_PACKET, SOCK_RAW, 0));
  absl::Cleanup close_fd = [fd] { close(fd); };
  sockaddr_ll to{.sll_family = AF_PACKET,
                 .sll_protocol = htons(ETH_P_IP),
                 .sll_ifindex = static_cast<int>(client.eth0().ifindex),
                 .sll_halen = 6};
  std::memcpy(to.sll_addr, client.host().mac.bytes.data(), 6);
  REQUIRE(sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
          static_cast<ssize_t>(frame.size()));
  absl::SleepFor(absl::Milliseconds(200));
  CHECK(Must(CsumErrors(web)) == before + 1);
  const std::vector<L4Checksum> seen = Must(topo.taps.at("web-1").Drain());
  REQUIRE(seen.size() == 1);
  INFO(seen[0].ToString());
  CHECK(PathOf("web-1", seen[0].tuple) == "ClusterIP UDP forward");
  CHECK(!seen[0].partial);
  CHECK(!seen[0].valid);
  // A good datagram on the same path still passes and is answered.
  CHECK(Must(UdpExchange(client.netns(), Ip(kUdpVip), 53, "fine")) == "web-1 fine");
  CHECK(Must(CsumErrors(web)) == before + 1);
}

}  // namespace
}  // namespace dpv2::e2e

int main(int argc, char** argv) {
  if (std::optional<int> code = dpv2::e2e::LoaderOrSkip("ebpf_csum_test", argc, argv)) {
    return *code;
  }
  return dpv2::testing::RunCatchSession(argc, argv);
}
