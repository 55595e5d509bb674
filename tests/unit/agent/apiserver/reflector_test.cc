// Reflector against the fake API server: list, pagination, watch events,
// bookmarks, disconnects, 410 Gone (HTTP and ERROR event), stalls, backoff,
// malformed input and out-of-order EndpointSlices.
#include "agent/apiserver/reflector.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/apiserver/http_transport.h"
#include "fake_api_server.h"
#include "simdjson.h"

namespace dpv2::agent::apiserver {
namespace {

using testing::Bookmark;
using testing::Delivered;
using testing::ErrorEvent;
using testing::Event;
using testing::FakeApiServer;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::ListOf;
using testing::Object;
using testing::StatusResponse;
using testing::Stream;
using testing::Tree;

ClientConfig ConfigFor(const FakeApiServer& server) {
  return ClientConfig{.server = {.tls = false,
                                 .host = "127.0.0.1",
                                 .port = server.port()},
                      .bearer_token = "test-token"};
}

// Short timings so every case ends in well under a second or two.
ReflectorOptions FastOptions(ApiResource resource) {
  return ReflectorOptions{
      .resource = std::move(resource),
      .watch_timeout = absl::Seconds(30),
      .stall_timeout = absl::Seconds(5),
      .connect_timeout = absl::Seconds(2),
      .list_timeout = absl::Seconds(2),
      .backoff = {.initial = absl::Milliseconds(10),
                  .max = absl::Milliseconds(50),
                  .multiplier = 2.0,
                  .jitter = 0.2},
      .seed = 7};
}

bool WaitUntil(const std::function<bool()>& condition,
               std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

// Records every update the reflector delivers.
struct Recorder {
  std::mutex mu;
  std::vector<ReflectorUpdate> updates;

  ReflectorHandler Handler() {
    return [this](const ReflectorUpdate& update) {
      std::lock_guard<std::mutex> lock(mu);
      updates.push_back(update);
    };
  }
  std::vector<ReflectorUpdate> Updates() {
    std::lock_guard<std::mutex> lock(mu);
    return updates;
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return updates.size();
  }
  // The objects as a handler that keeps them sees them: every delta replayed.
  std::map<std::string, nlohmann::json> Store() {
    std::lock_guard<std::mutex> lock(mu);
    std::map<std::string, nlohmann::json> store;
    for (const ReflectorUpdate& u : updates) {
      for (const Delta& d : u.deltas) {
        if (d.type == DeltaType::kDeleted) {
          store.erase(d.key);
        } else {
          store[d.key] = Tree(d.object);
        }
      }
    }
    return store;
  }
};

std::vector<FakeRequest> Watches(const FakeApiServer& server) {
  std::vector<FakeRequest> out;
  for (const FakeRequest& r : server.Requests()) {
    if (r.IsWatch()) out.push_back(r);
  }
  return out;
}

std::vector<FakeRequest> Lists(const FakeApiServer& server) {
  std::vector<FakeRequest> out;
  for (const FakeRequest& r : server.Requests()) {
    if (!r.IsWatch()) out.push_back(r);
  }
  return out;
}

nlohmann::json Svc(const std::string& name, const std::string& version,
                   int port = 80) {
  return Object("Service", "default", name, version,
                {{"ports", {{{"port", port}}}}});
}

TEST_CASE("initial list and watch events reach the store and the handler",
          "[reflector]") {
  FakeApiServer server([](const FakeRequest& r) -> FakeResponse {
    if (r.path != "/api/v1/services") return StatusResponse(404, "NotFound");
    if (!r.IsWatch()) return ListOf({Svc("a", "5"), Svc("b", "6")}, "10");
    if (r.Query("resourceVersion") != "10" ||
        r.Query("allowWatchBookmarks") != "true") {
      return StatusResponse(400, "BadRequest");
    }
    return Stream({Event("ADDED", Svc("c", "11")),
                   Event("MODIFIED", Svc("a", "12", 8080)),
                   Event("DELETED", Svc("b", "13"))});
  });
  Recorder recorder;
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      recorder.Handler());
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.State().resource_version == "13"; }));
  reflector.Stop();

  auto store = recorder.Store();
  REQUIRE(store.size() == 2);
  CHECK(store.at("default/a")["spec"]["ports"][0]["port"] == 8080);
  CHECK(store.contains("default/c"));
  // Objects as sent: c from its ADDED event with its kind, a from its
  // MODIFIED one without apiVersion (the decoder takes the resource's).
  CHECK(store.at("default/c")["kind"] == "Service");
  CHECK(!store.at("default/a").contains("apiVersion"));

  auto updates = recorder.Updates();
  REQUIRE(updates.size() == 4);
  CHECK(updates[0].relisted);
  CHECK(updates[0].synced);
  REQUIRE(updates[0].deltas.size() == 2);
  CHECK(updates[0].deltas[0].type == DeltaType::kAdded);
  // As sent: list items name no kind (the decoder takes the resource's).
  CHECK(!Tree(updates[0].deltas[0].object).contains("kind"));
  CHECK(updates[1].deltas[0].type == DeltaType::kAdded);
  CHECK(updates[1].deltas[0].key == "default/c");
  CHECK(updates[2].deltas[0].type == DeltaType::kUpdated);
  CHECK(updates[3].deltas[0].type == DeltaType::kDeleted);
  CHECK(updates[3].deltas[0].key == "default/b");

  WatchState state = reflector.State();
  CHECK(state.synced);
  CHECK(state.lists == 1);
  CHECK(state.relists == 0);
  CHECK(state.events == 3);
  CHECK(state.last_event_time != absl::InfinitePast());
  auto requests = server.Requests();
  REQUIRE(!requests.empty());
  CHECK(requests[0].authorization == "Bearer test-token");
  CHECK(requests[0].Query("limit") == "500");
  auto watches = Watches(server);
  REQUIRE(watches.size() == 1);
  CHECK(watches[0].Query("timeoutSeconds") == "30");
}

