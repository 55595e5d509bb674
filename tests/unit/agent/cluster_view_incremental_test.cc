// ClusterView::Update is incremental: objects equal to the previous Update's
// are not handed to the core again, yet every change still reaches the
// datapath, including the ones that act through another object (a Node zone
// on topology-aware Services, a pod label on policies). A change set
// (ObjectChanges) reaches the same state as the whole patched set.
#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/cluster_view.h"
#include "core/datapath/datapath_tables.h"
#include "dpv2/sim.h"

namespace dpv2::agent {
namespace {

std::string NodeYaml(const std::string& zone) {
  return "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: "
         "{topology.kubernetes.io/zone: " + zone + "}}\n"
         "status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n---\n";
}

constexpr char kObjects[] = R"(
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  trafficDistribution: PreferClose
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.0.1]
  zone: zone-a
  hints: {forZones: [{name: zone-a}]}
- addresses: [10.0.1.1]
  zone: zone-b
  hints: {forZones: [{name: zone-b}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 80, targetPort: 9090}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-abc, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: http, port: 9090}]
endpoints:
- addresses: [10.0.2.1]
)";

// Same ClusterIP and port as shop/web: the core refuses the second one.
constexpr char kClash[] = R"(
---
apiVersion: v1
kind: Service
metadata: {name: web2, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}]
)";

k8s::ClusterObjects Load(const std::string& text) {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(text, "test", &objects);
  INFO((objects.errors.empty() ? std::string() : objects.errors[0]));
  REQUIRE(objects.errors.empty());
  return objects;
}

// A view of `objects` fully applied to a sim backend.
struct Applied {
  std::unique_ptr<Backend> backend;
  ClusterView view;
};

Applied ApplyAll(const k8s::ClusterObjects& objects) {
  auto backend = MakeSimBackend();
  REQUIRE(backend.ok());
  auto view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  view->Update(objects);
  INFO((view->problems().empty() ? std::string() : view->problems()[0]));
  REQUIRE(view->problems().empty());
  REQUIRE(view->ApplyTo(**backend).ok());
  REQUIRE(view->PendingChanges().empty());
  return Applied{std::move(*backend), std::move(*view)};
}

std::vector<std::string> BackendsOf(const ClusterView& view, const std::string& service) {
  for (const FrontendView& f : view.lb().Frontends()) {
    if (f.service == service && f.kind == FrontendKind::kClusterIP) {
      return f.backends;
    }
  }
  return {"no ClusterIP frontend"};
}

TEST_CASE("an Update with equal objects (a re-read copy) leaves nothing to apply",
          "[cluster_view][incremental]") {
  Applied a = ApplyAll(Load(NodeYaml("zone-a") + kObjects));
  a.view.Update(Load(NodeYaml("zone-a") + kObjects));  // decoded again: equal, not identical
  CHECK(a.view.problems().empty());
  CHECK(a.view.PendingChanges().empty());
  CHECK(BackendsOf(a.view, "shop/web") == std::vector<std::string>{"10.0.0.1:8080"});
}

