#include "agent/daemon/api_objects.h"

#include <catch2/catch.hpp>

#include "../apiserver/fake_api_server.h"
#include "agent/k8s/manifest_text.h"

namespace dpv2::agent::daemon {
namespace {

using apiserver::Delta;
using apiserver::DeltaType;
using apiserver::ReflectorUpdate;
using apiserver::testing::Delivered;

// Resource slots in the order the test gives them.
enum : size_t { kServices, kSlices, kLoggings, kBaselines, kResourceCount };

ApiObjects MakeObjects() {
  return ApiObjects({apiserver::ServicesResource(), apiserver::EndpointSlicesResource(),
                     apiserver::NetworkLoggingsResource(),
                     apiserver::BaselineAdminNetworkPoliciesResource()});
}

nlohmann::json Object(const std::string& yaml) {
  k8s::ManifestDocuments docs = k8s::ParseManifestText(yaml, "test");
  REQUIRE(docs.objects.size() == 1);
  return docs.objects[0].object;
}

nlohmann::json Service(const std::string& name, const std::string& cluster_ip) {
  return Object("apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
                ", namespace: shop}\nspec:\n  clusterIP: " + cluster_ip +
                "\n  ports: [{port: 80, targetPort: 8080}]\n");
}

nlohmann::json Slice(const std::string& name, const std::string& address) {
  return Object("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " +
                name +
                "\n  namespace: shop\n  labels: {kubernetes.io/service-name: web}\n"
                "addressType: IPv4\nports: [{port: 8080}]\nendpoints:\n  - addresses: [" +
                address + "]\n");
}

Delta Added(const nlohmann::json& object) {
  apiserver::JsonRef delivered = Delivered(object);
  return {DeltaType::kAdded, apiserver::ObjectKey(*delivered), delivered};
}

// Lists every resource (the first LIST of each).
void ListAll(ApiObjects& objects, std::map<size_t, std::vector<Delta>> deltas) {
  for (size_t r = 0; r < kResourceCount; ++r) {
    objects.Apply(r, {.deltas = deltas[r], .relisted = true, .synced = true});
  }
}

// What decoding every object anew gives, the way the agent did it before.
k8s::ClusterObjects DecodeAll(const std::vector<std::pair<std::string, nlohmann::json>>& stored) {
  k8s::ClusterObjects out;
  for (const auto& [origin, object] : stored) {
    k8s::AddObject(object, origin, &out);
  }
  return out;
}

std::vector<std::string> Keys(const auto& map) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : map) {
    keys.push_back(k);
  }
  return keys;
}

TEST_CASE("api objects: nothing is handed out before every resource has been listed") {
  ApiObjects objects = MakeObjects();
  objects.Apply(kServices, {.deltas = {Added(Service("web", "10.96.0.10"))}, .synced = true});
  absl::StatusOr<k8s::ClusterObjects> early = objects.Snapshot();
  REQUIRE_FALSE(early.ok());
  CHECK(absl::IsUnavailable(early.status()));
  CHECK(early.status().message() ==
        "waiting for the first LIST of endpointslices, networkloggings, "
        "baselineadminnetworkpolicies");
  ListAll(objects, {});
  absl::StatusOr<k8s::ClusterObjects> listed = objects.Snapshot();
  REQUIRE(listed.ok());
  CHECK(Keys(listed->services) == std::vector<std::string>{"shop/web"});
}

TEST_CASE("api objects: each object is decoded once when its event arrives, not per snapshot") {
  ApiObjects objects = MakeObjects();
  std::vector<Delta> slices;
  for (int i = 0; i < 50; ++i) {
    slices.push_back(Added(Slice("web-" + std::to_string(i), "10.0.1." + std::to_string(i + 1))));
  }
  ListAll(objects, {{kServices, {Added(Service("web", "10.96.0.10"))}}, {kSlices, slices}});
  CHECK(objects.decoded() == 51);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(objects.Snapshot().ok());
  }
  CHECK(objects.decoded() == 51);

  // One endpoint change: one decode, and the snapshot has the new address.
  nlohmann::json changed = Slice("web-7", "10.0.9.9");
  objects.Apply(kSlices, {.deltas = {{DeltaType::kUpdated, "shop/web-7", Delivered(changed)}},
                          .synced = true});
  CHECK(objects.decoded() == 52);
  absl::StatusOr<k8s::ClusterObjects> now = objects.Snapshot();
  REQUIRE(now.ok());
  CHECK(now->endpoint_slices.size() == 50);
  CHECK(now->endpoint_slices.at("shop/web-7").spec.endpoints.at(0).addresses.at(0).ToString() ==
        "10.0.9.9");
}

