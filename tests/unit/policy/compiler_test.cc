// One test per rule of SEMANTICS.md section 2 (NetworkPolicy), each checked
// through the same lookup the backends perform.
#include <catch2/catch.hpp>

#include "policy_world.h"

namespace dpv2::testing {
namespace {

// Namespaces x, y; pods a, b in each; an outside address.
constexpr const char* kXa = "10.0.1.1";
constexpr const char* kXb = "10.0.1.2";
constexpr const char* kYa = "10.0.2.1";
constexpr const char* kYb = "10.0.2.2";
constexpr const char* kOutside = "192.0.2.7";

void Basic(PolicyWorld& w) {
  w.Namespace("x", {{"ns", "x"}});
  w.Namespace("y", {{"ns", "y"}});
  w.Pod("x", "a", {{"pod", "a"}}, kXa);
  w.Pod("x", "b", {{"pod", "b"}}, kXb);
  w.Pod("y", "a", {{"pod", "a"}}, kYa);
  w.Pod("y", "b", {{"pod", "b"}}, kYb);
}

NetworkPolicy Np(const std::string& ns, const std::string& name) {
  return NetworkPolicy{.metadata = {.name = name, .namespace_name = ns}};
}

void Set(PolicyWorld& w, const NetworkPolicy& np) {
  absl::Status s = w.state().SetNetworkPolicy(np);
  INFO(s.message());
  REQUIRE(s.ok());
  w.Sync();
}

LabelSelector Sel(Labels l) { return LabelSelector{.match_labels = std::move(l)}; }

TEST_CASE("np: without any policy every connection is allowed and nothing is isolated", "[np]") {
  PolicyWorld w;
  Basic(w);
  w.Sync();
  REQUIRE(w.Endpoint(kXa) != nullptr);
  CHECK(w.Endpoint(kXa)->flags == 0);
  CHECK(w.Allowed(kXa, kYb, 80));
  CHECK(w.Allowed(kOutside, kXa, 80));
  CHECK(w.policy_entries() == 0);
}

TEST_CASE("np: an empty podSelector selects every pod of its namespace only", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "deny-ingress");  // no rules: deny all ingress
  Set(w, np);
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXb, 80));
  CHECK_FALSE(w.Allowed(kXa, kXb, 80));
  CHECK(w.Allowed(kXa, kYa, 80));  // y is not selected
  CHECK(w.Endpoint(kXa)->flags == DPV2_EP_F_INGRESS_POLICY);
  CHECK(w.Endpoint(kYa)->flags == 0);
}

TEST_CASE("np: policyTypes default to Ingress, plus Egress only with an egress section", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "egress-only-section");
  np.spec.egress.push_back({.to = {{.pod_selector = Sel({{"pod", "b"}})}}});
  Set(w, np);
  CHECK(w.Endpoint(kXa)->flags == (DPV2_EP_F_INGRESS_POLICY | DPV2_EP_F_EGRESS_POLICY));
  Conn to_xb = w.Check(kXa, kXb, 80);
  CHECK(to_xb.egress.allowed());          // egress to x/b allowed,
  CHECK_FALSE(to_xb.ingress.allowed());   // but x/b is ingress-isolated with no rules
  CHECK_FALSE(w.Allowed(kYa, kXb, 80));
  CHECK_FALSE(w.Allowed(kXa, kYa, 80));   // egress isolated
}

TEST_CASE("np: explicit policyTypes Egress leaves ingress open even with ingress rules", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "egress-deny");
  np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  np.spec.ingress.push_back({});  // ignored: Ingress not in policyTypes
  Set(w, np);
  CHECK(w.Endpoint(kXa)->flags == DPV2_EP_F_EGRESS_POLICY);
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kXa, kYa, 80));
  CHECK_FALSE(w.Allowed(kXa, kOutside, 443));
}

TEST_CASE("np: a connection needs egress at the source and ingress at the destination", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy eg = Np("x", "egress-to-y");
  eg.spec.pod_selector = Sel({{"pod", "a"}});
  eg.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  eg.spec.egress.push_back({.to = {{.namespace_selector = Sel({{"ns", "y"}})}}});
  Set(w, eg);
  CHECK(w.Allowed(kXa, kYa, 80));
  NetworkPolicy in = Np("y", "deny-in");
  in.spec.pod_selector = Sel({{"pod", "a"}});
  Set(w, in);
  Conn c = w.Check(kXa, kYa, 80);
  CHECK(c.egress.allowed());
  CHECK_FALSE(c.ingress.allowed());
  CHECK_FALSE(c.allowed);
  CHECK(w.Allowed(kXa, kYb, 80));
}

