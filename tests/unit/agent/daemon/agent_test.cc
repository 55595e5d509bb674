#include "agent/daemon/agent.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "../apiserver/fake_api_server.h"
#include "agent/k8s/manifest_text.h"
#include "dpv2/packet.h"
#include "http_client.h"
#include "test_cluster.h"

namespace dpv2::agent::daemon {
namespace {

namespace fs = std::filesystem;
using testing::ClusterYaml;
using testing::CountingBackend;
using testing::WaitFor;
using testing::Get;

// A directory unique to this process, removed at the end even on failure.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("dpv2-agent-test-" + name + "-" +
                                          std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p.string() + ".tmp");
  out << text;
  out.close();
  fs::rename(p.string() + ".tmp", p);  // readers never see half a file
}

// The value of the unlabelled sample `name` in Prometheus text, or -1.
double Sample(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(metrics.substr(at + name.size() + 2));
}

bool HasFrontendPort(Agent& agent, uint16_t port) {
  bool found = false;
  agent.WithState([&](ClusterView& v, Backend&) {
    for (const FrontendView& f : v.lb().Frontends()) {
      found = found || (f.address.ToString() == "10.96.0.10" && f.port == port);
    }
  });
  return found;
}

std::string LoadBalancerYaml(uint16_t health_port) {
  return absl::StrCat(R"(apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.20
  externalTrafficPolicy: Local
  healthCheckNodePort: )",
                      health_port, R"(
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30090}]
status:
  loadBalancer: {ingress: [{ip: 203.0.113.7}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: lb-1
  namespace: shop
  labels: {kubernetes.io/service-name: lb}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: [10.244.1.11]
    nodeName: node-a
)");
}

