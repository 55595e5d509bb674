// The dpv2-lb configuration file: DPDK set-up, virtual services (VIPs) and
// their backends with a health state, in YAML (JSON, being YAML, works too).
//
// Services become Kubernetes-shaped ServiceSpecs (a VIP is a ClusterIP-like
// frontend; backends are endpoints whose conditions say up, draining or
// down) that LbState compiles into datapath batches, so the appliance runs
// exactly the load balancing a dpv2 node runs. Schema: docs/dpdk.md.
//
//   absl::StatusOr<LbConfig> cfg = LoadLbConfig("/etc/dpv2-lb.yaml");
//   std::vector<dpv2::ServiceSpec> specs = ToServiceSpecs(cfg->services);
//   dpv2::DpdkOptions opts = cfg->dpdk;
#ifndef DPV2_EXAMPLES_LB_APPLIANCE_LB_CONFIG_H_
#define DPV2_EXAMPLES_LB_APPLIANCE_LB_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dpv2/dpdk.h"
#include "dpv2/lb_state.h"
#include "dpv2/net.h"
#include "dpv2/service.h"

namespace dpv2::lb {

// up: takes new flows. draining: keeps its flows, takes new ones only when
// no backend is up (Kubernetes' serving+terminating). down: left out of the
// Service, so its backend record is deleted and its flows move elsewhere.
enum class BackendHealth : uint8_t { kUp, kDraining, kDown };

struct VirtualBackend {
  IpAddr address;
  uint16_t port = 0;
  BackendHealth health = BackendHealth::kUp;
};

struct VirtualService {
  std::string name;
  IpAddr vip;
  uint16_t port = 0;
  L4Proto protocol = L4Proto::kTCP;
  uint32_t affinity_timeout_s = 0;  // 0: no session affinity
  std::vector<VirtualBackend> backends;
};

// Kubernetes input: Service and EndpointSlice manifests (a file or a
// directory), re-read when they change. Empty: none.
struct KubernetesInput {
  std::string manifests;  // relative paths are relative to the config file
};

// The appliance's own TCP connect probes of every TCP backend. A backend
// goes down after `fall` failed probes in a row and up again after `rise`
// successful ones. interval_ms 0: no probes.
struct HealthCheckConfig {
  uint32_t interval_ms = 0;
  uint32_t timeout_ms = 1000;
  uint32_t rise = 2;
  uint32_t fall = 3;
};

struct LbConfig {
  DpdkOptions dpdk;
  BackendSelection selection = BackendSelection::kMaglev;
  uint64_t maglev_seed = 1;  // the same on every box, so they agree on backends
  std::vector<VirtualService> services;
  KubernetesInput kubernetes;
  HealthCheckConfig health_checks;
};

// Errors name the file position and field: `services[1] "web": backends[0]:
// port 0 out of range 1-65535`.
absl::StatusOr<LbConfig> ParseLbConfig(absl::string_view text);
// Also makes kubernetes.manifests relative to the file's directory absolute.
absl::StatusOr<LbConfig> LoadLbConfig(const std::string& path);

std::vector<ServiceSpec> ToServiceSpecs(const std::vector<VirtualService>& services);

// The namespace the config file's ServiceSpecs live in.
// Not a valid Kubernetes namespace (it has a dot), so the file's services
// never collide with Services read from Kubernetes manifests.
inline constexpr absl::string_view kLbNamespace = "lb.config";

}  // namespace dpv2::lb

#endif  // DPV2_EXAMPLES_LB_APPLIANCE_LB_CONFIG_H_
