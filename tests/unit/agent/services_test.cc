// `dpv2ctl services` output: the frontends of one node's view and the
// backends kube-proxy's endpoint selection gives them, from manifests.
#include <catch2/catch.hpp>

#include "absl/strings/str_join.h"
#include "agent/cluster_view.h"
#include "agent/reports.h"

namespace dpv2::agent {
namespace {

constexpr char kNode[] = R"(
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {topology.kubernetes.io/zone: zone-a}}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
)";

nlohmann::json Services(const std::string& yaml, const std::string& node = "node-1") {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(std::string(kNode) + yaml, "svc.yaml", &objects);
  INFO(absl::StrJoin(objects.errors, "\n"));
  REQUIRE(objects.errors.empty());
  absl::StatusOr<ClusterView> view = ClusterView::Create({.node_name = node});
  REQUIRE(view.ok());
  view->Update(objects);
  INFO(absl::StrJoin(view->problems(), "\n"));
  REQUIRE(view->problems().empty());
  return ServicesJson(*view);
}

const nlohmann::json* Find(const nlohmann::json& services, const std::string& kind) {
  for (const nlohmann::json& s : services) {
    if (s["kind"] == kind) {
      return &s;
    }
  }
  return nullptr;
}

std::string Web(const std::string& extra_spec, const std::string& endpoints) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n"
         "  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, targetPort: 8080}]\n" +
         extra_spec +
         "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
         "  name: web-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: web}\n"
         "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n" +
         endpoints;
}

constexpr char kMixed[] =
    "- {addresses: [10.0.0.1], nodeName: node-1}\n"
    "- {addresses: [10.0.0.2], nodeName: node-2, conditions: {ready: true}}\n"
    "- {addresses: [10.0.0.3], nodeName: node-1, conditions: {ready: false, serving: true, "
    "terminating: true}}\n";

TEST_CASE("services: a ClusterIP uses the ready endpoints; absent conditions mean ready") {
  nlohmann::json s = Services(Web("", kMixed));
  REQUIRE(s.size() == 1);
  CHECK(s[0]["service"] == "shop/web");
  CHECK(s[0]["address"] == "10.96.0.10");
  CHECK(s[0]["port"] == 80);
  CHECK(s[0]["protocol"] == "TCP");
  CHECK(s[0]["kind"] == "ClusterIP");
  CHECK(s[0]["backends"] == nlohmann::json({"10.0.0.1:8080", "10.0.0.2:8080"}));
}

TEST_CASE("services: internalTrafficPolicy Local keeps only this node's endpoints") {
  nlohmann::json s = Services(Web("  internalTrafficPolicy: Local\n", kMixed));
  REQUIRE(s.size() == 1);
  CHECK(s[0]["backends"] == nlohmann::json({"10.0.0.1:8080"}));
  nlohmann::json other = Services(Web("  internalTrafficPolicy: Local\n", kMixed), "node-3");
  CHECK(other[0]["backends"].empty());
}

TEST_CASE("services: serving terminating endpoints are used only when none is ready") {
  nlohmann::json s = Services(Web("",
                                  "- {addresses: [10.0.0.3], nodeName: node-1, conditions: "
                                  "{ready: false, serving: true, terminating: true}}\n"
                                  "- {addresses: [10.0.0.4], conditions: {ready: false, "
                                  "serving: false, terminating: true}}\n"));
  CHECK(s[0]["backends"] == nlohmann::json({"10.0.0.3:8080"}));
}

TEST_CASE("services: zone hints apply when every ready endpoint has one, using the Node's zone") {
  nlohmann::json s = Services(Web("  trafficDistribution: PreferClose\n",
                                  "- {addresses: [10.0.0.1], zone: zone-a, hints: {forZones: "
                                  "[{name: zone-a}]}}\n"
                                  "- {addresses: [10.0.0.2], zone: zone-b, hints: {forZones: "
                                  "[{name: zone-b}]}}\n"));
  CHECK(s[0]["backends"] == nlohmann::json({"10.0.0.1:8080"}));
  nlohmann::json partial = Services(Web("",
                                        "- {addresses: [10.0.0.1], hints: {forZones: [{name: "
                                        "zone-a}]}}\n- {addresses: [10.0.0.2]}\n"));
  CHECK(partial[0]["backends"] == nlohmann::json({"10.0.0.1:8080", "10.0.0.2:8080"}));
}

TEST_CASE("services: a NodePort with externalTrafficPolicy Local serves external traffic "
          "from local endpoints and this node's pods from all") {
  nlohmann::json s = Services(
      "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n"
      "  type: NodePort\n  clusterIP: 10.96.0.10\n  externalTrafficPolicy: Local\n"
      "  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
      "  name: web-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: web}\n"
      "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n" +
      std::string(kMixed));
  const nlohmann::json* np = Find(s, "NodePort");
  REQUIRE(np != nullptr);
  CHECK((*np)["address"] == "192.168.0.1");
  CHECK((*np)["port"] == 30080);
  CHECK((*np)["backends"] == nlohmann::json({"10.0.0.1:8080"}));
  CHECK((*np)["internal_backends"] == nlohmann::json({"10.0.0.1:8080", "10.0.0.2:8080"}));
  const nlohmann::json* cip = Find(s, "ClusterIP");
  REQUIRE(cip != nullptr);
  CHECK((*cip)["backends"] == nlohmann::json({"10.0.0.1:8080", "10.0.0.2:8080"}));
}

TEST_CASE("services: slices of another namespace or without the service-name label are ignored") {
  nlohmann::json s = Services(
      Web("", "- {addresses: [10.0.0.1]}\n") +
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
      "  name: web-2\n  namespace: other\n  labels: {kubernetes.io/service-name: web}\n"
      "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.9.0.1]}]\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
      "  name: web-3\n  namespace: shop\naddressType: IPv4\nports: [{name: http, port: 8080}]\n"
      "endpoints: [{addresses: [10.9.0.2]}]\n");
  CHECK(s[0]["backends"] == nlohmann::json({"10.0.0.1:8080"}));
}

}  // namespace
}  // namespace dpv2::agent
