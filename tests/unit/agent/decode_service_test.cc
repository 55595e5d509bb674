// Decoding of v1 Service and discovery/v1 EndpointSlice: defaults and errors.
#include <catch2/catch.hpp>

#include "agent/k8s/objects.h"
#include "decode_test_util.h"

namespace dpv2::agent::k8s {
namespace {

TEST_CASE("a minimal Service gets the API server's defaults") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - port: 80
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const ServiceObject& svc = o.services.at("default/web");
  CHECK(svc.spec.namespace_name == "default");
  CHECK(svc.spec.type == ServiceType::kClusterIP);
  REQUIRE(svc.spec.cluster_ips.size() == 1);
  CHECK(svc.spec.cluster_ips[0].ToString() == "10.96.0.10");
  REQUIRE(svc.spec.ports.size() == 1);
  CHECK(svc.spec.ports[0].protocol == L4Proto::kTCP);
  CHECK(svc.spec.ports[0].name.empty());
  CHECK(svc.target_ports[0].number == 80);  // targetPort defaults to port
  CHECK(svc.spec.session_affinity == SessionAffinity::kNone);
  CHECK(svc.spec.external_traffic_policy == TrafficPolicy::kCluster);
  CHECK(svc.spec.internal_traffic_policy == TrafficPolicy::kCluster);
  REQUIRE(svc.selector.has_value());
  CHECK(svc.selector->at("app") == "web");
}

TEST_CASE("a NodePort Service with Local policies, affinity and named targetPort decodes fully") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: np, namespace: shop}
spec:
  type: LoadBalancer
  clusterIPs: [10.96.0.11, "fd00::11"]
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  sessionAffinity: ClientIP
  externalIPs: [192.0.2.7]
  loadBalancerSourceRanges: [" 198.51.100.0/24 "]
  healthCheckNodePort: 32000
  trafficDistribution: PreferClose
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
status:
  loadBalancer:
    ingress: [{ip: 203.0.113.9}, {hostname: lb.example.com}]
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const ServiceObject& svc = o.services.at("shop/np");
  CHECK(svc.spec.type == ServiceType::kLoadBalancer);
  CHECK(svc.spec.cluster_ips.size() == 2);
  CHECK(svc.spec.external_traffic_policy == TrafficPolicy::kLocal);
  CHECK(svc.spec.internal_traffic_policy == TrafficPolicy::kLocal);
  CHECK(svc.spec.session_affinity == SessionAffinity::kClientIP);
  CHECK(svc.spec.affinity_timeout_s == 10800);
  CHECK(svc.spec.external_ips.size() == 1);
  REQUIRE(svc.spec.load_balancer_ips.size() == 1);
  CHECK(svc.spec.load_balancer_ips[0].ToString() == "203.0.113.9");
  REQUIRE(svc.spec.load_balancer_source_ranges.size() == 1);
  CHECK(svc.spec.load_balancer_source_ranges[0].ToString() == "198.51.100.0/24");
  CHECK(svc.spec.health_check_node_port == 32000);
  CHECK(svc.spec.traffic_distribution == "PreferClose");
  CHECK(svc.spec.ports[0].node_port == 30080);
  CHECK(svc.target_ports[0].name == "http");
  CHECK(svc.spec.ports[1].protocol == L4Proto::kUDP);
  CHECK(svc.target_ports[1].number == 5353);
}

TEST_CASE("targetPort 0 defaults to port but the string \"0\" is an error naming the field") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: a, port: 80, targetPort: 0}
  - {name: b, port: 81, targetPort: "0"}
)");
  CHECK(o.services.empty());
  CHECK(HasError(o, "Service default/web: spec.ports[1].targetPort: must be 1-65535 or a name, "
                    "got \"0\""));
  CHECK(o.errors.size() == 1);
}

