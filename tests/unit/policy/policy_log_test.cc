#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "dpv2/policy_log.h"
#include "policy_world.h"

namespace dpv2::testing {
namespace {

// GKE's published records (GKE's Cilium fork, policylogger tests; docs page
// "Use network policy logging").
constexpr absl::string_view kGkeAllow =
    R"({"connection":{"src_ip":"10.84.1.7","dest_ip":"10.84.0.11","src_port":55644,"dest_port":8080,"protocol":"tcp","direction":"ingress"},"disposition":"allow","policies":[{"kind":"NetworkPolicy","name":"np","namespace":"default"}],"src":{"pod_name":"client-allow-7b78d7c957-zkn54","workload_kind":"ReplicaSet","workload_name":"client-allow-7b78d7c957","pod_namespace":"default","namespace":"default"},"dest":{"pod_name":"test-service-745c798fc9-hzpxt","workload_kind":"ReplicaSet","workload_name":"test-service-745c798fc9","pod_namespace":"default","namespace":"default"},"count":1,"timestamp":"2020-06-13T21:29:31.445836587Z"})";
constexpr absl::string_view kGkeNodeDeny =
    R"({"connection":{"src_ip":"10.84.1.6","dest_ip":"10.128.0.9","src_port":45084,"dest_port":22,"protocol":"tcp","direction":"ingress"},"disposition":"deny","src":{"pod_name":"client-deny-5689846f5b-cqqsj","workload_kind":"ReplicaSet","workload_name":"client-deny-5689846f5b","pod_namespace":"default","namespace":"default"},"dest":{"node_name":"gke-demo-default-pool-e8df3298-412p","workload_kind":"Node"},"count":1,"timestamp":"2020-06-13T21:32:00.000000001Z"})";

PolicyLogEndpoint PodEp(const std::string& name, const std::string& workload) {
  return {.pod_name = name, .workload_kind = "ReplicaSet", .workload_name = workload,
          .pod_namespace = "default", .namespace_name = "default"};
}

TEST_CASE("policy log: the formatter reproduces GKE's published allow record", "[policy_log]") {
  PolicyLogRecord r{.src_ip = Ip("10.84.1.7"), .dest_ip = Ip("10.84.0.11"), .src_port = 55644,
                    .dest_port = 8080, .protocol = L4Proto::kTCP, .egress = false,
                    .allowed = true,
                    .policies = {{.kind = PolicyRef::Kind::kNetworkPolicy,
                                  .namespace_name = "default", .name = "np"}},
                    .src = PodEp("client-allow-7b78d7c957-zkn54", "client-allow-7b78d7c957"),
                    .dest = PodEp("test-service-745c798fc9-hzpxt", "test-service-745c798fc9"),
                    .count = 1,
                    .timestamp = absl::FromUnixSeconds(1592083771) + absl::Nanoseconds(445836587)};
  CHECK(FormatPolicyLogRecord(r) == kGkeAllow);
}

TEST_CASE("policy log: a deny has no policies and a node side is named as a Node",
          "[policy_log]") {
  PolicyLogRecord r{.src_ip = Ip("10.84.1.6"), .dest_ip = Ip("10.128.0.9"), .src_port = 45084,
                    .dest_port = 22, .allowed = false,
                    .policies = {{.name = "ignored-on-deny"}},
                    .src = PodEp("client-deny-5689846f5b-cqqsj", "client-deny-5689846f5b"),
                    .dest = {.node_name = "gke-demo-default-pool-e8df3298-412p",
                             .workload_kind = "Node"},
                    .timestamp = absl::FromUnixSeconds(1592083920) + absl::Nanoseconds(1)};
  CHECK(FormatPolicyLogRecord(r) == kGkeNodeDeny);
}

TEST_CASE("policy log: node_name, instance, count and escaping", "[policy_log]") {
  PolicyLogRecord r{.src_ip = Ip("fd00::1"), .dest_ip = Ip("192.0.2.1"), .src_port = 1,
                    .dest_port = 53, .protocol = L4Proto::kUDP, .egress = true, .allowed = false,
                    .src = {.pod_name = "a\"b", .pod_namespace = "x", .namespace_name = "x"},
                    .dest = {.instance = "192.0.2.1"},
                    .count = 7,
                    .node_name = "node-1",
                    .timestamp = absl::FromUnixSeconds(0)};
  CHECK(FormatPolicyLogRecord(r) ==
        R"({"connection":{"src_ip":"fd00::1","dest_ip":"192.0.2.1","src_port":1,"dest_port":53,"protocol":"udp","direction":"egress"},"disposition":"deny","src":{"pod_name":"a\"b","pod_namespace":"x","namespace":"x"},"dest":{"instance":"192.0.2.1"},"count":7,"node_name":"node-1","timestamp":"1970-01-01T00:00:00.000000000Z"})");
}

