// peerbench: dpv2 against kube-proxy's iptables and nftables modes and plain
// routing, side by side in one run on this machine (issue 7, PERF.md P1-P3,
// P6-P8). Every system gets its own node namespace between a client pod and
// a server pod, programmed with the same N Services x M endpoints; the
// measures interleave the systems round by round so that a noisy machine
// disturbs them alike.
//
//   peerbench all --quick --plot-dir=/tmp/plots
//   peerbench latency --services=1000,10000,30000 --endpoints=10
//   peerbench memory --systems=dpv2-ebpf --dpv2-entries=100000,1000000
//   peerbench rate --services=10000 --systems=plain,iptables-legacy,dpv2-ebpf,dpv2-ebpf-stack
//   peerbench nodeport --services=10000 --systems=plain,iptables-legacy,dpv2-ebpf,dpv2-xdp
//
// dpv2-ebpf is dpv2 as deployed (BPF host routing on); dpv2-ebpf-stack is
// the same with EbpfOptions::host_routing off (the node's stack forwards);
// dpv2-xdp also has its XDP program on the node's external device, and
// runs in the nodeport measure only (XDP serves no pod traffic).
// Ratios are peer / dpv2 for costs (above 1: dpv2 is cheaper) and
// dpv2 / peer for rates (above 1: dpv2 is faster); the nodeport measure's
// are dpv2-xdp / peer.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "kube_proxy_rules.h"
#include "measure.h"
#include "netlab/netlab.h"
#include "systems.h"

namespace dpv2::bench {
namespace {

struct Flags {
  std::string command = "all";
  bool quick = false;
  std::vector<uint32_t> services;
  uint32_t endpoints = 0;
  std::vector<SystemKind> systems;
  std::vector<uint64_t> dpv2_entries;
  std::string plot_dir;
  int connections = 0;   // new connections per system per round
  int rounds = 0;
  int changes = 0;       // control-plane repetitions
  double rate_seconds = 0;
  uint32_t maglev = 1021;
  bool dpv2_local_endpoints = false;  // PeerSystemOptions::local_endpoints
  // iptables-nft's restore time grows faster than linearly (272 s for 3,000
  // Services x 4 here): above this size it is left out, saying so.
  uint32_t iptables_nft_max = 3000;
};

bool Wants(const Flags& f, absl::string_view measure) {
  return f.command == "all" || f.command == measure;
}

// The measures that run in the ClusterIP lab (the client a pod of the node).
bool WantsClusterIpLab(const Flags& f) {
  return Wants(f, "latency") || Wants(f, "rate") || Wants(f, "control") || Wants(f, "memory");
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && !absl::StartsWith(args[0], "--")) {
    f.command = args[0];
    args.erase(args.begin());
  }
  if (f.command != "all" && f.command != "latency" && f.command != "rate" &&
      f.command != "control" && f.command != "memory" && f.command != "nodeport") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", f.command,
                     "\": one of latency, rate, control, memory, nodeport, all"));
  }
  for (const std::string& a : args) {
    if (a == "--quick") {
      f.quick = true;
    }
  }
  // Defaults: the full sweep, or a couple of minutes with --quick.
  f.services = f.quick ? std::vector<uint32_t>{10, 1000}
                       : std::vector<uint32_t>{100, 1000, 5000, 10000, 30000};
  f.endpoints = f.quick ? 4 : 10;
  f.connections = f.quick ? 60 : 200;
  f.rounds = f.quick ? 3 : 5;
  f.changes = f.quick ? 5 : 20;
  f.rate_seconds = f.quick ? 0.3 : 1.0;
  f.dpv2_entries = f.quick ? std::vector<uint64_t>{} : std::vector<uint64_t>{100000, 1000000};
  f.systems = {SystemKind::kPlain,    SystemKind::kIptablesNft, SystemKind::kIptablesLegacy,
               SystemKind::kNftables, SystemKind::kDpv2,        SystemKind::kDpv2Xdp};
  for (const std::string& a : args) {
    std::vector<std::string> kv = absl::StrSplit(a, absl::MaxSplits('=', 1));
    const std::string& key = kv[0];
    const std::string value = kv.size() > 1 ? kv[1] : "";
    auto number_list = [&](auto* out) -> absl::Status {
      out->clear();
      for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        uint64_t n = 0;
        if (!absl::SimpleAtoi(item, &n) || n == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(key, ": \"", item, "\" is not a positive number"));
        }
        out->push_back(n);
      }
      return absl::OkStatus();
    };
    auto number = [&](auto* out) -> absl::Status {
      bool parsed = false;
      if constexpr (std::is_floating_point_v<std::remove_pointer_t<decltype(out)>>) {
        parsed = absl::SimpleAtod(value, out);
      } else {
        parsed = absl::SimpleAtoi(value, out);
      }
      if (!parsed || *out <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": \"", value, "\" is not a positive number"));
      }
      return absl::OkStatus();
    };
    if (key == "--quick") {
      continue;
    } else if (key == "--services") {
      DPV2_RETURN_IF_ERROR(number_list(&f.services));
      f.dpv2_entries.clear();  // a chosen sweep replaces the default dpv2-only one
    } else if (key == "--dpv2-entries") {
      DPV2_RETURN_IF_ERROR(number_list(&f.dpv2_entries));
    } else if (key == "--endpoints") {
      DPV2_RETURN_IF_ERROR(number(&f.endpoints));
    } else if (key == "--connections") {
      DPV2_RETURN_IF_ERROR(number(&f.connections));
    } else if (key == "--rounds") {
      DPV2_RETURN_IF_ERROR(number(&f.rounds));
    } else if (key == "--changes") {
      DPV2_RETURN_IF_ERROR(number(&f.changes));
    } else if (key == "--rate-seconds") {
      DPV2_RETURN_IF_ERROR(number(&f.rate_seconds));
    } else if (key == "--iptables-nft-max") {
      DPV2_RETURN_IF_ERROR(number(&f.iptables_nft_max));
    } else if (key == "--maglev") {
      DPV2_RETURN_IF_ERROR(number(&f.maglev));
    } else if (key == "--dpv2-local-endpoints") {
      f.dpv2_local_endpoints = true;
    } else if (key == "--plot-dir") {
      f.plot_dir = value;
    } else if (key == "--systems") {
      f.systems.clear();
      for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        std::optional<SystemKind> k = ParseSystemName(name);
        if (!k) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--systems: unknown system \"", name,
              "\" (plain, iptables-nft, iptables-legacy, nftables, dpv2-ebpf, dpv2-ebpf-stack, "
              "dpv2-xdp)"));
        }
        f.systems.push_back(*k);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", a));
    }
  }
  if (f.services.empty() && f.dpv2_entries.empty()) {
    return absl::InvalidArgumentError("--services: no size to measure");
  }
  return f;
}

