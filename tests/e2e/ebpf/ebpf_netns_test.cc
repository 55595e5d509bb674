// The eBPF backend end to end: real TCP and UDP connections between network
// namespaces, through tc programs on the pods' veths and the node's external
// device, programmed from Kubernetes manifests by the agent's ClusterView.
// Needs root and BPF; unprivileged it exits 77 (skip) unless CI=true.
#include <time.h>
// linux/errqueue.h needs struct timespec first.
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "catch_session.h"
#include "core/status_macros.h"
#include "dpv2/ebpf.h"
#include "ebpf_node.h"
#include "netlab/netlab.h"
#include "netlab/require_ok.h"

namespace dpv2::e2e {
namespace {

using netlab::IsConnectionRefused;
using netlab::Must;
using netlab::RequireOk;
using netlab::ServerName;
using netlab::TcpConnection;
using netlab::TcpExchange;
using netlab::UdpExchange;

// A denied SYN is dropped: the client hears nothing and gives up after this.
constexpr absl::Duration kDeniedWait = absl::Milliseconds(700);

IpAddr Ip(const char* text) { return *IpAddr::Parse(text); }

std::unique_ptr<EbpfNode> StartNode(const ClusterSpec& spec, const NodeOptions& options = {}) {
  return Must(EbpfNode::Start(spec, options));
}

ClusterSpec ThreeWebs() { return {.web = {{.pod = "web-1"}, {.pod = "web-2"}, {.pod = "web-3"}}}; }

// Server name -> how many of `n` new TCP connections it answered.
std::map<std::string, int> SpreadTcp(const netlab::Netns& from, const IpAddr& addr, uint16_t port,
                                     int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    ++seen[ServerName(Must(TcpExchange(from, addr, port, absl::StrCat("c", i))))];
  }
  return seen;
}

TEST_CASE(
    "TCP and UDP from a pod to a ClusterIP reach every ready backend and replies come from the "
    "VIP") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& client = node->pod("client").netns();
  // 60 connections from random source ports over 3 Maglev backends: each
  // gets some (an expected 20; fewer than 5 means the spread is broken).
  std::map<std::string, int> tcp = SpreadTcp(client, Ip(kWebVip), 80, 60);
  INFO("TCP spread: web-1 " << tcp["web-1"] << ", web-2 " << tcp["web-2"] << ", web-3 "
                            << tcp["web-3"]);
  CHECK(tcp.size() == 3);
  for (const char* w : {"web-1", "web-2", "web-3"}) {
    CHECK(tcp[w] >= 5);
  }
  // The kernel accepted the SYN-ACK for the socket connected to the VIP, so
  // it came from the VIP and port; say it once more explicitly.
  TcpConnection c = Must(TcpConnection::Connect(client, Ip(kWebVip), 80));
  CHECK(Must(c.Peer()).first == Ip(kWebVip));
  CHECK(absl::StartsWith(Must(c.Exchange("who")), "web-"));
  // UDP: a connected socket only takes datagrams from 10.96.0.53:53.
  std::map<std::string, int> udp;
  for (int i = 0; i < 45; ++i) {
    ++udp[ServerName(Must(UdpExchange(client, Ip(kUdpVip), 53, absl::StrCat("q", i))))];
  }
  INFO("UDP spread: web-1 " << udp["web-1"] << ", web-2 " << udp["web-2"] << ", web-3 "
                            << udp["web-3"]);
  CHECK(udp.size() == 3);
  // Pod to pod without a Service is a plain flow, delivered too.
  CHECK(Must(TcpExchange(client, node->pod("web-2").ip(), kPodPort, "direct")) == "web-2 direct");
}

TEST_CASE("IPv6 TCP from a pod to the dual-stack Service's IPv6 ClusterIP reaches every backend") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  std::map<std::string, int> seen = SpreadTcp(node->pod("client").netns(), Ip(kWebVip6), 80, 30);
  INFO("IPv6 spread: web-1 " << seen["web-1"] << ", web-2 " << seen["web-2"] << ", web-3 "
                             << seen["web-3"]);
  CHECK(seen.size() == 3);
  TcpConnection c = Must(TcpConnection::Connect(node->pod("client").netns(), Ip(kWebVip6), 80));
  CHECK(Must(c.Peer()).first == Ip(kWebVip6));
}

