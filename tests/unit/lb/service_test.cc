// ServiceSpec validation: each rule with its exact message.
#include "dpv2/service.h"

#include <catch2/catch.hpp>

namespace dpv2 {
namespace {

IpAddr Ip(const char* s) { return *IpAddr::Parse(s); }

ServiceSpec Web() {
  ServiceSpec s{.namespace_name = "default",
                .name = "web",
                .type = ServiceType::kNodePort,
                .cluster_ips = {Ip("10.96.0.10")}};
  s.ports.push_back({.name = "http", .port = 80, .node_port = 30080});
  s.ports.push_back({.name = "dns", .protocol = L4Proto::kUDP, .port = 53, .node_port = 30053});
  return s;
}

std::string Error(const ServiceSpec& s, const PortRange& r = {}) {
  return std::string(s.Validate(r).message());
}

TEST_CASE("Service validation accepts a well-formed NodePort service") {
  CHECK(Web().Validate().ok());
}

TEST_CASE("Service validation rejects a nodePort outside the configured range") {
  ServiceSpec s = Web();
  s.ports[1].node_port = 80;
  CHECK(Error(s) == "service default/web: ports[1] \"dns\": nodePort 80 out of range 30000-32767");
  CHECK(s.Validate().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Error(Web(), {.first = 31000, .last = 32000}) ==
        "service default/web: ports[0] \"http\": nodePort 30080 out of range 31000-32000");
}

TEST_CASE("Service validation rejects malformed ports") {
  ServiceSpec s = Web();
  s.ports[1].name = "";
  CHECK(Error(s) ==
        "service default/web: ports[1] \"\": name must be set when the Service has more than one "
        "port");
  s = Web();
  s.ports[1].name = "http";
  CHECK(Error(s) == "service default/web: ports[1] \"http\": duplicate name (also ports[0])");
  s = Web();
  s.ports[0].port = 0;
  CHECK(Error(s) == "service default/web: ports[0] \"http\": port 0 out of range 1-65535");
  s = Web();
  s.ports[1].protocol = L4Proto::kICMP;
  CHECK(Error(s) ==
        "service default/web: ports[1] \"dns\": protocol ICMP is not supported (TCP, UDP or SCTP)");
  s = Web();
  s.ports[1].protocol = L4Proto::kTCP;
  s.ports[1].port = 80;
  CHECK(Error(s) == "service default/web: ports[1] \"dns\": duplicate port 80/TCP (also ports[0])");
  s = Web();
  s.ports[1].protocol = L4Proto::kTCP;
  s.ports[1].node_port = 30080;
  CHECK(Error(s) ==
        "service default/web: ports[1] \"dns\": duplicate nodePort 30080/TCP (also ports[0])");
  s = Web();
  s.type = ServiceType::kClusterIP;
  CHECK(Error(s) ==
        "service default/web: ports[0] \"http\": nodePort 30080 is not allowed for type ClusterIP");
  s = Web();
  s.ports.clear();
  CHECK(Error(s) == "service default/web: spec.ports must have at least one port");
}

TEST_CASE("Service validation rejects bad names and cluster IPs") {
  ServiceSpec s = Web();
  s.namespace_name = "";
  CHECK(Error(s) == "service /web: metadata.namespace must not be empty");
  s = Web();
  s.name = "";
  CHECK(Error(s) == "service default/: metadata.name must not be empty");
  s = Web();
  s.cluster_ips = {Ip("10.96.0.10"), Ip("10.96.0.11")};
  CHECK(Error(s) ==
        "service default/web: spec.clusterIPs[1] 10.96.0.11 is IPv4 like clusterIPs[0]: dual "
        "stack needs one address of each family");
  s.cluster_ips = {Ip("10.96.0.10"), Ip("fd00::10"), Ip("10.96.0.12")};
  CHECK(Error(s) == "service default/web: spec.clusterIPs has 3 addresses, at most 2");
  s.cluster_ips = {Ip("0.0.0.0")};
  CHECK(Error(s) == "service default/web: spec.clusterIPs[0] 0.0.0.0 is not a usable address");
  s.cluster_ips = {};
  CHECK(Error(s) == "service default/web: spec.clusterIPs: a NodePort Service cannot be headless");
  s.cluster_ips = {Ip("10.96.0.10"), Ip("fd00::10")};
  CHECK(s.Validate().ok());
}

TEST_CASE("Service validation accepts a headless ClusterIP service without ports") {
  ServiceSpec s{.namespace_name = "default", .name = "db"};
  CHECK(s.IsHeadless());
  CHECK(s.Validate().ok());
}

TEST_CASE("Service validation checks session affinity timeout range 1-86400") {
  ServiceSpec s = Web();
  s.session_affinity = SessionAffinity::kClientIP;
  CHECK(s.affinity_timeout_s == 10800);
  CHECK(s.Validate().ok());
  s.affinity_timeout_s = 0;
  CHECK(Error(s) ==
        "service default/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds 0 out of range "
        "1-86400");
  s.affinity_timeout_s = 86401;
  CHECK_FALSE(s.Validate().ok());
  s.affinity_timeout_s = 86400;
  CHECK(s.Validate().ok());
  // Without ClientIP affinity the timeout is not used.
  s.session_affinity = SessionAffinity::kNone;
  s.affinity_timeout_s = 0;
  CHECK(s.Validate().ok());
}

TEST_CASE("Service validation checks traffic policy and health check node port") {
  ServiceSpec s = Web();
  s.type = ServiceType::kClusterIP;
  for (ServicePortSpec& p : s.ports) {
    p.node_port = 0;
  }
  s.external_traffic_policy = TrafficPolicy::kLocal;
  CHECK(Error(s) ==
        "service default/web: spec.externalTrafficPolicy Local needs type NodePort or "
        "LoadBalancer, or externalIPs");
  s.external_ips = {Ip("192.0.2.1")};
  CHECK(s.Validate().ok());

  s = Web();
  s.health_check_node_port = 30100;
  CHECK(Error(s) ==
        "service default/web: spec.healthCheckNodePort is only for type LoadBalancer with "
        "externalTrafficPolicy Local");
  s.type = ServiceType::kLoadBalancer;
  s.external_traffic_policy = TrafficPolicy::kLocal;
  CHECK(s.Validate().ok());
  s.health_check_node_port = 100;
  CHECK(Error(s) == "service default/web: spec.healthCheckNodePort 100 out of range 30000-32767");
}

TEST_CASE("Service validation checks EndpointSlices") {
  ServiceSpec s = Web();
  s.endpoint_slices.push_back({.name = "web-1", .address_type = Family::kV4});
  s.endpoint_slices[0].endpoints.push_back({.addresses = {Ip("fd00::1")}});
  CHECK(Error(s) ==
        "service default/web: endpointSlices[0] \"web-1\": endpoints[0].addresses[0] fd00::1 is "
        "not IPv4 (addressType)");
  s.endpoint_slices[0].endpoints[0].addresses.clear();
  CHECK(Error(s) ==
        "service default/web: endpointSlices[0] \"web-1\": endpoints[0].addresses must not be "
        "empty");
  s.endpoint_slices[0].endpoints[0].addresses = {Ip("10.0.0.1")};
  CHECK(s.Validate().ok());
  s.endpoint_slices.push_back({.name = "web-1"});
  CHECK(Error(s) == "service default/web: endpointSlices[1] \"web-1\": duplicate name");
  s.endpoint_slices[1].name = "web-2";
  s.endpoint_slices[1].ports.push_back({.protocol = L4Proto::kICMP, .port = 1});
  CHECK(Error(s) ==
        "service default/web: endpointSlices[1] \"web-2\": ports[0]: protocol ICMP is not "
        "supported (TCP, UDP or SCTP)");
}

TEST_CASE("Endpoint conditions use the API defaults when absent") {
  EndpointConditions c;
  CHECK(c.IsReady());
  CHECK(c.IsServing());
  CHECK_FALSE(c.IsTerminating());
  c.ready = false;
  c.terminating = true;
  CHECK_FALSE(c.IsReady());
  CHECK(c.IsServing());
  CHECK(c.IsTerminating());
}

TEST_CASE("IsExternallyAccessible counts node ports, LB IPs and external IPs") {
  ServiceSpec s = Web();
  CHECK(s.IsExternallyAccessible());
  s.type = ServiceType::kClusterIP;
  CHECK_FALSE(s.IsExternallyAccessible());
  s.external_ips = {Ip("192.0.2.1")};
  CHECK(s.IsExternallyAccessible());
  CHECK(Web().Key() == "default/web");
  CHECK(ServiceTypeName(ServiceType::kLoadBalancer) == "LoadBalancer");
}

}  // namespace
}  // namespace dpv2