TEST_CASE("policy log: NetworkLogging must be named default and delegate needs log",
          "[policy_log]") {
  NetworkLogging cfg{.metadata = {.name = "default"}};
  CHECK(ValidateNetworkLogging(cfg).ok());
  cfg.spec.cluster.deny.delegate = true;
  absl::Status s = ValidateNetworkLogging(cfg);
  CHECK(std::string(s.message()) ==
        "networklogging default: spec.cluster.deny.delegate needs log: true");
  cfg.spec.cluster.deny.log = true;
  CHECK(ValidateNetworkLogging(cfg).ok());
  cfg.metadata.name = "other";
  CHECK_FALSE(ValidateNetworkLogging(cfg).ok());
}

TEST_CASE("policy log: the rate limiter allows 500 a second and no burst", "[policy_log]") {
  LogRateLimiter lim(500);
  absl::Time t = absl::FromUnixSeconds(100);
  CHECK(lim.Allow(t));
  CHECK_FALSE(lim.Allow(t));  // no burst
  CHECK_FALSE(lim.Allow(t + absl::Milliseconds(1)));
  CHECK(lim.Allow(t + absl::Milliseconds(2)));
  // A long idle period does not bank tokens.
  t += absl::Seconds(10);
  CHECK(lim.Allow(t));
  CHECK_FALSE(lim.Allow(t));
  int allowed = 0;
  for (int i = 0; i < 10000; ++i) {  // one second at 10 kHz
    allowed += lim.Allow(t + absl::Microseconds(100 * (i + 1)));
  }
  CHECK(allowed == 500);
}

TEST_CASE("policy log: time going backwards neither refills nor drains the rate limiter",
          "[policy_log]") {
  LogRateLimiter lim(500);
  const absl::Time t = absl::FromUnixSeconds(100);
  CHECK(lim.Allow(t));
  CHECK_FALSE(lim.Allow(t - absl::Seconds(10)));  // no token from going back
  CHECK_FALSE(lim.Allow(t + absl::Milliseconds(1)));
  // The limiter's clock stayed at t: 2 ms after it is a full token again,
  // not a debt from the 10 s step back.
  CHECK(lim.Allow(t + absl::Milliseconds(2)));
}

// A cluster: namespace "default" with a server and two clients. Two clocks
// move together: the wall clock (`now`) and the datapath's (`dp_now`, the
// clock of event timestamps, like CLOCK_MONOTONIC: a different epoch).
struct LogFixture {
  PolicyState state{{.node_name = "node-1"}};
  absl::Time now = absl::FromUnixSeconds(1592083771);
  uint64_t dp_now = uint64_t{86400} * 1000000000;  // a day after boot
  std::vector<std::string> lines;
  PolicyLogger logger{{.node_name = "node-1",
                       .log_node_name = false,
                       .clock = [this] { return now; },
                       .datapath_clock = [this] { return dp_now; }},
                      &state,
                      [this](absl::string_view l) { lines.emplace_back(l); }};

  void Advance(absl::Duration d) {
    now += d;
    dp_now += static_cast<uint64_t>(absl::ToInt64Nanoseconds(d));
  }

  LogFixture() {
    REQUIRE(state.SetNamespace({.name = "default"}).ok());
    REQUIRE(state.SetPod({.namespace_name = "default", .name = "client-allow-7b78d7c957-zkn54",
                          .labels = {{"app", "client-allow"}}, .ips = {Ip("10.84.1.7")},
                          .workload_kind = "ReplicaSet", .workload_name = "client-allow-7b78d7c957"})
                .ok());
    REQUIRE(state.SetPod({.namespace_name = "default", .name = "client-deny",
                          .labels = {{"app", "client-deny"}}, .ips = {Ip("10.84.1.8")}})
                .ok());
    REQUIRE(state.SetPod({.namespace_name = "default", .name = "test-service-745c798fc9-hzpxt",
                          .labels = {{"app", "test-service"}}, .ips = {Ip("10.84.0.11")},
                          .workload_kind = "ReplicaSet", .workload_name = "test-service-745c798fc9"},
                         LocalEndpoint{.ifindex = 5})
                .ok());
    NetworkPolicy np{.metadata = {.name = "np", .namespace_name = "default"}};
    np.spec.pod_selector = LabelSelector{.match_labels = {{"app", "test-service"}}};
    np.spec.ingress.push_back({.from = {{.pod_selector = LabelSelector{
                                             .match_labels = {{"app", "client-allow"}}}}}});
    REQUIRE(state.SetNetworkPolicy(np).ok());
  }

