// dpv2-agent: the node agent. It reads Kubernetes objects (manifests, or the
// API server), programs the datapath (sim or eBPF) with this node's view of
// them, and serves metrics, health, the control socket and the policy log.
// SIGTERM/SIGINT stop it gracefully and leave the datapath running.
//
//   dpv2-agent --backend=ebpf --node=node-a --manifests=examples/manifests
//       --bpffs=/sys/fs/bpf/dpv2 --metrics-address=127.0.0.1:9990
#include <net/if.h>
#include <signal.h>
#include <time.h>

#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/apiserver/client_config.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/agent_flags.h"
#include "agent/daemon/structured_log.h"
#include "dpv2/ebpf.h"
#include "dpv2/sim.h"

namespace {

using dpv2::agent::daemon::Agent;
using dpv2::agent::daemon::AgentFlags;
using dpv2::agent::daemon::AgentOptions;
using dpv2::agent::daemon::BackendKind;
using dpv2::agent::daemon::StructuredLog;
using dpv2::agent::daemon::TcChecksum;

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

#if DPV2_HAVE_EBPF
dpv2::EbpfChecksum EbpfChecksumOf(TcChecksum c) {
  switch (c) {
    case TcChecksum::kInPlace:
      return dpv2::EbpfChecksum::kInPlace;
    case TcChecksum::kHelpers:
      return dpv2::EbpfChecksum::kHelpers;
    case TcChecksum::kAuto:
      break;
  }
  return dpv2::EbpfChecksum::kAuto;
}
#endif

absl::StatusOr<std::unique_ptr<dpv2::Backend>> MakeBackend(const AgentFlags& flags,
                                                            AgentOptions& options) {
  if (flags.backend == BackendKind::kSim) {
    options.backend_name = "sim";
    return dpv2::MakeSimBackend({.config = options.lb.datapath});
  }
#if DPV2_HAVE_EBPF
  options.backend_name = "ebpf";
  options.resolve_pod_interfaces = true;
  options.datapath_now_ns = [] { return MonotonicNs() + dpv2::kEbpfClockOffsetNs; };
  uint32_t external = 0;
  if (!flags.external_interface.empty()) {
    external = if_nametoindex(flags.external_interface.c_str());
    if (external == 0) {
      return absl::NotFoundError(absl::StrCat("flag --external-interface: no interface \"",
                                              flags.external_interface, "\""));
    }
  }
  if (!flags.bpffs.empty()) {
    // Maps pinned by an earlier agent may hold this node's state: adopt it so
    // the first apply writes only the differences (established connections
    // keep their backends).
    options.adopt = [](dpv2::agent::ClusterView& view, dpv2::Backend& backend) -> absl::Status {
      absl::StatusOr<dpv2::ChangeBatch> held = backend.DumpState();
      if (!held.ok()) {
        return held.status();
      }
      return view.Adopt(*held);
    };
  }
  return dpv2::MakeEbpfBackend({.config = options.lb.datapath,
                                .pin_path = flags.bpffs,
                                .attach_to_endpoints = true,
                                .external_ifindex = external,
                                .xdp = flags.xdp,
                                .host_routing = flags.host_routing,
                                .checksum = EbpfChecksumOf(flags.checksum)});
#else
  return absl::UnimplementedError("flag --backend=ebpf: this build has no eBPF backend");
#endif
}

absl::StatusOr<AgentOptions> OptionsFromFlags(const AgentFlags& flags) {
  AgentOptions o{.node_name = flags.node,
                 .manifests = flags.manifests,
                 .control_socket = flags.control_socket,
                 .policy_log = flags.policy_log};
  o.lb.datapath = flags.datapath;  // one config for the view and the backend
  if (!flags.kubeconfig.empty() || flags.in_cluster) {
    absl::StatusOr<dpv2::agent::apiserver::ClientConfig> config =
        flags.in_cluster ? dpv2::agent::apiserver::LoadInClusterConfig()
                         : dpv2::agent::apiserver::LoadKubeconfig(flags.kubeconfig);
    if (!config.ok()) {
      return config.status();
    }
    o.api_watches = dpv2::agent::daemon::WatchAll(*config);
  }
  if (!flags.metrics_address.empty()) {
    auto a = dpv2::agent::daemon::ParseListenAddress(flags.metrics_address, "metrics-address");
    if (!a.ok()) {
      return a.status();
    }
    o.metrics_address = *a;
  }
  if (!flags.healthz_address.empty()) {
    auto a = dpv2::agent::daemon::ParseListenAddress(flags.healthz_address, "healthz-address");
    if (!a.ok()) {
      return a.status();
    }
    o.healthz_address = *a;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<AgentFlags> flags = dpv2::agent::daemon::ParseAgentFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "dpv2-agent: " << flags.status().message() << "\n"
              << dpv2::agent::daemon::AgentUsage();
    return 2;
  }
  if (flags->help) {
    std::cout << dpv2::agent::daemon::AgentUsage();
    return 0;
  }
  StructuredLog log(flags->log_format);
  auto fail = [&log](absl::string_view what, const absl::Status& status) {
    log.Error(what, {{"error", std::string(status.message())}});
    return 1;
  };

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<AgentOptions> options = OptionsFromFlags(*flags);
  if (!options.ok()) {
    return fail("bad configuration", options.status());
  }
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> backend = MakeBackend(*flags, *options);
  if (!backend.ok()) {
    return fail("backend not created", backend.status());
  }
#if DPV2_HAVE_EBPF
  // What the eBPF datapath runs on this kernel, once: a fallback (helper
  // checksums, host routing off) is visible here, not only in the figures.
  if (absl::StatusOr<dpv2::EbpfLoadReport> loaded = dpv2::EbpfLoadReportOf(**backend);
      loaded.ok()) {
    log.Info("ebpf datapath loaded",
             {{"tc_checksum", loaded->in_place_checksum ? "in-place" : "helpers"},
              {"host_routing", loaded->host_routing ? "on" : "off"},
              {"redirect_neigh", loaded->redirect_neigh ? "on" : "off"}});
    for (const std::string& note : loaded->notes) {
      log.Warn("ebpf datapath", {{"note", note}});
    }
  }
#endif
  if (flags->once) {
    options->control_socket.clear();
    options->metrics_address.reset();
    options->healthz_address.reset();
  }
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Create(*std::move(options), backend->get(), &log);
  if (!agent.ok()) {
    return fail("agent not created", agent.status());
  }
  if (flags->once) {
    absl::Status s = (*agent)->ReconcileOnce();
    (*agent)->Stop();
    if (!s.ok()) {
      return fail("reconcile failed", s);
    }
    log.Info("reconciled once", {{"node", flags->node}});
    return 0;
  }
  if (absl::Status s = (*agent)->Start(); !s.ok()) {
    (*agent)->Stop();
    return fail("agent not started", s);
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log.Info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*agent)->Stop();
  agent->reset();
  backend->reset();  // a pinned eBPF datapath stays attached and keeps forwarding
  return 0;
}