TEST_CASE("every invalid Service field is reported with its path") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  type: Fancy
  clusterIP: 10.96.0.300
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}
  externalTrafficPolicy: Local
  ports:
  - {port: 0}
  - {name: x, port: 70000, protocol: ICMP, targetPort: 99999}
  - {name: x, port: 80, nodePort: 30000}
)");
  INFO(Errors(o));
  CHECK(o.services.empty());
  CHECK(HasError(o, "Service default/bad: spec.type: Unsupported value: \"Fancy\": supported "
                    "values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\", \"ExternalName\""));
  CHECK(HasError(o, "Service default/bad: spec.clusterIP: must be a valid IP address or "
                    "\"None\", got \"10.96.0.300\""));
  CHECK(HasError(o, "Service default/bad: spec.sessionAffinityConfig.clientIP.timeoutSeconds: "
                    "must be between 1 and 86400, inclusive, got 0"));
  CHECK(HasError(o, "Service default/bad: spec.externalTrafficPolicy: may only be set for "
                    "externally-accessible services"));
  CHECK(HasError(o, "Service default/bad: spec.ports[0].name: Required value: every port "
                    "needs a name when a Service has several"));
  CHECK(HasError(o, "Service default/bad: spec.ports[0].port: must be between 1 and 65535, "
                    "inclusive, got 0"));
  CHECK(HasError(o, "Service default/bad: spec.ports[1].port: must be between 1 and 65535, "
                    "inclusive, got 70000"));
  CHECK(HasError(o, "Service default/bad: spec.ports[1].protocol: Unsupported value: \"ICMP\": "
                    "supported values: \"TCP\", \"UDP\", \"SCTP\""));
  CHECK(HasError(o, "Service default/bad: spec.ports[1].targetPort: must be 1-65535 or a name, "
                    "got 99999"));
  CHECK(HasError(o, "Service default/bad: spec.ports[2].name: Duplicate value: \"x\""));
  CHECK(HasError(o, "Service default/bad: spec.ports[2].nodePort: Forbidden: may not be used "
                    "when `type` is 'ClusterIP'"));
}

TEST_CASE("clusterIPs must agree with clusterIP and hold one address per family") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.2], ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {clusterIPs: [10.96.0.1, 10.96.0.2], ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, selector: {app: x}}
)");
  INFO(Errors(o));
  CHECK(HasError(o, "Service default/a: spec.clusterIPs[0]: must be the same as clusterIP "
                    "\"10.96.0.1\", got \"10.96.0.2\""));
  CHECK(HasError(o, "Service default/b: spec.clusterIPs: dual-stack clusterIPs must be one "
                    "IPv4 and one IPv6 address"));
  REQUIRE(o.services.count("default/headless") == 1);
  CHECK(o.services.at("default/headless").spec.IsHeadless());
}

TEST_CASE("a Service without clusterIP is kept, with a warning that offline it has none") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {ports: [{port: 80}]}
)");
  CHECK(o.errors.empty());
  REQUIRE(o.services.count("default/a") == 1);
  CHECK(o.services.at("default/a").spec.cluster_ips.empty());
  REQUIRE(o.warnings.size() == 1);
  CHECK(o.warnings[0].find("Service default/a: spec.clusterIP: not set") == 0);
}

TEST_CASE("ExternalName Services are decoded but marked as never proxied") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: ext2}
spec: {type: ExternalName}
)");
  REQUIRE(o.services.count("default/ext") == 1);
  CHECK(o.services.at("default/ext").external_name);
  CHECK(HasError(o, "Service default/ext2: spec.externalName: Required value"));
}

TEST_CASE("an invalid Service never disturbs the valid objects around it") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: good1}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: Bad_Name}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: good2}
spec: {clusterIP: 10.96.0.3, ports: [{port: "http"}]}
---
apiVersion: v1
kind: Service
metadata: {name: good3}
spec: {clusterIP: 10.96.0.4, ports: [{port: 80}]}
)");
  CHECK(o.services.size() == 2);
  CHECK(o.services.count("default/good1") == 1);
  CHECK(o.services.count("default/good3") == 1);
  CHECK(o.errors.size() == 3);
  CHECK(HasError(o, "Service default/good2: spec.ports[0].port: must be an integer, got \"http\""));
}

