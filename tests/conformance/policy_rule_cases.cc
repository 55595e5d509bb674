// NetworkPolicy / AdminNetworkPolicy rules, compiled by PolicyState and
// enforced by the datapath: each case is one Kubernetes rule and one new
// connection, so that every backend proves every rule of SEMANTICS.md
// section 2 with real packets.
//
// World: namespace x (ns=x) holds the local pods a (kPodA) and b (kPodB);
// namespace y (ns=y) holds remote pods a (10.0.2.8) and b (10.0.2.9). Pods
// carry pod=<name> and name their container ports "http" (a: 8080, b: 9090).
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

#include "core/policy/policy_map.h"
#include "dpv2/policy_state.h"
#include "fixtures.h"

namespace dpv2::conformance {
namespace {

constexpr const char* kYa = kRemote1v4;  // 10.0.2.8
constexpr const char* kYb = kRemote2v4;  // 10.0.2.9
constexpr const char* kOutside = "192.0.2.7";

LabelSelector Sel(Labels l) { return LabelSelector{.match_labels = std::move(l)}; }

struct World {
  std::vector<NetworkPolicy> nps;
  std::vector<AdminNetworkPolicy> anps;
  std::optional<BaselineAdminNetworkPolicy> banp;
};

// Compiles the world into the raw records a case starts from.
void Compile(const World& w, ConformanceCase* c) {
  PolicyState state({.node_name = "node-a"});
  auto ok = [](const absl::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "policy_rule_cases: %s\n", std::string(s.message()).c_str());
      std::abort();
    }
  };
  ok(state.SetNamespace({.name = "x", .labels = {{"ns", "x"}}}));
  ok(state.SetNamespace({.name = "y", .labels = {{"ns", "y"}}}));
  auto local = [&](const Pod& pod, const char* name, int32_t http) {
    LocalEndpoint ep{.ifindex = pod.ifindex, .mac = pod.mac, .host_mac = pod.host_mac};
    ok(state.SetPod({.namespace_name = "x", .name = name, .labels = {{"pod", name}},
                     .ips = {A(pod.v4)}, .node_name = "node-a",
                     .container_ports = {{.name = "http", .container_port = http}}},
                    ep));
  };
  local(kPodA, "a", 8080);  // endpoint id 1 = kPodA.endpoint_id
  local(kPodB, "b", 9090);
  ok(state.SetPod({.namespace_name = "y", .name = "a", .labels = {{"pod", "a"}}, .ips = {A(kYa)},
                   .node_name = "node-b",
                   .container_ports = {{.name = "http", .container_port = 8080}}}));
  ok(state.SetPod({.namespace_name = "y", .name = "b", .labels = {{"pod", "b"}}, .ips = {A(kYb)},
                   .node_name = "node-b",
                   .container_ports = {{.name = "http", .container_port = 9090}}}));
  for (const NetworkPolicy& np : w.nps) ok(state.SetNetworkPolicy(np));
  for (const AdminNetworkPolicy& anp : w.anps) ok(state.SetAdminNetworkPolicy(anp));
  if (w.banp) ok(state.SetBaselineAdminNetworkPolicy(*w.banp));
  const ChangeBatch b = state.Diff();
  c->endpoints = b.endpoints_upsert;
  c->ipcache = b.ipcache_upsert;
  c->policy = b.policy_upsert;
}

struct Conn {
  const char* from;  // address
  const char* to;
  L4Proto proto;
  uint16_t port;
  bool allowed;
};

const Pod* LocalPod(const char* ip) {
  if (std::string(ip) == kPodA.v4) return &kPodA;
  if (std::string(ip) == kPodB.v4) return &kPodB;
  return nullptr;
}

PacketBuilder Frame(const Conn& k) {
  PacketBuilder b = Pkt(k.from, k.to);
  switch (k.proto) {
    case L4Proto::kUDP:
      b.Udp(40000, k.port);
      break;
    case L4Proto::kSCTP:
      b.Sctp(40000, k.port);
      break;
    default:
      b.Tcp(40000, k.port, kTcpSyn);
      break;
  }
  return b;
}

