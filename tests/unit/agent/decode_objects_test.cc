// Decoding of Pod, Namespace, Node, NetworkPolicy, AdminNetworkPolicy,
// BaselineAdminNetworkPolicy and NetworkLogging: defaults and every error path.
#include <catch2/catch.hpp>

#include "agent/k8s/objects.h"
#include "decode_test_util.h"

namespace dpv2::agent::k8s {
namespace {

TEST_CASE("a Pod decodes labels, placement, container ports with TCP default and its IPs") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Pod
metadata:
  name: web-7d4b9-abcde
  namespace: x
  labels: {pod: a, pod-template-hash: 7d4b9}
  ownerReferences: [{kind: ReplicaSet, name: web-7d4b9, controller: true}]
spec:
  nodeName: node-1
  containers:
  - name: c
    ports:
    - {name: serve-80, containerPort: 80}
    - {containerPort: 81, protocol: UDP}
  initContainers:
  - name: sidecar
    ports: [{name: side, containerPort: 9000, protocol: SCTP}]
status:
  phase: Running
  podIP: 10.0.1.5
  podIPs: [{ip: 10.0.1.5}, {ip: "fd00::5"}]
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const PodObject& pod = o.pods.at("x/web-7d4b9-abcde");
  CHECK(pod.info.labels.at("pod") == "a");
  CHECK(pod.info.node_name == "node-1");
  CHECK_FALSE(pod.info.host_network);
  REQUIRE(pod.info.container_ports.size() == 3);
  CHECK(pod.info.container_ports[0].name == "serve-80");
  CHECK(pod.info.container_ports[0].protocol == L4Proto::kTCP);
  CHECK(pod.info.container_ports[1].protocol == L4Proto::kUDP);
  CHECK(pod.info.container_ports[2].protocol == L4Proto::kSCTP);
  REQUIRE(pod.info.ips.size() == 2);
  CHECK(pod.info.ips[0].ToString() == "10.0.1.5");
  CHECK(pod.info.workload_kind == "Deployment");
  CHECK(pod.info.workload_name == "web");
  CHECK(pod.phase == "Running");
}

TEST_CASE("Pod errors name the container port field; finished pods hold no address") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - ports:
    - {name: TOO_LONG_PORT_NAME, containerPort: 0}
    - {protocol: tcp}
status: {podIP: 10.0.0.999}
---
apiVersion: v1
kind: Pod
metadata: {name: done}
status: {phase: Succeeded, podIP: 10.0.0.7}
)");
  INFO(Errors(o));
  CHECK(o.pods.count("default/p") == 0);
  CHECK(HasError(o, "Pod default/p: spec.containers[0].ports[0].containerPort: must be between "
                    "1 and 65535, inclusive, got 0"));
  CHECK(HasError(o, "Pod default/p: spec.containers[0].ports[1].containerPort: Required value"));
  CHECK(HasError(o, "Pod default/p: spec.containers[0].ports[1].protocol: Unsupported value: "
                    "\"tcp\": supported values: \"TCP\", \"UDP\", \"SCTP\""));
  CHECK(HasError(o, "Pod default/p: status.podIP: must be a valid IP address, got "
                    "\"10.0.0.999\""));
  REQUIRE(o.pods.count("default/done") == 1);
  CHECK(o.pods.at("default/done").info.ips.empty());
}

TEST_CASE("a Namespace always carries kubernetes.io/metadata.name, as the API server sets it") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Namespace
metadata:
  name: y
  labels: {ns: y, kubernetes.io/metadata.name: spoofed}
  annotations: {policy.network.gke.io/enable-deny-logging: "true"}
)");
  REQUIRE(o.errors.empty());
  const NamespaceInfo& ns = o.namespaces.at("y");
  CHECK(ns.labels.at("kubernetes.io/metadata.name") == "y");
  CHECK(ns.labels.at("ns") == "y");
  CHECK(ns.annotations.at("policy.network.gke.io/enable-deny-logging") == "true");
}