// What one system measured at one size.
struct Result {
  bool ok = false;
  std::string error;
  double load_ms = 0;
  double startup_ms = 0;  // before the first Service (dpv2: BPF load and attach)
  Samples connect_us;
  Samples rate;         // requests/s, one sample per round
  Samples packet_rate;  // frames/s through the node on one CPU, one per round
  Samples add_program_ms, add_visible_ms;
  Samples change_program_ms, change_visible_ms;
  Samples change_agent_ms, change_apply_ms;  // dpv2: ClusterView / ApplyTo
  Samples change_datapath_ms;                 // dpv2: Backend::Apply within ApplyTo
  std::pair<double, double> load_split;       // dpv2: ClusterView / ApplyTo
  double load_datapath_ms = 0;                // dpv2: Backend::Apply within ApplyTo
  int lost = 0;                               // connections without an answer
  int64_t kernel_bytes = 0;
  int64_t map_bytes = 0;
  std::vector<BpfMapMemory> maps;  // dpv2: by map name
  int64_t agent_bytes = 0;
  uint64_t text_bytes = 0;
  uint64_t entries = 0;  // service-backend entries
  uint64_t objects = 0;  // Services + EndpointSlices
};

using Results = std::map<std::pair<uint32_t, SystemKind>, Result>;

IpAddr V4(Ipv4 a) { return IpAddr::V4(a); }

// The probe of a system: what a client connects to for Service `i`: its
// ClusterIP, or in the NodePort lab the node's address and its nodePort.
std::pair<IpAddr, uint16_t> Target(const PeerSystem& system, const BenchServices& set, size_t i,
                                   std::mt19937& rng, bool nodeport = false) {
  const BenchService& s = set.services[i];
  if (system.translates()) {
    return nodeport ? std::pair{V4(set.plan.node_ip), s.node_port}
                    : std::pair{V4(s.cluster_ip), s.port};
  }
  const BenchEndpoint& ep = s.endpoints[rng() % s.endpoints.size()];
  return {V4(ep.ip), ep.port};
}

class Bench {
 public:
  explicit Bench(Flags flags) : flags_(std::move(flags)) {}

