// The policy compiler: selectors -> identities -> per-endpoint LPM entries.
//
// Model. Every policy peer becomes an interned Selector (pods by namespace and
// labels, or addresses by CIDR). Every address gets an identity; a pod's
// identity key is (namespace, labels, address tags), where the tags are the
// address selectors containing the address, so an ipBlock can match pod IPs
// exactly even though policy is keyed by identity. Each selector keeps the set
// of identities it matches. A local endpoint holds, per direction, the rules
// of the policies that apply to it; its entries are grouped by peer identity
// (identity 0 = any peer), and a group is the fold of every rule that matches
// that identity plus every wildcard rule, so the longest match in one group
// is the whole answer (policy_map.h).
//
// Incrementality. A mutation marks (endpoint, direction, identity) groups or
// whole endpoints as pending; Flush() recomputes only those and marks the
// groups whose entries changed as dirty for Diff().
#include "dpv2/policy_state.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/policy/policy_map.h"
#include "core/status_macros.h"
#include "dpv2/identity.h"

namespace dpv2 {

absl::string_view PolicyKindName(PolicyRef::Kind kind) {
  switch (kind) {
    case PolicyRef::Kind::kNetworkPolicy:
      return "NetworkPolicy";
    case PolicyRef::Kind::kAdminNetworkPolicy:
      return "AdminNetworkPolicy";
    case PolicyRef::Kind::kBaselineAdminNetworkPolicy:
      return "BaselineAdminNetworkPolicy";
  }
  return "?";
}

namespace {

constexpr uint32_t kAnyPeer = 0;
constexpr int kIngress = DPV2_DIR_INGRESS;
constexpr int kEgress = DPV2_DIR_EGRESS;

enum class Tier : uint8_t { kHost, kAdmin, kNetwork, kBaseline };

struct RuleMeta {
  Tier tier = Tier::kNetwork;
  int32_t priority = 0;  // admin
  int rule_index = 0;    // admin and baseline: position in its direction's list
  AdminNetworkPolicyRuleAction action = AdminNetworkPolicyRuleAction::kAllow;
  PolicyRef ref;

  // Admin order: priority, then name (the API leaves equal priorities
  // undefined; a name order keeps the result deterministic), then rule order.
  bool AdminBefore(const RuleMeta& o) const {
    return std::tie(priority, ref.name, rule_index) < std::tie(o.priority, o.ref.name, o.rule_index);
  }
};

struct PortSpec {
  enum class Kind : uint8_t { kAll, kProto, kRange, kNamed };
  Kind kind = Kind::kAll;
  uint8_t proto = 0;     // kProto, kRange; kNamed when any_proto is false
  uint16_t lo = 0, hi = 0;
  std::string name;      // kNamed
  bool any_proto = false;  // kNamed from an ANP namedPort: the container's protocol
};

struct CompiledRule {
  RuleMeta meta;
  bool any_peer = false;           // no peers listed: every address
  std::vector<uint32_t> selectors;  // interned selector ids
  std::vector<PortSpec> ports;     // empty: every protocol and port
};

struct CompiledPolicy {
  PolicyRef ref;
  std::string key;
  // Subject.
  std::string np_namespace;  // NetworkPolicy: its namespace
  std::optional<LabelSelector> subject_namespaces;  // ANP/BANP namespaces subject
  std::optional<NamespacedPod> subject_pods;        // ANP/BANP pods subject
  LabelSelector np_pod_selector;
  std::array<bool, 2> np_types{false, false};  // NetworkPolicy: isolates ingress/egress
  std::array<std::vector<CompiledRule>, 2> rules;
  std::vector<uint32_t> selector_refs;  // one per acquisition, released with the policy
  absl::flat_hash_set<uint32_t> endpoints;  // local endpoints it applies to
  Labels annotations;
};

struct Selector {
  enum class Kind : uint8_t { kPods, kAddresses, kNodes };
  Kind kind = Kind::kPods;
  std::string key;
  std::optional<std::string> fixed_namespace;
  std::optional<LabelSelector> namespace_selector;
  LabelSelector pod_selector;
  LabelSelector node_selector;
  std::vector<Prefix> cidrs;  // kAddresses; kNodes: the matching nodes' addresses
  std::vector<Prefix> excepts;
  uint64_t references = 0;
  absl::flat_hash_set<uint32_t> members;  // identities
  absl::flat_hash_map<std::string, uint64_t> policies;  // policy key -> uses

  bool ContainsAddress(const IpAddr& ip) const { return Covers(ip); }
  // For a prefix that is a leaf of the ipcache (every selector prefix is an
  // ipcache prefix): inside a cidr and inside no except.
  bool ContainsPrefix(const Prefix& p) const { return Covers(p); }

  // Inside some cidr and inside no except (T: IpAddr or Prefix).
  template <typename T>
  bool Covers(const T& x) const {
    auto contains = [&x](const Prefix& c) { return c.Contains(x); };
    return std::any_of(cidrs.begin(), cidrs.end(), contains) &&
           std::none_of(excepts.begin(), excepts.end(), contains);
  }
};

struct Identity {
  enum class Kind : uint8_t { kPod, kCidr, kNode, kHost, kReserved };
  Kind kind = Kind::kPod;
  std::string namespace_name;
  Labels labels;
  std::vector<uint32_t> tags;  // address selectors containing its addresses, sorted
  absl::flat_hash_set<uint32_t> selectors;
  // Named container ports of the pods holding this identity: (name, proto,
  // port) -> number of pods.
  std::map<std::tuple<std::string, uint8_t, uint16_t>, uint32_t> named_ports;
};

struct GroupKey {
  uint32_t endpoint_id;
  uint32_t identity;
  uint8_t direction;
  friend bool operator==(const GroupKey&, const GroupKey&) = default;
  friend auto operator<=>(const GroupKey&, const GroupKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const GroupKey& k) {
    return H::combine(std::move(h), k.endpoint_id, k.identity, k.direction);
  }
};

struct DirectionState {
  bool enabled = false;      // DPV2_EP_F_*_POLICY
  bool np_isolated = false;  // some NetworkPolicy isolates this direction
  std::vector<const CompiledRule*> rules;
  absl::flat_hash_set<uint32_t> groups;  // identities with a desired group
};

struct EndpointRecord {
  std::string pod_key;
  std::array<DirectionState, 2> dirs;
  std::vector<std::shared_ptr<CompiledPolicy>> applied;  // keeps rules alive
};

// What the pods of one workload share: its replicas differ only in name,
// addresses and node. Interned (InternPool), so that each pod holds a
// pointer instead of its own namespace, label map, ports and owner.
struct PodShape {
  std::string namespace_name;
  Labels labels;
  bool host_network = false;
  std::vector<ContainerPort> container_ports;
  std::string workload_kind;
  std::string workload_name;

  friend bool operator==(const PodShape&, const PodShape&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const PodShape& s) {
    h = H::combine(std::move(h), s.namespace_name, s.host_network, s.workload_kind,
                   s.workload_name, s.labels.size(), s.container_ports.size());
    for (const auto& [key, value] : s.labels) {
      h = H::combine(std::move(h), key, value);
    }
    for (const ContainerPort& port : s.container_ports) {
      h = H::combine(std::move(h), port.name, port.protocol, port.container_port);
    }
    return h;
  }
};

PodShape ShapeOf(const PodInfo& pod) {
  return PodShape{.namespace_name = pod.namespace_name,
                  .labels = pod.labels,
                  .host_network = pod.host_network,
                  .container_ports = pod.container_ports,
                  .workload_kind = pod.workload_kind,
                  .workload_name = pod.workload_name};
}

// Values many records share, each kept once with the number of its users and
// dropped with the last one. A pointer stays valid while it is held.
template <typename T>
class InternPool {
 public:
  const T* Acquire(T value) {
    auto [it, inserted] = held_.try_emplace(std::move(value), 0);
    ++it->second;
    return &it->first;
  }
  void Release(const T* value) {
    if (value == nullptr) {
      return;
    }
    if (auto it = held_.find(*value); it != held_.end() && --it->second == 0) {
      held_.erase(it);
    }
  }

 private:
  absl::node_hash_map<T, uint64_t> held_;
};

// A pod: its key ("namespace/name") is the map's; never null once set.
struct PodRecord {
  const PodShape* shape = nullptr;         // State::shapes
  const std::string* node_name = nullptr;  // State::node_names
  std::vector<IpAddr> ips;
  std::optional<LocalEndpoint> local;
  uint32_t endpoint_id = 0;
  std::vector<std::pair<IpAddr, uint32_t>> ip_identities;
};

bool SameKey(const dpv2_policy_key& a, const dpv2_policy_key& b) {
  return a.prefixlen == b.prefixlen && a.endpoint_id == b.endpoint_id &&
         a.identity == b.identity && a.direction == b.direction && a.proto == b.proto &&
         a.dport == b.dport;
}
bool SameValue(const dpv2_policy_value& a, const dpv2_policy_value& b) {
  return a.verdict == b.verdict && a.tier == b.tier && a.match_id == b.match_id;
}
bool SameEndpoint(const dpv2_endpoint_value& a, const dpv2_endpoint_value& b) {
  return a.endpoint_id == b.endpoint_id && a.ifindex == b.ifindex && a.identity == b.identity &&
         a.flags == b.flags && std::equal(a.mac, a.mac + 6, b.mac) &&
         std::equal(a.host_mac, a.host_mac + 6, b.host_mac);
}
bool SameEntries(const std::vector<PolicyEntry>& a, const std::vector<PolicyEntry>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (const PolicyEntry& x : a) {
    bool found = false;
    for (const PolicyEntry& y : b) {
      if (SameKey(x.key, y.key)) {
        found = SameValue(x.value, y.value);
        break;
      }
    }
    if (!found) {
      return false;
    }
  }
  return true;
}

std::string Lp(absl::string_view s) { return absl::StrCat(s.size(), ":", s); }

std::string PodKey(absl::string_view ns, absl::string_view name) {
  return absl::StrCat(ns, "/", name);
}

dpv2_ipcache_key IpcacheKey(const Prefix& p) {
  dpv2_ipcache_key k{};
  k.prefixlen = 32 + static_cast<uint32_t>(p.length());
  k.family = static_cast<uint8_t>(p.family());
  k.addr = p.addr().ToAbi();
  return k;
}

Prefix PrefixOfIpcacheKey(const dpv2_ipcache_key& k) {
  const Family f = k.family == DPV2_FAMILY_V6 ? Family::kV6 : Family::kV4;
  return Prefix::Make(IpAddr::FromAbi(k.addr, f), static_cast<int>(k.prefixlen) - 32).value();
}

Prefix HostPrefix(const IpAddr& ip) { return Prefix::Make(ip, ip.is_v4() ? 32 : 128).value(); }

dpv2_endpoint_key EndpointKey(const IpAddr& ip) {
  dpv2_endpoint_key k{};
  k.addr = ip.ToAbi();
  k.family = static_cast<uint8_t>(ip.family());
  return k;
}

IpAddr IpOfEndpointKey(const dpv2_endpoint_key& k) {
  return IpAddr::FromAbi(k.addr, k.family == DPV2_FAMILY_V6 ? Family::kV6 : Family::kV4);
}

uint32_t MaskOf(int len) {
  if (len <= 0) {
    return 0;
  }
  return ((1u << kPolicyVariableBits) - 1) & ~((1u << (kPolicyVariableBits - len)) - 1);
}

// Splits [lo, hi] of one protocol into aligned port prefixes.
void AddRange(uint8_t proto, uint32_t lo, uint32_t hi, std::vector<std::pair<int, uint32_t>>* out) {
  if (lo == 0 && hi == 65535) {
    out->push_back({8, static_cast<uint32_t>(proto) << 16});
    return;
  }
  uint32_t p = lo;
  while (p <= hi) {
    int bits = 0;  // block of 2^bits ports
    while (bits < 16 && (p & ((1u << (bits + 1)) - 1)) == 0 && p + (1u << (bits + 1)) - 1 <= hi) {
      ++bits;
    }
    out->push_back({8 + 16 - bits, (static_cast<uint32_t>(proto) << 16) | p});
    p += 1u << bits;
  }
}

}  // namespace

struct PolicyState::State {
  PolicyStateOptions options;

