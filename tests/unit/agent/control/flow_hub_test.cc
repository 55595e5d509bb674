// FlowHub and flow records: enrichment from the cluster view, `hubble
// observe`-like filter semantics, and a hub whose Publish never waits for a
// slow or departed subscriber.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/control/flow_hub.h"
#include "control_test_cluster.h"

namespace dpv2::agent {
namespace {

using testing::Event;
using testing::MakeClusterView;

FlowRecord Record(const std::string& src_pod, const std::string& dst_pod,
                  const std::string& verdict = "FORWARDED", uint16_t sport = 40000,
                  uint16_t dport = 8080) {
  FlowRecord r;
  r.event = Event("10.0.1.1", sport, "10.0.1.2", dport);
  r.time = absl::Now();
  r.source_pod = src_pod;
  r.destination_pod = dst_pod;
  r.source_namespace = src_pod.substr(0, src_pod.find('/'));
  r.destination_namespace = dst_pod.substr(0, dst_pod.find('/'));
  r.verdict = verdict;
  return r;
}

// Waits (bounded) until `done` holds.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 500 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

TEST_CASE("EnrichFlow names the pods on both sides, the Service of the event and the verdict") {
  ClusterView view = MakeClusterView();
  uint32_t web_id = 0;
  for (const FrontendView& f : view.lb().Frontends()) {
    if (f.service == "shop/web") {
      web_id = f.service_id;
    }
  }
  REQUIRE(web_id != 0);
  FlowEvent e = Event("10.0.1.1", 40000, "10.0.2.3", 8080, DPV2_EVENT_TRACE,
                      DPV2_EV_F_NEW | DPV2_EV_F_TRANSLATED);
  e.orig_dst = *IpAddr::Parse("10.96.0.10");
  e.orig_dport = 80;
  e.service_id = web_id;
  FlowRecord r = EnrichFlow(e, view);
  CHECK(r.source_pod == "x/a");
  CHECK(r.source_namespace == "x");
  CHECK(r.destination_pod == "y/c");
  CHECK(r.destination_namespace == "y");
  CHECK(r.service == "shop/web");
  CHECK(r.verdict == "FORWARDED");

  FlowRecord outside = EnrichFlow(Event("172.16.0.9", 1234, "10.0.1.2", 8080), view);
  CHECK(outside.source_pod.empty());
  CHECK(outside.source_namespace.empty());
  CHECK(outside.destination_pod == "x/b");
  CHECK(outside.service.empty());
}

TEST_CASE("a flow's verdict: drops and denied policy verdicts are DROPPED, the rest FORWARDED") {
  CHECK(FlowVerdict(Event("10.0.0.1", 1, "10.0.0.2", 2, DPV2_EVENT_DROP)) == "DROPPED");
  CHECK(FlowVerdict(Event("10.0.0.1", 1, "10.0.0.2", 2, DPV2_EVENT_POLICY_VERDICT)) == "DROPPED");
  CHECK(FlowVerdict(Event("10.0.0.1", 1, "10.0.0.2", 2, DPV2_EVENT_POLICY_VERDICT,
                          DPV2_EV_F_ALLOWED)) == "FORWARDED");
  CHECK(FlowVerdict(Event("10.0.0.1", 1, "10.0.0.2", 2, DPV2_EVENT_TRACE)) == "FORWARDED");
}

TEST_CASE("a pod filter matches either side, as namespace/name or as a bare name") {
  FlowRecord r = Record("x/a", "y/c");
  CHECK(FlowFilter{.pod = "x/a"}.Matches(r));
  CHECK(FlowFilter{.pod = "y/c"}.Matches(r));
  CHECK_FALSE(FlowFilter{.pod = "x/c"}.Matches(r));
  CHECK(FlowFilter{.pod = "c"}.Matches(r));
  CHECK_FALSE(FlowFilter{.pod = "b"}.Matches(r));
  // A bare name with a namespace: that pod of that namespace only.
  CHECK(FlowFilter{.pod = "c", .namespace_name = "y"}.Matches(r));
  CHECK_FALSE(FlowFilter{.pod = "c", .namespace_name = "x"}.Matches(r));
  // A flow from outside the cluster has no pod on that side.
  CHECK_FALSE(FlowFilter{.pod = "a"}.Matches(Record("", "y/c")));
}

TEST_CASE("namespace, verdict and port filters match either side and AND together") {
  FlowRecord r = Record("x/a", "y/c", "DROPPED", 40000, 8080);
  CHECK(FlowFilter{.namespace_name = "x"}.Matches(r));
  CHECK(FlowFilter{.namespace_name = "y"}.Matches(r));
  CHECK_FALSE(FlowFilter{.namespace_name = "z"}.Matches(r));
  CHECK(FlowFilter{.verdict = "dropped"}.Matches(r));
  CHECK_FALSE(FlowFilter{.verdict = "FORWARDED"}.Matches(r));
  CHECK(FlowFilter{.port = 8080}.Matches(r));
  CHECK(FlowFilter{.port = 40000}.Matches(r));
  CHECK_FALSE(FlowFilter{.port = 80}.Matches(r));
  CHECK(FlowFilter{.namespace_name = "y", .verdict = "DROPPED", .port = 8080}.Matches(r));
  CHECK_FALSE(FlowFilter{.namespace_name = "y", .verdict = "FORWARDED", .port = 8080}.Matches(r));
  CHECK(FlowFilter{}.Matches(r));
}

TEST_CASE("a port filter also matches the Service port of a translated flow") {
  FlowRecord r = Record("x/a", "y/c");
  CHECK_FALSE(FlowFilter{.port = 80}.Matches(r));
  r.event.flags |= DPV2_EV_F_TRANSLATED;
  r.event.orig_dport = 80;
  CHECK(FlowFilter{.port = 80}.Matches(r));
}

TEST_CASE("malformed filters are refused with the field named") {
  CHECK(FlowFilter{.pod = ""}.Validate().message() ==
        "filter pod \"\": expected NAME or NAMESPACE/NAME");
  CHECK_FALSE(FlowFilter{.pod = "x/a/b"}.Validate().ok());
  CHECK_FALSE(FlowFilter{.pod = "x/"}.Validate().ok());
  CHECK_FALSE(FlowFilter{.namespace_name = "x/y"}.Validate().ok());
  CHECK(FlowFilter{.verdict = "maybe"}.Validate().message() ==
        "filter verdict \"maybe\": expected FORWARDED or DROPPED");
  CHECK_FALSE(FlowFilter{.port = 0}.Validate().ok());
  FlowHub hub;
  absl::StatusOr<uint64_t> id =
      hub.Subscribe({.filter = {.verdict = "maybe"}}, [](const FlowDelivery&) { return true; });
  CHECK(id.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(hub.subscriber_count() == 0);
}

TEST_CASE("a subscriber receives only the records its filter matches, in order") {
  FlowHub hub;
  absl::Mutex mu;
  std::vector<uint16_t> seen;
  absl::StatusOr<uint64_t> id =
      hub.Subscribe({.filter = {.namespace_name = "y"}}, [&](const FlowDelivery& d) {
        absl::MutexLock lock(&mu);
        seen.push_back(d.record.event.tuple.sport);
        return true;
      });
  REQUIRE(id.ok());
  for (uint16_t i = 1; i <= 20; ++i) {
    hub.Publish(Record(i % 2 ? "x/a" : "x/b", i % 4 == 0 ? "y/c" : "x/b", "FORWARDED", i));
  }
  REQUIRE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return seen.size() == 5;
  }));
  hub.Unsubscribe(*id);
  CHECK(seen == std::vector<uint16_t>{4, 8, 12, 16, 20});
  CHECK(hub.published() == 20);
}

