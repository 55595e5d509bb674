// Service and conntrack fixtures: ClusterIP, NodePort, LoadBalancer and
// external IPs; reverse NAT; source ranges; affinity; Maglev; REJECT; Local
// traffic policy and its two scopes; terminating backends; the TCP state
// machine, timeouts and garbage collection; ICMP errors; malformed frames;
// anti-spoofing; non-IP and VLAN frames. IPv4 and IPv6; TCP, UDP and SCTP.
#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "dpv2/abi/hash.h"
#include "dpv2/maglev.h"
#include "fixtures.h"

namespace dpv2::conformance {
namespace {

void AddClusterIpCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  cases.push_back({
      .proves = "a TCP SYN from a pod to a ClusterIP is DNATed to its remote backend and passed "
                "on, creating a SERVICE and a flow conntrack entry",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {Ct(Counters(Events(ClientToBackend(kWebConn, kTcpSyn),
                                   {TraceNew(T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080),
                                             kVip4, 80)}),
                            {{DPV2_CNT_SERVICE_NEW, 1},
                             {DPV2_CNT_CT_CREATED, 2},
                             {DPV2_CNT_PASSED, 1},
                             {DPV2_CNT_PACKETS, 1}}),
                   2)},
  });
  cases.push_back({
      .proves = "the reply of a TCP ClusterIP connection is reverse-NATed to the frontend and "
                "redirected to the client pod; later packets emit no events",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {ClientToBackend(kWebConn, kTcpSyn),
                Counters(Events(BackendToClient(kWebConn, kTcpSyn | kTcpAck),
                                {TraceReply(T(L4Proto::kTCP, kVip4, 80, kPodA.v4, 40000))}),
                         {{DPV2_CNT_REV_NAT, 1}, {DPV2_CNT_REDIRECTED, 1}}),
                Counters(ClientToBackend(kWebConn, kTcpAck, 1001, 5001),
                         {{DPV2_CNT_SERVICE_ESTABLISHED, 1}, {DPV2_CNT_SERVICE_NEW, 0}}),
                BackendToClient(kWebConn, kTcpAck | kTcpPsh, 5001, 1001)},
  });
  {
    const TcpConn c6{kPodA.v6, 40000, kVip6, 80, kRemote1v6, 8080};
    cases.push_back({
        .proves = "an IPv6 TCP connection to a ClusterIP is DNATed and its reply reverse-NATed",
        .config = cfg,
        .services = {Svc("web6", kVip6, L4Proto::kTCP, 80, 8080, {{.ip = kRemote1v6}})},
        .endpoints = LocalPods(),
        .steps = {Events(ClientToBackend(c6, kTcpSyn),
                         {TraceNew(T(L4Proto::kTCP, kPodA.v6, 40000, kRemote1v6, 8080), kVip6,
                                   80)}),
                  Events(BackendToClient(c6, kTcpSyn | kTcpAck),
                         {TraceReply(T(L4Proto::kTCP, kVip6, 80, kPodA.v6, 40000))}),
                  Events(ClientToBackend(c6, kTcpAck, 1001, 5001), {})},
    });
  }
  struct ProtoCase {
    const char* what;
    L4Proto proto;
    const char* vip;
    const char* backend;
    const char* client;
  };
  for (const ProtoCase& pc : {
           ProtoCase{"a UDP datagram from a pod to an IPv4 ClusterIP is DNATed and the reply "
                     "reverse-NATed",
                     L4Proto::kUDP, kVip4, kRemote1v4, kPodA.v4},
           ProtoCase{"a UDP datagram from a pod to an IPv6 ClusterIP is DNATed and the reply "
                     "reverse-NATed",
                     L4Proto::kUDP, kVip6, kRemote1v6, kPodA.v6},
           ProtoCase{"an SCTP INIT from a pod to an IPv4 ClusterIP is DNATed (CRC32c "
                     "recomputed) and the INIT-ACK reverse-NATed",
                     L4Proto::kSCTP, kVip4, kRemote1v4, kPodA.v4},
           ProtoCase{"an SCTP INIT from a pod to an IPv6 ClusterIP is DNATed and the INIT-ACK "
                     "reverse-NATed",
                     L4Proto::kSCTP, kVip6, kRemote1v6, kPodA.v6},
       }) {
    auto l4 = [&](PacketBuilder b, uint16_t sport, uint16_t dport, bool reply) {
      if (pc.proto == L4Proto::kUDP) {
        b.Udp(sport, dport).Payload("query");
      } else {
        b.Sctp(sport, dport, reply ? SctpChunk::kInitAck : SctpChunk::kInit, reply ? 77 : 0);
      }
      return b;
    };
    cases.push_back({
        .proves = pc.what,
        .config = cfg,
        .services = {Svc("dns", pc.vip, pc.proto, 53, 5353, {{.ip = pc.backend}})},
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromPod(kPodA, l4(Pkt(pc.client, pc.vip), 33000, 53, false)),
                              l4(Pkt(pc.client, pc.backend), 33000, 5353, false)),
                         {TraceNew(T(pc.proto, pc.client, 33000, pc.backend, 5353), pc.vip, 53)}),
                  Events(Redirect(FromNet(l4(Pkt(pc.backend, pc.client), 5353, 33000, true)),
                                  kPodA, l4(Pkt(pc.vip, pc.client), 53, 33000, true)),
                         {TraceReply(T(pc.proto, pc.vip, 53, pc.client, 33000))}),
                  Events(Pass(FromPod(kPodA, l4(Pkt(pc.client, pc.vip), 33000, 53, false)),
                              l4(Pkt(pc.client, pc.backend), 33000, 5353, false)),
                         {})},
    });
  }
  for (bool v6 : {false, true}) {
    const char* vip = v6 ? kVip6 : kVip4;
    const char* a = v6 ? kPodA.v6 : kPodA.v4;
    const char* b = v6 ? kPodB.v6 : kPodB.v4;
    cases.push_back({
        .proves = v6 ? "an IPv6 ClusterIP connection to a backend on this node is redirected to "
                       "the backend pod with its MACs, and the backend's reply to the client pod"
                     : "an IPv4 ClusterIP connection to a backend on this node is redirected to "
                       "the backend pod with its MACs, and the backend's reply to the client pod",
        .config = cfg,
        .services = {Svc("local", vip, L4Proto::kTCP, 80, 8080, {{.ip = b, .node = "node-a"}})},
        .endpoints = LocalPods(),
        .steps = {Events(Redirect(FromPod(kPodA, Pkt(a, vip).Tcp(40000, 80, kTcpSyn)), kPodB,
                                  Pkt(a, b).Tcp(40000, 8080, kTcpSyn)),
                         {TraceNew(T(L4Proto::kTCP, a, 40000, b, 8080), vip, 80)}),
                  Events(Redirect(FromPod(kPodB, Pkt(b, a).Tcp(8080, 40000, kTcpSyn | kTcpAck)),
                                  kPodA, Pkt(vip, a).Tcp(80, 40000, kTcpSyn | kTcpAck)),
                         {TraceReply(T(L4Proto::kTCP, vip, 80, a, 40000))})},
    });
  }
}

void AddExternalFrontendCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  {
    const uint16_t p = SnatPort(L4Proto::kTCP, kClient4, 50000, kNode4, 30080);
    cases.push_back({
        .proves = "a TCP SYN from the network to a NodePort on the node's IPv4 address is DNATed "
                  "to the remote backend and SNATed to the node address, and the reply goes "
                  "back to the client from the NodePort",
        .config = cfg,
        .services = {NodePort(WebService(), 30080)},
        .endpoints = LocalPods(),
        .steps = {Counters(Events(Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)),
                                       Pkt(kNode4, kRemote1v4).Tcp(p, 8080, kTcpSyn)),
                                  {TraceNew(T(L4Proto::kTCP, kClient4, 50000, kRemote1v4, 8080),
                                            kNode4, 30080)}),
                           {{DPV2_CNT_SERVICE_NEW, 1},
                            {DPV2_CNT_SNAT_NEW, 1},
                            {DPV2_CNT_CT_CREATED, 2}}),
                  Counters(
                      Events(Pass(FromNet(Pkt(kRemote1v4, kNode4).Tcp(8080, p, kTcpSyn | kTcpAck)),
                                  Pkt(kNode4, kClient4).Tcp(30080, 50000, kTcpSyn | kTcpAck)),
                             {TraceReply(T(L4Proto::kTCP, kNode4, 30080, kClient4, 50000))}),
                      {{DPV2_CNT_REV_NAT, 1}}),
                  Counters(Events(Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpAck)
                                                    .Seq(1001)
                                                    .Ack(5001)),
                                       Pkt(kNode4, kRemote1v4).Tcp(p, 8080, kTcpAck).Seq(1001).Ack(5001)),
                                  {}),
                           {{DPV2_CNT_SERVICE_ESTABLISHED, 1}, {DPV2_CNT_SNAT_NEW, 0}}),
                  Pass(FromNet(Pkt(kRemote1v4, kNode4).Tcp(8080, p, kTcpAck | kTcpPsh).Seq(5001)),
                       Pkt(kNode4, kClient4).Tcp(30080, 50000, kTcpAck | kTcpPsh).Seq(5001))},
    });
  }
  {
    const uint16_t p = SnatPort(L4Proto::kUDP, kClient6, 50000, kNode6, 30053);
    cases.push_back({
        .proves = "a UDP datagram from the network to a NodePort on the node's IPv6 address is "
                  "DNATed and SNATed to the node's IPv6 address, and the reply reverse-NATed "
                  "to the client",
        .config = cfg,
        .services = {NodePort(Svc("dns6", kVip6, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v6}}),
                              30053)},
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromNet(Pkt(kClient6, kNode6).Udp(50000, 30053).Payload("q")),
                              Pkt(kNode6, kRemote1v6).Udp(p, 5353).Payload("q")),
                         {TraceNew(T(L4Proto::kUDP, kClient6, 50000, kRemote1v6, 5353), kNode6,
                                   30053)}),
                  Events(Pass(FromNet(Pkt(kRemote1v6, kNode6).Udp(5353, p).Payload("a")),
                              Pkt(kNode6, kClient6).Udp(30053, 50000).Payload("a")),
                         {TraceReply(T(L4Proto::kUDP, kNode6, 30053, kClient6, 50000))})},
    });
  }
  cases.push_back({
      .proves = "a NodePort connection to a backend pod on this node is redirected to that pod",
      .config = cfg,
      .services = {NodePort(Svc("web", kVip4, L4Proto::kTCP, 80, 8080,
                                {{.ip = kPodB.v4, .node = "node-a"}}),
                            30080)},
      .endpoints = LocalPods(),
      .steps = {Events(Redirect(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)), kPodB,
                                Pkt(kClient4, kPodB.v4).Tcp(50000, 8080, kTcpSyn)),
                       {TraceNew(T(L4Proto::kTCP, kClient4, 50000, kPodB.v4, 8080), kNode4,
                                 30080)})},
  });
  cases.push_back({
      .proves = "a packet to a node address port that is no Service passes untouched and is not "
                "tracked",
      .config = cfg,
      .services = {NodePort(WebService(), 30080)},
      .endpoints = LocalPods(),
      .steps = {Ct(Events(Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30099, kTcpSyn)),
                               Pkt(kClient4, kNode4).Tcp(50000, 30099, kTcpSyn)),
                          {}),
                   0)},
  });
  {
    const uint16_t p = SnatPort(L4Proto::kTCP, kClient4, 50000, kLb4, 80);
    cases.push_back({
        .proves = "a TCP SYN from the network to an IPv4 LoadBalancer ingress IP is DNATed to the "
                  "remote backend and SNATed to the node address; the reply leaves from the LB IP",
        .config = cfg,
        .services = {LoadBalancer(WebService(), kLb4, 30080)},
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromNet(Pkt(kClient4, kLb4).Tcp(50000, 80, kTcpSyn)),
                              Pkt(kNode4, kRemote1v4).Tcp(p, 8080, kTcpSyn)),
                         {TraceNew(T(L4Proto::kTCP, kClient4, 50000, kRemote1v4, 8080), kLb4,
                                   80)}),
                  Pass(FromNet(Pkt(kRemote1v4, kNode4).Tcp(8080, p, kTcpSyn | kTcpAck)),
                       Pkt(kLb4, kClient4).Tcp(80, 50000, kTcpSyn | kTcpAck))},
    });
  }
  {
    const uint16_t p = SnatPort(L4Proto::kUDP, kClient6, 50000, kLb6, 53);
    cases.push_back({
        .proves = "a UDP datagram to an IPv6 LoadBalancer ingress IP is DNATed and SNATed to the "
                  "node's IPv6 address, and its reply reverse-NATed to the client",
        .config = cfg,
        .services = {LoadBalancer(
            Svc("dns6", kVip6, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v6}}), kLb6, 30053)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(Pkt(kClient6, kLb6).Udp(50000, 53).Payload("q")),
                       Pkt(kNode6, kRemote1v6).Udp(p, 5353).Payload("q")),
                  Pass(FromNet(Pkt(kRemote1v6, kNode6).Udp(5353, p).Payload("a")),
                       Pkt(kLb6, kClient6).Udp(53, 50000).Payload("a"))},
    });
  }
  {
    ServiceSpec s = Svc("ext", kVip4, L4Proto::kTCP, 443, 8443, {{.ip = kRemote1v4}});
    s.external_ips = {A(kExt4)};
    cases.push_back({
        .proves = "a TCP SYN to a Service's externalIP is DNATed and SNATed like a LoadBalancer IP",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromNet(Pkt(kClient4, kExt4).Tcp(50000, 443, kTcpSyn)),
                              Pkt(kNode4, kRemote1v4)
                                  .Tcp(SnatPort(L4Proto::kTCP, kClient4, 50000, kExt4, 443), 8443,
                                       kTcpSyn)),
                         {TraceNew(T(L4Proto::kTCP, kClient4, 50000, kRemote1v4, 8443), kExt4,
                                   443)})},
    });
  }
  {
    ServiceSpec s = LoadBalancer(WebService(), kLb4, 30080);
    s.load_balancer_source_ranges = {*Prefix::Parse("203.0.113.0/24")};
    cases.push_back({
        .proves = "loadBalancerSourceRanges admit a client inside a range",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(Pkt(kClient4, kLb4).Tcp(50000, 80, kTcpSyn)),
                       Pkt(kNode4, kRemote1v4)
                           .Tcp(SnatPort(L4Proto::kTCP, kClient4, 50000, kLb4, 80), 8080, kTcpSyn))},
    });
    cases.push_back({
        .proves = "loadBalancerSourceRanges drop a client outside every range, counted and "
                  "reported",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {Ct(Drops(Events(DropStep(FromNet(Pkt("198.18.0.1", kLb4).Tcp(50000, 80, kTcpSyn)),
                                           DPV2_DROP_SOURCE_RANGE),
                                  {DropEvent(DPV2_DROP_SOURCE_RANGE,
                                             T(L4Proto::kTCP, "198.18.0.1", 50000, kLb4, 80))}),
                           {{DPV2_DROP_SOURCE_RANGE, 1}}),
                     0)},
    });
  }
  {
    ServiceSpec s = LoadBalancer(Svc("web6", kVip6, L4Proto::kTCP, 80, 8080, {{.ip = kRemote1v6}}),
                                 kLb6, 30080);
    s.load_balancer_source_ranges = {*Prefix::Parse("2001:db8::/64")};
    cases.push_back({
        .proves = "IPv6 loadBalancerSourceRanges admit 2001:db8::7 and drop 2001:db8:1::7",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(Pkt(kClient6, kLb6).Tcp(50000, 80, kTcpSyn)),
                       Pkt(kNode6, kRemote1v6)
                           .Tcp(SnatPort(L4Proto::kTCP, kClient6, 50000, kLb6, 80), 8080, kTcpSyn)),
                  Events(DropStep(FromNet(Pkt("2001:db8:1::7", kLb6).Tcp(50000, 80, kTcpSyn)),
                                  DPV2_DROP_SOURCE_RANGE),
                         {DropEvent(DPV2_DROP_SOURCE_RANGE,
                                    T(L4Proto::kTCP, "2001:db8:1::7", 50000, kLb6, 80))})},
    });
  }
}