TEST_CASE("a backend that is not ready gets no new connections") {
  std::unique_ptr<EbpfNode> node =
      StartNode({.web = {{.pod = "web-1"}, {.pod = "web-2", .ready = false, .serving = false}}});
  std::map<std::string, int> seen = SpreadTcp(node->pod("client").netns(), Ip(kWebVip), 80, 20);
  CHECK(seen["web-1"] == 20);
}

TEST_CASE("a Service with no endpoints refuses TCP and UDP at once instead of timing out") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& client = node->pod("client").netns();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> tcp = TcpExchange(client, Ip(kEmptyVip), 80, "x");
  INFO(tcp.status().ToString());
  CHECK(IsConnectionRefused(tcp.status()));
  absl::StatusOr<std::string> udp = UdpExchange(client, Ip(kEmptyVip), 80, "x");
  INFO(udp.status().ToString());
  CHECK(IsConnectionRefused(udp.status()));
  CHECK(absl::Now() - start < absl::Seconds(1));
}

TEST_CASE("a NodePort on the node's address is reached from outside the node") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  std::map<std::string, int> seen = SpreadTcp(node->client(), Ip(kNodeIp), kWebNodePort, 30);
  INFO("NodePort spread: web-1 " << seen["web-1"] << ", web-2 " << seen["web-2"] << ", web-3 "
                                 << seen["web-3"]);
  CHECK(seen.size() >= 2);
  int total = 0;
  for (const auto& [name, n] : seen) {
    CHECK(absl::StartsWith(name, "web-"));
    total += n;
  }
  CHECK(total == 30);
}

TEST_CASE(
    "a NodePort whose backend is on another node is SNATed to the node's address, so the "
    "backend's replies come back through the node") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& outside = node->client();
  // The client (.2) and the other node's backend (.3) share the outside
  // namespace like two hosts on one link: what the backend sends to the
  // client's address goes straight to it. accept_local: a packet from .2
  // reaching .3 over eth0 is no martian, as it would not be on its own host.
  RequireOk(outside.SetSysctl("net.ipv4.conf.all.accept_local", "1"));
  const uint64_t snat_new = Must(node->Counter(DPV2_CNT_SNAT_NEW));
  for (const char* node_ip : {kNodeIp, kNodeIp6}) {
    INFO("to " << node_ip << ":" << kRemoteNodePort);
    // Unless the node rewrites the source, the backend answers the client
    // from its own address, which no client socket accepts. The echo names
    // the source the backend saw: the node's address.
    const std::string seen = absl::StrCat("remote ", node_ip, " ");
    CHECK(Must(TcpExchange(outside, Ip(node_ip), kRemoteNodePort, "tcp")) == seen + "tcp");
    CHECK(Must(UdpExchange(outside, Ip(node_ip), kRemoteNodePort, "udp")) == seen + "udp");
    TcpConnection c = Must(TcpConnection::Connect(outside, Ip(node_ip), kRemoteNodePort));
    for (int i = 0; i < 3; ++i) {
      CHECK(Must(c.Exchange(absl::StrCat("m", i))) == absl::StrCat(seen, "m", i));
    }
  }
  // One SNAT per connection: two TCP and one UDP per family.
  CHECK(Must(node->Counter(DPV2_CNT_SNAT_NEW)) == snat_new + 6);
  // Not SNATed: a pod's connection to the same backend through the ClusterIP
  // (the pod's address routes back to the node), and NodePort connections to
  // backends on this node.
  const netlab::Pod& pod = node->pod("client");
  CHECK(Must(TcpExchange(pod.netns(), Ip(kRemoteVip), 80, "pod")) ==
        absl::StrCat("remote ", pod.ip().ToString(), " pod"));
  CHECK(Must(UdpExchange(pod.netns(), Ip(kRemoteVip6), 80, "pod6")) ==
        absl::StrCat("remote ", pod.addresses().back().ToString(), " pod6"));
  CHECK(absl::StartsWith(Must(TcpExchange(outside, Ip(kNodeIp), kWebNodePort, "np")), "web-"));
  CHECK(Must(node->Counter(DPV2_CNT_SNAT_NEW)) == snat_new + 6);
}