TEST_CASE("a stalled subscriber never blocks Publish; it loses records and is told how many") {
  FlowHub hub({.subscriber_queue = 8});
  absl::Notification release;
  std::atomic<int> delivered{0};
  std::atomic<uint64_t> lost{0};
  absl::StatusOr<uint64_t> stalled = hub.Subscribe({}, [&](const FlowDelivery& d) {
    release.WaitForNotification();
    lost += d.lost;
    ++delivered;
    return true;
  });
  std::atomic<int> fast{0};
  absl::StatusOr<uint64_t> quick = hub.Subscribe({}, [&](const FlowDelivery&) {
    ++fast;
    return true;
  });
  REQUIRE(stalled.ok());
  REQUIRE(quick.ok());
  // The stalled callback holds its first record; 1000 more must not wait.
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    hub.Publish(Record("x/a", "x/b"));
    if (i % 100 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // let `quick` keep up
    }
  }
  auto publish_time = std::chrono::steady_clock::now() - start;
  CHECK(publish_time < std::chrono::seconds(5));
  CHECK(delivered == 0);
  release.Notify();
  // 1 in the callback + 8 queued are delivered; the rest are counted lost.
  REQUIRE(Eventually([&] { return delivered + static_cast<int>(lost) == 1000; }));
  CHECK(delivered == 9);
  CHECK(lost == 991);
  CHECK(Eventually([&] { return fast > 0; }));
  hub.Unsubscribe(*stalled);
  hub.Unsubscribe(*quick);
}

