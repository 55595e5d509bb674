// Manifests and a backend wrapper shared by the daemon tests: a one-node
// cluster (node-a) with a local pod, a remote pod and a ClusterIP Service,
// a sim backend that counts applies and can be told to fail them, links
// the test adds, and a polling wait.
#ifndef DPV2_TESTS_UNIT_AGENT_DAEMON_TEST_CLUSTER_H_
#define DPV2_TESTS_UNIT_AGENT_DAEMON_TEST_CLUSTER_H_

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/daemon/pod_interfaces.h"
#include "dpv2/backend.h"
#include "dpv2/sim.h"
#include "../forwarding_backend.h"

namespace dpv2::agent::daemon::testing {

// `web_port` is the Service port; `extra` is appended as more documents.
inline std::string ClusterYaml(int web_port = 80, const std::string& extra = "") {
  std::string yaml = R"(apiVersion: v1
kind: Node
metadata: {name: node-a}
status:
  addresses: [{type: InternalIP, address: 192.168.10.2}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
  annotations: {dpv2.dev/host-interface: veth-web1}
spec: {nodeName: node-a}
status: {phase: Running, podIP: 10.244.1.11, podIPs: [{ip: 10.244.1.11}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  namespace: shop
  labels: {app: web}
spec: {nodeName: node-b}
status: {phase: Running, podIP: 10.244.2.12, podIPs: [{ip: 10.244.2.12}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: WEB_PORT, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: [10.244.1.11]
    nodeName: node-a
  - addresses: [10.244.2.12]
    nodeName: node-b
)";
  return absl::StrReplaceAll(yaml, {{"WEB_PORT", absl::StrCat(web_port)}}) +
         (extra.empty() ? "" : "---\n" + extra);
}

// Forwards to a sim backend; counts Apply calls, shows each batch to
// `on_apply` and fails them on demand.
class CountingBackend : public ::dpv2::agent::testing::ForwardingBackend {
 public:
  CountingBackend() : ForwardingBackend(*MakeSimBackend({})) {}
  absl::string_view Name() const override { return "counting-sim"; }
  absl::Status Apply(const ChangeBatch& batch) override {
    ++applies;
    if (fail_applies) {
      return absl::UnavailableError("test backend: apply refused");
    }
    last_batch_size = batch.size();
    if (on_apply) {
      on_apply(batch);
    }
    return inner().Apply(batch);
  }

  std::atomic<int> applies{0};
  std::atomic<bool> fail_applies{false};
  std::atomic<size_t> last_batch_size{0};
  std::function<void(const ChangeBatch&)> on_apply;  // set before applies start
};

// Stands in for the kernel: interfaces exist once the test adds them.
class FakeLinks : public LinkLookup {
 public:
  absl::StatusOr<LinkInfo> ByName(const std::string& name) override {
    std::lock_guard<std::mutex> l(mu);
    auto it = links.find(name);
    if (it == links.end()) {
      return absl::NotFoundError(absl::StrCat("interface ", name, ": no such interface"));
    }
    return it->second;
  }
  absl::StatusOr<LinkInfo> InNamespace(int32_t, uint32_t ifindex) override {
    return LinkInfo{.ifindex = ifindex, .mac = {2, 0, 0, 0, 0, 0x11}};
  }
  std::mutex mu;
  std::map<std::string, LinkInfo> links;
};

// Polls `done` until it holds or `limit` passes; false on timeout.
inline bool WaitFor(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(10)) {
  absl::Time end = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > end) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace dpv2::agent::daemon::testing

#endif  // DPV2_TESTS_UNIT_AGENT_DAEMON_TEST_CLUSTER_H_
