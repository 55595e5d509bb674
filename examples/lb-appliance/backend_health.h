// Backend health as the appliance itself sees it: TCP connect probes of every
// TCP backend on an interval, with hysteresis (down after `fall` failures in
// a row, up after `rise` successes), and the mark it leaves on ServiceSpecs.
//
// A backend that fails its probes becomes a not-ready, not-serving endpoint:
// it gets no new flows, and its backend record stays in the datapath, so the
// flows it already has continue (a dead backend's clients then time out or
// get its RST; `state: down` in the config file moves them instead).
//
//   HealthChecker checker({.interval_ms = 1000, .timeout_ms = 500, .rise = 2, .fall = 3});
//   checker.SetTargets(HealthTargets(specs));
//   MarkUnhealthy(checker.Down(), &specs);
#ifndef DPV2_EXAMPLES_LB_APPLIANCE_BACKEND_HEALTH_H_
#define DPV2_EXAMPLES_LB_APPLIANCE_BACKEND_HEALTH_H_

#include <atomic>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "dpv2/net.h"
#include "dpv2/service.h"
#include "lb_config.h"

namespace dpv2::lb {

// A TCP backend: address and target port.
struct HealthTarget {
  IpAddr address;
  uint16_t port = 0;

  std::string ToString() const;  // "10.0.0.1:8080", "[fd00::1]:80"
  friend auto operator<=>(const HealthTarget&, const HealthTarget&) = default;
};

// The TCP backends of `specs` that could be selected (ready or serving
// endpoints, on a TCP port). UDP and SCTP backends are not probed.
std::vector<HealthTarget> HealthTargets(const std::vector<ServiceSpec>& specs);

// Makes every endpoint in `down` not ready and not serving. A slice with
// several ports is split into one slice per port first, since a backend may be
// down on one port and up on another.
void MarkUnhealthy(const std::set<HealthTarget>& down, std::vector<ServiceSpec>* specs);

// Hysteresis per target, without I/O. A new target starts up, so a reload or
// a new backend never waits `rise` intervals for its first flows.
class HealthTable {
 public:
  HealthTable(uint32_t rise, uint32_t fall) : rise_(rise), fall_(fall) {}

  // Forgets targets not in `targets`, adds new ones (up).
  void SetTargets(const std::vector<HealthTarget>& targets);
  // Counts one probe result; true when the target changed state. Results
  // for unknown targets are ignored.
  bool Record(const HealthTarget& target, bool success);
  std::set<HealthTarget> Down() const;
  std::map<HealthTarget, bool> States() const;  // -> up

 private:
  struct State {
    bool up = true;
    uint32_t streak = 0;  // results in a row that disagree with `up`
  };
  uint32_t rise_;
  uint32_t fall_;
  std::map<HealthTarget, State> states_;
};

// One round of TCP connect probes, all in flight at once; element i is true
// when targets[i] accepted the connection within `timeout`. Sockets are of
// this process's network namespace: the box reaches backends through the
// kernel (a management interface), not through its DPDK ports.
std::vector<bool> ProbeTcp(const std::vector<HealthTarget>& targets, absl::Duration timeout);

// Probes on a thread of its own every interval_ms (which must be > 0).
class HealthChecker {
 public:
  explicit HealthChecker(const HealthCheckConfig& config);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void SetTargets(const std::vector<HealthTarget>& targets);
  std::set<HealthTarget> Down() const;
  std::map<HealthTarget, bool> States() const;
  // Grows by one whenever some target changes state: a cheap "resync now".
  uint64_t changes() const { return changes_.load(std::memory_order_acquire); }

 private:
  void Run();

  HealthCheckConfig config_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  HealthTable table_;
  bool stop_ = false;
  std::atomic<uint64_t> changes_{0};
  std::thread thread_;
};

}  // namespace dpv2::lb

#endif  // DPV2_EXAMPLES_LB_APPLIANCE_BACKEND_HEALTH_H_
