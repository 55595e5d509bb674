// dpv2ctl: the dpv2 command line. Offline it reads Kubernetes manifests,
// computes one node's view with the core (and the sim backend where packets
// are involved) and prints it:
//
//   dpv2ctl -f manifests/ --node node-1 services --output json
//   dpv2ctl -f netpol.yaml probe --port 80 --protocol TCP --explain
//   dpv2ctl -f manifests/ --node node-1 trace --from x/a --to 10.96.0.10 --port 80
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/cluster_view.h"
#include "agent/manifest_source.h"
#include "agent/probe.h"
#include "agent/reports.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"

namespace {

using dpv2::agent::ClusterView;

constexpr char kUsage[] = R"(usage: dpv2ctl [-f|--manifests PATH] [--node NAME] [--output text|json] COMMAND [ARGS]

Offline commands (PATH: a manifest file, a directory of them, or - for stdin):
  services                     Service frontends and the backends this node selects
  endpoints                    this node's pods as datapath endpoints
  identities                   pod addresses by security identity
  policy NAMESPACE/POD         the compiled policy of one local pod
  trace --from POD|IP --to POD|IP --port N [--protocol TCP|UDP|SCTP] [--sport N]
                               one packet through the sim datapath, step by step
  probe [--port N] [--protocol TCP|UDP|SCTP] [--explain]
                               reachability between every pair of pods
Exit status: 0 ok, 1 bad manifests or failed command, 2 usage error.
)";

struct Flags {
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

void Print(const Flags& f, const nlohmann::json& json, const std::string& text) {
  if (f.output == "json") {
    std::cout << json.dump(2) << "\n";
  } else {
    std::cout << text;
  }
}

// A pod ("ns/name") or an address.
struct Endpoint {
  dpv2::IpAddr ip;
  std::optional<std::string> pod;
};

absl::StatusOr<Endpoint> ResolveEndpoint(const dpv2::agent::k8s::ClusterObjects& objects,
                                         const std::string& text, const std::string& flag) {
  if (auto it = objects.pods.find(text); it != objects.pods.end()) {
    if (it->second.info.ips.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": pod ", text, " has no status.podIP"));
    }
    return Endpoint{.ip = it->second.info.ips[0], .pod = text};
  }
  absl::StatusOr<dpv2::IpAddr> ip = dpv2::IpAddr::Parse(text);
  if (!ip.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", text, "\" is neither a pod (namespace/name) nor an address"));
  }
  for (const auto& [key, pod] : objects.pods) {
    for (const dpv2::IpAddr& a : pod.info.ips) {
      if (a == *ip) {
        return Endpoint{.ip = *ip, .pod = key};
      }
    }
  }
  return Endpoint{.ip = *ip};
}