TEST_CASE("one endpoint added to one Service changes only that Service's entries",
          "[cluster_view][incremental]") {
  k8s::ClusterObjects objects = Load(NodeYaml("zone-a") + kObjects);
  Applied a = ApplyAll(objects);
  const IpAddr api_vip = *IpAddr::Parse("10.96.0.11");
  const IpAddr added = *IpAddr::Parse("10.0.2.2");
  objects.endpoint_slices.at("shop/api-abc").spec.endpoints.push_back({.addresses = {added}});
  a.view.Update(objects);
  const ChangeBatch batch = a.view.PendingChanges();
  REQUIRE_FALSE(batch.services_upsert.empty());
  for (const ServiceEntry& e : batch.services_upsert) {
    CHECK(IpAddr::FromAbi(e.key.addr, Family::kV4) == api_vip);
  }
  REQUIRE(batch.backends_upsert.size() == 1);
  CHECK(IpAddr::FromAbi(batch.backends_upsert[0].value.addr, Family::kV4) == added);
  CHECK(batch.services_delete.empty());
  CHECK(batch.backends_delete.empty());
  CHECK(batch.policy_upsert.empty());
  CHECK(batch.policy_delete.empty());
  CHECK(batch.ipcache_upsert.empty());
  CHECK(batch.endpoints_upsert.empty());
  CHECK(BackendsOf(a.view, "shop/api") ==
        std::vector<std::string>{"10.0.2.1:9090", "10.0.2.2:9090"});
  REQUIRE(a.view.ApplyTo(*a.backend).ok());

  SECTION("and an endpoint condition flip reaches the datapath too") {
    objects.endpoint_slices.at("shop/api-abc").spec.endpoints[1].conditions.ready = false;
    a.view.Update(objects);
    CHECK_FALSE(a.view.PendingChanges().empty());
    CHECK(BackendsOf(a.view, "shop/api") == std::vector<std::string>{"10.0.2.1:9090"});
  }
  SECTION("and removing the slice empties the Service") {
    objects.endpoint_slices.erase("shop/api-abc");
    a.view.Update(objects);
    CHECK(BackendsOf(a.view, "shop/api").empty());
  }
  SECTION("and removing the Service removes its frontends") {
    objects.services.erase("shop/api");
    a.view.Update(objects);
    CHECK(a.view.PendingChanges().services_delete.size() ==
          batch.services_upsert.size());
  }
}

TEST_CASE("a Node zone change re-derives topology-aware Services whose objects did not change",
          "[cluster_view][incremental]") {
  Applied a = ApplyAll(Load(NodeYaml("zone-a") + kObjects));
  REQUIRE(BackendsOf(a.view, "shop/web") == std::vector<std::string>{"10.0.0.1:8080"});
  a.view.Update(Load(NodeYaml("zone-b") + kObjects));
  CHECK(a.view.node().zone == "zone-b");
  CHECK(BackendsOf(a.view, "shop/web") == std::vector<std::string>{"10.0.1.1:8080"});
  const ChangeBatch batch = a.view.PendingChanges();
  CHECK_FALSE(batch.tables_upsert.empty());
  REQUIRE(a.view.ApplyTo(*a.backend).ok());
  a.view.Update(Load(NodeYaml("zone-a") + kObjects));
  CHECK(BackendsOf(a.view, "shop/web") == std::vector<std::string>{"10.0.0.1:8080"});
}

TEST_CASE("a pod relabel still changes the policy entries", "[cluster_view][incremental]") {
  k8s::ClusterObjects objects = Load(NodeYaml("zone-a") + kObjects);
  Applied a = ApplyAll(objects);
  objects.pods.at("shop/web-1").info.labels["app"] = "other";
  a.view.Update(objects);
  const ChangeBatch batch = a.view.PendingChanges();
  CHECK((!batch.policy_upsert.empty() || !batch.policy_delete.empty()));
  CHECK(batch.services_upsert.empty());
  REQUIRE(a.view.ApplyTo(*a.backend).ok());

  SECTION("and relabelling it back restores them") {
    objects.pods.at("shop/web-1").info.labels["app"] = "web";
    a.view.Update(objects);
    CHECK_FALSE(a.view.PendingChanges().empty());
    REQUIRE(a.view.ApplyTo(*a.backend).ok());
    a.view.Update(objects);
    CHECK(a.view.PendingChanges().empty());
  }
}

TEST_CASE("an object the core rejected is reported again by an equal Update and retried",
          "[cluster_view][incremental]") {
  k8s::ClusterObjects objects = Load(NodeYaml("zone-a") + kObjects + kClash);
  auto view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  view->Update(objects);
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Service shop/web2") == 0);
  view->Update(objects);
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Service shop/web2") == 0);

  objects.services.erase("shop/web");
  view->Update(objects);
  CHECK(view->problems().empty());
  CHECK(BackendsOf(*view, "shop/web2").empty());  // a frontend, no slice of its own
}

