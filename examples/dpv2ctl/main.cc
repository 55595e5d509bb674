// dpv2ctl: the dpv2 command line. It talks to a running dpv2-agent over its
// control socket, or works offline: it reads Kubernetes manifests, computes
// one node's view with the core and the sim backend, and prints the same
// reports (agent/reports.h) the agent answers with:
//
//   dpv2ctl services --output json                 (the agent at /run/dpv2/agent.sock)
//   dpv2ctl observe --namespace x --verdict DROPPED --count 10
//   dpv2ctl -f manifests/ --node node-1 trace --from x/a --to 10.96.0.10 --port 80
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/cluster_view.h"
#include "agent/control/control_client.h"
#include "agent/control/control_commands.h"
#include "agent/control/flow_hub.h"
#include "agent/manifest_source.h"
#include "agent/probe.h"
#include "agent/reports.h"
#include "core/status_macros.h"
#include "dpv2/sim.h"

namespace {

using dpv2::agent::ClusterView;

constexpr char kUsage[] = R"(usage: dpv2ctl [--socket PATH | -f|--manifests PATH [--node NAME]]
               [--output text|json] COMMAND [ARGS]

Without -f, dpv2ctl asks the running agent at --socket (default /run/dpv2/agent.sock).
With -f PATH (a manifest file, a directory of them, or - for stdin) it works
offline: it computes node NAME's view (--node) and runs packets through the sim.

  services                     Service frontends and the backends this node selects
  endpoints                    this node's pods as datapath endpoints
  identities                   pod addresses by security identity
  policy NAMESPACE/POD         the compiled policy of one local pod
  trace --from POD|IP --to POD|IP --port N [--protocol TCP|UDP|SCTP] [--sport N]
                               one packet through the datapath, step by step
                               (on the agent: its live datapath; see --help-trace)
  ct list | ct flush           the conntrack table, decoded / emptied (agent only)
  observe [--pod [NS/]NAME] [--namespace NS] [--verdict FORWARDED|DROPPED]
          [--port N] [--count N] [--since DURATION]
                               live flows, one line each (agent only)
  probe [--port N] [--protocol TCP|UDP|SCTP] [--explain]
                               reachability between every pair of pods (offline only)
Exit status: 0 ok, 1 bad manifests or failed command, 2 usage error.
)";

constexpr char kTraceHelp[] = R"(dpv2ctl trace on a running agent sends one hypothetical packet through the
live datapath with Backend::RunPacket (eBPF: BPF_PROG_TEST_RUN of the real
program on the real maps). It has the effect one real packet would have:
a TCP SYN (or a first UDP/SCTP packet) creates its conntrack entries, which
expire on the SYN / non-TCP timeout (60 s), counters move, an affinity
Service records the client, and the events appear in `observe`. Without
--sport the source port is the first from 40000 up that no conntrack entry
of that source uses, so a trace never touches a live connection.
)";

struct Flags {
  std::string socket;
  std::string manifests;
  std::string node;
  std::string output = "text";
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> options;  // --port 80 ...
  bool explain = false;
};

int Usage(const std::string& why) {
  std::cerr << "dpv2ctl: " << why << "\n" << kUsage;
  return 2;
}

std::optional<std::string> Option(const Flags& f, const std::string& name) {
  auto it = f.options.find(name);
  if (it == f.options.end()) {
    return std::nullopt;
  }
  return it->second;
}

void PrintDecodeProblems(const dpv2::agent::k8s::ClusterObjects& objects) {
  for (const std::string& w : objects.warnings) {
    std::cerr << "warning: " << w << "\n";
  }
  for (const std::string& e : objects.errors) {
    std::cerr << "error: " << e << "\n";
  }
}

int Fail(const absl::Status& status) {
  std::cerr << "dpv2ctl: " << status.message() << "\n";
  return 1;
}

int Probe(const Flags& f, const dpv2::agent::k8s::ClusterObjects& objects) {
  dpv2::agent::ProbeOptions options;
  if (std::optional<std::string> p = Option(f, "port")) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(*p, &port) || port == 0 || port > 65535) {
      return Usage(absl::StrCat("--port: must be 1-65535, got \"", *p, "\""));
    }
    options.port = static_cast<uint16_t>(port);
  }
  absl::StatusOr<dpv2::L4Proto> proto = dpv2::ParseL4Proto(Option(f, "protocol").value_or("TCP"));
  if (!proto.ok() || (*proto != dpv2::L4Proto::kTCP && *proto != dpv2::L4Proto::kUDP &&
                      *proto != dpv2::L4Proto::kSCTP)) {
    return Usage("--protocol: must be TCP, UDP or SCTP");
  }
  options.protocol = *proto;
  absl::StatusOr<dpv2::agent::ProbeResult> result = dpv2::agent::RunProbe(objects, options);
  if (!result.ok()) {
    std::cerr << "dpv2ctl: probe: invalid manifests:\n" << result.status().message() << "\n";
    return 1;
  }
  if (f.output == "json") {
    std::cout << dpv2::agent::ProbeJson(*result).dump(2) << "\n";
  } else {
    std::cout << dpv2::agent::FormatProbeMatrix(*result, f.explain);
  }
  return 0;
}