  int Run() {
    std::printf("# peerbench %s%s\nmachine: %s\n", flags_.command.c_str(),
                flags_.quick ? " --quick" : "", MachineDescription().c_str());
    std::printf("IPVS: not measured: this kernel has no ip_vs module (/proc/net/ip_vs absent)\n");
    std::printf("endpoints per Service: %u; dpv2 Maglev table size %u\n", flags_.endpoints,
                flags_.maglev);
    if (WantsClusterIpLab(flags_)) {
      std::printf("ClusterIP lab: the client is a pod of the node; dpv2 endpoints: %s\n",
                  flags_.dpv2_local_endpoints
                      ? "local Pods on the server pod's veth (delivered by the program)"
                      : "behind the node's uplink (routed by the kernel after NAT)");
    }
    if (Wants(flags_, "nodeport")) {
      std::printf(
          "nodeport lab: a host outside the node on its link ext0 sends to %s:nodePort; "
          "the first %u Services are NodePorts (externalTrafficPolicy Cluster) whose "
          "endpoints are local Pods (dpv2: delivered to the pod's veth, not SNATed; "
          "kube-proxy masquerades them, as Cluster policy does); dpv2-xdp: XDP on ext0\n",
          FormatIpv4(AddressPlan{}.node_ip).c_str(), kNodePortRange);
    }
    // Each size's tables print as soon as it is measured, so that a long
    // sweep cut short still leaves its results; all sizes print at the end.
    for (uint32_t n : flags_.services) {
      if (WantsClusterIpLab(flags_)) {
        RunSize(n, flags_.systems, /*nodeport=*/false);
      }
      if (Wants(flags_, "nodeport")) {
        RunSize(n, flags_.systems, /*nodeport=*/true);
      }
      PrintTables(n);
    }
    for (uint64_t entries :
         WantsClusterIpLab(flags_) ? flags_.dpv2_entries : std::vector<uint64_t>{}) {
      const uint32_t n = std::max<uint64_t>(1, entries / flags_.endpoints);
      std::vector<SystemKind> dpv2;
      std::copy_if(flags_.systems.begin(), flags_.systems.end(), std::back_inserter(dpv2),
                   [](SystemKind k) { return IsDpv2(k) && k != SystemKind::kDpv2Xdp; });
      RunSize(n, dpv2.empty() ? std::vector<SystemKind>{SystemKind::kDpv2} : dpv2,
              /*nodeport=*/false);
      PrintTables(n);
    }
    std::printf("\n# All sizes\n");
    PrintTables(std::nullopt);
    WritePlots();
    int failures = 0;
    for (const Results* results : {&results_, &nodeport_}) {
      for (const auto& [key, r] : *results) {
        if (!r.ok) {
          std::printf("FAILED %s at %u Services%s: %s\n", SystemName(key.second).c_str(), key.first,
                      results == &nodeport_ ? " (nodeport)" : "", r.error.c_str());
          ++failures;
        }
      }
    }
    return failures == 0 ? 0 : 1;
  }

 private:
  // The NodePort Service the nodeport measure sends to: the middle one of
  // KUBE-NODEPORTS.
  static size_t NodePortService(uint32_t n) { return std::min(n, kNodePortRange) / 2; }

  // Builds `kinds` with n Services and runs the wanted measures of one lab:
  // the ClusterIP lab (latency, rate, control, memory) or the NodePort lab
  // (nodeport), where every Service the nodePort range holds is a NodePort.
  void RunSize(uint32_t n, const std::vector<SystemKind>& kinds, bool nodeport) {
    std::fprintf(stderr, "[%s] %u Services x %u endpoints, %s lab: building\n",
                 absl::FormatTime("%H:%M:%S", absl::Now(), absl::UTCTimeZone()).c_str(), n,
                 flags_.endpoints, nodeport ? "NodePort" : "ClusterIP");
    // Service 0 is the control-plane probe: one endpoint, so that which
    // endpoint serves it is what the change made it.
    BenchServices set = MakeBenchServices(
        {.services = n, .endpoints = flags_.endpoints, .node_ports = nodeport ? n : 0});
    set.services[0].endpoints.resize(1);
    Results& results = nodeport ? nodeport_ : results_;
    std::vector<std::unique_ptr<PeerSystem>> systems;
    for (SystemKind kind : kinds) {
      if (kind == SystemKind::kDpv2Xdp && !nodeport) {
        continue;  // XDP serves no pod traffic: the nodeport measure's system
      }
      if (kind == SystemKind::kIptablesNft && n > flags_.iptables_nft_max) {
        std::printf("iptables-nft left out at %u Services (--iptables-nft-max=%u): its restore "
                    "time grows faster than linearly\n",
                    n, flags_.iptables_nft_max);
        continue;
      }
      Result& r = results[{n, kind}];
      r.entries = set.EndpointCount();
      r.objects = 2 * set.services.size();
      absl::Status st = Build(kind, set, nodeport ? NodePortService(n) : set.services.size() - 1,
                              nodeport, r, systems);
      r.ok = st.ok();
      if (!st.ok()) {
        r.error = std::string(st.message());
        std::fprintf(stderr, "  %s: %s\n", SystemName(kind).c_str(), r.error.c_str());
      }
    }
    if (nodeport) {
      MeasureNodePort(n, set, systems);
      return;
    }
    if (Wants(flags_, "latency") || Wants(flags_, "memory")) {
      MeasureLatency(n, set, systems);
    }
    if (Wants(flags_, "rate")) {
      MeasureRate(n, set, systems);
    }
    if (Wants(flags_, "control")) {
      MeasureControl(n, set, systems);
    }
  }

