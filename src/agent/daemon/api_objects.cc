#include "agent/daemon/api_objects.h"

#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpv2::agent::daemon {
namespace {

// The maps of ClusterObjects, in one fixed order: a contribution names its
// map by index in this list.
constexpr auto kMaps = std::make_tuple(
    &k8s::ClusterObjects::services, &k8s::ClusterObjects::endpoint_slices,
    &k8s::ClusterObjects::pods, &k8s::ClusterObjects::namespaces, &k8s::ClusterObjects::nodes,
    &k8s::ClusterObjects::network_policies, &k8s::ClusterObjects::admin_network_policies);

// fn(index, member pointer) for every map.
template <typename Fn>
void ForEachMap(Fn&& fn) {
  std::apply(
      [&](auto... member) {
        int index = 0;
        (fn(index++, member), ...);
      },
      kMaps);
}

}  // namespace

ApiObjects::ApiObjects(std::vector<apiserver::ApiResource> resources)
    : resources_(std::move(resources)), synced_(resources_.size(), false) {}

void ApiObjects::Remove(const Slot& slot) {
  auto it = contributions_.find(slot);
  if (it == contributions_.end()) {
    return;
  }
  const Contribution& c = it->second;
  ForEachMap([&](int index, auto member) {
    if (index == c.field) {
      (objects_.*member).erase(c.key);
    }
  });
  extras_.erase(slot);
  contributions_.erase(it);
}

void ApiObjects::Decode(const Slot& slot, const nlohmann::json& object) {
  k8s::ClusterObjects one;
  k8s::AddObject(object, absl::StrCat("API ", resources_[slot.first].plural), &one);
  ++decoded_;
  Contribution c{.errors = std::move(one.errors), .warnings = std::move(one.warnings)};
  ForEachMap([&](int index, auto member) {
    for (auto& [key, value] : one.*member) {  // at most one object
      c.field = index;
      c.key = key;
      (objects_.*member).insert_or_assign(key, std::move(value));
    }
  });
  c.baseline = std::move(one.baseline_admin_network_policy);
  c.logging = one.network_logging;
  auto [it, inserted] = contributions_.insert_or_assign(slot, std::move(c));
  const Contribution& stored = it->second;
  if (!stored.errors.empty() || !stored.warnings.empty() || stored.baseline || stored.logging) {
    extras_[slot] = &stored;
  }
}

void ApiObjects::Apply(size_t resource, const apiserver::ReflectorUpdate& update) {
  std::lock_guard<std::mutex> lock(mu_);
  if (resource >= resources_.size()) {
    return;
  }
  for (const apiserver::Delta& d : update.deltas) {
    const Slot slot{resource, d.key};
    Remove(slot);
    if (d.type != apiserver::DeltaType::kDeleted) {
      Decode(slot, d.object);
    }
  }
  if (update.synced) {
    synced_[resource] = true;
  }
}

absl::StatusOr<k8s::ClusterObjects> ApiObjects::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> unsynced;
  for (size_t i = 0; i < resources_.size(); ++i) {
    if (!synced_[i]) {
      unsynced.push_back(resources_[i].plural);
    }
  }
  if (!unsynced.empty()) {
    return absl::UnavailableError(
        absl::StrCat("waiting for the first LIST of ", absl::StrJoin(unsynced, ", ")));
  }
  k8s::ClusterObjects out = objects_;
  for (const auto& [slot, c] : extras_) {
    out.errors.insert(out.errors.end(), c->errors.begin(), c->errors.end());
    out.warnings.insert(out.warnings.end(), c->warnings.begin(), c->warnings.end());
    // Singletons: the last in key order wins, as when decoding the store in
    // order (AddObject warns about the earlier one the same way).
    if (c->baseline) {
      if (out.baseline_admin_network_policy) {
        out.warnings.push_back(absl::StrCat("BaselineAdminNetworkPolicy ", slot.second,
                                            ": defined again (API ",
                                            resources_[slot.first].plural,
                                            "); the later definition wins"));
      }
      out.baseline_admin_network_policy = c->baseline;
    }
    if (c->logging) {
      out.network_logging = c->logging;
    }
  }
  return out;
}

uint64_t ApiObjects::decoded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return decoded_;
}

}  // namespace dpv2::agent::daemon
