// The agent's change-set path (ApiObjects::TakeChanges -> Reconciler ->
// ClusterView::Update(ObjectChanges)) against the whole-snapshot path it
// replaces between resyncs: what a take reports, and that any sequence of
// watch events gives the same batches either way.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "../apiserver/fake_api_server.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "agent/daemon/api_objects.h"
#include "agent/daemon/pod_interfaces.h"
#include "agent/daemon/reconciler.h"
#include "test_cluster.h"

namespace dpv2::agent::daemon {
namespace {

using apiserver::Delta;
using apiserver::DeltaType;
using apiserver::ReflectorUpdate;
using apiserver::testing::Delivered;
using testing::CountingBackend;
using testing::FakeLinks;
using Json = nlohmann::json;

// Slots in the order of apiserver::WatchedResources().
enum Kind : size_t {
  kNamespaces,
  kNodes,
  kPods,
  kServices,
  kSlices,
  kPolicies,
  kAdminPolicies,
  kBaselines,
  kLoggings,
  kKinds
};

std::string App(int i) { return absl::StrCat("svc-", i % 4); }
std::string PodIp(int pod) { return absl::StrCat("10.244.", 1 + pod % 2, ".", 10 + pod); }
std::string NodeOfPod(int pod) { return pod % 2 == 0 ? "node-a" : "node-b"; }

// Object `index` of `kind` in version `variant`: small enough that random
// sequences revisit the same keys, varied enough that every field the view
// reads changes.
Json MakeObject(Kind kind, int index, int variant) {
  switch (kind) {
    case kNamespaces:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"$0",
          "labels":{"env":"e$1"}}})",
          index == 0 ? "shop" : "tools", variant % 2));
    case kNodes:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"$0",
          "labels":{"topology.kubernetes.io/zone":"zone-$1"}},
          "status":{"addresses":[{"type":"InternalIP","address":"192.168.10.$2"}]}})",
          index == 0 ? "node-a" : "node-b", variant % 2, 2 + index));
    case kPods: {
      // A third of the versions are pending: no address yet.
      const std::string ips = variant % 3 == 2 ? ""
                              : absl::Substitute(R"(,"podIP":"$0","podIPs":[{"ip":"$0"}])",
                                                 PodIp(index));
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod-$0","namespace":"shop",
          "labels":{"app":"$1"}},"spec":{"nodeName":"$2","containers":[{"name":"c",
          "ports":[{"name":"http","containerPort":$3}]}]},"status":{"phase":"Running"$4}})",
          index, App(index + variant), NodeOfPod(index), 8080 + variant % 2, ips));
    }
    case kServices:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"$0","namespace":"shop"},
          "spec":{"clusterIP":"10.96.0.$1","selector":{"app":"$0"},"sessionAffinity":"$2",
          "ports":[{"name":"http","port":$3,"targetPort":$4}]}})",
          App(index), 10 + index, variant % 4 == 3 ? "ClientIP" : "None", 80 + variant % 2,
          variant % 3 == 1 ? "\"http\"" : "8080"));
    case kSlices: {
      // Two slices per Service; a variant moves one to the next Service.
      const int service = index / 2 + (variant % 5 == 4 ? 1 : 0);
      std::string endpoints;
      for (int j = 0; j < 3; ++j) {
        const int pod = (index + j * 3) % 8;
        const bool down = ((variant >> j) & 1) == 1;
        absl::StrAppend(&endpoints, j == 0 ? "" : ",",
                        absl::Substitute(R"({"addresses":["$0"],"conditions":{"ready":$1,
                        "terminating":$2},"nodeName":"$3","targetRef":{"kind":"Pod",
                        "name":"pod-$4"}})",
                                         PodIp(pod), down ? "false" : "true",
                                         down ? "true" : "false", NodeOfPod(pod), pod));
      }
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{
          "name":"$0-$1","namespace":"shop","labels":{"kubernetes.io/service-name":"$0"}},
          "addressType":"IPv4","ports":[{"name":"http","port":$2,"protocol":"TCP"}],
          "endpoints":[$3]})",
          App(service), index, 8080 + variant % 2, endpoints));
    }
    case kPolicies:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{
          "name":"np-$0","namespace":"shop"},"spec":{"podSelector":{"matchLabels":{
          "app":"$1"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"$2"}}}],
          "ports":[{"protocol":"TCP","port":8080}]}]}})",
          index, App(index), App(index + variant)));
    case kAdminPolicies:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"policy.networking.k8s.io/v1alpha1","kind":"AdminNetworkPolicy",
          "metadata":{"name":"anp-$0"},"spec":{"priority":$1,"subject":{"namespaces":{}},
          "ingress":[{"name":"r","action":"$2","from":[{"pods":{"namespaceSelector":{},
          "podSelector":{"matchLabels":{"app":"$3"}}}}]}]}})",
          index, 10 + index, variant % 2 == 0 ? "Deny" : "Pass", App(variant)));
    case kBaselines:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"policy.networking.k8s.io/v1alpha1",
          "kind":"BaselineAdminNetworkPolicy","metadata":{"name":"default"},
          "spec":{"subject":{"namespaces":{}},"ingress":[{"name":"r","action":"$0",
          "from":[{"namespaces":{}}]}]}})",
          variant % 2 == 0 ? "Deny" : "Allow"));
    case kLoggings:
      return Json::parse(absl::Substitute(
          R"({"apiVersion":"networking.gke.io/v1alpha1","kind":"NetworkLogging",
          "metadata":{"name":"default"},"spec":{"cluster":{"allow":{"log":$0},
          "deny":{"log":$1}}}})",
          variant % 2 == 1 ? "true" : "false", variant % 4 >= 2 ? "true" : "false"));
    case kKinds:
      break;
  }
  return Json::object();
}

