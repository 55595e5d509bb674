// Policy enforcement by the datapath: ingress at the destination pod, egress
// at the source pod after service translation, one verdict event per new
// connection, replies bypassing policy, established flows re-checked.
#include "core/policy/policy_map.h"
#include "fixtures.h"

namespace dpv2::conformance {
namespace {

constexpr uint32_t kRemoteIdentity = 5000;
constexpr uint32_t kMatchId = 9;

// Pods A and B, with B isolated for ingress and/or A for egress.
std::vector<EndpointEntry> Pods(uint32_t a_flags, uint32_t b_flags) {
  std::vector<EndpointEntry> pods = LocalPods();
  for (EndpointEntry& e : pods) {
    e.value.flags = e.value.endpoint_id == kPodA.endpoint_id ? a_flags : b_flags;
  }
  return pods;
}

PolicyEntry Allow(const Pod& pod, uint8_t direction, uint32_t peer, uint16_t port) {
  return PolicyEntry{
      .key = MakePolicyKey(pod.endpoint_id, peer, direction, DPV2_PROTO_TCP, port,
                           kPolicyVariableBits),
      .value = {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NETWORK,
                .match_id = kMatchId}};
}

IpcacheEntry RemotePods() {
  IpcacheEntry e{};
  e.key.family = DPV2_FAMILY_V4;
  e.key.prefixlen = 32 + 24;
  e.key.addr = A("10.0.2.0").ToAbi();
  e.value.identity = kRemoteIdentity;
  return e;
}

ExpectedEvent Verdict(bool egress, bool allowed, FiveTuple tuple, const char* frontend = nullptr,
                      uint16_t frontend_port = 0) {
  return {.type = DPV2_EVENT_POLICY_VERDICT,
          .flags = static_cast<uint16_t>((egress ? DPV2_EV_F_EGRESS : 0) |
                                         (allowed ? DPV2_EV_F_ALLOWED : 0)),
          .tuple = tuple,
          .orig_dst = frontend ? A(frontend) : tuple.dst,
          .orig_dport = frontend ? frontend_port : tuple.dport};
}

// The fast-path stamp (abi/ct.h) each backend leaves in its conntrack
// entries: the same interface and cached flags everywhere, whatever the
// backend's own revision counter reads.
void AddStampCases(std::vector<ConformanceCase>& cases) {
  const DatapathConfig cfg = SmallConfig();
  const FiveTuple to_vip = T(L4Proto::kTCP, kPodA.v4, 40000, kVip4, 80);
  const FiveTuple to_backend = T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080);
  const uint8_t from_pod_pass = DPV2_CT_C_FROM_POD | DPV2_CT_C_PASS;
  cases.push_back({
      .proves = "a service connection's SERVICE entry carries the stamp of its client's "
                "interface and 'passes to the stack' for a remote backend; its flow entry none",
      .config = cfg,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {Stamps(ClientToBackend(kWebConn, kTcpSyn),
                       {Stamped(to_vip, true, kPodA, from_pod_pass), Unstamped(to_backend)}),
                BackendToClient(kWebConn, kTcpSyn | kTcpAck),
                Stamps(ClientToBackend(kWebConn, kTcpAck, 1001, 5001),
                       {Stamped(to_vip, true, kPodA, from_pod_pass), Unstamped(to_backend)})},
  });
  const FiveTuple a_to_b = T(L4Proto::kTCP, kPodA.v4, 40000, kPodB.v4, 8080);
  const FiveTuple a_to_remote = T(L4Proto::kTCP, kPodA.v4, 41000, kRemote1v4, 8080);
  auto to = [](const char* dst, uint16_t sport, uint8_t flags) {
    return Pkt(kPodA.v4, dst).Tcp(sport, 8080, flags);
  };
  cases.push_back({
      .proves = "plain flows carry the stamp of the policy lookups that allowed them, and "
                "'passes to the stack' only for a destination that is no local pod",
      .config = cfg,
      .endpoints = Pods(DPV2_EP_F_EGRESS_POLICY, DPV2_EP_F_INGRESS_POLICY),
      .ipcache = {RemotePods()},
      .policy = {Allow(kPodA, DPV2_DIR_EGRESS, kPodB.identity, 8080),
                 Allow(kPodA, DPV2_DIR_EGRESS, kRemoteIdentity, 8080),
                 Allow(kPodB, DPV2_DIR_INGRESS, kPodA.identity, 8080)},
      .steps = {Redirect(FromPod(kPodA, to(kPodB.v4, 40000, kTcpSyn)), kPodB,
                         to(kPodB.v4, 40000, kTcpSyn)),
                Pass(FromPod(kPodA, to(kRemote1v4, 41000, kTcpSyn)),
                     to(kRemote1v4, 41000, kTcpSyn)),
                Stamps(Pass(FromPod(kPodA, to(kRemote1v4, 41000, kTcpAck)),
                            to(kRemote1v4, 41000, kTcpAck)),
                       {Stamped(a_to_b, false, kPodA,
                                DPV2_CT_C_FROM_POD | DPV2_CT_C_EGRESS | DPV2_CT_C_INGRESS),
                        Stamped(a_to_remote, false, kPodA,
                                DPV2_CT_C_FROM_POD | DPV2_CT_C_EGRESS | DPV2_CT_C_PASS)})},
  });
  Step rechosen = Ct(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpAck)),
                              DPV2_DROP_CT_FULL),
                     2);
  rechosen.change = [](std::vector<ServiceSpec>& services) {
    services[0].endpoint_slices[0].endpoints[0].addresses = {A(kRemote2v4)};
  };
  DatapathConfig two = cfg;
  two.ct_tcp_entries = 2;
  cases.push_back({
      .proves = "a connection re-chosen after its backend left, whose new flow entry finds the "
                "TCP conntrack table full, is dropped and leaves no stamped entry",
      .config = two,
      .services = {WebService()},
      .endpoints = LocalPods(),
      .steps = {ClientToBackend(kWebConn, kTcpSyn),
                Stamps(rechosen, {Unstamped(to_vip, true), Unstamped(to_backend)})},
  });
}

}  // namespace

