// Source port collisions (docs/datapath.md, "Source port collisions"): a
// new service connection whose flow entry key (client:port -> backend) a
// live connection of the same client holds gets another source port, so
// that it never takes over that connection's flow entry.
#include "fixtures.h"

namespace dpv2::conformance {
namespace {

constexpr const char* kVip4b = "10.96.0.11";
constexpr const char* kVip4c = "10.96.0.12";

ServiceSpec Web(const char* name, const char* vip) {
  return Svc(name, vip, L4Proto::kTCP, 80, 8080, {{.ip = kRemote1v4}});
}

// Pod A's TCP segment from `sport` to `dst`:`dport`.
PacketBuilder FromA(uint16_t sport, const char* dst, uint16_t dport, uint8_t flags) {
  return Pkt(kPodA.v4, dst).Tcp(sport, dport, flags);
}
// The backend's segment to pod A's port `dport` (a reply).
PacketBuilder ToA(const char* src, uint16_t sport, uint16_t dport, uint8_t flags) {
  return Pkt(src, kPodA.v4).Tcp(sport, dport, flags);
}

// Pod A's SYN from `sport` to `vip`:80, leaving from `out_port` to the
// backend (kRemote1v4:8080).
Step SynVia(uint16_t sport, const char* vip, uint16_t out_port) {
  return Pass(FromPod(kPodA, FromA(sport, vip, 80, kTcpSyn)),
              FromA(out_port, kRemote1v4, 8080, kTcpSyn));
}
// Pod A's direct SYN from `sport` to the backend, and the backend's SYN-ACK
// to it: a plain flow, untranslated.
Step DirectSyn(uint16_t sport) {
  return Pass(FromPod(kPodA, FromA(sport, kRemote1v4, 8080, kTcpSyn)),
              FromA(sport, kRemote1v4, 8080, kTcpSyn));
}
Step DirectSynAck(uint16_t port) {
  return Redirect(FromNet(ToA(kRemote1v4, 8080, port, kTcpSyn | kTcpAck)), kPodA,
                  ToA(kRemote1v4, 8080, port, kTcpSyn | kTcpAck));
}
// The backend's SYN-ACK to pod A's port `to_port`, delivered from `vip`:80
// to port `cport`.
Step SynAckVia(uint16_t to_port, const char* vip, uint16_t cport) {
  return Redirect(FromNet(ToA(kRemote1v4, 8080, to_port, kTcpSyn | kTcpAck)), kPodA,
                  ToA(vip, 80, cport, kTcpSyn | kTcpAck));
}

}  // namespace

std::vector<ConformanceCase> CollisionCases() {
  std::vector<ConformanceCase> cases;
  const DatapathConfig cfg = SmallConfig();
  {
    const uint16_t p = SnatPort(L4Proto::kTCP, kPodA.v4, 40000, kVip4b, 80);
    cases.push_back({
        .proves = "a pod's second connection from one source port to another ClusterIP with the "
                  "same backend leaves from a remapped port, and each connection's replies come "
                  "back from its own frontend",
        .config = cfg,
        .services = {Web("web", kVip4), Web("web2", kVip4b)},
        .endpoints = LocalPods(),
        .steps = {SynVia(40000, kVip4, 40000),
                  SynAckVia(40000, kVip4, 40000),
                  Ct(Counters(Events(SynVia(40000, kVip4b, p),
                                     {TraceNew(T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4,
                                                 8080),
                                               kVip4b, 80)}),
                              {{DPV2_CNT_SERVICE_NEW, 1},
                               {DPV2_CNT_NAT_COLLISION, 1},
                               {DPV2_CNT_SNAT_NEW, 0},
                               {DPV2_CNT_CT_CREATED, 2}}),
                     4),
                  // The first connection's reply still comes from its frontend.
                  Counters(Redirect(FromNet(ToA(kRemote1v4, 8080, 40000, kTcpAck | kTcpPsh)
                                                .Seq(5001)),
                                    kPodA, ToA(kVip4, 80, 40000, kTcpAck | kTcpPsh).Seq(5001)),
                           {{DPV2_CNT_REV_NAT, 1}}),
                  SynAckVia(p, kVip4b, 40000),
                  Counters(Events(Pass(FromPod(kPodA, FromA(40000, kVip4b, 80, kTcpAck)
                                                          .Seq(1001)
                                                          .Ack(5001)),
                                       FromA(p, kRemote1v4, 8080, kTcpAck).Seq(1001).Ack(5001)),
                                  {}),
                           {{DPV2_CNT_SERVICE_ESTABLISHED, 1},
                            {DPV2_CNT_SERVICE_NEW, 0},
                            {DPV2_CNT_NAT_COLLISION, 0}}),
                  Pass(FromPod(kPodA, FromA(40000, kVip4, 80, kTcpAck).Seq(1001).Ack(5001)),
                       FromA(40000, kRemote1v4, 8080, kTcpAck).Seq(1001).Ack(5001)),
                  // An ICMP error about the remapped connection quotes it as
                  // the client sent it.
                  Redirect(FromNet(Pkt(kRemote1v4, kPodA.v4)
                                       .IcmpError(kIcmpDestUnreachable, kIcmpFragNeededCode,
                                                  FromA(p, kRemote1v4, 8080, kTcpAck))),
                           kPodA,
                           Pkt(kVip4b, kPodA.v4)
                               .IcmpError(kIcmpDestUnreachable, kIcmpFragNeededCode,
                                          FromA(40000, kVip4b, 80, kTcpAck)))},
    });
  }
  {
    // The NodePort and the LoadBalancer IP of one Service, IPv6 UDP from
    // the network, without a node address (so not SNATed to the node):
    // XDP serves the first and hands the second to tc.
    Step no_v6{};
    no_v6.apply.node_addresses_delete = {DPV2_FAMILY_V6};
    const uint16_t p = SnatPort(L4Proto::kUDP, kClient6, 50000, kLb6, 53);
    auto udp = [](const char* src, const char* dst, uint16_t sport, uint16_t dport,
                  const char* payload) { return Pkt(src, dst).Udp(sport, dport).Payload(payload); };
    cases.push_back({
        .proves = "a client's flows from one source port to the NodePort and the LoadBalancer IP "
                  "of one Service with one backend are two connections: the second leaves from "
                  "a remapped port and each gets its replies from its own frontend",
        .config = cfg,
        .services = {LoadBalancer(Svc("dns6", kVip6, L4Proto::kUDP, 53, 5353, {{.ip = kRemote1v6}}),
                                  kLb6, 30053)},
        .endpoints = LocalPods(),
        .steps = {no_v6,
                  Pass(FromNet(udp(kClient6, kNode6, 50000, 30053, "q1")),
                       udp(kClient6, kRemote1v6, 50000, 5353, "q1")),
                  Pass(FromNet(udp(kRemote1v6, kClient6, 5353, 50000, "a1")),
                       udp(kNode6, kClient6, 30053, 50000, "a1")),
                  Ct(Counters(Events(Pass(FromNet(udp(kClient6, kLb6, 50000, 53, "q2")),
                                          udp(kClient6, kRemote1v6, p, 5353, "q2")),
                                     {TraceNew(T(L4Proto::kUDP, kClient6, 50000, kRemote1v6,
                                                 5353),
                                               kLb6, 53)}),
                              {{DPV2_CNT_SERVICE_NEW, 1},
                               {DPV2_CNT_NAT_COLLISION, 1},
                               {DPV2_CNT_SNAT_NEW, 0}}),
                     4),
                  Pass(FromNet(udp(kRemote1v6, kClient6, 5353, 50000, "a1")),
                       udp(kNode6, kClient6, 30053, 50000, "a1")),
                  Pass(FromNet(udp(kRemote1v6, kClient6, 5353, p, "a2")),
                       udp(kLb6, kClient6, 53, 50000, "a2")),
                  Pass(FromNet(udp(kClient6, kLb6, 50000, 53, "q3")),
                       udp(kClient6, kRemote1v6, p, 5353, "q3")),
                  Pass(FromNet(udp(kClient6, kNode6, 50000, 30053, "q4")),
                       udp(kClient6, kRemote1v6, 50000, 5353, "q4"))},
    });
  }
  {
    const uint16_t p = SnatPort(L4Proto::kTCP, kPodA.v4, 40000, kVip4, 80);
    cases.push_back({
        .proves = "a pod's connection to a ClusterIP from the source port of its live direct "
                  "connection to the backend leaves from a remapped port; the direct "
                  "connection's replies stay untranslated",
        .config = cfg,
        .services = {Web("web", kVip4)},
        .endpoints = LocalPods(),
        .steps = {DirectSyn(40000),
                  DirectSynAck(40000),
                  Ct(Counters(SynVia(40000, kVip4, p),
                              {{DPV2_CNT_SERVICE_NEW, 1}, {DPV2_CNT_NAT_COLLISION, 1}}),
                     3),
                  Counters(Redirect(FromNet(ToA(kRemote1v4, 8080, 40000, kTcpAck)), kPodA,
                                    ToA(kRemote1v4, 8080, 40000, kTcpAck)),
                           {{DPV2_CNT_REV_NAT, 0}}),
                  SynAckVia(p, kVip4, 40000)},
    });
  }
  {
    DatapathConfig one = cfg;
    one.snat_port_min = 45000;
    one.snat_port_max = 45000;
    cases.push_back({
        .proves = "with the one remap port held by the client's other remapped connection, a "
                  "third colliding connection is dropped as nat_no_port and both live "
                  "connections keep their replies",
        .config = one,
        .services = {Web("web", kVip4), Web("web2", kVip4b), Web("web3", kVip4c)},
        .endpoints = LocalPods(),
        .steps = {SynVia(40000, kVip4, 40000),
                  SynVia(40000, kVip4b, 45000),
                  Ct(Drops(Events(DropStep(FromPod(kPodA, FromA(40000, kVip4c, 80, kTcpSyn)),
                                           DPV2_DROP_NAT_NO_PORT),
                                  {DropTranslated(DPV2_DROP_NAT_NO_PORT,
                                                  T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4,
                                                    8080),
                                                  kVip4c, 80)}),
                           {{DPV2_DROP_NAT_NO_PORT, 1}}),
                     4),
                  SynAckVia(40000, kVip4, 40000),
                  SynAckVia(45000, kVip4b, 40000)},
    });
    cases.push_back({
        .proves = "a remap port the client itself uses towards the backend is not free: with the "
                  "one remap port held by a direct connection, a colliding connection is "
                  "dropped as nat_no_port and the live connections keep their replies",
        .config = one,
        .services = {Web("web", kVip4), Web("web2", kVip4b)},
        .endpoints = LocalPods(),
        .steps = {DirectSyn(45000),
                  SynVia(40000, kVip4, 40000),
                  Ct(Drops(DropStep(FromPod(kPodA, FromA(40000, kVip4b, 80, kTcpSyn)),
                                    DPV2_DROP_NAT_NO_PORT),
                           {{DPV2_DROP_NAT_NO_PORT, 1}}),
                     3),
                  DirectSynAck(45000),
                  SynAckVia(40000, kVip4, 40000)},
    });
  }
  {
    // Reopened with the same frontend: the connection's own flow entry,
    // overwritten in place (no remap).
    cases.push_back({
        .proves = "a connection reopened to the same frontend keeps its source port: its own "
                  "flow entry is no collision",
        .config = cfg,
        .services = {Web("web", kVip4)},
        .endpoints = LocalPods(),
        .steps = {SynVia(40000, kVip4, 40000),
                  Redirect(FromNet(ToA(kRemote1v4, 8080, 40000, kTcpRst | kTcpAck)), kPodA,
                           ToA(kVip4, 80, 40000, kTcpRst | kTcpAck)),
                  Ct(Counters(SynVia(40000, kVip4, 40000),
                              {{DPV2_CNT_CT_REOPENED, 1}, {DPV2_CNT_NAT_COLLISION, 0}}),
                     2)},
    });
  }
  return cases;
}

}  // namespace dpv2::conformance