// How many distinct objects of each kind the random sequences use.
constexpr int kCount[kKinds] = {2, 2, 8, 4, 8, 3, 2, 1, 1};

// Every ChangeBatch vector as bytes (ABI records have zeroed padding), so a
// mismatch names the vector that differs.
template <typename T>
std::string Bytes(const std::vector<T>& records) {
  return std::string(reinterpret_cast<const char*>(records.data()), records.size() * sizeof(T));
}

std::map<std::string, std::string> BatchBytes(const ChangeBatch& b) {
  std::map<std::string, std::string> out = {
      {"backends_upsert", Bytes(b.backends_upsert)},
      {"source_ranges_upsert", Bytes(b.source_ranges_upsert)},
      {"endpoints_upsert", Bytes(b.endpoints_upsert)},
      {"ipcache_upsert", Bytes(b.ipcache_upsert)},
      {"policy_upsert", Bytes(b.policy_upsert)},
      {"services_upsert", Bytes(b.services_upsert)},
      {"services_delete", Bytes(b.services_delete)},
      {"policy_delete", Bytes(b.policy_delete)},
      {"ipcache_delete", Bytes(b.ipcache_delete)},
      {"endpoints_delete", Bytes(b.endpoints_delete)},
      {"source_ranges_delete", Bytes(b.source_ranges_delete)},
      {"tables_delete", Bytes(b.tables_delete)},
      {"backends_delete", Bytes(b.backends_delete)}};
  for (const LookupTable& t : b.tables_upsert) {
    out["tables_upsert"] += absl::StrCat(t.id, ":", Bytes(t.slots), ";");
  }
  return out;
}

