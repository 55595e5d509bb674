// Incremental recomputation must give the same datapath as compiling from
// scratch, must only touch what a change affects, and must never pass an
// endpoint through a more permissive state than before or after.
#include <map>
#include <random>

#include <catch2/catch.hpp>

#include "dpv2/identity.h"
#include "policy_world.h"

namespace dpv2::testing {
namespace {

LabelSelector Sel(Labels l) { return LabelSelector{.match_labels = std::move(l)}; }

struct PodSpec {
  std::string ns, name, ip;
  Labels labels;
  std::vector<ContainerPort> ports;
};

struct Model {
  std::map<std::string, Labels> namespaces;
  std::map<std::string, PodSpec> pods;  // by ns/name
  std::map<std::string, NetworkPolicy> nps;
  std::map<std::string, AdminNetworkPolicy> anps;
};

void Build(const Model& m, PolicyWorld& w) {
  for (const auto& [name, labels] : m.namespaces) {
    w.Namespace(name, labels);
  }
  for (const auto& [key, p] : m.pods) {
    w.Pod(p.ns, p.name, p.labels, p.ip, p.ports);
  }
  for (const auto& [key, np] : m.nps) {
    REQUIRE(w.state().SetNetworkPolicy(np).ok());
  }
  for (const auto& [key, anp] : m.anps) {
    REQUIRE(w.state().SetAdminNetworkPolicy(anp).ok());
  }
  w.Sync();
}

std::vector<std::string> Addresses(const Model& m) {
  std::vector<std::string> out;
  for (const auto& [k, p] : m.pods) out.push_back(p.ip);
  out.push_back("192.0.2.7");
  return out;
}

// Verdict matrix over every pair of addresses and a few ports.
std::vector<bool> Matrix(const PolicyWorld& w, const std::vector<std::string>& addrs) {
  std::vector<bool> out;
  for (const std::string& a : addrs) {
    for (const std::string& b : addrs) {
      if (a == b) continue;
      for (uint16_t port : {80, 81, 8080}) {
        out.push_back(w.Allowed(a, b, port));
      }
      out.push_back(w.Allowed(a, b, 53, L4Proto::kUDP));
    }
  }
  return out;
}

NetworkPolicy RandomNp(std::mt19937& rng, const std::string& ns, const std::string& name) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const char* pods[] = {"a", "b", "c"};
  const char* nss[] = {"x", "y", "z"};
  NetworkPolicy np{.metadata = {.name = name, .namespace_name = ns}};
  if (pick(2)) np.spec.pod_selector = Sel({{"pod", pods[pick(3)]}});
  auto peer = [&]() {
    switch (pick(4)) {
      case 0:
        return NetworkPolicyPeer{.pod_selector = Sel({{"pod", pods[pick(3)]}})};
      case 1:
        return NetworkPolicyPeer{.namespace_selector = Sel({{"ns", nss[pick(3)]}})};
      case 2:
        return NetworkPolicyPeer{.pod_selector = Sel({{"pod", pods[pick(3)]}}),
                                 .namespace_selector = Sel({{"ns", nss[pick(3)]}})};
      default:
        return NetworkPolicyPeer{.ip_block = IPBlock{.cidr = "10.0.0.0/16",
                                                     .except = {"10.0.2.0/24"}}};
    }
  };
  auto ports = [&]() {
    std::vector<NetworkPolicyPort> out;
    switch (pick(4)) {
      case 0:
        out.push_back({.port = 80});
        break;
      case 1:
        out.push_back({.port = std::string("http")});
        break;
      case 2:
        out.push_back({.protocol = L4Proto::kUDP});
        break;
      default:
        break;
    }
    return out;
  };
  const int types = pick(3);
  if (types != 1) {
    for (int i = pick(3); i > 0; --i) {
      NetworkPolicyIngressRule r{.ports = ports()};
      for (int j = pick(3); j > 0; --j) r.from.push_back(peer());
      np.spec.ingress.push_back(r);
    }
  }
  if (types != 0) {
    for (int i = pick(3); i > 0; --i) {
      NetworkPolicyEgressRule r{.ports = ports()};
      for (int j = pick(3); j > 0; --j) r.to.push_back(peer());
      np.spec.egress.push_back(r);
    }
    np.spec.policy_types = types == 1 ? std::vector<PolicyType>{PolicyType::kEgress}
                                      : std::vector<PolicyType>{PolicyType::kIngress,
                                                                PolicyType::kEgress};
  }
  return np;
}

TEST_CASE("incremental: any sequence of changes compiles like a fresh build", "[incremental]") {
  std::mt19937 rng(12345);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const char* pods[] = {"a", "b", "c"};
  const char* nss[] = {"x", "y", "z"};
  Model m;
  PolicyWorld live;
  for (int i = 0; i < 3; ++i) {
    m.namespaces[nss[i]] = {{"ns", nss[i]}};
    live.Namespace(nss[i], m.namespaces[nss[i]]);
    for (int j = 0; j < 3; ++j) {
      PodSpec p{.ns = nss[i], .name = pods[j],
                .ip = absl::StrCat("10.0.", i + 1, ".", j + 1),
                .labels = {{"pod", pods[j]}},
                .ports = {{.name = "http", .container_port = 8080 + j}}};
      live.Pod(p.ns, p.name, p.labels, p.ip, p.ports);
      m.pods[absl::StrCat(p.ns, "/", p.name)] = p;
    }
  }
  live.Sync();
  for (int step = 0; step < 150; ++step) {
    const int op = pick(6);
    if (op <= 1) {
      const std::string ns = nss[pick(3)];
      const std::string name = absl::StrCat("np", pick(4));
      NetworkPolicy np = RandomNp(rng, ns, name);
      REQUIRE(live.state().SetNetworkPolicy(np).ok());
      m.nps[ns + "/" + name] = np;
    } else if (op == 2 && !m.nps.empty()) {
      auto it = std::next(m.nps.begin(), pick(static_cast<int>(m.nps.size())));
      REQUIRE(live.state()
                  .RemoveNetworkPolicy(it->second.metadata.namespace_name, it->second.metadata.name)
                  .ok());
      m.nps.erase(it);
    } else if (op == 3) {
      auto it = std::next(m.pods.begin(), pick(static_cast<int>(m.pods.size())));
      it->second.labels = {{"pod", pods[pick(3)]}};
      if (pick(2)) it->second.labels["extra"] = "1";
      live.Pod(it->second.ns, it->second.name, it->second.labels, it->second.ip, it->second.ports);
    } else if (op == 4) {
      const std::string ns = nss[pick(3)];
      m.namespaces[ns] = {{"ns", nss[pick(3)]}};
      live.Namespace(ns, m.namespaces[ns]);
    } else {
      AdminNetworkPolicy anp{.metadata = {.name = absl::StrCat("anp", pick(2))}};
      anp.spec.priority = pick(3);
      anp.spec.subject.namespaces = Sel({{"ns", nss[pick(3)]}});
      const AdminNetworkPolicyRuleAction actions[] = {AdminNetworkPolicyRuleAction::kAllow,
                                AdminNetworkPolicyRuleAction::kDeny,
                                AdminNetworkPolicyRuleAction::kPass};
      anp.spec.ingress.push_back({.name = "r", .action = actions[pick(3)],
                                  .from = {{.namespaces = Sel({{"ns", nss[pick(3)]}})}}});
      if (pick(2)) {
        anp.spec.ingress[0].ports = std::vector<AdminNetworkPolicyPort>{
            {.port_number = AdminNetworkPolicyPortNumber{.port = 80}}};
      }
      REQUIRE(live.state().SetAdminNetworkPolicy(anp).ok());
      m.anps[anp.metadata.name] = anp;
    }
    live.Sync();
    if (step % 10 == 9) {
      PolicyWorld fresh;
      Build(m, fresh);
      INFO("step " << step);
      CHECK(Matrix(live, Addresses(m)) == Matrix(fresh, Addresses(m)));
      CHECK(live.policy_entries() == fresh.policy_entries());
      CHECK(live.state().identity_count() == fresh.state().identity_count());
    }
  }
}

TEST_CASE("incremental: a label change of a remote pod touches only its identity's entries",
          "[incremental]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Namespace("y");
  w.Pod("x", "server", {{"app", "server"}}, "10.0.1.1");
  for (int i = 0; i < 20; ++i) {
    w.Pod("y", absl::StrCat("client", i), {{"app", "client"}}, absl::StrCat("10.0.2.", i + 1), {},
          /*local=*/false);
  }
  NetworkPolicy np{.metadata = {.name = "clients", .namespace_name = "x"}};
  np.spec.ingress.push_back({.from = {{.pod_selector = Sel({{"app", "client"}}),
                                       .namespace_selector = LabelSelector{}}}});
  REQUIRE(w.state().SetNetworkPolicy(np).ok());
  w.Sync();
  CHECK(w.Allowed("10.0.2.5", "10.0.1.1", 80));
  // The 20 clients share one identity: a relabel allocates one new identity
  // for the pod and changes its ipcache entry; no policy entry moves.
  PodInfo relabeled{.namespace_name = "y", .name = "client4", .labels = {{"app", "other"}},
                    .ips = {Ip("10.0.2.5")}};
  REQUIRE(w.state().SetPod(relabeled).ok());
  ChangeBatch b = w.Sync();
  CHECK(b.ipcache_upsert.size() == 1);
  CHECK(b.policy_upsert.empty());
  CHECK(b.policy_delete.empty());
  CHECK(b.endpoints_upsert.empty());
  CHECK_FALSE(w.Allowed("10.0.2.5", "10.0.1.1", 80));
  CHECK(w.Allowed("10.0.2.6", "10.0.1.1", 80));
  // Relabeling it back reuses the shared identity and frees the other.
  const size_t ids = w.state().identity_count();
  relabeled.labels = {{"app", "client"}};
  REQUIRE(w.state().SetPod(relabeled).ok());
  b = w.Sync();
  CHECK(w.state().identity_count() == ids - 1);
  CHECK(b.policy_upsert.empty());
  CHECK(w.Allowed("10.0.2.5", "10.0.1.1", 80));
}

TEST_CASE("incremental: applying the same objects again changes nothing", "[incremental]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Pod("x", "a", {{"pod", "a"}}, "10.0.1.1");
  NetworkPolicy np{.metadata = {.name = "p", .namespace_name = "x"}};
  np.spec.ingress.push_back({.ports = {{.port = 80}}});
  REQUIRE(w.state().SetNetworkPolicy(np).ok());
  w.Sync();
  REQUIRE(w.state().SetNetworkPolicy(np).ok());
  w.Pod("x", "a", {{"pod", "a"}}, "10.0.1.1");
  w.Namespace("x");
  CHECK(w.state().Diff().empty());
}

TEST_CASE("incremental: reset acknowledgement rewrites everything", "[incremental]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Pod("x", "a", {{"pod", "a"}}, "10.0.1.1");
  REQUIRE(w.state().SetNetworkPolicy({.metadata = {.name = "p", .namespace_name = "x"}}).ok());
  ChangeBatch first = w.Sync();
  w.state().ResetAcknowledged();
  ChangeBatch again = w.state().Diff();
  CHECK(again.endpoints_upsert.size() == first.endpoints_upsert.size());
  CHECK(again.ipcache_upsert.size() == first.ipcache_upsert.size());
  CHECK(again.policy_upsert.size() == first.policy_upsert.size());
}

// Per enforcing endpoint and direction: (egress allowed, ingress allowed) per cell.
std::vector<bool> DirectionMatrix(const PolicyWorld& w, const std::vector<std::string>& addrs) {
  std::vector<bool> out;
  for (const std::string& a : addrs) {
    for (const std::string& b : addrs) {
      if (a == b) continue;
      for (uint16_t port : {80, 81, 8080}) {
        Conn c = w.Check(a, b, port);
        out.push_back(!c.egress_checked || c.egress.allowed());
        out.push_back(!c.ingress_checked || c.ingress.allowed());
      }
    }
  }
  return out;
}

// Mid-batch (upserts applied, deletes not yet), each endpoint's answer in
// each direction is its old or its new answer: never an allow that neither
// the old nor the new policy gives. (A connection checks two endpoints that
// may be updated in either order, as with any two-sided update.)
TEST_CASE("incremental: an endpoint is never more open mid-batch than before or after",
          "[incremental]") {
  std::mt19937 rng(777);
  PolicyWorld w;
  w.Namespace("x", {{"ns", "x"}});
  w.Namespace("y", {{"ns", "y"}});
  w.Namespace("z", {{"ns", "z"}});
  std::vector<std::string> addrs;
  const char* nss[] = {"x", "y", "z"};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      const std::string ip = absl::StrCat("10.0.", i + 1, ".", j + 1);
      w.Pod(nss[i], std::string(1, static_cast<char>('a' + j)),
            {{"pod", std::string(1, static_cast<char>('a' + j))}}, ip,
            {{.name = "http", .container_port = 8080 + j}});
      addrs.push_back(ip);
    }
  }
  addrs.push_back("192.0.2.7");
  w.Sync();
  for (int step = 0; step < 60; ++step) {
    const std::vector<bool> before = DirectionMatrix(w, addrs);
    NetworkPolicy np = RandomNp(rng, nss[rng() % 3], absl::StrCat("np", rng() % 3));
    REQUIRE(w.state().SetNetworkPolicy(np).ok());
    ChangeBatch b = w.state().Diff();
    w.ApplyUpserts(b);
    const std::vector<bool> mid = DirectionMatrix(w, addrs);
    w.ApplyDeletes(b);
    w.state().Acknowledge(b);
    const std::vector<bool> after = DirectionMatrix(w, addrs);
    for (size_t i = 0; i < mid.size(); ++i) {
      INFO("step " << step << " cell " << i);
      CHECK((!mid[i] || before[i] || after[i]));
    }
  }
}

