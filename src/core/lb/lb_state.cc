// LbState: compiles each Service into frontend entries, backends and lookup
// tables, keeps ids stable with reference counts, and diffs the desired records
// against the ones the backend acknowledged.
//
// Work per mutation is proportional to the Service changed: each Service's
// compiled form is kept, and shared records (backends, lookup tables, service
// ids) are reference counted. Lookup tables are shared by content (the sorted
// set of selected backends), so the ClusterIP and NodePort frontends of one
// port use one table, and a table is computed once per distinct backend set.
#include "dpv2/lb_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "dpv2/endpoint_selection.h"
#include "dpv2/maglev.h"

namespace dpv2 {
namespace {

// ABI records have explicit padding (zeroed), so bytes order them.
template <typename T>
struct AbiLess {
  bool operator()(const T& a, const T& b) const { return std::memcmp(&a, &b, sizeof(T)) < 0; }
};
template <typename T>
bool AbiEqual(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

struct BackendKey {
  IpAddr addr;
  uint16_t port = 0;
  L4Proto proto = L4Proto::kTCP;

  friend bool operator==(const BackendKey&, const BackendKey&) = default;
  friend auto operator<=>(const BackendKey&, const BackendKey&) = default;
  std::string Endpoint() const { return EndpointString(addr, port); }
  // The Maglev identity: the same on every node.
  std::string Identity() const { return absl::StrCat(Endpoint(), "/", L4ProtoName(proto)); }
};

// A frontend address shared by its EXT and INT scope entries; owns a service_id.
struct FrontendAddr {
  IpAddr addr;
  uint16_t port = 0;
  L4Proto proto = L4Proto::kTCP;

  friend bool operator==(const FrontendAddr&, const FrontendAddr&) = default;
  friend auto operator<=>(const FrontendAddr&, const FrontendAddr&) = default;
  std::string ToString() const {
    return absl::StrCat(EndpointString(addr, port), "/", L4ProtoName(proto));
  }
};

using TableContent = std::vector<BackendKey>;  // sorted, distinct

dpv2_lb_key MakeLbKey(const FrontendAddr& fa, uint8_t scope) {
  dpv2_lb_key k;
  std::memset(&k, 0, sizeof(k));
  k.addr = fa.addr.ToAbi();
  k.port = htons(fa.port);
  k.proto = static_cast<uint8_t>(fa.proto);
  k.family = static_cast<uint8_t>(fa.addr.family());
  k.scope = scope;
  return k;
}

dpv2_src_range_key MakeRangeKey(uint32_t service_id, const Prefix& p) {
  dpv2_src_range_key k;
  std::memset(&k, 0, sizeof(k));
  k.prefixlen = 64 + static_cast<uint32_t>(p.length());
  k.service_id = service_id;
  k.family = static_cast<uint8_t>(p.family());
  k.addr = p.addr().ToAbi();
  return k;
}

// One frontend scope of a compiled Service, before ids are assigned.
struct FrontendRecord {
  FrontendAddr addr;
  uint8_t scope = DPV2_LB_SCOPE_EXT;
  FrontendKind kind = FrontendKind::kClusterIP;
  std::string port_name;
  uint16_t flags = 0;
  uint32_t affinity_timeout_s = 0;
  TableContent selected;       // the lookup table's backends
  std::vector<Prefix> ranges;  // source ranges (EXT scope entry only)

  dpv2_lb_key Key() const { return MakeLbKey(addr, scope); }
};

struct CompiledService {
  std::vector<FrontendRecord> frontends;
  // Every backend the Service's endpoints name, including ones not selected
  // (terminating, not ready): established connections keep using them.
  std::map<BackendKey, bool> backends;  // -> local to this node
  // kube-proxy's LocalReadyEndpoints: summed over ports (and families).
  uint32_t local_ready_endpoints = 0;
};

struct BackendRecord {
  uint32_t id = 0;
  uint32_t refs = 0;  // Services that reference it
  dpv2_backend value;
};

struct TableRecord {
  TableContent content;
  uint32_t refs = 0;  // frontend scopes that point to it
  // Kept only until the backend acknowledges the table (64 KiB at the
  // default size): a table is never rewritten, and Diff() recomputes it from
  // `content` if the backend must be written again (ResetAcknowledged).
  // Shared by copies of the state (SetNode recompiles on a copy); TakeDiff
  // moves them into its batch when no copy shares them.
  std::shared_ptr<std::vector<uint32_t>> slots;
};

struct ServiceIdRecord {
  uint32_t id = 0;
  uint32_t refs = 0;  // frontend scopes
};

absl::Status CapacityError(const std::string& service, size_t need, absl::string_view field,
                           uint32_t capacity) {
  return absl::ResourceExhaustedError(absl::StrCat("service ", service, ": needs ", need, " ",
                                                   field == "max_services"   ? "frontend entries"
                                                   : field == "max_backends" ? "backends"
                                                   : field == "max_tables"   ? "lookup tables"
                                                                             : "source ranges",
                                                   ", above datapath ", field, " ", capacity));
}

}  // namespace

struct LbState::State {
  LbStateOptions options;
  NodeInfo node;

  std::map<std::string, ServiceSpec> specs;
  std::map<std::string, CompiledService> compiled;

  // Shared records, kept while desired (refs > 0) or held by the backend.
  std::map<BackendKey, BackendRecord> backends;
  std::map<uint32_t, BackendKey> backend_by_id;
  std::map<TableContent, uint32_t> table_by_content;
  std::map<uint32_t, TableRecord> tables;
  std::map<FrontendAddr, ServiceIdRecord> service_ids;
  uint32_t next_backend_id = 1;
  uint32_t next_table_id = 1;
  uint32_t next_service_id = 1;
  size_t live_backends = 0;  // records with refs > 0
  size_t live_tables = 0;
  // Records that lost their last reference or acknowledgement: the only ones
  // ReleaseUnused looks at, so a mutation costs what it touches.
  std::set<BackendKey> release_backends;
  std::set<uint32_t> release_tables;
  std::set<FrontendAddr> release_service_ids;

  // Desired records not derivable from the reference counts.
  std::map<dpv2_lb_key, dpv2_lb_value, AbiLess<dpv2_lb_key>> desired_services;
  std::map<dpv2_lb_key, std::string, AbiLess<dpv2_lb_key>> frontend_owner;
  std::set<dpv2_src_range_key, AbiLess<dpv2_src_range_key>> desired_ranges;

  // What the backend holds (after Acknowledge).
  std::map<dpv2_lb_key, dpv2_lb_value, AbiLess<dpv2_lb_key>> acked_services;
  std::map<uint32_t, dpv2_backend> acked_backends;
  std::set<uint32_t> acked_tables;
  std::set<dpv2_src_range_key, AbiLess<dpv2_src_range_key>> acked_ranges;
  // The node address of each family (IPv4, IPv6) the backend holds: the
  // desired one is the node's first address of that family (NodeAddressOf).
  std::array<std::optional<dpv2_addr>, 2> acked_node_addrs;

