#include "agent/daemon/reconciler.h"

#include <catch2/catch.hpp>
#include <mutex>

#include "agent/daemon/pod_interfaces.h"
#include "test_cluster.h"

namespace dpv2::agent::daemon {
namespace {

using testing::ClusterYaml;
using testing::CountingBackend;
using testing::FakeLinks;
using testing::WaitFor;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST_CASE("debounce: applies a quiet period after the last change") {
  Debouncer d(absl::Milliseconds(50), absl::Milliseconds(500));
  CHECK_FALSE(d.Deadline().has_value());
  d.Changed(kT0);
  d.Changed(kT0 + absl::Milliseconds(30));
  CHECK(*d.Deadline() == kT0 + absl::Milliseconds(80));
  CHECK_FALSE(d.Due(kT0 + absl::Milliseconds(79)));
  CHECK(d.Due(kT0 + absl::Milliseconds(80)));
  CHECK(d.first_change() == kT0);
  d.Reset();
  CHECK_FALSE(d.Deadline().has_value());
}

TEST_CASE("debounce: a steady stream of changes is still applied within max_delay") {
  Debouncer d(absl::Milliseconds(50), absl::Milliseconds(200));
  for (int i = 0; i < 10; ++i) {
    d.Changed(kT0 + absl::Milliseconds(40 * i));
  }
  CHECK(*d.Deadline() == kT0 + absl::Milliseconds(200));
}

// A snapshot source the test edits; every Snapshot() is counted.
struct Source {
  std::mutex mu;
  std::string yaml = ClusterYaml();
  int snapshots = 0;
  absl::StatusOr<k8s::ClusterObjects> Snapshot() {
    std::lock_guard<std::mutex> l(mu);
    ++snapshots;
    k8s::ClusterObjects objects;
    k8s::AddManifestText(yaml, "test.yaml", &objects);
    return objects;
  }
  void Set(std::string y) {
    std::lock_guard<std::mutex> l(mu);
    yaml = std::move(y);
  }
};

TEST_CASE("a burst of notifications becomes one snapshot and one apply") {
  Source source;
  CountingBackend backend;
  std::vector<ReconcileReport> reports;
  std::mutex mu;
  auto r = Reconciler::Create(
      {.node_name = "node-a"}, &backend,
      {.snapshot = [&] { return source.Snapshot(); },
       .on_reconciled = [&](const ReconcileReport& rep, ClusterView&,
                            Backend&) {
         std::lock_guard<std::mutex> l(mu);
         reports.push_back(rep);
       },
       .debounce = absl::Milliseconds(100),
       .max_delay = absl::Seconds(2)});
  REQUIRE(r.ok());
  (*r)->Start();
  for (int i = 0; i < 20; ++i) {
    (*r)->Notify();
  }
  REQUIRE(WaitFor([&] { return (*r)->stats().reconciles == 1; }));
  absl::SleepFor(absl::Milliseconds(200));
  CHECK((*r)->stats().reconciles == 1);
  CHECK(source.snapshots == 1);
  CHECK(backend.applies == 1);
  std::lock_guard<std::mutex> l(mu);
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].generation == 20);
  CHECK(reports[0].status.ok());
  CHECK(reports[0].changes > 0);
  CHECK((*r)->stats().applied_generation == 20);
}

TEST_CASE("a change applies the difference only; an unchanged snapshot applies nothing") {
  Source source;
  CountingBackend backend;
  auto r = Reconciler::Create({.node_name = "node-a"}, &backend,
                              {.snapshot = [&] { return source.Snapshot(); }});
  REQUIRE(r.ok());
  ReconcileReport first = (*r)->ReconcileNow();
  REQUIRE(first.status.ok());
  CHECK(backend.applies == 1);
  ReconcileReport same = (*r)->ReconcileNow();
  CHECK(same.changes == 0);
  CHECK(backend.applies == 1);  // an empty batch is not sent
  source.Set(ClusterYaml(8080));
  ReconcileReport changed = (*r)->ReconcileNow();
  REQUIRE(changed.status.ok());
  CHECK(changed.changes > 0);
  CHECK(changed.changes < first.changes);
  bool has_8080 = false;
  (*r)->WithState([&](ClusterView& v, Backend&) {
    for (const FrontendView& f : v.lb().Frontends()) {
      has_8080 = has_8080 || f.port == 8080;
    }
  });
  CHECK(has_8080);
}