TEST_CASE(
    "the other node's port unreachable about an SNATed NodePort datagram reaches the client, "
    "whose socket is refused") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& outside = node->client();
  // accept_local: as in the SNAT case above (client and backend share the
  // namespace).
  RequireOk(outside.SetSysctl("net.ipv4.conf.all.accept_local", "1"));
  // The backend's host refuses the datagrams the node SNATed: ICMP / ICMPv6
  // port unreachable from the backend's address to the node's, quoting
  // node:port -> backend. Only the node's translation of the error makes
  // it the client's; untranslated it ends in the node's stack and the
  // client waits in vain.
  RequireOk(outside.Exec({"nft", "add table inet dpv2_e2e"}));
  RequireOk(outside.Exec({"nft",
                          "add chain inet dpv2_e2e input { type filter hook input priority 0; }"}));
  RequireOk(outside.Exec({"nft", absl::StrCat("add rule inet dpv2_e2e input ip saddr ", kNodeIp,
                                              " udp dport ", kRemotePort, " reject")}));
  RequireOk(outside.Exec({"nft", absl::StrCat("add rule inet dpv2_e2e input ip6 saddr ",
                                              kNodeIp6, " udp dport ", kRemotePort, " reject")}));
  const uint64_t snat_new = Must(node->Counter(DPV2_CNT_SNAT_NEW));
  for (const char* node_ip : {kNodeIp, kNodeIp6}) {
    INFO("to " << node_ip << ":" << kRemoteNodePort);
    absl::StatusOr<std::string> udp = UdpExchange(outside, Ip(node_ip), kRemoteNodePort, "udp");
    INFO(udp.status().ToString());
    CHECK(IsConnectionRefused(udp.status()));
  }
  CHECK(Must(node->Counter(DPV2_CNT_SNAT_NEW)) == snat_new + 2);
}

TEST_CASE(
    "a NetworkPolicy admits the allowed pod and drops the other, through the Service and "
    "directly") {
  ClusterSpec spec = ThreeWebs();
  spec.web_from_client_only = true;
  std::unique_ptr<EbpfNode> node = StartNode(spec);
  const netlab::Netns& client = node->pod("client").netns();
  const netlab::Netns& intruder = node->pod("intruder").netns();
  CHECK(absl::StartsWith(Must(TcpExchange(client, Ip(kWebVip), 80, "ok")), "web-"));
  absl::StatusOr<std::string> denied = TcpExchange(intruder, Ip(kWebVip), 80, "no", kDeniedWait);
  CHECK(absl::IsDeadlineExceeded(denied.status()));
  absl::StatusOr<std::string> direct =
      TcpExchange(intruder, node->pod("web-1").ip(), kPodPort, "no", kDeniedWait);
  CHECK(absl::IsDeadlineExceeded(direct.status()));
  // The policy names TCP only: UDP to the web pods is not admitted either.
  CHECK(absl::IsDeadlineExceeded(UdpExchange(client, Ip(kUdpVip), 53, "q", kDeniedWait).status()));
}

// Opens `n` connections to the web VIP; remembers which pod serves each.
struct Established {
  std::vector<TcpConnection> conns;
  std::vector<std::string> servers;

  Established(const netlab::Netns& from, const IpAddr& addr, uint16_t port, int n) {
    for (int i = 0; i < n; ++i) {
      TcpConnection c = Must(TcpConnection::Connect(from, addr, port));
      servers.push_back(ServerName(Must(c.Exchange("hello"))));
      conns.push_back(std::move(c));
    }
  }
  // Every connection still answers, from the pod that served it first.
  void RequireAlive(absl::string_view when) {
    for (size_t i = 0; i < conns.size(); ++i) {
      INFO(when << ": connection " << i << " to " << servers[i]);
      CHECK(ServerName(Must(conns[i].Exchange("again"))) == servers[i]);
    }
  }
};

