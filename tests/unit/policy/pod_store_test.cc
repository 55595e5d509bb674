// How PolicyState keeps pods: one shared copy of what the pods of a workload
// have in common (namespace, labels, ports, owner) and of each node name,
// read back through HeldPod; identities still follow each pod's own labels.
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "dpv2/policy_state.h"

namespace dpv2 {
namespace {

PodInfo Pod(std::string name, std::string app, std::string ip, std::string node = "node-1") {
  return PodInfo{.namespace_name = "shop",
                 .name = std::move(name),
                 .labels = {{"app", app}, {"pod-template-hash", "5d9c"}},
                 .ips = {IpAddr::Parse(ip).value()},
                 .node_name = std::move(node),
                 .container_ports = {{.name = "http", .container_port = 8080}},
                 .workload_kind = "ReplicaSet",
                 .workload_name = app + "-5d9c"};
}

IpAddr Ip(const char* text) { return IpAddr::Parse(text).value(); }

TEST_CASE("pods with the same labels share one held copy and one identity; pods whose labels "
          "differ do not") {
  PolicyState state({.node_name = "node-0"});
  for (int i = 0; i < 40; ++i) {
    const std::string app = i % 2 == 0 ? "web" : "db";
    REQUIRE(state.SetPod(Pod("p" + std::to_string(i), app, "10.0.0." + std::to_string(i + 1),
                             "node-" + std::to_string(i % 7)))
                .ok());
  }
  REQUIRE(state.pod_count() == 40);
  const HeldPod web = state.FindPod("shop", "p0").value();
  const HeldPod db = state.FindPod("shop", "p1").value();
  CHECK(web.labels != db.labels);
  CHECK(web.labels->at("app") == "web");
  CHECK(db.labels->at("app") == "db");
  std::set<const Labels*> label_copies;
  std::set<uint32_t> identities;
  state.ForEachPod([&](const HeldPod& pod) {
    label_copies.insert(pod.labels);
    identities.insert(state.IdentityOf(pod.ips->front()));
  });
  CHECK(label_copies.size() == 2);  // 40 pods, two label sets
  CHECK(identities.size() == 2);
  CHECK(state.IdentityOf(Ip("10.0.0.1")) != state.IdentityOf(Ip("10.0.0.2")));
  CHECK(state.IdentityOf(Ip("10.0.0.1")) == state.IdentityOf(Ip("10.0.0.3")));
  // What is shared still reads back per pod.
  const HeldPod p9 = state.FindPod("shop", "p9").value();
  CHECK(p9.name == "p9");
  CHECK(p9.node_name == "node-2");
  CHECK(*p9.ips == std::vector<IpAddr>{Ip("10.0.0.10")});
  CHECK(p9.labels == db.labels);
  CHECK(p9.workload_name == "db-5d9c");
  const PodInfo back = p9.ToPodInfo();
  const PodInfo given = Pod("p9", "db", "10.0.0.10", "node-2");
  CHECK(back.labels == given.labels);
  CHECK(back.container_ports == given.container_ports);
  CHECK(std::tie(back.namespace_name, back.name, back.ips, back.node_name, back.workload_kind,
                 back.workload_name) == std::tie(given.namespace_name, given.name, given.ips,
                                                 given.node_name, given.workload_kind,
                                                 given.workload_name));
}

TEST_CASE("a relabelled pod moves to its new label set's identity, and the old one goes with "
          "its last pod") {
  PolicyState state({.node_name = "node-0"});
  REQUIRE(state.SetPod(Pod("a", "web", "10.0.0.1")).ok());
  REQUIRE(state.SetPod(Pod("b", "web", "10.0.0.2")).ok());
  REQUIRE(state.SetPod(Pod("c", "db", "10.0.0.3")).ok());
  const uint32_t web = state.IdentityOf(Ip("10.0.0.1"));
  const uint32_t db = state.IdentityOf(Ip("10.0.0.3"));
  const size_t identities = state.identity_count();

  REQUIRE(state.SetPod(Pod("b", "db", "10.0.0.2")).ok());
  CHECK(state.IdentityOf(Ip("10.0.0.2")) == db);
  CHECK(state.FindPod("shop", "b")->labels == state.FindPod("shop", "c")->labels);
  CHECK(state.FindPod("shop", "a")->labels->at("app") == "web");
  CHECK(state.IdentityOf(Ip("10.0.0.1")) == web);
  CHECK(state.identity_count() == identities);

  REQUIRE(state.SetPod(Pod("a", "db", "10.0.0.1")).ok());
  CHECK(state.IdentityOf(Ip("10.0.0.1")) == db);
  CHECK(state.identity_count() == identities - 1);  // nobody is "web" any more
  REQUIRE(state.RemovePod("shop", "c").ok());
  CHECK(state.FindPod("shop", "a")->labels->at("app") == "db");
  CHECK_FALSE(state.FindPodByIp(Ip("10.0.0.3")).has_value());
  CHECK(state.FindPodByIp(Ip("10.0.0.2"))->name == "b");
}

TEST_CASE("HoldsPod is true only for a pod held with every field and the endpoint given") {
  PolicyState state({.node_name = "node-1"});
  const PodInfo pod = Pod("a", "web", "10.0.0.1");
  const LocalEndpoint ep{.ifindex = 7, .mac = {2, 0, 0, 0, 0, 1}};
  CHECK_FALSE(state.HoldsPod(pod, ep));  // not held yet
  REQUIRE(state.SetPod(pod, ep).ok());
  CHECK(state.HoldsPod(pod, ep));
  CHECK_FALSE(state.HoldsPod(pod, std::nullopt));
  CHECK_FALSE(state.HoldsPod(pod, LocalEndpoint{.ifindex = 8, .mac = ep.mac}));
  std::vector<PodInfo> changed(7, pod);
  changed[0].labels["tier"] = "front";
  changed[1].ips = {Ip("10.0.0.9")};
  changed[2].node_name = "node-2";
  changed[3].host_network = true;
  changed[4].container_ports[0].container_port = 8081;
  changed[5].workload_kind = "StatefulSet";
  changed[6].workload_name = "web-0";
  for (size_t i = 0; i < changed.size(); ++i) {
    INFO("field " << i);
    CHECK_FALSE(state.HoldsPod(changed[i], ep));
  }
  // A hostNetwork pod keeps no endpoint, whatever it is given.
  PodInfo host = Pod("h", "agent", "192.168.0.1");
  host.host_network = true;
  REQUIRE(state.SetPod(host, ep).ok());
  CHECK(state.HoldsPod(host, ep));
  CHECK(state.HoldsPod(host, std::nullopt));
  CHECK_FALSE(state.FindPodByIp(Ip("192.168.0.1")).has_value());  // node traffic
  CHECK(state.FindPod("shop", "h")->host_network);
}

TEST_CASE("a rejected pod leaves the held one as it was") {
  PolicyState state;
  REQUIRE(state.SetPod(Pod("a", "web", "10.0.0.1")).ok());
  REQUIRE(state.SetPod(Pod("b", "db", "10.0.0.2")).ok());
  // b asks for a's address.
  CHECK(absl::IsAlreadyExists(state.SetPod(Pod("b", "web", "10.0.0.1"))));
  CHECK(state.HoldsPod(Pod("b", "db", "10.0.0.2"), std::nullopt));
  CHECK(state.FindPodByIp(Ip("10.0.0.1"))->name == "a");
  PodInfo bad = Pod("c", "web", "10.0.0.3");
  bad.container_ports[0].container_port = 70000;
  CHECK(absl::IsInvalidArgument(state.SetPod(bad)));
  CHECK_FALSE(state.FindPod("shop", "c").has_value());
  CHECK(state.pod_count() == 2);
}

}  // namespace
}  // namespace dpv2