  // The verdict event the datapath emits, with the match id the compiled
  // entries carry.
  FlowEvent Verdict(const char* src, uint16_t sport, bool allowed) {
    FlowEvent ev{.timestamp_ns = dp_now,
                 .type = DPV2_EVENT_POLICY_VERDICT,
                 .flags = static_cast<uint16_t>(allowed ? DPV2_EV_F_ALLOWED : 0),
                 .tuple = {.src = Ip(src), .dst = Ip("10.84.0.11"), .sport = sport, .dport = 8080}};
    if (allowed) {
      ev.policy_match_id = AllowMatchId();
    }
    return ev;
  }

  uint32_t AllowMatchId() {
    PolicyMap map;
    ChangeBatch b = state.Diff();
    REQUIRE(map.Apply(b).ok());
    const uint32_t ep = *state.EndpointId("default", "test-service-745c798fc9-hzpxt");
    return map.Lookup(ep, DPV2_DIR_INGRESS, state.IdentityOf(Ip("10.84.1.7")), 6, 8080).match_id;
  }
};

TEST_CASE("policy log: an allowed connection is logged in GKE's format", "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.allow = {.log = true}}}}).ok());
  f.Advance(absl::Nanoseconds(445836587));
  f.logger.Handle(f.Verdict("10.84.1.7", 55644, true));
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0] == kGkeAllow);
}

TEST_CASE("policy log: nothing is logged without config, with log off, or when no policy matched",
          "[policy_log]") {
  LogFixture f;
  f.logger.Handle(f.Verdict("10.84.1.7", 1, true));
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.allow = {.log = true}}}}).ok());
  f.logger.Handle(f.Verdict("10.84.1.8", 2, false));  // deny logging off
  FlowEvent unmatched = f.Verdict("10.84.1.7", 3, true);
  unmatched.policy_match_id = 0;  // allowed, no policy (unisolated)
  f.logger.Handle(unmatched);
  f.logger.Flush();
  CHECK(f.lines.empty());
  CHECK(f.logger.stats().not_logged == 3);
}

TEST_CASE("policy log: allow delegation logs only annotated NetworkPolicies", "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.allow = {.log = true, .delegate = true}}}})
              .ok());
  f.logger.Handle(f.Verdict("10.84.1.7", 1, true));
  CHECK(f.lines.empty());
  NetworkPolicy np{.metadata = {.name = "np", .namespace_name = "default",
                                .annotations = {{std::string(kEnableLoggingAnnotation), "true"}}}};
  np.spec.pod_selector = LabelSelector{.match_labels = {{"app", "test-service"}}};
  np.spec.ingress.push_back({.from = {{.pod_selector = LabelSelector{
                                           .match_labels = {{"app", "client-allow"}}}}}});
  REQUIRE(f.state.SetNetworkPolicy(np).ok());
  f.logger.Handle(f.Verdict("10.84.1.7", 2, true));
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find(R"("policies":[{"kind":"NetworkPolicy","name":"np")") != std::string::npos);
}

TEST_CASE("policy log: deny delegation needs the enforcing pod's namespace annotated",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.deny = {.log = true, .delegate = true}}}})
              .ok());
  f.logger.Handle(f.Verdict("10.84.1.8", 1, false));
  f.logger.Flush();
  CHECK(f.lines.empty());
  REQUIRE(f.state.SetNamespace({.name = "default",
                                .annotations = {{std::string(kEnableDenyLoggingAnnotation), "true"}}})
              .ok());
  f.logger.Handle(f.Verdict("10.84.1.8", 2, false));
  f.logger.Flush();
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find(R"("disposition":"deny")") != std::string::npos);
  CHECK(f.lines[0].find("policies") == std::string::npos);
}

