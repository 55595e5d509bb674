// PolicyState::Adopt: a restarted agent takes over the endpoints, ipcache and
// policy entries a backend holds, keeps their ids, and applies only what
// really changed. The backend is the sim: every batch is really applied.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/datapath/datapath_tables.h"
#include "dpv2/policy_state.h"
#include "dpv2/sim.h"

namespace dpv2 {
namespace {

IpAddr Ip(const std::string& s) { return *IpAddr::Parse(s); }

LabelSelector Sel(Labels l) { return LabelSelector{.match_labels = std::move(l)}; }

PodInfo Pod(const std::string& ns, const std::string& name, Labels labels, const std::string& ip,
            const std::string& node = "node-1") {
  return PodInfo{.namespace_name = ns,
                 .name = name,
                 .labels = std::move(labels),
                 .ips = {Ip(ip)},
                 .node_name = node,
                 .container_ports = {{.name = "http", .container_port = 8080}}};
}

// The cluster: two namespaces, local and remote pods, a NetworkPolicy with
// a named port, one with an ipBlock that contains a pod (CIDR tags), an ANP.
struct Objects {
  std::vector<NamespaceInfo> namespaces = {{.name = "x", .labels = {{"team", "a"}}},
                                           {.name = "y", .labels = {{"team", "b"}}}};
  std::vector<PodInfo> pods = {Pod("x", "a", {{"app", "web"}}, "10.0.1.1"),
                               Pod("x", "b", {{"app", "db"}}, "10.0.1.2"),
                               Pod("y", "c", {{"app", "web"}}, "10.0.2.1"),
                               Pod("y", "r", {{"app", "cli"}}, "10.0.9.1", "node-2")};
  std::vector<NetworkPolicy> nps;
  std::vector<AdminNetworkPolicy> anps;

  Objects() {
    NetworkPolicy web{.metadata = {.name = "web", .namespace_name = "x"}};
    web.spec.pod_selector = Sel({{"app", "web"}});
    web.spec.ingress.push_back(
        {.ports = {{.port = IntOrString(std::string("http"))}},
         .from = {{.namespace_selector = Sel({{"team", "b"}})}}});
    nps.push_back(web);
    NetworkPolicy cidr{.metadata = {.name = "cidr", .namespace_name = "x"}};
    cidr.spec.pod_selector = Sel({{"app", "db"}});
    cidr.spec.ingress.push_back(
        {.from = {{.ip_block = IPBlock{.cidr = "10.0.2.0/24", .except = {"10.0.2.128/25"}}}}});
    cidr.spec.egress.push_back({.to = {{.ip_block = IPBlock{.cidr = "192.0.2.0/24"}}}});
    nps.push_back(cidr);
    AdminNetworkPolicy anp{.metadata = {.name = "deny-cli"}};
    anp.spec.priority = 10;
    anp.spec.subject.namespaces = Sel({});
    anp.spec.ingress.push_back(
        {.action = AdminNetworkPolicyRuleAction::kDeny,
         .from = {{.pods = NamespacedPod{.namespace_selector = Sel({}),
                                         .pod_selector = Sel({{"app", "cli"}})}}}});
    anps.push_back(anp);
  }
};

LocalEndpoint Local(const PodInfo& pod) {
  return {.ifindex = 100 + pod.ips[0].ToAbi().b[3], .mac = {2, 0, 0, 0, 0, 1},
          .host_mac = {2, 0, 0, 0, 0, 2}};
}

void SetPods(PolicyState& s, const std::vector<PodInfo>& pods) {
  for (const PodInfo& p : pods) {
    std::optional<LocalEndpoint> local;
    if (p.node_name == "node-1") {
      local = Local(p);
    }
    REQUIRE(s.SetPod(p, local).ok());
  }
}

void SetPolicies(PolicyState& s, const Objects& o) {
  for (const NetworkPolicy& np : o.nps) {
    absl::Status st = s.SetNetworkPolicy(np);
    INFO(st);
    REQUIRE(st.ok());
  }
  for (const AdminNetworkPolicy& anp : o.anps) {
    absl::Status st = s.SetAdminNetworkPolicy(anp);
    INFO(st);
    REQUIRE(st.ok());
  }
}

// Policies first, as ClusterView::Adopt replays them.
void Build(PolicyState& s, const Objects& o) {
  for (const NamespaceInfo& ns : o.namespaces) {
    REQUIRE(s.SetNamespace(ns).ok());
  }
  SetPolicies(s, o);
  SetPods(s, o.pods);
}

void ApplyDiff(PolicyState& s, Backend& b) {
  ChangeBatch d = s.Diff();
  absl::Status st = b.Apply(d);
  INFO(st);
  REQUIRE(st.ok());
  s.Acknowledge(d);
}

// A previous agent's state in a sim, after churn (pods and a policy that
// came and went), so that its ids are not the ones a fresh state picks.
struct Previous {
  Objects objects;
  std::unique_ptr<Backend> backend = *MakeSimBackend({});
  PolicyState state{{.node_name = "node-1"}};