TEST_CASE("incremental: a new local pod is isolated in the same batch that creates it",
          "[incremental]") {
  PolicyWorld w;
  w.Namespace("x");
  REQUIRE(w.state().SetNetworkPolicy({.metadata = {.name = "deny", .namespace_name = "x"}}).ok());
  w.Sync();
  w.Pod("x", "late", {{"pod", "late"}}, "10.0.1.9");
  ChangeBatch b = w.state().Diff();
  REQUIRE(b.endpoints_upsert.size() == 1);
  CHECK(b.endpoints_upsert[0].value.flags == DPV2_EP_F_INGRESS_POLICY);
  CHECK_FALSE(b.policy_upsert.empty());
}

TEST_CASE("identity: same labels share one identity, released when unused", "[identity]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Namespace("y");
  w.Pod("x", "a", {{"app", "web"}}, "10.0.1.1", {}, false);
  w.Pod("x", "b", {{"app", "web"}}, "10.0.1.2", {}, false);
  w.Pod("y", "a", {{"app", "web"}}, "10.0.2.1", {}, false);
  w.Sync();
  const uint32_t xa = w.state().IdentityOf(Ip("10.0.1.1"));
  CHECK(xa >= DPV2_IDENTITY_FIRST_ALLOCATED);
  CHECK(w.state().IdentityOf(Ip("10.0.1.2")) == xa);
  CHECK(w.state().IdentityOf(Ip("10.0.2.1")) != xa);  // other namespace
  CHECK(w.state().identity_count() == 2);
  REQUIRE(w.state().RemovePod("x", "a").ok());
  CHECK(w.state().identity_count() == 2);
  REQUIRE(w.state().RemovePod("x", "b").ok());
  CHECK(w.state().identity_count() == 1);
  ChangeBatch b = w.Sync();
  CHECK(b.ipcache_delete.size() == 2);
  CHECK(w.state().IdentityOf(Ip("10.0.1.1")) == DPV2_IDENTITY_WORLD);
}