int Trace(const Flags& f, ClusterView& view) {
  std::optional<std::string> from_text = Option(f, "from");
  std::optional<std::string> to_text = Option(f, "to");
  std::optional<std::string> port_text = Option(f, "port");
  if (!from_text || !to_text || !port_text) {
    return Usage("trace needs --from, --to and --port");
  }
  uint32_t port = 0;
  uint32_t sport = 40000;
  if (!absl::SimpleAtoi(*port_text, &port) || port == 0 || port > 65535) {
    return Usage(absl::StrCat("--port: must be 1-65535, got \"", *port_text, "\""));
  }
  if (std::optional<std::string> s = Option(f, "sport");
      s && (!absl::SimpleAtoi(*s, &sport) || sport == 0 || sport > 65535)) {
    return Usage(absl::StrCat("--sport: must be 1-65535, got \"", *s, "\""));
  }
  absl::StatusOr<dpv2::L4Proto> proto = dpv2::ParseL4Proto(Option(f, "protocol").value_or("TCP"));
  if (!proto.ok()) {
    return Usage(absl::StrCat("--protocol: ", proto.status().message()));
  }
  absl::StatusOr<Endpoint> from = ResolveEndpoint(view.objects(), *from_text, "--from");
  absl::StatusOr<Endpoint> to = ResolveEndpoint(view.objects(), *to_text, "--to");
  if (!from.ok()) {
    return Fail(from.status());
  }
  if (!to.ok()) {
    return Fail(to.status());
  }
  if (from->ip.family() != to->ip.family()) {
    return Fail(absl::InvalidArgumentError("--from and --to are of different address families"));
  }
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> sim = dpv2::MakeSimBackend({});
  if (!sim.ok()) {
    return Fail(sim.status());
  }
  if (absl::Status s = view.ApplyTo(**sim); !s.ok()) {
    return Fail(s);
  }
  dpv2::PacketInput input{.entry = dpv2::Entry::kFromNetwork, .ifindex = 1};
  dpv2::PacketBuilder builder;
  std::string origin = "from the network (node's external device)";
  if (from->pod) {
    std::optional<dpv2::LocalEndpoint> ep = view.LocalEndpointOf(*from->pod);
    if (!ep) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "--from: pod ", *from->pod, " is not on node \"", view.node().name,
          "\"; pick its node with --node")));
    }
    input.entry = dpv2::Entry::kFromPod;
    input.ifindex = ep->ifindex;
    builder.Eth(ep->mac, ep->host_mac);
    origin = absl::StrCat("from pod ", *from->pod, " (ifindex ", ep->ifindex, ")");
  } else {
    builder.Eth("02:00:00:00:00:01", "02:00:00:00:00:02");
  }
  if (from->ip.is_v4()) {
    builder.IPv4(from->ip, to->ip);
  } else {
    builder.IPv6(from->ip, to->ip);
  }
  switch (*proto) {
    case dpv2::L4Proto::kUDP:
      builder.Udp(sport, port).Payload("trace");
      break;
    case dpv2::L4Proto::kSCTP:
      builder.Sctp(sport, port);
      break;
    default:
      builder.Tcp(sport, port, 0x02);
      break;
  }
  absl::StatusOr<std::vector<uint8_t>> frame = builder.TryBuild();
  if (!frame.ok()) {
    return Fail(frame.status());
  }
  input.frame = *frame;
  absl::StatusOr<dpv2::PacketOutcome> out = (*sim)->RunPacket(input);
  if (!out.ok()) {
    return Fail(out.status());
  }
  nlohmann::json j = {{"input", dpv2::DescribePacket(*frame)},
                      {"entry", origin},
                      {"verdict", std::string(dpv2::VerdictName(out->verdict))}};
  std::string text = absl::StrCat("packet: ", dpv2::DescribePacket(*frame), "\nentry:  ", origin,
                                  "\n");
  nlohmann::json steps = nlohmann::json::array();
  for (const dpv2::FlowEvent& ev : out->events) {
    std::string line = ev.ToString();
    if (ev.type == DPV2_EVENT_POLICY_VERDICT && ev.policy_match_id != 0) {
      if (const auto* refs = view.policy().MatchPolicies(ev.policy_match_id)) {
        for (const dpv2::PolicyRef& r : *refs) {
          absl::StrAppend(&line, " [", dpv2::PolicyKindName(r.kind), " ",
                          r.namespace_name.empty() ? "" : r.namespace_name + "/", r.name, "]");
        }
      }
    }
    steps.push_back(line);
    absl::StrAppend(&text, "step:   ", line, "\n");
  }
  j["steps"] = steps;
  if (out->drop_reason != DPV2_DROP_NONE) {
    j["drop_reason"] = std::string(dpv2::DropReasonName(out->drop_reason));
  }
  absl::StrAppend(&text, "result: ", dpv2::VerdictName(out->verdict),
                  out->drop_reason != DPV2_DROP_NONE
                      ? absl::StrCat(" (", dpv2::DropReasonName(out->drop_reason), ")")
                      : "",
                  "\n");
  nlohmann::json outputs = nlohmann::json::array();
  for (const dpv2::OutputFrame& o : out->outputs) {
    std::string line = absl::StrCat(dpv2::VerdictName(o.verdict), " ifindex ", o.out_ifindex, ": ",
                                    dpv2::DescribePacket(o.frame));
    outputs.push_back(line);
    absl::StrAppend(&text, "output: ", line, "\n");
  }
  j["outputs"] = outputs;
  Print(f, j, text);
  return 0;
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

int Run(const Flags& f) {
  if (f.manifests.empty()) {
    return Usage("offline mode needs --manifests PATH (talking to a running agent is not built yet)");
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
  int status = objects->errors.empty() && view->problems().empty() ? 0 : 1;
  if (f.command == "services") {
    Print(f, dpv2::agent::ServicesJson(*view), dpv2::agent::ServicesText(*view));
  } else if (f.command == "endpoints") {
    Print(f, dpv2::agent::EndpointsJson(*view), dpv2::agent::EndpointsText(*view));
  } else if (f.command == "identities") {
    Print(f, dpv2::agent::IdentitiesJson(*view), dpv2::agent::IdentitiesText(*view));
  } else if (f.command == "policy") {
    if (f.args.size() != 1) {
      return Usage("policy needs one NAMESPACE/POD");
    }
    absl::StatusOr<nlohmann::json> j = dpv2::agent::PolicyJson(*view, f.args[0]);
    absl::StatusOr<std::string> t = dpv2::agent::PolicyText(*view, f.args[0]);
    if (!j.ok()) {
      return Fail(j.status());
    }
    Print(f, *j, *t);
  } else if (f.command == "trace") {
    int rc = Trace(f, *view);
    return rc != 0 ? rc : status;
  } else {
    return Usage(absl::StrCat("unknown command \"", f.command, "\""));
  }
  return status;
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
