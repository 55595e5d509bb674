// The reachability probe over the classic netpol model: namespaces x, y, z
// with pods a, b, c each (upstream's test/e2e/network/netpol model,
// translated). Expectations are written as rules over (from, to), not as
// copied matrices, and checked for all 81 cells through the sim backend.
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/k8s/objects.h"
#include "agent/probe.h"

namespace dpv2::agent {
namespace {

struct PodName {
  std::string ns;
  std::string pod;
};

// Namespaces and pods; labels unquoted on purpose (`ns: y` must stay "y").
std::string Model() {
  std::string yaml;
  const char* namespaces[] = {"x", "y", "z"};
  const char* pods[] = {"a", "b", "c"};
  for (int n = 0; n < 3; ++n) {
    absl::StrAppend(&yaml, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ",
                    namespaces[n], "\n  labels: {ns: ", namespaces[n], "}\n");
    for (int p = 0; p < 3; ++p) {
      absl::StrAppend(&yaml, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: ", pods[p],
                      "\n  namespace: ", namespaces[n], "\n  labels: {pod: ", pods[p], "}\n",
                      "spec:\n  nodeName: node-1\n  containers:\n  - name: c\n    ports:\n",
                      "    - {name: serve-80-tcp, containerPort: 80}\n",
                      "    - {name: serve-81-tcp, containerPort: 81}\n",
                      "    - {name: serve-80-udp, containerPort: 80, protocol: UDP}\n",
                      "status:\n  podIP: 10.0.", n + 1, ".", p + 1, "\n");
    }
  }
  return yaml;
}

using Expect = std::function<bool(const PodName& from, const PodName& to)>;

PodName Split(const std::string& key) {
  size_t slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

void CheckTable(const std::string& policies, const ProbeOptions& options, const Expect& expect) {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(Model() + policies, "model.yaml", &objects);
  INFO(absl::StrJoin(objects.errors, "\n"));
  REQUIRE(objects.errors.empty());
  absl::StatusOr<ProbeResult> result = RunProbe(objects, options);
  INFO(result.status().message());
  REQUIRE(result.ok());
  REQUIRE(result->pods.size() == 9);
  INFO(FormatProbeMatrix(*result, /*explain=*/true));
  int wrong = 0;
  for (size_t i = 0; i < 9; ++i) {
    for (size_t j = 0; j < 9; ++j) {
      bool want = expect(Split(result->pods[i]), Split(result->pods[j]));
      if (result->cells[i][j].allowed != want) {
        ++wrong;
        UNSCOPED_INFO(result->pods[i] << " -> " << result->pods[j] << ": got "
                                      << result->cells[i][j].allowed << ", want " << want);
      }
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("probe: with no policy every pod reaches every pod") {
  CheckTable("", {.port = 80}, [](const PodName&, const PodName&) { return true; });
}

TEST_CASE("probe: default-deny ingress in x isolates every x pod, even from itself") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
)",
             {.port = 80}, [](const PodName&, const PodName& to) { return to.ns != "x"; });
}

TEST_CASE("probe: default-deny all in x blocks x's egress and ingress") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
)",
             {.port = 80},
             [](const PodName& from, const PodName& to) { return from.ns != "x" && to.ns != "x"; });
}

TEST_CASE("probe: ingress to x/a only from pods labelled pod=b of x") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
)",
             {.port = 80}, [](const PodName& from, const PodName& to) {
               if (to.ns == "x" && to.pod == "a") {
                 return from.ns == "x" && from.pod == "b";
               }
               return true;
             });
}

TEST_CASE("probe: namespaceSelector with matchExpressions admits only namespace y") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y]}]}}]
)",
             {.port = 80}, [](const PodName& from, const PodName& to) {
               if (to.ns == "x" && to.pod == "a") {
                 return from.ns == "y";
               }
               return true;
             });
}