TEST_CASE("identity: label keys and values cannot collide across fields", "[identity]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Pod("x", "a", {{"a", "b=c"}}, "10.0.1.1", {}, false);
  w.Pod("x", "b", {{"a=b", "c"}}, "10.0.1.2", {}, false);
  w.Sync();
  CHECK(w.state().IdentityOf(Ip("10.0.1.1")) != w.state().IdentityOf(Ip("10.0.1.2")));
}

TEST_CASE("identity allocator: numbers start at 256, are reused oldest first, no small ceiling",
          "[identity]") {
  IdentityAllocator ids;
  const uint32_t a = ids.Acquire("a").value();
  const uint32_t b = ids.Acquire("b").value();
  CHECK(a == DPV2_IDENTITY_FIRST_ALLOCATED);
  CHECK(b == a + 1);
  CHECK(ids.Acquire("a").value() == a);
  CHECK(ids.References(a) == 2);
  CHECK_FALSE(ids.Release(a));
  CHECK(ids.Release(a));
  CHECK(ids.Release(b));
  CHECK_FALSE(ids.Release(12345));  // unknown
  CHECK(ids.Acquire("c").value() == a);  // freed first, reused first
  CHECK(ids.Acquire("d").value() == b);
  for (int i = 0; i < 70000; ++i) {
    REQUIRE(ids.Acquire(absl::StrCat("k", i)).ok());
  }
  CHECK(ids.size() == 70002);
  CHECK(*ids.KeyOf(a) == "c");
  CHECK(ReservedIdentityName(DPV2_IDENTITY_REMOTE_NODE) == "remote-node");
}