  absl::flat_hash_map<std::string, NamespaceInfo> namespaces;  // labels include the implicit one
  // Nodes, not slots: pod_by_ip points at the keys, and a record is larger
  // than the pointer a node costs.
  absl::node_hash_map<std::string, PodRecord> pods;
  absl::flat_hash_map<IpAddr, const std::string*> pod_by_ip;  // -> a key of `pods`
  InternPool<PodShape> shapes;
  InternPool<std::string> node_names;
  absl::flat_hash_map<std::string, NodeInfo> nodes;
  absl::flat_hash_map<std::string, std::shared_ptr<CompiledPolicy>> policies;  // by key
  // NetworkPolicies by SubjectBucket: a pod's candidates are the buckets of
  // its namespace alone and of its namespace with each of its labels, not
  // every policy of the namespace (a full sync recomputed 1,000 local
  // endpoints each over 1,000 policies). Buckets are hashes: a collision
  // only adds a candidate, and every candidate is tested (PolicyApplies).
  absl::flat_hash_map<size_t, std::vector<std::shared_ptr<CompiledPolicy>>> np_by_subject;
  // AdminNetworkPolicy and BaselineAdminNetworkPolicy keys: they may apply
  // in every namespace.
  absl::flat_hash_set<std::string> admin_policies;

  IdentityAllocator allocator;
  absl::flat_hash_map<uint32_t, Identity> identities;
  absl::flat_hash_map<std::string, absl::flat_hash_set<uint32_t>> identities_by_namespace;
  // Pod identities by each of their labels (LabelKey): a new pod selector
  // with matchLabels tests only the identities of its rarest label instead
  // of every identity (1,000 policies x 10,000 identities in a full sync).
  absl::flat_hash_map<std::string, absl::flat_hash_set<uint32_t>> pod_identities_by_label;

  absl::flat_hash_map<uint32_t, Selector> selectors;
  absl::flat_hash_map<std::string, uint32_t> selector_by_key;
  uint32_t next_selector = 1;
  std::vector<uint32_t> address_selectors;  // kAddresses and kNodes, sorted

  // Address -> identity sources; the ipcache is their merge.
  absl::flat_hash_map<IpAddr, uint32_t> node_ip_identity;
  absl::flat_hash_map<Prefix, uint32_t> cidr_identity;

  absl::flat_hash_map<uint32_t, EndpointRecord> endpoints;
  std::vector<uint32_t> free_endpoint_ids;
  uint32_t next_endpoint_id = 1;
  absl::flat_hash_map<std::string, absl::flat_hash_set<uint32_t>> endpoints_by_namespace;
  // Local endpoints by LabelBucket of each of their pod's labels: a
  // NetworkPolicy whose podSelector has matchLabels looks only at the
  // endpoints of its rarest pair (MarkPolicyCandidates), each tested.
  absl::flat_hash_map<size_t, absl::flat_hash_set<uint32_t>> endpoints_by_label;

  // Match ids.
  absl::flat_hash_map<std::string, uint32_t> match_by_key;
  std::map<uint32_t, std::vector<PolicyRef>> match_policies;  // 0 = none, never stored
  uint32_t next_match_id = 1;

  // Restart adoption (Adopt): the ids the datapath holds for the same
  // addresses, preferred while free. Match ids are taken from the
  // acknowledged entry at the same key (acked_policy) while `adopted`.
  absl::flat_hash_map<IpAddr, uint32_t> adopted_endpoint_ids;
  absl::flat_hash_map<Prefix, uint32_t> adopted_identities;
  bool adopted = false;

  // Desired and acknowledged datapath state, and what differs.
  absl::flat_hash_map<IpAddr, dpv2_endpoint_value> desired_endpoints, acked_endpoints;
  absl::flat_hash_map<Prefix, dpv2_ipcache_value> desired_ipcache, acked_ipcache;
  absl::flat_hash_map<GroupKey, std::vector<PolicyEntry>> desired_policy, acked_policy;
  absl::flat_hash_set<IpAddr> dirty_endpoints;
  absl::flat_hash_set<Prefix> dirty_ipcache;
  absl::flat_hash_set<GroupKey> dirty_policy;
  size_t desired_policy_entries = 0;

  // Pending recomputation.
  absl::flat_hash_set<uint32_t> pending_endpoints;  // full recompute
  // Endpoints whose policies changed without touching wildcard rules: only
  // the groups of these identities (plus any-peer and host) can change.
  absl::flat_hash_map<uint32_t, absl::flat_hash_set<uint32_t>> pending_partial;
  absl::flat_hash_set<GroupKey> pending_groups;
  bool pending_retag = false;

  std::vector<std::string> warnings;

  // ---- namespaces and identities -------------------------------------------

  Labels NamespaceLabels(const std::string& ns) const {
    auto it = namespaces.find(ns);
    if (it != namespaces.end()) {
      return it->second.labels;
    }
    return Labels{{std::string(kNamespaceNameLabel), ns}};
  }

  bool SelectorMatches(const Selector& s, uint32_t sid, const Identity& x) const {
    switch (s.kind) {
      case Selector::Kind::kPods: {
        if (x.kind != Identity::Kind::kPod) {
          return false;
        }
        if (s.fixed_namespace && *s.fixed_namespace != x.namespace_name) {
          return false;
        }
        if (s.namespace_selector && !s.namespace_selector->Matches(NamespaceLabels(x.namespace_name))) {
          return false;
        }
        return s.pod_selector.Matches(x.labels);
      }
      case Selector::Kind::kAddresses:
      case Selector::Kind::kNodes: {
        return std::binary_search(x.tags.begin(), x.tags.end(), sid);
      }
    }
    return false;
  }

  // Every (endpoint, direction) whose rules reference a selector `id`
  // belongs to gets the group of `id` recomputed.
  void MarkIdentity(uint32_t id) {
    auto it = identities.find(id);
    if (it == identities.end()) {
      return;
    }
    for (uint32_t sel : it->second.selectors) {
      const Selector& s = selectors.at(sel);
      for (const auto& [pkey, uses] : s.policies) {
        auto pit = policies.find(pkey);
        if (pit == policies.end()) {
          continue;
        }
        for (uint32_t ep : pit->second->endpoints) {
          pending_groups.insert({ep, id, kIngress});
          pending_groups.insert({ep, id, kEgress});
        }
      }
    }
  }

  void ComputeMembership(uint32_t id) {
    Identity& x = identities.at(id);
    for (uint32_t sel : x.selectors) {
      selectors.at(sel).members.erase(id);
    }
    x.selectors.clear();
    for (auto& [sid, s] : selectors) {
      if (SelectorMatches(s, sid, x)) {
        s.members.insert(id);
        x.selectors.insert(sid);
      }
    }
  }

  // Re-evaluates membership of identities whose namespace labels changed.
  void RecheckIdentity(uint32_t id) {
    MarkIdentity(id);
    ComputeMembership(id);
    MarkIdentity(id);
  }

  // `where`: the address or prefix the identity is for; an adopted datapath's
  // identity there is preferred.
  absl::StatusOr<uint32_t> AcquireIdentity(const std::string& key, Identity proto,
                                           const Prefix& where) {
    bool created = false;
    auto adopted_id = adopted_identities.find(where);
    DPV2_ASSIGN_OR_RETURN(
        uint32_t id, allocator.AcquirePreferring(
                         key, adopted_id == adopted_identities.end() ? 0 : adopted_id->second,
                         &created));
    if (created) {
      identities[id] = std::move(proto);
      if (identities[id].kind == Identity::Kind::kPod) {
        identities_by_namespace[identities[id].namespace_name].insert(id);
        for (const auto& [key, value] : identities[id].labels) {
          pod_identities_by_label[LabelKey(key, value)].insert(id);
        }
      }
      ComputeMembership(id);
      MarkIdentity(id);
    }
    return id;
  }

  void ReleaseIdentity(uint32_t id) {
    if (id < DPV2_IDENTITY_FIRST_ALLOCATED) {
      return;
    }
    if (allocator.References(id) == 1) {
      MarkIdentity(id);
      Identity& x = identities.at(id);
      for (uint32_t sel : x.selectors) {
        selectors.at(sel).members.erase(id);
      }
      if (x.kind == Identity::Kind::kPod) {
        auto nit = identities_by_namespace.find(x.namespace_name);
        nit->second.erase(id);
        if (nit->second.empty()) {
          identities_by_namespace.erase(nit);
        }
        for (const auto& [key, value] : x.labels) {
          auto lit = pod_identities_by_label.find(LabelKey(key, value));
          lit->second.erase(id);
          if (lit->second.empty()) {
            pod_identities_by_label.erase(lit);
          }
        }
      }
      identities.erase(id);
    }
    allocator.Release(id);
  }

  std::vector<uint32_t> TagsOfAddress(const IpAddr& ip) const {
    std::vector<uint32_t> tags;
    for (uint32_t sid : address_selectors) {
      if (selectors.at(sid).ContainsAddress(ip)) {
        tags.push_back(sid);
      }
    }
    return tags;
  }

  static std::string TagText(const std::vector<uint32_t>& tags) { return absl::StrJoin(tags, ","); }

  // ---- pods ----------------------------------------------------------------

  void AddNamedPorts(uint32_t id, const PodRecord& pod, int delta) {
    auto it = identities.find(id);
    if (it == identities.end()) {
      return;
    }
    bool changed = false;
    for (const ContainerPort& cp : pod.shape->container_ports) {
      if (cp.name.empty()) {
        continue;
      }
      auto key = std::make_tuple(cp.name, static_cast<uint8_t>(cp.protocol),
                                 static_cast<uint16_t>(cp.container_port));
      uint32_t& n = it->second.named_ports[key];
      if (delta > 0) {
        changed |= n == 0;
        ++n;
      } else if (n > 0) {
        --n;
        if (n == 0) {
          it->second.named_ports.erase(key);
          changed = true;
        }
      }
    }
    if (changed) {
      MarkIdentity(id);
    }
  }

  // Identities of the pod's addresses from its current labels and tags.
  absl::StatusOr<std::vector<std::pair<IpAddr, uint32_t>>> AcquirePodIdentities(
      const PodRecord& pod) {
    std::vector<std::pair<IpAddr, uint32_t>> out;
    const PodShape& shape = *pod.shape;
    if (shape.host_network) {
      return out;  // node traffic: the node's identity covers it
    }
    std::string label_text;
    for (const auto& [k, v] : shape.labels) {
      absl::StrAppend(&label_text, Lp(k), Lp(v));
    }
    for (const IpAddr& ip : pod.ips) {
      std::vector<uint32_t> tags = TagsOfAddress(ip);
      const std::string key =
          absl::StrCat("pod|", Lp(shape.namespace_name), "|", label_text, "|", TagText(tags));
      Identity proto{.kind = Identity::Kind::kPod,
                     .namespace_name = shape.namespace_name,
                     .labels = shape.labels,
                     .tags = tags};
      absl::StatusOr<uint32_t> id = AcquireIdentity(key, std::move(proto), HostPrefix(ip));
      if (!id.ok()) {
        for (auto& [ip2, id2] : out) {
          ReleaseIdentity(id2);
        }
        return id.status();
      }
      out.push_back({ip, *id});
    }
    return out;
  }

  void SetIpcacheFor(const Prefix& p) {
    std::optional<uint32_t> id;
    const bool host = p.length() == (p.family() == Family::kV4 ? 32 : 128);
    if (host) {
      if (auto it = pod_by_ip.find(p.addr()); it != pod_by_ip.end()) {
        const PodRecord& rec = pods.at(*it->second);
        for (const auto& [ip, pid] : rec.ip_identities) {
          if (ip == p.addr()) {
            id = pid;
          }
        }
      }
      if (!id) {
        if (auto it = node_ip_identity.find(p.addr()); it != node_ip_identity.end()) {
          id = it->second;
        }
      }
    }
    if (!id) {
      if (auto it = cidr_identity.find(p); it != cidr_identity.end()) {
        id = it->second;
      }
    }
    auto dit = desired_ipcache.find(p);
    if (!id) {
      if (dit != desired_ipcache.end()) {
        desired_ipcache.erase(dit);
        dirty_ipcache.insert(p);
      }
      return;
    }
    dpv2_ipcache_value v{};
    v.identity = *id;
    if (dit == desired_ipcache.end() || dit->second.identity != v.identity) {
      desired_ipcache[p] = v;
      dirty_ipcache.insert(p);
    }
  }

