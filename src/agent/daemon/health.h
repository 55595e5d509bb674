// Health endpoints that load balancers and kubelets already know how to read,
// because kube-proxy serves them:
//  - ProxyHealth: kube-proxy's /healthz and /livez on --healthz-address
//    (default 0.0.0.0:10256). Unhealthy (503) when a change has waited longer
//    than the timeout to reach the datapath; the JSON body carries
//    lastUpdated/currentTime (and nodeEligible on /healthz).
//  - HealthCheckPorts: one HTTP listener per healthCheckNodePort of a
//    LoadBalancer Service with externalTrafficPolicy Local (SEMANTICS.md
//    section 1): 200 when this node has local ready endpoints and the proxy is
//    healthy, else 503, with kube-proxy's body and the
//    X-Load-Balancing-Endpoint-Weight header.
//
//   ProxyHealth health({.timeout = absl::Seconds(60)});
//   health.QueuedUpdate(absl::Now());  ...  health.Updated(absl::Now());
//   HttpResponse r = health.Healthz(absl::Now(), /*node_eligible=*/true);
#ifndef DPV2_AGENT_DAEMON_HEALTH_H_
#define DPV2_AGENT_DAEMON_HEALTH_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/daemon/http_server.h"
#include "agent/daemon/structured_log.h"
#include "dpv2/lb_state.h"

namespace dpv2::agent::daemon {

// Go's time.Time.String() in UTC ("2026-11-26 20:01:02.5 +0000 UTC"), which
// is what kube-proxy's health bodies carry; InfinitePast prints Go's zero time.
std::string GoTimeString(absl::Time t);

struct ProxyHealthOptions {
  // kube-proxy: 2 x its sync period (30 s).
  absl::Duration timeout = absl::Seconds(60);
};

class ProxyHealth {
 public:
  explicit ProxyHealth(ProxyHealthOptions options = {}) : options_(options) {}

  // A change is waiting for the datapath (the oldest waiting one counts).
  void QueuedUpdate(absl::Time now);
  // Everything queued so far reached the datapath.
  void Updated(absl::Time now);
  bool Healthy(absl::Time now) const;

  // /healthz: 200 when healthy and the node is eligible, else 503.
  HttpResponse Healthz(absl::Time now, bool node_eligible) const;
  // /livez: 200 when healthy, else 503.
  HttpResponse Livez(absl::Time now) const;

 private:
  absl::Time ReportedLastUpdated(absl::Time now, bool healthy) const;

  ProxyHealthOptions options_;
  mutable std::mutex mu_;
  absl::Time last_updated_ = absl::InfinitePast();
  absl::Time oldest_pending_ = absl::InfinitePast();  // InfinitePast: nothing pending
};

// kube-proxy's healthCheckNodePort answer for one Service.
HttpResponse ServiceHealthResponse(const std::string& namespace_name, const std::string& name,
                                   uint32_t local_endpoints, bool proxy_healthy);

class HealthCheckPorts {
 public:
  // Listeners bind `host` (kube-proxy: every node address, "0.0.0.0").
  HealthCheckPorts(HttpServer* server, std::string host, std::function<bool()> proxy_healthy,
                   StructuredLog* log);
  ~HealthCheckPorts();  // closes every listener

  // Opens a listener for each new port, closes those of Services gone, and
  // updates endpoint counts. A port that cannot be bound is logged and tried
  // again on the next Sync.
  void Sync(const std::vector<HealthCheckView>& checks);
  // Ports with an open listener, ascending.
  std::vector<uint16_t> ports() const;

 private:
  struct Port {
    int listener = 0;
    std::string namespace_name;
    std::string name;
    uint32_t local_endpoints = 0;
  };
  HttpResponse Answer(uint16_t port) const;

  HttpServer* server_;
  std::string host_;
  std::function<bool()> proxy_healthy_;
  StructuredLog* log_;
  mutable std::mutex mu_;
  std::map<uint16_t, Port> ports_;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_HEALTH_H_