TEST_CASE("policy log: denies of one tuple are merged over 5 s, ignoring the source port",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.deny = {.log = true}}}}).ok());
  f.logger.Handle(f.Verdict("10.84.1.8", 1000, false));
  f.Advance(absl::Seconds(1));
  f.logger.Handle(f.Verdict("10.84.1.8", 1001, false));
  f.Advance(absl::Seconds(3));
  f.logger.Handle(f.Verdict("10.84.1.8", 1002, false));
  f.logger.Tick();
  CHECK(f.lines.empty());  // window still open
  f.Advance(absl::Seconds(1));
  f.logger.Tick();
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find(R"("src_port":1000)") != std::string::npos);  // the first event's
  CHECK(f.lines[0].find(R"("count":3)") != std::string::npos);
  CHECK(f.lines[0].find("2020-06-13T21:29:31.000000000Z") != std::string::npos);
  CHECK(f.logger.stats().aggregated == 2);
  // A new window starts afresh.
  f.logger.Handle(f.Verdict("10.84.1.8", 1003, false));
  f.Advance(absl::Seconds(5));
  f.logger.Tick();
  REQUIRE(f.lines.size() == 2);
  CHECK(f.lines[1].find(R"("count":1)") != std::string::npos);
}

TEST_CASE("policy log: over 3000 deny keys in a window, new keys are dropped and counted",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.deny = {.log = true}}}}).ok());
  for (int i = 0; i < 3005; ++i) {
    FlowEvent ev = f.Verdict("10.84.1.8", 1, false);
    ev.tuple.dport = static_cast<uint16_t>(1 + i);
    f.logger.Handle(ev);
  }
  CHECK(f.logger.stats().dropped_aggregation_limit == 5);
  // Every window opened at the same instant and ends at the same instant:
  // one record gets the token.
  f.Advance(absl::Seconds(5));
  f.logger.Tick();
  CHECK(f.lines.size() == 1);  // all due at once: no burst
  CHECK(f.logger.stats().dropped_rate_limit == 2999);
}

TEST_CASE("policy log: allowed records beyond 500 a second are dropped as rate_limit",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.allow = {.log = true}}}}).ok());
  const FlowEvent ev = f.Verdict("10.84.1.7", 1, true);
  for (int i = 0; i < 1000; ++i) {  // 1000 in one second, evenly spaced
    FlowEvent at = ev;
    at.timestamp_ns = f.dp_now;
    f.logger.Handle(at);
    f.Advance(absl::Milliseconds(1));
  }
  CHECK(f.lines.size() == 500);
  CHECK(f.logger.stats().dropped_rate_limit == 500);
}

// The timestamp field of a record line.
std::string TimestampOf(const std::string& line) {
  const size_t at = line.find(R"("timestamp":")");
  return at == std::string::npos ? "" : line.substr(at + 13, 30);
}

TEST_CASE("policy log: a batch drained at once keeps one record per 2 ms of event time",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.allow = {.log = true}}}}).ok());
  // 100 connections over 100 ms, 1 ms apart, read in one drain at the end.
  std::vector<FlowEvent> batch;
  for (int i = 0; i < 100; ++i) {
    batch.push_back(f.Verdict("10.84.1.7", static_cast<uint16_t>(1000 + i), true));
    f.Advance(absl::Milliseconds(1));
  }
  for (const FlowEvent& ev : batch) {
    f.logger.Handle(ev);
  }
  f.logger.Tick();
  CHECK(f.lines.size() == 50);
  CHECK(f.logger.stats().dropped_rate_limit == 50);
  REQUIRE(f.lines.size() >= 2);
  // Stamped when they happened (the wall clock read 100 ms later).
  CHECK(TimestampOf(f.lines[0]) == "2020-06-13T21:29:31.000000000Z");
  CHECK(TimestampOf(f.lines[1]) == "2020-06-13T21:29:31.002000000Z");
  CHECK(TimestampOf(f.lines.back()) == "2020-06-13T21:29:31.098000000Z");
  CHECK(f.logger.stats().bad_timestamps == 0);
}