TEST_CASE("a policy change applies to new connections; an established allowed one keeps working") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& client = node->pod("client").netns();
  const netlab::Netns& intruder = node->pod("intruder").netns();
  Established from_client(client, Ip(kWebVip), 80, 4);
  TcpConnection from_intruder = Must(TcpConnection::Connect(intruder, Ip(kWebVip), 80));
  Must(from_intruder.Exchange("before"));

  ClusterSpec restricted = ThreeWebs();
  restricted.web_from_client_only = true;
  RequireOk(node->Reconfigure(restricted));
  from_client.RequireAlive("after the policy");
  CHECK(absl::IsDeadlineExceeded(
      TcpExchange(intruder, Ip(kWebVip), 80, "new", kDeniedWait).status()));
  CHECK(absl::StartsWith(Must(TcpExchange(client, Ip(kWebVip), 80, "new")), "web-"));
  // Forward packets of established flows are re-checked (docs/datapath.md,
  // Cilium's behaviour): the intruder's live connection is cut.
  CHECK(!from_intruder.Exchange("after", kDeniedWait).ok());

  RequireOk(node->Reconfigure(ThreeWebs()));  // the allow-all again admits new connections
  CHECK(absl::StartsWith(Must(TcpExchange(intruder, Ip(kWebVip), 80, "back")), "web-"));
  from_client.RequireAlive("after the policy went");
}

TEST_CASE("a backend change applies to new connections; established ones keep their backend") {
  std::unique_ptr<EbpfNode> node = StartNode({.web = {{.pod = "web-1"}, {.pod = "web-2"}}});
  const netlab::Netns& client = node->pod("client").netns();
  Established before(client, Ip(kWebVip), 80, 12);
  CHECK(std::count(before.servers.begin(), before.servers.end(), "web-3") == 0);

  // web-1 starts terminating (serving, not ready) and web-3 joins.
  RequireOk(node->Reconfigure({.web = {{.pod = "web-1", .ready = false, .terminating = true},
                                       {.pod = "web-2"},
                                       {.pod = "web-3"}}}));
  before.RequireAlive("after web-1 began terminating and web-3 joined");
  std::map<std::string, int> seen = SpreadTcp(client, Ip(kWebVip), 80, 30);
  INFO("new connections: web-1 " << seen["web-1"] << ", web-2 " << seen["web-2"] << ", web-3 "
                                 << seen["web-3"]);
  CHECK(seen["web-1"] == 0);
  CHECK(seen["web-2"] > 0);
  CHECK(seen["web-3"] > 0);
}