Step StepFor(const Conn& k) {
  const Pod* src = LocalPod(k.from);
  const Pod* dst = LocalPod(k.to);
  Step s = src != nullptr ? FromPod(*src, Frame(k)) : FromNet(Frame(k));
  if (!k.allowed) {
    return DropStep(s, DPV2_DROP_POLICY_DENY);
  }
  if (dst != nullptr) {
    return Redirect(s, *dst, Frame(k));
  }
  return Pass(s, Frame(k));
}

const char* Name(const char* ip) {
  const std::string s(ip);
  if (s == kPodA.v4) return "x/a";
  if (s == kPodB.v4) return "x/b";
  if (s == kYa) return "y/a";
  if (s == kYb) return "y/b";
  return ip;
}

void Add(std::vector<ConformanceCase>* out, const std::string& rule, const World& w,
         std::initializer_list<Conn> conns) {
  for (const Conn& k : conns) {
    ConformanceCase c{.proves = absl::StrCat("policy rule: ", rule, ": ", Name(k.from), " -> ",
                                             Name(k.to), " ",
                                             absl::AsciiStrToLower(L4ProtoName(k.proto)), "/",
                                             k.port, k.allowed ? " is allowed" : " is denied"),
                      .config = SmallConfig()};
    Compile(w, &c);
    c.steps.push_back(StepFor(k));
    out->push_back(std::move(c));
  }
}

NetworkPolicy Np(const char* name) {
  return NetworkPolicy{.metadata = {.name = name, .namespace_name = "x"}};
}

}  // namespace