  // The endpoint id an adopted datapath holds for one of `ips`, if free.
  uint32_t AllocateEndpointId(const std::vector<IpAddr>& ips) {
    for (const IpAddr& ip : ips) {
      if (auto it = adopted_endpoint_ids.find(ip);
          it != adopted_endpoint_ids.end() && !endpoints.contains(it->second)) {
        std::erase(free_endpoint_ids, it->second);
        return it->second;
      }
    }
    if (!free_endpoint_ids.empty()) {
      uint32_t id = free_endpoint_ids.back();
      free_endpoint_ids.pop_back();
      return id;
    }
    return next_endpoint_id++;
  }

  void UpdateEndpointEntries(const PodRecord& rec, const std::vector<IpAddr>& old_ips) {
    absl::flat_hash_set<IpAddr> now;
    if (rec.local && rec.endpoint_id != 0) {
      const EndpointRecord& ep = endpoints.at(rec.endpoint_id);
      for (const auto& [ip, id] : rec.ip_identities) {
        dpv2_endpoint_value v{};
        v.endpoint_id = rec.endpoint_id;
        v.ifindex = rec.local->ifindex;
        v.identity = id;
        v.flags = (ep.dirs[kIngress].enabled ? DPV2_EP_F_INGRESS_POLICY : 0) |
                  (ep.dirs[kEgress].enabled ? DPV2_EP_F_EGRESS_POLICY : 0);
        std::copy(rec.local->mac.begin(), rec.local->mac.end(), v.mac);
        std::copy(rec.local->host_mac.begin(), rec.local->host_mac.end(), v.host_mac);
        now.insert(ip);
        auto it = desired_endpoints.find(ip);
        if (it == desired_endpoints.end() || !SameEndpoint(it->second, v)) {
          desired_endpoints[ip] = v;
          dirty_endpoints.insert(ip);
        }
      }
    }
    for (const IpAddr& ip : old_ips) {
      if (!now.contains(ip) && desired_endpoints.erase(ip) > 0) {
        dirty_endpoints.insert(ip);
      }
    }
  }

  void RemoveEndpoint(uint32_t ep_id) {
    auto it = endpoints.find(ep_id);
    if (it == endpoints.end()) {
      return;
    }
    for (int dir : {kIngress, kEgress}) {
      for (uint32_t id : it->second.dirs[dir].groups) {
        SetGroup({ep_id, id, static_cast<uint8_t>(dir)}, {});
      }
    }
    for (const auto& p : it->second.applied) {
      p->endpoints.erase(ep_id);
    }
    const PodRecord& rec = pods.at(it->second.pod_key);
    auto nit = endpoints_by_namespace.find(rec.shape->namespace_name);
    if (nit != endpoints_by_namespace.end()) {
      nit->second.erase(ep_id);
      if (nit->second.empty()) {
        endpoints_by_namespace.erase(nit);
      }
    }
    IndexEndpointLabels(ep_id, *rec.shape, false);
    endpoints.erase(it);
    pending_endpoints.erase(ep_id);
    pending_partial.erase(ep_id);
    free_endpoint_ids.push_back(ep_id);
  }

  // Adds (or removes) local endpoint `ep_id` under each label of `shape`.
  void IndexEndpointLabels(uint32_t ep_id, const PodShape& shape, bool add) {
    for (const auto& [key, value] : shape.labels) {
      const size_t k = LabelBucket(shape.namespace_name, key, value);
      if (add) {
        endpoints_by_label[k].insert(ep_id);
      } else if (auto it = endpoints_by_label.find(k); it != endpoints_by_label.end()) {
        it->second.erase(ep_id);
        if (it->second.empty()) {
          endpoints_by_label.erase(it);
        }
      }
    }
  }

  // ---- selectors -----------------------------------------------------------

  static std::string LabelKey(absl::string_view key, absl::string_view value) {
    return absl::StrCat(Lp(key), Lp(value));
  }
  // The index buckets of a namespace, and of one label in a namespace.
  static size_t NamespaceBucket(absl::string_view ns) {
    return absl::Hash<std::tuple<absl::string_view>>{}(std::make_tuple(ns));
  }
  static size_t LabelBucket(absl::string_view ns, absl::string_view key, absl::string_view value) {
    return absl::Hash<std::tuple<absl::string_view, absl::string_view, absl::string_view>>{}(
        std::make_tuple(ns, key, value));
  }
  // The np_by_subject bucket of a NetworkPolicy: its namespace and the first
  // matchLabels pair of its podSelector (every pod it selects has that
  // label), or the namespace alone when it has none.
  static size_t SubjectBucket(const CompiledPolicy& cp) {
    const auto& match = cp.np_pod_selector.match_labels;
    if (match.empty()) {
      return NamespaceBucket(cp.np_namespace);
    }
    return LabelBucket(cp.np_namespace, match.begin()->first, match.begin()->second);
  }

  // The pod identities of the rarest matchLabels pair of `pods` (every pod
  // identity it can match is among them), or nullptr when it has none.
  const absl::flat_hash_set<uint32_t>* CandidatesOf(const LabelSelector& pods) const {
    static const absl::flat_hash_set<uint32_t> kNone;
    const absl::flat_hash_set<uint32_t>* best = nullptr;
    for (const auto& [key, value] : pods.match_labels) {
      auto it = pod_identities_by_label.find(LabelKey(key, value));
      if (it == pod_identities_by_label.end()) {
        return &kNone;
      }
      if (best == nullptr || it->second.size() < best->size()) {
        best = &it->second;
      }
    }
    return best;
  }

  uint32_t AcquireSelector(Selector s, CompiledPolicy* policy) {
    auto it = selector_by_key.find(s.key);
    uint32_t id;
    if (it != selector_by_key.end()) {
      id = it->second;
    } else {
      id = next_selector++;
      selector_by_key[s.key] = id;
      const bool address = s.kind != Selector::Kind::kPods;
      if (s.kind == Selector::Kind::kNodes) {
        s.cidrs = NodePrefixes(s.node_selector);
      }
      selectors[id] = std::move(s);
      if (address) {
        address_selectors.insert(
            std::upper_bound(address_selectors.begin(), address_selectors.end(), id), id);
        pending_retag = true;  // tags of addresses (hence identities) change
      } else {
        Selector& sel = selectors[id];
        auto add = [&](uint32_t iid, Identity& x) {
          if (SelectorMatches(sel, id, x)) {
            sel.members.insert(iid);
            x.selectors.insert(id);
          }
        };
        if (const absl::flat_hash_set<uint32_t>* few = CandidatesOf(sel.pod_selector)) {
          for (uint32_t iid : *few) {
            add(iid, identities.at(iid));
          }
        } else {
          for (auto& [iid, x] : identities) {
            add(iid, x);
          }
        }
      }
    }
    Selector& sel = selectors.at(id);
    ++sel.references;
    ++sel.policies[policy->key];
    policy->selector_refs.push_back(id);
    return id;
  }

  void ReleaseSelector(uint32_t id, const std::string& policy_key) {
    Selector& s = selectors.at(id);
    if (--s.policies[policy_key] == 0) {
      s.policies.erase(policy_key);
    }
    if (--s.references > 0) {
      return;
    }
    for (uint32_t m : s.members) {
      identities.at(m).selectors.erase(id);
    }
    if (s.kind != Selector::Kind::kPods) {
      address_selectors.erase(
          std::find(address_selectors.begin(), address_selectors.end(), id));
      pending_retag = true;
    }
    selector_by_key.erase(s.key);
    selectors.erase(id);
  }

