#include "agent/daemon/api_objects.h"

#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/core/status_macros.h"

namespace dpv2::agent::daemon {
namespace {

// The maps of ClusterObjects, in one fixed order: a contribution names its
// map by index in this list.
constexpr auto kMaps = std::make_tuple(
    &k8s::ClusterObjects::services, &k8s::ClusterObjects::endpoint_slices,
    &k8s::ClusterObjects::pods, &k8s::ClusterObjects::namespaces, &k8s::ClusterObjects::nodes,
    &k8s::ClusterObjects::network_policies, &k8s::ClusterObjects::admin_network_policies);

// The removed keys of each map, in the order of kMaps.
constexpr auto kRemoved = std::make_tuple(
    &RemovedObjects::services, &RemovedObjects::endpoint_slices, &RemovedObjects::pods,
    &RemovedObjects::namespaces, &RemovedObjects::nodes, &RemovedObjects::network_policies,
    &RemovedObjects::admin_network_policies);

// fn(index, member pointer to the map, member pointer to its removed keys)
// for every map.
template <typename Fn>
void ForEachMap(Fn&& fn) {
  std::apply(
      [&](auto... member) {
        std::apply(
            [&](auto... removed) {
              int index = 0;
              (fn(index++, member, removed), ...);
            },
            kRemoved);
      },
      kMaps);
}

}  // namespace

ApiObjects::ApiObjects(std::vector<apiserver::ApiResource> resources)
    : resources_(std::move(resources)),
      synced_(resources_.size(), false),
      plain_field_(resources_.size(), -1) {
  for (const apiserver::ApiResource& r : resources_) {
    api_versions_.push_back(r.ApiVersion());
  }
}

void ApiObjects::Remove(const Slot& slot) {
  auto it = contributions_.find(slot);
  if (it == contributions_.end()) {
    // A plain object, if any: under the slot's key in its resource's map.
    ForEachMap([&](int index, auto member, auto) {
      if (index == plain_field_[slot.first] && (objects_.*member).erase(slot.second) > 0) {
        changed_.emplace(index, slot.second);
      }
    });
    return;
  }
  const Contribution& c = it->second;
  const std::string& key = c.key.empty() ? slot.second : c.key;
  ForEachMap([&](int index, auto member, auto) {
    if (index == c.field) {
      (objects_.*member).erase(key);
    }
  });
  if (c.field >= 0) {
    changed_.emplace(c.field, key);
  }
  if (c.extras) {
    singletons_changed_ |= c.extras->baseline.has_value() || c.extras->logging.has_value();
    extras_.erase(slot);
  }
  contributions_.erase(it);
}

void ApiObjects::Decode(const Slot& slot, const simdjson::dom::element& object) {
  k8s::ClusterObjects one;
  k8s::AddApiObject(object,
                    {.kind = resources_[slot.first].kind, .api_version = api_versions_[slot.first]},
                    absl::StrCat("API ", resources_[slot.first].plural), &one);
  ++decoded_;
  Contribution c;
  ForEachMap([&](int index, auto member, auto) {
    for (auto& [key, value] : one.*member) {  // at most one object
      c.field = index;
      if (key != slot.second) {
        c.key = key;
      }
      changed_.emplace(index, key);
      (objects_.*member).insert_or_assign(key, std::move(value));
    }
  });
  if (!one.errors.empty() || !one.warnings.empty() || one.baseline_admin_network_policy ||
      one.network_logging) {
    singletons_changed_ |=
        one.baseline_admin_network_policy.has_value() || one.network_logging.has_value();
    c.extras = std::make_unique<Extras>(Extras{
        .baseline = std::move(one.baseline_admin_network_policy),
        .logging = std::move(one.network_logging),
        .errors = std::move(one.errors),
        .warnings = std::move(one.warnings),
    });
  }
  if (plain_field_[slot.first] < 0 && c.field >= 0 && c.key.empty()) {
    plain_field_[slot.first] = c.field;
  }
  if (IsPlain(slot.first, c)) {
    return;
  }
  auto [it, inserted] = contributions_.insert_or_assign(slot, std::move(c));
  if (it->second.extras) {
    extras_[slot] = it->second.extras.get();
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
      Decode(slot, *d.object);
    }
  }
  if (update.synced) {
    synced_[resource] = true;
  }
  relisted_ |= update.relisted;
}

absl::Status ApiObjects::CheckSynced() const {
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
  return absl::OkStatus();
}

void ApiObjects::AddExtras(k8s::ClusterObjects& out) const {
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
}

void ApiObjects::ForgetChanges() {
  changed_.clear();
  singletons_changed_ = false;
  relisted_ = false;
}

absl::StatusOr<k8s::ClusterObjects> ApiObjects::Snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  DPV2_RETURN_IF_ERROR(CheckSynced());
  k8s::ClusterObjects out = objects_;
  AddExtras(out);
  ForgetChanges();
  return out;
}

absl::StatusOr<std::optional<ObjectChanges>> ApiObjects::TakeChanges() {
  std::lock_guard<std::mutex> lock(mu_);
  DPV2_RETURN_IF_ERROR(CheckSynced());
  if (relisted_) {
    // The relist's deltas are a diff against the reflector's store and would
    // do, but a whole snapshot is what every other resync path trusts.
    return std::optional<ObjectChanges>();
  }
  ObjectChanges out;
  AddExtras(out.changed);
  if (singletons_changed_) {
    out.removed.baseline_admin_network_policy = !out.changed.baseline_admin_network_policy;
    out.removed.network_logging = !out.changed.network_logging;
  } else {
    out.changed.baseline_admin_network_policy.reset();
    out.changed.network_logging.reset();
  }
  for (const auto& [field, key] : changed_) {
    ForEachMap([&](int index, auto member, auto removed) {
      if (index != field) {
        return;
      }
      if (auto it = (objects_.*member).find(key); it != (objects_.*member).end()) {
        (out.changed.*member).emplace(key, it->second);
      } else {
        (out.removed.*removed).push_back(key);
      }
    });
  }
  ForgetChanges();
  return std::optional<ObjectChanges>(std::move(out));
}

uint64_t ApiObjects::decoded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return decoded_;
}

}  // namespace dpv2::agent::daemon