TEST_CASE("restarting the loader process mid-traffic breaks no established connection") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& client = node->pod("client").netns();
  Established pods(client, Ip(kWebVip), 80, 6);
  Established outside(node->client(), Ip(kNodeIp), kWebNodePort, 3);
  // Traffic keeps flowing on one more connection while the loader goes away
  // and comes back.
  TcpConnection live = Must(TcpConnection::Connect(client, Ip(kWebVip), 80));
  const std::string live_server = ServerName(Must(live.Exchange("start")));
  std::atomic<bool> stop{false};
  std::atomic<int> exchanges{0};
  std::string failure;
  std::thread traffic([&] {
    while (!stop.load()) {
      absl::StatusOr<std::string> r = live.Exchange("tick");
      if (!r.ok() || ServerName(*r) != live_server) {
        failure = r.ok() ? *r : r.status().ToString();
        return;
      }
      ++exchanges;
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  absl::SleepFor(absl::Milliseconds(100));
  RequireOk(node->KillLoader());
  absl::SleepFor(absl::Milliseconds(200));
  pods.RequireAlive("with no loader running");
  CHECK(node->loader_start_changes() != "empty");  // the first loader wrote everything
  RequireOk(node->StartLoader());
  // The new loader adopted what the pinned maps hold: nothing to rewrite.
  CHECK(node->loader_start_changes() == "empty");
  absl::SleepFor(absl::Milliseconds(200));
  stop = true;
  traffic.join();
  CHECK(failure.empty());
  CHECK(exchanges.load() > 10);
  pods.RequireAlive("after the restart");
  outside.RequireAlive("after the restart");
  // The new loader serves new connections as before.
  std::map<std::string, int> seen = SpreadTcp(client, Ip(kWebVip), 80, 15);
  CHECK(seen.size() >= 2);
  CHECK(absl::StartsWith(Must(TcpExchange(node->client(), Ip(kNodeIp), kWebNodePort, "new")),
                         "web-"));
}

// The node's FORWARD hook drops every packet (an nftables chain in the
// node's own namespace): only what the node's stack forwards meets it.
absl::Status DropForwarded(const netlab::Netns& node) {
  DPV2_RETURN_IF_ERROR(node.Exec({"nft", "add table inet dpv2_e2e"}));
  return node.Exec({"nft",
                    "add chain inet dpv2_e2e forward { type filter hook forward priority 0; "
                    "policy drop; }"});
}

// What pods reach off the node, and the NodePort that outside clients reach.
void CheckOffNodeTraffic(const EbpfNode& node) {
  const netlab::Netns& client = node.pod("client").netns();
  CHECK(Must(TcpExchange(client, Ip(kOutsideIp), kPodPort, "tcp")) == "outside tcp");
  CHECK(Must(UdpExchange(client, Ip(kOutsideIp), kPodPort, "udp")) == "outside udp");
  CHECK(Must(TcpExchange(client, Ip(kOutsideIp6), kPodPort, "tcp6")) == "outside tcp6");
  // A ClusterIP whose backend is off the node: translated, then routed.
  CHECK(Must(TcpExchange(client, Ip(kOutsideVip), 80, "vip")) == "outside vip");
  // NodePort replies leave the pod's veth from the node's own address.
  CHECK(
      absl::StartsWith(Must(TcpExchange(node.client(), Ip(kNodeIp), kWebNodePort, "np")), "web-"));
}

TEST_CASE(
    "host routing forwards pods' off-node traffic and NodePort replies past the node's FORWARD "
    "hook, with no accept_local") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  CHECK(Must(node->node().GetSysctl("net.ipv4.conf.all.accept_local")) == "0");
  RequireOk(DropForwarded(node->node()));
  CheckOffNodeTraffic(*node);
  // Traffic between pods and node-local destinations never needed forwarding.
  CHECK(absl::StartsWith(Must(TcpExchange(node->pod("client").netns(), Ip(kWebVip), 80, "in")),
                         "web-"));
}

TEST_CASE(
    "host routing counts what it routes, and a next hop with no neighbour entry yet is resolved by "
    "the kernel (bpf_redirect_neigh)") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  RequireOk(DropForwarded(node->node()));
  const netlab::Netns& pod = node->pod("client").netns();
  for (const char* to : {kOutsideIp, kOutsideIp6}) {
    INFO(to);
    // No neighbour entry for the outside: the first datagram leaves through
    // the kernel's resolution (FORWARD drops anything the stack forwards).
    RequireOk(node->node().Ip(absl::StrCat(Ip(to).is_v4() ? "-4" : "-6", " neigh flush all")));
    const uint64_t routed = Must(node->Counter(DPV2_CNT_HOST_ROUTED));
    const uint64_t resolved = Must(node->Counter(DPV2_CNT_HOST_ROUTED_NEIGH));
    CHECK(Must(UdpExchange(pod, Ip(to), kPodPort, "first")) == "outside first");
    CHECK(Must(node->Counter(DPV2_CNT_HOST_ROUTED_NEIGH)) == resolved + 1);
    CHECK(Must(node->Counter(DPV2_CNT_HOST_ROUTED)) == routed + 1);
    // The entry now exists: three more go out with a plain redirect. (The
    // replies reach the pod by the from-network program, not the FIB.)
    for (int i = 0; i < 3; ++i) {
      CHECK(Must(UdpExchange(pod, Ip(to), kPodPort, "next")) == "outside next");
    }
    CHECK(Must(node->Counter(DPV2_CNT_HOST_ROUTED_NEIGH)) == resolved + 1);
    CHECK(Must(node->Counter(DPV2_CNT_HOST_ROUTED)) == routed + 4);
  }
}