std::vector<ConformanceCase> PolicyRuleCases() {
  std::vector<ConformanceCase> out;
  const L4Proto tcp = L4Proto::kTCP, udp = L4Proto::kUDP, sctp = L4Proto::kSCTP;
  const char* a = kPodA.v4;
  const char* b = kPodB.v4;

  Add(&out, "no policy allows everything", {},
      {{a, b, tcp, 80, true}, {kYa, b, tcp, 80, true}, {a, kOutside, tcp, 443, true}});

  {
    World w{.nps = {Np("deny-ingress")}};
    Add(&out, "an empty ingress list on an empty podSelector denies all ingress", w,
        {{a, b, tcp, 80, false}, {kYa, a, tcp, 80, false}, {a, kYa, tcp, 80, true}});
  }
  {
    NetworkPolicy np = Np("egress-section");
    np.spec.egress.push_back({.to = {{.namespace_selector = Sel({{"ns", "y"}})}}});
    Add(&out, "policyTypes default adds Egress when an egress section exists", {.nps = {np}},
        {{a, kYa, tcp, 80, true}, {a, kOutside, tcp, 80, false}, {kYa, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("egress-only");
    np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
    Add(&out, "policyTypes Egress alone leaves ingress open", {.nps = {np}},
        {{kYa, a, tcp, 80, true}, {a, kYa, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("from-pod-b");
    np.spec.pod_selector = Sel({{"pod", "a"}});
    np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}})}}});
    Add(&out, "a podSelector peer means pods of the policy's namespace", {.nps = {np}},
        {{b, a, tcp, 80, true}, {kYb, a, tcp, 80, false}, {kOutside, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("from-ns-y");
    np.spec.ingress.push_back({.from = {{.namespace_selector = Sel({{"ns", "y"}})}}});
    Add(&out, "a namespaceSelector peer means every pod of matching namespaces", {.nps = {np}},
        {{kYa, a, tcp, 80, true}, {kYb, a, tcp, 80, true}, {b, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("from-all-ns");
    np.spec.ingress.push_back({.from = {{.namespace_selector = LabelSelector{}}}});
    Add(&out, "an empty namespaceSelector means all pods but no outside address", {.nps = {np}},
        {{kYa, a, tcp, 80, true}, {b, a, tcp, 80, true}, {kOutside, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("and");
    np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}}),
                                         .namespace_selector = Sel({{"ns", "y"}})}}});
    Add(&out, "podSelector and namespaceSelector in one peer are ANDed", {.nps = {np}},
        {{kYb, a, tcp, 80, true}, {kYa, a, tcp, 80, false}, {b, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("by-name");
    np.spec.ingress.push_back(
        {.from = {{.namespace_selector = Sel({{"kubernetes.io/metadata.name", "y"}})}}});
    Add(&out, "namespaces match by kubernetes.io/metadata.name", {.nps = {np}},
        {{kYa, a, tcp, 80, true}, {b, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("expr");
    np.spec.ingress.push_back(
        {.from = {{.pod_selector = LabelSelector{.match_expressions = {
                       {.key = "pod", .op = LabelSelectorOperator::kNotIn, .values = {"a"}}}},
                   .namespace_selector = LabelSelector{.match_expressions = {
                       {.key = "ns", .op = LabelSelectorOperator::kExists}}}}}});
    Add(&out, "matchExpressions NotIn and Exists select peers", {.nps = {np}},
        {{kYb, a, tcp, 80, true}, {kYa, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("cidr");
    np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "10.0.2.8/32"}}}});
    np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "192.0.2.0/24"}}}});
    Add(&out, "an ipBlock matches pod IPs and outside addresses", {.nps = {np}},
        {{kYa, a, tcp, 80, true}, {kYb, a, tcp, 80, false}, {kOutside, a, tcp, 80, true}});
  }
  {
    NetworkPolicy np = Np("except");
    np.spec.ingress.push_back(
        {.from = {{.ip_block = IPBlock{.cidr = "10.0.0.0/16", .except = {"10.0.2.8/32"}}}}});
    np.spec.ingress.push_back({.ports = {{.port = 81}},
                               .from = {{.pod_selector = Sel({{"pod", "a"}}),
                                         .namespace_selector = Sel({{"ns", "y"}})}}});
    Add(&out, "ipBlock except applies only to its own peer", {.nps = {np}},
        {{kYb, a, tcp, 80, true}, {kYa, a, tcp, 80, false}, {kYa, a, tcp, 81, true}});
  }
  {
    NetworkPolicy np = Np("noncanonical");
    np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "192.0.2.99/24"}}}});
    Add(&out, "a CIDR with host bits is its network", {.nps = {np}},
        {{kOutside, a, tcp, 80, true}, {kYa, a, tcp, 80, false}});
  }
  {
    NetworkPolicy np = Np("ports");
    np.spec.ingress.push_back({.ports = {{.port = 80}}});
    np.spec.ingress.push_back({.ports = {{.protocol = L4Proto::kSCTP, .port = 9000}}});
    Add(&out, "protocol defaults to TCP; an SCTP rule does not allow TCP", {.nps = {np}},
        {{kYa, a, tcp, 80, true}, {kYa, a, udp, 80, false}, {kYa, a, sctp, 9000, true},
         {kYa, a, tcp, 9000, false}});
  }
  {
    NetworkPolicy np = Np("udp-only");
    np.spec.ingress.push_back({.ports = {{.protocol = L4Proto::kUDP, .port = 53}}});
    Add(&out, "a UDP-only rule does not allow TCP", {.nps = {np}},
        {{kYa, a, udp, 53, true}, {kYa, a, tcp, 53, false}});
  }
  {
    NetworkPolicy np = Np("range");
    np.spec.ingress.push_back({.ports = {{.port = 8000, .end_port = 8100}}});
    Add(&out, "endPort makes an inclusive range", {.nps = {np}},
        {{kYa, a, tcp, 7999, false}, {kYa, a, tcp, 8000, true}, {kYa, a, tcp, 8100, true},
         {kYa, a, tcp, 8101, false}});
  }
  {
    NetworkPolicy np = Np("named-in");
    np.spec.ingress.push_back({.ports = {{.port = std::string("http")}}});
    Add(&out, "an ingress named port resolves on each selected pod", {.nps = {np}},
        {{kYa, a, tcp, 8080, true}, {kYa, a, tcp, 9090, false}, {kYa, b, tcp, 9090, true},
         {kYa, b, tcp, 8080, false}});
  }
  {
    NetworkPolicy np = Np("named-out");
    np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
    np.spec.egress.push_back({.ports = {{.port = std::string("http")}}});
    Add(&out, "an egress named port resolves on each destination pod", {.nps = {np}},
        {{a, kYa, tcp, 8080, true}, {a, kYa, tcp, 9090, false}, {a, kYb, tcp, 9090, true},
         {a, kOutside, tcp, 8080, false}});
  }
  {
    NetworkPolicy p1 = Np("from-b");
    p1.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}})}}});
    NetworkPolicy p2 = Np("from-y-a");
    p2.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "a"}}),
                                         .namespace_selector = Sel({{"ns", "y"}})}}});
    Add(&out, "allows of several policies are a union", {.nps = {p1, p2}},
        {{b, a, tcp, 80, true}, {kYa, a, tcp, 80, true}, {kYb, a, tcp, 80, false}});
  }
  {
    NetworkPolicy eg = Np("a-egress-deny");
    eg.spec.pod_selector = Sel({{"pod", "a"}});
    eg.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
    Add(&out, "egress is checked at the source pod", {.nps = {eg}},
        {{a, b, tcp, 80, false}, {b, a, tcp, 80, true}});
  }
  using Action = AdminNetworkPolicyRuleAction;
  auto anp = [](const char* name, int32_t prio, Action action) {
    AdminNetworkPolicy p{.metadata = {.name = name}};
    p.spec.priority = prio;
    p.spec.subject.namespaces = Sel({{"ns", "x"}});
    p.spec.ingress.push_back(
        {.name = "r", .action = action, .from = {{.namespaces = Sel({{"ns", "y"}})}}});
    return p;
  };
  NetworkPolicy allow_y = Np("allow-y");
  allow_y.spec.ingress.push_back({.from = {{.namespace_selector = Sel({{"ns", "y"}})}}});
  BaselineAdminNetworkPolicy banp_deny{.metadata = {.name = "default"}};
  banp_deny.spec.subject.namespaces = Sel({{"ns", "x"}});
  banp_deny.spec.ingress.push_back(
      {.name = "deny", .action = Action::kDeny, .from = {{.namespaces = LabelSelector{}}}});

  Add(&out, "an AdminNetworkPolicy Deny overrides a NetworkPolicy allow",
      {.nps = {allow_y}, .anps = {anp("deny-y", 10, Action::kDeny)}},
      {{kYa, a, tcp, 80, false}});
  Add(&out, "an AdminNetworkPolicy Allow overrides a NetworkPolicy deny",
      {.nps = {Np("deny")}, .anps = {anp("allow-y", 10, Action::kAllow)}},
      {{kYa, a, tcp, 80, true}, {b, a, tcp, 80, false}});
  Add(&out, "a lower AdminNetworkPolicy priority number wins",
      {.anps = {anp("allow-5", 5, Action::kAllow), anp("deny-9", 9, Action::kDeny)}},
      {{kYa, a, tcp, 80, true}});
  Add(&out, "Pass skips lower-priority admin rules and lets NetworkPolicy decide",
      {.nps = {allow_y},
       .anps = {anp("pass-1", 1, Action::kPass), anp("deny-2", 2, Action::kDeny)}},
      {{kYa, a, tcp, 80, true}});
  Add(&out, "Pass with no NetworkPolicy falls to the baseline",
      {.anps = {anp("pass-1", 1, Action::kPass)}, .banp = banp_deny}, {{kYa, a, tcp, 80, false}});
  Add(&out, "the baseline applies when no NetworkPolicy selects the pod", {.banp = banp_deny},
      {{kYa, a, tcp, 80, false}, {b, a, tcp, 80, false}, {a, kYa, tcp, 80, true}});
  Add(&out, "a NetworkPolicy selecting the pod overrides the baseline",
      {.nps = {allow_y}, .banp = banp_deny}, {{kYa, a, tcp, 80, true}});
  return out;
}

}  // namespace dpv2::conformance