TEST_CASE("policy state: malformed input is rejected without a change", "[incremental]") {
  PolicyWorld w;
  w.Namespace("x");
  w.Pod("x", "a", {{"pod", "a"}}, "10.0.1.1");
  w.Sync();
  PodInfo dup{.namespace_name = "x", .name = "b", .ips = {Ip("10.0.1.1")}};
  absl::Status s = w.state().SetPod(dup, LocalEndpoint{.ifindex = 3});
  CHECK(s.code() == absl::StatusCode::kAlreadyExists);
  CHECK(std::string(s.message()).find("pod x/b") != std::string::npos);
  PodInfo badport{.namespace_name = "x", .name = "c", .ips = {Ip("10.0.1.3")},
                  .container_ports = {{.name = "p", .container_port = 70000}}};
  CHECK_FALSE(w.state().SetPod(badport).ok());
  NetworkPolicy bad{.metadata = {.name = "bad", .namespace_name = "x"}};
  bad.spec.ingress.push_back({.ports = {{.port = 0}}});
  CHECK_FALSE(w.state().SetNetworkPolicy(bad).ok());
  CHECK(w.state().RemovePod("x", "nope").code() == absl::StatusCode::kNotFound);
  CHECK(w.state().RemoveNetworkPolicy("x", "nope").code() == absl::StatusCode::kNotFound);
  CHECK(w.state().Diff().empty());
  CHECK_FALSE(w.state().FindPod("x", "b").has_value());
}

}  // namespace
}  // namespace dpv2::testing
