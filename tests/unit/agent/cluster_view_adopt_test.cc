// ClusterView::Adopt: an agent restarted over a running datapath rebuilds
// its view from the objects, takes over the ids the datapath holds and
// applies only what changed while it was down.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "agent/cluster_view.h"
#include "dpv2/sim.h"

namespace dpv2::agent {
namespace {

constexpr char kCluster[] = R"(
apiVersion: v1
kind: Node
metadata: {name: node-1}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.1.1}]}
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
  - from: [{podSelector: {matchLabels: {app: web}}}, {ipBlock: {cidr: 10.0.1.0/24}}]
)";

// A Service of namespace shop with one port and its EndpointSlice.
std::string ServiceYaml(const std::string& name, const std::string& cluster_ip,
                        const std::string& extra_spec, int target_port,
                        const std::vector<std::string>& endpoints) {
  std::string y = "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
                  ", namespace: shop}\nspec:\n  clusterIP: " + cluster_ip + "\n" + extra_spec +
                  "  ports: [{name: http, port: 80, targetPort: " + std::to_string(target_port) +
                  (extra_spec.empty() ? "" : ", nodePort: 30080") +
                  "}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: " +
                  name + "-1, namespace: shop, labels: {kubernetes.io/service-name: " + name +
                  "}}\naddressType: IPv4\nports: [{name: http, port: " +
                  std::to_string(target_port) + "}]\nendpoints:\n";
  for (const std::string& e : endpoints) {
    y += "- {addresses: [" + e + "], nodeName: " + (e.starts_with("10.0.0.") ? "node-1" : "node-2") +
         "}\n";
  }
  return y + "---\n";
}

const std::string kWeb =
    ServiceYaml("web", "10.96.0.10", "  type: NodePort\n", 8080, {"10.0.0.1", "10.0.1.1"});
const std::string kApi = ServiceYaml("api", "10.96.0.11", "", 9090, {"10.0.1.7", "10.0.1.8"});

k8s::ClusterObjects Objects(const std::string& yaml) {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(yaml, "cluster.yaml", &objects);
  INFO(absl::StrJoin(objects.errors, "\n"));
  REQUIRE(objects.errors.empty());
  return objects;
}

ClusterView NewView() {
  absl::StatusOr<ClusterView> view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  return *std::move(view);
}

// A previous agent ran with api, then without; then it stopped, leaving
// `backend` programmed with kCluster, web and api.
struct Previous {
  std::unique_ptr<Backend> backend = *MakeSimBackend({});
  ClusterView view = NewView();

  Previous() {
    view.Update(Objects(std::string(kCluster) + "---\n" + kWeb + kApi));
    INFO(absl::StrJoin(view.problems(), "\n"));
    REQUIRE(view.problems().empty());
    REQUIRE(view.ApplyTo(*backend).ok());
  }

  ChangeBatch Dump() {
    absl::StatusOr<ChangeBatch> d = backend->DumpState();
    REQUIRE(d.ok());
    return *std::move(d);
  }
};

TEST_CASE("cluster view: a restarted agent with the same objects has nothing to apply") {
  Previous prev;
  ClusterView view = NewView();
  view.Update(Objects(kApi));  // another history: fresh ids would differ
  view.Update(Objects(std::string(kCluster) + "---\n" + kWeb + kApi));
  REQUIRE(!view.PendingChanges().empty());
  REQUIRE(view.Adopt(prev.Dump()).ok());
  INFO(view.PendingChanges().Summary());
  CHECK(view.PendingChanges().empty());
  CHECK(view.problems().empty());
  CHECK(view.ApplyTo(*prev.backend).ok());
}

TEST_CASE("cluster view: a Service deleted while the agent was down is deleted at adoption") {
  Previous prev;
  ClusterView view = NewView();
  view.Update(Objects(std::string(kCluster) + "---\n" + kWeb));
  REQUIRE(view.Adopt(prev.Dump()).ok());
  const ChangeBatch pending = view.PendingChanges();
  INFO(pending.Summary());
  CHECK(pending.services_delete.size() == 1);
  CHECK(pending.backends_delete.size() == 2);
  CHECK(pending.tables_delete.size() == 1);
  CHECK(pending.size() == 4);
  REQUIRE(view.ApplyTo(*prev.backend).ok());
  CHECK(view.PendingChanges().empty());
}

TEST_CASE("cluster view: a corrupt dump is reported and the next ApplyTo rewrites everything") {
  Previous prev;
  ChangeBatch dump = prev.Dump();
  dump.tables_upsert[0].slots[3] = 424242;
  ClusterView view = NewView();
  view.Update(Objects(std::string(kCluster) + "---\n" + kWeb));
  absl::Status st = view.Adopt(dump);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("names backend 424242") != std::string::npos);
  REQUIRE(view.ApplyTo(*prev.backend).ok());
  CHECK(view.PendingChanges().empty());
  // What the backend holds now is exactly this view's state.
  ClusterView again = NewView();
  again.Update(Objects(std::string(kCluster) + "---\n" + kWeb));
  REQUIRE(again.Adopt(prev.Dump()).ok());
  CHECK(again.PendingChanges().empty());
}

}  // namespace
}  // namespace dpv2::agent