  // Keys whose desired record may differ from the acknowledged one: the only
  // ones Diff() looks at, so that diffing a small change costs that change.
  // Marked by Commit, LearnDump and ResetAcknowledged; Acknowledge drops the
  // ones the backend now agrees with.
  std::set<uint32_t> dirty_backends, dirty_tables;
  std::set<dpv2_src_range_key, AbiLess<dpv2_src_range_key>> dirty_ranges;
  std::set<dpv2_lb_key, AbiLess<dpv2_lb_key>> dirty_services;

  // Restart adoption (Adopt): the ids the datapath uses for the same
  // records, and every id it holds, which fresh allocation skips.
  std::map<BackendKey, uint32_t> adopted_backend_ids;
  std::map<FrontendAddr, uint32_t> adopted_service_ids;
  std::map<TableContent, LookupTable> adopted_tables;
  std::set<uint32_t> reserved_backend_ids, reserved_table_ids, reserved_service_ids;

  // PrepareServices: Maglev slots of tables the next upserts will create,
  // holding positions in the content (1-based) rather than backend ids,
  // which Commit assigns.
  std::map<TableContent, std::vector<uint32_t>> prepared;
  // PrepareServices: the compiled form of each spec it was given, by the
  // spec's address; UpsertService of that same object takes it instead of
  // compiling the spec a second time. Dropped with the node it was
  // compiled for (SetNode) and at the next PrepareServices.
  absl::flat_hash_map<const ServiceSpec*, CompiledService> prepared_compiled;

  absl::StatusOr<CompiledService> Compile(const ServiceSpec& spec) const;
  // LbState::Diff and TakeDiff; only TakeDiff (take_slots) changes the state.
  ChangeBatch Diff(bool take_slots);
  absl::Status Check(const std::string& key, const CompiledService& next) const;
  void Commit(const std::string& key, std::optional<CompiledService> next);
  void ReleaseUnused();
  // Per key: the desired record equals the acknowledged one (both absent too).
  bool BackendAcked(uint32_t id) const;
  bool TableAcked(uint32_t id) const;
  bool ServiceAcked(const dpv2_lb_key& k) const;
  std::vector<uint32_t> BuildSlots(const TableContent& content) const;
  // BuildSlots, from a prepared table when there is one (which it takes).
  std::vector<uint32_t> TakeSlots(const TableContent& content);
  std::vector<uint32_t> IdsOf(const TableContent& content) const;  // backend ids
  uint32_t BackendIdFor(const BackendKey& bk);
  uint32_t TableIdFor(const TableContent& content, const std::vector<uint32_t>& slots);
  uint32_t ServiceIdFor(const FrontendAddr& fa);
  absl::Status CheckDump(const ChangeBatch& dumped) const;
  void LearnDump(const ChangeBatch& dumped, bool adopt_ids);
};

namespace {

std::vector<Endpoint> EndpointsFor(const ServiceSpec& spec, const ServicePortSpec& port,
                                   Family family, const NodeInfo& node) {
  std::vector<Endpoint> out;
  std::map<std::string, size_t> index;  // endpoint string -> position in out
  for (const EndpointSliceSpec& slice : spec.endpoint_slices) {
    if (slice.address_type != family) {
      continue;
    }
    uint16_t target = 0;
    for (const EndpointPortSpec& p : slice.ports) {
      if (p.name == port.name && p.protocol == port.protocol && p.port != 0) {
        target = p.port;
        break;
      }
    }
    if (target == 0) {
      continue;
    }
    for (const EndpointSpec& es : slice.endpoints) {
      const IpAddr& addr = es.addresses.front();
      Endpoint ep{
          .endpoint = EndpointString(addr, target),
          .addr = addr,
          .port = target,
          .is_local = !node.name.empty() && es.node_name == node.name,
          .ready = es.conditions.IsReady(),
          .serving = es.conditions.IsServing(),
          .terminating = es.conditions.IsTerminating(),
          .zone_hints = es.hints.for_zones,
          .node_hints = es.hints.for_nodes,
          .node_name = es.node_name,
          .zone = es.zone,
      };
      // The same endpoint in two slices (a slice being replaced): a ready
      // copy wins over an unready one, as in kube-proxy's slice cache.
      auto [it, fresh] = index.emplace(ep.endpoint, out.size());
      if (fresh) {
        out.push_back(std::move(ep));
      } else if (ep.ready && !out[it->second].ready) {
        out[it->second] = std::move(ep);
      }
    }
  }
  return out;
}

TableContent ContentOf(const std::vector<Endpoint>& endpoints, L4Proto proto) {
  TableContent c;
  for (const Endpoint& ep : endpoints) {
    c.push_back({.addr = ep.addr, .port = ep.port, .proto = proto});
  }
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  return c;
}

}  // namespace

absl::StatusOr<CompiledService> LbState::State::Compile(const ServiceSpec& spec) const {
  DPV2_RETURN_IF_ERROR(spec.Validate(options.node_port_range));
  CompiledService out;
  const std::string key = spec.Key();
  std::set<dpv2_lb_key, AbiLess<dpv2_lb_key>> seen;  // first frontend of a key wins

  uint16_t common_flags = 0;
  uint32_t affinity_timeout = 0;
  if (spec.session_affinity == SessionAffinity::kClientIP) {
    common_flags |= DPV2_LB_F_AFFINITY;
    affinity_timeout = spec.affinity_timeout_s;
  }
  if (options.selection == BackendSelection::kRandom) {
    common_flags |= DPV2_LB_F_RANDOM;
  }
  const bool itp_local = spec.internal_traffic_policy == TrafficPolicy::kLocal;

  // Each family is served only if the Service has a cluster IP of that family
  // (kube-proxy runs one proxier per family and skips the others).
  for (const IpAddr& cluster_ip : spec.cluster_ips) {
    const Family family = cluster_ip.family();
    auto of_family = [family](const std::vector<IpAddr>& addrs) {
      std::vector<IpAddr> v;
      for (const IpAddr& a : addrs) {
        if (a.family() == family) {
          v.push_back(a);
        }
      }
      return v;
    };
    const std::vector<IpAddr> lb_ips = spec.type == ServiceType::kLoadBalancer
                                           ? of_family(spec.load_balancer_ips)
                                           : std::vector<IpAddr>();
    const std::vector<IpAddr> external_ips = of_family(spec.external_ips);
    const std::vector<IpAddr> node_ips = of_family(node.addresses);
    std::vector<Prefix> ranges;
    for (const Prefix& p : spec.load_balancer_source_ranges) {
      if (p.family() == family && std::find(ranges.begin(), ranges.end(), p) == ranges.end()) {
        ranges.push_back(p);
      }
    }

    for (const ServicePortSpec& port : spec.ports) {
      const bool has_node_port = spec.type != ServiceType::kClusterIP && port.node_port != 0;
      const ServiceTopologyInfo topo{
          .internal_policy_local = itp_local,
          .external_policy_local = spec.external_traffic_policy == TrafficPolicy::kLocal,
          .externally_accessible = has_node_port || !lb_ips.empty() || !external_ips.empty(),
          .traffic_distribution = spec.traffic_distribution,
      };
      const std::vector<Endpoint> endpoints = EndpointsFor(spec, port, family, node);
      for (const Endpoint& ep : endpoints) {
        out.backends[{.addr = ep.addr, .port = ep.port, .proto = port.protocol}] = ep.is_local;
        if (ep.is_local && ep.ready) {
          ++out.local_ready_endpoints;
        }
      }
      const CategorizedEndpoints cat = CategorizeEndpoints(endpoints, topo, node);
      const TableContent cluster =
          cat.cluster ? ContentOf(*cat.cluster, port.protocol) : TableContent();
      const TableContent local = cat.local ? ContentOf(*cat.local, port.protocol) : TableContent();

      auto add = [&](FrontendRecord rec) -> absl::Status {
        if (rec.selected.size() > options.datapath.maglev_table_size ||
            rec.selected.size() > UINT16_MAX) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "service ", key, ": port \"", port.name, "\": ", rec.selected.size(),
              " backends do not fit a lookup table of ", options.datapath.maglev_table_size));
        }
        if (seen.insert(rec.Key()).second) {
          out.frontends.push_back(std::move(rec));
        }
        return absl::OkStatus();
      };
      // A scope whose policy is Local and has nothing local drops while other
      // nodes have endpoints; with no endpoint anywhere it rejects.
      auto scope_flags = [&](bool policy_local, const TableContent& selected) {
        uint16_t f = common_flags;
        if (policy_local) {
          f |= DPV2_LB_F_LOCAL;
          if (selected.empty() && cat.has_any_endpoints) {
            f |= DPV2_LB_F_EMPTY_DROP;
          }
        }
        return f;
      };