  // Makes and programs one system; a first connection to Service `probe`
  // must be answered.
  absl::Status Build(SystemKind kind, const BenchServices& set, size_t probe, bool nodeport,
                     Result& r, std::vector<std::unique_ptr<PeerSystem>>& systems) {
    DPV2_ASSIGN_OR_RETURN(std::unique_ptr<PeerSystem> system,
                          MakePeerSystem(kind, {.maglev_table_size = flags_.maglev,
                                                .local_endpoints = flags_.dpv2_local_endpoints,
                                                .nodeport = nodeport}));
    DPV2_ASSIGN_OR_RETURN(const int64_t before, KernelMemoryBytes());
    const absl::Time start = absl::Now();
    DPV2_RETURN_IF_ERROR(system->Program(set, nullptr));
    r.load_ms = system->load_ms().value_or(absl::ToDoubleMilliseconds(absl::Now() - start));
    r.startup_ms = system->startup_ms();
    r.load_split = system->last_agent_and_apply_ms();
    r.load_datapath_ms = system->last_datapath_ms();
    DPV2_ASSIGN_OR_RETURN(const int64_t after, KernelMemoryBytes());
    r.kernel_bytes = after - before;
    r.text_bytes = system->last_text_bytes();
    r.agent_bytes = system->agent_bytes();
    DPV2_ASSIGN_OR_RETURN(r.maps, system->Maps());
    r.map_bytes = 0;
    for (const BpfMapMemory& m : r.maps) {
      r.map_bytes += m.memlock_bytes;
    }
    // The first connection proves the system forwards before it is timed.
    std::mt19937 rng(1);
    auto [addr, port] = Target(*system, set, probe, rng, nodeport);
    absl::Status first;
    for (int attempt = 0; attempt < 3; ++attempt) {
      first = ConnectOnce(system->lab().client.netns(), addr, port).status();
      if (first.ok()) {
        break;
      }
    }
    DPV2_RETURN_IF_ERROR(first);
    std::fprintf(stderr, "  %s: loaded in %.1f ms\n", system->name().c_str(), r.load_ms);
    systems.push_back(std::move(system));
    return absl::OkStatus();
  }

  void Fail(Result& r, const absl::Status& st) {
    if (r.ok) {
      r.ok = false;
      r.error = std::string(st.message());
    }
  }

  void MeasureLatency(uint32_t n, const BenchServices& set,
                      std::vector<std::unique_ptr<PeerSystem>>& systems) {
    std::mt19937 rng(n);
    for (int round = 0; round < flags_.rounds; ++round) {
      for (auto& system : systems) {
        Result& r = results_[{n, system->kind()}];
        for (int c = 0; c < flags_.connections && r.ok; ++c) {
          auto [addr, port] = Target(*system, set, rng() % set.services.size(), rng);
          absl::StatusOr<absl::Duration> t =
              ConnectOnce(system->lab().client.netns(), addr, port);
          if (!t.ok()) {
            // A lost SYN on a loaded machine is counted, not fatal; a
            // system that loses many does not work.
            if (++r.lost > flags_.connections) {
              Fail(r, t.status());
            }
            continue;
          }
          r.connect_us.Add(absl::ToDoubleMicroseconds(*t));
        }
      }
    }
  }

  void MeasureRate(uint32_t n, const BenchServices& set,
                   std::vector<std::unique_ptr<PeerSystem>>& systems) {
    std::mt19937 rng(n + 1);
    const size_t service = set.services.size() / 2;
    for (int round = 0; round < flags_.rounds; ++round) {
      for (auto& system : systems) {
        Result& r = results_[{n, system->kind()}];
        if (!r.ok) {
          continue;
        }
        auto [addr, port] = Target(*system, set, service, rng);
        absl::StatusOr<double> rate =
            RequestRate(system->lab().client.netns(), addr, port, 4,
                        absl::Milliseconds(flags_.rate_seconds * 1000));
        if (!rate.ok()) {
          ++r.lost;  // a round without an answer in time; the others count
          continue;
        }
        r.rate.Add(*rate);
        AddPacketRate(*system, addr, port, round, r);
      }
    }
  }

