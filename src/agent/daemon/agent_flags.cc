#include "agent/daemon/agent_flags.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpv2::agent::daemon {
namespace {

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) {
    return "";
  }
  return buf;
}

absl::Status FlagError(absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("flag --", flag, ": ", why));
}

struct DatapathFlag {
  const char* flag;
  const char* help;
  std::function<uint32_t*(DatapathConfig&)> field;
  uint32_t min = 1;  // sizes and timeouts of 0 make no sense
  uint32_t max = UINT32_MAX;
};

const std::vector<DatapathFlag>& DatapathFlags() {
  static const std::vector<DatapathFlag>* flags = new std::vector<DatapathFlag>{
      {"maglev-table-size", "largest Maglev lookup table, slots (a prime)",
       [](DatapathConfig& c) { return &c.maglev_table_size; }},
      // 0 is meaningful here (every table at --maglev-table-size); the
      // bound is DatapathConfig::Validate's.
      {.flag = "maglev-slots-per-backend",
       .help = "a Service's table: slots per backend, up the size ladder (0: all at the largest)",
       .field = [](DatapathConfig& c) { return &c.maglev_slots_per_backend; },
       .min = 0,
       .max = kMaxMaglevSlotsPerBackend},
      {"max-services", "frontend entries (Service IP:port:protocol)",
       [](DatapathConfig& c) { return &c.max_services; }},
      {"max-backends", "service-backend entries",
       [](DatapathConfig& c) { return &c.max_backends; }},
      {"max-lookup-tables", "Maglev/random lookup tables (one per frontend scope)",
       [](DatapathConfig& c) { return &c.max_tables; }},
      {"ct-tcp-entries", "conntrack entries for TCP",
       [](DatapathConfig& c) { return &c.ct_tcp_entries; }},
      {"ct-other-entries", "conntrack entries for UDP, SCTP, ICMP",
       [](DatapathConfig& c) { return &c.ct_other_entries; }},
      {"max-affinity", "sessionAffinity ClientIP entries",
       [](DatapathConfig& c) { return &c.max_affinity; }},
      {"max-source-ranges", "loadBalancerSourceRanges entries",
       [](DatapathConfig& c) { return &c.max_source_ranges; }},
      {"max-endpoints", "local pod endpoints",
       [](DatapathConfig& c) { return &c.max_endpoints; }},
      {"max-ipcache", "ipcache entries (pod IPs and prefixes to identities)",
       [](DatapathConfig& c) { return &c.max_ipcache; }},
      {"max-policy-entries", "compiled policy entries, all endpoints together",
       [](DatapathConfig& c) { return &c.max_policy_entries; }},
      {"snat-entries", "SNAT entries (two per SNATed NodePort/LB connection)",
       [](DatapathConfig& c) { return &c.snat_entries; }},
      {.flag = "snat-port-min",
       .help = "first source port of SNATed connections",
       .field = [](DatapathConfig& c) { return &c.snat_port_min; },
       .min = 1,
       .max = 65535},
      {.flag = "snat-port-max",
       .help = "last source port of SNATed connections",
       .field = [](DatapathConfig& c) { return &c.snat_port_max; },
       .min = 1,
       .max = 65535},
      {"ct-timeout-tcp-established", "seconds",
       [](DatapathConfig& c) { return &c.timeouts.tcp_established_s; }},
      {"ct-timeout-tcp-syn", "seconds", [](DatapathConfig& c) { return &c.timeouts.tcp_syn_s; }},
      {"ct-timeout-tcp-close", "seconds",
       [](DatapathConfig& c) { return &c.timeouts.tcp_close_s; }},
      {"ct-timeout-non-tcp", "seconds", [](DatapathConfig& c) { return &c.timeouts.non_tcp_s; }},
  };
  return *flags;
}

}  // namespace