  Previous() {
    for (const NamespaceInfo& ns : objects.namespaces) {
      REQUIRE(state.SetNamespace(ns).ok());
    }
    SetPods(state, {Pod("x", "gone", {{"app", "old"}}, "10.0.1.50"),
                    Pod("y", "gone2", {{"app", "older"}}, "10.0.2.50")});
    NetworkPolicy old{.metadata = {.name = "old", .namespace_name = "x"}};
    old.spec.ingress.push_back({.from = {{.ip_block = IPBlock{.cidr = "172.16.0.0/12"}}}});
    REQUIRE(state.SetNetworkPolicy(old).ok());
    ApplyDiff(state, *backend);
    SetPods(state, objects.pods);  // pods before policies: another order
    SetPolicies(state, objects);
    REQUIRE(state.RemovePod("x", "gone").ok());
    REQUIRE(state.RemovePod("y", "gone2").ok());
    REQUIRE(state.RemoveNetworkPolicy("x", "old").ok());
    ApplyDiff(state, *backend);
  }

  ChangeBatch Dump() {
    absl::StatusOr<ChangeBatch> d = backend->DumpState();
    REQUIRE(d.ok());
    return *std::move(d);
  }
};

// Every record of a batch, one line each, in a canonical order.
std::string Describe(ChangeBatch b) {
  SortBatch(&b);
  std::string out;
  for (const EndpointEntry& e : b.endpoints_upsert) {
    absl::StrAppend(&out, "endpoint+ ", IpAddr::FromAbi(e.key.addr, Family::kV4).ToString(),
                    " ep=", e.value.endpoint_id, " id=", e.value.identity,
                    " flags=", e.value.flags, "\n");
  }
  for (const IpcacheEntry& e : b.ipcache_upsert) {
    absl::StrAppend(&out, "ipcache+ ", e.key.prefixlen, " ",
                    IpAddr::FromAbi(e.key.addr, Family::kV4).ToString(), " id=",
                    e.value.identity, "\n");
  }
  for (const PolicyEntry& e : b.policy_upsert) {
    absl::StrAppend(&out, "policy+ ep=", e.key.endpoint_id, " id=", e.key.identity,
                    " dir=", e.key.direction, " len=", e.key.prefixlen, " port=", e.key.dport,
                    " v=", e.value.verdict, " t=", e.value.tier, " m=", e.value.match_id, "\n");
  }
  for (const dpv2_policy_key& k : b.policy_delete) {
    absl::StrAppend(&out, "policy- ep=", k.endpoint_id, " id=", k.identity,
                    " dir=", k.direction, " len=", k.prefixlen, " port=", k.dport, "\n");
  }
  for (const dpv2_ipcache_key& k : b.ipcache_delete) {
    absl::StrAppend(&out, "ipcache- ", k.prefixlen, " ",
                    IpAddr::FromAbi(k.addr, Family::kV4).ToString(), "\n");
  }
  for (const dpv2_endpoint_key& k : b.endpoints_delete) {
    absl::StrAppend(&out, "endpoint- ", IpAddr::FromAbi(k.addr, Family::kV4).ToString(), "\n");
  }
  return out;
}

TEST_CASE("a fresh PolicyState adopting the dump of the same objects has nothing to apply") {
  Previous prev;
  const ChangeBatch dump = prev.Dump();
  REQUIRE(dump.endpoints_upsert.size() == 3);
  REQUIRE(!dump.policy_upsert.empty());

  PolicyState fresh({.node_name = "node-1"});
  Build(fresh, prev.objects);
  const ChangeBatch rewrite = fresh.Diff();
  REQUIRE(Describe(rewrite) != Describe(dump));  // a fresh build picks other ids

  PolicyState s({.node_name = "node-1"});
  REQUIRE(s.Adopt(dump).ok());
  Build(s, prev.objects);
  const ChangeBatch diff = s.Diff();
  INFO(Describe(diff));
  CHECK(diff.empty());
  for (const PodInfo& p : prev.objects.pods) {
    CHECK(s.EndpointId(p.namespace_name, p.name) ==
          prev.state.EndpointId(p.namespace_name, p.name));
    CHECK(s.IdentityOf(p.ips[0]) == prev.state.IdentityOf(p.ips[0]));
  }
  // A match id the datapath reports names the same policies as before.
  for (const PolicyEntry& e : dump.policy_upsert) {
    if (e.value.match_id != 0) {
      const std::vector<PolicyRef>* before = prev.state.MatchPolicies(e.value.match_id);
      const std::vector<PolicyRef>* after = s.MatchPolicies(e.value.match_id);
      REQUIRE(before != nullptr);
      REQUIRE(after != nullptr);
      CHECK(*after == *before);
    }
  }
}

// The adopted Diff after a change made while the agent was down equals the
// batch the previous agent would have applied for the same change.
void ExpectSameAsIncremental(Previous& prev, const Objects& now,
                             const std::function<void(PolicyState&)>& change) {
  const ChangeBatch dump = prev.Dump();
  PolicyState s({.node_name = "node-1"});
  REQUIRE(s.Adopt(dump).ok());
  Build(s, now);
  change(prev.state);
  const std::string expected = Describe(prev.state.Diff());
  const ChangeBatch diff = s.Diff();
  CHECK(Describe(diff) == expected);
  absl::Status st = prev.backend->Apply(diff);
  INFO(st);
  REQUIRE(st.ok());
  s.Acknowledge(diff);
  CHECK(s.Diff().empty());
}

TEST_CASE("a pod deleted while the agent was down: exactly its entries are deleted") {
  Previous prev;
  Objects now = prev.objects;
  now.pods.erase(now.pods.begin() + 1);  // x/b, the one the ipBlock policy selects
  ExpectSameAsIncremental(prev, now,
                          [](PolicyState& s) { REQUIRE(s.RemovePod("x", "b").ok()); });
}

TEST_CASE("a policy deleted while the agent was down: only its entries change") {
  Previous prev;
  Objects now = prev.objects;
  now.anps.clear();
  ExpectSameAsIncremental(
      prev, now, [](PolicyState& s) { REQUIRE(s.RemoveAdminNetworkPolicy("deny-cli").ok()); });
}

TEST_CASE("a pod added while the agent was down gets a fresh endpoint id, nothing else moves") {
  Previous prev;
  const ChangeBatch dump = prev.Dump();
  Objects now = prev.objects;
  now.pods.push_back(Pod("x", "d", {{"app", "web"}}, "10.0.1.3"));
  PolicyState s({.node_name = "node-1"});
  REQUIRE(s.Adopt(dump).ok());
  Build(s, now);
  const ChangeBatch diff = s.Diff();
  INFO(Describe(diff));
  REQUIRE(diff.endpoints_upsert.size() == 1);
  uint32_t max_dumped = 0;
  for (const EndpointEntry& e : dump.endpoints_upsert) {
    max_dumped = std::max(max_dumped, e.value.endpoint_id);
  }
  CHECK(diff.endpoints_upsert[0].value.endpoint_id > max_dumped);
  CHECK(diff.endpoints_delete.empty());
  CHECK(diff.ipcache_delete.empty());
  CHECK(diff.policy_delete.empty());
  for (const PolicyEntry& e : diff.policy_upsert) {
    CHECK(e.key.endpoint_id == diff.endpoints_upsert[0].value.endpoint_id);
  }
  REQUIRE(prev.backend->Apply(diff).ok());
}

void ExpectRefusedThenRewritten(Previous& prev, const ChangeBatch& dump,
                                const std::string& message) {
  PolicyState s({.node_name = "node-1"});
  absl::Status st = s.Adopt(dump);
  INFO(st);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find(message) != std::string::npos);
  Build(s, prev.objects);
  const ChangeBatch diff = s.Diff();
  // Everything is written again, under ids the dump does not hold.
  CHECK(diff.endpoints_upsert.size() == 3);
  for (const EndpointEntry& e : diff.endpoints_upsert) {
    for (const EndpointEntry& d : dump.endpoints_upsert) {
      CHECK(e.value.endpoint_id != d.value.endpoint_id);
    }
  }
  absl::Status applied = prev.backend->Apply(diff);
  INFO(applied);
  REQUIRE(applied.ok());
  s.Acknowledge(diff);
  CHECK(s.Diff().empty());
  // The datapath now holds exactly the desired state: a fresh state that
  // adopts it has nothing to change.
  PolicyState again({.node_name = "node-1"});
  REQUIRE(again.Adopt(prev.Dump()).ok());
  Build(again, prev.objects);
  INFO(Describe(again.Diff()));
  CHECK(again.Diff().empty());
}

TEST_CASE("a dump with policy entries of a missing endpoint is refused and rewritten") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  const uint32_t ep = dump.endpoints_upsert[0].value.endpoint_id;
  dump.endpoints_upsert.erase(dump.endpoints_upsert.begin());
  ExpectRefusedThenRewritten(prev, dump, absl::StrCat("endpoint_id ", ep, ", which no"));
}

TEST_CASE("a dump with an endpoint id out of range is refused and rewritten") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  EndpointEntry e = dump.endpoints_upsert[0];
  e.key.addr.b[3] = 200;  // an address no pod has
  e.value.endpoint_id = 0x80000000u;
  dump.endpoints_upsert.push_back(e);
  ExpectRefusedThenRewritten(prev, dump, "endpoint_id 2147483648 out of range");
}

TEST_CASE("a dump with a malformed ipcache prefix is refused") {
  PolicyState s({.node_name = "node-1"});
  ChangeBatch dump;
  dump.ipcache_upsert.push_back({});
  dump.ipcache_upsert[0].key.family = DPV2_FAMILY_V4;
  dump.ipcache_upsert[0].key.prefixlen = 99;
  absl::Status st = s.Adopt(dump);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("prefixlen 99 out of range") != std::string::npos);
  CHECK(s.Diff().empty());  // nothing it could name is deleted
}

TEST_CASE("adopting after an input was given is refused") {
  PolicyState s({.node_name = "node-1"});
  REQUIRE(s.SetNamespace({.name = "x"}).ok());
  CHECK(s.Adopt({}).code() == absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dpv2