  // One round of the packet rate of `system` to addr:port into r.packet_rate.
  void AddPacketRate(const PeerSystem& system, const IpAddr& addr, uint16_t port, int round,
                     Result& r) {
    // A new flow each round and system, so that its first frame makes the
    // state and the rest are established.
    absl::StatusOr<double> packets =
        PacketRate(system.lab().client, system.lab().server, addr, port,
                   static_cast<uint16_t>(40000 + round * 16 + static_cast<int>(system.kind())),
                   absl::Milliseconds(flags_.rate_seconds * 1000));
    if (!packets.ok()) {
      std::fprintf(stderr, "  %s: %s\n", system.name().c_str(),
                   std::string(packets.status().message()).c_str());
      ++r.lost;
      return;
    }
    r.packet_rate.Add(*packets);
  }

  // The packet rate of one established flow from the client outside the
  // node to the node's address and a nodePort (plain routing: straight to
  // an endpoint, the floor), round by round as MeasureRate.
  void MeasureNodePort(uint32_t n, const BenchServices& set,
                       std::vector<std::unique_ptr<PeerSystem>>& systems) {
    std::mt19937 rng(n + 2);
    for (int round = 0; round < flags_.rounds; ++round) {
      for (auto& system : systems) {
        Result& r = nodeport_[{n, system->kind()}];
        if (!r.ok) {
          continue;
        }
        auto [addr, port] = Target(*system, set, NodePortService(n), rng, /*nodeport=*/true);
        AddPacketRate(*system, addr, port, round, r);
      }
    }
  }

  void MeasureControl(uint32_t n, BenchServices set,
                      std::vector<std::unique_ptr<PeerSystem>>& systems) {
    const AddressPlan& plan = set.plan;
    for (int rep = 0; rep < flags_.changes; ++rep) {
      // One more Service, with endpoints on server "a".
      BenchServices added =
          MakeBenchServices({.services = 1, .endpoints = flags_.endpoints,
                             .first = static_cast<uint32_t>(n + rep)});
      set.services.push_back(added.services[0]);
      const SetChange add{.services = {set.services.size() - 1}};
      // The probe Service's one endpoint moves to a fresh address served by
      // the other echo server.
      const BenchService before = set.services[0];
      const bool to_b = rep % 2 == 0;
      set.services[0].endpoints[0] = {
          .ip = plan.endpoint_base + 0x300000 + static_cast<Ipv4>(rep),
          .port = static_cast<uint16_t>(plan.target_port + (to_b ? 1 : 0))};
      const SetChange change{.services = {0}, .removed = {{before, before.endpoints[0]}}};
      for (auto& system : systems) {
        Result& r = results_[{n, system->kind()}];
        if (!r.ok || !system->translates()) {
          continue;
        }
        absl::Status st = Timed(*system, set, add, V4(set.services.back().cluster_ip), "a",
                                r.add_program_ms, r.add_visible_ms);
        if (st.ok()) {
          st = Timed(*system, set, change, V4(set.services[0].cluster_ip), to_b ? "b" : "a",
                     r.change_program_ms, r.change_visible_ms, &r.change_agent_ms,
                     &r.change_apply_ms, &r.change_datapath_ms);
        }
        if (!st.ok()) {
          Fail(r, st);
        }
      }
    }
  }

  // Applies `change` and polls the Service at `vip` with new connections
  // until the server named `server` answers.
  absl::Status Timed(PeerSystem& system, const BenchServices& set, const SetChange& change,
                     const IpAddr& vip, const std::string& server, Samples& program_ms,
                     Samples& visible_ms, Samples* agent_ms = nullptr,
                     Samples* apply_ms = nullptr, Samples* datapath_ms = nullptr) {
    const absl::Time start = absl::Now();
    DPV2_RETURN_IF_ERROR(system.Program(set, &change));
    program_ms.Add(absl::ToDoubleMilliseconds(absl::Now() - start));
    if (agent_ms != nullptr) {
      auto [agent, apply] = system.last_agent_and_apply_ms();
      agent_ms->Add(agent);
      apply_ms->Add(apply);
      datapath_ms->Add(system.last_datapath_ms());
    }
    DPV2_ASSIGN_OR_RETURN(absl::Duration visible,
                          WaitServedBy(system.lab().client.netns(), vip, set.plan.service_port,
                                       server, start, absl::Seconds(30)));
    visible_ms.Add(absl::ToDoubleMilliseconds(visible));
    return absl::OkStatus();
  }

  std::vector<uint32_t> Sizes() const {
    std::set<uint32_t> sizes;
    for (const Results* results : {&results_, &nodeport_}) {
      for (const auto& [key, r] : *results) {
        sizes.insert(key.first);
      }
    }
    return {sizes.begin(), sizes.end()};
  }