TEST_CASE("api objects: a snapshot equals decoding every stored object anew, errors included") {
  nlohmann::json bad = Service("bad", "10.96.0.11");
  bad["spec"]["ports"][0]["port"] = 0;
  nlohmann::json fqdn = Slice("names", "10.0.1.1");
  fqdn["addressType"] = "FQDN";
  nlohmann::json logging = Object(
      "apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {name: default}\n"
      "spec: {cluster: {deny: {log: true}}}\n");
  nlohmann::json baseline = Object(
      "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
      "metadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  ingress:\n"
      "  - {name: deny-all, action: Deny, from: [{namespaces: {}}]}\n");
  ApiObjects objects = MakeObjects();
  ListAll(objects, {{kServices, {Added(Service("web", "10.96.0.10")), Added(bad)}},
                    {kSlices, {Added(Slice("web-1", "10.0.1.5")), Added(fqdn)}},
                    {kLoggings, {Added(logging)}},
                    {kBaselines, {Added(baseline)}}});
  absl::StatusOr<k8s::ClusterObjects> got = objects.Snapshot();
  REQUIRE(got.ok());
  k8s::ClusterObjects want =
      DecodeAll({{"API services", bad}, {"API services", Service("web", "10.96.0.10")},
                 {"API endpointslices", fqdn}, {"API endpointslices", Slice("web-1", "10.0.1.5")},
                 {"API networkloggings", logging},
                 {"API baselineadminnetworkpolicies", baseline}});
  CHECK(Keys(got->services) == Keys(want.services));
  CHECK(Keys(got->endpoint_slices) == Keys(want.endpoint_slices));
  CHECK(got->errors == want.errors);
  CHECK(got->warnings == want.warnings);
  REQUIRE(got->errors.size() == 1);
  CHECK(got->errors[0].find("Service shop/bad: spec.ports[0].port") == 0);
  REQUIRE(got->network_logging.has_value());
  CHECK(got->network_logging->deny_log);
  CHECK(got->baseline_admin_network_policy.has_value());
  CHECK(got->object_count() == want.object_count());
}

TEST_CASE("api objects: a delete or an update that turns invalid takes the old object away") {
  ApiObjects objects = MakeObjects();
  nlohmann::json bad = Service("web", "10.96.0.10");
  bad["spec"]["ports"][0]["port"] = 70000;
  ListAll(objects, {{kServices, {Added(Service("web", "10.96.0.10")),
                                 Added(Service("api", "10.96.0.12"))}},
                    {kLoggings, {Added(Object("apiVersion: networking.gke.io/v1alpha1\n"
                                              "kind: NetworkLogging\nmetadata: {name: default}\n"
                                              "spec: {cluster: {allow: {log: true}}}\n"))}}});
  objects.Apply(kServices,
                {.deltas = {{DeltaType::kUpdated, "shop/web", Delivered(bad)},
                            {DeltaType::kDeleted, "shop/api", Delivered(Service("api", "x"))}},
                 .synced = true});
  objects.Apply(kLoggings,
                {.deltas = {{DeltaType::kDeleted, "default", nullptr}},  // after a relist
                 .synced = true});
  absl::StatusOr<k8s::ClusterObjects> got = objects.Snapshot();
  REQUIRE(got.ok());
  CHECK(got->services.empty());
  CHECK_FALSE(got->network_logging.has_value());
  REQUIRE(got->errors.size() == 1);
  CHECK(got->errors[0].find("Service shop/web: spec.ports[0].port") == 0);
  // Fixed again: the error goes with the bad version.
  objects.Apply(
      kServices,
      {.deltas = {{DeltaType::kUpdated, "shop/web", Delivered(Service("web", "10.96.0.10"))}},
       .synced = true});
  got = objects.Snapshot();
  REQUIRE(got.ok());
  CHECK(Keys(got->services) == std::vector<std::string>{"shop/web"});
  CHECK(got->errors.empty());
}

TEST_CASE("api objects: an object without kind and apiVersion is of its resource") {
  ApiObjects objects = MakeObjects();
  nlohmann::json bare = Service("web", "10.96.0.10");
  bare.erase("kind");
  bare.erase("apiVersion");
  nlohmann::json slice = Slice("web-1", "10.0.1.5");
  slice.erase("apiVersion");
  slice["kind"] = "EndpointSlice";  // what an object says counts
  ListAll(objects, {{kServices, {Added(bare)}}, {kSlices, {Added(slice)}}});
  absl::StatusOr<k8s::ClusterObjects> got = objects.Snapshot();
  REQUIRE(got.ok());
  CHECK(got->errors.empty());
  CHECK(Keys(got->services) == std::vector<std::string>{"shop/web"});
  CHECK(Keys(got->endpoint_slices) == std::vector<std::string>{"shop/web-1"});
}

TEST_CASE("api objects: malformed objects are reported, never fatal, and bad slots are ignored") {
  ApiObjects objects = MakeObjects();
  ListAll(objects, {{kServices,
                     {{DeltaType::kAdded, "shop/badkind",
                       Delivered({{"kind", 5}, {"metadata", {{"name", "badkind"}}}})},
                      {DeltaType::kAdded, "shop/array", Delivered(nlohmann::json::array({1, 2}))},
                      {DeltaType::kAdded, "shop/null", Delivered(nlohmann::json())}}}});
  objects.Apply(kResourceCount + 3, {.deltas = {Added(Service("x", "10.96.0.1"))},
                                     .synced = true});  // no such resource
  absl::StatusOr<k8s::ClusterObjects> got = objects.Snapshot();
  REQUIRE(got.ok());
  CHECK(got->object_count() == 0);
  CHECK(got->errors.size() >= 3);
  for (const std::string& e : got->errors) {
    CHECK(e.find("API services") == 0);
  }
}

}  // namespace
}  // namespace dpv2::agent::daemon