// The datagrams' arrival interfaces in `at`: `n` one-way UDP datagrams from
// `from`, each from its own ephemeral source port, to `to`:9000.
absl::StatusOr<std::map<int, int>> ArrivalInterfaces(const netlab::Netns& from,
                                                     const netlab::Netns& at, const IpAddr& to,
                                                     int n) {
  constexpr uint16_t kPort = 9000;
  sockaddr_in dest{.sin_family = AF_INET, .sin_port = htons(kPort)};
  std::memcpy(&dest.sin_addr, to.bytes().data(), 4);
  const int one = 1;
  DPV2_ASSIGN_OR_RETURN(int rx, at.OpenSocket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
  absl::Cleanup close_rx = [rx] { close(rx); };
  if (setsockopt(rx, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) != 0 ||
      bind(rx, reinterpret_cast<sockaddr*>(&dest), sizeof(dest)) != 0) {
    return absl::InternalError(absl::StrCat("udp receiver: ", std::strerror(errno)));
  }
  for (int i = 0; i < n; ++i) {
    DPV2_ASSIGN_OR_RETURN(int tx, from.OpenSocket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
    absl::Cleanup close_tx = [tx] { close(tx); };
    if (connect(tx, reinterpret_cast<sockaddr*>(&dest), sizeof(dest)) != 0 ||
        send(tx, "m", 1, 0) != 1) {
      return absl::InternalError(absl::StrCat("udp sender: ", std::strerror(errno)));
    }
  }
  std::map<int, int> seen;
  for (int got = 0; got < n; ++got) {
    pollfd fd{.fd = rx, .events = POLLIN};
    if (poll(&fd, 1, 1500) <= 0) {
      return absl::DeadlineExceededError(absl::StrCat("udp receiver: ", got, " of ", n));
    }
    char data[16];
    char control[128];
    iovec iov{.iov_base = data, .iov_len = sizeof(data)};
    msghdr msg{.msg_iov = &iov,
               .msg_iovlen = 1,
               .msg_control = control,
               .msg_controllen = sizeof(control)};
    if (recvmsg(rx, &msg, 0) < 0) {
      return absl::InternalError(absl::StrCat("udp receiver: ", std::strerror(errno)));
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof(info));
        ++seen[info.ipi_ifindex];
      }
    }
  }
  return seen;
}

TEST_CASE("host routing spreads flows over a multipath route by their ports, as the stack does") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  const netlab::Netns& outside = node->client();
  // A second link to the outside, and a destination behind both links: with
  // hash policy 1 the FIB picks the next hop by addresses AND ports, which
  // it only has if the program passes them.
  RequireOk(netlab::AddVeth(node->node(), "ext1", outside, "eth1"));
  RequireOk(node->node().IpBatch(
      {"addr add 192.168.51.1/24 dev ext1",
       "route add 192.168.60.1/32 nexthop via 192.168.50.2 dev ext0 nexthop via 192.168.51.2 "
       "dev ext1"}));
  RequireOk(outside.IpBatch({"addr add 192.168.51.2/24 dev eth1", "addr add 192.168.60.1/32 dev lo"}));
  RequireOk(node->node().SetSysctl("net.ipv4.fib_multipath_hash_policy", "1"));
  for (const char* key : {"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth1.rp_filter"}) {
    RequireOk(outside.SetSysctl(key, "0"));  // eth1 is not its route back to the pods
  }
  RequireOk(DropForwarded(node->node()));
  const uint64_t routed = Must(node->Counter(DPV2_CNT_HOST_ROUTED));
  constexpr int kFlows = 32;
  const std::map<int, int> seen =
      Must(ArrivalInterfaces(node->pod("client").netns(), outside, Ip("192.168.60.1"), kFlows));
  const int eth0 = static_cast<int>(Must(outside.GetInterface("eth0")).ifindex);
  const int eth1 = static_cast<int>(Must(outside.GetInterface("eth1")).ifindex);
  INFO("via eth0 " << (seen.count(eth0) ? seen.at(eth0) : 0) << ", via eth1 "
                   << (seen.count(eth1) ? seen.at(eth1) : 0));
  // 32 flows on one path by chance: 2^-31.
  CHECK(seen.size() == 2);
  CHECK(seen.count(eth0) == 1);
  CHECK(seen.count(eth1) == 1);
  CHECK(Must(node->Counter(DPV2_CNT_HOST_ROUTED)) == routed + kFlows);
}