  const Result* Find(uint32_t n, SystemKind kind) const {
    auto it = results_.find({n, kind});
    return it == results_.end() || !it->second.ok ? nullptr : &it->second;
  }

  // The cell "ratio of peer to dpv2" for a cost, or dpv2 to peer for a rate.
  // A system that failed a later measure still has ratios for the ones it
  // completed (a missing figure is 0 and shows as "-").
  std::string RatioCell(uint32_t n, SystemKind kind, double (*value)(const Result&),
                        bool is_rate) const {
    return RatioCellOf(results_, SystemKind::kDpv2, n, kind, value, is_rate);
  }
  // The same against `reference` among `results`.
  static std::string RatioCellOf(const Results& results, SystemKind reference, uint32_t n,
                                 SystemKind kind, double (*value)(const Result&), bool is_rate) {
    auto d = results.find({n, reference});
    auto p = results.find({n, kind});
    if (d == results.end() || p == results.end() || kind == reference) {
      return "-";
    }
    return is_rate ? Ratio(value(d->second), value(p->second))
                   : Ratio(value(p->second), value(d->second));
  }

  // Kernel bytes per added service-backend entry from the next smaller
  // size of the same system: the fixed cost (preallocated maps, empty
  // tables) drops out.
  std::string Slope(uint32_t n, SystemKind kind) const {
    const Result* cur = Find(n, kind);
    const Result* prev = nullptr;
    for (const auto& [key, r] : results_) {
      if (key.second == kind && key.first < n && r.ok) {
        prev = &r;
      }
    }
    if (cur == nullptr || prev == nullptr || cur->entries <= prev->entries) {
      return "-";
    }
    return FormatDouble(static_cast<double>(cur->kernel_bytes - prev->kernel_bytes) /
                            (cur->entries - prev->entries),
                        0);
  }