TEST_CASE("unquoted YAML label values are read as written; JSON booleans are errors") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {ns: y, enabled: true, version: 1.10}}
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  CHECK(o.namespaces.at("y").labels.at("ns") == "y");
  CHECK(o.namespaces.at("y").labels.at("enabled") == "true");
  CHECK(o.namespaces.at("y").labels.at("version") == "1.10");
  ClusterObjects j;
  AddManifestText(R"({"apiVersion":"v1","kind":"Namespace",)"
                  R"("metadata":{"name":"z","labels":{"enabled":true}}})",
                  "ns.json", &j);
  CHECK(j.namespaces.empty());
  CHECK(HasError(j, "Namespace z: metadata.labels[enabled]: must be a string, got true "
                    "(quote it in YAML)"));
}

TEST_CASE("a Node gives its zone from topology.kubernetes.io/zone and its addresses") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels: {topology.kubernetes.io/zone: us-central1-a}
spec: {podCIDR: 10.0.1.0/24}
status:
  addresses:
  - {type: Hostname, address: node-1}
  - {type: InternalIP, address: 192.168.0.10}
  - {type: ExternalIP, address: 203.0.113.10}
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const NodeObject& node = o.nodes.at("node-1");
  CHECK(node.zone == "us-central1-a");
  REQUIRE(node.Ips().size() == 2);
  CHECK(node.Ips()[0].ToString() == "192.168.0.10");
  REQUIRE(node.pod_cidrs.size() == 1);
  CHECK(node.pod_cidrs[0].ToString() == "10.0.1.0/24");
}

TEST_CASE("Node address errors name the field") {
  ClusterObjects o = Load(R"(
apiVersion: v1
kind: Node
metadata: {name: n}
status: {addresses: [{type: InternalIP, address: not-an-ip}, {address: 1.2.3.4}]}
)");
  CHECK(o.nodes.empty());
  CHECK(HasError(o, "Node n: status.addresses[0].address: must be a valid IP address, got "
                    "\"not-an-ip\""));
  CHECK(HasError(o, "Node n: status.addresses[1].type: Required value"));
}

TEST_CASE("a NetworkPolicy decodes selectors, peers and ports, keeping policyTypes absent") {
  ClusterObjects o = Load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: x}
spec:
  podSelector:
    matchLabels: {pod: a}
    matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  ingress:
  - from:
    - podSelector: {}
      namespaceSelector: {matchLabels: {ns: y}}
    - ipBlock: {cidr: 10.0.0.0/16, except: [10.0.5.0/24]}
    ports:
    - {port: 80}
    - {port: serve-81, protocol: UDP}
    - {port: 1000, endPort: 2000, protocol: SCTP}
  egress:
  - {}
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const NetworkPolicy& np = o.network_policies.at("x/allow");
  CHECK_FALSE(np.spec.policy_types.has_value());
  CHECK(np.spec.pod_selector.match_labels.at("pod") == "a");
  REQUIRE(np.spec.pod_selector.match_expressions.size() == 1);
  CHECK(np.spec.pod_selector.match_expressions[0].op == LabelSelectorOperator::kNotIn);
  REQUIRE(np.spec.ingress.size() == 1);
  REQUIRE(np.spec.ingress[0].from.size() == 2);
  CHECK(np.spec.ingress[0].from[0].pod_selector.has_value());
  CHECK(np.spec.ingress[0].from[0].pod_selector->empty());
  CHECK(np.spec.ingress[0].from[0].namespace_selector.has_value());
  REQUIRE(np.spec.ingress[0].from[1].ip_block.has_value());
  CHECK(np.spec.ingress[0].from[1].ip_block->except.size() == 1);
  REQUIRE(np.spec.ingress[0].ports.size() == 3);
  CHECK_FALSE(np.spec.ingress[0].ports[0].protocol.has_value());
  CHECK(std::get<int32_t>(*np.spec.ingress[0].ports[0].port) == 80);
  CHECK(std::get<std::string>(*np.spec.ingress[0].ports[1].port) == "serve-81");
  CHECK(*np.spec.ingress[0].ports[2].end_port == 2000);
  REQUIRE(np.spec.egress.size() == 1);
  CHECK(np.spec.egress[0].to.empty());
  CHECK(EffectivePolicyTypes(np.spec) == std::array<bool, 2>{true, true});
}