TEST_CASE("probe: podSelector AND namespaceSelector in one peer admits only z/c") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-zc, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: z}}
      podSelector: {matchLabels: {pod: c}}
)",
             {.port = 80}, [](const PodName& from, const PodName& to) {
               if (to.ns == "x" && to.pod == "a") {
                 return from.ns == "z" && from.pod == "c";
               }
               return true;
             });
}

TEST_CASE("probe: a named port allows 81 and denies 80 on x/a") {
  const std::string policy = R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-81, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: serve-81-tcp}]}]
)";
  CheckTable(policy, {.port = 81}, [](const PodName&, const PodName&) { return true; });
  CheckTable(policy, {.port = 80}, [](const PodName&, const PodName& to) {
    return !(to.ns == "x" && to.pod == "a");
  });
}

TEST_CASE("probe: a TCP-only rule does not allow UDP") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-tcp-80, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80, protocol: TCP}]}]
)",
             {.port = 80, .protocol = L4Proto::kUDP},
             [](const PodName&, const PodName& to) { return to.ns != "x"; });
}

TEST_CASE("probe: egress from x/a only to namespace y") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
)",
             {.port = 80}, [](const PodName& from, const PodName& to) {
               if (from.ns == "x" && from.pod == "a") {
                 return to.ns == "y";
               }
               return true;
             });
}

TEST_CASE("probe: an ipBlock with except admits the block but not the excepted pod") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cidr, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{ipBlock: {cidr: 10.0.2.0/24, except: [10.0.2.2/32]}}]}]
)",
             {.port = 80}, [](const PodName& from, const PodName& to) {
               if (to.ns == "x" && to.pod == "a") {
                 return from.ns == "y" && from.pod != "b";
               }
               return true;
             });
}

TEST_CASE("probe: an AdminNetworkPolicy Deny beats a NetworkPolicy allow") {
  CheckTable(R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec:
  podSelector: {}
  ingress: [{}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-y-to-x}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {ns: y}}}]}]
)",
             {.port = 80},
             [](const PodName& from, const PodName& to) { return !(to.ns == "x" && from.ns == "y"); });
}

TEST_CASE("probe: ANP Pass defers to NetworkPolicy, then the baseline decides") {
  // z passes to lower tiers; x has no NetworkPolicy, so the baseline's deny
  // of everything into x applies to z too; y is allowed by a higher-priority
  // ANP rule before the baseline is reached.
  CheckTable(R"(---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: tiers}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - {name: allow-y, action: Allow, from: [{namespaces: {matchLabels: {ns: y}}}]}
  - {name: pass-z, action: Pass, from: [{namespaces: {matchLabels: {ns: z}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
)",
             {.port = 80},
             [](const PodName& from, const PodName& to) { return to.ns != "x" || from.ns == "y"; });
}

TEST_CASE("probe: bad manifests are refused with the object and field named") {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(Model() + R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80, endPort: 79}]}]
)",
                       "model.yaml", &objects);
  absl::StatusOr<ProbeResult> result = RunProbe(objects, {.port = 80});
  REQUIRE_FALSE(result.ok());
  CHECK(std::string(result.status().message()) ==
        "NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: must be greater than or equal "
        "to `port` 80, got 79");
}

TEST_CASE("probe JSON maps from -> to -> allowed, and the matrix marks denials") {
  k8s::ClusterObjects objects;
  k8s::AddManifestText(Model() + R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: z}
spec: {podSelector: {matchLabels: {pod: c}}, policyTypes: [Ingress]}
)",
                       "model.yaml", &objects);
  absl::StatusOr<ProbeResult> result = RunProbe(objects, {.port = 80});
  REQUIRE(result.ok());
  nlohmann::json j = ProbeJson(*result);
  CHECK(j["x/a"]["z/c"] == false);
  CHECK(j["z/c"]["x/a"] == true);
  CHECK(j.size() == 9);
  std::string matrix = FormatProbeMatrix(*result, /*explain=*/true);
  CHECK(matrix.find("x/a -> z/c: denied") != std::string::npos);
  CHECK(matrix.find("NetworkPolicy z/deny-ingress") != std::string::npos);
}

}  // namespace
}  // namespace dpv2::agent