TEST_CASE("a paginated list follows continue tokens and syncs once",
          "[reflector]") {
  FakeApiServer server([](const FakeRequest& r) -> FakeResponse {
    if (r.IsWatch()) return Stream({});
    if (r.Query("limit") != "2") return StatusResponse(400, "BadRequest");
    std::string token = r.Query("continue");
    if (token.empty()) {
      return ListOf({Svc("a", "1"), Svc("b", "2")}, "50", "tok/1=");
    }
    if (token == "tok/1=") {
      return ListOf({Svc("c", "3"), Svc("d", "4")}, "50", "tok2");
    }
    if (token == "tok2") return ListOf({Svc("e", "5")}, "50");
    return StatusResponse(400, "BadRequest");
  });
  Recorder recorder;
  ReflectorOptions options = FastOptions(ServicesResource());
  options.page_limit = 2;
  Reflector reflector(ConfigFor(server), options, recorder.Handler());
  reflector.Start();
  REQUIRE(WaitUntil([&] { return !Watches(server).empty(); }));
  reflector.Stop();

  CHECK(reflector.Keys().size() == 5);
  CHECK(recorder.Store().size() == 5);
  CHECK(Lists(server).size() == 3);
  auto updates = recorder.Updates();
  REQUIRE(updates.size() == 1);  // one consistent snapshot, not per page
  CHECK(updates[0].deltas.size() == 5);
  CHECK(Watches(server)[0].Query("resourceVersion") == "50");
}

TEST_CASE("an expired continue token restarts the list from the beginning",
          "[reflector]") {
  int expired = 0;
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (r.IsWatch()) return Stream({});
    std::string token = r.Query("continue");
    if (token.empty()) return ListOf({Svc("a", "1")}, "60", "t1");
    if (expired++ == 0) return StatusResponse(410, "Expired");
    return ListOf({Svc("b", "2")}, "60");
  });
  ReflectorOptions options = FastOptions(ServicesResource());
  options.page_limit = 1;
  Reflector reflector(ConfigFor(server), options, nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return !Watches(server).empty(); }));
  reflector.Stop();
  CHECK(Lists(server).size() == 4);  // a, 410, a again, b
  CHECK(reflector.Keys() == std::vector<std::string>{"default/a", "default/b"});
}

TEST_CASE("a bookmark advances the resourceVersion without a delta",
          "[reflector]") {
  FakeApiServer server([](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) return ListOf({Svc("a", "5")}, "10");
    return Stream({Bookmark("20")});
  });
  Recorder recorder;
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      recorder.Handler());
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.State().resource_version == "20"; }));
  reflector.Stop();
  CHECK(recorder.Count() == 1);  // the list only
  CHECK(reflector.State().events == 0);
}

