// AdminNetworkPolicy -> NetworkPolicy -> BaselineAdminNetworkPolicy -> allow.
#include <catch2/catch.hpp>

#include "policy_world.h"

namespace dpv2::testing {
namespace {

constexpr const char* kXa = "10.0.1.1";
constexpr const char* kXb = "10.0.1.2";
constexpr const char* kYa = "10.0.2.1";
constexpr const char* kOutside = "192.0.2.7";

using Action = AdminNetworkPolicyRuleAction;

void Basic(PolicyWorld& w) {
  w.Namespace("x", {{"ns", "x"}});
  w.Namespace("y", {{"ns", "y"}});
  w.Pod("x", "a", {{"pod", "a"}}, kXa);
  w.Pod("x", "b", {{"pod", "b"}}, kXb);
  w.Pod("y", "a", {{"pod", "a"}}, kYa);
}

LabelSelector Sel(Labels l) { return LabelSelector{.match_labels = std::move(l)}; }

// An ANP whose subject is namespace x, with one ingress rule from namespace y.
AdminNetworkPolicy Anp(const std::string& name, int32_t priority, Action action,
                       std::optional<std::vector<AdminNetworkPolicyPort>> ports = std::nullopt) {
  AdminNetworkPolicy anp{.metadata = {.name = name}};
  anp.spec.priority = priority;
  anp.spec.subject.namespaces = Sel({{"ns", "x"}});
  anp.spec.ingress.push_back({.name = "r0", .action = action,
                              .from = {{.namespaces = Sel({{"ns", "y"}})}},
                              .ports = std::move(ports)});
  return anp;
}

BaselineAdminNetworkPolicy Banp(Action action) {
  BaselineAdminNetworkPolicy banp{.metadata = {.name = "default"}};
  banp.spec.subject.namespaces = Sel({{"ns", "x"}});
  banp.spec.ingress.push_back({.name = "b0", .action = action,
                               .from = {{.namespaces = LabelSelector{}}}});
  return banp;
}

NetworkPolicy AllowFromY() {
  NetworkPolicy np{.metadata = {.name = "allow-y", .namespace_name = "x"}};
  np.spec.ingress.push_back({.from = {{.namespace_selector = Sel({{"ns", "y"}})}}});
  return np;
}

NetworkPolicy DenyAll() { return NetworkPolicy{.metadata = {.name = "deny", .namespace_name = "x"}}; }

void Ok(PolicyWorld& w, const absl::Status& s) {
  INFO(s.message());
  REQUIRE(s.ok());
  w.Sync();
}

TEST_CASE("anp: Deny overrides a NetworkPolicy allow", "[anp]") {
  PolicyWorld w;
  Basic(w);
  Ok(w, w.state().SetNetworkPolicy(AllowFromY()));
  CHECK(w.Allowed(kYa, kXa, 80));
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("deny-y", 10, Action::kDeny)));
  Conn c = w.Check(kYa, kXa, 80);
  CHECK_FALSE(c.allowed);
  CHECK(c.ingress.tier == DPV2_POLICY_TIER_ADMIN);
  REQUIRE(w.state().MatchPolicies(c.ingress.match_id) != nullptr);
  CHECK(w.state().MatchPolicies(c.ingress.match_id)->at(0).kind ==
        PolicyRef::Kind::kAdminNetworkPolicy);
  CHECK(w.Allowed(kXb, kXa, 80) == false);  // x/b is not from y: NP isolation denies
}

TEST_CASE("anp: Allow overrides a NetworkPolicy deny", "[anp]") {
  PolicyWorld w;
  Basic(w);
  Ok(w, w.state().SetNetworkPolicy(DenyAll()));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("allow-y", 10, Action::kAllow)));
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));
}

TEST_CASE("anp: Pass hands the decision to NetworkPolicy", "[anp]") {
  PolicyWorld w;
  Basic(w);
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("pass-y", 5, Action::kPass)));
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("deny-y", 10, Action::kDeny)));
  Ok(w, w.state().SetNetworkPolicy(AllowFromY()));
  // Pass (priority 5) skips the lower-priority Deny (10); the NP allows.
  CHECK(w.Allowed(kYa, kXa, 80));
  Ok(w, w.state().SetNetworkPolicy(DenyAll()));
  Ok(w, w.state().RemoveNetworkPolicy("x", "allow-y"));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
}