      // ClusterIP: internal traffic, internalTrafficPolicy.
      {
        const TableContent& sel = itp_local ? local : cluster;
        DPV2_RETURN_IF_ERROR(add({
            .addr = {.addr = cluster_ip, .port = port.port, .proto = port.protocol},
            .scope = DPV2_LB_SCOPE_EXT,
            .kind = FrontendKind::kClusterIP,
            .port_name = port.name,
            .flags = scope_flags(itp_local, sel),
            .affinity_timeout_s = affinity_timeout,
            .selected = sel,
        }));
      }

      // External frontends: externalTrafficPolicy for traffic from the
      // network; under Local, an INT entry gives local pods Cluster semantics.
      const bool etp_local = topo.external_policy_local && topo.externally_accessible;
      auto add_external = [&](const FrontendAddr& fa, FrontendKind kind, uint16_t kind_flag,
                              const std::vector<Prefix>& fa_ranges) -> absl::Status {
        uint16_t flags = kind_flag;
        if (!fa_ranges.empty()) {
          flags |= DPV2_LB_F_SOURCE_RANGES;
        }
        const TableContent& sel = etp_local ? local : cluster;
        DPV2_RETURN_IF_ERROR(add({
            .addr = fa,
            .scope = DPV2_LB_SCOPE_EXT,
            .kind = kind,
            .port_name = port.name,
            .flags = static_cast<uint16_t>(scope_flags(etp_local, sel) | flags |
                                           (etp_local ? DPV2_LB_F_TWO_SCOPES : 0)),
            .affinity_timeout_s = affinity_timeout,
            .selected = sel,
            .ranges = fa_ranges,
        }));
        if (etp_local) {
          DPV2_RETURN_IF_ERROR(add({
              .addr = fa,
              .scope = DPV2_LB_SCOPE_INT,
              .kind = kind,
              .port_name = port.name,
              .flags = static_cast<uint16_t>(common_flags | flags),
              .affinity_timeout_s = affinity_timeout,
              .selected = cluster,
          }));
        }
        return absl::OkStatus();
      };
      if (has_node_port) {
        for (const IpAddr& a : node_ips) {
          DPV2_RETURN_IF_ERROR(
              add_external({.addr = a, .port = port.node_port, .proto = port.protocol},
                           FrontendKind::kNodePort, DPV2_LB_F_NODEPORT, {}));
        }
      }
      // loadBalancerSourceRanges guard the LB ingress IPs only (kube-proxy's
      // firewall chain); external IPs are not filtered.
      for (const IpAddr& a : lb_ips) {
        DPV2_RETURN_IF_ERROR(add_external({.addr = a, .port = port.port, .proto = port.protocol},
                                          FrontendKind::kLoadBalancer, DPV2_LB_F_LOADBALANCER,
                                          ranges));
      }
      for (const IpAddr& a : external_ips) {
        DPV2_RETURN_IF_ERROR(add_external({.addr = a, .port = port.port, .proto = port.protocol},
                                          FrontendKind::kExternalIP, DPV2_LB_F_LOADBALANCER, {}));
      }
    }
  }
  return out;
}

absl::Status LbState::State::Check(const std::string& key, const CompiledService& next) const {
  static const CompiledService kEmpty;
  auto it = compiled.find(key);
  const CompiledService& prev = it == compiled.end() ? kEmpty : it->second;

  std::set<dpv2_lb_key, AbiLess<dpv2_lb_key>> prev_keys;
  size_t prev_ranges = 0;
  std::map<TableContent, uint32_t> prev_table_refs;
  for (const FrontendRecord& f : prev.frontends) {
    prev_keys.insert(f.Key());
    prev_ranges += f.ranges.size();
    if (!f.selected.empty()) {
      ++prev_table_refs[f.selected];
    }
  }

  size_t services = desired_services.size() - prev_keys.size();
  size_t ranges = desired_ranges.size() - prev_ranges;
  std::set<TableContent> next_tables;
  for (const FrontendRecord& f : next.frontends) {
    const dpv2_lb_key k = f.Key();
    if (auto owner = frontend_owner.find(k);
        owner != frontend_owner.end() && owner->second != key) {
      return absl::AlreadyExistsError(
          absl::StrCat("service ", key, ": frontend ", f.addr.ToString(),
                       " is already served by service ", owner->second));
    }
    ++services;
    ranges += f.ranges.size();
    if (!f.selected.empty()) {
      next_tables.insert(f.selected);
    }
  }

  // Live counts after the change: a shared record stays live while some
  // other Service or frontend still references it.
  std::map<TableContent, int> next_table_refs;
  for (const FrontendRecord& f : next.frontends) {
    if (!f.selected.empty()) {
      ++next_table_refs[f.selected];
    }
  }
  long tables = static_cast<long>(live_tables);
  auto table_delta = [&](const TableContent& content) {
    auto t = table_by_content.find(content);
    const long cur = t == table_by_content.end() ? 0 : this->tables.at(t->second).refs;
    auto p = prev_table_refs.find(content);
    auto n = next_table_refs.find(content);
    const long after = cur - (p == prev_table_refs.end() ? 0 : p->second) +
                       (n == next_table_refs.end() ? 0 : n->second);
    tables += (after > 0 ? 1 : 0) - (cur > 0 ? 1 : 0);
  };
  for (const auto& [content, n] : prev_table_refs) {
    table_delta(content);
  }
  for (const auto& [content, n] : next_table_refs) {
    if (!prev_table_refs.contains(content)) {
      table_delta(content);
    }
  }

  long backend_count = static_cast<long>(live_backends);
  for (const auto& [bk, local] : prev.backends) {
    if (!next.backends.contains(bk) && this->backends.at(bk).refs == 1) {
      --backend_count;
    }
  }
  for (const auto& [bk, local] : next.backends) {
    auto b = this->backends.find(bk);
    if (b == this->backends.end() || b->second.refs == 0) {
      ++backend_count;
    }
  }

  const DatapathConfig& cfg = options.datapath;
  if (services > cfg.max_services) {
    return CapacityError(key, services, "max_services", cfg.max_services);
  }
  if (backend_count > static_cast<long>(cfg.max_backends)) {
    return CapacityError(key, backend_count, "max_backends", cfg.max_backends);
  }
  if (tables > static_cast<long>(cfg.max_tables)) {
    return CapacityError(key, tables, "max_tables", cfg.max_tables);
  }
  if (ranges > cfg.max_source_ranges) {
    return CapacityError(key, ranges, "max_source_ranges", cfg.max_source_ranges);
  }
  return absl::OkStatus();
}