  std::vector<Prefix> NodePrefixes(const LabelSelector& sel) const {
    std::vector<Prefix> out;
    for (const auto& [name, node] : nodes) {
      if (sel.Matches(node.labels)) {
        for (const IpAddr& ip : node.addresses) {
          out.push_back(HostPrefix(ip));
        }
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Recomputes the tags of every address after the address selectors (or
  // the nodes that `nodes` selectors name) changed: pod identities, node
  // identities and CIDR identities follow.
  absl::Status Retag() {
    pending_retag = false;
    for (uint32_t sid : address_selectors) {
      Selector& s = selectors.at(sid);
      if (s.kind == Selector::Kind::kNodes) {
        s.cidrs = NodePrefixes(s.node_selector);
      }
    }
    // CIDR identities: one per prefix that an address selector names.
    std::set<Prefix> prefixes;
    for (uint32_t sid : address_selectors) {
      const Selector& s = selectors.at(sid);
      if (s.kind != Selector::Kind::kAddresses) {
        continue;
      }
      prefixes.insert(s.cidrs.begin(), s.cidrs.end());
      prefixes.insert(s.excepts.begin(), s.excepts.end());
    }
    absl::flat_hash_map<Prefix, uint32_t> next_cidr;
    for (const Prefix& p : prefixes) {
      std::vector<uint32_t> tags;
      for (uint32_t sid : address_selectors) {
        if (selectors.at(sid).ContainsPrefix(p)) {
          tags.push_back(sid);
        }
      }
      if (tags.empty()) {
        next_cidr[p] = DPV2_IDENTITY_WORLD;
        continue;
      }
      Identity proto{.kind = Identity::Kind::kCidr, .tags = tags};
      DPV2_ASSIGN_OR_RETURN(uint32_t id, AcquireIdentity(absl::StrCat("cidr|", TagText(tags)), proto, p));
      next_cidr[p] = id;
    }
    absl::flat_hash_map<Prefix, uint32_t> old_cidr = std::move(cidr_identity);
    cidr_identity = std::move(next_cidr);
    for (const auto& [p, id] : old_cidr) {
      ReleaseIdentity(id);
      SetIpcacheFor(p);
    }
    for (const auto& [p, id] : cidr_identity) {
      SetIpcacheFor(p);
    }
    // Nodes.
    DPV2_RETURN_IF_ERROR(RecomputeNodeIdentities());
    // Pods.
    std::vector<std::string> keys;
    keys.reserve(pods.size());
    for (const auto& [k, rec] : pods) {
      keys.push_back(k);
    }
    for (const std::string& k : keys) {
      DPV2_RETURN_IF_ERROR(RefreshPod(k));
    }
    return absl::OkStatus();
  }

  absl::Status RecomputeNodeIdentities() {
    absl::flat_hash_map<IpAddr, uint32_t> next;
    std::vector<uint32_t> host_tags;
    for (const auto& [name, node] : nodes) {
      const bool local = name == options.node_name;
      for (const IpAddr& ip : node.addresses) {
        std::vector<uint32_t> tags = TagsOfAddress(ip);
        if (local) {
          host_tags.insert(host_tags.end(), tags.begin(), tags.end());
          next[ip] = DPV2_IDENTITY_HOST;
        } else if (tags.empty()) {
          next[ip] = DPV2_IDENTITY_REMOTE_NODE;
        } else {
          Identity proto{.kind = Identity::Kind::kNode, .tags = tags};
          DPV2_ASSIGN_OR_RETURN(uint32_t id,
                                AcquireIdentity(absl::StrCat("node|", TagText(tags)), proto,
                                                HostPrefix(ip)));
          next[ip] = id;
        }
      }
    }
    std::sort(host_tags.begin(), host_tags.end());
    host_tags.erase(std::unique(host_tags.begin(), host_tags.end()), host_tags.end());
    Identity& host = identities[DPV2_IDENTITY_HOST];
    if (host.tags != host_tags) {
      host.tags = host_tags;
      RecheckIdentity(DPV2_IDENTITY_HOST);
    }
    absl::flat_hash_map<IpAddr, uint32_t> old = std::move(node_ip_identity);
    node_ip_identity = std::move(next);
    for (const auto& [ip, id] : old) {
      ReleaseIdentity(id);
      SetIpcacheFor(HostPrefix(ip));
    }
    for (const auto& [ip, id] : node_ip_identity) {
      SetIpcacheFor(HostPrefix(ip));
    }
    return absl::OkStatus();
  }

  // Re-derives a pod's identities (labels, tags) and everything that hangs
  // off them: ipcache, endpoint entries, named ports, its own policy.
  absl::Status RefreshPod(const std::string& key) {
    PodRecord& rec = pods.at(key);
    DPV2_ASSIGN_OR_RETURN(auto next, AcquirePodIdentities(rec));
    for (const auto& [ip, id] : next) {
      AddNamedPorts(id, rec, +1);
    }
    std::vector<std::pair<IpAddr, uint32_t>> old = std::move(rec.ip_identities);
    rec.ip_identities = std::move(next);
    std::vector<IpAddr> old_ips;
    for (const auto& [ip, id] : old) {
      AddNamedPorts(id, rec, -1);
      ReleaseIdentity(id);
      old_ips.push_back(ip);
    }
    for (const auto& [ip, id] : rec.ip_identities) {
      SetIpcacheFor(HostPrefix(ip));
    }
    if (rec.endpoint_id != 0) {
      UpdateEndpointEntries(rec, old_ips);
    }
    return absl::OkStatus();
  }

  // ---- compiling policies ----------------------------------------------------

  Selector PodsSelector(std::optional<std::string> fixed_ns, std::optional<LabelSelector> ns_sel,
                        LabelSelector pod_sel) {
    Selector s{.kind = Selector::Kind::kPods};
    s.key = absl::StrCat("pods|", fixed_ns ? Lp(*fixed_ns) : "-", "|",
                         ns_sel ? Lp(ns_sel->ToString()) : "-", "|", Lp(pod_sel.ToString()));
    s.fixed_namespace = std::move(fixed_ns);
    s.namespace_selector = std::move(ns_sel);
    s.pod_selector = std::move(pod_sel);
    return s;
  }

  Prefix LenientPrefix(const std::string& text, const std::string& where) {
    bool host_bits = false;
    Prefix p = Prefix::ParseLenient(text, &host_bits).value();  // validated before
    if (host_bits) {
      warnings.push_back(absl::StrCat(where, ": \"", text, "\" has host bits set; using ",
                                      p.ToString()));
    }
    return p;
  }

  Selector AddressSelector(std::vector<Prefix> cidrs, std::vector<Prefix> excepts) {
    std::sort(cidrs.begin(), cidrs.end());
    cidrs.erase(std::unique(cidrs.begin(), cidrs.end()), cidrs.end());
    std::sort(excepts.begin(), excepts.end());
    excepts.erase(std::unique(excepts.begin(), excepts.end()), excepts.end());
    std::vector<std::string> a, b;
    for (const Prefix& p : cidrs) a.push_back(p.ToString());
    for (const Prefix& p : excepts) b.push_back(p.ToString());
    Selector s{.kind = Selector::Kind::kAddresses};
    s.key = absl::StrCat("addr|", absl::StrJoin(a, ","), "|", absl::StrJoin(b, ","));
    s.cidrs = std::move(cidrs);
    s.excepts = std::move(excepts);
    return s;
  }

  static std::vector<PortSpec> NpPorts(const std::vector<NetworkPolicyPort>& ports) {
    std::vector<PortSpec> out;
    for (const NetworkPolicyPort& p : ports) {
      const uint8_t proto = static_cast<uint8_t>(p.protocol.value_or(L4Proto::kTCP));
      if (!p.port) {
        out.push_back({.kind = PortSpec::Kind::kProto, .proto = proto});
      } else if (const int32_t* n = std::get_if<int32_t>(&*p.port)) {
        out.push_back({.kind = PortSpec::Kind::kRange, .proto = proto,
                       .lo = static_cast<uint16_t>(*n),
                       .hi = static_cast<uint16_t>(p.end_port.value_or(*n))});
      } else {
        out.push_back({.kind = PortSpec::Kind::kNamed, .proto = proto,
                       .name = std::get<std::string>(*p.port)});
      }
    }
    return out;
  }

  static std::vector<PortSpec> AnpPorts(const std::optional<std::vector<AdminNetworkPolicyPort>>& ports) {
    std::vector<PortSpec> out;
    if (!ports) {
      return out;
    }
    for (const AdminNetworkPolicyPort& p : *ports) {
      if (p.port_number) {
        out.push_back({.kind = PortSpec::Kind::kRange,
                       .proto = static_cast<uint8_t>(p.port_number->protocol),
                       .lo = static_cast<uint16_t>(p.port_number->port),
                       .hi = static_cast<uint16_t>(p.port_number->port)});
      } else if (p.named_port) {
        out.push_back({.kind = PortSpec::Kind::kNamed, .name = *p.named_port, .any_proto = true});
      } else if (p.port_range) {
        out.push_back({.kind = PortSpec::Kind::kRange,
                       .proto = static_cast<uint8_t>(p.port_range->protocol),
                       .lo = static_cast<uint16_t>(p.port_range->start),
                       .hi = static_cast<uint16_t>(p.port_range->end)});
      }
    }
    return out;
  }

  static bool HasNamed(const std::vector<PortSpec>& ports) {
    for (const PortSpec& p : ports) {
      if (p.kind == PortSpec::Kind::kNamed) return true;
    }
    return false;
  }

  std::shared_ptr<CompiledPolicy> CompileNetworkPolicy(const NetworkPolicy& np) {
    auto cp = std::make_shared<CompiledPolicy>();
    cp->ref = {.kind = PolicyRef::Kind::kNetworkPolicy,
               .namespace_name = np.metadata.namespace_name, .name = np.metadata.name};
    cp->key = absl::StrCat("np|", Lp(np.metadata.namespace_name), Lp(np.metadata.name));
    cp->np_namespace = np.metadata.namespace_name;
    cp->np_pod_selector = np.spec.pod_selector;
    cp->np_types = EffectivePolicyTypes(np.spec);
    cp->annotations = np.metadata.annotations;
    const std::string object =
        absl::StrCat("networkpolicy ", np.metadata.namespace_name, "/", np.metadata.name);
    auto compile_peers = [&](const std::vector<NetworkPolicyPeer>& peers, const std::string& field,
                             CompiledRule* rule) {
      if (peers.empty()) {
        rule->any_peer = true;
        return;
      }
      for (size_t j = 0; j < peers.size(); ++j) {
        const NetworkPolicyPeer& peer = peers[j];
        if (peer.ip_block) {
          const std::string f = absl::StrCat(object, ": ", field, "[", j, "].ipBlock");
          std::vector<Prefix> excepts;
          for (const std::string& e : peer.ip_block->except) {
            excepts.push_back(LenientPrefix(e, absl::StrCat(f, ".except")));
          }
          rule->selectors.push_back(AcquireSelector(
              AddressSelector({LenientPrefix(peer.ip_block->cidr, absl::StrCat(f, ".cidr"))},
                              std::move(excepts)),
              cp.get()));
        } else if (peer.namespace_selector) {
          rule->selectors.push_back(AcquireSelector(
              PodsSelector(std::nullopt, peer.namespace_selector,
                           peer.pod_selector.value_or(LabelSelector{})),
              cp.get()));
        } else {
          rule->selectors.push_back(AcquireSelector(
              PodsSelector(np.metadata.namespace_name, std::nullopt, *peer.pod_selector), cp.get()));
        }
      }
    };
    if (cp->np_types[kIngress]) {
      for (size_t i = 0; i < np.spec.ingress.size(); ++i) {
        CompiledRule rule{.meta = {.tier = Tier::kNetwork, .ref = cp->ref}};
        rule.ports = NpPorts(np.spec.ingress[i].ports);
        compile_peers(np.spec.ingress[i].from, absl::StrCat("spec.ingress[", i, "].from"), &rule);
        cp->rules[kIngress].push_back(std::move(rule));
      }
    }
    if (cp->np_types[kEgress]) {
      for (size_t i = 0; i < np.spec.egress.size(); ++i) {
        CompiledRule rule{.meta = {.tier = Tier::kNetwork, .ref = cp->ref}};
        rule.ports = NpPorts(np.spec.egress[i].ports);
        compile_peers(np.spec.egress[i].to, absl::StrCat("spec.egress[", i, "].to"), &rule);
        if (rule.any_peer && HasNamed(rule.ports)) {
          // A named port resolves per destination pod: name every pod.
          rule.selectors.push_back(
              AcquireSelector(PodsSelector(std::nullopt, LabelSelector{}, LabelSelector{}), cp.get()));
        }
        cp->rules[kEgress].push_back(std::move(rule));
      }
    }
    return cp;
  }

  template <typename IngressRules, typename EgressRules>
  void CompileAdminRules(const IngressRules& ingress, const EgressRules& egress, Tier tier,
                         int32_t priority, const std::string& object, CompiledPolicy* cp) {
    for (size_t i = 0; i < ingress.size(); ++i) {
      CompiledRule rule{.meta = {.tier = tier, .priority = priority, .rule_index = static_cast<int>(i),
                                 .action = ingress[i].action, .ref = cp->ref}};
      rule.ports = AnpPorts(ingress[i].ports);
      for (const AdminNetworkPolicyIngressPeer& peer : ingress[i].from) {
        if (peer.namespaces) {
          rule.selectors.push_back(
              AcquireSelector(PodsSelector(std::nullopt, *peer.namespaces, LabelSelector{}), cp));
        } else {
          rule.selectors.push_back(AcquireSelector(
              PodsSelector(std::nullopt, peer.pods->namespace_selector, peer.pods->pod_selector), cp));
        }
      }
      cp->rules[kIngress].push_back(std::move(rule));
    }
    for (size_t i = 0; i < egress.size(); ++i) {
      CompiledRule rule{.meta = {.tier = tier, .priority = priority, .rule_index = static_cast<int>(i),
                                 .action = egress[i].action, .ref = cp->ref}};
      rule.ports = AnpPorts(egress[i].ports);
      for (size_t j = 0; j < egress[i].to.size(); ++j) {
        const AdminNetworkPolicyEgressPeer& peer = egress[i].to[j];
        if (peer.namespaces) {
          rule.selectors.push_back(
              AcquireSelector(PodsSelector(std::nullopt, *peer.namespaces, LabelSelector{}), cp));
        } else if (peer.pods) {
          rule.selectors.push_back(AcquireSelector(
              PodsSelector(std::nullopt, peer.pods->namespace_selector, peer.pods->pod_selector), cp));
        } else if (peer.nodes) {
          Selector s{.kind = Selector::Kind::kNodes};
          s.key = absl::StrCat("nodes|", Lp(peer.nodes->ToString()));
          s.node_selector = *peer.nodes;
          rule.selectors.push_back(AcquireSelector(std::move(s), cp));
        } else if (peer.networks) {
          std::vector<Prefix> cidrs;
          for (size_t k = 0; k < peer.networks->size(); ++k) {
            cidrs.push_back(LenientPrefix((*peer.networks)[k],
                                          absl::StrCat(object, ": spec.egress[", i, "].to[", j,
                                                       "].networks[", k, "]")));
          }
          rule.selectors.push_back(AcquireSelector(AddressSelector(std::move(cidrs), {}), cp));
        }
      }
      cp->rules[kEgress].push_back(std::move(rule));
    }
  }

  bool PolicyApplies(const CompiledPolicy& cp, const PodRecord& rec) const {
    const PodShape& pod = *rec.shape;
    if (pod.host_network) {
      return false;
    }
    if (cp.ref.kind == PolicyRef::Kind::kNetworkPolicy) {
      return cp.np_namespace == pod.namespace_name && cp.np_pod_selector.Matches(pod.labels);
    }
    const Labels ns_labels = NamespaceLabels(pod.namespace_name);
    if (cp.subject_namespaces) {
      return cp.subject_namespaces->Matches(ns_labels);
    }
    return cp.subject_pods->namespace_selector.Matches(ns_labels) &&
           cp.subject_pods->pod_selector.Matches(pod.labels);
  }

  static bool HasAnyPeerRule(const CompiledPolicy& cp) {
    for (const auto& rules : cp.rules) {
      for (const CompiledRule& r : rules) {
        if (r.any_peer) return true;
      }
    }
    return false;
  }

  // Endpoints a change of policy `cp` may concern, and the identities whose
  // groups it may change (those its selectors match). Only the endpoints it
  // applies to can change: those it applied to at the last recompute
  // (cp.endpoints, exact because every pod change recomputes its endpoint)
  // and those its subject selects now. Marking every endpoint of the
  // namespace instead made a full sync cost policies x endpoints recomputes,
  // each over every policy.
  void MarkPolicyCandidates(const CompiledPolicy& cp) {
    std::vector<uint32_t> eps(cp.endpoints.begin(), cp.endpoints.end());
    auto add_if_applies = [&](uint32_t ep, const EndpointRecord& rec) {
      if (!cp.endpoints.contains(ep) && PolicyApplies(cp, pods.at(rec.pod_key))) {
        eps.push_back(ep);
      }
    };
    if (cp.ref.kind == PolicyRef::Kind::kNetworkPolicy) {
      // Every endpoint it selects carries each of its matchLabels pairs:
      // the rarest pair's endpoints are enough.
      const absl::flat_hash_set<uint32_t>* few = nullptr;
      bool none = false;
      for (const auto& [key, value] : cp.np_pod_selector.match_labels) {
        auto it = endpoints_by_label.find(LabelBucket(cp.np_namespace, key, value));
        if (it == endpoints_by_label.end()) {
          none = true;
          break;
        }
        if (few == nullptr || it->second.size() < few->size()) {
          few = &it->second;
        }
      }
      if (few == nullptr && !none) {
        if (auto it = endpoints_by_namespace.find(cp.np_namespace);
            it != endpoints_by_namespace.end()) {
          few = &it->second;
        }
      }
      if (few != nullptr && !none) {
        for (uint32_t ep : *few) {
          add_if_applies(ep, endpoints.at(ep));
        }
      }
    } else {
      for (const auto& [ep, rec] : endpoints) {
        add_if_applies(ep, rec);
      }
    }
    // Wildcard rules touch every group; address selectors re-tag identities
    // (Retag), whose new groups only a full recompute finds.
    bool full = HasAnyPeerRule(cp);
    for (uint32_t sid : cp.selector_refs) {
      full = full || selectors.at(sid).kind != Selector::Kind::kPods;
    }
    if (full) {
      pending_endpoints.insert(eps.begin(), eps.end());
      return;
    }
    absl::flat_hash_set<uint32_t> ids;
    for (uint32_t sid : cp.selector_refs) {
      const Selector& sel = selectors.at(sid);
      ids.insert(sel.members.begin(), sel.members.end());
    }
    for (uint32_t ep : eps) {
      pending_partial[ep].insert(ids.begin(), ids.end());
    }
  }

  void ReplacePolicy(const std::string& key, std::shared_ptr<CompiledPolicy> next) {
    std::shared_ptr<CompiledPolicy> old;
    if (auto it = policies.find(key); it != policies.end()) {
      old = it->second;
      MarkPolicyCandidates(*old);
    }
    if (old) {
      if (old->ref.kind == PolicyRef::Kind::kNetworkPolicy) {
        auto nit = np_by_subject.find(SubjectBucket(*old));
        std::erase(nit->second, old);
        if (nit->second.empty()) {
          np_by_subject.erase(nit);
        }
      } else {
        admin_policies.erase(key);
      }
    }
    if (next) {
      policies[key] = next;
      MarkPolicyCandidates(*next);
      if (next->ref.kind == PolicyRef::Kind::kNetworkPolicy) {
        np_by_subject[SubjectBucket(*next)].push_back(next);
      } else {
        admin_policies.insert(key);
      }
    } else {
      policies.erase(key);
    }
    if (old) {
      for (uint32_t sid : old->selector_refs) {
        ReleaseSelector(sid, key);
      }
    }
  }

  // ---- per-endpoint compilation ----------------------------------------------

  // `preferred`: the match id the datapath holds for this entry (adoption).
  uint32_t MatchId(std::vector<PolicyRef> refs, uint32_t preferred) {
    std::sort(refs.begin(), refs.end());
    refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
    std::string key;
    for (const PolicyRef& r : refs) {
      absl::StrAppend(&key, static_cast<int>(r.kind), Lp(r.namespace_name), Lp(r.name));
    }
    auto it = match_by_key.find(key);
    if (it != match_by_key.end()) {
      return it->second;
    }
    uint32_t id = preferred;
    if (id == 0 || id >= next_match_id || match_policies.contains(id)) {
      id = next_match_id++;
    }
    match_policies[id] = std::move(refs);
    match_by_key[key] = id;
    return id;
  }

  // `held`: what the datapath holds at this entry's key, if adopted.
  dpv2_policy_value Decide(const std::vector<const RuleMeta*>& metas, bool np_isolated,
                           const dpv2_policy_value* held) {
    auto preferred = [held](uint8_t tier) {
      return held != nullptr && held->tier == tier ? held->match_id : 0;
    };
    const RuleMeta* admin = nullptr;
    const RuleMeta* baseline = nullptr;
    std::vector<PolicyRef> allowed_by;
    for (const RuleMeta* m : metas) {
      switch (m->tier) {
        case Tier::kHost:
          return {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NONE, .match_id = 0};
        case Tier::kAdmin:
          if (admin == nullptr || m->AdminBefore(*admin)) admin = m;
          break;
        case Tier::kNetwork:
          allowed_by.push_back(m->ref);
          break;
        case Tier::kBaseline:
          if (baseline == nullptr || m->rule_index < baseline->rule_index) baseline = m;
          break;
      }
    }
    if (admin != nullptr && admin->action != AdminNetworkPolicyRuleAction::kPass) {
      return {.verdict = static_cast<uint8_t>(admin->action == AdminNetworkPolicyRuleAction::kAllow
                                                  ? DPV2_POLICY_ALLOW
                                                  : DPV2_POLICY_DENY),
              .tier = DPV2_POLICY_TIER_ADMIN,
              .match_id = MatchId({admin->ref}, preferred(DPV2_POLICY_TIER_ADMIN))};
    }
    if (np_isolated) {
      if (!allowed_by.empty()) {
        return {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NETWORK,
                .match_id = MatchId(std::move(allowed_by), preferred(DPV2_POLICY_TIER_NETWORK))};
      }
      return {.verdict = DPV2_POLICY_DENY, .tier = DPV2_POLICY_TIER_DEFAULT, .match_id = 0};
    }
    if (baseline != nullptr) {
      return {.verdict = static_cast<uint8_t>(baseline->action == AdminNetworkPolicyRuleAction::kAllow
                                                  ? DPV2_POLICY_ALLOW
                                                  : DPV2_POLICY_DENY),
              .tier = DPV2_POLICY_TIER_BASELINE,
              .match_id = MatchId({baseline->ref}, preferred(DPV2_POLICY_TIER_BASELINE))};
    }
    return {.verdict = DPV2_POLICY_ALLOW, .tier = DPV2_POLICY_TIER_NONE, .match_id = 0};
  }

  static const RuleMeta* HostMeta() {
    static const RuleMeta meta{.tier = Tier::kHost};
    return &meta;
  }

  bool GroupNeeded(const DirectionState& d, uint32_t id, int dir) const {
    if (id == kAnyPeer) {
      return true;
    }
    if (id == DPV2_IDENTITY_HOST && dir == kIngress) {
      return true;
    }
    auto it = identities.find(id);
    if (it == identities.end()) {
      return false;
    }
    for (const CompiledRule* r : d.rules) {
      for (uint32_t sid : r->selectors) {
        if (it->second.selectors.contains(sid)) {
          return true;
        }
      }
    }
    return false;
  }

  std::vector<PolicyEntry> ComputeGroup(uint32_t ep_id, const PodRecord& pod,
                                        const DirectionState& d, uint32_t id, int dir) {
    // (variable_bits << 24 | masked variable) -> rules whose prefix it is.
    absl::flat_hash_map<uint32_t, std::vector<const RuleMeta*>> by_prefix;
    by_prefix[0];
    const Identity* x = nullptr;
    if (auto it = identities.find(id); it != identities.end()) {
      x = &it->second;
    }
    if (id == DPV2_IDENTITY_HOST && dir == kIngress) {
      by_prefix[0].push_back(HostMeta());
    }
    std::vector<std::pair<int, uint32_t>> prefixes;
    for (const CompiledRule* r : d.rules) {
      bool via_pod = false, via_other = r->any_peer;
      if (id != kAnyPeer && x != nullptr) {
        for (uint32_t sid : r->selectors) {
          if (x->selectors.contains(sid)) {
            if (selectors.at(sid).kind == Selector::Kind::kPods) {
              via_pod = true;
            } else {
              via_other = true;
            }
          }
        }
      }
      if (!via_pod && !via_other) {
        continue;
      }
      prefixes.clear();
      if (r->ports.empty()) {
        prefixes.push_back({0, 0});
      }
      for (const PortSpec& p : r->ports) {
        switch (p.kind) {
          case PortSpec::Kind::kAll:
            prefixes.push_back({0, 0});
            break;
          case PortSpec::Kind::kProto:
            prefixes.push_back({8, static_cast<uint32_t>(p.proto) << 16});
            break;
          case PortSpec::Kind::kRange:
            AddRange(p.proto, p.lo, p.hi, &prefixes);
            break;
          case PortSpec::Kind::kNamed:
            if (dir == kIngress) {
              // Resolved against the selected (local) pod.
              for (const ContainerPort& cp : pod.shape->container_ports) {
                if (cp.name == p.name && (p.any_proto || static_cast<uint8_t>(cp.protocol) == p.proto)) {
                  prefixes.push_back({24, (static_cast<uint32_t>(cp.protocol) << 16) |
                                              static_cast<uint16_t>(cp.container_port)});
                }
              }
            } else if (via_pod && x != nullptr) {
              // Resolved against the destination pods of this identity; an
              // address peer never matches a named port.
              for (const auto& [key, count] : x->named_ports) {
                const auto& [name, proto, port] = key;
                if (name == p.name && (p.any_proto || proto == p.proto)) {
                  prefixes.push_back({24, (static_cast<uint32_t>(proto) << 16) | port});
                }
              }
            }
            break;
        }
      }
      for (const auto& [len, var] : prefixes) {
        by_prefix[(static_cast<uint32_t>(len) << 24) | var].push_back(&r->meta);
      }
    }
    std::vector<uint32_t> codes;
    codes.reserve(by_prefix.size());
    for (const auto& [code, metas] : by_prefix) {
      codes.push_back(code);
    }
    std::sort(codes.begin(), codes.end());  // shorter prefixes first
    std::vector<PolicyEntry> out;
    absl::flat_hash_map<uint32_t, dpv2_policy_value> emitted;
    std::vector<const RuleMeta*> metas;
    for (uint32_t code : codes) {
      const int len = static_cast<int>(code >> 24);
      const uint32_t var = code & ((1u << 24) - 1);
      metas.clear();
      const dpv2_policy_value* parent = nullptr;
      for (int l = 0; l <= len; ++l) {
        const uint32_t c = (static_cast<uint32_t>(l) << 24) | (var & MaskOf(l));
        if (auto it = by_prefix.find(c); it != by_prefix.end()) {
          metas.insert(metas.end(), it->second.begin(), it->second.end());
        }
        if (l < len) {
          if (auto it = emitted.find(c); it != emitted.end()) {
            parent = &it->second;
          }
        }
      }
      const dpv2_policy_key key =
          MakePolicyKey(ep_id, id, static_cast<uint8_t>(dir), static_cast<uint8_t>(var >> 16),
                        static_cast<uint16_t>(var & 0xffff), len);
      const dpv2_policy_value v = Decide(metas, d.np_isolated, HeldEntry(key));
      if (parent != nullptr && SameValue(*parent, v)) {
        continue;  // the enclosing entry already answers the same
      }
      emitted[code] = v;
      out.push_back({.key = key, .value = v});
    }
    return out;
  }

  // The value the adopted datapath holds at `key` (nullptr when not adopting).
  const dpv2_policy_value* HeldEntry(const dpv2_policy_key& key) const {
    if (!adopted) {
      return nullptr;
    }
    auto it = acked_policy.find({key.endpoint_id, key.identity, key.direction});
    if (it == acked_policy.end()) {
      return nullptr;
    }
    for (const PolicyEntry& e : it->second) {
      if (SameKey(e.key, key)) {
        return &e.value;
      }
    }
    return nullptr;
  }

  void SetGroup(const GroupKey& g, std::vector<PolicyEntry> entries) {
    auto it = desired_policy.find(g);
    if (entries.empty()) {
      if (it != desired_policy.end()) {
        desired_policy_entries -= it->second.size();
        desired_policy.erase(it);
        dirty_policy.insert(g);
      }
      return;
    }
    if (it != desired_policy.end() && SameEntries(it->second, entries)) {
      return;
    }
    if (it != desired_policy.end()) {
      desired_policy_entries -= it->second.size();
    }
    desired_policy_entries += entries.size();
    desired_policy[g] = std::move(entries);
    dirty_policy.insert(g);
  }

  void RecomputeGroup(const GroupKey& g) {
    auto eit = endpoints.find(g.endpoint_id);
    if (eit == endpoints.end()) {
      return;
    }
    DirectionState& d = eit->second.dirs[g.direction];
    if (!d.enabled || !GroupNeeded(d, g.identity, g.direction)) {
      d.groups.erase(g.identity);
      SetGroup(g, {});
      return;
    }
    d.groups.insert(g.identity);
    SetGroup(g, ComputeGroup(g.endpoint_id, pods.at(eit->second.pod_key), d, g.identity,
                             g.direction));
  }

  void RecomputeEndpoint(uint32_t ep_id, const absl::flat_hash_set<uint32_t>* only = nullptr) {
    auto eit = endpoints.find(ep_id);
    if (eit == endpoints.end()) {
      return;
    }
    EndpointRecord& ep = eit->second;
    const PodRecord& pod = pods.at(ep.pod_key);
    for (const auto& p : ep.applied) {
      p->endpoints.erase(ep_id);
    }
    ep.applied.clear();
    std::vector<std::shared_ptr<CompiledPolicy>> admin, network, baseline;
    auto consider = [&](const std::shared_ptr<CompiledPolicy>& cp) {
      // A policy in two buckets of the pod (hash collision) counts once.
      if (std::find(ep.applied.begin(), ep.applied.end(), cp) != ep.applied.end() ||
          !PolicyApplies(*cp, pod)) {
        return;
      }
      cp->endpoints.insert(ep_id);
      ep.applied.push_back(cp);
      switch (cp->ref.kind) {
        case PolicyRef::Kind::kNetworkPolicy:
          network.push_back(cp);
          break;
        case PolicyRef::Kind::kAdminNetworkPolicy:
          admin.push_back(cp);
          break;
        case PolicyRef::Kind::kBaselineAdminNetworkPolicy:
          baseline.push_back(cp);
          break;
      }
    };
    auto consider_bucket = [&](size_t bucket) {
      if (auto it = np_by_subject.find(bucket); it != np_by_subject.end()) {
        for (const std::shared_ptr<CompiledPolicy>& cp : it->second) {
          consider(cp);
        }
      }
    };
    const PodShape& shape = *pod.shape;
    consider_bucket(NamespaceBucket(shape.namespace_name));
    for (const auto& [key, value] : shape.labels) {
      consider_bucket(LabelBucket(shape.namespace_name, key, value));
    }
    for (const std::string& key : admin_policies) {
      consider(policies.at(key));
    }
    for (int dir : {kIngress, kEgress}) {
      DirectionState& d = ep.dirs[dir];
      const bool was_enabled = d.enabled, was_isolated = d.np_isolated;
      d.rules.clear();
      d.np_isolated = false;
      bool admin_rules = false;
      for (const auto& cp : admin) {
        for (const CompiledRule& r : cp->rules[dir]) {
          d.rules.push_back(&r);
          admin_rules = true;
        }
      }
      for (const auto& cp : network) {
        if (cp->np_types[dir]) {
          d.np_isolated = true;
          for (const CompiledRule& r : cp->rules[dir]) {
            d.rules.push_back(&r);
          }
        }
      }
      for (const auto& cp : baseline) {
        for (const CompiledRule& r : cp->rules[dir]) {
          d.rules.push_back(&r);
          admin_rules = true;
        }
      }
      d.enabled = d.np_isolated || admin_rules;
      if (only != nullptr && was_enabled == d.enabled && was_isolated == d.np_isolated) {
        // Only groups of identities the changed policies name can differ.
        auto recompute = [&](uint32_t id) {
          const GroupKey g{ep_id, id, static_cast<uint8_t>(dir)};
          if (d.enabled && GroupNeeded(d, id, dir)) {
            d.groups.insert(id);
            SetGroup(g, ComputeGroup(ep_id, pod, d, id, dir));
          } else {
            d.groups.erase(id);
            SetGroup(g, {});
          }
        };
        recompute(kAnyPeer);
        recompute(DPV2_IDENTITY_HOST);
        for (uint32_t id : *only) {
          if (id != kAnyPeer && id != DPV2_IDENTITY_HOST) {
            recompute(id);
          }
        }
        continue;
      }
      absl::flat_hash_set<uint32_t> needed;
      if (d.enabled) {
        needed.insert(kAnyPeer);
        if (dir == kIngress) {
          needed.insert(DPV2_IDENTITY_HOST);
        }
        for (const CompiledRule* r : d.rules) {
          for (uint32_t sid : r->selectors) {
            const Selector& s = selectors.at(sid);
            needed.insert(s.members.begin(), s.members.end());
          }
        }
      }
      for (uint32_t id : d.groups) {
        if (!needed.contains(id)) {
          SetGroup({ep_id, id, static_cast<uint8_t>(dir)}, {});
        }
      }
      d.groups = std::move(needed);
      for (uint32_t id : d.groups) {
        SetGroup({ep_id, id, static_cast<uint8_t>(dir)},
                 ComputeGroup(ep_id, pod, d, id, dir));
      }
    }
    UpdateEndpointEntries(pod, {});
  }

  absl::Status Flush() {
    if (pending_retag) {
      DPV2_RETURN_IF_ERROR(Retag());
    }
    std::vector<uint32_t> eps(pending_endpoints.begin(), pending_endpoints.end());
    pending_endpoints.clear();
    std::sort(eps.begin(), eps.end());
    for (uint32_t ep : eps) {
      RecomputeEndpoint(ep);
    }
    absl::flat_hash_set<uint32_t> done(eps.begin(), eps.end());
    auto partial = std::move(pending_partial);
    pending_partial.clear();
    for (const auto& [ep, ids] : partial) {
      if (!done.contains(ep)) {
        RecomputeEndpoint(ep, &ids);
      }
    }
    std::vector<GroupKey> groups(pending_groups.begin(), pending_groups.end());
    pending_groups.clear();
    for (const GroupKey& g : groups) {
      if (!done.contains(g.endpoint_id)) {
        RecomputeGroup(g);
      }
    }
    return absl::OkStatus();
  }
};

// ---- public API --------------------------------------------------------------

PolicyState::PolicyState(PolicyStateOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  for (uint32_t id : {DPV2_IDENTITY_HOST, DPV2_IDENTITY_WORLD, DPV2_IDENTITY_REMOTE_NODE}) {
    state_->identities[id] = Identity{
        .kind = id == DPV2_IDENTITY_HOST ? Identity::Kind::kHost : Identity::Kind::kReserved};
  }
}
PolicyState::PolicyState(PolicyState&&) noexcept = default;
PolicyState& PolicyState::operator=(PolicyState&&) noexcept = default;
PolicyState::~PolicyState() = default;

absl::Status PolicyState::SetNamespace(const NamespaceInfo& ns) {
  if (ns.name.empty()) {
    return absl::InvalidArgumentError("namespace: metadata.name is empty");
  }
  State& s = *state_;
  NamespaceInfo info = ns;
  info.labels[std::string(kNamespaceNameLabel)] = ns.name;
  const Labels old_labels = s.NamespaceLabels(ns.name);
  s.namespaces[ns.name] = std::move(info);
  if (old_labels != s.namespaces[ns.name].labels) {
    if (auto it = s.identities_by_namespace.find(ns.name); it != s.identities_by_namespace.end()) {
      std::vector<uint32_t> ids(it->second.begin(), it->second.end());
      for (uint32_t id : ids) {
        s.RecheckIdentity(id);
      }
    }
    // Admin subjects select by namespace labels.
    if (auto it = s.endpoints_by_namespace.find(ns.name); it != s.endpoints_by_namespace.end()) {
      s.pending_endpoints.insert(it->second.begin(), it->second.end());
    }
  }
  return s.Flush();
}

absl::Status PolicyState::RemoveNamespace(absl::string_view name) {
  State& s = *state_;
  auto it = s.namespaces.find(name);
  if (it == s.namespaces.end()) {
    return absl::NotFoundError(absl::StrCat("namespace ", name, ": not found"));
  }
  // Pods of a deleted namespace are deleted too; until then they keep the
  // implicit label only.
  NamespaceInfo bare{.name = std::string(name)};
  DPV2_RETURN_IF_ERROR(SetNamespace(bare));
  s.namespaces.erase(std::string(name));
  return absl::OkStatus();
}

absl::Status PolicyState::SetPod(const PodInfo& pod, std::optional<LocalEndpoint> local) {
  State& s = *state_;
  const std::string object = absl::StrCat("pod ", pod.namespace_name, "/", pod.name);
  if (pod.namespace_name.empty() || pod.name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(object, ": metadata.name and namespace are required"));
  }
  for (size_t i = 0; i < pod.ips.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (pod.ips[i] == pod.ips[j]) {
        return absl::InvalidArgumentError(
            absl::StrCat(object, ": status.podIPs[", i, "] ", pod.ips[i].ToString(), " repeats"));
      }
    }
    if (!pod.host_network) {
      if (auto it = s.pod_by_ip.find(pod.ips[i]);
          it != s.pod_by_ip.end() && *it->second != PodKey(pod.namespace_name, pod.name)) {
        return absl::AlreadyExistsError(absl::StrCat(object, ": status.podIPs[", i, "] ",
                                                     pod.ips[i].ToString(), " belongs to pod ",
                                                     *it->second));
      }
    }
  }
  for (size_t i = 0; i < pod.container_ports.size(); ++i) {
    const int32_t p = pod.container_ports[i].container_port;
    if (p < 1 || p > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(object, ": containerPorts[", i,
                                                     "].containerPort ", p, " out of range 1-65535"));
    }
  }
  if (local && local->ifindex == 0) {
    return absl::InvalidArgumentError(absl::StrCat(object, ": local endpoint ifindex is 0"));
  }
  auto [pit, inserted] = s.pods.try_emplace(PodKey(pod.namespace_name, pod.name));
  const std::string& key = pit->first;
  PodRecord* rec = &pit->second;
  std::vector<IpAddr> old_ips;
  bool labels_changed = true;
  if (!inserted) {
    for (const auto& [ip, id] : rec->ip_identities) {
      old_ips.push_back(ip);
    }
    labels_changed = rec->shape->labels != pod.labels ||
                     rec->shape->container_ports != pod.container_ports ||
                     rec->shape->host_network != pod.host_network;
    // Identities are re-derived below from the new PodInfo.
    for (const auto& [ip, id] : rec->ip_identities) {
      s.AddNamedPorts(id, *rec, -1);
    }
  }
  std::vector<std::pair<IpAddr, uint32_t>> old = std::move(rec->ip_identities);
  rec->ip_identities.clear();
  const PodShape* old_shape = std::exchange(rec->shape, s.shapes.Acquire(ShapeOf(pod)));
  const std::string* old_node = std::exchange(rec->node_name, s.node_names.Acquire(pod.node_name));
  std::vector<IpAddr> old_pod_ips = std::exchange(rec->ips, pod.ips);
  absl::StatusOr<std::vector<std::pair<IpAddr, uint32_t>>> next = s.AcquirePodIdentities(*rec);
  if (!next.ok()) {
    s.shapes.Release(std::exchange(rec->shape, old_shape));
    s.node_names.Release(std::exchange(rec->node_name, old_node));
    if (inserted) {
      s.pods.erase(pit);
      return next.status();
    }
    rec->ips = std::move(old_pod_ips);
    rec->ip_identities = std::move(old);
    for (const auto& [ip, id] : rec->ip_identities) {
      s.AddNamedPorts(id, *rec, +1);
    }
    return next.status();
  }
  if (rec->endpoint_id != 0 && old_shape->labels != rec->shape->labels) {
    s.IndexEndpointLabels(rec->endpoint_id, *old_shape, false);
    s.IndexEndpointLabels(rec->endpoint_id, *rec->shape, true);
  }
  s.shapes.Release(old_shape);
  s.node_names.Release(old_node);
  rec->ip_identities = std::move(*next);
  for (const auto& [ip, id] : rec->ip_identities) {
    s.AddNamedPorts(id, *rec, +1);
  }
  for (const auto& [ip, id] : old) {
    s.ReleaseIdentity(id);
  }
  for (const IpAddr& ip : old_ips) {
    s.pod_by_ip.erase(ip);
  }
  for (const auto& [ip, id] : rec->ip_identities) {
    s.pod_by_ip[ip] = &key;
  }
  for (const IpAddr& ip : old_ips) {
    s.SetIpcacheFor(HostPrefix(ip));
  }
  for (const auto& [ip, id] : rec->ip_identities) {
    s.SetIpcacheFor(HostPrefix(ip));
  }
  // Local endpoint.
  const bool want_endpoint = local.has_value() && !pod.host_network;
  if (!want_endpoint && rec->endpoint_id != 0) {
    s.RemoveEndpoint(rec->endpoint_id);
    rec->endpoint_id = 0;
  }
  rec->local = want_endpoint ? local : std::nullopt;
  if (want_endpoint && rec->endpoint_id == 0) {
    rec->endpoint_id = s.AllocateEndpointId(pod.ips);
    s.endpoints[rec->endpoint_id] = EndpointRecord{.pod_key = key};
    s.endpoints_by_namespace[pod.namespace_name].insert(rec->endpoint_id);
    s.IndexEndpointLabels(rec->endpoint_id, *rec->shape, true);
    s.pending_endpoints.insert(rec->endpoint_id);
  } else if (want_endpoint && labels_changed) {
    s.pending_endpoints.insert(rec->endpoint_id);
  }
  s.UpdateEndpointEntries(*rec, old_ips);
  return s.Flush();
}

absl::Status PolicyState::RemovePod(absl::string_view namespace_name, absl::string_view name) {
  State& s = *state_;
  const std::string key = PodKey(namespace_name, name);
  auto it = s.pods.find(key);
  if (it == s.pods.end()) {
    return absl::NotFoundError(absl::StrCat("pod ", key, ": not found"));
  }
  PodRecord& rec = it->second;
  if (rec.endpoint_id != 0) {
    s.RemoveEndpoint(rec.endpoint_id);
  }
  std::vector<IpAddr> ips;
  for (const auto& [ip, id] : rec.ip_identities) {
    s.AddNamedPorts(id, rec, -1);
    s.ReleaseIdentity(id);
    ips.push_back(ip);
    s.pod_by_ip.erase(ip);
  }
  rec.ip_identities.clear();
  rec.endpoint_id = 0;
  s.UpdateEndpointEntries(rec, ips);
  s.shapes.Release(rec.shape);
  s.node_names.Release(rec.node_name);
  s.pods.erase(it);
  for (const IpAddr& ip : ips) {
    s.SetIpcacheFor(HostPrefix(ip));
  }
  return s.Flush();
}

absl::Status PolicyState::SetNode(const NodeInfo& node) {
  if (node.name.empty()) {
    return absl::InvalidArgumentError("node: metadata.name is empty");
  }
  State& s = *state_;
  s.nodes[node.name] = node;
  for (uint32_t sid : s.address_selectors) {
    if (s.selectors.at(sid).kind == Selector::Kind::kNodes) {
      s.pending_retag = true;
    }
  }
  if (!s.pending_retag) {
    DPV2_RETURN_IF_ERROR(s.RecomputeNodeIdentities());
  }
  return s.Flush();
}

absl::Status PolicyState::RemoveNode(absl::string_view name) {
  State& s = *state_;
  if (s.nodes.erase(std::string(name)) == 0) {
    return absl::NotFoundError(absl::StrCat("node ", name, ": not found"));
  }
  for (uint32_t sid : s.address_selectors) {
    if (s.selectors.at(sid).kind == Selector::Kind::kNodes) {
      s.pending_retag = true;
    }
  }
  if (!s.pending_retag) {
    DPV2_RETURN_IF_ERROR(s.RecomputeNodeIdentities());
  }
  return s.Flush();
}

absl::Status PolicyState::SetNetworkPolicy(const NetworkPolicy& np) {
  DPV2_RETURN_IF_ERROR(ValidateNetworkPolicy(np));
  State& s = *state_;
  std::shared_ptr<CompiledPolicy> cp = s.CompileNetworkPolicy(np);
  s.ReplacePolicy(cp->key, cp);
  return s.Flush();
}

absl::Status PolicyState::RemoveNetworkPolicy(absl::string_view namespace_name,
                                              absl::string_view name) {
  State& s = *state_;
  const std::string key = absl::StrCat("np|", Lp(namespace_name), Lp(name));
  if (!s.policies.contains(key)) {
    return absl::NotFoundError(
        absl::StrCat("networkpolicy ", namespace_name, "/", name, ": not found"));
  }
  s.ReplacePolicy(key, nullptr);
  return s.Flush();
}

absl::Status PolicyState::SetAdminNetworkPolicy(const AdminNetworkPolicy& anp) {
  DPV2_RETURN_IF_ERROR(ValidateAdminNetworkPolicy(anp));
  State& s = *state_;
  auto cp = std::make_shared<CompiledPolicy>();
  cp->ref = {.kind = PolicyRef::Kind::kAdminNetworkPolicy, .name = anp.metadata.name};
  cp->key = absl::StrCat("anp|", Lp(anp.metadata.name));
  cp->subject_namespaces = anp.spec.subject.namespaces;
  cp->subject_pods = anp.spec.subject.pods;
  cp->annotations = anp.metadata.annotations;
  s.CompileAdminRules(anp.spec.ingress, anp.spec.egress, Tier::kAdmin, anp.spec.priority,
                      absl::StrCat("adminnetworkpolicy ", anp.metadata.name), cp.get());
  s.ReplacePolicy(cp->key, cp);
  return s.Flush();
}

absl::Status PolicyState::RemoveAdminNetworkPolicy(absl::string_view name) {
  State& s = *state_;
  const std::string key = absl::StrCat("anp|", Lp(name));
  if (!s.policies.contains(key)) {
    return absl::NotFoundError(absl::StrCat("adminnetworkpolicy ", name, ": not found"));
  }
  s.ReplacePolicy(key, nullptr);
  return s.Flush();
}

absl::Status PolicyState::SetBaselineAdminNetworkPolicy(const BaselineAdminNetworkPolicy& banp) {
  DPV2_RETURN_IF_ERROR(ValidateBaselineAdminNetworkPolicy(banp));
  State& s = *state_;
  auto cp = std::make_shared<CompiledPolicy>();
  cp->ref = {.kind = PolicyRef::Kind::kBaselineAdminNetworkPolicy, .name = banp.metadata.name};
  cp->key = "banp|default";
  cp->subject_namespaces = banp.spec.subject.namespaces;
  cp->subject_pods = banp.spec.subject.pods;
  cp->annotations = banp.metadata.annotations;
  s.CompileAdminRules(banp.spec.ingress, banp.spec.egress, Tier::kBaseline, 0,
                      "baselineadminnetworkpolicy default", cp.get());
  s.ReplacePolicy(cp->key, cp);
  return s.Flush();
}

absl::Status PolicyState::RemoveBaselineAdminNetworkPolicy() {
  State& s = *state_;
  if (!s.policies.contains("banp|default")) {
    return absl::NotFoundError("baselineadminnetworkpolicy default: not found");
  }
  s.ReplacePolicy("banp|default", nullptr);
  return s.Flush();
}

ChangeBatch PolicyState::Diff() const {
  const State& s = *state_;
  ChangeBatch b;
  std::vector<IpAddr> eps(s.dirty_endpoints.begin(), s.dirty_endpoints.end());
  std::sort(eps.begin(), eps.end());
  for (const IpAddr& ip : eps) {
    auto d = s.desired_endpoints.find(ip);
    auto a = s.acked_endpoints.find(ip);
    if (d != s.desired_endpoints.end()) {
      if (a == s.acked_endpoints.end() || !SameEndpoint(a->second, d->second)) {
        b.endpoints_upsert.push_back({.key = EndpointKey(ip), .value = d->second});
      }
    } else if (a != s.acked_endpoints.end()) {
      b.endpoints_delete.push_back(EndpointKey(ip));
    }
  }
  std::vector<Prefix> ipc(s.dirty_ipcache.begin(), s.dirty_ipcache.end());
  std::sort(ipc.begin(), ipc.end());
  for (const Prefix& p : ipc) {
    auto d = s.desired_ipcache.find(p);
    auto a = s.acked_ipcache.find(p);
    if (d != s.desired_ipcache.end()) {
      if (a == s.acked_ipcache.end() || a->second.identity != d->second.identity) {
        b.ipcache_upsert.push_back({.key = IpcacheKey(p), .value = d->second});
      }
    } else if (a != s.acked_ipcache.end()) {
      b.ipcache_delete.push_back(IpcacheKey(p));
    }
  }
  std::vector<GroupKey> groups(s.dirty_policy.begin(), s.dirty_policy.end());
  std::sort(groups.begin(), groups.end());
  static const std::vector<PolicyEntry> kNone;
  for (const GroupKey& g : groups) {
    auto d = s.desired_policy.find(g);
    auto a = s.acked_policy.find(g);
    const std::vector<PolicyEntry>& want = d == s.desired_policy.end() ? kNone : d->second;
    const std::vector<PolicyEntry>& have = a == s.acked_policy.end() ? kNone : a->second;
    for (const PolicyEntry& e : want) {
      bool same = false;
      for (const PolicyEntry& h : have) {
        if (SameKey(e.key, h.key)) {
          same = SameValue(e.value, h.value);
          break;
        }
      }
      if (!same) {
        b.policy_upsert.push_back(e);
      }
    }
    for (const PolicyEntry& h : have) {
      bool kept = false;
      for (const PolicyEntry& e : want) {
        if (SameKey(e.key, h.key)) {
          kept = true;
          break;
        }
      }
      if (!kept) {
        b.policy_delete.push_back(h.key);
      }
    }
  }
  return b;
}

void PolicyState::Acknowledge(const ChangeBatch& batch) {
  State& s = *state_;
  for (const EndpointEntry& e : batch.endpoints_upsert) {
    s.acked_endpoints[IpOfEndpointKey(e.key)] = e.value;
  }
  for (const IpcacheEntry& e : batch.ipcache_upsert) {
    s.acked_ipcache[PrefixOfIpcacheKey(e.key)] = e.value;
  }
  for (const PolicyEntry& e : batch.policy_upsert) {
    std::vector<PolicyEntry>& have =
        s.acked_policy[{e.key.endpoint_id, e.key.identity, e.key.direction}];
    bool replaced = false;
    for (PolicyEntry& h : have) {
      if (SameKey(h.key, e.key)) {
        h.value = e.value;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      have.push_back(e);
    }
  }
  for (const dpv2_policy_key& k : batch.policy_delete) {
    auto it = s.acked_policy.find({k.endpoint_id, k.identity, k.direction});
    if (it == s.acked_policy.end()) {
      continue;
    }
    std::erase_if(it->second, [&](const PolicyEntry& h) { return SameKey(h.key, k); });
    if (it->second.empty()) {
      s.acked_policy.erase(it);
    }
  }
  for (const dpv2_ipcache_key& k : batch.ipcache_delete) {
    s.acked_ipcache.erase(PrefixOfIpcacheKey(k));
  }
  for (const dpv2_endpoint_key& k : batch.endpoints_delete) {
    s.acked_endpoints.erase(IpOfEndpointKey(k));
  }
  // Forget dirt that the backend now agrees with.
  absl::erase_if(s.dirty_endpoints, [&](const IpAddr& ip) {
    auto d = s.desired_endpoints.find(ip);
    auto a = s.acked_endpoints.find(ip);
    if (d == s.desired_endpoints.end() || a == s.acked_endpoints.end()) {
      return (d == s.desired_endpoints.end()) == (a == s.acked_endpoints.end());
    }
    return SameEndpoint(d->second, a->second);
  });
  absl::erase_if(s.dirty_ipcache, [&](const Prefix& p) {
    auto d = s.desired_ipcache.find(p);
    auto a = s.acked_ipcache.find(p);
    if (d == s.desired_ipcache.end() || a == s.acked_ipcache.end()) {
      return (d == s.desired_ipcache.end()) == (a == s.acked_ipcache.end());
    }
    return d->second.identity == a->second.identity;
  });
  absl::erase_if(s.dirty_policy, [&](const GroupKey& g) {
    auto d = s.desired_policy.find(g);
    auto a = s.acked_policy.find(g);
    if (d == s.desired_policy.end() || a == s.acked_policy.end()) {
      return (d == s.desired_policy.end()) == (a == s.acked_policy.end());
    }
    return SameEntries(d->second, a->second);
  });
}

namespace {

bool AdoptableId(uint32_t id) { return id != 0 && id <= kMaxAdoptedId; }

// Family and prefix length of an ipcache key, before Prefix::Make sees it.
bool ValidIpcacheKey(const dpv2_ipcache_key& k) {
  const uint32_t bits = k.family == DPV2_FAMILY_V4 ? 32 : k.family == DPV2_FAMILY_V6 ? 128 : 0;
  return bits != 0 && k.prefixlen >= 32 && k.prefixlen <= 32 + bits;
}

bool ValidEndpointKey(const dpv2_endpoint_key& k) {
  return k.family == DPV2_FAMILY_V4 || k.family == DPV2_FAMILY_V6;
}

absl::Status CheckPolicyDump(const ChangeBatch& dumped) {
  auto error = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("policy state: adopt: ", what));
  };
  absl::flat_hash_set<uint32_t> endpoint_ids;
  for (const EndpointEntry& e : dumped.endpoints_upsert) {
    if (!ValidEndpointKey(e.key)) {
      return error(absl::StrCat("endpoint key: family ", e.key.family, " is not 4 or 6"));
    }
    const std::string name = absl::StrCat("endpoint ", IpOfEndpointKey(e.key).ToString());
    if (!AdoptableId(e.value.endpoint_id)) {
      return error(absl::StrCat(name, ": endpoint_id ", e.value.endpoint_id, " out of range 1..",
                                kMaxAdoptedId));
    }
    if (!AdoptableId(e.value.identity)) {
      return error(absl::StrCat(name, ": identity ", e.value.identity, " out of range 1..",
                                kMaxAdoptedId));
    }
    endpoint_ids.insert(e.value.endpoint_id);
  }
  for (const IpcacheEntry& e : dumped.ipcache_upsert) {
    if (!ValidIpcacheKey(e.key)) {
      return error(absl::StrCat("ipcache key: family ", e.key.family, " prefixlen ",
                                e.key.prefixlen, " out of range"));
    }
    if (!AdoptableId(e.value.identity)) {
      return error(absl::StrCat("ipcache ", PrefixOfIpcacheKey(e.key).ToString(), ": identity ",
                                e.value.identity, " out of range 1..", kMaxAdoptedId));
    }
  }
  for (const PolicyEntry& e : dumped.policy_upsert) {
    DPV2_RETURN_IF_ERROR(ValidatePolicyEntry(e));
    if (!endpoint_ids.contains(e.key.endpoint_id)) {
      return error(absl::StrCat("policy entry of endpoint_id ", e.key.endpoint_id,
                                ", which no dumped endpoint has"));
    }
    if (e.key.identity > kMaxAdoptedId || e.value.match_id > kMaxAdoptedId) {
      return error(absl::StrCat("policy entry of endpoint_id ", e.key.endpoint_id, ": identity ",
                                e.key.identity, " or match_id ", e.value.match_id,
                                " out of range"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PolicyState::Adopt(const ChangeBatch& dumped) {
  State& s = *state_;
  if (!s.pods.empty() || !s.namespaces.empty() || !s.nodes.empty() || !s.policies.empty()) {
    return absl::FailedPreconditionError(
        "policy state: adopt: inputs were given already; adopt into a fresh PolicyState");
  }
  const absl::Status consistent = CheckPolicyDump(dumped);
  // What the datapath holds counts as acknowledged, and is examined by the
  // next Diff() (kept or deleted); ids at or below the largest dumped one are
  // given only to the records that held them.
  uint64_t max_endpoint = 0, max_identity = 0, max_match = 0;
  for (const EndpointEntry& e : dumped.endpoints_upsert) {
    if (!ValidEndpointKey(e.key)) {
      continue;
    }
    const IpAddr ip = IpOfEndpointKey(e.key);
    s.acked_endpoints[ip] = e.value;
    s.dirty_endpoints.insert(ip);
    if (AdoptableId(e.value.endpoint_id)) {
      max_endpoint = std::max<uint64_t>(max_endpoint, e.value.endpoint_id);
    }
    if (AdoptableId(e.value.identity)) {
      max_identity = std::max<uint64_t>(max_identity, e.value.identity);
    }
    if (consistent.ok()) {
      s.adopted_endpoint_ids[ip] = e.value.endpoint_id;
      s.adopted_identities[HostPrefix(ip)] = e.value.identity;
    }
  }
  for (const IpcacheEntry& e : dumped.ipcache_upsert) {
    if (!ValidIpcacheKey(e.key)) {
      continue;
    }
    const Prefix p = PrefixOfIpcacheKey(e.key);
    s.acked_ipcache[p] = e.value;
    s.dirty_ipcache.insert(p);
    if (AdoptableId(e.value.identity)) {
      max_identity = std::max<uint64_t>(max_identity, e.value.identity);
    }
    if (consistent.ok()) {
      s.adopted_identities.emplace(p, e.value.identity);
    }
  }
  for (const PolicyEntry& e : dumped.policy_upsert) {
    if (!ValidatePolicyEntry(e).ok()) {
      continue;
    }
    const GroupKey g{e.key.endpoint_id, e.key.identity, e.key.direction};
    s.acked_policy[g].push_back(e);
    s.dirty_policy.insert(g);
    if (e.key.identity <= kMaxAdoptedId) {
      max_identity = std::max<uint64_t>(max_identity, e.key.identity);
    }
    if (e.value.match_id <= kMaxAdoptedId) {
      max_match = std::max<uint64_t>(max_match, e.value.match_id);
    }
  }
  s.next_endpoint_id = std::max<uint32_t>(s.next_endpoint_id, max_endpoint + 1);
  s.next_match_id = std::max<uint32_t>(s.next_match_id, max_match + 1);
  s.allocator.SkipTo(max_identity + 1);
  s.adopted = consistent.ok();
  return consistent;
}

void PolicyState::ResetAcknowledged() {
  State& s = *state_;
  s.adopted = false;
  s.adopted_endpoint_ids.clear();
  s.adopted_identities.clear();
  s.acked_endpoints.clear();
  s.acked_ipcache.clear();
  s.acked_policy.clear();
  for (const auto& [k, v] : s.desired_endpoints) s.dirty_endpoints.insert(k);
  for (const auto& [k, v] : s.desired_ipcache) s.dirty_ipcache.insert(k);
  for (const auto& [k, v] : s.desired_policy) s.dirty_policy.insert(k);
}

const std::vector<PolicyRef>* PolicyState::MatchPolicies(uint32_t match_id) const {
  auto it = state_->match_policies.find(match_id);
  return it == state_->match_policies.end() ? nullptr : &it->second;
}

const Labels* PolicyState::NetworkPolicyAnnotations(absl::string_view namespace_name,
                                                    absl::string_view name) const {
  auto it = state_->policies.find(absl::StrCat("np|", Lp(namespace_name), Lp(name)));
  return it == state_->policies.end() ? nullptr : &it->second->annotations;
}

const NamespaceInfo* PolicyState::FindNamespace(absl::string_view name) const {
  auto it = state_->namespaces.find(name);
  return it == state_->namespaces.end() ? nullptr : &it->second;
}

bool PolicyState::HoldsPod(const PodInfo& pod, const std::optional<LocalEndpoint>& local) const {
  auto it = state_->pods.find(PodKey(pod.namespace_name, pod.name));
  if (it == state_->pods.end()) {
    return false;
  }
  const PodRecord& rec = it->second;
  // SetPod keeps no endpoint for a hostNetwork pod, whatever it is given.
  const std::optional<LocalEndpoint> want = pod.host_network ? std::nullopt : local;
  const bool same_local =
      want.has_value() == rec.local.has_value() &&
      (!want || std::tie(want->ifindex, want->mac, want->host_mac) ==
                    std::tie(rec.local->ifindex, rec.local->mac, rec.local->host_mac));
  const PodShape& held = *rec.shape;
  return same_local && rec.ips == pod.ips && *rec.node_name == pod.node_name &&
         std::tie(held.labels, held.host_network, held.container_ports, held.workload_kind,
                  held.workload_name) == std::tie(pod.labels, pod.host_network,
                                                  pod.container_ports, pod.workload_kind,
                                                  pod.workload_name);
}

namespace {

HeldPod HeldPodOf(const std::string& key, const PodRecord& rec) {
  const PodShape& shape = *rec.shape;
  return HeldPod{.namespace_name = shape.namespace_name,
                 .name = absl::string_view(key).substr(shape.namespace_name.size() + 1),
                 .labels = &shape.labels,
                 .ips = &rec.ips,
                 .node_name = *rec.node_name,
                 .host_network = shape.host_network,
                 .container_ports = &shape.container_ports,
                 .workload_kind = shape.workload_kind,
                 .workload_name = shape.workload_name};
}

}  // namespace

PodInfo HeldPod::ToPodInfo() const {
  return PodInfo{.namespace_name = std::string(namespace_name),
                 .name = std::string(name),
                 .labels = *labels,
                 .ips = *ips,
                 .node_name = std::string(node_name),
                 .host_network = host_network,
                 .container_ports = *container_ports,
                 .workload_kind = std::string(workload_kind),
                 .workload_name = std::string(workload_name)};
}

std::optional<HeldPod> PolicyState::FindPod(absl::string_view namespace_name,
                                            absl::string_view name) const {
  auto it = state_->pods.find(PodKey(namespace_name, name));
  if (it == state_->pods.end()) {
    return std::nullopt;
  }
  return HeldPodOf(it->first, it->second);
}

std::optional<HeldPod> PolicyState::FindPodByIp(const IpAddr& ip) const {
  auto it = state_->pod_by_ip.find(ip);
  if (it == state_->pod_by_ip.end()) {
    return std::nullopt;
  }
  return HeldPodOf(*it->second, state_->pods.at(*it->second));
}

void PolicyState::ForEachPod(absl::FunctionRef<void(const HeldPod&)> fn) const {
  for (const auto& [key, rec] : state_->pods) {
    fn(HeldPodOf(key, rec));
  }
}

size_t PolicyState::pod_count() const { return state_->pods.size(); }

const NodeInfo* PolicyState::FindNodeByIp(const IpAddr& ip) const {
  for (const auto& [name, node] : state_->nodes) {
    for (const IpAddr& a : node.addresses) {
      if (a == ip) {
        return &node;
      }
    }
  }
  return nullptr;
}

std::optional<uint32_t> PolicyState::EndpointId(absl::string_view namespace_name,
                                                absl::string_view name) const {
  auto it = state_->pods.find(PodKey(namespace_name, name));
  if (it == state_->pods.end() || it->second.endpoint_id == 0) {
    return std::nullopt;
  }
  return it->second.endpoint_id;
}

uint32_t PolicyState::IdentityOf(const IpAddr& ip) const {
  const int max = ip.is_v4() ? 32 : 128;
  for (int len = max; len >= 0; --len) {
    auto it = state_->desired_ipcache.find(Prefix::Make(ip, len).value());
    if (it != state_->desired_ipcache.end()) {
      return it->second.identity;
    }
  }
  return DPV2_IDENTITY_WORLD;
}

size_t PolicyState::identity_count() const { return state_->allocator.size(); }

size_t PolicyState::policy_entry_count() const { return state_->desired_policy_entries; }

std::vector<PolicyEntry> PolicyState::EndpointPolicy(uint32_t endpoint_id) const {
  std::vector<PolicyEntry> out;
  for (const auto& [group, entries] : state_->desired_policy) {
    if (group.endpoint_id == endpoint_id) {
      out.insert(out.end(), entries.begin(), entries.end());
    }
  }
  auto order = [](const PolicyEntry& e) {
    const uint16_t port = static_cast<uint16_t>((e.key.dport >> 8) | (e.key.dport << 8));
    return std::make_tuple(e.key.direction, e.key.identity, e.key.proto, port, e.key.prefixlen);
  };
  std::sort(out.begin(), out.end(),
            [&](const PolicyEntry& a, const PolicyEntry& b) { return order(a) < order(b); });
  return out;
}

std::vector<std::string> PolicyState::TakeWarnings() {
  std::vector<std::string> out = std::move(state_->warnings);
  state_->warnings.clear();
  return out;
}

}  // namespace dpv2