TEST_CASE("a non-canonical ipBlock CIDR is accepted as its network with a warning") {
  ClusterObjects o = Load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.1.0.1/4}}]}]
)");
  INFO(Errors(o));
  CHECK(o.errors.empty());
  CHECK(o.network_policies.count("x/p") == 1);
  REQUIRE(o.warnings.size() == 1);
  CHECK(o.warnings[0].find("10.1.0.1/4") != std::string::npos);
  CHECK(o.warnings[0].find("0.0.0.0/4") != std::string::npos);
}

TEST_CASE("NetworkPolicy errors name the rule, peer and port") {
  ClusterObjects o = Load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {matchExpressions: [{key: a, operator: In}, {key: b, operator: Maybe}]}
  policyTypes: [Ingress, Sideways]
  ingress:
  - from:
    - {}
    - ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}
      podSelector: {}
    - ipBlock: {cidr: nonsense}
    ports:
    - {port: http, endPort: 90}
    - {port: 100, endPort: 90}
    - {port: 0}
)");
  INFO(Errors(o));
  CHECK(o.network_policies.empty());
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.podSelector.matchExpressions[0].values: Required "
                    "value: must be specified when `operator` is 'In'"));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.podSelector.matchExpressions[1].operator: "
                    "Unsupported value: \"Maybe\": supported values: \"In\", \"NotIn\", "
                    "\"Exists\", \"DoesNotExist\""));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.policyTypes[1]: Unsupported value: "
                    "\"Sideways\": supported values: \"Ingress\", \"Egress\""));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].from[0]: Required value: must "
                    "specify a peer (podSelector, namespaceSelector or ipBlock)"));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].from[1].ipBlock.except[0]: must be "
                    "a strict subset of `cidr` 10.0.0.0/16, got \"10.1.0.0/24\""));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].from[1]: Forbidden: may not specify "
                    "both ipBlock and another peer"));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].from[2].ipBlock.cidr: must be a "
                    "CIDR such as 10.0.0.0/8, got \"nonsense\""));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: Forbidden: may "
                    "not be specified when `port` is absent or a name"));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].ports[1].endPort: must be greater "
                    "than or equal to `port` 100, got 90"));
  CHECK(HasError(o, "NetworkPolicy x/bad: spec.ingress[0].ports[2].port: must be 1-65535 or "
                    "a name, got 0"));
}

TEST_CASE("an AdminNetworkPolicy decodes priority, subject, ordered rules and port kinds") {
  ClusterObjects o = Load(R"(
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - name: pass-y
    action: Pass
    from: [{namespaces: {matchLabels: {ns: y}}}]
  - action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}}]
    ports: [{portNumber: {protocol: TCP, port: 80}}, {namedPort: serve-81},
            {portRange: {protocol: UDP, start: 1000, end: 2000}}]
  egress:
  - action: Allow
    to: [{networks: [10.0.0.0/8]}, {nodes: {matchLabels: {role: infra}}}]
)");
  INFO(Errors(o));
  REQUIRE(o.errors.empty());
  const AdminNetworkPolicy& anp = o.admin_network_policies.at("anp");
  CHECK(anp.spec.priority == 10);
  CHECK(anp.spec.subject.namespaces.has_value());
  REQUIRE(anp.spec.ingress.size() == 2);
  CHECK(anp.spec.ingress[0].name == "pass-y");
  CHECK(anp.spec.ingress[0].action == AdminNetworkPolicyRuleAction::kPass);
  CHECK_FALSE(anp.spec.ingress[0].ports.has_value());
  REQUIRE(anp.spec.ingress[1].ports->size() == 3);
  CHECK((*anp.spec.ingress[1].ports)[0].port_number->port == 80);
  CHECK(*(*anp.spec.ingress[1].ports)[1].named_port == "serve-81");
  CHECK((*anp.spec.ingress[1].ports)[2].port_range->end == 2000);
  REQUIRE(anp.spec.egress[0].to.size() == 2);
  CHECK(anp.spec.egress[0].to[0].networks->at(0) == "10.0.0.0/8");
  CHECK(anp.spec.egress[0].to[1].nodes.has_value());
}

TEST_CASE("AdminNetworkPolicy errors: priority, subject, action, peers, ports") {
  ClusterObjects o = Load(R"(
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: bad}
spec:
  priority: 1001
  subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}
  ingress:
  - action: Reject
    from: []
  egress:
  - action: Allow
    to: [{networks: [not-a-cidr]}, {}]
    ports: [{portNumber: {protocol: TCP, port: 80}, namedPort: web}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: nopri}
