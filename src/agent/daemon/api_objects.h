// The decoded form of every object the API reflectors hold, kept up to date
// one watch event at a time: each object is decoded (JSON -> k8s objects)
// once, when its event arrives, instead of the whole store at every
// reconcile. It also records which objects changed, so that the reconcile
// loop can hand ClusterView only those (TakeChanges, a cost that follows the
// change) instead of the whole set (Snapshot, the fallback after a relist).
// Both are refused until every resource has delivered its first complete
// LIST, so no view is built from half a cluster.
//
//   ApiObjects objects(apiserver::WatchedResources());
//   Reflector r(config, {.resource = res[i]}, [&](const ReflectorUpdate& u) { objects.Apply(i, u); });
//   absl::StatusOr<k8s::ClusterObjects> set = objects.Snapshot();  // then TakeChanges()
#ifndef DPV2_AGENT_DAEMON_API_OBJECTS_H_
#define DPV2_AGENT_DAEMON_API_OBJECTS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/apiserver/reflector.h"
#include "agent/apiserver/resources.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"

namespace dpv2::agent::daemon {

class ApiObjects {
 public:
  // One slot per resource, in this order (errors are listed in it too).
  explicit ApiObjects(std::vector<apiserver::ApiResource> resources);

  // Decodes the objects of `update` (for resources()[resource]; one without
  // kind or apiVersion is of that resource) and replaces what their keys
  // held before; a deleted key takes its object, errors and warnings away.
  // `update.synced` marks the resource listed. Thread-safe.
  void Apply(size_t resource, const apiserver::ReflectorUpdate& update);

  // Every decoded object, with the decoding errors and warnings of all of
  // them (resource order, then key order): what decoding each stored object
  // anew would give. Unavailable, naming the resources, before each one has
  // completed a LIST. Starts a new change record: TakeChanges() then reports
  // what changed after this snapshot.
  absl::StatusOr<k8s::ClusterObjects> Snapshot();

  // What changed since the previous Snapshot() or TakeChanges(): the current
  // version of every object added or updated (`changed`), the keys of those
  // that went away or no longer decode (`removed`), a singleton (the
  // baseline policy, the logging config) in one or the other when it
  // changed. `changed.errors` and `changed.warnings` are those of every
  // stored object, as in Snapshot(), not only of the changed ones.
  // An object changed several times is reported once, as it is now; one
  // added then deleted is reported removed (removing an unknown key is a
  // no-op for ClusterView). nullopt after a relist: take a Snapshot() then.
  // Unavailable as Snapshot() is.
  absl::StatusOr<std::optional<ObjectChanges>> TakeChanges();

  // Objects decoded since construction: one per added or updated object.
  uint64_t decoded() const;
  const std::vector<apiserver::ApiResource>& resources() const { return resources_; }

 private:
  // What one stored object contributes: at most one object in one of the
  // maps of ClusterObjects (`field`), or a
  // singleton, plus its errors and warnings. Kept for every object, so the
  // rare parts live out of line.
  struct Extras {
    std::optional<BaselineAdminNetworkPolicy> baseline;
    std::optional<k8s::NetworkLoggingObject> logging;
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
  };
  struct Contribution {
    int field = -1;  // index into the map fields; -1: none
    std::string key;  // its key in that map, when not the slot's (rare)
    std::unique_ptr<Extras> extras;  // null: none of them
  };
  // A plain object (one object in its resource's own map, under the slot's
  // key, no errors, warnings or singleton: nearly all of them) has no
  // Contribution: its map entry says all. A map entry per pod and no more.
  bool IsPlain(size_t resource, const Contribution& c) const {
    return c.field >= 0 && c.field == plain_field_[resource] && c.key.empty() && !c.extras;
  }
  using Slot = std::pair<size_t, std::string>;  // resource, reflector key

  void Remove(const Slot& slot);
  void Decode(const Slot& slot, const simdjson::dom::element& object);
  // Unavailable naming the resources not listed yet, else OK.
  absl::Status CheckSynced() const;
  // Errors, warnings and singletons of every stored object, into `out`.
  void AddExtras(k8s::ClusterObjects& out) const;
  void ForgetChanges();

  std::vector<apiserver::ApiResource> resources_;
  std::vector<std::string> api_versions_;  // of resources_, the objects' default apiVersion
  mutable std::mutex mu_;  // guards the fields below
  std::vector<bool> synced_;
  k8s::ClusterObjects objects_;  // the map fields only
  // The map each resource's objects go to (learned from its first object;
  // -1 until then), and the Contributions of the objects that are not plain.
  std::vector<int> plain_field_;
  std::map<Slot, Contribution> contributions_;
  // The slots with errors, warnings or a singleton, for Snapshot to visit
  // without walking every object.
  std::map<Slot, const Extras*> extras_;
  uint64_t decoded_ = 0;
  // The change record: (map index, key) of every object added, replaced or
  // removed since the last take, whether a singleton did, and whether a
  // resource relisted (after which only a whole snapshot is trusted).
  std::set<std::pair<int, std::string>> changed_;
  bool singletons_changed_ = false;
  bool relisted_ = false;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_API_OBJECTS_H_