TEST_CASE("without host routing the node's stack forwards the same traffic, so FORWARD drops it") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs(), {.host_routing = false});
  CheckOffNodeTraffic(*node);  // accept_local set by the fixture
  CHECK(Must(node->Counter(DPV2_CNT_HOST_ROUTED)) == 0);
  RequireOk(DropForwarded(node->node()));
  const netlab::Netns& client = node->pod("client").netns();
  CHECK(absl::IsDeadlineExceeded(
      TcpExchange(client, Ip(kOutsideIp), kPodPort, "x", kDeniedWait).status()));
  CHECK(absl::IsDeadlineExceeded(
      TcpExchange(client, Ip(kOutsideVip), 80, "x", kDeniedWait).status()));
  CHECK(absl::IsDeadlineExceeded(
      TcpExchange(node->client(), Ip(kNodeIp), kWebNodePort, "x", kDeniedWait).status()));
}

// One UDP datagram from `from` to `to`:9000 with this TTL / hop limit, and
// what became of it: the TTL it arrived with at a socket of `to_ns`, or -1
// and the ICMP type of the error that came back to the sender.
struct Hop {
  int arrived_ttl = -1;
  int icmp_type = -1;
};

absl::StatusOr<Hop> SendWithTtl(const netlab::Netns& from, const netlab::Netns& to_ns,
                                const IpAddr& to, int ttl) {
  constexpr uint16_t kPort = 9000;
  const bool v4 = to.is_v4();
  const int family = v4 ? AF_INET : AF_INET6;
  const int level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
  const int one = 1;
  DPV2_ASSIGN_OR_RETURN(int rx, to_ns.OpenSocket(family, SOCK_DGRAM | SOCK_CLOEXEC));
  DPV2_ASSIGN_OR_RETURN(int tx, from.OpenSocket(family, SOCK_DGRAM | SOCK_CLOEXEC));
  absl::Cleanup close_both = [rx, tx] {
    close(rx);
    close(tx);
  };
  // The receiver binds the destination itself (an address of `to_ns`).
  sockaddr_storage dest{};
  socklen_t len = 0;
  if (v4) {
    auto* d = reinterpret_cast<sockaddr_in*>(&dest);
    d->sin_family = AF_INET;
    d->sin_port = htons(kPort);
    std::memcpy(&d->sin_addr, to.bytes().data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* d = reinterpret_cast<sockaddr_in6*>(&dest);
    d->sin6_family = AF_INET6;
    d->sin6_port = htons(kPort);
    std::memcpy(&d->sin6_addr, to.bytes().data(), 16);
    len = sizeof(sockaddr_in6);
  }
  if (setsockopt(rx, level, v4 ? IP_RECVTTL : IPV6_RECVHOPLIMIT, &one, sizeof(one)) != 0 ||
      bind(rx, reinterpret_cast<sockaddr*>(&dest), len) != 0 ||
      setsockopt(tx, level, v4 ? IP_TTL : IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) != 0 ||
      setsockopt(tx, level, v4 ? IP_RECVERR : IPV6_RECVERR, &one, sizeof(one)) != 0 ||
      connect(tx, reinterpret_cast<sockaddr*>(&dest), len) != 0 || send(tx, "t", 1, 0) != 1) {
    return absl::InternalError(absl::StrCat("udp ttl probe: ", std::strerror(errno)));
  }
  Hop hop;
  pollfd fds[2] = {{.fd = rx, .events = POLLIN}, {.fd = tx, .events = POLLERR}};
  if (poll(fds, 2, 1500) <= 0) {
    return absl::DeadlineExceededError("udp ttl probe: neither arrived nor refused");
  }
  char data[16];
  char control[256];
  iovec iov{.iov_base = data, .iov_len = sizeof(data)};
  msghdr msg{
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
  if (fds[0].revents & POLLIN) {
    if (recvmsg(rx, &msg, 0) < 0) {
      return absl::InternalError(absl::StrCat("udp ttl probe: recvmsg: ", std::strerror(errno)));
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == level && c->cmsg_type == (v4 ? IP_TTL : IPV6_HOPLIMIT)) {
        std::memcpy(&hop.arrived_ttl, CMSG_DATA(c), sizeof(int));
      }
    }
    return hop;
  }
  if (recvmsg(tx, &msg, MSG_ERRQUEUE) < 0) {
    return absl::InternalError(absl::StrCat("udp ttl probe: errqueue: ", std::strerror(errno)));
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == level && c->cmsg_type == (v4 ? IP_RECVERR : IPV6_RECVERR)) {
      sock_extended_err err;
      std::memcpy(&err, CMSG_DATA(c), sizeof(err));
      hop.icmp_type = err.ee_type;
    }
  }
  return hop;
}