  void PrintTables(std::optional<uint32_t> only) {
    std::vector<uint32_t> sizes = Sizes();
    if (only) {
      sizes = {*only};
    }
    const auto rows = [&](const Results& results, auto&& add_row) {
      for (uint32_t n : sizes) {
        for (SystemKind kind :
             {SystemKind::kPlain, SystemKind::kIptablesNft, SystemKind::kIptablesLegacy,
              SystemKind::kNftables, SystemKind::kDpv2, SystemKind::kDpv2StackRouting,
              SystemKind::kDpv2Xdp}) {
          auto it = results.find({n, kind});
          if (it != results.end()) {
            add_row(n, kind, it->second);
          }
        }
      }
    };
    const auto status = [](const Result& r) { return r.ok ? std::string() : " (failed)"; };
    if (Wants(flags_, "latency")) {
      Table t("New-connection latency to a random ClusterIP: connect() until established, us "
              "(ratio = peer / dpv2; plain = endpoint addresses, no Service)",
              {"Services", "system", "p50", "p99", "samples", "lost", "p50 ratio", "p99 ratio"});
      rows(results_, [&](uint32_t n, SystemKind kind, const Result& r) {
        t.AddRow({absl::StrCat(n), SystemName(kind) + status(r),
                  FormatDouble(r.connect_us.Percentile(50), 1),
                  FormatDouble(r.connect_us.Percentile(99), 1), absl::StrCat(r.connect_us.size()),
                  absl::StrCat(r.lost),
                  RatioCell(n, kind, [](const Result& x) { return x.connect_us.Percentile(50); },
                            false),
                  RatioCell(n, kind, [](const Result& x) { return x.connect_us.Percentile(99); },
                            false)});
      });
      std::printf("%s", t.ToString().c_str());
    }
    if (Wants(flags_, "rate")) {
      Table t("Established-flow request rate through the node: 4 connections, 1 request in "
              "flight each, median of rounds (ratio = dpv2 / peer)",
              {"Services", "system", "requests/s", "ratio"});
      rows(results_, [&](uint32_t n, SystemKind kind, const Result& r) {
        if (r.rate.empty() && r.ok) {
          return;
        }
        t.AddRow({absl::StrCat(n), SystemName(kind) + status(r), FormatDouble(r.rate.Median(), 0),
                  RatioCell(n, kind, [](const Result& x) { return x.rate.Median(); }, true)});
      });
      std::printf("%s", t.ToString().c_str());
    }
    if (Wants(flags_, "rate")) {
      Table t("Established-flow packet rate through the node on one CPU: one flow's TCP ACK "
              "frames from AF_PACKET in the client pod, dropped at the server pod's tc "
              "ingress, median of rounds (ratio = dpv2 / peer)",
              {"Services", "system", "frames/s", "ns per frame", "ratio"});
      rows(results_, [&](uint32_t n, SystemKind kind, const Result& r) {
        if (r.packet_rate.empty()) {
          return;
        }
        t.AddRow({absl::StrCat(n), SystemName(kind) + status(r),
                  FormatDouble(r.packet_rate.Median(), 0),
                  FormatDouble(1e9 / r.packet_rate.Median(), 0),
                  RatioCell(n, kind, [](const Result& x) { return x.packet_rate.Median(); },
                            true)});
      });
      std::printf("%s", t.ToString().c_str());
    }
    if (Wants(flags_, "nodeport")) {
      Table t(
          "NodePort established-flow packet rate through the node on one CPU: one flow's "
          "TCP ACK frames from AF_PACKET on a host outside the node to the node's address "
          "and a nodePort (plain: to an endpoint), dropped at the server pod's tc ingress, "
          "median of rounds (ratio = dpv2-xdp / peer)",
          {"Services", "system", "frames/s", "ns per frame", "ratio"});
      rows(nodeport_, [&](uint32_t n, SystemKind kind, const Result& r) {
        if (r.packet_rate.empty() && r.ok) {
          return;
        }
        t.AddRow({absl::StrCat(n), SystemName(kind) + status(r),
                  FormatDouble(r.packet_rate.Median(), 0),
                  r.packet_rate.empty() ? "-" : FormatDouble(1e9 / r.packet_rate.Median(), 0),
                  RatioCellOf(
                      nodeport_, SystemKind::kDpv2Xdp, n, kind,
                      [](const Result& x) { return x.packet_rate.Median(); }, true)});
      });
      std::printf("%s", t.ToString().c_str());
    }
    if (Wants(flags_, "control")) {
      Table t("Control plane, ms: full load (program call); add one Service and move one "
              "endpoint: program call returned / first new connection served by the change "
              "(p50 / p99)",
              {"Services", "system", "startup", "load", "add: program", "add: visible", "endpoint: program",
               "endpoint: visible", "visible p99 ratio",
               "dpv2 agent / apply (of it datapath): load; endpoint p50"});
      const auto pair = [](const Samples& s) {
        return s.empty() ? std::string("-")
                         : absl::StrCat(FormatDouble(s.Percentile(50), 2), " / ",
                                        FormatDouble(s.Percentile(99), 2));
      };
      rows(results_, [&](uint32_t n, SystemKind kind, const Result& r) {
        if (kind == SystemKind::kPlain) {
          return;
        }
        t.AddRow({absl::StrCat(n), SystemName(kind) + status(r),
                  r.startup_ms > 0 ? FormatDouble(r.startup_ms, 1) : "-",
                  FormatDouble(r.load_ms, 1), pair(r.add_program_ms), pair(r.add_visible_ms), pair(r.change_program_ms),
                  pair(r.change_visible_ms),
                  RatioCell(n, kind,
                            [](const Result& x) { return x.change_visible_ms.Percentile(99); },
                            false),
                  !IsDpv2(kind)
                      ? "-"
                      : absl::StrCat(FormatDouble(r.load_split.first, 1), " / ",
                                     FormatDouble(r.load_split.second, 1), " (",
                                     FormatDouble(r.load_datapath_ms, 1), "); ",
                                     FormatDouble(r.change_agent_ms.Median(), 2), " / ",
                                     FormatDouble(r.change_apply_ms.Median(), 2), " (",
                                     FormatDouble(r.change_datapath_ms.Median(), 2), ")")});
      });
      std::printf("%s", t.ToString().c_str());
    }
    if (Wants(flags_, "memory")) {
      Table t("Memory: kernel = SUnreclaim+Percpu+VmallocUsed growth while loading (noisy on a "
              "shared machine); per entry = kernel bytes / service-backend entries",
              {"Services", "entries", "system", "kernel MiB", "per entry B",
               "slope B/entry", "rule text KiB",
               "BPF maps MiB", "agent RSS MiB", "agent B/object"});
      rows(results_, [&](uint32_t n, SystemKind kind, const Result& r) {
        if (kind == SystemKind::kPlain) {
          return;
        }
        const double mib = 1024.0 * 1024.0;
        t.AddRow({absl::StrCat(n), absl::StrCat(r.entries), SystemName(kind) + status(r),
                  FormatDouble(r.kernel_bytes / mib, 1),
                  FormatDouble(static_cast<double>(r.kernel_bytes) / r.entries, 0),
                  Slope(n, kind), r.text_bytes ? FormatDouble(r.text_bytes / 1024.0, 0) : "-",
                  r.map_bytes ? FormatDouble(r.map_bytes / mib, 1) : "-",
                  r.agent_bytes ? FormatDouble(r.agent_bytes / mib, 1) : "-",
                  r.agent_bytes ? FormatDouble(static_cast<double>(r.agent_bytes) / r.objects, 0)
                                : "-"});
      });
      std::printf("%s", t.ToString().c_str());
      // Where dpv2's map memory is: preallocated maps cost the same empty
      // or full (fixed cost, sized by the configuration); the others grow
      // with what they hold.
      Table maps("dpv2 BPF maps: memlock (the kernel's account) by map; per entry = memlock / "
                 "service-backend entries",
                 {"Services", "entries", "map", "allocation", "max entries", "memlock KiB",
                  "per entry B"});
      rows(results_, [&](uint32_t n, SystemKind, const Result& r) {
        for (const BpfMapMemory& m : r.maps) {
          maps.AddRow({absl::StrCat(n), absl::StrCat(r.entries),
                       m.maps > 1 ? absl::StrCat(m.name, " (x", m.maps, ")") : m.name,
                       m.preallocated ? "fixed" : "grows",
                       absl::StrCat(m.max_entries), FormatDouble(m.memlock_bytes / 1024.0, 0),
                       FormatDouble(static_cast<double>(m.memlock_bytes) / r.entries, 1)});
        }
      });
      if (!maps.empty()) {
        std::printf("%s", maps.ToString().c_str());
      }
    }
    std::fflush(stdout);
  }

