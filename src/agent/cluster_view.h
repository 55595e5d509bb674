// ClusterView: one node's view of the cluster. It holds the decoded
// Kubernetes objects and the core desired state they imply, Services in an
// LbState and policy inputs in a PolicyState, and programs a Backend with only
// what changed. Which node it is (`node_name`) decides the local endpoints,
// the Local traffic policies and the topology zone (from the Node's
// topology.kubernetes.io/zone label).
//
// Update() takes either a whole object set (manifests re-read, or an API
// cache snapshot) or only the objects that changed (ObjectChanges, as a watch
// delivers them) and turns it into adds, replacements and removals; an object
// the core rejects is reported in problems() and left out, never half
// applied. Work follows the change: the view records which Services, pods,
// namespaces, nodes and policies an object change touches (a slice touches
// its Service) and recomputes only those, and the core diffs only the records
// they touched.
//
//   absl::StatusOr<ClusterView> view = ClusterView::Create({.node_name = "node-1"});
//   view->Update(objects);  // later: view->Update(ObjectChanges{.changed = slices});
//   DPV2_RETURN_IF_ERROR(view->ApplyTo(*backend));
#ifndef DPV2_AGENT_CLUSTER_VIEW_H_
#define DPV2_AGENT_CLUSTER_VIEW_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/k8s/objects.h"
#include "dpv2/backend.h"
#include "dpv2/lb_state.h"
#include "dpv2/policy_state.h"

namespace dpv2::agent {

struct ClusterViewOptions {
  std::string node_name;  // this node; "" = a node that hosts no pod
  LbStateOptions lb;
  // Every pod with an address becomes a local endpoint, whatever its
  // spec.nodeName: for what-if tools (`dpv2ctl probe`) that push packets
  // between any two pods of one simulated node.
  bool all_pods_local = false;
  // How a local pod is reached (ifindex, MACs). Empty: a stable synthetic
  // endpoint per pod (ifindex from 100 up in pod order), fine for the sim.
  std::function<std::optional<LocalEndpoint>(const PodInfo&)> local_endpoint;
};

// Keys of removed objects, per kind, as ClusterObjects keys them.
struct RemovedObjects {
  std::vector<std::string> services, endpoint_slices, pods, namespaces, nodes, network_policies,
      admin_network_policies;
  bool baseline_admin_network_policy = false;
  bool network_logging = false;
};

// Objects added, replaced or removed since the previous Update: `changed`
// holds the new versions (decoded with k8s::AddObject like a full set; its
// errors and warnings are the caller's to report), `removed` the keys that
// went away. A key both changed and removed is removed.
struct ObjectChanges {
  k8s::ClusterObjects changed;
  RemovedObjects removed;
};

class ClusterView {
 public:
  static absl::StatusOr<ClusterView> Create(ClusterViewOptions options);

  ClusterView(ClusterView&&) noexcept;
  ClusterView& operator=(ClusterView&&) noexcept;
  ~ClusterView();

  // Makes the desired state match `objects`. Problems (objects the core
  // rejected) replace those of the previous Update. Costs a comparison of
  // every object with the previous set.
  void Update(const k8s::ClusterObjects& objects);
  // The same as Update() with the previous set patched by `changes`, at a
  // cost that follows the change: only the objects named in it, and the
  // Services of changed EndpointSlices, are recomputed. Objects the core
  // rejected before are retried (and reported in problems() again).
  void Update(const ObjectChanges& changes);

  // Applies what changed since the last successful ApplyTo (everything the
  // first time) as one batch; on error nothing is acknowledged and the next
  // call retries the whole difference. `attempted`, if given, receives the
  // batch (so that callers that report it need not diff twice).
  absl::Status ApplyTo(Backend& backend, ChangeBatch* attempted = nullptr);
  // The batch ApplyTo would apply.
  ChangeBatch PendingChanges() const;
  // The backend was replaced or lost its state: the next ApplyTo writes all.
  void ResetAcknowledged();
  // Agent start over a datapath that kept running: `dumped` is what it holds
  // (Backend::DumpState). The desired state is rebuilt from objects() under
  // the ids the datapath uses (LbState::Adopt, PolicyState::Adopt), and the
  // dump counts as applied, so the next ApplyTo writes only the differences
  // and established connections keep their backends. On an inconsistent dump
  // the error names it, and the next ApplyTo rewrites everything instead.
  //   DPV2_ASSIGN_OR_RETURN(ChangeBatch held, backend->DumpState());
  //   view.Adopt(held).IgnoreError();  // log it; a full rewrite follows
  //   DPV2_RETURN_IF_ERROR(view.ApplyTo(*backend));
  absl::Status Adopt(const ChangeBatch& dumped);

  // The objects of the last Updates, but pods (`pods` is empty): PolicyState
  // keeps those (policy().ForEachPod, FindPod); the view keeps only the ones
  // the core rejected, to retry them.
  const k8s::ClusterObjects& objects() const;
  const LbState& lb() const;
  const PolicyState& policy() const;
  const NodeInfo& node() const;
  // "Service default/web: ..." for objects the core rejected in the last
  // Update, plus the core's warnings. Decoding errors are in objects().errors.
  const std::vector<std::string>& problems() const;
  // The local endpoint given to a pod ("namespace/name"), if it is local.
  std::optional<LocalEndpoint> LocalEndpointOf(absl::string_view pod_key) const;

 private:
  struct State;
  explicit ClusterView(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The core Service of a decoded Service, with the EndpointSlices (of the
// same namespace, label kubernetes.io/service-name) merged in.
ServiceSpec BuildServiceSpec(const k8s::ServiceObject& service,
                             const k8s::ClusterObjects& objects);

// This node as the core sees it: name, labels, zone, InternalIP/ExternalIP.
NodeInfo BuildNodeInfo(const k8s::NodeObject& node);

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_CLUSTER_VIEW_H_