// An agent's object path in process: watch events into ApiObjects, the
// reconcile loop (called directly) on a sim backend that records batches.
struct Pipeline {
  explicit Pipeline(bool change_sets) : objects(apiserver::WatchedResources()) {
    backend.on_apply = [this](const ChangeBatch& b) { batches.push_back(BatchBytes(b)); };
    ReconcilerOptions options{.snapshot = [this] { return objects.Snapshot(); }};
    if (change_sets) {
      options.take_changes = [this] { return objects.TakeChanges(); };
    }
    auto r = Reconciler::Create({.node_name = "node-a"}, &backend, std::move(options));
    REQUIRE(r.ok());
    reconciler = std::move(*r);
  }
  // The batch the reconcile applied (empty: nothing to apply).
  std::map<std::string, std::string> Reconcile(ReconcileReport* report) {
    batches.clear();
    *report = reconciler->ReconcileNow();
    return batches.empty() ? std::map<std::string, std::string>{} : batches.back();
  }

  ApiObjects objects;
  CountingBackend backend;
  std::vector<std::map<std::string, std::string>> batches;
  std::unique_ptr<Reconciler> reconciler;
};

// The API server as the reflectors see it: the latest object per key, and
// the updates a watch (or a relist) delivers for a change.
struct FakeCluster {
  std::map<std::string, Json> store[kKinds];

  ReflectorUpdate Put(Kind kind, Json object) {
    apiserver::JsonRef delivered = Delivered(object);
    const std::string key = apiserver::ObjectKey(*delivered);
    const bool known = store[kind].contains(key);
    store[kind][key] = std::move(object);
    return {
        .deltas = {{known ? DeltaType::kUpdated : DeltaType::kAdded, key, std::move(delivered)}},
        .synced = true};
  }
  // `key` by value: callers pass the store's own key, which erase frees.
  ReflectorUpdate Remove(Kind kind, std::string key) {
    Json last = store[kind].at(key);
    store[kind].erase(key);
    return {.deltas = {{DeltaType::kDeleted, key, Delivered(last)}}, .synced = true};
  }
};

// A version that does not decode (a kind that is no string): the reflector
// stores it, the decoder reports it, and the key's previous object goes away.
Json Broken(Json object) {
  object["kind"] = 5;
  return object;
}

TEST_CASE("change sets: a take names each changed key once, as it is now") {
  FakeCluster api;
  ApiObjects objects(apiserver::WatchedResources());
  for (size_t k = 0; k < kKinds; ++k) {
    objects.Apply(k, {.relisted = true, .synced = true});
  }
  REQUIRE(objects.Snapshot().ok());  // starts the record after the LIST
  absl::StatusOr<std::optional<ObjectChanges>> empty = objects.TakeChanges();
  REQUIRE(empty.ok());
  REQUIRE(empty->has_value());
  CHECK((*empty)->changed.object_count() == 0);

  // Modified twice, added then deleted, deleted, broken, singleton set.
  objects.Apply(kServices, api.Put(kServices, MakeObject(kServices, 0, 0)));
  objects.Apply(kServices, api.Put(kServices, MakeObject(kServices, 1, 0)));
  objects.Apply(kSlices, api.Put(kSlices, MakeObject(kSlices, 0, 0)));
  objects.Apply(kLoggings, api.Put(kLoggings, MakeObject(kLoggings, 0, 1)));
  REQUIRE(objects.TakeChanges().ok());
  objects.Apply(kServices, api.Put(kServices, MakeObject(kServices, 0, 1)));
  objects.Apply(kServices, api.Put(kServices, MakeObject(kServices, 0, 2)));
  objects.Apply(kPods, api.Put(kPods, MakeObject(kPods, 3, 0)));
  objects.Apply(kPods, api.Remove(kPods, "shop/pod-3"));
  objects.Apply(kSlices, api.Remove(kSlices, "shop/svc-0-0"));
  objects.Apply(kServices, api.Put(kServices, Broken(MakeObject(kServices, 1, 0))));
  objects.Apply(kBaselines, {.synced = true});  // a bookmark: nothing
  absl::StatusOr<std::optional<ObjectChanges>> taken = objects.TakeChanges();
  REQUIRE(taken.ok());
  REQUIRE(taken->has_value());
  const ObjectChanges& c = **taken;
  REQUIRE(c.changed.services.size() == 1);
  CHECK(c.changed.services.at("shop/svc-0").spec.ports.at(0).port == 80);
  CHECK(c.removed.services == std::vector<std::string>{"shop/svc-1"});
  CHECK(c.removed.pods == std::vector<std::string>{"shop/pod-3"});
  CHECK(c.removed.endpoint_slices == std::vector<std::string>{"shop/svc-0-0"});
  CHECK(c.changed.pods.empty());
  CHECK_FALSE(c.changed.network_logging.has_value());  // unchanged since the last take
  CHECK_FALSE(c.removed.network_logging);
  // Errors are those of every stored object: the broken Service's.
  REQUIRE(c.changed.errors.size() == 1);
  CHECK(c.changed.errors[0].find("API services") == 0);

  // Fixed: the key is changed again, the error gone; the logging removed.
  objects.Apply(kServices, api.Put(kServices, MakeObject(kServices, 1, 0)));
  objects.Apply(kLoggings, api.Remove(kLoggings, "default"));
  taken = objects.TakeChanges();
  REQUIRE(taken.ok());
  CHECK((*taken)->changed.services.contains("shop/svc-1"));
  CHECK((*taken)->changed.errors.empty());
  CHECK((*taken)->removed.network_logging);
  CHECK((*taken)->removed.services.empty());
}