namespace {

// The Maglev slots of `content` with backend i named i + 1 (the turn order
// follows identities, so the ids only label the result), in a table of the
// size MaglevTableSizeFor gives its backend count.
std::vector<uint32_t> PositionSlots(const LbStateOptions& options, const TableContent& content) {
  // Cannot fail: the config was validated and the ladder holds primes.
  absl::StatusOr<MaglevTable> maglev = MaglevTable::Create(
      {.table_size = MaglevTableSizeFor(options.datapath, content.size()),
       .seed = options.maglev_seed});
  if (!maglev.ok()) {
    return {};
  }
  std::vector<MaglevBackend> mb;
  mb.reserve(content.size());
  for (size_t i = 0; i < content.size(); ++i) {
    mb.push_back({.id = static_cast<uint32_t>(i + 1), .identity = content[i].Identity()});
  }
  // Cannot fail: ids are non-zero, identities distinct, the size was checked.
  absl::StatusOr<std::vector<uint32_t>> slots = maglev->Populate(mb);
  return slots.ok() ? *std::move(slots) : std::vector<uint32_t>();
}

}  // namespace

std::vector<uint32_t> LbState::State::BuildSlots(const TableContent& content) const {
  const std::vector<uint32_t> ids = IdsOf(content);
  if (options.selection == BackendSelection::kRandom) {
    // Random selection picks a uniform slot: fill the table evenly.
    std::vector<uint32_t> slots(MaglevTableSizeFor(options.datapath, ids.size()));
    for (size_t i = 0; i < slots.size(); ++i) {
      slots[i] = ids[i % ids.size()];
    }
    return slots;
  }
  std::vector<uint32_t> slots = PositionSlots(options, content);
  for (uint32_t& slot : slots) {
    slot = ids[slot - 1];
  }
  return slots;
}

std::vector<uint32_t> LbState::State::IdsOf(const TableContent& content) const {
  std::vector<uint32_t> ids;
  ids.reserve(content.size());
  for (const BackendKey& bk : content) {
    ids.push_back(backends.at(bk).id);
  }
  return ids;
}

std::vector<uint32_t> LbState::State::TakeSlots(const TableContent& content) {
  auto it = prepared.find(content);
  if (it == prepared.end()) {
    return BuildSlots(content);
  }
  std::vector<uint32_t> slots = std::move(it->second);
  prepared.erase(it);
  const std::vector<uint32_t> ids = IdsOf(content);
  for (uint32_t& slot : slots) {
    slot = ids[slot - 1];
  }
  return slots;
}

void LbState::State::Commit(const std::string& key, std::optional<CompiledService> next) {
  CompiledService prev;
  if (auto it = compiled.find(key); it != compiled.end()) {
    prev = std::move(it->second);
    compiled.erase(it);
  }

  // Take the new references before dropping the old ones, so that anything
  // both use keeps its id.
  if (next) {
    for (const auto& [bk, local] : next->backends) {
      BackendRecord& rec = backends[bk];
      if (rec.id == 0) {
        rec.id = BackendIdFor(bk);
        backend_by_id[rec.id] = bk;
      }
      if (rec.refs++ == 0) {
        ++live_backends;
      }
      dirty_backends.insert(rec.id);
      std::memset(&rec.value, 0, sizeof(rec.value));
      rec.value.addr = bk.addr.ToAbi();
      rec.value.port = htons(bk.port);
      rec.value.proto = static_cast<uint8_t>(bk.proto);
      rec.value.family = static_cast<uint8_t>(bk.addr.family());
      rec.value.flags = local ? DPV2_BACKEND_F_LOCAL : 0;
    }
    for (const FrontendRecord& f : next->frontends) {
      uint32_t table_id = 0;
      if (!f.selected.empty()) {
        auto [t, fresh] = table_by_content.emplace(f.selected, 0);
        if (fresh) {
          auto slots = std::make_shared<std::vector<uint32_t>>(TakeSlots(f.selected));
          t->second = TableIdFor(f.selected, *slots);
          tables[t->second] = {.content = f.selected, .refs = 0, .slots = std::move(slots)};
        }
        table_id = t->second;
        if (tables[table_id].refs++ == 0) {
          ++live_tables;
        }
        dirty_tables.insert(table_id);
      }
      ServiceIdRecord& sid = service_ids[f.addr];
      if (sid.id == 0) {
        sid.id = ServiceIdFor(f.addr);
      }
      ++sid.refs;
      dpv2_lb_value v;
      std::memset(&v, 0, sizeof(v));
      v.service_id = sid.id;
      v.table_id = table_id;
      v.affinity_timeout_s = f.affinity_timeout_s;
      v.backend_count = static_cast<uint16_t>(f.selected.size());
      v.flags = f.flags;
      desired_services[f.Key()] = v;
      frontend_owner[f.Key()] = key;
      dirty_services.insert(f.Key());
    }
  }

  std::set<dpv2_lb_key, AbiLess<dpv2_lb_key>> next_keys;
  if (next) {
    for (const FrontendRecord& f : next->frontends) {
      next_keys.insert(f.Key());
    }
  }
  for (const FrontendRecord& f : prev.frontends) {
    const dpv2_lb_key k = f.Key();
    ServiceIdRecord& sid = service_ids.at(f.addr);
    for (const Prefix& p : f.ranges) {
      desired_ranges.erase(MakeRangeKey(sid.id, p));
      dirty_ranges.insert(MakeRangeKey(sid.id, p));
    }
    if (!next_keys.contains(k)) {
      desired_services.erase(k);
      frontend_owner.erase(k);
      dirty_services.insert(k);
    }
    if (!f.selected.empty()) {
      const uint32_t id = table_by_content.at(f.selected);
      dirty_tables.insert(id);
      if (--tables.at(id).refs == 0) {
        --live_tables;
        release_tables.insert(id);
      }
    }
    if (--sid.refs == 0) {
      release_service_ids.insert(f.addr);
    }
  }
  for (const auto& [bk, local] : prev.backends) {
    dirty_backends.insert(backends.at(bk).id);
    if (--backends.at(bk).refs == 0) {
      --live_backends;
      release_backends.insert(bk);
    }
  }
  if (next) {
    for (const FrontendRecord& f : next->frontends) {
      for (const Prefix& p : f.ranges) {
        desired_ranges.insert(MakeRangeKey(service_ids.at(f.addr).id, p));
        dirty_ranges.insert(MakeRangeKey(service_ids.at(f.addr).id, p));
      }
    }
    compiled[key] = *std::move(next);
  }
  ReleaseUnused();
}