TEST_CASE("EndpointSlice conditions keep absent as absent, so kube-proxy's defaults apply") {
  ClusterObjects o = Load(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{port: 8080}, {name: metrics, port: 9090, protocol: UDP}]
endpoints:
- addresses: [10.0.0.1]
- addresses: [10.0.0.2]
  conditions: {ready: false, serving: true, terminating: true}
  nodeName: node-a
  zone: zone-a
  hints: {forZones: [{name: zone-a}], forNodes: [{name: node-a}]}
  targetRef: {kind: Pod, name: web-1}
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const EndpointSliceObject& s = o.endpoint_slices.at("default/web-abc");
  CHECK(s.service_name == "web");
  CHECK(s.spec.address_type == Family::kV4);
  REQUIRE(s.spec.ports.size() == 2);
  CHECK(s.spec.ports[0].name.empty());
  CHECK(s.spec.ports[0].protocol == L4Proto::kTCP);
  CHECK(s.spec.ports[0].port == 8080);
  CHECK(s.spec.ports[1].protocol == L4Proto::kUDP);
  REQUIRE(s.spec.endpoints.size() == 2);
  CHECK_FALSE(s.spec.endpoints[0].conditions.ready.has_value());
  CHECK_FALSE(s.spec.endpoints[0].conditions.serving.has_value());
  CHECK_FALSE(s.spec.endpoints[0].conditions.terminating.has_value());
  CHECK(s.spec.endpoints[0].conditions.IsReady());
  CHECK(*s.spec.endpoints[1].conditions.ready == false);
  CHECK(s.spec.endpoints[1].conditions.IsTerminating());
  CHECK(s.spec.endpoints[1].node_name == "node-a");
  CHECK(s.spec.endpoints[1].zone == "zone-a");
  CHECK(s.spec.endpoints[1].hints.for_zones == std::vector<std::string>{"zone-a"});
  CHECK(s.spec.endpoints[1].hints.for_nodes == std::vector<std::string>{"node-a"});
  CHECK(s.target_pods[1] == "default/web-1");
  CHECK(s.target_pods[0].empty());
}

TEST_CASE("EndpointSlice errors name the endpoint and field") {
  ClusterObjects o = Load(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, namespace: ns1}
addressType: IPv6
ports: [{port: 70000}, {name: Bad, port: 1}]
endpoints:
- addresses: [10.0.0.1]
- addresses: []
- addresses: ["fd00::1"]
  conditions: {ready: "yes"}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s2}
endpoints: []
)");
  INFO(Errors(o));
  CHECK(o.endpoint_slices.empty());
  CHECK(HasError(o, "EndpointSlice ns1/s: ports[0].port: must be between 0 and 65535, "
                    "inclusive, got 70000"));
  CHECK(HasError(o, "EndpointSlice ns1/s: endpoints[0].addresses[0]: must be a valid IPv6 "
                    "address (addressType IPv6), got \"10.0.0.1\""));
  CHECK(HasError(o, "EndpointSlice ns1/s: endpoints[1].addresses: Required value: must "
                    "contain at least 1 address"));
  CHECK(HasError(o, "EndpointSlice ns1/s: endpoints[2].conditions.ready: must be true or "
                    "false, got \"yes\""));
  CHECK(HasError(o, "EndpointSlice default/s2: addressType: Required value"));
}

TEST_CASE("FQDN EndpointSlices are accepted but left out, with a warning") {
  ClusterObjects o = Load(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: f, labels: {kubernetes.io/service-name: web}}
addressType: FQDN
endpoints: [{addresses: [db.example.com]}]
)");
  CHECK(o.errors.empty());
  CHECK(o.endpoint_slices.empty());
  REQUIRE(o.warnings.size() == 1);
  CHECK(o.warnings[0] == "EndpointSlice default/f: addressType FQDN is not proxied; ignored");
}

}  // namespace
}  // namespace dpv2::agent::k8s
