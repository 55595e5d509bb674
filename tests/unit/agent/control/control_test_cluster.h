// Shared by the control tests: a small cluster as node-1 sees it (two
// namespaces, pods on node-1 and node-2, a Service of every frontend kind, a
// NetworkPolicy), and flow events between its pods.
#ifndef DPV2_TESTS_UNIT_AGENT_CONTROL_CONTROL_TEST_CLUSTER_H_
#define DPV2_TESTS_UNIT_AGENT_CONTROL_CONTROL_TEST_CLUSTER_H_

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "agent/cluster_view.h"
#include "dpv2/backend.h"

namespace dpv2::agent::testing {

// x/a 10.0.1.1 and x/b 10.0.1.2 on node-1; y/c 10.0.2.3 on node-2.
// shop/web: LoadBalancer 10.96.0.10:80 (nodePort 30080, ingress 203.0.113.7,
// externalIP 198.51.100.9) -> x/a, x/b, y/c :8080. shop/dns: UDP ClusterIP
// 10.96.0.53:53 -> 10.0.2.3:5353. NetworkPolicy x/only-x: pods of x accept
// only x (TCP 8080).
inline constexpr char kClusterYaml[] = R"(
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {topology.kubernetes.io/zone: zone-a}}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}, {type: ExternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-2}
status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Namespace
metadata: {name: y}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.0.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: y, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.2.3}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  externalIPs: [198.51.100.9]
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
status: {loadBalancer: {ingress: [{ip: 203.0.113.7}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.0.1.1], nodeName: node-1}
- {addresses: [10.0.1.2], nodeName: node-1}
- {addresses: [10.0.2.3], nodeName: node-2}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: shop}
spec:
  clusterIP: 10.96.0.53
  ports: [{name: dns, protocol: UDP, port: 53, targetPort: 5353}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: dns-1, namespace: shop, labels: {kubernetes.io/service-name: dns}}
addressType: IPv4
ports: [{name: dns, port: 5353, protocol: UDP}]
endpoints:
- {addresses: [10.0.2.3], nodeName: node-2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-x, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: 8080}]
)";

inline ClusterView MakeClusterView(const std::string& node = "node-1") {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(kClusterYaml, "cluster.yaml", &objects);
  INFO(absl::StrJoin(objects.errors, "\n"));
  REQUIRE(objects.errors.empty());
  absl::StatusOr<ClusterView> view = ClusterView::Create({.node_name = node});
  REQUIRE(view.ok());
  view->Update(objects);
  INFO(absl::StrJoin(view->problems(), "\n"));
  REQUIRE(view->problems().empty());
  return *std::move(view);
}

// A TCP event between two addresses, of the given type and flags.
inline FlowEvent Event(const std::string& src, uint16_t sport, const std::string& dst,
                       uint16_t dport, uint8_t type = DPV2_EVENT_TRACE, uint16_t flags = 0) {
  FlowEvent e;
  e.type = type;
  e.flags = flags;
  e.obs_point = DPV2_OBS_FROM_POD;
  e.tuple = {.src = *IpAddr::Parse(src), .dst = *IpAddr::Parse(dst), .sport = sport,
             .dport = dport, .proto = L4Proto::kTCP};
  e.orig_dst = e.tuple.dst;
  e.orig_dport = dport;
  return e;
}

// Whether every entry of `before` is in `after` byte for byte (key and value).
inline bool AllKeptAsWere(const std::vector<ConntrackEntry>& before,
                          const std::vector<ConntrackEntry>& after) {
  for (const ConntrackEntry& old : before) {
    bool same = false;
    for (const ConntrackEntry& now : after) {
      same |= std::memcmp(&old.key, &now.key, sizeof(old.key)) == 0 &&
              std::memcmp(&old.value, &now.value, sizeof(old.value)) == 0;
    }
    if (!same) {
      return false;
    }
  }
  return true;
}

}  // namespace dpv2::agent::testing

#endif  // DPV2_TESTS_UNIT_AGENT_CONTROL_CONTROL_TEST_CLUSTER_H_
