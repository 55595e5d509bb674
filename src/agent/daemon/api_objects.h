// The decoded form of every object the API reflectors hold, kept up to date
// one watch event at a time: each object is decoded (JSON -> k8s objects)
// once, when its event arrives, instead of the whole store at every
// reconcile. Snapshot() hands the reconcile loop the object set it needs
// (copies of decoded objects, no JSON is read) and is refused until every
// resource has delivered its first complete LIST, so no view is built from
// half a cluster.
//
//   ApiObjects objects(apiserver::WatchedResources());
//   Reflector r(config, {.resource = res[i]}, [&](const ReflectorUpdate& u) { objects.Apply(i, u); });
//   absl::StatusOr<k8s::ClusterObjects> set = objects.Snapshot();
#ifndef DPV2_AGENT_DAEMON_API_OBJECTS_H_
#define DPV2_AGENT_DAEMON_API_OBJECTS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/apiserver/reflector.h"
#include "agent/apiserver/resources.h"
#include "agent/k8s/objects.h"

namespace dpv2::agent::daemon {

class ApiObjects {
 public:
  // One slot per resource, in this order (errors are listed in it too).
  explicit ApiObjects(std::vector<apiserver::ApiResource> resources);

  // Decodes the objects of `update` (for resources()[resource]) and replaces
  // what their keys held before; a deleted key takes its object, errors and
  // warnings away. `update.synced` marks the resource listed. Thread-safe.
  void Apply(size_t resource, const apiserver::ReflectorUpdate& update);

  // Every decoded object, with the decoding errors and warnings of all of
  // them (resource order, then key order): what decoding each stored object
  // anew would give. Unavailable, naming the resources, before each one has
  // completed a LIST.
  absl::StatusOr<k8s::ClusterObjects> Snapshot() const;

  // Objects decoded since construction: one per added or updated object.
  uint64_t decoded() const;
  const std::vector<apiserver::ApiResource>& resources() const { return resources_; }

 private:
  // What one stored object contributes: at most one object in one of the
  // maps of ClusterObjects (`field`, its key there), or a singleton, plus
  // its errors and warnings.
  struct Contribution {
    int field = -1;  // index into the map fields; -1: none
    std::string key;
    std::optional<BaselineAdminNetworkPolicy> baseline;
    std::optional<k8s::NetworkLoggingObject> logging;
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
  };
  using Slot = std::pair<size_t, std::string>;  // resource, reflector key

  void Remove(const Slot& slot);
  void Decode(const Slot& slot, const nlohmann::json& object);

  std::vector<apiserver::ApiResource> resources_;
  mutable std::mutex mu_;  // guards the fields below
  std::vector<bool> synced_;
  k8s::ClusterObjects objects_;  // the map fields only
  std::map<Slot, Contribution> contributions_;
  // The slots with errors, warnings or a singleton, for Snapshot to visit
  // without walking every object.
  std::map<Slot, const Contribution*> extras_;
  uint64_t decoded_ = 0;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_API_OBJECTS_H_