TEST_CASE("anp: Pass with no NetworkPolicy selecting the pod goes to the baseline", "[anp]") {
  PolicyWorld w;
  Basic(w);
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("pass-y", 5, Action::kPass)));
  CHECK(w.Allowed(kYa, kXa, 80));  // no NP, no baseline: allow
  Ok(w, w.state().SetBaselineAdminNetworkPolicy(Banp(Action::kDeny)));
  Conn c = w.Check(kYa, kXa, 80);
  CHECK_FALSE(c.allowed);
  CHECK(c.ingress.tier == DPV2_POLICY_TIER_BASELINE);
}

TEST_CASE("anp: a lower priority number wins", "[anp]") {
  PolicyWorld w;
  Basic(w);
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("allow-20", 20, Action::kAllow)));
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("deny-30", 30, Action::kDeny)));
  CHECK(w.Allowed(kYa, kXa, 80));
  Ok(w, w.state().SetAdminNetworkPolicy(Anp("deny-30", 3, Action::kDeny)));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
}

TEST_CASE("anp: within one policy the first matching rule wins", "[anp]") {
  PolicyWorld w;
  Basic(w);
  AdminNetworkPolicy anp = Anp("ordered", 10, Action::kAllow,
                               std::vector<AdminNetworkPolicyPort>{
                                   {.port_number = AdminNetworkPolicyPortNumber{.port = 80}}});
  anp.spec.ingress.push_back({.name = "r1", .action = Action::kDeny,
                              .from = {{.namespaces = LabelSelector{}}}});
  Ok(w, w.state().SetAdminNetworkPolicy(anp));
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kYa, kXa, 81));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));  // r0 names y only; r1 denies all
  std::swap(anp.spec.ingress[0], anp.spec.ingress[1]);
  Ok(w, w.state().SetAdminNetworkPolicy(anp));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
}

TEST_CASE("anp: port ranges and named ports", "[anp]") {
  PolicyWorld w;
  w.Namespace("x", {{"ns", "x"}});
  w.Namespace("y", {{"ns", "y"}});
  w.Pod("x", "a", {{"pod", "a"}}, kXa, {{.name = "dns", .protocol = L4Proto::kUDP, .container_port = 5353}});
  w.Pod("y", "a", {{"pod", "a"}}, kYa);
  Ok(w, w.state().SetAdminNetworkPolicy(Anp(
            "deny-range", 10, Action::kDeny,
            std::vector<AdminNetworkPolicyPort>{
                {.port_range = AdminNetworkPolicyPortRange{.start = 1000, .end = 2000}},
                {.named_port = std::string("dns")}})));
  CHECK(w.Allowed(kYa, kXa, 999));
  CHECK_FALSE(w.Allowed(kYa, kXa, 1000));
  CHECK_FALSE(w.Allowed(kYa, kXa, 2000));
  CHECK(w.Allowed(kYa, kXa, 2001));
  CHECK(w.Allowed(kYa, kXa, 1500, L4Proto::kUDP));
  CHECK_FALSE(w.Allowed(kYa, kXa, 5353, L4Proto::kUDP));
  CHECK(w.Allowed(kYa, kXa, 5353));
}

