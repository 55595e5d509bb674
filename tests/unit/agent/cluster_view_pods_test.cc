// ClusterView keeps no copy of the pods PolicyState holds: a pod stays in the
// view (not in objects()) only while the core rejects it, is retried from
// there every Update,
// and whole sets, change sets and adoption still see every pod.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "agent/cluster_view.h"
#include "dpv2/sim.h"

namespace dpv2::agent {
namespace {

k8s::PodObject Pod(const std::string& name, const std::string& ip, const std::string& node) {
  return k8s::PodObject{.info = PodInfo{.namespace_name = "shop",
                                        .name = name,
                                        .labels = {{"app", "web"}},
                                        .ips = {IpAddr::Parse(ip).value()},
                                        .node_name = node},
                        .phase = "Running"};
}

ObjectChanges Changed(const std::string& name, const std::string& ip,
                      const std::string& node = "node-2") {
  ObjectChanges c;
  c.changed.pods.emplace("shop/" + name, Pod(name, ip, node));
  return c;
}

TEST_CASE("a pod the core rejects stays in the view, is retried every Update and leaves it "
          "once accepted") {
  auto view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  k8s::ClusterObjects objects;
  objects.namespaces.emplace("shop", NamespaceInfo{.name = "shop"});
  objects.pods.emplace("shop/a", Pod("a", "10.0.0.1", "node-1"));
  objects.pods.emplace("shop/b", Pod("b", "10.0.0.1", "node-2"));  // a's address
  view->Update(objects);
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Pod shop/b") == 0);
  CHECK(view->policy().pod_count() == 1);
  CHECK(view->objects().pods.empty());  // PolicyState holds them
  CHECK(view->LocalEndpointOf("shop/a").has_value());

  view->Update(ObjectChanges{});  // names nothing: b is retried all the same
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Pod shop/b") == 0);

  view->Update(Changed("a", "10.0.0.3", "node-1"));  // a moves away: b fits now
  CHECK(view->problems().empty());
  CHECK(view->policy().pod_count() == 2);
  CHECK(view->objects().pods.empty());
  CHECK(view->policy().FindPodByIp(IpAddr::Parse("10.0.0.1").value())->name == "b");

  // The whole set again (a back at b's address): now a is the one
  // rejected; the core keeps its previous version, endpoint included.
  view->Update(objects);
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Pod shop/a") == 0);
  CHECK(view->policy().FindPodByIp(IpAddr::Parse("10.0.0.1").value())->name == "b");
  CHECK(*view->policy().FindPod("shop", "a")->ips ==
        std::vector<IpAddr>{IpAddr::Parse("10.0.0.3").value()});
  CHECK(view->LocalEndpointOf("shop/a").has_value());
}

TEST_CASE("a removed pod leaves the core and the view, rejected or not") {
  auto view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  view->Update(Changed("a", "10.0.0.1", "node-1"));
  view->Update(Changed("b", "10.0.0.1"));
  REQUIRE(view->problems().size() == 1);
  ObjectChanges gone;
  gone.removed.pods = {"shop/a", "shop/b"};
  view->Update(gone);
  CHECK(view->problems().empty());  // b, never held, is not reported missing
  CHECK(view->policy().pod_count() == 0);
  CHECK(view->objects().pods.empty());
  CHECK_FALSE(view->LocalEndpointOf("shop/a").has_value());

  // A whole set without pods removes what a change set added.
  view->Update(Changed("c", "10.0.0.5"));
  REQUIRE(view->policy().pod_count() == 1);
  view->Update(k8s::ClusterObjects{});
  CHECK(view->policy().pod_count() == 0);
}

TEST_CASE("Adopt rebuilds the pods from PolicyState and keeps the rejected ones") {
  auto view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  view->Update(Changed("a", "10.0.0.1", "node-1"));
  view->Update(Changed("b", "10.0.0.1"));
  REQUIRE(view->ApplyTo(*MakeSimBackend({}).value()).ok());
  const ChangeBatch before = view->PendingChanges();
  CHECK(before.empty());
  REQUIRE(view->Adopt(ChangeBatch{}).ok());
  CHECK(view->policy().pod_count() == 1);
  CHECK(view->policy().FindPod("shop", "a")->node_name == "node-1");
  CHECK(view->LocalEndpointOf("shop/a").has_value());
  REQUIRE(view->problems().size() == 1);
  CHECK(view->problems()[0].find("Pod shop/b") == 0);
  CHECK_FALSE(view->policy().FindPod("shop", "b").has_value());
}

}  // namespace
}  // namespace dpv2::agent