TEST_CASE("np: allows of several policies are a union", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy p1 = Np("x", "from-xb");
  p1.spec.pod_selector = Sel({{"pod", "a"}});
  p1.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}})}}});
  NetworkPolicy p2 = Np("x", "from-y");
  p2.spec.pod_selector = Sel({{"pod", "a"}});
  p2.spec.ingress.push_back({.from = {{.namespace_selector = Sel({{"ns", "y"}})}}});
  Set(w, p1);
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
  Set(w, p2);
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kOutside, kXa, 80));
}

TEST_CASE("np: missing ports mean all ports and protocols; missing from means every source",
          "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "allow-all-in");
  np.spec.ingress.push_back({});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXa, 1));
  CHECK(w.Allowed(kYa, kXa, 65535, L4Proto::kUDP));
  CHECK(w.Allowed(kYa, kXa, 0, L4Proto::kICMP));
  CHECK(w.Allowed(kOutside, kXa, 22));
}

TEST_CASE("np: a podSelector peer alone means pods of the policy's namespace", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "from-pod-b");
  np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}})}}});
  Set(w, np);
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK_FALSE(w.Allowed(kYb, kXa, 80));  // same labels, other namespace
}

TEST_CASE("np: a namespaceSelector peer alone means every pod of matching namespaces; empty means all namespaces but no outside address",
          "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "from-y");
  np.spec.pod_selector = Sel({{"pod", "a"}});
  np.spec.ingress.push_back({.from = {{.namespace_selector = Sel({{"ns", "y"}})}}});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK(w.Allowed(kYb, kXa, 80));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));
  np.spec.ingress[0].from[0].namespace_selector = LabelSelector{};
  Set(w, np);
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK(w.Allowed(kYb, kXa, 80));
  CHECK_FALSE(w.Allowed(kOutside, kXa, 80));
}

TEST_CASE("np: podSelector and namespaceSelector in one peer are ANDed, in two peers ORed",
          "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy and_np = Np("x", "and");
  and_np.spec.pod_selector = Sel({{"pod", "a"}});
  and_np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}}),
                                           .namespace_selector = Sel({{"ns", "y"}})}}});
  Set(w, and_np);
  CHECK(w.Allowed(kYb, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));
  NetworkPolicy or_np = and_np;
  or_np.spec.ingress[0].from = {{.pod_selector = Sel({{"pod", "b"}})},
                                {.namespace_selector = Sel({{"ns", "y"}})}};
  Set(w, or_np);
  CHECK(w.Allowed(kYb, kXa, 80));
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK(w.Allowed(kXb, kXa, 80));
}

TEST_CASE("np: namespaces match by the implicit kubernetes.io/metadata.name label", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "from-y-by-name");
  np.spec.ingress.push_back(
      {.from = {{.namespace_selector = Sel({{"kubernetes.io/metadata.name", "y"}})}}});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));
}

TEST_CASE("np: matchExpressions select peers", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "expr");
  np.spec.ingress.push_back(
      {.from = {{.pod_selector = LabelSelector{.match_expressions = {{
                     .key = "pod", .op = LabelSelectorOperator::kIn, .values = {"a", "c"}}}},
                 .namespace_selector = LabelSelector{.match_expressions = {{
                     .key = "ns", .op = LabelSelectorOperator::kNotIn, .values = {"x"}}}}}}});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXb, 80));
  CHECK_FALSE(w.Allowed(kYb, kXb, 80));
  CHECK_FALSE(w.Allowed(kXa, kXb, 80));
}

TEST_CASE("np: an ipBlock matches outside addresses and pod IPs alike", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "cidr");
  np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "10.0.2.1/32"}}}});
  np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "192.0.2.0/24"}}}});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXa, 80));   // a pod, by its IP
  CHECK_FALSE(w.Allowed(kYb, kXa, 80));  // same namespace, other IP
  CHECK(w.Allowed(kOutside, kXa, 80));
  CHECK_FALSE(w.Allowed("198.51.100.1", kXa, 80));
}