  std::vector<PlotSeries> Series(double (*value)(const Result&),
                                 const Results* results = nullptr) const {
    std::vector<PlotSeries> out;
    for (SystemKind kind : flags_.systems) {
      PlotSeries s{.name = SystemName(kind)};
      for (const auto& [key, r] : results == nullptr ? results_ : *results) {
        const double v = r.ok ? value(r) : 0;
        if (key.second == kind && v > 0) {
          s.points.push_back({static_cast<double>(key.first), v});
        }
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  void WritePlots() {
    if (flags_.plot_dir.empty()) {
      return;
    }
    std::vector<std::string> messages;
    if (Wants(flags_, "latency")) {
      messages.push_back(WritePlot(
          flags_.plot_dir, "latency_p50", "New-connection latency p50 (connect to a ClusterIP)",
          "microseconds",
          Series([](const Result& r) { return r.connect_us.Percentile(50); }), true));
      messages.push_back(WritePlot(
          flags_.plot_dir, "latency_p99", "New-connection latency p99 (connect to a ClusterIP)",
          "microseconds",
          Series([](const Result& r) { return r.connect_us.Percentile(99); }), true));
    }
    if (Wants(flags_, "rate")) {
      messages.push_back(WritePlot(flags_.plot_dir, "rate", "Established-flow request rate",
                                   "requests per second",
                                   Series([](const Result& r) { return r.rate.Median(); })));
      messages.push_back(
          WritePlot(flags_.plot_dir, "packet_rate", "Established-flow packet rate (one CPU)",
                    "frames per second",
                    Series([](const Result& r) { return r.packet_rate.Median(); })));
    }
    if (Wants(flags_, "nodeport")) {
      messages.push_back(
          WritePlot(flags_.plot_dir, "nodeport_rate",
                    "NodePort established-flow packet rate (one CPU)", "frames per second",
                    Series([](const Result& r) { return r.packet_rate.Median(); }, &nodeport_)));
    }
    if (Wants(flags_, "control")) {
      messages.push_back(WritePlot(flags_.plot_dir, "load", "Time to load every Service",
                                   "milliseconds",
                                   Series([](const Result& r) { return r.load_ms; }), true));
      messages.push_back(WritePlot(
          flags_.plot_dir, "endpoint_change", "One endpoint change until visible to traffic, p99",
          "milliseconds",
          Series([](const Result& r) { return r.change_visible_ms.Percentile(99); }), true));
    }
    if (Wants(flags_, "memory")) {
      messages.push_back(WritePlot(
          flags_.plot_dir, "memory", "Kernel memory of the rules / maps", "MiB",
          Series([](const Result& r) { return r.kernel_bytes / (1024.0 * 1024.0); }), true));
    }
    for (const std::string& m : messages) {
      std::printf("%s\n", m.c_str());
    }
  }

  Flags flags_;
  Results results_;
  Results nodeport_;  // the NodePort lab's systems (nodeport measure)
};

}  // namespace
}  // namespace dpv2::bench

int main(int argc, char** argv) {
  absl::StatusOr<dpv2::bench::Flags> flags = dpv2::bench::ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "peerbench: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (std::optional<int> code = dpv2::netlab::ExitCodeIfUnprivileged("peerbench")) {
    return *code;
  }
  return dpv2::bench::Bench(*std::move(flags)).Run();
}
