// Building blocks of the conformance fixtures: the node, its local pods,
// addresses, Services, frames, steps and expected events, so that each case
// reads as data.
//
//   Step s = Events(ClientToBackend(kWebConn, kTcpSyn), {TraceNew(tuple, kVip4, 80)});
#ifndef DPV2_TESTS_CONFORMANCE_FIXTURES_H_
#define DPV2_TESTS_CONFORMANCE_FIXTURES_H_

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <utility>

#include "conformance.h"
#include "dpv2/abi/hash.h"
#include "dpv2/packet.h"

namespace dpv2::conformance {

constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint32_t kNetIf = 1;  // the node's external device

inline IpAddr A(const char* text) {
  absl::StatusOr<IpAddr> a = IpAddr::Parse(text);
  if (!a.ok()) {
    std::fprintf(stderr, "bad address literal %s\n", text);
    std::abort();
  }
  return *a;
}

inline bool IsV6(const char* text) { return std::string(text).find(':') != std::string::npos; }

// Frames: PacketBuilder's default Ethernet addresses unless a case sets them.
inline const MacAddr kMacSrc = {0x02, 0, 0, 0, 0, 0x01};
inline const MacAddr kMacDst = {0x02, 0, 0, 0, 0, 0x02};

inline PacketBuilder Pkt(const char* src, const char* dst) {
  PacketBuilder b;
  if (IsV6(src)) {
    b.IPv6(src, dst);
  } else {
    b.IPv4(src, dst);
  }
  return b;
}

// Local pods: one endpoint entry per address family.
struct Pod {
  const char* v4;
  const char* v6;
  uint32_t ifindex;
  uint32_t endpoint_id;
  uint32_t identity;
  MacAddr mac;
  MacAddr host_mac;
};
inline const Pod kPodA{"10.0.1.5", "fd00:10:1::5", 11, 1, 1001,
                {0x0a, 0, 0, 0, 0x01, 0x05}, {0xee, 0, 0, 0, 0, 0x0b}};
inline const Pod kPodB{"10.0.1.6", "fd00:10:1::6", 12, 2, 1002,
                {0x0a, 0, 0, 0, 0x01, 0x06}, {0xee, 0, 0, 0, 0, 0x0c}};

inline EndpointEntry EndpointOf(const Pod& pod, const char* addr) {
  EndpointEntry e{};
  const IpAddr ip = A(addr);
  e.key.addr = ip.ToAbi();
  e.key.family = static_cast<uint8_t>(ip.family());
  e.value.endpoint_id = pod.endpoint_id;
  e.value.ifindex = pod.ifindex;
  e.value.identity = pod.identity;
  std::copy(pod.mac.begin(), pod.mac.end(), e.value.mac);
  std::copy(pod.host_mac.begin(), pod.host_mac.end(), e.value.host_mac);
  return e;
}

inline std::vector<EndpointEntry> LocalPods() {
  return {EndpointOf(kPodA, kPodA.v4), EndpointOf(kPodA, kPodA.v6), EndpointOf(kPodB, kPodB.v4),
          EndpointOf(kPodB, kPodB.v6)};
}

// A frame as delivered to a local pod: its MACs.
inline PacketBuilder To(const Pod& pod, PacketBuilder b) {
  b.Eth(pod.host_mac, pod.mac);
  return b;
}

// Addresses.
constexpr const char* kVip4 = "10.96.0.10";
constexpr const char* kVip6 = "fd00:96::10";
constexpr const char* kNode4 = "192.168.1.10";
constexpr const char* kNode6 = "fd00:1::10";
constexpr const char* kLb4 = "198.51.100.20";
constexpr const char* kLb6 = "2001:db8:100::20";
constexpr const char* kExt4 = "198.51.100.30";
constexpr const char* kClient4 = "203.0.113.7";
constexpr const char* kClient6 = "2001:db8::7";
constexpr const char* kRemote1v4 = "10.0.2.8";
constexpr const char* kRemote2v4 = "10.0.2.9";
constexpr const char* kRemote3v4 = "10.0.2.10";
constexpr const char* kRemote1v6 = "fd00:10:2::8";
constexpr const char* kRemote2v6 = "fd00:10:2::9";

struct Ep {
  const char* ip;
  const char* node = "node-b";
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;
};

inline ServiceSpec Svc(const char* name, const char* cluster_ip, L4Proto proto, uint16_t port,
                uint16_t target_port, std::vector<Ep> endpoints) {
  ServiceSpec s;
  s.namespace_name = "default";
  s.name = name;
  s.cluster_ips = {A(cluster_ip)};
  s.ports = {ServicePortSpec{.name = "p", .protocol = proto, .port = port}};
  EndpointSliceSpec slice;
  slice.name = std::string(name) + "-1";
  slice.address_type = IsV6(cluster_ip) ? Family::kV6 : Family::kV4;
  slice.ports = {EndpointPortSpec{.name = "p", .protocol = proto, .port = target_port}};
  for (const Ep& ep : endpoints) {
    EndpointSpec e;
    e.addresses = {A(ep.ip)};
    e.conditions = {.ready = ep.ready, .serving = ep.serving, .terminating = ep.terminating};
    e.node_name = ep.node;
    e.zone = "zone-1";
    slice.endpoints.push_back(e);
  }
  s.endpoint_slices = {slice};
  return s;
}

inline ServiceSpec NodePort(ServiceSpec s, uint16_t node_port) {
  s.type = ServiceType::kNodePort;
  s.ports[0].node_port = node_port;
  return s;
}

inline ServiceSpec LoadBalancer(ServiceSpec s, const char* lb_ip, uint16_t node_port) {
  s.type = ServiceType::kLoadBalancer;
  s.ports[0].node_port = node_port;
  s.load_balancer_ips = {A(lb_ip)};
  return s;
}

inline ServiceSpec ExternalLocal(ServiceSpec s) {
  s.external_traffic_policy = TrafficPolicy::kLocal;
  return s;
}

inline DatapathConfig SmallConfig() {
  DatapathConfig c;
  c.maglev_table_size = 251;
  return c;
}

// The source port a new SNATed connection from client:client_port to
// frontend:frontend_port probes first (docs/datapath.md, "SNAT"): the port
// it gets while no other connection to the same backend holds that port.
inline uint16_t SnatPort(L4Proto proto, const char* client, uint16_t client_port,
                         const char* frontend, uint16_t frontend_port,
                         const DatapathConfig& config = SmallConfig()) {
  const IpAddr c = A(client);
  const IpAddr f = A(frontend);
  const dpv2_addr ca = c.ToAbi();
  const dpv2_addr fa = f.ToAbi();
  const uint32_t hash =
      dpv2_tuple_hash(&ca, &fa, htons(client_port), htons(frontend_port),
                      static_cast<uint8_t>(proto), static_cast<uint8_t>(c.family()));
  const uint32_t range = uint32_t{config.snat_port_max} - config.snat_port_min + 1;
  return static_cast<uint16_t>(config.snat_port_min + hash % range);
}

// Events.
inline FiveTuple T(L4Proto proto, const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  return FiveTuple{A(src), A(dst), sport, dport, proto};
}

inline ExpectedEvent TraceNew(FiveTuple tuple, const char* frontend, uint16_t frontend_port) {
  return {.type = DPV2_EVENT_TRACE,
          .flags = DPV2_EV_F_NEW | DPV2_EV_F_TRANSLATED,
          .tuple = tuple,
          .orig_dst = A(frontend),
          .orig_dport = frontend_port};
}

inline ExpectedEvent TraceNewPlain(FiveTuple tuple) {
  return {.type = DPV2_EVENT_TRACE,
          .flags = DPV2_EV_F_NEW,
          .tuple = tuple,
          .orig_dst = tuple.dst,
          .orig_dport = tuple.dport};
}

// `tuple` as the reply left: its source is the frontend.
inline ExpectedEvent TraceReply(FiveTuple tuple) {
  return {.type = DPV2_EVENT_TRACE,
          .flags = DPV2_EV_F_REPLY | DPV2_EV_F_TRANSLATED,
          .tuple = tuple,
          .orig_dst = tuple.src,
          .orig_dport = tuple.sport};
}

inline ExpectedEvent TraceReplyPlain(FiveTuple tuple) {
  return {.type = DPV2_EVENT_TRACE,
          .flags = DPV2_EV_F_REPLY,
          .tuple = tuple,
          .orig_dst = tuple.dst,
          .orig_dport = tuple.dport};
}

inline ExpectedEvent DropEvent(dpv2_drop_reason reason, FiveTuple tuple) {
  return {.type = DPV2_EVENT_DROP,
          .reason = reason,
          .tuple = tuple,
          .orig_dst = tuple.dst,
          .orig_dport = tuple.dport};
}

inline ExpectedEvent DropTranslated(dpv2_drop_reason reason, FiveTuple tuple, const char* frontend,
                             uint16_t frontend_port) {
  return {.type = DPV2_EVENT_DROP,
          .reason = reason,
          .tuple = tuple,
          .orig_dst = A(frontend),
          .orig_dport = frontend_port};
}

inline ExpectedEvent RejectEvent(FiveTuple tuple) {
  return {.type = DPV2_EVENT_DROP,
          .flags = DPV2_EV_F_REJECTED,
          .reason = DPV2_DROP_SERVICE_NO_BACKEND,
          .tuple = tuple,
          .orig_dst = tuple.dst,
          .orig_dport = tuple.dport};
}

// A frame the parser rejects carries no tuple.
inline ExpectedEvent ParseDrop(dpv2_drop_reason reason) {
  return {.type = DPV2_EVENT_DROP,
          .reason = reason,
          .tuple = FiveTuple{IpAddr(), IpAddr(), 0, 0, static_cast<L4Proto>(0)},
          .orig_dst = IpAddr(),
          .orig_dport = 0};
}

// Steps.
inline Step FromPod(const Pod& pod, const PacketBuilder& b) {
  return Step{.entry = Entry::kFromPod, .ifindex = pod.ifindex, .frame = b.Build()};
}
inline Step FromNet(const PacketBuilder& b) {
  return Step{.entry = Entry::kFromNetwork, .ifindex = kNetIf, .frame = b.Build()};
}
inline Step Pass(Step s, const PacketBuilder& out) {
  s.verdict = Verdict::kPass;
  s.outputs = {out.Build()};
  return s;
}
inline Step Redirect(Step s, const Pod& pod, const PacketBuilder& out) {
  s.verdict = Verdict::kRedirect;
  s.out_ifindex = pod.ifindex;
  s.outputs = {To(pod, out).Build()};
  return s;
}
inline Step DropStep(Step s, dpv2_drop_reason reason) {
  s.verdict = Verdict::kDrop;
  s.drop = reason;
  return s;
}
inline Step Reject(Step s, const PacketBuilder& reply) {
  s.verdict = Verdict::kTx;
  s.drop = DPV2_DROP_SERVICE_NO_BACKEND;
  s.outputs = {reply.Build()};
  return s;
}
inline Step Events(Step s, std::vector<ExpectedEvent> events) {
  s.check_events = true;
  s.events = std::move(events);
  return s;
}
inline Step Counters(Step s, std::vector<std::pair<dpv2_counter, uint64_t>> counters) {
  s.counters = std::move(counters);
  return s;
}
inline Step Drops(Step s, std::vector<std::pair<dpv2_drop_reason, uint64_t>> drops) {
  s.drops = std::move(drops);
  return s;
}
inline Step After(uint64_t seconds, Step s) {
  s.advance_ns = seconds * kSecond;
  return s;
}
// The stamp of every conntrack entry after the step (ExpectedStamp).
inline Step Stamps(Step s, std::vector<ExpectedStamp> stamps) {
  s.stamps = std::move(stamps);
  return s;
}
inline ExpectedStamp Stamped(FiveTuple key, bool service, const Pod& from, uint8_t cache_flags) {
  return {.key = key, .service = service, .stamped = true, .in_ifindex = from.ifindex,
          .cache_flags = cache_flags};
}
inline ExpectedStamp Unstamped(FiveTuple key, bool service = false) {
  return {.key = key, .service = service};
}
inline Step Ct(Step s, size_t entries) {
  s.conntrack_entries = entries;
  return s;
}
// A step with no packet: advance time, collect garbage, count entries.
inline Step GcAfter(uint64_t seconds, size_t entries_left) {
  return Step{.advance_ns = seconds * kSecond,
              .collect_garbage = true,
              .conntrack_entries = entries_left};
}

// TCP handshake steps of a pod client to a service with one remote backend:
// client -> frontend, replies from the backend over the network.
struct TcpConn {
  const char* client;
  uint16_t cport;
  const char* frontend;
  uint16_t fport;
  const char* backend;
  uint16_t bport;
};

inline Step ClientToBackend(const TcpConn& c, uint8_t flags, uint32_t seq = 1000, uint32_t ack = 0) {
  return Pass(FromPod(kPodA, Pkt(c.client, c.frontend).Tcp(c.cport, c.fport, flags).Seq(seq).Ack(ack)),
              Pkt(c.client, c.backend).Tcp(c.cport, c.bport, flags).Seq(seq).Ack(ack));
}
inline Step BackendToClient(const TcpConn& c, uint8_t flags, uint32_t seq = 5000, uint32_t ack = 1001) {
  return Redirect(FromNet(Pkt(c.backend, c.client).Tcp(c.bport, c.cport, flags).Seq(seq).Ack(ack)),
                  kPodA, Pkt(c.frontend, c.client).Tcp(c.fport, c.cport, flags).Seq(seq).Ack(ack));
}

inline const TcpConn kWebConn{kPodA.v4, 40000, kVip4, 80, kRemote1v4, 8080};

inline ServiceSpec WebService() {
  return Svc("web", kVip4, L4Proto::kTCP, 80, 8080, {{.ip = kRemote1v4}});
}

// The handshake through `kWebConn`: SYN, SYN-ACK, ACK (entries established).
inline std::vector<Step> Handshake() {
  return {ClientToBackend(kWebConn, kTcpSyn), BackendToClient(kWebConn, kTcpSyn | kTcpAck),
          ClientToBackend(kWebConn, kTcpAck, 1001, 5001)};
}

inline std::vector<Step> Concat(std::vector<Step> a, std::initializer_list<Step> b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}


}  // namespace dpv2::conformance

#endif  // DPV2_TESTS_CONFORMANCE_FIXTURES_H_
