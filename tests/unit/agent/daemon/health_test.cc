#include "agent/daemon/health.h"

#include <catch2/catch.hpp>

#include "agent/daemon/http_server.h"
#include "http_client.h"

namespace dpv2::agent::daemon {
namespace {

using testing::FreePort;
using testing::Get;

const absl::Time kT0 = absl::FromUnixNanos(1764187262500000000);  // 2025-11-26 20:01:02.5 UTC

TEST_CASE("Go's time.Time String form, as kube-proxy's health bodies carry it") {
  CHECK(GoTimeString(kT0) == "2025-11-26 20:01:02.5 +0000 UTC");
  CHECK(GoTimeString(absl::FromUnixSeconds(0)) == "1970-01-01 00:00:00 +0000 UTC");
  CHECK(GoTimeString(absl::InfinitePast()) == "0001-01-01 00:00:00 +0000 UTC");
}

TEST_CASE("proxy health: healthy with nothing pending, 503 once a change waits past the timeout") {
  ProxyHealth h({.timeout = absl::Seconds(60)});
  CHECK(h.Healthy(kT0));
  h.QueuedUpdate(kT0);
  h.QueuedUpdate(kT0 + absl::Seconds(30));  // the oldest pending change counts
  CHECK(h.Healthy(kT0 + absl::Seconds(59)));
  CHECK_FALSE(h.Healthy(kT0 + absl::Seconds(60)));
  HttpResponse r = h.Healthz(kT0 + absl::Seconds(61), true);
  CHECK(r.status == 503);
  CHECK(r.body ==
        "{\"lastUpdated\": \"0001-01-01 00:00:00 +0000 UTC\",\"currentTime\": \"2025-11-26 "
        "20:02:03.5 +0000 UTC\", \"nodeEligible\": true}");
  h.Updated(kT0 + absl::Seconds(62));
  CHECK(h.Healthy(kT0 + absl::Seconds(1000)));
}

TEST_CASE("/healthz while healthy reports now as lastUpdated, as kube-proxy does") {
  ProxyHealth h;
  h.Updated(kT0);
  HttpResponse r = h.Healthz(kT0 + absl::Seconds(5), true);
  CHECK(r.status == 200);
  CHECK(r.body ==
        "{\"lastUpdated\": \"2025-11-26 20:01:07.5 +0000 UTC\",\"currentTime\": \"2025-11-26 "
        "20:01:07.5 +0000 UTC\", \"nodeEligible\": true}");
  CHECK(r.headers[0] == std::pair<std::string, std::string>{"Content-Type", "application/json"});
  CHECK(h.Healthz(kT0, false).status == 503);  // an ineligible node fails /healthz
  HttpResponse live = h.Livez(kT0);
  CHECK(live.status == 200);
  CHECK(live.body ==
        "{\"lastUpdated\": \"2025-11-26 20:01:02.5 +0000 UTC\",\"currentTime\": \"2025-11-26 "
        "20:01:02.5 +0000 UTC\"}");
}

TEST_CASE("service health: kube-proxy's body and endpoint weight header") {
  HttpResponse ok = ServiceHealthResponse("default", "web", 2, true);
  CHECK(ok.status == 200);
  CHECK(ok.body ==
        "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n"
        "\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}");
  bool weight = false;
  for (const auto& [k, v] : ok.headers) {
    weight = weight || (k == "X-Load-Balancing-Endpoint-Weight" && v == "2");
  }
  CHECK(weight);
  CHECK(ServiceHealthResponse("default", "web", 0, true).status == 503);
  CHECK(ServiceHealthResponse("default", "web", 3, false).status == 503);
}

// A free port on 127.0.0.1 (bound and released).
TEST_CASE("health check ports open per Service, answer with counts, and close when gone") {
  HttpServer server;
  StructuredLog log(LogFormat::kText, [](absl::string_view) {});
  bool healthy = true;
  HealthCheckPorts ports(&server, "127.0.0.1", [&healthy] { return healthy; }, &log);
  uint16_t p1 = FreePort();
  uint16_t p2 = FreePort();
  ports.Sync({{.namespace_name = "default", .name = "web", .health_check_node_port = p1,
               .local_endpoints = 2},
              {.namespace_name = "x", .name = "idle", .health_check_node_port = p2,
               .local_endpoints = 0}});
  CHECK(ports.ports().size() == 2);
  testing::RawReply web = Get(p1, "/");
  CHECK(web.status == 200);
  CHECK(web.Header("X-Load-Balancing-Endpoint-Weight") == "2");
  CHECK(web.body.find("\"localEndpoints\": 2") != std::string::npos);
  CHECK(Get(p2, "/any/path").status == 503);
  healthy = false;
  CHECK(Get(p1, "/").status == 503);
  healthy = true;

  // The count follows the Service; a Service gone closes its port.
  ports.Sync({{.namespace_name = "default", .name = "web", .health_check_node_port = p1,
               .local_endpoints = 0}});
  CHECK(Get(p1, "/").status == 503);
  CHECK(ports.ports() == std::vector<uint16_t>{p1});
  absl::SleepFor(absl::Milliseconds(50));  // the server thread closes p2's socket
  CHECK_FALSE(Get(p2, "/").connected);
}

TEST_CASE("a health check port that cannot be bound is logged and retried") {
  HttpServer server;
  std::vector<std::string> lines;
  StructuredLog log(LogFormat::kText, [&lines](absl::string_view l) { lines.emplace_back(l); });
  HttpServer squatter;
  absl::StatusOr<int> taken = squatter.Listen({.host = "127.0.0.1", .port = 0},
                                              [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE(taken.ok());
  uint16_t port = squatter.Port(*taken);
  HealthCheckPorts ports(&server, "127.0.0.1", [] { return true; }, &log);
  std::vector<HealthCheckView> checks = {
      {.namespace_name = "d", .name = "s", .health_check_node_port = port, .local_endpoints = 1}};
  ports.Sync(checks);
  CHECK(ports.ports().empty());
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back().find("health check port not open") != std::string::npos);
  squatter.Stop();
  ports.Sync(checks);
  CHECK(ports.ports() == std::vector<uint16_t>{port});
  CHECK(Get(port, "/").status == 200);
}

}  // namespace
}  // namespace dpv2::agent::daemon