// The protocol request (control/protocol.h) a command line asks for; both
// modes answer the same request with RunControlCommand.
absl::StatusOr<nlohmann::json> BuildRequest(const Flags& f) {
  auto port_value = [](const std::string& text) -> nlohmann::json {
    int64_t n = 0;
    return absl::SimpleAtoi(text, &n) ? nlohmann::json(n) : nlohmann::json(text);
  };
  const std::string& c = f.command;
  if (c == "services" || c == "endpoints" || c == "identities") {
    if (!f.args.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(c, " takes no argument"));
    }
    return nlohmann::json{{"command", c}};
  }
  if (c == "policy") {
    if (f.args.size() != 1) {
      return absl::InvalidArgumentError("policy needs one NAMESPACE/POD");
    }
    return nlohmann::json{{"command", c}, {"pod", f.args[0]}};
  }
  if (c == "ct") {
    if (f.args.size() != 1 || (f.args[0] != "list" && f.args[0] != "flush")) {
      return absl::InvalidArgumentError("ct needs list or flush");
    }
    return nlohmann::json{{"command", c}, {"action", f.args[0]}};
  }
  if (c == "trace") {
    std::optional<std::string> from = Option(f, "from");
    std::optional<std::string> to = Option(f, "to");
    std::optional<std::string> port = Option(f, "port");
    if (!from || !to || !port) {
      return absl::InvalidArgumentError("trace needs --from, --to and --port");
    }
    nlohmann::json j = {{"command", c}, {"from", *from}, {"to", *to}, {"port", port_value(*port)},
                        {"protocol", Option(f, "protocol").value_or("TCP")}};
    if (std::optional<std::string> sport = Option(f, "sport")) {
      j["sport"] = port_value(*sport);
    }
    // The same checks the agent makes, before anything is loaded or sent.
    DPV2_RETURN_IF_ERROR(dpv2::agent::ParseTraceRequest(j).status());
    return j;
  }
  if (c == "observe") {
    dpv2::agent::ObserveRequest o;
    dpv2::agent::FlowFilter& filter = o.subscription.filter;
    filter.pod = Option(f, "pod");
    filter.namespace_name = Option(f, "namespace");
    filter.verdict = Option(f, "verdict");
    if (std::optional<std::string> p = Option(f, "port")) {
      uint32_t port = 0;
      if (!absl::SimpleAtoi(*p, &port) || port == 0 || port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("--port: must be 1-65535, got \"", *p, "\""));
      }
      filter.port = static_cast<uint16_t>(port);
    }
    if (std::optional<std::string> n = Option(f, "count")) {
      uint64_t count = 0;
      if (!absl::SimpleAtoi(*n, &count) || count == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--count: must be a positive integer, got \"", *n, "\""));
      }
      o.count = count;
    }
    if (std::optional<std::string> since = Option(f, "since")) {
      absl::Duration d;
      if (!absl::ParseDuration(*since, &d) || d < absl::ZeroDuration()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--since: expected a duration such as 30s or 5m, got \"", *since, "\""));
      }
      o.subscription.since = d;
    }
    DPV2_RETURN_IF_ERROR(filter.Validate());
    return dpv2::agent::ObserveRequestJson(o);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown command \"", c, "\""));
}

// Prints a command's result as JSON or, made from that JSON, as text.
void Render(const Flags& f, const nlohmann::json& result, const std::string& node) {
  if (f.output == "json") {
    std::cout << result.dump(2) << "\n";
    return;
  }
  const std::string& c = f.command;
  if (c == "services") {
    std::cout << dpv2::agent::ServicesText(result);
  } else if (c == "endpoints") {
    std::cout << dpv2::agent::EndpointsText(result, node);
  } else if (c == "identities") {
    std::cout << dpv2::agent::IdentitiesText(result);
  } else if (c == "policy") {
    std::cout << dpv2::agent::PolicyText(result);
  } else if (c == "trace") {
    std::cout << dpv2::agent::TraceText(result);
  } else if (c == "ct" && f.args[0] == "list") {
    std::cout << dpv2::agent::ConntrackText(result);
  } else if (c == "ct") {
    std::cout << "flushed " << result.value("flushed", 0) << " conntrack entries\n";
  }
}