// ICMP errors about SNATed connections (docs/datapath.md, "ICMP errors
// (RELATED)"): the node's address and SNAT port in the error become the
// client's again.
void AddSnatIcmpErrorCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  {
    const uint16_t p = SnatPort(L4Proto::kTCP, kClient4, 50000, kLb4, 80);
    const char* router = "192.168.1.1";
    auto syn = [](const char* src, const char* dst, uint16_t sport, uint16_t dport) {
      return Pkt(src, dst).Tcp(sport, dport, kTcpSyn);
    };
    cases.push_back({
        .proves = "ICMP errors about an SNATed IPv4 TCP connection to a LoadBalancer IP reach "
                  "the client as if the node had never SNATed: fragmentation needed from the "
                  "backend leaves LB IP -> client quoting client -> LB IP; time exceeded from a "
                  "router, quoting 8 bytes of TCP, keeps the router's source",
        .config = cfg,
        .services = {LoadBalancer(WebService(), kLb4, 30080)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(syn(kClient4, kLb4, 50000, 80)), syn(kNode4, kRemote1v4, p, 8080)),
                  Ct(Counters(Events(Pass(FromNet(Pkt(kRemote1v4, kNode4)
                                                      .IcmpError(kIcmpDestUnreachable,
                                                                 kIcmpFragNeededCode,
                                                                 syn(kNode4, kRemote1v4, p, 8080))),
                                          Pkt(kLb4, kClient4)
                                              .IcmpError(kIcmpDestUnreachable, kIcmpFragNeededCode,
                                                         syn(kClient4, kLb4, 50000, 80))),
                                     {}),
                              {{DPV2_CNT_REV_NAT, 1}, {DPV2_CNT_PASSED, 1}}),
                     2),
                  Pass(FromNet(Pkt(router, kNode4)
                                   .IcmpError(kIcmpTimeExceeded, 0,
                                              syn(kNode4, kRemote1v4, p, 8080), 28)),
                       Pkt(router, kClient4)
                           .IcmpError(kIcmpTimeExceeded, 0, syn(kClient4, kLb4, 50000, 80), 28))},
    });
  }
  {
    const uint16_t p = SnatPort(L4Proto::kUDP, kClient6, 50000, kNode6, 30053);
    const char* router = "fd00:1::1";
    auto datagram = [](const char* src, const char* dst, uint16_t sport, uint16_t dport) {
      return Pkt(src, dst).Udp(sport, dport).Payload("q");
    };
    cases.push_back({
        .proves = "ICMPv6 errors about an SNATed UDP connection to an IPv6 NodePort reach the "
                  "client: port unreachable from the backend leaves from the NodePort address, "
                  "packet too big from a router keeps the router's source, each quoting "
                  "client -> NodePort",
        .config = cfg,
        .services = {NodePort(Svc("dns6", kVip6, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v6}}),
                              30053)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(datagram(kClient6, kNode6, 50000, 30053)),
                       datagram(kNode6, kRemote1v6, p, 5353)),
                  Counters(Events(Pass(FromNet(Pkt(kRemote1v6, kNode6)
                                                   .IcmpError(kIcmp6DestUnreachable,
                                                              kIcmp6PortUnreachableCode,
                                                              datagram(kNode6, kRemote1v6, p,
                                                                       5353))),
                                       Pkt(kNode6, kClient6)
                                           .IcmpError(kIcmp6DestUnreachable,
                                                      kIcmp6PortUnreachableCode,
                                                      datagram(kClient6, kNode6, 50000, 30053))),
                                  {}),
                           {{DPV2_CNT_REV_NAT, 1}}),
                  Pass(FromNet(Pkt(router, kNode6)
                                   .IcmpError(kIcmp6PacketTooBig, 0,
                                              datagram(kNode6, kRemote1v6, p, 5353))),
                       Pkt(router, kClient6)
                           .IcmpError(kIcmp6PacketTooBig, 0,
                                      datagram(kClient6, kNode6, 50000, 30053)))},
    });
  }
}