// Forgets records that are neither desired nor held by the backend, so that
// ids and tables do not accumulate.
void LbState::State::ReleaseUnused() {
  for (const BackendKey& bk : release_backends) {
    auto it = backends.find(bk);
    if (it != backends.end() && it->second.refs == 0 && !acked_backends.contains(it->second.id)) {
      backend_by_id.erase(it->second.id);
      backends.erase(it);
    }
  }
  release_backends.clear();
  for (uint32_t id : release_tables) {
    auto it = tables.find(id);
    if (it != tables.end() && it->second.refs == 0 && !acked_tables.contains(id)) {
      table_by_content.erase(it->second.content);
      tables.erase(it);
    }
  }
  release_tables.clear();
  for (const FrontendAddr& fa : release_service_ids) {
    auto it = service_ids.find(fa);
    const bool held = acked_services.contains(MakeLbKey(fa, DPV2_LB_SCOPE_EXT)) ||
                      acked_services.contains(MakeLbKey(fa, DPV2_LB_SCOPE_INT));
    if (it != service_ids.end() && it->second.refs == 0 && !held) {
      service_ids.erase(it);
    }
  }
  release_service_ids.clear();
}

namespace {

// The next id at or above *next that the datapath does not hold.
uint32_t NextFreeId(uint32_t* next, const std::set<uint32_t>& reserved) {
  while (reserved.contains(*next)) {
    ++*next;
  }
  return (*next)++;
}

bool AdoptableId(uint32_t id) { return id != 0 && id <= kMaxAdoptedId; }

bool ValidFamily(uint8_t family) {
  return family == DPV2_FAMILY_V4 || family == DPV2_FAMILY_V6;
}

// The node's first address of `family`: the source of SNATed connections.
std::optional<dpv2_addr> NodeAddressOf(const NodeInfo& node, uint8_t family) {
  for (const IpAddr& a : node.addresses) {
    if (static_cast<uint8_t>(a.family()) == family) {
      return a.ToAbi();
    }
  }
  return std::nullopt;
}

size_t NodeAddressIndex(uint8_t family) { return family == DPV2_FAMILY_V6 ? 1 : 0; }

BackendKey KeyOfBackend(const dpv2_backend& b) {
  return {.addr = IpAddr::FromAbi(b.addr, static_cast<Family>(b.family)),
          .port = ntohs(b.port),
          .proto = static_cast<L4Proto>(b.proto)};
}

FrontendAddr AddrOfService(const dpv2_lb_key& k) {
  return {.addr = IpAddr::FromAbi(k.addr, static_cast<Family>(k.family)),
          .port = ntohs(k.port),
          .proto = static_cast<L4Proto>(k.proto)};
}

// The backends a dumped table names, as LbState keys its tables.
TableContent ContentOfSlots(const std::vector<uint32_t>& slots,
                            const std::map<uint32_t, dpv2_backend>& backends) {
  std::set<uint32_t> ids(slots.begin(), slots.end());
  TableContent c;
  for (uint32_t id : ids) {
    c.push_back(KeyOfBackend(backends.at(id)));
  }
  std::sort(c.begin(), c.end());
  return c;
}

absl::Status DumpError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("lb state: adopt: ", what));
}

}  // namespace

uint32_t LbState::State::BackendIdFor(const BackendKey& bk) {
  if (auto it = adopted_backend_ids.find(bk);
      it != adopted_backend_ids.end() && !backend_by_id.contains(it->second)) {
    return it->second;
  }
  uint32_t id = NextFreeId(&next_backend_id, reserved_backend_ids);
  while (backend_by_id.contains(id)) {
    id = NextFreeId(&next_backend_id, reserved_backend_ids);
  }
  return id;
}

// An adopted table keeps its id only if it holds exactly the slots this
// state computes (same backends, ids, Maglev size and seed); else the new
// table gets a fresh id and the adopted one is deleted by Diff().
uint32_t LbState::State::TableIdFor(const TableContent& content,
                                    const std::vector<uint32_t>& slots) {
  if (auto it = adopted_tables.find(content); it != adopted_tables.end() &&
                                              !tables.contains(it->second.id) &&
                                              it->second.slots == slots) {
    return it->second.id;
  }
  uint32_t id = NextFreeId(&next_table_id, reserved_table_ids);
  while (tables.contains(id)) {
    id = NextFreeId(&next_table_id, reserved_table_ids);
  }
  return id;
}

uint32_t LbState::State::ServiceIdFor(const FrontendAddr& fa) {
  if (auto it = adopted_service_ids.find(fa); it != adopted_service_ids.end()) {
    return it->second;  // CheckDump: one frontend per adopted service id
  }
  return NextFreeId(&next_service_id, reserved_service_ids);
}