TEST_CASE("change sets: a relist asks for a snapshot, which starts a new record") {
  ApiObjects objects(apiserver::WatchedResources());
  objects.Apply(
      kServices,
      {.deltas = {{DeltaType::kAdded, "shop/svc-0", Delivered(MakeObject(kServices, 0, 0))}},
       .relisted = true,
       .synced = true});
  absl::StatusOr<std::optional<ObjectChanges>> early = objects.TakeChanges();
  CHECK(absl::IsUnavailable(early.status()));
  for (size_t k = 0; k < kKinds; ++k) {
    if (k != kServices) {
      objects.Apply(k, {.relisted = true, .synced = true});
    }
  }
  absl::StatusOr<std::optional<ObjectChanges>> listed = objects.TakeChanges();
  REQUIRE(listed.ok());
  CHECK_FALSE(listed->has_value());  // the LIST itself is a relist
  REQUIRE(objects.Snapshot().ok());
  objects.Apply(
      kServices,
      {.deltas = {{DeltaType::kDeleted, "shop/svc-0", nullptr}}, .relisted = true, .synced = true});
  CHECK_FALSE(objects.TakeChanges()->has_value());
  absl::StatusOr<k8s::ClusterObjects> after = objects.Snapshot();
  REQUIRE(after.ok());
  CHECK(after->services.empty());
  absl::StatusOr<std::optional<ObjectChanges>> none = objects.TakeChanges();
  REQUIRE(none.ok());
  REQUIRE(none->has_value());
  CHECK((*none)->removed.services.empty());
}