TEST_CASE("policy log: a deny window ends by event time, within one drained batch",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.deny = {.log = true}}}}).ok());
  std::vector<FlowEvent> batch;
  batch.push_back(f.Verdict("10.84.1.8", 1000, false));
  f.Advance(absl::Milliseconds(4900));
  batch.push_back(f.Verdict("10.84.1.8", 1001, false));  // same window
  f.Advance(absl::Milliseconds(100));
  batch.push_back(f.Verdict("10.84.1.8", 1002, false));  // 5 s later: a new window
  f.Advance(absl::Seconds(1));
  for (const FlowEvent& ev : batch) {
    f.logger.Handle(ev);
  }
  // The first window closed when the third event happened, before any Tick.
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find(R"("src_port":1000)") != std::string::npos);
  CHECK(f.lines[0].find(R"("count":2)") != std::string::npos);
  CHECK(TimestampOf(f.lines[0]) == "2020-06-13T21:29:31.000000000Z");
  f.logger.Tick();  // the second window has 4 s to go
  CHECK(f.lines.size() == 1);
  f.Advance(absl::Seconds(4));
  f.logger.Tick();
  REQUIRE(f.lines.size() == 2);
  CHECK(f.lines[1].find(R"("src_port":1002)") != std::string::npos);
  CHECK(f.lines[1].find(R"("count":1)") != std::string::npos);
  CHECK(TimestampOf(f.lines[1]) == "2020-06-13T21:29:36.000000000Z");
}

TEST_CASE("policy log: timestamps in the future, far past or going backwards do not stall the "
          "limiter",
          "[policy_log]") {
  LogFixture f;
  REQUIRE(f.logger.SetConfig({.metadata = {.name = "default"},
                              .spec = {.cluster = {.allow = {.log = true},
                                                   .deny = {.log = true}}}}).ok());
  const uint64_t start = f.dp_now;
  FlowEvent future = f.Verdict("10.84.1.7", 1, true);
  future.timestamp_ns = ~uint64_t{0};  // far beyond int64 too
  f.logger.Handle(future);
  FlowEvent ancient = f.Verdict("10.84.1.7", 2, true);
  ancient.timestamp_ns = 0;
  f.Advance(absl::Milliseconds(2));
  f.logger.Handle(ancient);
  CHECK(f.logger.stats().bad_timestamps == 2);
  CHECK(f.lines.size() == 2);  // both taken as "now", 2 ms apart
  CHECK(TimestampOf(f.lines[1]) == "2020-06-13T21:29:31.002000000Z");
  // A deny stamped in the future opens a window that ends 5 s from now, not
  // in the year 2554.
  FlowEvent deny = f.Verdict("10.84.1.8", 3, false);
  deny.timestamp_ns = f.dp_now + uint64_t{1000000000} * 3600;
  f.logger.Handle(deny);
  // Then normal traffic over one second, with every tenth event stamped
  // 50 ms in the past (CPUs' events interleaved out of order).
  size_t before = f.lines.size();
  for (int i = 0; i < 1000; ++i) {
    f.Advance(absl::Milliseconds(1));
    FlowEvent ev = f.Verdict("10.84.1.7", static_cast<uint16_t>(10 + i), true);
    if (i % 10 == 0) {
      ev.timestamp_ns -= 50'000'000;
    }
    f.logger.Handle(ev);
  }
  // Not stalled: the late tenths get no token, the rest are limited to
  // 500/s as usual: one record every 2 ms of this second.
  CHECK(f.lines.size() - before == 500);
  f.Advance(absl::Seconds(4));
  f.logger.Tick();  // the deny's window ended 5 s after it was handled
  CHECK(f.lines.back().find(R"("disposition":"deny")") != std::string::npos);
  CHECK(f.dp_now - start == uint64_t{5002} * 1000000);
  CHECK(f.logger.stats().bad_timestamps == 3);
}

TEST_CASE("policy log: the file rotates at its size limit and keeps N backups", "[policy_log]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("dpv2_policy_log_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "policy_action.log").string();
  {
    auto file = RotatingLogFile::Open(path, /*max_bytes=*/100, /*max_backups=*/2);
    REQUIRE(file.ok());
    const std::string line(49, 'x');  // 50 bytes with the newline: two per file
    for (int i = 0; i < 7; ++i) {
      REQUIRE((*file)->WriteLine(absl::StrCat(i, line.substr(1))).ok());
    }
  }
  CHECK(fs::file_size(path) == 50);  // line 6
  CHECK(fs::file_size(path + ".1") == 100);  // lines 4, 5
  CHECK(fs::file_size(path + ".2") == 100);  // lines 2, 3
  CHECK_FALSE(fs::exists(path + ".3"));      // lines 0, 1 gone
  std::ifstream in(path + ".2");
  std::string first;
  std::getline(in, first);
  CHECK(first[0] == '2');
  CHECK_FALSE(RotatingLogFile::Open("").ok());
  CHECK_FALSE(RotatingLogFile::Open((dir / "missing" / "x.log").string()).ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dpv2::testing