TEST_CASE("np: ipBlock except applies only to its own peer", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "except");
  np.spec.pod_selector = Sel({{"pod", "a"}});
  np.spec.ingress.push_back(
      {.from = {{.ip_block = IPBlock{.cidr = "10.0.0.0/16", .except = {"10.0.2.0/24"}}}}});
  Set(w, np);
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kYb, kXa, 80));
  // Another rule that names y/b still allows it.
  np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}}),
                                       .namespace_selector = Sel({{"ns", "y"}})}}});
  Set(w, np);
  CHECK(w.Allowed(kYb, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
}

TEST_CASE("np: a CIDR with host bits is accepted as its network, with a warning", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "noncanonical");
  np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "192.0.2.9/24"}}}});
  Set(w, np);
  CHECK(w.Allowed(kOutside, kXa, 80));
  std::vector<std::string> warnings = w.state().TakeWarnings();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("192.0.2.9/24") != std::string::npos);
  CHECK(warnings[0].find("192.0.2.0/24") != std::string::npos);
}

TEST_CASE("np: protocol defaults to TCP and a UDP or SCTP rule never allows TCP", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "ports");
  np.spec.ingress.push_back({.ports = {{.port = 80}}});
  np.spec.ingress.push_back({.ports = {{.protocol = L4Proto::kUDP, .port = 53}}});
  np.spec.ingress.push_back({.ports = {{.protocol = L4Proto::kSCTP, .port = 9000}}});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80, L4Proto::kUDP));
  CHECK(w.Allowed(kYa, kXa, 53, L4Proto::kUDP));
  CHECK_FALSE(w.Allowed(kYa, kXa, 53));
  CHECK(w.Allowed(kYa, kXa, 9000, L4Proto::kSCTP));
  CHECK_FALSE(w.Allowed(kYa, kXa, 9000));
  CHECK_FALSE(w.Allowed(kYa, kXa, 81));
}

TEST_CASE("np: a protocol without a port allows every port of that protocol only", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "udp-any");
  np.spec.ingress.push_back({.ports = {{.protocol = L4Proto::kUDP}}});
  Set(w, np);
  CHECK(w.Allowed(kYa, kXa, 1, L4Proto::kUDP));
  CHECK(w.Allowed(kYa, kXa, 65535, L4Proto::kUDP));
  CHECK_FALSE(w.Allowed(kYa, kXa, 1));
}

TEST_CASE("np: endPort makes an inclusive range", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy np = Np("x", "range");
  np.spec.ingress.push_back({.ports = {{.port = 79, .end_port = 1001}}});
  Set(w, np);
  CHECK_FALSE(w.Allowed(kYa, kXa, 78));
  for (uint16_t p : {79, 80, 81, 127, 128, 512, 1000, 1001}) {
    INFO(p);
    CHECK(w.Allowed(kYa, kXa, p));
  }
  CHECK_FALSE(w.Allowed(kYa, kXa, 1002));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80, L4Proto::kUDP));
}

TEST_CASE("np: an ingress named port resolves on each selected pod", "[np]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Pod("x", "a", {{"app", "web"}}, kXa, {{.name = "http", .container_port = 8080}});
  w.Pod("x", "b", {{"app", "web"}}, kXb, {{.name = "http", .container_port = 9090}});
  w.Pod("x", "c", {{"app", "client"}}, "10.0.1.3");
  NetworkPolicy np = Np("x", "named");
  np.spec.pod_selector = Sel({{"app", "web"}});
  np.spec.ingress.push_back({.ports = {{.port = std::string("http")}}});
  Set(w, np);
  CHECK(w.Allowed("10.0.1.3", kXa, 8080));
  CHECK_FALSE(w.Allowed("10.0.1.3", kXa, 9090));
  CHECK(w.Allowed("10.0.1.3", kXb, 9090));
  CHECK_FALSE(w.Allowed("10.0.1.3", kXb, 8080));
  // The protocol must match the container port's too.
  np.spec.ingress[0].ports[0].protocol = L4Proto::kUDP;
  Set(w, np);
  CHECK_FALSE(w.Allowed("10.0.1.3", kXa, 8080));
  CHECK_FALSE(w.Allowed("10.0.1.3", kXa, 8080, L4Proto::kUDP));
}