TEST_CASE("anp: egress to networks and nodes", "[anp]") {
  PolicyWorld w;
  Basic(w);
  REQUIRE(w.state().SetNode({.name = "node-2", .labels = {{"role", "infra"}},
                             .addresses = {Ip("172.16.0.2")}}).ok());
  REQUIRE(w.state().SetNode({.name = "node-3", .addresses = {Ip("172.16.0.3")}}).ok());
  AdminNetworkPolicy anp{.metadata = {.name = "egress"}};
  anp.spec.priority = 1;
  anp.spec.subject.namespaces = Sel({{"ns", "x"}});
  anp.spec.egress.push_back({.name = "nets", .action = Action::kDeny,
                             .to = {{.networks = std::vector<std::string>{"192.0.2.0/24"}}}});
  anp.spec.egress.push_back({.name = "nodes", .action = Action::kDeny,
                             .to = {{.nodes = Sel({{"role", "infra"}})}}});
  Ok(w, w.state().SetAdminNetworkPolicy(anp));
  CHECK_FALSE(w.Allowed(kXa, kOutside, 443));
  CHECK(w.Allowed(kXa, "198.51.100.1", 443));
  CHECK_FALSE(w.Allowed(kXa, "172.16.0.2", 443));
  CHECK(w.Allowed(kXa, "172.16.0.3", 443));
  CHECK(w.Allowed(kYa, kOutside, 443));  // y is not a subject
  // A node gaining the label becomes denied.
  REQUIRE(w.state().SetNode({.name = "node-3", .labels = {{"role", "infra"}},
                             .addresses = {Ip("172.16.0.3")}}).ok());
  w.Sync();
  CHECK_FALSE(w.Allowed(kXa, "172.16.0.3", 443));
}

TEST_CASE("banp: applies only when no NetworkPolicy selects the pod", "[banp]") {
  PolicyWorld w;
  Basic(w);
  Ok(w, w.state().SetBaselineAdminNetworkPolicy(Banp(Action::kDeny)));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));
  CHECK(w.Allowed(kXa, kYa, 80));  // y is not a baseline subject
  Ok(w, w.state().SetNetworkPolicy(AllowFromY()));
  CHECK(w.Allowed(kYa, kXa, 80));       // NetworkPolicy decides now
  CHECK_FALSE(w.Allowed(kXb, kXa, 80)); // ... and isolates
}

TEST_CASE("banp: Allow lets a pod receive even though an earlier baseline rule does not match",
          "[banp]") {
  PolicyWorld w;
  Basic(w);
  BaselineAdminNetworkPolicy banp = Banp(Action::kDeny);
  banp.spec.ingress.insert(banp.spec.ingress.begin(),
                           {.name = "allow-y", .action = Action::kAllow,
                            .from = {{.namespaces = Sel({{"ns", "y"}})}}});
  Ok(w, w.state().SetBaselineAdminNetworkPolicy(banp));
  CHECK(w.Allowed(kYa, kXa, 80));
  CHECK_FALSE(w.Allowed(kXb, kXa, 80));
  Ok(w, w.state().RemoveBaselineAdminNetworkPolicy());
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK(w.Endpoint(kXa)->flags == 0);
}

TEST_CASE("anp: a pods subject selects by namespace and pod labels together", "[anp]") {
  PolicyWorld w;
  Basic(w);
  AdminNetworkPolicy anp{.metadata = {.name = "pods"}};
  anp.spec.priority = 1;
  anp.spec.subject.pods = NamespacedPod{.namespace_selector = Sel({{"ns", "x"}}),
                                        .pod_selector = Sel({{"pod", "a"}})};
  anp.spec.ingress.push_back({.name = "deny", .action = Action::kDeny,
                              .from = {{.pods = NamespacedPod{.pod_selector = Sel({{"pod", "a"}})}}}});
  Ok(w, w.state().SetAdminNetworkPolicy(anp));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));  // y/a is a pod "a"
  CHECK(w.Allowed(kXb, kXa, 80));
  CHECK(w.Allowed(kYa, kXb, 80));        // x/b is not a subject
  CHECK(w.Endpoint(kXb)->flags == 0);
}

TEST_CASE("anp: host traffic stays allowed under an admin deny-all", "[anp]") {
  PolicyWorld w;
  Basic(w);
  REQUIRE(w.state().SetNode({.name = "node-1", .addresses = {Ip("172.16.0.1")}}).ok());
  AdminNetworkPolicy anp = Anp("deny-all", 1, Action::kDeny);
  anp.spec.ingress[0].from = {{.namespaces = LabelSelector{}}};
  Ok(w, w.state().SetAdminNetworkPolicy(anp));
  CHECK(w.Allowed("172.16.0.1", kXa, 8080));
  CHECK_FALSE(w.Allowed(kYa, kXa, 80));
}

}  // namespace
}  // namespace dpv2::testing
