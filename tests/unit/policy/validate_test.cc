#include <catch2/catch.hpp>

#include "dpv2/policy.h"

namespace dpv2 {
namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

NetworkPolicy Np() { return NetworkPolicy{.metadata = {.name = "np", .namespace_name = "x"}}; }

TEST_CASE("validate: policyTypes default to Ingress, plus Egress when egress rules exist",
          "[validate]") {
  NetworkPolicySpec spec;
  CHECK(EffectivePolicyTypes(spec) == std::array<bool, 2>{true, false});
  spec.egress.push_back({});
  CHECK(EffectivePolicyTypes(spec) == std::array<bool, 2>{true, true});
  spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  CHECK(EffectivePolicyTypes(spec) == std::array<bool, 2>{false, true});
}

TEST_CASE("validate: endPort needs a numeric port not above it", "[validate]") {
  NetworkPolicy np = Np();
  np.spec.ingress.push_back({.ports = {{.port = 80, .end_port = 70}}});
  absl::Status s = ValidateNetworkPolicy(np);
  REQUIRE_FALSE(s.ok());
  CHECK(Message(s) == "networkpolicy x/np: spec.ingress[0].ports[0].endPort 70 < port 80");
  np.spec.ingress[0].ports[0] = {.port = std::string("http"), .end_port = 90};
  CHECK(Message(ValidateNetworkPolicy(np)).find("needs a numeric port") != std::string::npos);
  np.spec.ingress[0].ports[0] = {.port = 80, .end_port = 90};
  CHECK(ValidateNetworkPolicy(np).ok());
}

TEST_CASE("validate: ports out of range and non-L4 protocols are rejected", "[validate]") {
  NetworkPolicy np = Np();
  np.spec.egress.push_back({.ports = {{.port = 0}}});
  CHECK(Message(ValidateNetworkPolicy(np)).find("spec.egress[0].ports[0].port 0 out of range") !=
        std::string::npos);
  np.spec.egress[0].ports[0] = {.protocol = L4Proto::kICMP};
  CHECK_FALSE(ValidateNetworkPolicy(np).ok());
  np.spec.egress[0].ports[0] = {.protocol = L4Proto::kSCTP, .port = 65535};
  CHECK(ValidateNetworkPolicy(np).ok());
}

TEST_CASE("validate: a peer needs exactly a selector or an ipBlock", "[validate]") {
  NetworkPolicy np = Np();
  np.spec.ingress.push_back({.from = {NetworkPolicyPeer{}}});
  CHECK(Message(ValidateNetworkPolicy(np)).find("spec.ingress[0].from[0]") != std::string::npos);
  np.spec.ingress[0].from[0] = {.pod_selector = LabelSelector{},
                                .ip_block = IPBlock{.cidr = "10.0.0.0/8"}};
  CHECK_FALSE(ValidateNetworkPolicy(np).ok());
}

TEST_CASE("validate: ipBlock accepts host bits but not a bad or outside except", "[validate]") {
  NetworkPolicy np = Np();
  np.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "10.1.0.1/4"}}}});
  CHECK(ValidateNetworkPolicy(np).ok());
  np.spec.ingress[0].from[0].ip_block->cidr = "10.0.0.0/33";
  CHECK(Message(ValidateNetworkPolicy(np)).find("spec.ingress[0].from[0].ipBlock.cidr") !=
        std::string::npos);
  np.spec.ingress[0].from[0].ip_block = IPBlock{.cidr = "10.0.0.0/8", .except = {"11.0.0.0/16"}};
  CHECK(Message(ValidateNetworkPolicy(np)).find("ipBlock.except[0]") != std::string::npos);
  np.spec.ingress[0].from[0].ip_block = IPBlock{.cidr = "10.0.0.0/8", .except = {"10.1.0.0/16"}};
  CHECK(ValidateNetworkPolicy(np).ok());
}

TEST_CASE("validate: an admin policy needs a priority in range and one subject", "[validate]") {
  AdminNetworkPolicy anp{.metadata = {.name = "a"}};
  anp.spec.priority = 1001;
  anp.spec.subject.namespaces = LabelSelector{};
  CHECK(Message(ValidateAdminNetworkPolicy(anp)) ==
        "adminnetworkpolicy a: spec.priority 1001 out of range 0-1000");
  anp.spec.priority = 10;
  anp.spec.subject.pods = NamespacedPod{};
  CHECK_FALSE(ValidateAdminNetworkPolicy(anp).ok());
  anp.spec.subject.pods.reset();
  CHECK(ValidateAdminNetworkPolicy(anp).ok());
}

TEST_CASE("validate: admin rule peers and ports set exactly one field", "[validate]") {
  AdminNetworkPolicy anp{.metadata = {.name = "a"}};
  anp.spec.subject.namespaces = LabelSelector{};
  anp.spec.egress.push_back({.name = "r", .action = AdminNetworkPolicyRuleAction::kAllow,
                             .to = {{.namespaces = LabelSelector{},
                                     .networks = std::vector<std::string>{"10.0.0.0/8"}}}});
  CHECK(Message(ValidateAdminNetworkPolicy(anp)).find("spec.egress[0].to[0]") != std::string::npos);
  anp.spec.egress[0].to[0].namespaces.reset();
  CHECK(ValidateAdminNetworkPolicy(anp).ok());
  anp.spec.egress[0].ports = std::vector<AdminNetworkPolicyPort>{
      {.port_range = AdminNetworkPolicyPortRange{.start = 90, .end = 80}}};
  CHECK(Message(ValidateAdminNetworkPolicy(anp)).find("spec.egress[0].ports[0].portRange") !=
        std::string::npos);
}

TEST_CASE("validate: a baseline policy is named default and has no Pass", "[validate]") {
  BaselineAdminNetworkPolicy banp{.metadata = {.name = "other"}};
  banp.spec.subject.namespaces = LabelSelector{};
  CHECK_FALSE(ValidateBaselineAdminNetworkPolicy(banp).ok());
  banp.metadata.name = "default";
  CHECK(ValidateBaselineAdminNetworkPolicy(banp).ok());
  banp.spec.ingress.push_back({.name = "p", .action = AdminNetworkPolicyRuleAction::kPass,
                               .from = {{.namespaces = LabelSelector{}}}});
  CHECK(Message(ValidateBaselineAdminNetworkPolicy(banp)).find("Pass") != std::string::npos);
}

}  // namespace
}  // namespace dpv2