int RunOffline(const Flags& f, const nlohmann::json& request) {
  if (f.command == "ct" || f.command == "observe") {
    std::cerr << "dpv2ctl: " << f.command
              << " reads a live datapath: it needs a running agent. Drop -f/--manifests and "
                 "use --socket PATH (default "
              << dpv2::agent::kDefaultControlSocket << ").\n";
    return 2;
  }
  dpv2::agent::ManifestSource source(f.manifests);
  absl::StatusOr<dpv2::agent::k8s::ClusterObjects> objects = source.Load();
  if (!objects.ok()) {
    return Fail(objects.status());
  }
  PrintDecodeProblems(*objects);
  if (f.command == "probe") {
    return Probe(f, *objects);
  }
  absl::StatusOr<ClusterView> view = ClusterView::Create({.node_name = f.node});
  if (!view.ok()) {
    return Fail(view.status());
  }
  view->Update(*objects);
  for (const std::string& p : view->problems()) {
    std::cerr << "error: " << p << "\n";
  }
  const int status = objects->errors.empty() && view->problems().empty() ? 0 : 1;
  // The sim backend stands in for the node's datapath (trace runs through it).
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> sim = dpv2::MakeSimBackend({});
  if (!sim.ok()) {
    return Fail(sim.status());
  }
  if (absl::Status s = view->ApplyTo(**sim); !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<nlohmann::json> result =
      dpv2::agent::RunControlCommand(request, *view, **sim, /*now_ns=*/0);
  if (!result.ok()) {
    return Fail(result.status());
  }
  Render(f, *result, view->node().name);
  return status;
}

int Observe(const Flags& f, const dpv2::agent::ControlClient& client,
            const nlohmann::json& request) {
  absl::Status s = client.Stream(request, [&](const nlohmann::json& line) {
    if (line.contains("lost")) {
      std::cerr << "dpv2ctl: " << line["lost"].get<uint64_t>()
                << " flows lost (this observer fell behind)\n";
    }
    if (line.contains("flow")) {
      std::cout << (f.output == "json" ? line["flow"].dump() : dpv2::agent::FlowText(line["flow"]))
                << std::endl;  // flushed: a live stream is read as it comes
    }
    return true;
  });
  return s.ok() ? 0 : Fail(s);
}

int RunOnline(const Flags& f, const nlohmann::json& request) {
  if (f.command == "probe") {
    std::cerr << "dpv2ctl: probe computes every pod pair on a simulated node: it is offline "
                 "only (-f PATH)\n";
    return 2;
  }
  if (!f.node.empty()) {
    return Usage("--node selects a node's view offline (-f PATH); an agent serves its own node");
  }
  absl::StatusOr<dpv2::agent::ControlClient> client =
      dpv2::agent::ControlClient::Connect({.socket_path = f.socket});
  if (!client.ok()) {
    return Fail(client.status());
  }
  if (f.command == "observe") {
    return Observe(f, *client, request);
  }
  nlohmann::json response;
  absl::StatusOr<nlohmann::json> result = client->Call(request, &response);
  if (!result.ok()) {
    return Fail(result.status());
  }
  Render(f, *result, response.value("node", std::string()));
  return 0;
}

int Run(const Flags& f) {
  nlohmann::json request;
  if (f.command != "probe") {
    absl::StatusOr<nlohmann::json> r = BuildRequest(f);
    if (!r.ok()) {
      return Usage(std::string(r.status().message()));
    }
    request = *std::move(r);
  }
  if (!f.manifests.empty()) {
    if (!f.socket.empty()) {
      return Usage("--socket (a running agent) and -f/--manifests (offline) exclude each other");
    }
    return RunOffline(f, request);
  }
  Flags online = f;
  if (online.socket.empty()) {
    online.socket = dpv2::agent::kDefaultControlSocket;
  }
  return RunOnline(online, request);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& name) -> std::optional<std::string> {
      if (i + 1 >= args.size()) {
        return std::nullopt;
      }
      (void)name;
      return args[++i];
    };
    if (a == "-h" || a == "--help" || a == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--help-trace") {
      std::cout << kTraceHelp;
      return 0;
    }
    std::string name = a;
    std::optional<std::string> inline_value;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      name = a.substr(0, a.find('='));
      inline_value = a.substr(a.find('=') + 1);
    }
    auto take = [&]() -> std::optional<std::string> {
      return inline_value ? inline_value : value(name);
    };
    if (name == "-f" || name == "--manifests" || name == "--filename") {
      std::optional<std::string> v = take();
      if (!v) {
        return Usage(absl::StrCat(name, " needs a value"));
      }
      f.manifests = *v;
    } else if (name == "--socket") {
      std::optional<std::string> v = take();
      if (!v || v->empty()) {
        return Usage("--socket needs a path");
      }
      f.socket = *v;
    } else if (name == "--node") {
      std::optional<std::string> v = take();
      if (!v) {
        return Usage("--node needs a value");
      }
      f.node = *v;
    } else if (name == "--output" || name == "-o") {
      std::optional<std::string> v = take();
      if (!v || (*v != "json" && *v != "text")) {
        return Usage("--output must be text or json");
      }
      f.output = *v;
    } else if (name == "--explain") {
      f.explain = true;
    } else if (name.rfind("--", 0) == 0) {
      std::optional<std::string> v = take();
      if (!v) {
        return Usage(absl::StrCat(name, " needs a value"));
      }
      f.options[name.substr(2)] = *v;
    } else if (f.command.empty()) {
      f.command = a;
    } else {
      f.args.push_back(a);
    }
  }
  if (f.command.empty()) {
    return Usage("no command");
  }
  return Run(f);
}