std::string ListenAddress::ToString() const {
  if (absl::StrContains(host, ':')) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text,
                                                 absl::string_view flag) {
  ListenAddress out;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return FlagError(flag, absl::StrCat("\"", text, "\" is not [IPv6]:PORT"));
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return FlagError(flag, absl::StrCat("\"", text, "\" is not HOST:PORT"));
    }
    out.host = std::string(text.substr(0, colon));
    if (absl::StrContains(out.host, ':')) {
      return FlagError(flag, absl::StrCat("\"", text, "\": write an IPv6 host in brackets"));
    }
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) {
    return FlagError(flag, absl::StrCat("\"", text, "\" has no host (use 0.0.0.0 for any)"));
  }
  in6_addr scratch;
  if (inet_pton(AF_INET, out.host.c_str(), &scratch) != 1 &&
      inet_pton(AF_INET6, out.host.c_str(), &scratch) != 1) {
    return FlagError(flag, absl::StrCat("host \"", out.host, "\" is not an IP address"));
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return FlagError(flag, absl::StrCat("port \"", port_text, "\" is not 0-65535"));
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

absl::StatusOr<AgentFlags> ParseAgentFlags(const std::vector<std::string>& args) {
  AgentFlags f;
  using Setter = std::function<absl::Status(const std::string&)>;
  auto text = [](std::string* field) -> Setter {
    return [field](const std::string& v) {
      *field = v;
      return absl::OkStatus();
    };
  };
  // One of a few words, each setting the field: errors list them.
  using Choices = std::vector<std::pair<std::string, std::function<void()>>>;
  auto choice = [](std::string flag, Choices choices) -> Setter {
    return [flag, choices](const std::string& v) {
      std::vector<std::string> words;
      for (const auto& [word, set] : choices) {
        if (v == word) {
          set();
          return absl::OkStatus();
        }
        words.push_back(word);
      }
      return FlagError(flag, absl::StrCat("\"", v, "\" is not ", absl::StrJoin(words, " or ")));
    };
  };
  std::map<std::string, Setter> valued = {
      {"backend", choice("backend", {{"sim", [&f] { f.backend = BackendKind::kSim; }},
                                     {"ebpf", [&f] { f.backend = BackendKind::kEbpf; }}})},
      {"node", text(&f.node)},
      {"manifests", text(&f.manifests)},
      {"kubeconfig", text(&f.kubeconfig)},
      {"bpffs", text(&f.bpffs)},
      {"external-interface", text(&f.external_interface)},
      {"control-socket", text(&f.control_socket)},
      {"policy-log", text(&f.policy_log)},
      {"metrics-address", text(&f.metrics_address)},
      {"healthz-address", text(&f.healthz_address)},
      {"checksum",
       choice("checksum", {{"auto", [&f] { f.checksum = TcChecksum::kAuto; }},
                           {"in-place", [&f] { f.checksum = TcChecksum::kInPlace; }},
                           {"helpers", [&f] { f.checksum = TcChecksum::kHelpers; }}})},
      {"log-format", choice("log-format", {{"text", [&f] { f.log_format = LogFormat::kText; }},
                                           {"json", [&f] { f.log_format = LogFormat::kJson; }}})},
  };
  // Datapath sizes and timeouts: whole numbers from 1 to 2^32-1 unless the
  // flag says otherwise. The table names each flag once, for parsing, for
  // errors and for AgentUsage.
  for (const DatapathFlag& d : DatapathFlags()) {
    uint32_t* field = d.field(f.datapath);
    valued[d.flag] = [flag = d.flag, field, min = d.min, max = d.max](const std::string& v) {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(v, &n) || n < min || n > max) {
        return FlagError(flag,
                         absl::StrCat("\"", v, "\" is not a whole number from ", min, " to ", max));
      }
      *field = static_cast<uint32_t>(n);
      return absl::OkStatus();
    };
  }
  std::map<std::string, bool*> switches = {{"in-cluster", &f.in_cluster},
                                           {"xdp", &f.xdp},
                                           {"host-routing", &f.host_routing},
                                           {"once", &f.once},
                                           {"help", &f.help}};

  std::map<std::string, bool> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("argument \"", arg, "\": dpv2-agent takes only --flags"));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "h") {
      name = "help";
    }
    if (seen[name]) {
      return FlagError(name, "given twice");
    }
    seen[name] = true;
    if (auto it = switches.find(name); it != switches.end()) {
      if (value && *value != "true" && *value != "false") {
        return FlagError(name, absl::StrCat("\"", *value, "\" is not true or false"));
      }
      *it->second = !value || *value == "true";
      continue;
    }
    auto it = valued.find(name);
    if (it == valued.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!value) {
      if (i + 1 >= args.size() || absl::StartsWith(args[i + 1], "--")) {
        return FlagError(name, "needs a value");
      }
      value = args[++i];
    }
    if (absl::Status s = it->second(*value); !s.ok()) {
      return s;
    }
  }
  if (f.help) {
    return f;
  }

  std::vector<std::string> sources;
  if (!f.manifests.empty()) sources.push_back("--manifests");
  if (!f.kubeconfig.empty()) sources.push_back("--kubeconfig");
  if (f.in_cluster) sources.push_back("--in-cluster");
  if (sources.empty()) {
    return absl::InvalidArgumentError(
        "no object source: give one of --manifests, --kubeconfig, --in-cluster");
  }
  if (sources.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("one object source only, got ", absl::StrJoin(sources, " and ")));
  }
  if (f.backend != BackendKind::kEbpf) {
    for (auto [flag, set] : {std::pair{"bpffs", !f.bpffs.empty()},
                             std::pair{"external-interface", !f.external_interface.empty()},
                             std::pair{"xdp", f.xdp},
                             std::pair{"host-routing", seen["host-routing"]},
                             std::pair{"checksum", seen["checksum"]}}) {
      if (set) {
        return FlagError(flag, "needs --backend=ebpf");
      }
    }
  }
  if (f.xdp && f.external_interface.empty()) {
    return FlagError("xdp", "needs --external-interface");
  }
  for (auto [flag, value] : {std::pair{"metrics-address", &f.metrics_address},
                             std::pair{"healthz-address", &f.healthz_address}}) {
    if (!value->empty()) {
      if (absl::StatusOr<ListenAddress> a = ParseListenAddress(*value, flag); !a.ok()) {
        return a.status();
      }
    }
  }
  if (!DatapathConfig{.maglev_table_size = f.datapath.maglev_table_size}.Validate().ok()) {
    return FlagError("maglev-table-size",
                     absl::StrCat(f.datapath.maglev_table_size,
                                  " is not a prime (Maglev needs one: 16381, 65521, ...)"));
  }
  if (absl::Status s = f.datapath.Validate(); !s.ok()) {
    return s;  // every field is checked above; kept so a new rule cannot slip by
  }
  if (f.node.empty()) {
    f.node = Hostname();
    if (f.node.empty()) {
      return FlagError("node", "not given and the hostname is unknown");
    }
  }
  return f;
}