// SNAT of external Cluster-policy traffic to a backend on another node
// (docs/datapath.md, "SNAT"); the first cases of AddExternalFrontendCases
// show the translation itself.
void AddSnatCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  auto tcp = [](const char* src, const char* dst, uint16_t sport, uint16_t dport, uint8_t flags) {
    return Pkt(src, dst).Tcp(sport, dport, flags);
  };
  cases.push_back({
      .proves = "a pod's connection to a NodePort is DNATed only: traffic from pods is never "
                "SNATed",
      .config = cfg,
      .services = {NodePort(WebService(), 30080)},
      .endpoints = LocalPods(),
      .steps = {Counters(Pass(FromPod(kPodA, Pkt(kPodA.v4, kNode4).Tcp(40000, 30080, kTcpSyn)),
                              Pkt(kPodA.v4, kRemote1v4).Tcp(40000, 8080, kTcpSyn)),
                         {{DPV2_CNT_SERVICE_NEW, 1}, {DPV2_CNT_SNAT_NEW, 0}})},
  });
  {
    Step no_v4{};
    no_v4.apply.node_addresses_delete = {DPV2_FAMILY_V4};
    cases.push_back({
        .proves = "without a node address of the packet's family a NodePort connection to a "
                  "remote backend is DNATed only",
        .config = cfg,
        .services = {NodePort(WebService(), 30080)},
        .endpoints = LocalPods(),
        .steps = {no_v4,
                  Counters(Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)),
                                Pkt(kClient4, kRemote1v4).Tcp(50000, 8080, kTcpSyn)),
                           {{DPV2_CNT_SERVICE_NEW, 1}, {DPV2_CNT_SNAT_NEW, 0}}),
                  Pass(FromNet(Pkt(kRemote1v4, kClient4).Tcp(8080, 50000, kTcpSyn | kTcpAck)),
                       Pkt(kNode4, kClient4).Tcp(30080, 50000, kTcpSyn | kTcpAck))},
    });
  }
  {
    // Two ports: three clients to the one backend.
    DatapathConfig two = cfg;
    two.snat_port_min = 40000;
    two.snat_port_max = 40001;
    const char* c2 = "203.0.113.8";
    const char* c3 = "203.0.113.9";
    const uint16_t p1 = SnatPort(L4Proto::kTCP, kClient4, 50000, kNode4, 30080, two);
    const uint16_t p2_first = SnatPort(L4Proto::kTCP, c2, 50000, kNode4, 30080, two);
    const uint16_t p2 = p2_first == p1 ? (p1 == 40000 ? 40001 : 40000) : p2_first;
    cases.push_back({
        .proves = "an SNAT port another connection to the same backend holds is skipped for the "
                  "next one, and with every probed port taken a new connection is dropped as "
                  "nat_no_port, leaving no entry",
        .config = two,
        .services = {NodePort(WebService(), 30080)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)),
                       Pkt(kNode4, kRemote1v4).Tcp(p1, 8080, kTcpSyn)),
                  Pass(FromNet(Pkt(c2, kNode4).Tcp(50000, 30080, kTcpSyn)),
                       Pkt(kNode4, kRemote1v4).Tcp(p2, 8080, kTcpSyn)),
                  Ct(Drops(Events(DropStep(FromNet(Pkt(c3, kNode4).Tcp(50000, 30080, kTcpSyn)),
                                           DPV2_DROP_NAT_NO_PORT),
                                  {DropTranslated(DPV2_DROP_NAT_NO_PORT,
                                                  T(L4Proto::kTCP, c3, 50000, kRemote1v4, 8080),
                                                  kNode4, 30080)}),
                           {{DPV2_DROP_NAT_NO_PORT, 1}}),
                     4),
                  // The replies of both connections reach their own clients.
                  Pass(FromNet(Pkt(kRemote1v4, kNode4).Tcp(8080, p2, kTcpSyn | kTcpAck)),
                       Pkt(kNode4, c2).Tcp(30080, 50000, kTcpSyn | kTcpAck)),
                  Pass(FromNet(Pkt(kRemote1v4, kNode4).Tcp(8080, p1, kTcpSyn | kTcpAck)),
                       Pkt(kNode4, kClient4).Tcp(30080, 50000, kTcpSyn | kTcpAck))},
    });
  }
  {
    DatapathConfig one = cfg;
    one.snat_port_min = 45000;
    one.snat_port_max = 45000;
    const char* c2 = "203.0.113.8";
    auto dns = [] {
      return NodePort(Svc("dns", kVip4, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v4}}), 30053);
    };
    Step gc = GcAfter(61, 0);
    cases.push_back({
        .proves = "garbage collection frees an SNAT port with its connection: the port a UDP "
                  "flow held goes to the next client once the flow expired and was collected",
        .config = one,
        .services = {dns()},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(Pkt(kClient4, kNode4).Udp(50000, 30053).Payload("q")),
                       Pkt(kNode4, kRemote1v4).Udp(45000, 5353).Payload("q")),
                  DropStep(FromNet(Pkt(c2, kNode4).Udp(50000, 30053).Payload("q")),
                           DPV2_DROP_NAT_NO_PORT),
                  gc,
                  Pass(FromNet(Pkt(c2, kNode4).Udp(50000, 30053).Payload("q")),
                       Pkt(kNode4, kRemote1v4).Udp(45000, 5353).Payload("q")),
                  Pass(FromNet(Pkt(kRemote1v4, kNode4).Udp(5353, 45000).Payload("a")),
                       Pkt(kNode4, c2).Udp(30053, 50000).Payload("a"))},
    });
    cases.push_back({
        .proves = "a TCP connection reopened by a SYN after an RST keeps its SNAT port",
        .config = one,
        .services = {NodePort(WebService(), 30080)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)),
                       Pkt(kNode4, kRemote1v4).Tcp(45000, 8080, kTcpSyn)),
                  Pass(FromNet(Pkt(kRemote1v4, kNode4).Tcp(8080, 45000, kTcpRst | kTcpAck)),
                       Pkt(kNode4, kClient4).Tcp(30080, 50000, kTcpRst | kTcpAck)),
                  Counters(Pass(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)),
                                Pkt(kNode4, kRemote1v4).Tcp(45000, 8080, kTcpSyn)),
                           {{DPV2_CNT_CT_REOPENED, 1}, {DPV2_CNT_SNAT_NEW, 1}})},
    });
  }
  {
    // One client address and port connecting to the NodePort and then to
    // the LB IP of one Service with one remote backend: both connections
    // start probing at the same port (cport is chosen so), where the
    // reverse SNAT entry names the same client but the flow entry the
    // NodePort, so the second one must not take that port.
    DatapathConfig one = cfg;
    one.snat_port_min = 45000;
    one.snat_port_max = 45000;
    DatapathConfig two = cfg;
    two.snat_port_min = 45000;
    two.snat_port_max = 45001;
    uint16_t cport = 50000;
    while (SnatPort(L4Proto::kTCP, kClient4, cport, kNode4, 30080, two) !=
           SnatPort(L4Proto::kTCP, kClient4, cport, kLb4, 80, two)) {
      ++cport;
    }
    const uint16_t p = SnatPort(L4Proto::kTCP, kClient4, cport, kNode4, 30080, two);
    const uint16_t q = p == 45000 ? 45001 : 45000;
    cases.push_back({
        .proves = "one client address and port connecting to the NodePort and to the LB IP of one "
                  "Service get two SNAT ports to its one backend, and each reply leaves from its "
                  "own frontend",
        .config = two,
        .services = {LoadBalancer(WebService(), kLb4, 30080)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(tcp(kClient4, kNode4, cport, 30080, kTcpSyn)),
                       tcp(kNode4, kRemote1v4, p, 8080, kTcpSyn)),
                  Ct(Counters(Events(Pass(FromNet(tcp(kClient4, kLb4, cport, 80, kTcpSyn)),
                                          tcp(kNode4, kRemote1v4, q, 8080, kTcpSyn)),
                                     {TraceNew(T(L4Proto::kTCP, kClient4, cport, kRemote1v4, 8080),
                                               kLb4, 80)}),
                              {{DPV2_CNT_SERVICE_NEW, 1},
                               {DPV2_CNT_SNAT_NEW, 1},
                               {DPV2_CNT_CT_CREATED, 2}}),
                     4),
                  Pass(FromNet(tcp(kRemote1v4, kNode4, 8080, p, kTcpSyn | kTcpAck)),
                       tcp(kNode4, kClient4, 30080, cport, kTcpSyn | kTcpAck)),
                  Pass(FromNet(tcp(kRemote1v4, kNode4, 8080, q, kTcpSyn | kTcpAck)),
                       tcp(kLb4, kClient4, 80, cport, kTcpSyn | kTcpAck))},
    });
    cases.push_back({
        .proves = "with one SNAT port, which a client's NodePort connection holds, the same client "
                  "address and port's connection to the LB IP of that Service is dropped as "
                  "nat_no_port, and the NodePort connection's replies still leave from the "
                  "NodePort",
        .config = one,
        .services = {LoadBalancer(WebService(), kLb4, 30080)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(tcp(kClient4, kNode4, 50000, 30080, kTcpSyn)),
                       tcp(kNode4, kRemote1v4, 45000, 8080, kTcpSyn)),
                  Ct(Drops(Events(DropStep(FromNet(tcp(kClient4, kLb4, 50000, 80, kTcpSyn)),
                                           DPV2_DROP_NAT_NO_PORT),
                                  {DropTranslated(DPV2_DROP_NAT_NO_PORT,
                                                  T(L4Proto::kTCP, kClient4, 50000, kRemote1v4,
                                                    8080),
                                                  kLb4, 80)}),
                           {{DPV2_DROP_NAT_NO_PORT, 1}}),
                     2),
                  Pass(FromNet(tcp(kRemote1v4, kNode4, 8080, 45000, kTcpSyn | kTcpAck)),
                       tcp(kNode4, kClient4, 30080, 50000, kTcpSyn | kTcpAck))},
    });

    // An established SNATed connection whose flow key (node:port ->
    // backend) holds no flow entry and no reverse SNAT entry of its own.
    // Connections never share a port, so the datapath's own packets do
    // not lead there; a raw backends_upsert does, which LbState never sends:
    // it gives the Service's backend (id 1, LbState numbering backends from
    // 1 in the order of the case's Services) another address, and the
    // connection, which keeps its backend id, has a new flow key.
    dpv2_backend readdressed{};
    readdressed.addr = A(kRemote2v4).ToAbi();
    readdressed.port = htons(8080);
    readdressed.proto = DPV2_PROTO_TCP;
    readdressed.family = DPV2_FAMILY_V4;
    Step moved{};
    moved.apply.backends_upsert = {{.id = 1, .value = readdressed}};
    cases.push_back({
        .proves = "an SNATed connection whose flow entry and reverse SNAT entry are missing gets "
                  "both back from its next forward packet: its replies and ICMP errors reach the "
                  "client again",
        .config = one,
        .services = {LoadBalancer(WebService(), kLb4, 30080)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(tcp(kClient4, kNode4, 50000, 30080, kTcpSyn)),
                       tcp(kNode4, kRemote1v4, 45000, 8080, kTcpSyn)),
                  moved,
                  Ct(Counters(Events(Pass(FromNet(tcp(kClient4, kNode4, 50000, 30080, kTcpAck)),
                                          tcp(kNode4, kRemote2v4, 45000, 8080, kTcpAck)),
                                     {}),
                              {{DPV2_CNT_SERVICE_ESTABLISHED, 1},
                               {DPV2_CNT_CT_CREATED, 1},
                               {DPV2_CNT_SERVICE_NEW, 0},
                               {DPV2_CNT_SNAT_NEW, 0}}),
                     3),
                  Counters(Pass(FromNet(tcp(kRemote2v4, kNode4, 8080, 45000, kTcpAck)),
                                tcp(kNode4, kClient4, 30080, 50000, kTcpAck)),
                           {{DPV2_CNT_REV_NAT, 1}}),
                  Ct(Pass(FromNet(Pkt(kRemote2v4, kNode4)
                                      .IcmpError(kIcmpDestUnreachable, kIcmpFragNeededCode,
                                                 tcp(kNode4, kRemote2v4, 45000, 8080, kTcpAck))),
                          Pkt(kNode4, kClient4)
                              .IcmpError(kIcmpDestUnreachable, kIcmpFragNeededCode,
                                         tcp(kClient4, kNode4, 50000, 30080, kTcpAck))),
                     3)},
    });

    // With two ports: the port under the new key taken first by another
    // connection (`holder`, which leaves from it), the same client address
    // and port's to the LB IP (which probes the same port first) or another
    // client's to the NodePort. Then the NodePort connection's next packet
    // is handled as new, and the replies of both reach their own clients
    // from their own frontends.
    auto port_taken = [&](const char* proves, const PacketBuilder& holder,
                          const PacketBuilder& holder_reply) {
      return ConformanceCase{
          .proves = proves,
          .config = two,
          .services = {LoadBalancer(WebService(), kLb4, 30080)},
          .endpoints = LocalPods(),
          .steps = {
              Pass(FromNet(tcp(kClient4, kNode4, cport, 30080, kTcpSyn)),
                   tcp(kNode4, kRemote1v4, p, 8080, kTcpSyn)),
              moved,
              Ct(Pass(FromNet(holder), tcp(kNode4, kRemote2v4, p, 8080, kTcpSyn)), 4),
              Ct(Counters(Events(Pass(FromNet(tcp(kClient4, kNode4, cport, 30080, kTcpAck)),
                                      tcp(kNode4, kRemote2v4, q, 8080, kTcpAck)),
                                 {TraceNew(T(L4Proto::kTCP, kClient4, cport, kRemote2v4, 8080),
                                           kNode4, 30080)}),
                          {{DPV2_CNT_SERVICE_NEW, 1},
                           {DPV2_CNT_SNAT_NEW, 1},
                           {DPV2_CNT_CT_CREATED, 2},
                           {DPV2_CNT_SERVICE_ESTABLISHED, 0}}),
                 5),
              Pass(FromNet(tcp(kRemote2v4, kNode4, 8080, p, kTcpSyn | kTcpAck)), holder_reply),
              Pass(FromNet(tcp(kRemote2v4, kNode4, 8080, q, kTcpAck)),
                   tcp(kNode4, kClient4, 30080, cport, kTcpAck))}};
    };
    cases.push_back(port_taken(
        "an SNATed NodePort connection whose port under its flow key the same client address "
        "and port's LB IP connection holds is handled as new: another port, and each "
        "connection's replies leave from its own frontend",
        tcp(kClient4, kLb4, cport, 80, kTcpSyn),
        tcp(kLb4, kClient4, 80, cport, kTcpSyn | kTcpAck)));
    const char* c2 = "203.0.113.8";
    uint16_t c2port = 50000;
    while (SnatPort(L4Proto::kTCP, c2, c2port, kNode4, 30080, two) != p) {
      ++c2port;
    }
    cases.push_back(port_taken(
        "an SNATed connection whose port under its flow key another client's connection holds "
        "is handled as new: another port, and each connection's replies reach its own client",
        tcp(c2, kNode4, c2port, 30080, kTcpSyn),
        tcp(kNode4, c2, 30080, c2port, kTcpSyn | kTcpAck)));

    // With the SNAT table full: the connection's own forward and reverse
    // entries (under the old key) and a UDP flow of another client's.
    DatapathConfig full = one;
    full.snat_entries = 4;
    cases.push_back({
        .proves = "an SNATed connection whose reverse SNAT entry is missing, finding the SNAT "
                  "table full, is dropped as conntrack_full and gets no flow entry",
        .config = full,
        .services = {LoadBalancer(WebService(), kLb4, 30080),
                     NodePort(Svc("dns", kVip4, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v4}}),
                              30053)},
        .endpoints = LocalPods(),
        .steps = {Pass(FromNet(tcp(kClient4, kNode4, 50000, 30080, kTcpSyn)),
                       tcp(kNode4, kRemote1v4, 45000, 8080, kTcpSyn)),
                  moved,
                  Ct(Pass(FromNet(Pkt(c2, kNode4).Udp(50000, 30053).Payload("q")),
                          Pkt(kNode4, kRemote1v4).Udp(45000, 5353).Payload("q")),
                     4),
                  Ct(Drops(DropStep(FromNet(tcp(kClient4, kNode4, 50000, 30080, kTcpAck)),
                                    DPV2_DROP_CT_FULL),
                           {{DPV2_DROP_CT_FULL, 1}}),
                     4)},
    });
  }
  AddSnatIcmpErrorCases(cases);
}

void AddSelectionCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  auto any_of = [](Step s, std::vector<PacketBuilder> outs) {
    s.verdict = Verdict::kPass;
    s.outputs.clear();
    for (const PacketBuilder& b : outs) {
      s.outputs.push_back(b.Build());
    }
    return s;
  };
  auto syn_to_two = [&](uint16_t sport) {
    return any_of(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(sport, 80, kTcpSyn)),
                  {Pkt(kPodA.v4, kRemote1v4).Tcp(sport, 8080, kTcpSyn),
                   Pkt(kPodA.v4, kRemote2v4).Tcp(sport, 8080, kTcpSyn)});
  };
  {
    ServiceSpec s = Svc("sticky", kVip4, L4Proto::kTCP, 80, 8080,
                        {{.ip = kRemote1v4}, {.ip = kRemote2v4}});
    s.session_affinity = SessionAffinity::kClientIP;
    s.affinity_timeout_s = 100;
    std::vector<Step> steps = {Counters(syn_to_two(41000), {{DPV2_CNT_AFFINITY_HIT, 0}})};
    for (uint16_t i = 1; i <= 7; ++i) {
      Step st = Counters(syn_to_two(41000 + i), {{DPV2_CNT_AFFINITY_HIT, 1}});
      st.same_destination_as = 0;
      steps.push_back(st);
    }
    cases.push_back({
        .proves = "sessionAffinity ClientIP sends every new connection of a client to the "
                  "backend of its first one",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = steps,
    });
    s.affinity_timeout_s = 10;
    cases.push_back({
        .proves = "sessionAffinity ClientIP stops applying once the client was idle for the "
                  "affinity timeout",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {syn_to_two(41000),
                  After(5, Counters(syn_to_two(41001), {{DPV2_CNT_AFFINITY_HIT, 1}})),
                  After(11, Counters(syn_to_two(41002), {{DPV2_CNT_AFFINITY_HIT, 0}}))},
    });
  }
  {
    ServiceSpec s = Svc("maglev", kVip4, L4Proto::kTCP, 80, 8080,
                        {{.ip = kRemote1v4}, {.ip = kRemote2v4}, {.ip = kRemote3v4}});
    auto syn = [&]() {
      return any_of(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(42000, 80, kTcpSyn)),
                    {Pkt(kPodA.v4, kRemote1v4).Tcp(42000, 8080, kTcpSyn),
                     Pkt(kPodA.v4, kRemote2v4).Tcp(42000, 8080, kTcpSyn),
                     Pkt(kPodA.v4, kRemote3v4).Tcp(42000, 8080, kTcpSyn)});
    };
    Step again = Counters(syn(), {{DPV2_CNT_SERVICE_NEW, 1}});
    again.same_destination_as = 0;
    cases.push_back({
        .proves = "Maglev sends the same tuple to the same backend when it connects again after "
                  "its conntrack entries are gone",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {syn(), GcAfter(61, 0), again},
    });
  }
  {
    ServiceSpec s = Svc("maglev6", kVip6, L4Proto::kUDP, 53, 5353,
                        {{.ip = kRemote1v6}, {.ip = kRemote2v6}});
    auto dgram = [&]() {
      return any_of(FromPod(kPodA, Pkt(kPodA.v6, kVip6).Udp(43000, 53).Payload("q")),
                    {Pkt(kPodA.v6, kRemote1v6).Udp(43000, 5353).Payload("q"),
                     Pkt(kPodA.v6, kRemote2v6).Udp(43000, 5353).Payload("q")});
    };
    Step again = dgram();
    again.same_destination_as = 0;
    cases.push_back({
        .proves = "Maglev picks the same IPv6 UDP backend for the same tuple after the flow "
                  "timed out",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {dgram(), GcAfter(61, 0), again},
    });
  }
  {
    // Each Service's table has its own M (MaglevTableSizeFor): 3 backends
    // get 509 slots under a cap of 1021. The expected backend of each SYN
    // is the slot hash % 509 of the table every node computes; the source
    // ports are ones where slot hash % 1021 names another backend (or lies
    // past the table), so a datapath indexing by the cap fails the case.
    DatapathConfig sized = cfg;
    sized.maglev_table_size = 1021;
    const char* remotes[] = {kRemote1v4, kRemote2v4, kRemote3v4};
    const uint32_t m = MaglevTableSizeFor(sized, 3);
    std::vector<MaglevBackend> mb;
    for (uint32_t i = 0; i < 3; ++i) {
      mb.push_back({.id = i + 1, .identity = absl::StrCat(remotes[i], ":8080/TCP")});
    }
    const std::vector<uint32_t> slots =
        MaglevTable::Create({.table_size = m, .seed = kMaglevSeed})->Populate(mb).value();
    std::vector<Step> steps;
    const dpv2_addr client = A(kPodA.v4).ToAbi();
    const dpv2_addr vip = A(kVip4).ToAbi();
    for (uint16_t sport = 45000; steps.size() < 6; ++sport) {
      const uint32_t h = dpv2_tuple_hash(&client, &vip, htons(sport), htons(80), DPV2_PROTO_TCP,
                                         DPV2_FAMILY_V4);
      const uint32_t at_cap = h % sized.maglev_table_size;
      if (at_cap < m && slots[at_cap] == slots[h % m]) {
        continue;
      }
      steps.push_back(Pass(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(sport, 80, kTcpSyn)),
                           Pkt(kPodA.v4, remotes[slots[h % m] - 1]).Tcp(sport, 8080, kTcpSyn)));
    }
    cases.push_back({
        .proves = "a Service's Maglev table smaller than maglev_table_size is indexed by its own "
                  "size: each new connection goes to the backend of slot hash % M",
        .config = sized,
        .services = {Svc("sized", kVip4, L4Proto::kTCP, 80, 8080,
                         {{.ip = kRemote1v4}, {.ip = kRemote2v4}, {.ip = kRemote3v4}})},
        .endpoints = LocalPods(),
        .steps = steps,
    });
  }
  {
    ServiceSpec s = Svc("term", kVip4, L4Proto::kTCP, 80, 8080,
                        {{.ip = kRemote1v4},
                         {.ip = kRemote2v4, .ready = false, .serving = true, .terminating = true}});
    std::vector<Step> steps;
    for (uint16_t i = 0; i < 6; ++i) {
      steps.push_back(Pass(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(44000 + i, 80, kTcpSyn)),
                           Pkt(kPodA.v4, kRemote1v4).Tcp(44000 + i, 8080, kTcpSyn)));
    }
    cases.push_back({
        .proves = "a terminating backend gets no new connection while a ready one exists",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = steps,
    });
  }
  {
    ServiceSpec s = Svc("term2", kVip4, L4Proto::kTCP, 80, 8080,
                        {{.ip = kRemote1v4, .ready = false, .serving = false},
                         {.ip = kRemote2v4, .ready = false, .serving = true, .terminating = true}});
    cases.push_back({
        .proves = "a serving terminating backend takes new connections when no backend is ready",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = {Pass(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(44000, 80, kTcpSyn)),
                       Pkt(kPodA.v4, kRemote2v4).Tcp(44000, 8080, kTcpSyn))},
    });
  }
  {
    Step keep = Events(ClientToBackend(kWebConn, kTcpAck, 1001, 5001), {});
    keep.change = [](std::vector<ServiceSpec>& services) {
      EndpointSliceSpec& slice = services[0].endpoint_slices[0];
      slice.endpoints[0].conditions = {.ready = false, .serving = true, .terminating = true};
      EndpointSpec fresh = slice.endpoints[0];
      fresh.addresses = {A(kRemote2v4)};
      fresh.conditions = {};
      slice.endpoints.push_back(fresh);
    };
    cases.push_back({
        .proves = "an established connection keeps its backend after the backend starts "
                  "terminating, while new connections go to the ready one",
        .config = cfg,
        .services = {WebService()},
        .endpoints = LocalPods(),
        .steps = {ClientToBackend(kWebConn, kTcpSyn),
                  BackendToClient(kWebConn, kTcpSyn | kTcpAck), keep,
                  Pass(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(40001, 80, kTcpSyn)),
                       Pkt(kPodA.v4, kRemote2v4).Tcp(40001, 8080, kTcpSyn))},
    });
  }
  {
    Step moved = Counters(
        Events(Pass(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpAck).Seq(1001).Ack(5001)),
                    Pkt(kPodA.v4, kRemote2v4).Tcp(40000, 8080, kTcpAck).Seq(1001).Ack(5001)),
               {TraceNew(T(L4Proto::kTCP, kPodA.v4, 40000, kRemote2v4, 8080), kVip4, 80)}),
        {{DPV2_CNT_SERVICE_NEW, 1}});
    moved.change = [](std::vector<ServiceSpec>& services) {
      services[0].endpoint_slices[0].endpoints[0].addresses = {A(kRemote2v4)};
    };
    cases.push_back({
        .proves = "a connection whose backend was deleted picks a new backend on its next packet",
        .config = cfg,
        .services = {WebService()},
        .endpoints = LocalPods(),
        .steps = {ClientToBackend(kWebConn, kTcpSyn), BackendToClient(kWebConn, kTcpSyn | kTcpAck),
                  moved},
    });
  }
}

void AddRejectAndLocalCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  // Replies leave with the input's Ethernet addresses swapped.
  auto swapped = [](PacketBuilder b) {
    b.Eth(kMacDst, kMacSrc);
    return b;
  };
  cases.push_back({
      .proves = "a TCP SYN to an IPv4 Service without endpoints is rejected with an RST|ACK from "
                "the frontend",
      .config = cfg,
      .services = {Svc("empty", kVip4, L4Proto::kTCP, 80, 8080, {})},
      .endpoints = LocalPods(),
      .steps = {Ct(Counters(Drops(Events(Reject(FromPod(kPodA, Pkt(kPodA.v4, kVip4)
                                                                   .Tcp(40000, 80, kTcpSyn)
                                                                   .Seq(1000)),
                                                swapped(Pkt(kVip4, kPodA.v4)
                                                            .Tcp(80, 40000, kTcpRst | kTcpAck)
                                                            .Seq(0)
                                                            .Ack(1001)
                                                            .Window(0))),
                                         {RejectEvent(T(L4Proto::kTCP, kPodA.v4, 40000, kVip4,
                                                        80))}),
                                  {{DPV2_DROP_SERVICE_NO_BACKEND, 1}}),
                            {{DPV2_CNT_REJECTED, 1}, {DPV2_CNT_TX, 1}, {DPV2_CNT_DROPPED, 0}}),
                   0)},
  });
  cases.push_back({
      .proves = "a TCP ACK to an IPv6 Service without endpoints is rejected with an RST whose "
                "sequence number is the ACK's acknowledgment",
      .config = cfg,
      .services = {Svc("empty6", kVip6, L4Proto::kTCP, 80, 8080, {})},
      .endpoints = LocalPods(),
      .steps = {Events(Reject(FromPod(kPodA, Pkt(kPodA.v6, kVip6)
                                                 .Tcp(40000, 80, kTcpAck)
                                                 .Seq(1000)
                                                 .Ack(777)),
                              swapped(Pkt(kVip6, kPodA.v6)
                                          .Tcp(80, 40000, kTcpRst)
                                          .Seq(777)
                                          .Ack(0)
                                          .Window(0))),
                       {RejectEvent(T(L4Proto::kTCP, kPodA.v6, 40000, kVip6, 80))})},
  });
  struct RejectCase {
    const char* what;
    L4Proto proto;
    const char* vip;
    const char* client;
  };
  for (const RejectCase& rc : {
           RejectCase{"a UDP datagram to an IPv4 Service without endpoints is answered with ICMP "
                      "port unreachable",
                      L4Proto::kUDP, kVip4, kPodA.v4},
           RejectCase{"a UDP datagram to an IPv6 Service without endpoints is answered with "
                      "ICMPv6 port unreachable",
                      L4Proto::kUDP, kVip6, kPodA.v6},
           RejectCase{"an SCTP INIT to an IPv4 Service without endpoints is answered with ICMP "
                      "port unreachable",
                      L4Proto::kSCTP, kVip4, kPodA.v4},
           RejectCase{"an SCTP INIT to an IPv6 Service without endpoints is answered with ICMPv6 "
                      "port unreachable",
                      L4Proto::kSCTP, kVip6, kPodA.v6},
       }) {
    const bool v6 = IsV6(rc.vip);
    PacketBuilder in = Pkt(rc.client, rc.vip);
    if (rc.proto == L4Proto::kUDP) {
      in.Udp(33000, 53).Payload("a query longer than eight bytes");
    } else {
      in.Sctp(33000, 53, SctpChunk::kInit, 0);
    }
    PacketBuilder reply = swapped(Pkt(rc.vip, rc.client));
    reply.IcmpError(v6 ? kIcmp6DestUnreachable : kIcmpDestUnreachable,
                    v6 ? kIcmp6PortUnreachableCode : kIcmpPortUnreachableCode, in,
                    v6 ? 48 : 28);
    cases.push_back({
        .proves = rc.what,
        .config = cfg,
        .services = {Svc("empty", rc.vip, rc.proto, 53, 5353, {})},
        .endpoints = LocalPods(),
        .steps = {Events(Reject(FromPod(kPodA, in), reply),
                         {RejectEvent(T(rc.proto, rc.client, 33000, rc.vip, 53))})},
    });
  }
  cases.push_back({
      .proves = "externalTrafficPolicy Local with no endpoint on this node drops NodePort "
                "traffic from the network without a reply",
      .config = cfg,
      .services = {ExternalLocal(NodePort(WebService(), 30080))},
      .endpoints = LocalPods(),
      .steps = {Drops(Events(DropStep(FromNet(Pkt(kClient4, kNode4).Tcp(50000, 30080, kTcpSyn)),
                                      DPV2_DROP_LOCAL_NO_BACKEND),
                             {DropEvent(DPV2_DROP_LOCAL_NO_BACKEND,
                                        T(L4Proto::kTCP, kClient4, 50000, kNode4, 30080))}),
                      {{DPV2_DROP_LOCAL_NO_BACKEND, 1}})},
  });
  {
    ServiceSpec s = ExternalLocal(NodePort(
        Svc("mixed", kVip4, L4Proto::kTCP, 80, 8080,
            {{.ip = kRemote1v4}, {.ip = kRemote2v4}, {.ip = kPodB.v4, .node = "node-a"}}),
        30080));
    std::vector<Step> steps;
    for (uint16_t i = 0; i < 4; ++i) {
      steps.push_back(Redirect(FromNet(Pkt(kClient4, kNode4).Tcp(50000 + i, 30080, kTcpSyn)),
                               kPodB, Pkt(kClient4, kPodB.v4).Tcp(50000 + i, 8080, kTcpSyn)));
    }
    cases.push_back({
        .proves = "externalTrafficPolicy Local sends external traffic only to this node's "
                  "endpoints",
        .config = cfg,
        .services = {s},
        .endpoints = LocalPods(),
        .steps = steps,
    });
  }
  for (bool v6 : {false, true}) {
    const char* vip = v6 ? kVip6 : kVip4;
    const char* lb = v6 ? kLb6 : kLb4;
    const char* backend = v6 ? kRemote1v6 : kRemote1v4;
    const char* client = v6 ? kClient6 : kClient4;
    const char* pod = v6 ? kPodA.v6 : kPodA.v4;
    cases.push_back({
        .proves = v6 ? "with externalTrafficPolicy Local, an IPv6 LoadBalancer IP serves local "
                       "pods from every endpoint (INT scope) and drops external traffic"
                     : "with externalTrafficPolicy Local, an IPv4 LoadBalancer IP serves local "
                       "pods from every endpoint (INT scope) and drops external traffic",
        .config = cfg,
        .services = {ExternalLocal(LoadBalancer(
            Svc("two", vip, L4Proto::kTCP, 80, 8080, {{.ip = backend}}), lb, 30080))},
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromPod(kPodA, Pkt(pod, lb).Tcp(40000, 80, kTcpSyn)),
                              Pkt(pod, backend).Tcp(40000, 8080, kTcpSyn)),
                         {TraceNew(T(L4Proto::kTCP, pod, 40000, backend, 8080), lb, 80)}),
                  DropStep(FromNet(Pkt(client, lb).Tcp(50000, 80, kTcpSyn)),
                           DPV2_DROP_LOCAL_NO_BACKEND)},
    });
  }
}

void AddConntrackCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  cases.push_back({
      .proves = "a TCP connection that saw only a SYN expires after the SYN timeout",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {ClientToBackend(kWebConn, kTcpSyn), GcAfter(59, 2), GcAfter(2, 0)},
  });
  cases.push_back({
      .proves = "an established TCP connection lives for the established timeout",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = Concat(Handshake(), {GcAfter(7999, 2), GcAfter(2, 0)}),
  });
  cases.push_back({
      .proves = "a TCP connection closed by FIN in both directions expires after the close "
                "timeout",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = Concat(Handshake(), {ClientToBackend(kWebConn, kTcpFin | kTcpAck, 1001, 5001),
                                    BackendToClient(kWebConn, kTcpFin | kTcpAck, 5001, 1002),
                                    GcAfter(9, 2), GcAfter(2, 0)}),
  });
  cases.push_back({
      .proves = "a FIN in one direction only keeps the established lifetime",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = Concat(Handshake(), {ClientToBackend(kWebConn, kTcpFin | kTcpAck, 1001, 5001),
                                    GcAfter(11, 2)}),
  });
  cases.push_back({
      .proves = "a TCP RST closes the connection: its entries expire after the close timeout",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = Concat(Handshake(), {BackendToClient(kWebConn, kTcpRst, 5001, 0), GcAfter(11, 0)}),
  });
  cases.push_back({
      .proves = "a SYN on a closing TCP connection reopens it as a new connection with the SYN "
                "timeout",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = Concat(Handshake(),
                      {ClientToBackend(kWebConn, kTcpFin | kTcpAck, 1001, 5001),
                       BackendToClient(kWebConn, kTcpFin | kTcpAck, 5001, 1002),
                       After(1, Counters(Events(ClientToBackend(kWebConn, kTcpSyn, 9000),
                                                {TraceNew(T(L4Proto::kTCP, kPodA.v4, 40000,
                                                            kRemote1v4, 8080),
                                                          kVip4, 80)}),
                                         {{DPV2_CNT_CT_REOPENED, 1}})),
                       GcAfter(11, 2), GcAfter(50, 0)}),
  });
  {
    auto out = [](uint16_t sport) {
      return Pkt(kPodA.v4, kVip4).Udp(sport, 53).Payload("q");
    };
    auto dnat = [](uint16_t sport) {
      return Pkt(kPodA.v4, kRemote1v4).Udp(sport, 5353).Payload("q");
    };
    const ServiceSpec dns = Svc("dns", kVip4, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v4}});
    cases.push_back({
        .proves = "a UDP flow expires after the non-TCP timeout",
        .config = cfg,
        .services = {dns},
        .endpoints = LocalPods(),
        .steps = {Pass(FromPod(kPodA, out(33000)), dnat(33000)), GcAfter(59, 2), GcAfter(2, 0)},
    });
    cases.push_back({
        .proves = "garbage collection never deletes an entry that a packet refreshed, and its "
                  "replies are still reverse-NATed",
        .config = cfg,
        .services = {dns},
        .endpoints = LocalPods(),
        .steps = {Pass(FromPod(kPodA, out(33000)), dnat(33000)),
                  After(50, Pass(FromPod(kPodA, out(33000)), dnat(33000))),
                  GcAfter(20, 2),
                  Redirect(FromNet(Pkt(kRemote1v4, kPodA.v4).Udp(5353, 33000).Payload("a")),
                           kPodA, Pkt(kVip4, kPodA.v4).Udp(53, 33000).Payload("a"))},
    });
    DatapathConfig small = cfg;
    small.ct_tcp_entries = 2;
    cases.push_back({
        .proves = "a new connection that finds the TCP conntrack table full is dropped and "
                  "counted, while UDP (a separate table) still works",
        .config = small,
        .services = {WebService(), dns},
        .endpoints = LocalPods(),
        .steps = {ClientToBackend(kWebConn, kTcpSyn),
                  Ct(Drops(Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(40001, 80, kTcpSyn)),
                                           DPV2_DROP_CT_FULL),
                                  {DropTranslated(DPV2_DROP_CT_FULL,
                                                  T(L4Proto::kTCP, kPodA.v4, 40001, kRemote1v4,
                                                    8080),
                                                  kVip4, 80)}),
                           {{DPV2_DROP_CT_FULL, 1}}),
                     2),
                  Ct(Pass(FromPod(kPodA, out(33000)), dnat(33000)), 4)},
    });
  }
  {
    // An ICMP error from the backend about the client's datagram.
    const ServiceSpec dns = Svc("dns", kVip4, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v4}});
    cases.push_back({
        .proves = "an ICMP error from a backend about a service flow is related: its outer "
                  "source and quoted destination are reverse-NATed to the frontend",
        .config = cfg,
        .services = {dns},
        .endpoints = LocalPods(),
        .steps = {Pass(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Udp(33000, 53)),
                       Pkt(kPodA.v4, kRemote1v4).Udp(33000, 5353)),
                  Counters(Events(Redirect(FromNet(Pkt(kRemote1v4, kPodA.v4)
                                                       .IcmpError(kIcmpDestUnreachable,
                                                                  kIcmpPortUnreachableCode,
                                                                  Pkt(kPodA.v4, kRemote1v4)
                                                                      .Udp(33000, 5353))),
                                           kPodA,
                                           Pkt(kVip4, kPodA.v4)
                                               .IcmpError(kIcmpDestUnreachable,
                                                          kIcmpPortUnreachableCode,
                                                          Pkt(kPodA.v4, kVip4).Udp(33000, 53))),
                                  {}),
                           {{DPV2_CNT_REV_NAT, 1}})},
    });
    const ServiceSpec dns6 = Svc("dns6", kVip6, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v6}});
    cases.push_back({
        .proves = "an ICMPv6 error from a router about a service flow is related: the quoted "
                  "destination is reverse-NATed, the router's source kept",
        .config = cfg,
        .services = {dns6},
        .endpoints = LocalPods(),
        .steps = {Pass(FromPod(kPodA, Pkt(kPodA.v6, kVip6).Udp(33000, 53)),
                       Pkt(kPodA.v6, kRemote1v6).Udp(33000, 5353)),
                  Redirect(FromNet(Pkt("fd00:ff::1", kPodA.v6)
                                       .IcmpError(kIcmp6TimeExceeded, 0,
                                                  Pkt(kPodA.v6, kRemote1v6).Udp(33000, 5353))),
                           kPodA,
                           Pkt("fd00:ff::1", kPodA.v6)
                               .IcmpError(kIcmp6TimeExceeded, 0,
                                          Pkt(kPodA.v6, kVip6).Udp(33000, 53)))},
    });
  }
  {
    const char* remote = "10.0.3.3";
    cases.push_back({
        .proves = "an ICMP echo from a pod is tracked and its reply delivered back to the pod",
        .config = cfg,
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromPod(kPodA, Pkt(kPodA.v4, remote).IcmpEcho(7, 1)),
                              Pkt(kPodA.v4, remote).IcmpEcho(7, 1)),
                         {TraceNewPlain(T(L4Proto::kICMP, kPodA.v4, 7, remote, 7))}),
                  Events(Redirect(FromNet(Pkt(remote, kPodA.v4).IcmpEcho(7, 1, true)), kPodA,
                                  Pkt(remote, kPodA.v4).IcmpEcho(7, 1, true)),
                         {TraceReplyPlain(T(L4Proto::kICMP, remote, 7, kPodA.v4, 7))})},
    });
  }
}

void AddMalformedAndEdgeCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  struct Malformed {
    const char* what;
    std::vector<uint8_t> frame;
    dpv2_drop_reason reason;
  };
  std::vector<uint8_t> cut = Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpSyn).Build();
  cut.resize(kEthHeaderLen + 20 + 10);  // inside the TCP header
  cases.push_back({
      .proves = "a frame shorter than an Ethernet header is refused at the entry, uncounted",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {Step{.entry = Entry::kFromPod,
                     .ifindex = kPodA.ifindex,
                     .frame = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00},
                     .refused = true}},
  });
  const std::vector<Malformed> malformed = {
      {"an IPv4 frame cut inside its TCP header is dropped as truncated", cut,
       DPV2_DROP_TRUNCATED},
      {"an IPv4 ethertype carrying a version-6 header is dropped as a bad IP version",
       Pkt(kPodA.v4, kVip4).IpVersion(6).Tcp(40000, 80, kTcpSyn).Build(),
       DPV2_DROP_BAD_IP_VERSION},
      {"an IPv4 header with IHL 4 is dropped as a bad IP header",
       Pkt(kPodA.v4, kVip4).IpHeaderWords(4).Tcp(40000, 80, kTcpSyn).Build(),
       DPV2_DROP_BAD_IP_HEADER},
      {"a TCP header with data offset 2 is dropped as a bad L4 header",
       Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpSyn).TcpDataOffsetWords(2).Build(),
       DPV2_DROP_BAD_L4_HEADER},
      {"an IPv6 ICMP error quoting fewer than 48 bytes is dropped as bad ICMP",
       Pkt(kPodA.v6, kVip6)
           .IcmpError(kIcmp6DestUnreachable, 0, Pkt(kVip6, kPodA.v6).Udp(53, 33000), 20)
           .Build(),
       DPV2_DROP_BAD_ICMP},
  };
  for (const Malformed& m : malformed) {
    Step s{.entry = Entry::kFromPod, .ifindex = kPodA.ifindex, .frame = m.frame};
    cases.push_back({
        .proves = m.what,
        .config = cfg,
        .services = {WebService()},
        .endpoints = LocalPods(),
        .steps = {Drops(Events(DropStep(s, m.reason), {ParseDrop(m.reason)}), {{m.reason, 1}})},
    });
  }
  cases.push_back({
      .proves = "a pod sending from an address that is not its own is dropped as spoofed",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {Drops(Events(DropStep(FromPod(kPodA, Pkt("10.0.1.99", kVip4).Tcp(40000, 80, kTcpSyn)),
                                      DPV2_DROP_SPOOFED_SOURCE),
                             {DropEvent(DPV2_DROP_SPOOFED_SOURCE,
                                        T(L4Proto::kTCP, "10.0.1.99", 40000, kVip4, 80))}),
                      {{DPV2_DROP_SPOOFED_SOURCE, 1}})},
  });
  cases.push_back({
      .proves = "another local pod's IPv6 address arriving on a pod's interface is dropped as "
                "spoofed",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {Events(DropStep(FromPod(kPodA, Pkt(kPodB.v6, kVip6).Udp(40000, 53)),
                                DPV2_DROP_SPOOFED_SOURCE),
                       {DropEvent(DPV2_DROP_SPOOFED_SOURCE,
                                  T(L4Proto::kUDP, kPodB.v6, 40000, kVip6, 53))})},
  });
  // MLD (RFC 3810): a pod's stack reports its multicast groups from its
  // link-local address, or from :: before that address is usable; such
  // frames pass to the node's stack like neighbor discovery. MLD from any
  // other source is checked like any packet.
  {
    const PacketBuilder report = Pkt("fe80::a8c1:abff:fe00:1", "ff02::16").HopByHop().Icmp(143, 0);
    const PacketBuilder unspecified = Pkt("::", "ff02::16").HopByHop().Icmp(143, 0);
    const PacketBuilder done = Pkt("fe80::1", "ff02::2").Icmp(132, 0);
    cases.push_back({
        .proves = "a pod's MLD reports and done messages from link-local or unspecified sources "
                  "pass untouched to the stack with no event",
        .config = cfg,
        .services = {WebService()},
        .endpoints = LocalPods(),
        .steps = {Events(Pass(FromPod(kPodA, report), report), {}),
                  Events(Pass(FromPod(kPodA, unspecified), unspecified), {}),
                  Counters(Events(Pass(FromPod(kPodA, done), done), {}),
                           {{DPV2_CNT_PASSED, 1}})},
    });
    struct Spoofed {
      const char* what;
      PacketBuilder frame;
      FiveTuple tuple;
    };
    const Spoofed spoofed[] = {
        {"an MLD report from a global address that is not the pod's own is dropped as spoofed",
         Pkt("fd00:10:1::99", "ff02::16").Icmp(143, 0),
         T(L4Proto::kICMPv6, "fd00:10:1::99", 0, "ff02::16", 0)},
        {"an ICMPv6 echo from a link-local address that is not the pod's own is dropped as "
         "spoofed (only ND and MLD bypass anti-spoofing)",
         Pkt("fe80::1", "fe80::2").IcmpEcho(7, 1), T(L4Proto::kICMPv6, "fe80::1", 7, "fe80::2", 7)},
    };
    for (const Spoofed& sp : spoofed) {
      cases.push_back({
          .proves = sp.what,
          .config = cfg,
          .services = {WebService()},
          .endpoints = LocalPods(),
          .steps = {Events(DropStep(FromPod(kPodA, sp.frame), DPV2_DROP_SPOOFED_SOURCE),
                           {DropEvent(DPV2_DROP_SPOOFED_SOURCE, sp.tuple)})},
      });
    }
  }
  {
    PacketBuilder arp;
    arp.EtherType(kEtherTypeArp).Payload(std::string(28, '\x01'));
    cases.push_back({
        .proves = "a non-IP frame (ARP) passes untouched with no event",
        .config = cfg,
        .services = {WebService()},
        .endpoints = LocalPods(),
        .steps = {Counters(Events(Pass(FromPod(kPodA, arp), arp), {}), {{DPV2_CNT_PASSED, 1}})},
    });
  }
  cases.push_back({
      .proves = "a VLAN-tagged frame to a LoadBalancer IP is DNATed and SNATed with its tag kept",
      .config = cfg,
      .services = {LoadBalancer(WebService(), kLb4, 30080)},
      .endpoints = LocalPods(),
      .steps = {Events(Pass(FromNet(Pkt(kClient4, kLb4).Vlan(10).Tcp(50000, 80, kTcpSyn)),
                            Pkt(kNode4, kRemote1v4)
                                .Vlan(10)
                                .Tcp(SnatPort(L4Proto::kTCP, kClient4, 50000, kLb4, 80), 8080,
                                     kTcpSyn)),
                       {TraceNew(T(L4Proto::kTCP, kClient4, 50000, kRemote1v4, 8080), kLb4, 80)})},
  });
  cases.push_back({
      .proves = "an IPv4 fragment is dropped as unsupported",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {Drops(Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kVip4)
                                                         .Fragment(0, true, 5)
                                                         .Udp(33000, 53)
                                                         .Payload("0123456789")),
                                      DPV2_DROP_FRAGMENT),
                             {DropEvent(DPV2_DROP_FRAGMENT,
                                        T(L4Proto::kUDP, kPodA.v4, 33000, kVip4, 53))}),
                      {{DPV2_DROP_FRAGMENT, 1}})},
  });
}

}  // namespace

std::vector<ConformanceCase> ServiceCases() {
  std::vector<ConformanceCase> cases;
  AddClusterIpCases(cases);
  AddExternalFrontendCases(cases);
  AddSnatCases(cases);
  AddSelectionCases(cases);
  AddRejectAndLocalCases(cases);
  AddConntrackCases(cases);
  AddMalformedAndEdgeCases(cases);
  return cases;
}

}  // namespace dpv2::conformance