TEST_CASE("BuildServiceSpec merges only the proxied slices of its own Service",
          "[cluster_view][incremental]") {
  k8s::ClusterObjects objects = Load(NodeYaml("zone-a") + kObjects);
  const ServiceSpec spec = BuildServiceSpec(objects.services.at("shop/api"), objects);
  REQUIRE(spec.endpoint_slices.size() == 1);
  CHECK(spec.endpoint_slices[0].name == "api-abc");
  objects.endpoint_slices.at("shop/api-abc").fqdn = true;
  CHECK(BuildServiceSpec(objects.services.at("shop/api"), objects).endpoint_slices.empty());
}

// Byte-for-byte equality of two batches (ABI records have zeroed padding).
template <typename T>
bool SameRecords(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool SameBatch(const ChangeBatch& a, const ChangeBatch& b) {
  bool tables = a.tables_upsert.size() == b.tables_upsert.size();
  for (size_t i = 0; tables && i < a.tables_upsert.size(); ++i) {
    tables = a.tables_upsert[i].id == b.tables_upsert[i].id &&
             a.tables_upsert[i].slots == b.tables_upsert[i].slots;
  }
  return tables && SameRecords(a.backends_upsert, b.backends_upsert) &&
         SameRecords(a.source_ranges_upsert, b.source_ranges_upsert) &&
         SameRecords(a.endpoints_upsert, b.endpoints_upsert) &&
         SameRecords(a.ipcache_upsert, b.ipcache_upsert) &&
         SameRecords(a.policy_upsert, b.policy_upsert) &&
         SameRecords(a.services_upsert, b.services_upsert) &&
         SameRecords(a.services_delete, b.services_delete) &&
         SameRecords(a.policy_delete, b.policy_delete) &&
         SameRecords(a.ipcache_delete, b.ipcache_delete) &&
         SameRecords(a.endpoints_delete, b.endpoints_delete) &&
         SameRecords(a.source_ranges_delete, b.source_ranges_delete) &&
         a.tables_delete == b.tables_delete && a.backends_delete == b.backends_delete;
}

TEST_CASE("a change set gives the batch an Update with the whole patched set gives",
          "[cluster_view][changes]") {
  const k8s::ClusterObjects before = Load(NodeYaml("zone-a") + kObjects);
  Applied whole = ApplyAll(before);
  Applied delta = ApplyAll(before);
  k8s::ClusterObjects after = before;
  ObjectChanges changes;

  SECTION("an endpoint added to a slice") {
    after.endpoint_slices.at("shop/api-abc").spec.endpoints.push_back(
        {.addresses = {*IpAddr::Parse("10.0.2.2")}});
    changes.changed.endpoint_slices.emplace("shop/api-abc",
                                            after.endpoint_slices.at("shop/api-abc"));
  }
  SECTION("a slice removed") {
    after.endpoint_slices.erase("shop/web-abc");
    changes.removed.endpoint_slices.push_back("shop/web-abc");
  }
  SECTION("a slice relabelled from one Service to another") {
    k8s::EndpointSliceObject& slice = after.endpoint_slices.at("shop/api-abc");
    slice.service_name = "web";
    slice.labels["kubernetes.io/service-name"] = "web";
    changes.changed.endpoint_slices.emplace("shop/api-abc", slice);
  }
  SECTION("a Service removed") {
    after.services.erase("shop/api");
    changes.removed.services.push_back("shop/api");
  }
  SECTION("a Service added") {
    k8s::ServiceObject svc = after.services.at("shop/api");
    svc.spec.name = "api2";
    svc.spec.cluster_ips = {*IpAddr::Parse("10.96.0.12")};
    after.services.emplace("shop/api2", svc);
    changes.changed.services.emplace("shop/api2", svc);
  }
  SECTION("a pod relabelled") {
    after.pods.at("shop/web-1").info.labels["app"] = "other";
    changes.changed.pods.emplace("shop/web-1", after.pods.at("shop/web-1"));
  }
  SECTION("a pod removed") {
    after.pods.erase("shop/db-1");
    changes.removed.pods.push_back("shop/db-1");
  }
  SECTION("a NetworkPolicy changed") {
    after.network_policies.at("shop/db").spec.ingress.clear();
    changes.changed.network_policies.emplace("shop/db", after.network_policies.at("shop/db"));
  }
  SECTION("a NetworkPolicy removed") {
    after.network_policies.erase("shop/db");
    changes.removed.network_policies.push_back("shop/db");
  }
  SECTION("this node's zone changed") {
    k8s::ClusterObjects node = Load(NodeYaml("zone-b"));
    after.nodes = node.nodes;
    changes.changed.nodes = node.nodes;
  }
  whole.view.Update(after);
  delta.view.Update(changes);
  const ChangeBatch expected = whole.view.PendingChanges();
  const ChangeBatch got = delta.view.PendingChanges();
  INFO("whole set: " << expected.Summary() << "; change set: " << got.Summary());
  CHECK_FALSE(expected.empty());
  CHECK(SameBatch(expected, got));
  CHECK(whole.view.problems() == delta.view.problems());
  CHECK(delta.view.objects().object_count() + delta.view.policy().pod_count() ==
        after.object_count());
  CHECK(delta.view.lb().Frontends().size() == whole.view.lb().Frontends().size());
  REQUIRE(delta.view.ApplyTo(*delta.backend).ok());
  // The whole set afterwards finds nothing left to apply.
  delta.view.Update(after);
  CHECK(delta.view.PendingChanges().empty());
}

TEST_CASE("a change set that does not name a rejected object still retries and reports it",
          "[cluster_view][changes]") {
  auto view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  view->Update(Load(NodeYaml("zone-a") + kObjects + kClash));
  REQUIRE(view->problems().size() == 1);

  ObjectChanges unrelated;
  unrelated.changed.namespaces.emplace("shop", NamespaceInfo{.name = "shop"});
  view->Update(unrelated);
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Service shop/web2") == 0);

  ObjectChanges web_gone;
  web_gone.removed.services.push_back("shop/web");
  view->Update(web_gone);
  CHECK(view->problems().empty());
  CHECK(BackendsOf(*view, "shop/web2").empty());  // served now: a frontend without slices
  CHECK(view->lb().service_count() == 2);
}

TEST_CASE("a change set naming absent objects or unknown keys changes nothing",
          "[cluster_view][changes]") {
  Applied a = ApplyAll(Load(NodeYaml("zone-a") + kObjects));
  ObjectChanges changes;
  changes.removed.services = {"shop/none", "no-slash"};
  changes.removed.endpoint_slices = {"shop/none"};
  changes.removed.pods = {"shop/none"};
  changes.removed.network_policies = {"shop/none"};
  changes.removed.admin_network_policies = {"none"};
  changes.removed.baseline_admin_network_policy = true;
  a.view.Update(changes);
  CHECK(a.view.problems().empty());
  CHECK(a.view.PendingChanges().empty());
}


// ---- a sequence of change sets against full syncs ------------------------

// Two namespaces, pods on this node and another, Services, and policies whose
// subjects select some pods of a namespace only (by app or by tier), with
// pod, namespace and address peers and a named port.
constexpr char kMixed[] = R"(
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {topology.kubernetes.io/zone: zone-a}}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-2}
status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, tier: front}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web, tier: front}}
spec: {nodeName: node-2, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIPs: [{ip: 10.0.1.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db, tier: back}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, namespace: shop, labels: {app: api, tier: back}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 9090}]}]}
status: {podIPs: [{ip: 10.0.0.3}]}
---
apiVersion: v1
kind: Pod
metadata: {name: mon-1, namespace: ops, labels: {app: mon}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.4}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.0.1]
- addresses: [10.0.1.1]
)";

