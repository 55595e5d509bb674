// The reports dpv2ctl prints online and offline: `services --output json`
// gives one entry per frontend of every kind (a NodePort per node address, a
// LoadBalancer per ingress IP, each external IP) with its backends, and the
// text forms are made from the JSON.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "agent/reports.h"
#include "control_test_cluster.h"
#include "dpv2/sim.h"

namespace dpv2::agent {
namespace {

using testing::MakeClusterView;

// "kind address:port/protocol" of every frontend of `service`.
std::set<std::string> Frontends(const nlohmann::json& services, const std::string& service) {
  std::set<std::string> out;
  for (const nlohmann::json& s : services) {
    if (s["service"] == service) {
      out.insert(s["kind"].get<std::string>() + " " + s["address"].get<std::string>() + ":" +
                 std::to_string(s["port"].get<int>()) + "/" + s["protocol"].get<std::string>());
    }
  }
  return out;
}

TEST_CASE("services json: a LoadBalancer has its ClusterIP, a NodePort per node address, "
          "its ingress IPs and external IPs") {
  nlohmann::json services = ServicesJson(MakeClusterView());
  CHECK(Frontends(services, "shop/web") == std::set<std::string>{
                                                "ClusterIP 10.96.0.10:80/TCP",
                                                "NodePort 192.168.0.1:30080/TCP",
                                                "NodePort 198.18.0.1:30080/TCP",
                                                "LoadBalancer 203.0.113.7:80/TCP",
                                                "ExternalIP 198.51.100.9:80/TCP",
                                            });
  CHECK(Frontends(services, "shop/dns") == std::set<std::string>{"ClusterIP 10.96.0.53:53/UDP"});
  for (const nlohmann::json& s : services) {
    INFO(s.dump());
    if (s["service"] == "shop/web") {
      // externalTrafficPolicy Cluster: every ready endpoint, on any node.
      CHECK(s["backends"] == nlohmann::json({"10.0.1.1:8080", "10.0.1.2:8080", "10.0.2.3:8080"}));
      CHECK_FALSE(s.contains("internal_backends"));
      CHECK(s["port_name"] == "http");
    } else {
      CHECK(s["backends"] == nlohmann::json({"10.0.2.3:5353"}));
    }
  }
}

TEST_CASE("services json: externalTrafficPolicy Local gives external frontends this node's "
          "endpoints and internal_backends for the node's pods") {
  k8s::ClusterObjects objects;
  std::string yaml = testing::kClusterYaml;
  const std::string lb = "  type: LoadBalancer\n";
  yaml.replace(yaml.find(lb), lb.size(), lb + "  externalTrafficPolicy: Local\n");
  k8s::AddManifestText(yaml, "cluster.yaml", &objects);
  REQUIRE(objects.errors.empty());
  absl::StatusOr<ClusterView> view = ClusterView::Create({.node_name = "node-1"});
  REQUIRE(view.ok());
  view->Update(objects);
  REQUIRE(view->problems().empty());
  int external = 0;
  for (const nlohmann::json& s : ServicesJson(*view)) {
    if (s["service"] != "shop/web") {
      continue;
    }
    INFO(s.dump());
    if (s["kind"] == "ClusterIP") {
      CHECK(s["backends"].size() == 3);
      CHECK_FALSE(s.contains("internal_backends"));
    } else {
      ++external;
      CHECK(s["backends"] == nlohmann::json({"10.0.1.1:8080", "10.0.1.2:8080"}));
      CHECK(s["internal_backends"].size() == 3);
    }
  }
  CHECK(external == 4);
}

TEST_CASE("services text lists each frontend with its backends, from the JSON") {
  nlohmann::json services = ServicesJson(MakeClusterView());
  std::string text = ServicesText(services);
  CHECK(text.find("shop/web:http  NodePort 198.18.0.1:30080/TCP -> 10.0.1.1:8080 10.0.1.2:8080 "
                  "10.0.2.3:8080\n") != std::string::npos);
  CHECK(text.find("shop/dns:dns  ClusterIP 10.96.0.53:53/UDP -> 10.0.2.3:5353\n") !=
        std::string::npos);
  CHECK(ServicesText(nlohmann::json::array()) == "no Service frontends\n");
}

TEST_CASE("trace requests: malformed fields are refused with their name") {
  CHECK(ParseTraceRequest({{"to", "10.96.0.10"}, {"port", 80}}).status().message() ==
        "trace: \"from\" must be a pod (namespace/name) or an address");
  CHECK(ParseTraceRequest({{"from", "x/a"}, {"to", "10.96.0.10"}}).status().message() ==
        "trace: missing \"port\"");
  CHECK(ParseTraceRequest({{"from", "x/a"}, {"to", "10.96.0.10"}, {"port", "80"}})
            .status()
            .message() == "trace port: must be an integer 1-65535, got \"80\"");
  CHECK(ParseTraceRequest({{"from", "x/a"}, {"to", "10.96.0.10"}, {"port", 80}, {"sport", 70000}})
            .status()
            .message() == "trace sport: must be an integer 1-65535, got 70000");
  CHECK(ParseTraceRequest(
            {{"from", "x/a"}, {"to", "10.96.0.10"}, {"port", 80}, {"protocol", "ICMP"}})
            .status()
            .message() == "trace protocol: must be TCP, UDP or SCTP, got \"ICMP\"");
  absl::StatusOr<TraceRequest> ok = ParseTraceRequest(
      {{"from", "x/a"}, {"to", "10.96.0.53"}, {"port", 53}, {"protocol", "udp"}, {"sport", 5000}});
  REQUIRE(ok.ok());
  CHECK(ok->protocol == L4Proto::kUDP);
  CHECK(ok->sport == 5000);
  CHECK(ParseTraceRequest(TraceRequestJson(*ok))->to == "10.96.0.53");
}

TEST_CASE("trace: a pod's UDP packet to a ClusterIP is translated to its backend") {
  ClusterView view = MakeClusterView();
  absl::StatusOr<std::unique_ptr<Backend>> sim = MakeSimBackend({});
  REQUIRE(sim.ok());
  REQUIRE(view.ApplyTo(**sim).ok());
  absl::StatusOr<nlohmann::json> trace = TraceJson(
      view, **sim, {.from = "x/a", .to = "10.96.0.53", .port = 53, .protocol = L4Proto::kUDP});
  REQUIRE(trace.ok());
  INFO(trace->dump(2));
  CHECK((*trace)["verdict"] == "PASS");
  CHECK((*trace)["sport"] == 40000);
  REQUIRE((*trace)["outputs"].size() == 1);
  CHECK((*trace)["outputs"][0].get<std::string>().find("10.0.2.3") != std::string::npos);
  std::string text = TraceText(*trace);
  CHECK(text.rfind("packet: ", 0) == 0);
  CHECK(text.find("\nresult: PASS\n") != std::string::npos);

  absl::StatusOr<nlohmann::json> unknown =
      TraceJson(view, **sim, {.from = "x/zz", .to = "10.96.0.53", .port = 53});
  CHECK(unknown.status().message() ==
        "trace from: \"x/zz\" is neither a known pod (namespace/name) nor an address");
  absl::StatusOr<nlohmann::json> families =
      TraceJson(view, **sim, {.from = "x/a", .to = "fd00::1", .port = 53});
  CHECK(families.status().message() == "trace: from and to are of different address families");
}

}  // namespace
}  // namespace dpv2::agent