TEST_CASE("a dropped watch resumes from the last resourceVersion without relisting",
          "[reflector]") {
  int watches = 0;
  bool wrong_version = false;
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) return ListOf({}, "10");
    ++watches;
    if (watches == 1) {
      return Stream({Event("ADDED", Svc("x", "11")), Bookmark("15")},
                    FakeResponse::End::kDrop);
    }
    if (r.Query("resourceVersion") != "15") {
      wrong_version = true;
      return StatusResponse(410, "Expired");
    }
    return Stream({Event("ADDED", Svc("y", "16"))});
  });
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.Contains("default/y"); }));
  reflector.Stop();
  CHECK_FALSE(wrong_version);
  CHECK(reflector.Contains("default/x"));
  WatchState state = reflector.State();
  CHECK(state.lists == 1);
  CHECK(state.relists == 0);
  CHECK(state.reconnects >= 1);
  CHECK(state.errors >= 1);  // the connection closed mid-body
}

TEST_CASE("a watch that ends cleanly (timeoutSeconds) is resumed",
          "[reflector]") {
  int watches = 0;
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) return ListOf({}, "10");
    ++watches;
    if (watches == 1) {
      return Stream({Event("ADDED", Svc("x", "11"))},
                    FakeResponse::End::kFinish);
    }
    return Stream({});
  });
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return Watches(server).size() >= 2; }));
  reflector.Stop();
  CHECK(Watches(server)[1].Query("resourceVersion") == "11");
  CHECK(reflector.State().errors == 0);
  CHECK(reflector.State().relists == 0);
}

TEST_CASE("HTTP 410 on the watch relists and the store converges",
          "[reflector]") {
  int lists = 0;
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) {
      ++lists;
      if (lists == 1) {
        return ListOf({Svc("a", "1"), Svc("b", "2"), Svc("c", "3")}, "10");
      }
      return ListOf({Svc("a", "21", 9090), Svc("c", "3"), Svc("d", "22")},
                    "30");
    }
    if (r.Query("resourceVersion") == "10") {
      return StatusResponse(410, "Expired");
    }
    return Stream({});
  });
  Recorder recorder;
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      recorder.Handler());
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.State().resource_version == "30"; }));
  REQUIRE(WaitUntil([&] { return Watches(server).size() >= 2; }));
  reflector.Stop();

  auto store = recorder.Store();
  CHECK(reflector.Keys().size() == 3);
  REQUIRE(store.size() == 3);
  CHECK(!store.contains("default/b"));
  CHECK(store.at("default/a")["spec"]["ports"][0]["port"] == 9090);
  auto updates = recorder.Updates();
  REQUIRE(updates.size() == 2);
  CHECK(updates[1].relisted);
  int added = 0, updated = 0, deleted = 0;
  for (const Delta& delta : updates[1].deltas) {
    if (delta.type == DeltaType::kAdded) {
      ++added;
      CHECK(delta.key == "default/d");
    }
    if (delta.type == DeltaType::kUpdated) {
      ++updated;
      CHECK(delta.key == "default/a");
    }
    if (delta.type == DeltaType::kDeleted) {
      ++deleted;
      CHECK(delta.key == "default/b");
    }
  }
  CHECK(added == 1);
  CHECK(updated == 1);  // c did not change and is not reported
  CHECK(deleted == 1);
  CHECK(reflector.State().relists == 1);
  CHECK(reflector.State().lists == 2);
  CHECK(Watches(server)[1].Query("resourceVersion") == "30");
}

TEST_CASE("an ERROR event with code 410 relists", "[reflector]") {
  int lists = 0;
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) {
      ++lists;
      return lists == 1 ? ListOf({Svc("a", "1")}, "10")
                        : ListOf({Svc("e", "11"), Svc("z", "40")}, "40");
    }
    if (r.Query("resourceVersion") == "10") {
      return Stream({Event("ADDED", Svc("e", "11")), ErrorEvent(410, "Expired")});
    }
    return Stream({});
  });
  Recorder recorder;
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      recorder.Handler());
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.State().resource_version == "40"; }));
  reflector.Stop();
  auto store = recorder.Store();
  CHECK(reflector.Keys() == std::vector<std::string>{"default/e", "default/z"});
  REQUIRE(store.size() == 2);
  CHECK(store.contains("default/z"));
  CHECK(reflector.State().relists == 1);
  auto updates = recorder.Updates();
  REQUIRE(updates.size() == 3);  // list, ADDED e, relist diff
  // -a, +z; e is listed as its event sent it, only without its kind: the
  // same fingerprint, no change.
  CHECK(updates[2].deltas.size() == 2);
  // The store keeps no copy: a relist's deletion names the object only.
  const Delta& gone = updates[2].deltas[0];
  CHECK(gone.type == DeltaType::kDeleted);
  CHECK(gone.key == "default/a");
  CHECK(gone.object == nullptr);
}