TEST_CASE("change sets: any sequence of watch events gives the batches whole snapshots give") {
  const uint64_t seed = GENERATE(1, 2, 3, 4, 5, 6);
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  FakeCluster api;
  Pipeline whole(false);
  Pipeline changes(true);
  auto deliver = [&](Kind kind, const ReflectorUpdate& u) {
    whole.objects.Apply(kind, u);
    changes.objects.Apply(kind, u);
  };
  // The first LIST of everything: a bit of each kind.
  for (size_t k = 0; k < kKinds; ++k) {
    ReflectorUpdate list{.relisted = true, .synced = true};
    for (int i = 0; i < kCount[k]; i += 2) {
      list.deltas.push_back(api.Put(static_cast<Kind>(k), MakeObject(static_cast<Kind>(k), i, 0))
                                .deltas[0]);
    }
    deliver(static_cast<Kind>(k), list);
  }
  int change_set_reconciles = 0;
  for (int step = 0; step < 150; ++step) {
    CAPTURE(step);
    const Kind kind = static_cast<Kind>(pick(kKinds));
    const int action = pick(20);
    if (action < 11) {  // add or modify; now and then a version that does not decode
      Json object = MakeObject(kind, pick(kCount[kind]), pick(16));
      deliver(kind, api.Put(kind, pick(8) == 0 ? Broken(object) : object));
    } else if (action < 15) {  // delete
      if (!api.store[kind].empty()) {
        auto it = std::next(api.store[kind].begin(), pick(api.store[kind].size()));
        deliver(kind, api.Remove(kind, it->first));
      }
    } else if (action < 17) {  // relist after 410 Gone: some objects went, some changed
      ReflectorUpdate relist{.relisted = true, .synced = true};
      for (const auto& [key, object] : std::map<std::string, Json>(api.store[kind])) {
        if (pick(3) == 0) {
          relist.deltas.push_back(api.Remove(kind, key).deltas[0]);
        }
      }
      for (int i = pick(3); i > 0; --i) {
        relist.deltas.push_back(
            api.Put(kind, MakeObject(kind, pick(kCount[kind]), pick(16))).deltas[0]);
      }
      deliver(kind, relist);
    } else if (action < 18) {  // a bookmark
      deliver(kind, {.synced = true});
    }  // else: no event, a reconcile with nothing new
    if (pick(3) == 0) {
      continue;  // coalesced with the next events
    }
    ReconcileReport w, c;
    const auto whole_batch = whole.Reconcile(&w);
    const auto changes_batch = changes.Reconcile(&c);
    REQUIRE(w.status.ok());
    REQUIRE(c.status.ok());
    change_set_reconciles += c.change_set ? 1 : 0;
    CHECK_FALSE(w.change_set);
    CHECK(c.problems == w.problems);
    CHECK(changes_batch == whole_batch);
  }
  // Most reconciles after the first went the change-set way.
  CHECK(change_set_reconciles > 50);
  absl::StatusOr<ChangeBatch> w = whole.backend.DumpState();
  absl::StatusOr<ChangeBatch> c = changes.backend.DumpState();
  REQUIRE(w.ok());
  REQUIRE(c.ok());
  CHECK(BatchBytes(*c) == BatchBytes(*w));
  CHECK(w->size() > 0);
}

TEST_CASE("change sets: one endpoint change reconciles that Service only") {
  FakeCluster api;
  Pipeline p(true);
  for (size_t k = 0; k < kKinds; ++k) {
    ReflectorUpdate list{.relisted = true, .synced = true};
    for (int i = 0; i < kCount[k]; ++i) {
      list.deltas.push_back(
          api.Put(static_cast<Kind>(k), MakeObject(static_cast<Kind>(k), i, 0)).deltas[0]);
    }
    p.objects.Apply(k, list);
  }
  ReconcileReport first;
  p.Reconcile(&first);
  REQUIRE(first.status.ok());
  CHECK_FALSE(first.change_set);
  const uint64_t decoded = p.objects.decoded();
  // One endpoint of svc-1's first slice stops being ready.
  p.objects.Apply(kSlices, api.Put(kSlices, MakeObject(kSlices, 2, 1)));
  ReconcileReport one;
  const auto batch = p.Reconcile(&one);
  REQUIRE(one.status.ok());
  CHECK(one.change_set);
  CHECK(p.objects.decoded() == decoded + 1);
  // The Service's backends and its lookup table, nothing else.
  CHECK(batch.contains("tables_upsert"));
  CHECK_FALSE(batch.at("backends_upsert").empty());
  CHECK(batch.at("ipcache_upsert").empty());
  CHECK(batch.at("policy_upsert").empty());
  CHECK(batch.at("endpoints_upsert").empty());
  ReconcileReport again;
  CHECK(p.Reconcile(&again).empty());
  CHECK(again.change_set);
  CHECK(again.changes == 0);
}