TEST_CASE("a failed apply is retried and succeeds once the backend accepts it") {
  Source source;
  CountingBackend backend;
  backend.fail_applies = true;
  auto r = Reconciler::Create({.node_name = "node-a"}, &backend,
                              {.snapshot = [&] { return source.Snapshot(); },
                               .debounce = absl::Milliseconds(1),
                               .retry = absl::Milliseconds(50)});
  REQUIRE(r.ok());
  (*r)->Start();
  (*r)->Notify();
  REQUIRE(WaitFor([&] { return (*r)->stats().failures >= 2; }));
  CHECK_FALSE((*r)->stats().healthy);
  backend.fail_applies = false;
  REQUIRE(WaitFor([&] { return (*r)->stats().healthy; }));
  CHECK((*r)->stats().applied_generation == 1);
}

TEST_CASE("a local pod whose interface is missing is held back whole, then applied") {
  Source source;
  CountingBackend backend;
  FakeLinks links;
  auto r = Reconciler::Create(
      {.node_name = "node-a"}, &backend,
      {.snapshot = [&] { return source.Snapshot(); },
       .resolve_endpoint = [&](const k8s::PodObject& pod) {
         return ResolvePodEndpoint(pod, links);
       }});
  REQUIRE(r.ok());
  ReconcileReport first = (*r)->ReconcileNow();
  REQUIRE(first.status.ok());
  REQUIRE(first.waiting_pods.size() == 1);
  CHECK(first.waiting_pods[0] ==
        "shop/web-1: pod shop/web-1: interface veth-web1: no such interface");
  (*r)->WithState([](ClusterView& v, Backend&) {
    // Neither a local endpoint nor a remote pod: not half applied.
    CHECK_FALSE(v.LocalEndpointOf("shop/web-1").has_value());
    CHECK_FALSE(v.policy().FindPod("shop", "web-1").has_value());
    CHECK(v.policy().FindPod("shop", "web-2").has_value());
  });

  {
    std::lock_guard<std::mutex> l(links.mu);
    links.links["veth-web1"] = LinkInfo{.ifindex = 41, .mac = {2, 0xee, 0, 0, 0, 41},
                                        .peer_ifindex = 2, .peer_netnsid = 0};
  }
  ReconcileReport second = (*r)->ReconcileNow();
  REQUIRE(second.status.ok());
  CHECK(second.waiting_pods.empty());
  (*r)->WithState([](ClusterView& v, Backend&) {
    std::optional<LocalEndpoint> ep = v.LocalEndpointOf("shop/web-1");
    REQUIRE(ep.has_value());
    CHECK(ep->ifindex == 41);
    CHECK(ep->host_mac == std::array<uint8_t, 6>{2, 0xee, 0, 0, 0, 41});
    CHECK(ep->mac == std::array<uint8_t, 6>{2, 0, 0, 0, 0, 0x11});
  });

  // The interface vanishes while the pod's labels change: the programmed pod
  // keeps its previous state rather than losing its endpoint.
  {
    std::lock_guard<std::mutex> l(links.mu);
    links.links.clear();
  }
  std::string relabeled = ClusterYaml();
  relabeled.replace(relabeled.find("labels: {app: web}"), 18, "labels: {app: new}");
  source.Set(relabeled);
  ReconcileReport third = (*r)->ReconcileNow();
  CHECK(third.waiting_pods.size() == 1);
  (*r)->WithState([](ClusterView& v, Backend&) {
    CHECK(v.LocalEndpointOf("shop/web-1").has_value());
    const std::optional<HeldPod> pod = v.policy().FindPod("shop", "web-1");
    REQUIRE(pod.has_value());
    CHECK(pod->labels->at("app") == "web");
  });
}

TEST_CASE("a snapshot that is not ready is reported and not applied") {
  CountingBackend backend;
  auto r = Reconciler::Create(
      {.node_name = "node-a"}, &backend,
      {.snapshot = []() -> absl::StatusOr<k8s::ClusterObjects> {
        return absl::UnavailableError("waiting for the first LIST of pods");
      }});
  REQUIRE(r.ok());
  ReconcileReport rep = (*r)->ReconcileNow();
  CHECK(absl::IsUnavailable(rep.status));
  CHECK(backend.applies == 0);
}

TEST_CASE("adoption runs once, before the first apply") {
  Source source;
  CountingBackend backend;
  int adopted = 0;
  auto r = Reconciler::Create({.node_name = "node-a"}, &backend,
                              {.snapshot = [&] { return source.Snapshot(); },
                               .adopt = [&](ClusterView&, Backend&) {
                                 ++adopted;
                                 CHECK(backend.applies == 0);
                                 return absl::OkStatus();
                               }});
  REQUIRE(r.ok());
  CHECK((*r)->ReconcileNow().adopted);
  CHECK_FALSE((*r)->ReconcileNow().adopted);
  CHECK(adopted == 1);
}

}  // namespace
}  // namespace dpv2::agent::daemon