TEST_CASE("an ERROR event other than 410 reconnects without relisting",
          "[reflector]") {
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) return ListOf({}, "10");
    return Stream({ErrorEvent(500, "InternalError")},
                  FakeResponse::End::kFinish);
  });
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return Watches(server).size() >= 3; }));
  reflector.Stop();
  CHECK(reflector.State().relists == 0);
  CHECK(reflector.State().errors >= 2);
  CHECK(Watches(server)[2].Query("resourceVersion") == "10");
}

TEST_CASE("a stalled watch is detected and reconnected within the bound",
          "[reflector]") {
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) return ListOf({}, "10");
    if (Watches(server).size() == 1) return Stream({});  // silent
    return Stream({Event("ADDED", Svc("late", "11"))});
  });
  ReflectorOptions options = FastOptions(ServicesResource());
  options.stall_timeout = absl::Milliseconds(300);
  Reflector reflector(ConfigFor(server), options, nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.Contains("default/late"); }));
  reflector.Stop();
  auto watches = Watches(server);
  REQUIRE(watches.size() >= 2);
  auto gap = watches[1].arrival - watches[0].arrival;
  CHECK(gap >= std::chrono::milliseconds(290));
  // stall_timeout + the largest backoff + scheduling slack.
  CHECK(gap < std::chrono::milliseconds(1500));
  CHECK(watches[1].Query("resourceVersion") == "10");
  CHECK(reflector.State().stalls >= 1);
  CHECK(reflector.State().relists == 0);
}

TEST_CASE("backoff grows exponentially, stays within jitter, and is capped",
          "[reflector][backoff]") {
  Backoff backoff({.initial = absl::Milliseconds(100),
                   .max = absl::Seconds(1),
                   .multiplier = 2.0,
                   .jitter = 0.2},
                  42);
  absl::Duration expected = absl::Milliseconds(100);
  for (int i = 0; i < 100; ++i) {
    absl::Duration delay = backoff.Next();
    CHECK(delay <= expected);
    CHECK(delay >= expected * 0.8);
    expected = std::min(expected * 2, absl::Seconds(1));
  }
  backoff.Reset();
  absl::Duration first = backoff.Next();
  CHECK(first <= absl::Milliseconds(100));
  CHECK(first >= absl::Milliseconds(80));
}

TEST_CASE("failing lists are retried with growing, bounded delays",
          "[reflector][backoff]") {
  FakeApiServer server([](const FakeRequest&) {
    return StatusResponse(500, "InternalError");
  });
  ReflectorOptions options = FastOptions(ServicesResource());
  options.backoff = {.initial = absl::Milliseconds(20),
                     .max = absl::Milliseconds(80),
                     .multiplier = 2.0,
                     .jitter = 0.0};
  Reflector reflector(ConfigFor(server), options, nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return server.Requests().size() >= 6; }));
  reflector.Stop();
  auto requests = server.Requests();
  using std::chrono::milliseconds;
  const int expected_ms[] = {20, 40, 80, 80, 80};
  for (int i = 0; i < 5; ++i) {
    auto gap = requests[i + 1].arrival - requests[i].arrival;
    CHECK(gap >= milliseconds(expected_ms[i] - 2));
    CHECK(gap < milliseconds(expected_ms[i] + 500));
  }
  WatchState state = reflector.State();
  CHECK(state.errors >= 6);
  CHECK_FALSE(state.synced);
  CHECK(state.last_error.find("HTTP 500") != std::string::npos);
}