TEST_CASE(
    "host routing decrements TTL and hop limit, and leaves TTL 1 to the stack, which answers time "
    "exceeded") {
  std::unique_ptr<EbpfNode> node = StartNode(ThreeWebs());
  // What arrives was routed by the program, not the stack (which answers
  // time exceeded before its FORWARD hook).
  RequireOk(DropForwarded(node->node()));
  const netlab::Netns& pod = node->pod("client").netns();
  for (const char* to : {kOutsideIp, kOutsideIp6}) {
    INFO(to);
    const Hop forwarded = Must(SendWithTtl(pod, node->client(), Ip(to), 64));
    CHECK(forwarded.arrived_ttl == 63);
    // ICMP errors share the kernel's host-wide rate limit (icmp_msgs_per_sec)
    // with every other namespace: a silent probe is tried again.
    absl::StatusOr<Hop> last = SendWithTtl(pod, node->client(), Ip(to), 1);
    for (int attempt = 0; attempt < 3 && absl::IsDeadlineExceeded(last.status()); ++attempt) {
      last = SendWithTtl(pod, node->client(), Ip(to), 1);
    }
    INFO(last.status().ToString());
    REQUIRE(last.ok());
    CHECK(last->arrived_ttl == -1);
    // ICMP time exceeded (11) / ICMPv6 time exceeded (3).
    CHECK(last->icmp_type == (Ip(to).is_v4() ? 11 : 3));
  }
}

TEST_CASE("the manifests name every pod and service the cases rely on") {
  const std::string yaml = ClusterManifests(ThreeWebs());
  for (const PodPlan& p : Pods()) {
    CHECK(absl::StrContains(yaml, absl::StrCat("podIP: ", p.ip)));
  }
  CHECK(absl::StrContains(yaml, kWebVip));
  CHECK(absl::StrContains(yaml, kUdpVip));
  CHECK(absl::StrContains(yaml, kUdpVip6));
  CHECK(absl::StrContains(yaml, absl::StrCat("nodePort: ", kUdpNodePort)));
  CHECK(absl::StrContains(yaml, kEmptyVip));
  CHECK(absl::StrContains(yaml, kOutsideVip));
  CHECK(absl::StrContains(yaml, absl::StrCat("addresses: [", kOutsideIp, "]")));
  CHECK(absl::StrContains(yaml, absl::StrCat("address: \"", kNodeIp6, "\"")));
  CHECK(absl::StrContains(yaml, kRemoteVip6));
  CHECK(absl::StrContains(yaml, absl::StrCat("nodePort: ", kRemoteNodePort)));
  for (const char* ip : {kRemoteIp, kRemoteIp6}) {
    CHECK(absl::StrContains(yaml, absl::StrCat("addresses: [\"", ip, "\"]\n    nodeName: node-b")));
  }
  CHECK(!absl::StrContains(yaml, "NetworkPolicy"));
}

}  // namespace
}  // namespace dpv2::e2e

int main(int argc, char** argv) {
  if (std::optional<int> code = dpv2::e2e::LoaderOrSkip("ebpf_netns_test", argc, argv)) {
    return *code;
  }
  return dpv2::testing::RunCatchSession(argc, argv);
}