TEST_CASE("the agent applies manifests, re-reads them on change, and serves metrics and health") {
  TempDir dir("manifests");
  uint16_t health_port = testing::FreeNodePort();
  WriteFile(dir.path / "cluster.yaml", ClusterYaml(80, LoadBalancerYaml(health_port)));
  CountingBackend backend;
  std::vector<std::string> lines;
  std::mutex lines_mu;
  StructuredLog log(LogFormat::kJson, [&](absl::string_view l) {
    std::lock_guard<std::mutex> g(lines_mu);
    lines.emplace_back(l);
  });
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Create({.node_name = "node-a",
                     .manifests = dir.path.string(),
                     .manifest_poll = absl::Milliseconds(50),
                     .metrics_address = ListenAddress{.host = "127.0.0.1", .port = 0},
                     .healthz_address = ListenAddress{.host = "127.0.0.1", .port = 0},
                     .health_check_host = "127.0.0.1",
                     .control_socket = (dir.path / "agent.sock").string(),
                     .policy_log = (dir.path / "policy_action.log").string(),
                     .debounce = absl::Milliseconds(10)},
                    &backend, &log);
  REQUIRE(agent.ok());
  REQUIRE((*agent)->Start().ok());
  REQUIRE(WaitFor([&] { return (*agent)->stats().applied_generation > 0; }));
  CHECK(HasFrontendPort(**agent, 80));
  CHECK(fs::exists(dir.path / "agent.sock"));

  SECTION("kube-proxy's /healthz and /livez answer 200 once the datapath is in sync") {
    testing::RawReply h = Get((*agent)->healthz_port(), "/healthz");
    CHECK(h.status == 200);
    CHECK(h.Header("Content-Type") == "application/json");
    CHECK(h.body.find("\"nodeEligible\": true}") != std::string::npos);
    CHECK(Get((*agent)->healthz_port(), "/livez").status == 200);
    CHECK(Get((*agent)->healthz_port(), "/nope").status == 404);
  }

  SECTION("the healthCheckNodePort answers with this node's local endpoints") {
    bool open = WaitFor([&] { return !(*agent)->health_check_ports().empty(); });
    if (!open) {
      std::lock_guard<std::mutex> g(lines_mu);
      for (const std::string& l : lines) {
        UNSCOPED_INFO(l);
      }
    }
    REQUIRE(open);
    CHECK((*agent)->health_check_ports() == std::vector<uint16_t>{health_port});
    testing::RawReply r = Get(health_port, "/");
    CHECK(r.status == 200);
    CHECK(r.Header("X-Load-Balancing-Endpoint-Weight") == "1");
    CHECK(r.body.find("\"name\": \"lb\"") != std::string::npos);
  }

  SECTION("/metrics has the reconcile histogram, drops, verdicts, map fill and GKE's families") {
    testing::RawReply m = Get((*agent)->metrics_port(), "/metrics");
    REQUIRE(m.status == 200);
    CHECK(m.Header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    for (const char* want :
         {"dpv2_agent_info{node=\"node-a\",backend=\"sim\"} 1",
          "# TYPE dpv2_reconcile_duration_seconds histogram",
          "dpv2_reconcile_duration_seconds_count 1", "dpv2_reconciles_total{result=\"success\"} 1",
          "dpv2_drop_count_total{reason=\"policy_deny\"} 0",
          "dpv2_datapath_packets_total{verdict=\"redirect\"} 0",
          "dpv2_map_entries{map=\"endpoints\"} 1", "dpv2_map_capacity{map=\"services\"} 65536",
          "# TYPE policy_event_count counter", "# TYPE pod_flow_ingress_flows_count counter",
          "# TYPE pod_flow_egress_flows_count counter", "policy_logging_records_total 0",
          "policy_logging_bad_timestamps_total 0"}) {
      INFO(want);
      CHECK(m.body.find(want) != std::string::npos);
    }
    CHECK(Get((*agent)->metrics_port(), "/healthz").status == 200);
  }

  SECTION("a new connection from a local pod shows up in the per-pod flow metrics") {
    std::optional<LocalEndpoint> ep;
    (*agent)->WithState([&](ClusterView& v, Backend& b) {
      ep = v.LocalEndpointOf("shop/web-1");
      REQUIRE(ep.has_value());
      std::vector<uint8_t> syn = PacketBuilder()
                                     .Eth(MacAddr{ep->mac}, MacAddr{ep->host_mac})
                                     .IPv4("10.244.1.11", "10.96.0.10")
                                     .Tcp(40000, 80, kTcpSyn)
                                     .Build();
      absl::StatusOr<PacketOutcome> out =
          b.RunPacket({.entry = Entry::kFromPod, .ifindex = ep->ifindex, .frame = syn});
      REQUIRE(out.ok());
      CHECK(out->verdict != Verdict::kDrop);
    });
    std::string want =
        "pod_flow_egress_flows_count{namespace_name=\"shop\",pod_name=\"web-1\","
        "workload_kind=\"\",workload_name=\"\",verdict=\"forwarded\"} 1";
    CHECK(WaitFor([&] { return (*agent)->MetricsText().find(want) != std::string::npos; }));
  }

  SECTION("an edited manifest is re-read and only the difference applied") {
    int applies = backend.applies;
    WriteFile(dir.path / "cluster.yaml", ClusterYaml(8080, LoadBalancerYaml(health_port)));
    REQUIRE(WaitFor([&] { return HasFrontendPort(**agent, 8080); }));
    CHECK_FALSE(HasFrontendPort(**agent, 80));
    CHECK(backend.applies == applies + 1);
  }

  SECTION("an invalid object is logged and leaves the rest applied") {
    WriteFile(dir.path / "bad.yaml",
              "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\n"
              "spec: {ports: [{port: 0}]}\n");
    REQUIRE(WaitFor([&] {
      std::lock_guard<std::mutex> g(lines_mu);
      for (const std::string& l : lines) {
        if (l.find("\"msg\":\"object not applied\"") != std::string::npos &&
            l.find("Service shop/bad") != std::string::npos) {
          return true;
        }
      }
      return false;
    }));
    CHECK(HasFrontendPort(**agent, 80));
  }

  (*agent)->Stop();
  CHECK_FALSE(fs::exists(dir.path / "agent.sock"));
  CHECK_FALSE(Get((*agent)->healthz_port() ? (*agent)->healthz_port() : 1, "/healthz").connected);
  std::lock_guard<std::mutex> g(lines_mu);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.front().find("\"msg\":\"agent started\"") != std::string::npos);
  CHECK(lines.back().find("\"msg\":\"agent stopped; the datapath keeps running\"") !=
        std::string::npos);
}

TEST_CASE("stopping the agent leaves the backend's state as applied") {
  TempDir dir("stop");
  WriteFile(dir.path / "cluster.yaml", ClusterYaml());
  CountingBackend backend;
  StructuredLog log(LogFormat::kText, [](absl::string_view) {});
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(
      {.node_name = "node-a", .manifests = dir.path.string()}, &backend, &log);
  REQUIRE(agent.ok());
  REQUIRE((*agent)->ReconcileOnce().ok());
  (*agent)->Stop();
  absl::StatusOr<ChangeBatch> held = backend.DumpState();
  REQUIRE(held.ok());
  CHECK_FALSE(held->services_upsert.empty());
  CHECK_FALSE(held->endpoints_upsert.empty());
}