std::vector<ConformanceCase> PolicyCases() {
  const DatapathConfig cfg = SmallConfig();
  std::vector<ConformanceCase> cases;
  const FiveTuple a_to_b = T(L4Proto::kTCP, kPodA.v4, 40000, kPodB.v4, 8080);
  cases.push_back({
      .proves = "a pod isolated for ingress accepts a connection its policy allows, with one "
                "ingress verdict event for the connection",
      .config = cfg,
      .endpoints = Pods(0, DPV2_EP_F_INGRESS_POLICY),
      .policy = {Allow(kPodB, DPV2_DIR_INGRESS, kPodA.identity, 8080)},
      .steps = {Counters(Events(Redirect(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4)
                                                            .Tcp(40000, 8080, kTcpSyn)),
                                         kPodB, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpSyn)),
                                {Verdict(false, true, a_to_b), TraceNewPlain(a_to_b)}),
                         {{DPV2_CNT_POLICY_ALLOWED, 1}}),
                Events(Redirect(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpAck)),
                                kPodB, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpAck)),
                       {})},
  });
  cases.push_back({
      .proves = "a pod isolated for ingress drops a connection to a port no policy allows, "
                "with a deny verdict event",
      .config = cfg,
      .endpoints = Pods(0, DPV2_EP_F_INGRESS_POLICY),
      .policy = {Allow(kPodB, DPV2_DIR_INGRESS, kPodA.identity, 8080)},
      .steps = {Ct(Drops(Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4)
                                                            .Tcp(40000, 9090, kTcpSyn)),
                                         DPV2_DROP_POLICY_DENY),
                                {Verdict(false, false,
                                         T(L4Proto::kTCP, kPodA.v4, 40000, kPodB.v4, 9090)),
                                 DropEvent(DPV2_DROP_POLICY_DENY,
                                           T(L4Proto::kTCP, kPodA.v4, 40000, kPodB.v4, 9090))}),
                         {{DPV2_DROP_POLICY_DENY, 1}}),
                   0)},
  });
  cases.push_back({
      .proves = "egress policy sees the backend, not the ClusterIP: a pod allowed to reach the "
                "backend identity on the target port connects through the Service",
      .config = cfg,
      .services = {WebService()},
      .endpoints = Pods(DPV2_EP_F_EGRESS_POLICY, 0),
      .ipcache = {RemotePods()},
      .policy = {Allow(kPodA, DPV2_DIR_EGRESS, kRemoteIdentity, 8080)},
      .steps = {Events(ClientToBackend(kWebConn, kTcpSyn),
                       {Verdict(true, true, T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080),
                                kVip4, 80),
                        TraceNew(T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080), kVip4,
                                 80)})},
  });
  cases.push_back({
      .proves = "egress policy that allows only the frontend port, not the backend's target "
                "port, drops the service connection after translation",
      .config = cfg,
      .services = {WebService()},
      .endpoints = Pods(DPV2_EP_F_EGRESS_POLICY, 0),
      .ipcache = {RemotePods()},
      .policy = {Allow(kPodA, DPV2_DIR_EGRESS, kRemoteIdentity, 80)},
      .steps = {Ct(Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kVip4).Tcp(40000, 80, kTcpSyn)),
                                   DPV2_DROP_POLICY_DENY),
                          {Verdict(true, false,
                                   T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080), kVip4,
                                   80),
                           DropTranslated(DPV2_DROP_POLICY_DENY,
                                          T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080),
                                          kVip4, 80)}),
                   0)},
  });
  cases.push_back({
      .proves = "replies of an allowed connection bypass the replying pod's egress policy",
      .config = cfg,
      .endpoints = Pods(DPV2_EP_F_EGRESS_POLICY, 0),  // A may send nothing on its own
      .steps = {Redirect(FromPod(kPodB, Pkt(kPodB.v4, kPodA.v4).Tcp(41000, 8080, kTcpSyn)), kPodA,
                         Pkt(kPodB.v4, kPodA.v4).Tcp(41000, 8080, kTcpSyn)),
                Events(Redirect(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4)
                                                   .Tcp(8080, 41000, kTcpSyn | kTcpAck)),
                                kPodB, Pkt(kPodA.v4, kPodB.v4).Tcp(8080, 41000, kTcpSyn | kTcpAck)),
                       {TraceReplyPlain(T(L4Proto::kTCP, kPodA.v4, 8080, kPodB.v4, 41000))}),
                Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(42000, 8080, kTcpSyn)),
                                DPV2_DROP_POLICY_DENY),
                       {Verdict(true, false, T(L4Proto::kTCP, kPodA.v4, 42000, kPodB.v4, 8080)),
                        DropEvent(DPV2_DROP_POLICY_DENY,
                                  T(L4Proto::kTCP, kPodA.v4, 42000, kPodB.v4, 8080))})},
  });
  {
    Step revoked = Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpAck)),
                                   DPV2_DROP_POLICY_DENY),
                          {DropEvent(DPV2_DROP_POLICY_DENY, a_to_b)});
    revoked.apply.policy_delete = {Allow(kPodB, DPV2_DIR_INGRESS, kPodA.identity, 8080).key};
    cases.push_back({
        .proves = "forward packets of an established connection are re-checked: removing the "
                  "allow drops the next packet without a new verdict event",
        .config = cfg,
        .endpoints = Pods(0, DPV2_EP_F_INGRESS_POLICY),
        .policy = {Allow(kPodB, DPV2_DIR_INGRESS, kPodA.identity, 8080)},
        .steps = {Redirect(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpSyn)),
                           kPodB, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpSyn)),
                  revoked},
    });
  }
  {
    // The same re-check after each kind of change a cached verdict could
    // hide: a service connection's egress allow, the peer's identity, and
    // the destination pod becoming isolated.
    const FiveTuple web = T(L4Proto::kTCP, kPodA.v4, 40000, kRemote1v4, 8080);
    Step revoked = Events(DropStep(ClientToBackend(kWebConn, kTcpAck, 1001, 5001),
                                   DPV2_DROP_POLICY_DENY),
                          {DropTranslated(DPV2_DROP_POLICY_DENY, web, kVip4, 80)});
    revoked.apply.policy_delete = {Allow(kPodA, DPV2_DIR_EGRESS, kRemoteIdentity, 8080).key};
    cases.push_back({
        .proves = "an established service connection is re-checked after translation: removing "
                  "the egress allow for the backend drops the next packet",
        .config = cfg,
        .services = {WebService()},
        .endpoints = Pods(DPV2_EP_F_EGRESS_POLICY, 0),
        .ipcache = {RemotePods()},
        .policy = {Allow(kPodA, DPV2_DIR_EGRESS, kRemoteIdentity, 8080)},
        .steps = Concat(Handshake(), {revoked}),
    });
  }
  {
    const FiveTuple from_remote = T(L4Proto::kTCP, kRemote1v4, 45000, kPodB.v4, 8080);
    IpcacheEntry relabelled = RemotePods();
    relabelled.value.identity = kRemoteIdentity + 1;
    Step relabel = Events(
        DropStep(FromNet(Pkt(kRemote1v4, kPodB.v4).Tcp(45000, 8080, kTcpAck)),
                 DPV2_DROP_POLICY_DENY),
        {DropEvent(DPV2_DROP_POLICY_DENY, from_remote)});
    relabel.apply.ipcache_upsert = {relabelled};
    cases.push_back({
        .proves = "an established connection from the network is re-checked with the peer's "
                  "current identity: an ipcache relabel to an identity no policy allows drops "
                  "the next packet",
        .config = cfg,
        .endpoints = Pods(0, DPV2_EP_F_INGRESS_POLICY),
        .ipcache = {RemotePods()},
        .policy = {Allow(kPodB, DPV2_DIR_INGRESS, kRemoteIdentity, 8080)},
        .steps = {Redirect(FromNet(Pkt(kRemote1v4, kPodB.v4).Tcp(45000, 8080, kTcpSyn)), kPodB,
                           Pkt(kRemote1v4, kPodB.v4).Tcp(45000, 8080, kTcpSyn)),
                  Redirect(FromNet(Pkt(kRemote1v4, kPodB.v4).Tcp(45000, 8080, kTcpAck)), kPodB,
                           Pkt(kRemote1v4, kPodB.v4).Tcp(45000, 8080, kTcpAck)),
                  relabel},
    });
  }
  {
    Step isolated = Events(DropStep(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpAck)),
                                    DPV2_DROP_POLICY_DENY),
                           {DropEvent(DPV2_DROP_POLICY_DENY, a_to_b)});
    isolated.apply.endpoints_upsert = Pods(0, DPV2_EP_F_INGRESS_POLICY);
    cases.push_back({
        .proves = "an established connection is re-checked when its destination pod becomes "
                  "isolated for ingress with no policy allowing it",
        .config = cfg,
        .endpoints = Pods(0, 0),
        .steps = {Redirect(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpSyn)),
                           kPodB, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpSyn)),
                  Redirect(FromPod(kPodA, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpAck)),
                           kPodB, Pkt(kPodA.v4, kPodB.v4).Tcp(40000, 8080, kTcpAck)),
                  isolated},
    });
  }
  cases.push_back({
      .proves = "traffic from the network to an ingress-isolated pod is judged with the world "
                "identity",
      .config = cfg,
      .endpoints = Pods(0, DPV2_EP_F_INGRESS_POLICY),
      .policy = {Allow(kPodB, DPV2_DIR_INGRESS, DPV2_IDENTITY_WORLD, 443)},
      .steps = {Redirect(FromNet(Pkt(kClient4, kPodB.v4).Tcp(50000, 443, kTcpSyn)), kPodB,
                         Pkt(kClient4, kPodB.v4).Tcp(50000, 443, kTcpSyn)),
                DropStep(FromNet(Pkt(kClient4, kPodB.v4).Tcp(50000, 80, kTcpSyn)),
                         DPV2_DROP_POLICY_DENY)},
  });
  AddStampCases(cases);
  return cases;
}

}  // namespace dpv2::conformance