TEST_CASE("a subscriber that returns false is dropped and Publish goes on") {
  FlowHub hub;
  std::atomic<int> calls{0};
  absl::StatusOr<uint64_t> id = hub.Subscribe({}, [&](const FlowDelivery&) {
    ++calls;
    return false;  // the observer went away
  });
  REQUIRE(id.ok());
  hub.Publish(Record("x/a", "x/b"));
  REQUIRE(Eventually([&] { return hub.subscriber_count() == 0; }));
  for (int i = 0; i < 100; ++i) {
    hub.Publish(Record("x/a", "x/b"));
  }
  CHECK(calls == 1);
  hub.Unsubscribe(*id);  // already gone: harmless
  hub.Unsubscribe(12345);
}

TEST_CASE("since replays the retained records that recent, then live ones") {
  FlowHub hub({.ring_capacity = 3});
  FlowRecord old = Record("x/a", "x/b", "FORWARDED", 1);
  old.time = absl::Now() - absl::Minutes(10);
  hub.Publish(old);
  for (uint16_t i = 2; i <= 5; ++i) {
    hub.Publish(Record("x/a", "x/b", "FORWARDED", i));  // the ring keeps 3, 4, 5
  }
  absl::Mutex mu;
  std::vector<uint16_t> seen;
  absl::StatusOr<uint64_t> id =
      hub.Subscribe({.since = absl::Minutes(1)}, [&](const FlowDelivery& d) {
        absl::MutexLock lock(&mu);
        seen.push_back(d.record.event.tuple.sport);
        return true;
      });
  REQUIRE(id.ok());
  hub.Publish(Record("x/a", "x/b", "FORWARDED", 6));
  REQUIRE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return seen.size() == 4;
  }));
  hub.Unsubscribe(*id);
  CHECK(seen == std::vector<uint16_t>{3, 4, 5, 6});
}

TEST_CASE("a flow line in text is made from its JSON: pods, Service, verdict and drop reason") {
  FlowRecord r = Record("x/a", "y/c", "DROPPED");
  r.event.type = DPV2_EVENT_DROP;
  r.event.drop_reason = DPV2_DROP_POLICY_DENY;
  r.event.flags = DPV2_EV_F_TRANSLATED;
  r.event.orig_dst = *IpAddr::Parse("10.96.0.10");
  r.event.orig_dport = 80;
  r.event.tcp_flags = 0x02;
  r.service = "shop/web";
  r.time = absl::FromUnixSeconds(1790000000);
  nlohmann::json j = FlowJson(r);
  CHECK(j["verdict"] == "DROPPED");
  CHECK(j["drop_reason"] == "policy_deny");
  CHECK(j["source"]["pod"] == "x/a");
  CHECK(j["destination"]["namespace"] == "y");
  CHECK(j["frontend"] == "10.96.0.10:80");
  CHECK(j["time"] == "2026-09-21T14:13:20.000000000Z");
  CHECK(FlowText(j) ==
        "14:13:20.000 x/a (10.0.1.1:40000) -> y/c (10.0.1.2:8080) TCP SYN service shop/web "
        "(10.96.0.10:80) drop DROPPED (policy_deny)");
}

}  // namespace
}  // namespace dpv2::agent