TEST_CASE("np: an egress named port resolves on each destination pod", "[np]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Namespace("y");
  w.Pod("y", "a", {{"pod", "a"}}, kYa, {{.name = "serve", .container_port = 81}});
  w.Pod("y", "b", {{"pod", "b"}}, kYb, {{.name = "serve", .container_port = 82}});
  w.Pod("x", "a", {{"pod", "a"}}, kXa);
  NetworkPolicy np = Np("x", "egress-named");
  np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  np.spec.egress.push_back({.ports = {{.port = std::string("serve")}}});  // to: everyone
  Set(w, np);
  CHECK(w.Allowed(kXa, kYa, 81));
  CHECK_FALSE(w.Allowed(kXa, kYa, 82));
  CHECK(w.Allowed(kXa, kYb, 82));
  CHECK_FALSE(w.Allowed(kXa, kYb, 81));
  CHECK_FALSE(w.Allowed(kXa, kOutside, 81));
}

TEST_CASE("np: a named port never matches an ipBlock peer", "[np]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Namespace("y");
  w.Pod("y", "a", {{"pod", "a"}}, kYa, {{.name = "serve", .container_port = 81}});
  w.Pod("x", "a", {{"pod", "a"}}, kXa);
  NetworkPolicy np = Np("x", "egress-named-cidr");
  np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  np.spec.egress.push_back({.ports = {{.port = std::string("serve")}},
                            .to = {{.ip_block = IPBlock{.cidr = "10.0.0.0/8"}}}});
  Set(w, np);
  CHECK_FALSE(w.Allowed(kXa, kYa, 81));
}

TEST_CASE("np: hostNetwork pods are not selected and count as their node", "[np]") {
  PolicyWorld w;
  Basic(w);
  REQUIRE(w.state().SetNode({.name = "node-2", .addresses = {Ip("172.16.0.2")}}).ok());
  w.Pod("x", "hostnet", {{"pod", "b"}}, "172.16.0.2", {}, /*local=*/false, /*host_network=*/true);
  NetworkPolicy np = Np("x", "from-pod-b");
  np.spec.pod_selector = Sel({{"pod", "a"}});
  np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"pod", "b"}})}}});
  Set(w, np);
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK_FALSE(w.Allowed("172.16.0.2", kXa, 80));  // remote node traffic, not pod b
  CHECK(w.IdentityOfIp(Ip("172.16.0.2")) == DPV2_IDENTITY_REMOTE_NODE);
}

TEST_CASE("np: traffic from the pod's own node is always allowed", "[np]") {
  PolicyWorld w;
  Basic(w);
  REQUIRE(w.state().SetNode({.name = "node-1", .addresses = {Ip("172.16.0.1")}}).ok());
  NetworkPolicy np = Np("x", "deny-all");
  Set(w, np);
  CHECK(w.IdentityOfIp(Ip("172.16.0.1")) == DPV2_IDENTITY_HOST);
  CHECK(w.Allowed("172.16.0.1", kXa, 10250));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
}

TEST_CASE("np: the matching policies are named for logging", "[np]") {
  PolicyWorld w;
  Basic(w);
  NetworkPolicy p1 = Np("x", "p1");
  p1.spec.ingress.push_back({.ports = {{.port = 80}}});
  NetworkPolicy p2 = Np("x", "p2");
  p2.spec.ingress.push_back({.from = {{.namespace_selector = Sel({{"ns", "y"}})}}});
  Set(w, p1);
  Set(w, p2);
  Conn both = w.Check(kYa, kXa, 80);
  REQUIRE(both.ingress.allowed());
  const std::vector<PolicyRef>* refs = w.state().MatchPolicies(both.ingress.match_id);
  REQUIRE(refs != nullptr);
  REQUIRE(refs->size() == 2);
  CHECK((*refs)[0].name == "p1");
  CHECK((*refs)[1].name == "p2");
  CHECK(both.ingress.tier == DPV2_POLICY_TIER_NETWORK);
  Conn one = w.Check(kYa, kXa, 81);
  REQUIRE(w.state().MatchPolicies(one.ingress.match_id) != nullptr);
  CHECK(w.state().MatchPolicies(one.ingress.match_id)->size() == 1);
  Conn denied = w.Check(kXb, kXa, 81);
  CHECK_FALSE(denied.allowed);
  CHECK(denied.ingress.match_id == 0);
  CHECK(denied.ingress.tier == DPV2_POLICY_TIER_DEFAULT);
}

}  // namespace
}  // namespace dpv2::testing