TEST_CASE("malformed list bodies and watch lines are errors, then recovery",
          "[reflector][malformed]") {
  int lists = 0;
  int watches = 0;
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) {
      ++lists;
      if (lists == 1) return FakeResponse{.body = "{not json"};
      if (lists == 2) return FakeResponse{.body = R"({"items":{}})"};
      if (lists == 3) {
        return FakeResponse{.body = R"({"metadata":{},"items":[]})"};
      }
      if (lists == 4) {
        return FakeResponse{
            .body = R"({"metadata":{"resourceVersion":"5"},"items":[{"metadata":{}}]})"};
      }
      return ListOf({}, "10");
    }
    ++watches;
    if (watches == 1) {
      return Stream({"{garbage", Event("ADDED", Svc("never", "11"))});
    }
    if (watches == 2) {
      return Stream({R"({"type":"ADDED","object":{"metadata":{}}})"});
    }
    if (watches == 3) return Stream({Event("WEIRD", Svc("w", "12"))});
    return Stream({Event("ADDED", Svc("ok", "13"))});
  });
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.Contains("default/ok"); }));
  reflector.Stop();
  CHECK_FALSE(reflector.Contains("default/never"));
  CHECK_FALSE(reflector.Contains("default/w"));
  WatchState state = reflector.State();
  CHECK(state.errors == 7);
  CHECK(state.lists == 1);
  CHECK(state.relists == 0);
  for (const FakeRequest& w : Watches(server)) {
    CHECK(w.Query("resourceVersion") == "10");
  }
}

