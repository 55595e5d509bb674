// The conformance suite: every datapath behaviour as packet fixtures (data),
// run unchanged against every backend through a ConformanceHarness.
//
// A case is one sentence saying what it proves, a state (Services compiled by
// LbState from ServiceSpec/NodeInfo, local endpoints, ipcache and policy
// entries) and steps (an optional state change, time advance or garbage
// collection, then one input frame with the expected verdict, output bytes,
// events and counter deltas). A backend adds a harness and a three-line main:
//
//   int main(int argc, char** argv) {
//     return dpv2::conformance::RunConformanceMain(argc, argv, std::make_unique<MyHarness>());
//   }
#ifndef DPV2_TESTS_CONFORMANCE_CONFORMANCE_H_
#define DPV2_TESTS_CONFORMANCE_CONFORMANCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dpv2/backend.h"
#include "dpv2/batch.h"
#include "dpv2/datapath_config.h"
#include "dpv2/net.h"
#include "dpv2/service.h"

namespace dpv2::conformance {

// What a backend provides to run the suite.
class ConformanceHarness {
 public:
  virtual ~ConformanceHarness() = default;
  virtual std::string Name() const = 0;
  // Once before the cases. absl::UnavailableError means "cannot run here"
  // (e.g. unprivileged): the program exits 77 (skip), or fails when CI=true.
  virtual absl::Status Prepare() { return absl::OkStatus(); }
  virtual absl::Status Cleanup() { return absl::OkStatus(); }
  // An empty datapath per case: freshly made, or one a case gave back.
  virtual absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) = 0;
  // Takes back, after a case, the backend MakeBackend made with `config`. A
  // harness may keep it for a later MakeBackend with an equal config once it
  // has proved the backend is back to its just-made state; otherwise the
  // error names what was left behind, and the case fails (a leak must not
  // pass into the next case unseen). By default the backend is destroyed.
  virtual absl::Status Recycle(std::unique_ptr<Backend> backend, const DatapathConfig& config) {
    (void)backend;
    (void)config;
    return absl::OkStatus();
  }
  // Moves the datapath's notion of now forward by `ns` (the sim moves its
  // fake clock; eBPF shifts stored timestamps back instead).
  virtual absl::Status AdvanceTime(Backend& backend, uint64_t ns) = 0;
};

// The Maglev seed the runner compiles every case's Services with (a case that
// expects one exact backend computes its table with it).
inline constexpr uint64_t kMaglevSeed = 1;

// One event as the suite compares it (timestamps, ifindex and identities
// are not compared).
struct ExpectedEvent {
  uint8_t type = 0;   // DPV2_EVENT_*
  uint16_t flags = 0;  // DPV2_EV_F_*
  dpv2_drop_reason reason = DPV2_DROP_NONE;
  FiveTuple tuple;
  IpAddr orig_dst;
  uint16_t orig_dport = 0;
};

// A conntrack entry's fast-path stamp (abi/ct.h) as the suite compares it:
// whether it carries one (a nonzero revision; the value is each backend's
// own counter), from which interface, and the cached flags without
// DPV2_CT_C_XDP (the eBPF XDP object's own). An unstamped entry has revision,
// in_ifindex and cache_flags all 0.
struct ExpectedStamp {
  FiveTuple key;         // the entry's key, in the direction that created it
  bool service = false;  // a SERVICE entry (DPV2_CT_KEY_SERVICE)
  bool stamped = false;
  uint32_t in_ifindex = 0;
  uint8_t cache_flags = 0;  // DPV2_CT_C_*
};

struct Step {
  // Optional state change before the packet: edits the case's Services;
  // the runner recompiles them with LbState and applies the difference.
  std::function<void(std::vector<ServiceSpec>&)> change;
  // Optional raw records applied with it (endpoints, ipcache, policy).
  ChangeBatch apply;
  uint64_t advance_ns = 0;  // then time moves forward
  bool collect_garbage = false;  // then the garbage collector runs

  // The packet (none when frame is empty: a step that only checks state).
  Entry entry = Entry::kFromPod;
  uint32_t ifindex = 0;
  std::vector<uint8_t> frame;
  // RunPacket refuses the frame (CheckPacketInput): no interface delivers it,
  // so no backend counts or reports it.
  bool refused = false;

  Verdict verdict = Verdict::kDrop;
  dpv2_drop_reason drop = DPV2_DROP_NONE;
  uint32_t out_ifindex = 0;  // kRedirect only (kTx: the input ifindex)
  // The output frame equals one of these (required for PASS/REDIRECT/TX).
  std::vector<std::vector<uint8_t>> outputs;
  // The output goes to the same destination address and port as the output
  // of that earlier step (Maglev and affinity consistency).
  std::optional<int> same_destination_as;
  // The output's destination differs from that earlier step's.
  std::optional<int> other_destination_than;
  bool check_events = false;  // set with the expected events
  std::vector<ExpectedEvent> events;  // exactly these, in order
  std::vector<std::pair<dpv2_counter, uint64_t>> counters;  // deltas of this step
  std::vector<std::pair<dpv2_drop_reason, uint64_t>> drops;  // deltas of this step
  std::optional<size_t> conntrack_entries;  // after the step
  // After the step: the stamp of every conntrack entry, exactly these.
  std::optional<std::vector<ExpectedStamp>> stamps;
};

struct ConformanceCase {
  std::string proves;  // one sentence; also the test name
  DatapathConfig config;
  std::vector<ServiceSpec> services;
  std::vector<EndpointEntry> endpoints;
  std::vector<IpcacheEntry> ipcache;
  std::vector<PolicyEntry> policy;
  std::vector<Step> steps;
};

// The Service and conntrack fixtures (service_cases.cc).
std::vector<ConformanceCase> ServiceCases();
// Policy enforcement by the datapath (policy_cases.cc).
std::vector<ConformanceCase> PolicyCases();
// Kubernetes policy rules compiled by PolicyState (policy_rule_cases.cc).
std::vector<ConformanceCase> PolicyRuleCases();
// Source port collisions between a client's connections (collision_cases.cc).
std::vector<ConformanceCase> CollisionCases();
// Every fixture of the suite.
std::vector<ConformanceCase> AllCases();

// Checks that are not one packet against a fixed state: restart adoption
// (DumpState, LbState/PolicyState::Adopt) on the harness's backend
// (state_cases.cc). `run` reports with Catch2 assertions.
struct StateCase {
  std::string proves;  // one sentence; also the test name
  std::function<void(ConformanceHarness&)> run;
};
std::vector<StateCase> StateCases();

// Runs one case, reporting mismatches as Catch2 failures.
void RunCase(ConformanceHarness& harness, const ConformanceCase& c);

// Registers every case as a Catch2 test case named by its sentence, runs
// the Catch2 session with argv, and returns its exit code (77: skipped).
int RunConformanceMain(int argc, char** argv, std::unique_ptr<ConformanceHarness> harness);

}  // namespace dpv2::conformance

#endif  // DPV2_TESTS_CONFORMANCE_CONFORMANCE_H_