absl::StatusOr<AgentFlags> ParseAgentFlags(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    args.emplace_back(argv[i]);
  }
  return ParseAgentFlags(args);
}

std::string AgentUsage() {
  std::string sizes;
  DatapathConfig defaults;
  for (const DatapathFlag& d : DatapathFlags()) {
    std::string name = absl::StrCat("--", d.flag, "=N");
    absl::StrAppend(&sizes, "  ", name, std::string(name.size() < 29 ? 29 - name.size() : 1, ' '),
                    d.help, " (default ", *d.field(defaults), ")\n");
  }
  return absl::StrCat(R"(usage: dpv2-agent (--manifests=PATH | --kubeconfig=PATH | --in-cluster) [flags]

The dpv2 node agent: Kubernetes objects in, datapath state out.

  --backend=sim|ebpf           datapath backend (default sim)
  --node=NAME                  this node (default: the hostname)
  --manifests=PATH             a manifest file or directory, re-read on change
  --kubeconfig=PATH            watch the API server named by a kubeconfig
  --in-cluster                 watch the API server with the pod's service account
  --bpffs=PATH                 ebpf: pin maps under this bpffs directory (kept across restarts)
  --external-interface=IFNAME  ebpf: the node's external device (NodePort, LB traffic)
  --xdp                        ebpf: also attach the XDP program to the external device
  --host-routing=false         ebpf: hand forwarded packets to the node's IP stack instead of
                               routing them in the program (default true; turn it off when
                               the node's iptables FORWARD/POSTROUTING rules must see them)
  --checksum=auto|in-place|helpers
                               ebpf: the tc object that updates NAT checksums in place (Linux
                               6.2+ with BTF) or through the checksum helpers (any kernel, ~100
                               ns more a translated packet); auto picks in-place when it can
  --control-socket=PATH        dpv2ctl socket (default /run/dpv2/agent.sock; empty: none)
  --policy-log=PATH            GKE-format policy log file (rotated at 10 MB)
  --metrics-address=HOST:PORT  Prometheus /metrics and /healthz
  --healthz-address=HOST:PORT  kube-proxy-compatible health server (default 0.0.0.0:10256; empty: none)
  --log-format=text|json       structured log lines on stderr (default text)
  --once                       reconcile once and exit (0 when everything applied)
Datapath map sizes and conntrack timeouts (every backend). An agent restarted
over pinned eBPF maps must be given the sizes they were made with:
)",
                      sizes, "Exit status: 0 ok, 1 failed, 2 usage error.\n");
}

}  // namespace dpv2::agent::daemon