TEST_CASE("a LIST page parses into typed, keyed, fingerprinted items",
          "[reflector][list-page]") {
  const std::string body = R"({"kind":"EndpointSliceList","apiVersion":"v1",
      "metadata":{"resourceVersion":"42","continue":"next"},
      "items":[{"metadata":{"namespace":"shop","name":"web-1"},"addressType":"IPv4"},
               {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1beta9",
                "metadata":{"name":"cluster-scoped"}}]})";
  absl::StatusOr<ListPage> page =
      ParseListPage(body, EndpointSlicesResource(), "LIST x");
  REQUIRE(page.ok());
  CHECK(page->resource_version == "42");
  CHECK(page->continue_token == "next");
  REQUIRE(page->items.size() == 2);
  const ListItem& first = page->items[0];
  CHECK(first.key == "shop/web-1");
  // Items as sent, type meta absent or not.
  CHECK(Tree(first.object) ==
        nlohmann::json::parse(R"({"metadata":{"namespace":"shop","name":"web-1"},
                                  "addressType":"IPv4"})"));
  CHECK(first.fingerprint == Fingerprint(*first.object, EndpointSlicesResource()));
  CHECK(page->items[1].key == "cluster-scoped");
  CHECK(Tree(page->items[1].object)["apiVersion"] == "discovery.k8s.io/v1beta9");
  CHECK(page->items[1].fingerprint != first.fingerprint);
  // The fingerprint counts absent type meta as the resource's, and members
  // in any order alike: a watch event of the same object has the same one.
  CHECK(first.fingerprint ==
        Fingerprint(*Delivered(nlohmann::json::parse(
                        R"({"addressType":"IPv4","apiVersion":"discovery.k8s.io/v1",
                            "metadata":{"name":"web-1","namespace":"shop"},
                            "kind":"EndpointSlice"})")),
                    EndpointSlicesResource()));
  CHECK(first.fingerprint != Fingerprint(*Delivered(nlohmann::json::parse(
                                             R"({"metadata":{"namespace":"shop","name":"web-1"},
                            "addressType":"IPv6"})")),
                                         EndpointSlicesResource()));
  CHECK(first.fingerprint != Fingerprint(*first.object, ServicesResource()));

  const ApiResource services = ServicesResource();
  CHECK(ParseListPage(R"({"items":null})", services, "LIST x")->items.empty());
  absl::StatusOr<ListPage> bad = ParseListPage("[1]", services, "LIST x");
  CHECK(bad.status().message() == "LIST x: response is not a JSON object");
  bad = ParseListPage(R"({"items":[)", services, "LIST x");
  CHECK(bad.status().message() == "LIST x: response is not a JSON object");
  bad = ParseListPage(R"({"items":{}})", services, "LIST x");
  CHECK(bad.status().message() == "LIST x: items: not a list");
  bad = ParseListPage(R"({"items":[{"metadata":{"namespace":"a"}}]})", services,
                      "LIST x");
  CHECK(bad.status().message() == "LIST x: items[]: metadata.name missing");
  CHECK(bad.status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("an EndpointSlice modified before its Service exists is stored",
          "[reflector]") {
  nlohmann::json slice = Object("EndpointSlice", "shop", "web-abc", "11");
  slice["metadata"]["labels"] = {{"kubernetes.io/service-name", "web"}};
  slice["addressType"] = "IPv4";
  slice["endpoints"] = {{{"addresses", {"10.0.0.5"}}}};
  FakeApiServer server([&](const FakeRequest& r) -> FakeResponse {
    if (r.path == "/apis/discovery.k8s.io/v1/endpointslices") {
      if (!r.IsWatch()) return ListOf({}, "10");
      return Stream({Event("MODIFIED", slice)});
    }
    if (!r.IsWatch()) return ListOf({}, "10");  // no Services yet
    return Stream({});
  });
  Recorder recorder;
  Reflector slices(ConfigFor(server), FastOptions(EndpointSlicesResource()),
                   recorder.Handler());
  slices.Start();
  REQUIRE(WaitUntil([&] { return slices.Contains("shop/web-abc"); }));
  slices.Stop();
  auto stored = recorder.Store().at("shop/web-abc");
  CHECK(stored == slice);
  auto updates = recorder.Updates();
  REQUIRE(updates.size() == 2);
  // MODIFIED of an object never seen is an addition to the store.
  CHECK(updates[1].deltas[0].type == DeltaType::kAdded);
}

TEST_CASE("resources map to their REST paths", "[resources]") {
  CHECK(ServicesResource().Path() == "/api/v1/services");
  CHECK(EndpointSlicesResource().Path() ==
        "/apis/discovery.k8s.io/v1/endpointslices");
  CHECK(AdminNetworkPoliciesResource().Path() ==
        "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies");
  CHECK(NetworkLoggingsResource().ApiVersion() == "networking.gke.io/v1alpha1");
  CHECK(WatchedResources().size() == 9);
  CHECK(ObjectKey(*Delivered(Object("Node", "", "n1", "1"))) == "n1");
  CHECK(ObjectKey(*Delivered(Object("Pod", "shop", "p", "1"))) == "shop/p");
  CHECK(ObjectKey(*Delivered(nlohmann::json::object())).empty());
  CHECK(ObjectKey(*Delivered({{"metadata", {{"name", 5}}}})).empty());
}

TEST_CASE("ParseJson parses a text into a document its reference keeps", "[reflector]") {
  JsonRef root;
  {
    const std::string text = R"({"a":[1,"x"]})";
    absl::StatusOr<JsonRef> parsed = ParseJson(text);
    REQUIRE(parsed.ok());
    root = *parsed;
  }  // the text and the parse result are gone
  CHECK(Tree(root) == nlohmann::json::parse(R"({"a":[1,"x"]})"));
  absl::StatusOr<JsonRef> bad = ParseJson("{garbage");
  CHECK(absl::IsInvalidArgument(bad.status()));
  CHECK(!bad.status().message().empty());
}

TEST_CASE("the transport reports a refused connection and a TLS mismatch",
          "[transport]") {
  uint16_t closed_port;
  {
    FakeApiServer probe([](const FakeRequest&) { return ListOf({}, "1"); });
    closed_port = probe.port();
  }
  ClientConfig config{.server = {.tls = false, .host = "127.0.0.1",
                                 .port = closed_port}};
  HttpTransport refused(config);
  auto status = refused.Get("/api/v1/pods", {.connect = absl::Seconds(1),
                                             .idle = absl::Seconds(1)},
                            [](int, absl::string_view) { return true; });
  REQUIRE_FALSE(status.ok());
  CHECK(absl::IsUnavailable(status.status()));

  // TLS to a plain-HTTP server fails the handshake instead of hanging.
  FakeApiServer server([](const FakeRequest&) { return ListOf({}, "1"); });
  ClientConfig tls{.server = {.tls = true, .host = "127.0.0.1",
                              .port = server.port()},
                   .insecure_skip_tls_verify = true};
  HttpTransport transport(tls);
  auto tls_status = transport.Get(
      "/api/v1/pods", {.connect = absl::Seconds(2), .idle = absl::Seconds(2)},
      [](int, absl::string_view) { return true; });
  REQUIRE_FALSE(tls_status.ok());
  CHECK(tls_status.status().message().find("TLS handshake") !=
        std::string::npos);
}

TEST_CASE("stopping a reflector blocked in a silent watch returns promptly",
          "[reflector]") {
  FakeApiServer server([](const FakeRequest& r) -> FakeResponse {
    if (!r.IsWatch()) return ListOf({}, "1");
    return Stream({});
  });
  Reflector reflector(ConfigFor(server), FastOptions(ServicesResource()),
                      nullptr);
  reflector.Start();
  REQUIRE(WaitUntil([&] { return reflector.State().connected; }));
  auto start = std::chrono::steady_clock::now();
  reflector.Stop();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  CHECK_FALSE(reflector.State().connected);
}

}  // namespace
}  // namespace dpv2::agent::apiserver