// One fake API server per resource (each serves one connection at a time).
struct FakeCluster {
  std::map<std::string, std::vector<nlohmann::json>> items;  // by kind
  std::vector<std::unique_ptr<apiserver::testing::FakeApiServer>> servers;
  std::vector<ApiWatch> watches;
  std::atomic<bool> send_new_service{false};

  explicit FakeCluster(const std::string& yaml) {
    for (const k8s::ManifestDocument& d : k8s::ParseManifestText(yaml, "cluster").objects) {
      nlohmann::json item = d.object;
      std::string kind = item["kind"];
      item.erase("kind");
      item.erase("apiVersion");  // list items come without type metadata
      item["metadata"]["resourceVersion"] = "5";
      items[kind].push_back(item);
    }
    for (const apiserver::ApiResource& r :
         {apiserver::ServicesResource(), apiserver::EndpointSlicesResource(),
          apiserver::PodsResource(), apiserver::NamespacesResource(), apiserver::NodesResource()}) {
      std::string kind = r.kind;
      auto server = std::make_unique<apiserver::testing::FakeApiServer>(
          [this, kind](const apiserver::testing::FakeRequest& req) {
            if (!req.IsWatch()) {
              return apiserver::testing::ListOf(items[kind], "10");
            }
            std::vector<std::string> events;
            if (kind == "Service" && send_new_service.exchange(false)) {
              nlohmann::json svc = items[kind][0];
              svc["kind"] = "Service";
              svc["apiVersion"] = "v1";
              svc["metadata"]["name"] = "api";
              svc["metadata"]["resourceVersion"] = "11";
              svc["spec"]["clusterIP"] = "10.96.0.99";
              svc["spec"]["clusterIPs"] = {"10.96.0.99"};
              events.push_back(apiserver::testing::Event("ADDED", svc));
            }
            return apiserver::testing::Stream(events, apiserver::testing::FakeResponse::End::kFinish);
          });
      watches.push_back({.resource = r,
                         .config = {.server = {.tls = false, .host = "127.0.0.1",
                                               .port = server->port()}}});
      servers.push_back(std::move(server));
    }
  }
};

TEST_CASE("the agent waits for every resource's LIST, then applies watch events") {
  FakeCluster cluster(ClusterYaml());
  CountingBackend backend;
  StructuredLog log(LogFormat::kText, [](absl::string_view) {});
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Create({.node_name = "node-a",
                     .api_watches = cluster.watches,
                     .reflector = {.watch_timeout = absl::Seconds(1),
                                   .backoff = {.initial = absl::Milliseconds(20),
                                               .max = absl::Milliseconds(100)}},
                     .debounce = absl::Milliseconds(10)},
                    &backend, &log);
  REQUIRE(agent.ok());
  REQUIRE((*agent)->Start().ok());
  REQUIRE(WaitFor([&] { return HasFrontendPort(**agent, 80); }));
  bool local = false;
  (*agent)->WithState([&](ClusterView& v, Backend&) {
    local = v.LocalEndpointOf("shop/web-1").has_value();
  });
  CHECK(local);
  // Each listed object was decoded once, however many reconciles ran.
  const double listed = Sample((*agent)->MetricsText(), "dpv2_api_objects_decoded_total");
  CHECK(listed > 0);

  cluster.send_new_service = true;
  bool api_service = WaitFor([&] {
    bool found = false;
    (*agent)->WithState([&](ClusterView& v, Backend&) {
      for (const FrontendView& f : v.lb().Frontends()) {
        found = found || f.address.ToString() == "10.96.0.99";
      }
    });
    return found;
  });
  CHECK(api_service);
  std::string metrics = (*agent)->MetricsText();
  CHECK(metrics.find("dpv2_api_watch_synced{resource=\"services\"} 1") != std::string::npos);
  CHECK(metrics.find("dpv2_api_watch_lists_total{resource=\"pods\"} 1") != std::string::npos);
  CHECK(Sample(metrics, "dpv2_api_objects_decoded_total") == listed + 1);  // the new Service
  (*agent)->Stop();
}

TEST_CASE("agent options need exactly one source") {
  CountingBackend backend;
  StructuredLog log(LogFormat::kText, [](absl::string_view) {});
  CHECK_FALSE(Agent::Create({.node_name = "a"}, &backend, &log).ok());
  CHECK_FALSE(Agent::Create({.node_name = "a", .manifests = "x",
                             .api_watches = WatchAll({})},
                            &backend, &log)
                  .ok());
}

}  // namespace
}  // namespace dpv2::agent::daemon