spec: {subject: {namespaces: {}}}
)");
  INFO(Errors(o));
  CHECK(o.admin_network_policies.empty());
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.priority: must be between 0 and 1000, "
                    "inclusive, got 1001"));
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.subject: must set exactly one of "
                    "`namespaces` and `pods`"));
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.ingress[0].action: Unsupported value: "
                    "\"Reject\": supported values: \"Allow\", \"Deny\", \"Pass\""));
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.ingress[0].from: Required value: must have "
                    "at least 1 peer"));
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.egress[0].to[0].networks[0]: must be a CIDR "
                    "such as 10.0.0.0/8, got \"not-a-cidr\""));
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.egress[0].to[1]: must set exactly one of "
                    "`namespaces`, `pods`, `nodes` and `networks`"));
  CHECK(HasError(o, "AdminNetworkPolicy bad: spec.egress[0].ports[0]: must set exactly one of "
                    "`portNumber`, `namedPort` and `portRange`"));
  CHECK(HasError(o, "AdminNetworkPolicy nopri: spec.priority: Required value"));
}

TEST_CASE("BaselineAdminNetworkPolicy must be named default and cannot Pass") {
  ClusterObjects o = Load(R"(
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: other}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
)");
  INFO(Errors(o));
  CHECK(HasError(o, "BaselineAdminNetworkPolicy other: metadata.name: Unsupported value: "
                    "\"other\": the BaselineAdminNetworkPolicy singleton must be named "
                    "\"default\""));
  CHECK(HasError(o, "BaselineAdminNetworkPolicy other: spec.ingress[0].action: Unsupported "
                    "value: \"Pass\": supported values: \"Allow\", \"Deny\""));
  REQUIRE(o.baseline_admin_network_policy.has_value());
  CHECK(o.baseline_admin_network_policy->spec.ingress[0].action ==
        AdminNetworkPolicyRuleAction::kDeny);
}

TEST_CASE("NetworkLogging: switches default off; delegate without log is invalid") {
  ClusterObjects o = Load(R"(
apiVersion: networking.gke.io/v1alpha1
kind: NetworkLogging
metadata: {name: default}
spec: {cluster: {allow: {log: true, delegate: true}, deny: {log: true}}}
---
apiVersion: networking.gke.io/v1alpha1
kind: NetworkLogging
metadata: {name: default2}
spec: {cluster: {deny: {delegate: true}}}
)");
  INFO(Errors(o));
  REQUIRE(o.network_logging.has_value());
  CHECK(o.network_logging->allow_log);
  CHECK(o.network_logging->allow_delegate);
  CHECK(o.network_logging->deny_log);
  CHECK_FALSE(o.network_logging->deny_delegate);
  CHECK(HasError(o, "NetworkLogging default2: spec.cluster.deny.delegate: Invalid value: true: "
                    "`delegate` requires `log: true`"));
}

TEST_CASE("envelope errors: missing kind or apiVersion, wrong apiVersion, unknown kinds") {
  ClusterObjects o = Load(R"(
metadata: {name: a}
---
apiVersion: networking.k8s.io/v1beta1
kind: NetworkPolicy
metadata: {name: old}
spec: {podSelector: {}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: v1
kind: Pod
metadata: {namespace: x}
)");
  INFO(Errors(o));
  CHECK(HasError(o, "test.yaml: document 1: kind: Required value"));
  CHECK(HasError(o, "test.yaml: document 1: apiVersion: Required value"));
  CHECK(HasError(o, "NetworkPolicy default/old: apiVersion: Unsupported value: "
                    "\"networking.k8s.io/v1beta1\": supported values: \"networking.k8s.io/v1\""));
  CHECK(HasError(o, "Pod x/<unnamed> (test.yaml: document 4): metadata.name: Required value"));
  REQUIRE(o.warnings.size() == 1);
  CHECK(o.warnings[0] == "test.yaml: document 3: Deployment d: kind not used by the dataplane; "
                         "ignored");
  CHECK(o.object_count() == 0);
}

}  // namespace
}  // namespace dpv2::agent::k8s