absl::Status LbState::State::CheckDump(const ChangeBatch& dumped) const {
  std::map<uint32_t, dpv2_backend> backends_by_id;
  std::map<BackendKey, uint32_t> ids_by_backend;
  for (const BackendEntry& e : dumped.backends_upsert) {
    if (!AdoptableId(e.id)) {
      return DumpError(absl::StrCat("backend id ", e.id, " out of range 1..", kMaxAdoptedId));
    }
    if (!ValidFamily(e.value.family)) {
      return DumpError(absl::StrCat("backend ", e.id, ": family ", e.value.family,
                                    " is not 4 or 6"));
    }
    const BackendKey bk = KeyOfBackend(e.value);
    if (!backends_by_id.emplace(e.id, e.value).second) {
      return DumpError(absl::StrCat("backend ", e.id, " appears twice"));
    }
    if (auto [it, fresh] = ids_by_backend.emplace(bk, e.id); !fresh) {
      return DumpError(absl::StrCat("backends ", it->second, " and ", e.id, " are both ",
                                    bk.Identity()));
    }
  }
  std::set<uint32_t> table_ids;
  for (const LookupTable& t : dumped.tables_upsert) {
    if (!AdoptableId(t.id)) {
      return DumpError(absl::StrCat("lookup table id ", t.id, " out of range 1..", kMaxAdoptedId));
    }
    if (!table_ids.insert(t.id).second) {
      return DumpError(absl::StrCat("lookup table ", t.id, " appears twice"));
    }
    // Any size a datapath of this config can hold: a table sized under
    // another maglev_slots_per_backend (or before per-Service sizes) still
    // lends its backends' ids; TableIdFor keeps its id only if the slots
    // match what this state computes.
    if (t.slots.empty() || t.slots.size() > options.datapath.maglev_table_size) {
      return DumpError(absl::StrCat("lookup table ", t.id, ": ", t.slots.size(),
                                    " slots, want 1 to maglev_table_size ",
                                    options.datapath.maglev_table_size));
    }
    for (size_t i = 0; i < t.slots.size(); ++i) {
      if (!backends_by_id.contains(t.slots[i])) {
        return DumpError(absl::StrCat("lookup table ", t.id, ": slot ", i, " names backend ",
                                      t.slots[i], ", which the dump lacks"));
      }
    }
  }
  std::map<uint32_t, FrontendAddr> addr_by_service_id;
  for (const ServiceEntry& e : dumped.services_upsert) {
    if (!ValidFamily(e.key.family) ||
        (e.key.scope != DPV2_LB_SCOPE_EXT && e.key.scope != DPV2_LB_SCOPE_INT)) {
      return DumpError(absl::StrCat("service key: family ", e.key.family, " scope ", e.key.scope,
                                    " out of range"));
    }
    const FrontendAddr fa = AddrOfService(e.key);
    const std::string name = absl::StrCat("frontend ", fa.ToString());
    if (!AdoptableId(e.value.service_id)) {
      return DumpError(absl::StrCat(name, ": service_id ", e.value.service_id,
                                    " out of range 1..", kMaxAdoptedId));
    }
    if (e.value.table_id != 0 && !table_ids.contains(e.value.table_id)) {
      return DumpError(absl::StrCat(name, ": table_id ", e.value.table_id,
                                    ", which the dump lacks"));
    }
    if ((e.value.table_id == 0) != (e.value.backend_count == 0)) {
      return DumpError(absl::StrCat(name, ": table_id ", e.value.table_id, " with backend_count ",
                                    e.value.backend_count));
    }
    if (auto [it, fresh] = addr_by_service_id.emplace(e.value.service_id, fa);
        !fresh && it->second != fa) {
      return DumpError(absl::StrCat("service_id ", e.value.service_id, " names both frontend ",
                                    it->second.ToString(), " and ", fa.ToString()));
    }
  }
  std::map<FrontendAddr, uint32_t> service_id_by_addr;
  for (const auto& [id, fa] : addr_by_service_id) {
    if (auto [it, fresh] = service_id_by_addr.emplace(fa, id); !fresh) {
      return DumpError(absl::StrCat("frontend ", fa.ToString(), " has service ids ", it->second,
                                    " and ", id));
    }
  }
  for (const dpv2_src_range_key& k : dumped.source_ranges_upsert) {
    if (!addr_by_service_id.contains(k.service_id)) {
      return DumpError(absl::StrCat("source range of service_id ", k.service_id,
                                    ", which no dumped frontend has"));
    }
  }
  return absl::OkStatus();
}

// Takes the dump as what the backend holds, reserves its ids, and with
// `adopt_ids` (a consistent dump) learns them for the same records.
void LbState::State::LearnDump(const ChangeBatch& dumped, bool adopt_ids) {
  for (const NodeAddressEntry& n : dumped.node_addresses_upsert) {
    if (ValidFamily(n.family)) {
      acked_node_addrs[NodeAddressIndex(n.family)] = n.addr;
    }
  }
  std::map<uint32_t, dpv2_backend> backends_by_id;
  for (const BackendEntry& e : dumped.backends_upsert) {
    reserved_backend_ids.insert(e.id);
    if (e.id != 0) {
      acked_backends[e.id] = e.value;
      backends_by_id[e.id] = e.value;
      dirty_backends.insert(e.id);
    }
  }
  for (const LookupTable& t : dumped.tables_upsert) {
    reserved_table_ids.insert(t.id);
    if (t.id != 0) {
      acked_tables.insert(t.id);
      dirty_tables.insert(t.id);
    }
  }
  for (const ServiceEntry& e : dumped.services_upsert) {
    reserved_service_ids.insert(e.value.service_id);
    if (ValidFamily(e.key.family)) {
      acked_services[e.key] = e.value;
      dirty_services.insert(e.key);
    }
  }
  for (const dpv2_src_range_key& k : dumped.source_ranges_upsert) {
    const uint32_t bits = k.family == DPV2_FAMILY_V4 ? 32 : k.family == DPV2_FAMILY_V6 ? 128 : 0;
    if (bits != 0 && k.prefixlen >= 64 && k.prefixlen <= 64 + bits) {
      acked_ranges.insert(k);
      dirty_ranges.insert(k);
    }
  }
  // Fresh ids go above every adopted one, so that an id the previous agent
  // used (maybe still named by a conntrack entry) is not soon given to a
  // different backend.
  for (auto [ids, next] : {std::pair{&reserved_backend_ids, &next_backend_id},
                           std::pair{&reserved_table_ids, &next_table_id},
                           std::pair{&reserved_service_ids, &next_service_id}}) {
    for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
      if (AdoptableId(*it)) {
        *next = std::max(*next, *it + 1);
        break;
      }
    }
  }
  if (!adopt_ids) {
    return;
  }
  for (const auto& [id, value] : backends_by_id) {
    adopted_backend_ids[KeyOfBackend(value)] = id;
  }
  for (const LookupTable& t : dumped.tables_upsert) {
    adopted_tables[ContentOfSlots(t.slots, backends_by_id)] = t;
  }
  for (const ServiceEntry& e : dumped.services_upsert) {
    adopted_service_ids[AddrOfService(e.key)] = e.value.service_id;
  }
}

absl::string_view FrontendKindName(FrontendKind kind) {
  switch (kind) {
    case FrontendKind::kClusterIP:
      return "ClusterIP";
    case FrontendKind::kNodePort:
      return "NodePort";
    case FrontendKind::kLoadBalancer:
      return "LoadBalancer";
    case FrontendKind::kExternalIP:
      return "ExternalIP";
  }
  return "Unknown";
}

absl::StatusOr<LbState> LbState::Create(const LbStateOptions& options) {
  DPV2_RETURN_IF_ERROR(options.datapath.Validate());
  if (options.node_port_range.first == 0 ||
      options.node_port_range.first > options.node_port_range.last) {
    return absl::InvalidArgumentError(
        absl::StrCat("lb state: node_port_range ", options.node_port_range.first, "-",
                     options.node_port_range.last, " is empty or starts at 0"));
  }
  auto state = std::make_unique<State>();
  state->options = options;
  return LbState(std::move(state));
}

LbState::LbState(std::unique_ptr<State> state) : state_(std::move(state)) {}
LbState::LbState(LbState&&) noexcept = default;
LbState& LbState::operator=(LbState&&) noexcept = default;
LbState::~LbState() = default;