TEST_CASE("change sets: a local pod held back is taken from whole snapshots until it resolves") {
  FakeCluster api;
  ApiObjects objects(apiserver::WatchedResources());
  CountingBackend backend;
  FakeLinks links;
  auto r = Reconciler::Create(
      {.node_name = "node-a"}, &backend,
      {.snapshot = [&] { return objects.Snapshot(); },
       .take_changes = [&] { return objects.TakeChanges(); },
       .resolve_endpoint = [&](const k8s::PodObject& pod) {
         return ResolvePodEndpoint(pod, links);
       }});
  REQUIRE(r.ok());
  const LinkInfo kVeth{
      .ifindex = 41, .mac = {2, 0xee, 0, 0, 0, 41}, .peer_ifindex = 2, .peer_netnsid = 0};
  auto local_pod = [](int variant) {
    Json pod = MakeObject(kPods, 0, variant);  // pod-0 runs on node-a
    pod["metadata"]["annotations"] = {{"dpv2.dev/host-interface", "veth-pod0"}};
    return pod;
  };
  for (size_t k = 0; k < kKinds; ++k) {
    ReflectorUpdate list{.relisted = true, .synced = true};
    if (k == kNodes) {
      list.deltas = api.Put(kNodes, MakeObject(kNodes, 0, 0)).deltas;
    } else if (k == kPods) {
      list.deltas = api.Put(kPods, local_pod(0)).deltas;
    }
    objects.Apply(k, list);
  }
  ReconcileReport first = (*r)->ReconcileNow();
  REQUIRE(first.status.ok());
  CHECK(first.waiting_pods.size() == 1);
  // Still missing: the retry takes a whole snapshot again.
  ReconcileReport second = (*r)->ReconcileNow();
  CHECK_FALSE(second.change_set);
  CHECK(second.waiting_pods.size() == 1);

  links.links["veth-pod0"] = kVeth;
  ReconcileReport third = (*r)->ReconcileNow();
  CHECK_FALSE(third.change_set);
  CHECK(third.waiting_pods.empty());
  (*r)->WithState([](ClusterView& v, Backend&) {
    REQUIRE(v.LocalEndpointOf("shop/pod-0").has_value());
    CHECK(v.LocalEndpointOf("shop/pod-0")->ifindex == 41);
  });

  // The interface vanishes while the pod is relabelled: the change set keeps
  // the applied version and endpoint, and the next reconcile is whole again.
  links.links.clear();
  objects.Apply(kPods, api.Put(kPods, local_pod(1)));
  ReconcileReport fourth = (*r)->ReconcileNow();
  CHECK(fourth.change_set);
  CHECK(fourth.waiting_pods.size() == 1);
  CHECK(fourth.changes == 0);
  (*r)->WithState([](ClusterView& v, Backend&) {
    CHECK(v.LocalEndpointOf("shop/pod-0")->ifindex == 41);
    CHECK(v.policy().FindPod("shop", "pod-0")->labels->at("app") == App(0));
  });
  ReconcileReport fifth = (*r)->ReconcileNow();
  CHECK_FALSE(fifth.change_set);

  // A new local pod that never resolved is left out of a change set whole.
  links.links["veth-pod0"] = kVeth;
  REQUIRE((*r)->ReconcileNow().waiting_pods.empty());
  Json pod2 = MakeObject(kPods, 2, 0);
  pod2["metadata"]["annotations"] = {{"dpv2.dev/host-interface", "veth-pod2"}};
  objects.Apply(kPods, api.Put(kPods, pod2));
  ReconcileReport sixth = (*r)->ReconcileNow();
  CHECK(sixth.change_set);
  CHECK(sixth.waiting_pods.size() == 1);
  (*r)->WithState([](ClusterView& v, Backend&) {
    CHECK_FALSE(v.policy().FindPod("shop", "pod-2").has_value());
    CHECK(v.policy().FindPod("shop", "pod-0")->labels->at("app") == App(1));
  });
}

}  // namespace
}  // namespace dpv2::agent::daemon
