// dpv2 load-balancer state: the desired Services of this node, compiled into
// datapath records (frontends, backends, lookup tables, source ranges), and
// the difference to what the backend last acknowledged.
//
// LbState is the pure core of kube-proxy replacement: it does no I/O. Each
// mutation validates first and changes nothing on error. Diff() returns only
// what changed since the last Acknowledge(), so applying the same objects
// twice yields an empty batch. Compilation rules: docs/datapath.md and
// SEMANTICS.md section 1 (frontends per cluster IP, per node address for
// NodePorts, per LB/external IP; EXT/INT scopes; Local policies; affinity;
// source ranges). Ids are stable: a backend (addr, port, proto) keeps its id
// while referenced, a frontend keeps its service_id; a lookup table is never
// rewritten: different slot content gets a new table id. Two choices follow
// kube-proxy rather than the wider reading: loadBalancerSourceRanges guard the
// LB ingress IPs only (not externalIPs), and a family is served only when the
// Service has a cluster IP of that family.
//
//   absl::StatusOr<dpv2::LbState> lb = dpv2::LbState::Create({.maglev_seed = 1});
//   DPV2_RETURN_IF_ERROR(lb->SetNode(node)); DPV2_RETURN_IF_ERROR(lb->UpsertService(svc));
//   dpv2::ChangeBatch b = lb->Diff(); DPV2_RETURN_IF_ERROR(backend->Apply(b)); lb->Acknowledge(b);
#ifndef DPV2_LB_STATE_H_
#define DPV2_LB_STATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dpv2/batch.h"
#include "dpv2/datapath_config.h"
#include "dpv2/net.h"
#include "dpv2/service.h"

namespace dpv2 {

enum class BackendSelection : uint8_t {
  kMaglev,  // slot = hash(5-tuple) % M over a Maglev table
  kRandom,  // DPV2_LB_F_RANDOM: a random slot of an evenly filled table
};

struct LbStateOptions {
  DatapathConfig datapath;   // maglev_table_size, max_services/backends/tables/source_ranges
  uint64_t maglev_seed = 0;  // the same on every node of a cluster
  BackendSelection selection = BackendSelection::kMaglev;
  PortRange node_port_range;
};

enum class FrontendKind : uint8_t { kClusterIP, kNodePort, kLoadBalancer, kExternalIP };
absl::string_view FrontendKindName(FrontendKind kind);  // "ClusterIP", "NodePort", ...

// One frontend scope as compiled for the datapath (for tooling: `dpv2ctl services`).
struct FrontendView {
  std::string service;    // "namespace/name"
  std::string port_name;  // ServicePort name
  FrontendKind kind = FrontendKind::kClusterIP;
  IpAddr address;
  uint16_t port = 0;  // host order
  L4Proto protocol = L4Proto::kTCP;
  uint8_t scope = DPV2_LB_SCOPE_EXT;  // DPV2_LB_SCOPE_*
  uint32_t service_id = 0;
  uint32_t table_id = 0;  // 0: no usable backend
  uint16_t flags = 0;     // DPV2_LB_F_*
  uint32_t affinity_timeout_s = 0;
  std::vector<std::string> backends;  // selected backends "ip:port", sorted
};

struct BackendView {
  uint32_t id = 0;
  IpAddr address;
  uint16_t port = 0;  // host order
  L4Proto protocol = L4Proto::kTCP;
  bool local = false;       // DPV2_BACKEND_F_LOCAL
  uint32_t references = 0;  // frontend scopes and services that hold it
};

// A Service with a healthCheckNodePort (LoadBalancer, externalTrafficPolicy
// Local): the agent's health server answers 200 when local_endpoints > 0.
struct HealthCheckView {
  std::string namespace_name;
  std::string name;
  uint16_t health_check_node_port = 0;
  uint32_t local_endpoints = 0;  // ready endpoints on this node, summed over ports
};

class LbState {
 public:
  // Validates options.datapath (the Maglev size must be a prime).
  static absl::StatusOr<LbState> Create(const LbStateOptions& options);

  LbState(LbState&&) noexcept;
  LbState& operator=(LbState&&) noexcept;
  ~LbState();

  // The node's name, zone and addresses decide local endpoints, topology and
  // NodePort frontends; every Service is recompiled.
  absl::Status SetNode(const NodeInfo& node);
  // Adds or replaces a Service (with its EndpointSlices). Validates it and the
  // capacities; on error nothing changes. Also an error: a frontend (address,
  // port, protocol) that another Service already serves.
  absl::Status UpsertService(const ServiceSpec& service);
  // A hint before upserting many Services (a full sync): computes the
  // lookup tables that UpsertService of these specs will need and that this
  // state does not hold yet, on up to `threads` threads (0: one per CPU, at
  // most 4). The upserts then take them instead of computing them one after
  // the other; the resulting state is the same with or without the hint.
  // Tables prepared and not used are dropped at the next PrepareServices.
  // The specs are compiled here once: each must stay unchanged, at the same
  // address, until its UpsertService (which then skips compiling it).
  // Fewer than 16 Services: nothing is prepared (threads would not pay).
  void PrepareServices(absl::Span<const ServiceSpec* const> services, unsigned threads = 0);
  // NotFound if absent.
  absl::Status RemoveService(absl::string_view namespace_name, absl::string_view name);

  // Desired state vs last acknowledged: only what changed. Deterministic order.
  ChangeBatch Diff() const;
  // Diff(), with new lookup tables' slots moved into the batch instead of
  // copied (4 bytes a slot, MaglevTableSizeFor slots a table; the state
  // holds them only until acknowledged). If the batch is not acknowledged, the next Diff()
  // recomputes those tables.
  ChangeBatch TakeDiff();
  // Records that `batch` (normally the last Diff()) was applied by the backend.
  void Acknowledge(const ChangeBatch& batch);
  // Forgets what the backend holds (e.g. it was recreated): the next Diff()
  // writes everything.
  void ResetAcknowledged();
  // Restart adoption: `dumped` is what the datapath holds now
  // (Backend::DumpState; only its services, backends, lookup tables and
  // source ranges are read). The desired records keep the ids the datapath
  // uses for the same backend (address, port, protocol), the same frontend
  // (address, port, protocol: its service_id) and the same lookup table
  // (identical slots), and the dump counts as acknowledged: the next Diff()
  // holds only the real differences, deletes of what went away included, and
  // conntrack entries of unchanged backends stay valid. Fresh ids never
  // collide with a dumped one. Callable before or after the Services are
  // given (they are recompiled). A table of another size than this state
  // computes (another maglev_slots_per_backend) keeps no id, its backends
  // do. A dump that is not consistent (an id 0 or
  // above kMaxAdoptedId, a table of no slots or of more than
  // maglev_table_size, or naming a backend the dump lacks, a frontend naming a missing table, one backend or service id under
  // two names) is an InvalidArgument error naming the entry; the state then
  // adopts no id, and the next Diff() rewrites everything under fresh ids and
  // deletes what the dump held.
  absl::Status Adopt(const ChangeBatch& dumped);

  // Read access for tooling, sorted by service, address, port, protocol, scope.
  std::vector<FrontendView> Frontends() const;
  std::vector<BackendView> Backends() const;          // desired backends, by id
  std::vector<HealthCheckView> HealthChecks() const;  // by namespace/name
  const NodeInfo& node() const;
  size_t service_count() const;
  const LbStateOptions& options() const;

 private:
  struct State;
  explicit LbState(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace dpv2

#endif  // DPV2_LB_STATE_H_