absl::Status LbState::SetNode(const NodeInfo& node) {
  // Every Service depends on the node: recompile all of them on a copy and
  // keep it only if all succeed.
  auto next = std::make_unique<State>(*state_);
  next->node = node;
  next->prepared_compiled.clear();
  for (const auto& [key, spec] : next->specs) {
    DPV2_ASSIGN_OR_RETURN(CompiledService c, next->Compile(spec));
    DPV2_RETURN_IF_ERROR(next->Check(key, c));
    next->Commit(key, std::move(c));
  }
  state_ = std::move(next);
  return absl::OkStatus();
}

absl::Status LbState::UpsertService(const ServiceSpec& service) {
  std::optional<CompiledService> prepared;
  if (auto it = state_->prepared_compiled.find(&service); it != state_->prepared_compiled.end()) {
    prepared = std::move(it->second);
    state_->prepared_compiled.erase(it);
    if (state_->prepared_compiled.empty()) {
      state_->prepared_compiled = {};  // its slots (~90 B a Service) too
    }
  }
  DPV2_ASSIGN_OR_RETURN(CompiledService c,
                        prepared ? *std::move(prepared) : state_->Compile(service));
  const std::string key = service.Key();
  DPV2_RETURN_IF_ERROR(state_->Check(key, c));
  state_->specs[key] = service;
  state_->Commit(key, std::move(c));
  return absl::OkStatus();
}

void LbState::PrepareServices(absl::Span<const ServiceSpec* const> services, unsigned threads) {
  State& s = *state_;
  s.prepared.clear();
  s.prepared_compiled.clear();
  // A thread costs ~50 us to start: not worth it for a few tables, which the
  // upserts then compute themselves (without compiling each spec twice).
  constexpr size_t kTablesPerThread = 16;
  if (s.options.selection == BackendSelection::kRandom || services.size() < kTablesPerThread) {
    return;
  }
  // Entries of `prepared` to fill: the map is not changed while threads run.
  std::vector<std::pair<const TableContent*, std::vector<uint32_t>*>> todo;
  s.prepared_compiled.reserve(services.size());
  for (const ServiceSpec* spec : services) {
    absl::StatusOr<CompiledService> c = s.Compile(*spec);
    if (!c.ok()) {
      continue;  // UpsertService compiles it again and reports it
    }
    for (const FrontendRecord& f : c->frontends) {
      if (f.selected.empty() || s.table_by_content.contains(f.selected)) {
        continue;
      }
      if (auto [it, fresh] = s.prepared.emplace(f.selected, std::vector<uint32_t>()); fresh) {
        todo.push_back({&it->first, &it->second});
      }
    }
    s.prepared_compiled.insert_or_assign(spec, *std::move(c));
  }
  if (threads == 0) {
    threads = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  }
  threads = static_cast<unsigned>(std::min<size_t>(threads, todo.size() / kTablesPerThread + 1));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < todo.size(); i = next++) {
      *todo[i].second = PositionSlots(s.options, *todo[i].first);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back(work);
  }
  work();
  for (std::thread& t : pool) {
    t.join();
  }
}

absl::Status LbState::RemoveService(absl::string_view namespace_name, absl::string_view name) {
  const std::string key = absl::StrCat(namespace_name, "/", name);
  if (!state_->specs.contains(key)) {
    return absl::NotFoundError(absl::StrCat("service ", key, ": not found"));
  }
  state_->specs.erase(key);
  state_->Commit(key, std::nullopt);
  return absl::OkStatus();
}

bool LbState::State::BackendAcked(uint32_t id) const {
  auto bk = backend_by_id.find(id);
  const BackendRecord* rec = bk == backend_by_id.end() ? nullptr : &backends.at(bk->second);
  const bool desired = rec != nullptr && rec->refs > 0;
  auto acked = acked_backends.find(id);
  if (!desired || acked == acked_backends.end()) {
    return desired == (acked != acked_backends.end());
  }
  return AbiEqual(acked->second, rec->value);
}

bool LbState::State::TableAcked(uint32_t id) const {
  auto t = tables.find(id);
  return (t != tables.end() && t->second.refs > 0) == acked_tables.contains(id);
}

bool LbState::State::ServiceAcked(const dpv2_lb_key& k) const {
  auto d = desired_services.find(k);
  auto a = acked_services.find(k);
  if (d == desired_services.end() || a == acked_services.end()) {
    return (d == desired_services.end()) == (a == acked_services.end());
  }
  return AbiEqual(d->second, a->second);
}

ChangeBatch LbState::Diff() const { return state_->Diff(/*take_slots=*/false); }

ChangeBatch LbState::TakeDiff() { return state_->Diff(/*take_slots=*/true); }


ChangeBatch LbState::State::Diff(bool take_slots) {
  State& s = *this;
  ChangeBatch b;
  for (uint8_t family : {DPV2_FAMILY_V4, DPV2_FAMILY_V6}) {
    const std::optional<dpv2_addr> desired = NodeAddressOf(s.node, family);
    const std::optional<dpv2_addr>& acked = s.acked_node_addrs[NodeAddressIndex(family)];
    if (desired.has_value() && !(acked.has_value() && AbiEqual(*acked, *desired))) {
      b.node_addresses_upsert.push_back({.family = family, .addr = *desired});
    } else if (!desired.has_value() && acked.has_value()) {
      b.node_addresses_delete.push_back(family);
    }
  }
  for (uint32_t id : s.dirty_backends) {
    if (s.BackendAcked(id)) {
      continue;
    }
    if (auto bk = s.backend_by_id.find(id);
        bk != s.backend_by_id.end() && s.backends.at(bk->second).refs > 0) {
      b.backends_upsert.push_back({.id = id, .value = s.backends.at(bk->second).value});
    } else {
      b.backends_delete.push_back(id);
    }
  }
  for (uint32_t id : s.dirty_tables) {
    if (s.TableAcked(id)) {
      continue;
    }
    if (auto t = s.tables.find(id); t != s.tables.end() && t->second.refs > 0) {
      std::shared_ptr<std::vector<uint32_t>>& slots = t->second.slots;
      if (!slots) {
        b.tables_upsert.push_back({.id = id, .slots = s.BuildSlots(t->second.content)});
      } else if (take_slots && slots.use_count() == 1) {
        b.tables_upsert.push_back({.id = id, .slots = std::move(*slots)});
        slots.reset();
      } else {
        b.tables_upsert.push_back({.id = id, .slots = *slots});
      }
    } else {
      b.tables_delete.push_back(id);
    }
  }
  for (const dpv2_src_range_key& k : s.dirty_ranges) {
    const bool desired = s.desired_ranges.contains(k);
    if (desired != s.acked_ranges.contains(k)) {
      (desired ? b.source_ranges_upsert : b.source_ranges_delete).push_back(k);
    }
  }
  for (const dpv2_lb_key& k : s.dirty_services) {
    if (s.ServiceAcked(k)) {
      continue;
    }
    if (auto d = s.desired_services.find(k); d != s.desired_services.end()) {
      b.services_upsert.push_back({.key = k, .value = d->second});
    } else {
      b.services_delete.push_back(k);
    }
  }
  return b;
}