constexpr char kMixedPolicies[] = R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: back, namespace: shop}
spec:
  podSelector: {matchLabels: {tier: back}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
    ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: front-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {tier: front}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {tier: back}}}, {ipBlock: {cidr: 10.0.1.0/24}}]
)";

// The datapath's contents with every number the view allocates (endpoint,
// identity, backend, table and match ids, ifindexes) replaced by what it
// stands for, one sorted line per entry: two views that took different paths
// to the same objects must give the same lines.
std::vector<std::string> Canonical(const ClusterView& view, Backend& backend) {
  absl::StatusOr<ChangeBatch> dump = backend.DumpState();
  REQUIRE(dump.ok());
  std::map<uint32_t, std::string> endpoint_ip;
  std::map<uint32_t, std::vector<std::string>> identity_prefixes;
  for (const IpcacheEntry& e : dump->ipcache_upsert) {
    const IpAddr ip = IpAddr::FromAbi(e.key.addr, static_cast<Family>(e.key.family));
    identity_prefixes[e.value.identity].push_back(
        absl::StrCat(ip.ToString(), "/", e.key.prefixlen - 32));
  }
  auto identity = [&](uint32_t id) -> std::string {
    if (id < DPV2_IDENTITY_FIRST_ALLOCATED) {
      return absl::StrCat("reserved:", id);
    }
    auto it = identity_prefixes.find(id);
    return it == identity_prefixes.end() ? "unmapped" : absl::StrJoin(it->second, ",");
  };
  std::vector<std::string> lines;
  for (const EndpointEntry& e : dump->endpoints_upsert) {
    const std::string ip =
        IpAddr::FromAbi(e.key.addr, static_cast<Family>(e.key.family)).ToString();
    endpoint_ip[e.value.endpoint_id] = ip;
    lines.push_back(absl::StrCat("endpoint ", ip, " identity ", identity(e.value.identity),
                                 " flags ", +e.value.flags));
  }
  for (const PolicyEntry& p : dump->policy_upsert) {
    std::string match = "none";
    if (const std::vector<PolicyRef>* refs = view.policy().MatchPolicies(p.value.match_id)) {
      match.clear();
      for (const PolicyRef& r : *refs) {
        absl::StrAppend(&match, PolicyKindName(r.kind), ":", r.namespace_name, "/", r.name, " ");
      }
    }
    lines.push_back(absl::StrCat("policy ", endpoint_ip[p.key.endpoint_id], " dir ",
                                 +p.key.direction, " peer ", identity(p.key.identity), " proto ",
                                 +p.key.proto, " port ", ntohs(p.key.dport), " len ",
                                 p.key.prefixlen, " verdict ", +p.value.verdict, " tier ",
                                 +p.value.tier, " match ", match));
  }
  std::map<uint32_t, std::string> backend_name;
  for (const BackendEntry& b : dump->backends_upsert) {
    backend_name[b.id] =
        absl::StrCat(IpAddr::FromAbi(b.value.addr, static_cast<Family>(b.value.family)).ToString(),
                     ":", ntohs(b.value.port));
  }
  std::map<uint32_t, std::string> table_text;
  for (const LookupTable& t : dump->tables_upsert) {
    for (uint32_t slot : t.slots) {
      absl::StrAppend(&table_text[t.id], backend_name[slot], " ");
    }
  }
  for (const ServiceEntry& s : dump->services_upsert) {
    lines.push_back(absl::StrCat("service ", DescribeServiceKey(s.key), " flags ",
                                 s.value.flags, " backends ", s.value.backend_count, " table ",
                                 table_text[s.value.table_id]));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_CASE("a sequence of change sets reaches the datapath a full sync of the same objects reaches",
          "[cluster_view][changes]") {
  const DatapathConfig config{.maglev_table_size = 31};
  auto make = [&config]() {
    auto backend = MakeSimBackend({.config = config});
    REQUIRE(backend.ok());
    auto view = ClusterView::Create({.node_name = "node-1", .lb = {.datapath = config}});
    REQUIRE(view.ok());
    return Applied{std::move(*backend), std::move(*view)};
  };
  k8s::ClusterObjects current = Load(kMixed);
  Applied delta = make();
  delta.view.Update(current);
  REQUIRE(delta.view.ApplyTo(*delta.backend).ok());

  // Each step: objects added or replaced (YAML) and keys removed.
  struct Step {
    std::string what;
    std::string changed;
    RemovedObjects removed;
  };
  const std::vector<Step> steps = {
      {"the policies arrive", kMixedPolicies, {}},
      {"a back pod becomes front (leaves two subjects, joins one)",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: api-1, namespace: shop, labels: {app: api, "
       "tier: front}}\nspec: {nodeName: node-1, containers: [{name: c}]}\n"
       "status: {podIPs: [{ip: 10.0.0.3}]}\n",
       {}},
      {"a policy's subject moves from app=db to app=api",
       "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: "
       "shop}\nspec:\n  podSelector: {matchLabels: {app: api}}\n  ingress:\n  - from: "
       "[{podSelector: {matchLabels: {app: web}}}]\n",
       {}},
      {"a peer namespace stops matching, a pod goes and another comes",
       "apiVersion: v1\nkind: Namespace\nmetadata: {name: ops, labels: {team: c}}\n---\n"
       "apiVersion: v1\nkind: Pod\nmetadata: {name: db-2, namespace: shop, labels: {app: db, "
       "tier: back}}\nspec: {nodeName: node-1, containers: [{name: c}]}\n"
       "status: {podIPs: [{ip: 10.0.0.5}]}\n",
       {.pods = {"shop/db-1"}}},
      {"a policy goes and a Service's endpoints change",
       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-abc, "
       "namespace: shop, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\n"
       "ports: [{name: http, port: 8080}]\nendpoints:\n- addresses: [10.0.0.1]\n",
       {.network_policies = {"shop/front-egress"}}},
  };
  for (const Step& step : steps) {
    INFO("step: " << step.what);
    ObjectChanges changes;
    changes.changed = Load(step.changed);
    changes.removed = step.removed;
    for (const auto& [key, pod] : changes.changed.pods) {
      current.pods.insert_or_assign(key, pod);
    }
    for (const auto& [key, ns] : changes.changed.namespaces) {
      current.namespaces.insert_or_assign(key, ns);
    }
    for (const auto& [key, np] : changes.changed.network_policies) {
      current.network_policies.insert_or_assign(key, np);
    }
    for (const auto& [key, slice] : changes.changed.endpoint_slices) {
      current.endpoint_slices.insert_or_assign(key, slice);
    }
    for (const std::string& key : step.removed.pods) {
      current.pods.erase(key);
    }
    for (const std::string& key : step.removed.network_policies) {
      current.network_policies.erase(key);
    }
    const std::vector<std::string> before = Canonical(delta.view, *delta.backend);
    delta.view.Update(changes);
    REQUIRE(delta.view.problems().empty());
    REQUIRE(delta.view.ApplyTo(*delta.backend).ok());

    Applied whole = make();
    whole.view.Update(current);
    REQUIRE(whole.view.problems().empty());
    REQUIRE(whole.view.ApplyTo(*whole.backend).ok());
    const std::vector<std::string> expected = Canonical(whole.view, *whole.backend);
    const std::vector<std::string> got = Canonical(delta.view, *delta.backend);
    CHECK(got != before);  // every step changes the datapath
    CHECK(absl::StrJoin(got, "\n") == absl::StrJoin(expected, "\n"));
  }
}

}  // namespace
}  // namespace dpv2::agent