void LbState::Acknowledge(const ChangeBatch& batch) {
  State& s = *state_;
  for (const NodeAddressEntry& n : batch.node_addresses_upsert) {
    s.acked_node_addrs[NodeAddressIndex(n.family)] = n.addr;
  }
  for (uint8_t family : batch.node_addresses_delete) {
    s.acked_node_addrs[NodeAddressIndex(family)].reset();
  }
  for (const BackendEntry& e : batch.backends_upsert) {
    s.acked_backends[e.id] = e.value;
    s.dirty_backends.insert(e.id);
  }
  for (const LookupTable& t : batch.tables_upsert) {
    s.acked_tables.insert(t.id);
    s.dirty_tables.insert(t.id);
    if (auto rec = s.tables.find(t.id); rec != s.tables.end()) {
      rec->second.slots.reset();
    }
  }
  for (const dpv2_src_range_key& k : batch.source_ranges_upsert) {
    s.acked_ranges.insert(k);
    s.dirty_ranges.insert(k);
  }
  for (const ServiceEntry& e : batch.services_upsert) {
    s.acked_services[e.key] = e.value;
    s.dirty_services.insert(e.key);
  }
  for (const dpv2_lb_key& k : batch.services_delete) {
    s.acked_services.erase(k);
    s.dirty_services.insert(k);
    s.release_service_ids.insert({.addr = IpAddr::FromAbi(k.addr, static_cast<Family>(k.family)),
                                  .port = ntohs(k.port),
                                  .proto = static_cast<L4Proto>(k.proto)});
  }
  for (const dpv2_src_range_key& k : batch.source_ranges_delete) {
    s.acked_ranges.erase(k);
    s.dirty_ranges.insert(k);
  }
  for (uint32_t id : batch.tables_delete) {
    s.acked_tables.erase(id);
    s.dirty_tables.insert(id);
    s.release_tables.insert(id);
  }
  for (uint32_t id : batch.backends_delete) {
    s.acked_backends.erase(id);
    s.dirty_backends.insert(id);
    if (auto bk = s.backend_by_id.find(id); bk != s.backend_by_id.end()) {
      s.release_backends.insert(bk->second);
    }
  }
  // Forget dirt the backend now agrees with (before ReleaseUnused forgets
  // records: a released one is neither desired nor acknowledged).
  std::erase_if(s.dirty_backends, [&s](uint32_t id) { return s.BackendAcked(id); });
  std::erase_if(s.dirty_tables, [&s](uint32_t id) { return s.TableAcked(id); });
  std::erase_if(s.dirty_ranges, [&s](const dpv2_src_range_key& k) {
    return s.desired_ranges.contains(k) == s.acked_ranges.contains(k);
  });
  std::erase_if(s.dirty_services, [&s](const dpv2_lb_key& k) { return s.ServiceAcked(k); });
  s.ReleaseUnused();
}

absl::Status LbState::Adopt(const ChangeBatch& dumped) {
  auto next = std::make_unique<State>();
  next->options = state_->options;
  next->node = state_->node;
  next->specs = state_->specs;
  const absl::Status consistent = next->CheckDump(dumped);
  next->LearnDump(dumped, consistent.ok());
  // The same Services under the learned ids. They compiled and fitted before
  // with this node, and capacities count desired records only: no error is
  // expected here, and on one the state stays as it was.
  for (const auto& [key, spec] : next->specs) {
    DPV2_ASSIGN_OR_RETURN(CompiledService c, next->Compile(spec));
    DPV2_RETURN_IF_ERROR(next->Check(key, c));
    next->Commit(key, std::move(c));
  }
  state_ = std::move(next);
  return consistent;
}

void LbState::ResetAcknowledged() {
  State& s = *state_;
  s.adopted_backend_ids.clear();
  s.adopted_service_ids.clear();
  s.adopted_tables.clear();
  s.reserved_backend_ids.clear();
  s.reserved_table_ids.clear();
  s.reserved_service_ids.clear();
  s.acked_services.clear();
  s.acked_backends.clear();
  s.acked_tables.clear();
  s.acked_ranges.clear();
  s.acked_node_addrs = {};
  for (const auto& [bk, rec] : s.backends) {
    s.release_backends.insert(bk);
    s.dirty_backends.insert(rec.id);
  }
  for (const auto& [id, rec] : s.tables) {
    s.release_tables.insert(id);
    s.dirty_tables.insert(id);
  }
  for (const auto& [k, v] : s.desired_services) {
    s.dirty_services.insert(k);
  }
  s.dirty_ranges.insert(s.desired_ranges.begin(), s.desired_ranges.end());
  for (const auto& [fa, rec] : s.service_ids) {
    s.release_service_ids.insert(fa);
  }
  s.ReleaseUnused();
}

std::vector<FrontendView> LbState::Frontends() const {
  const State& s = *state_;
  std::vector<FrontendView> out;
  for (const auto& [key, c] : s.compiled) {
    for (const FrontendRecord& f : c.frontends) {
      const dpv2_lb_value& v = s.desired_services.at(f.Key());
      FrontendView view{
          .service = key,
          .port_name = f.port_name,
          .kind = f.kind,
          .address = f.addr.addr,
          .port = f.addr.port,
          .protocol = f.addr.proto,
          .scope = f.scope,
          .service_id = v.service_id,
          .table_id = v.table_id,
          .flags = v.flags,
          .affinity_timeout_s = v.affinity_timeout_s,
      };
      for (const BackendKey& bk : f.selected) {
        view.backends.push_back(bk.Endpoint());
      }
      std::sort(view.backends.begin(), view.backends.end());
      out.push_back(std::move(view));
    }
  }
  std::sort(out.begin(), out.end(), [](const FrontendView& a, const FrontendView& b) {
    return std::tie(a.service, a.address, a.port, a.protocol, a.scope) <
           std::tie(b.service, b.address, b.port, b.protocol, b.scope);
  });
  return out;
}

std::vector<BackendView> LbState::Backends() const {
  const State& s = *state_;
  std::vector<BackendView> out;
  for (const auto& [id, bk] : s.backend_by_id) {
    const BackendRecord& rec = s.backends.at(bk);
    if (rec.refs == 0) {
      continue;
    }
    out.push_back({.id = id,
                   .address = bk.addr,
                   .port = bk.port,
                   .protocol = bk.proto,
                   .local = (rec.value.flags & DPV2_BACKEND_F_LOCAL) != 0,
                   .references = rec.refs});
  }
  return out;
}

std::vector<HealthCheckView> LbState::HealthChecks() const {
  std::vector<HealthCheckView> out;
  for (const auto& [key, spec] : state_->specs) {
    if (spec.health_check_node_port == 0) {
      continue;
    }
    out.push_back({.namespace_name = spec.namespace_name,
                   .name = spec.name,
                   .health_check_node_port = spec.health_check_node_port,
                   .local_endpoints = state_->compiled.at(key).local_ready_endpoints});
  }
  return out;
}

const NodeInfo& LbState::node() const { return state_->node; }
size_t LbState::service_count() const { return state_->specs.size(); }
const LbStateOptions& LbState::options() const { return state_->options; }

}  // namespace dpv2
