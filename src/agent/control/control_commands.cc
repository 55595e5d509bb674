#include "agent/control/control_commands.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/reports.h"
#include "core/status_macros.h"

namespace dpv2::agent {
namespace {

absl::StatusOr<std::string> StringField(const nlohmann::json& request, const char* command,
                                        const char* field) {
  auto it = request.find(field);
  if (it == request.end()) {
    return absl::InvalidArgumentError(absl::StrCat(command, ": missing \"", field, "\""));
  }
  if (!it->is_string() || it->get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, " ", field, ": must be a non-empty string, got ", it->dump()));
  }
  return it->get<std::string>();
}

absl::StatusOr<nlohmann::json> Conntrack(const nlohmann::json& request, ClusterView& view,
                                         Backend& backend, uint64_t now_ns) {
  DPV2_ASSIGN_OR_RETURN(std::string action, StringField(request, "ct", "action"));
  if (action == "list") {
    DPV2_ASSIGN_OR_RETURN(std::vector<ConntrackEntry> entries, backend.DumpConntrack());
    return ConntrackJson(entries, now_ns, view);
  }
  if (action == "flush") {
    DPV2_ASSIGN_OR_RETURN(std::vector<ConntrackEntry> entries, backend.DumpConntrack());
    DPV2_RETURN_IF_ERROR(backend.FlushConntrack());
    return nlohmann::json{{"flushed", entries.size()}};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("ct action: \"", action, "\" is neither list nor flush"));
}

}  // namespace

absl::StatusOr<nlohmann::json> RunControlCommand(const nlohmann::json& request,
                                                 ClusterView& view, Backend& backend,
                                                 uint64_t now_ns) {
  if (!request.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request: expected a JSON object, got ", request.type_name()));
  }
  auto it = request.find("command");
  if (it == request.end() || !it->is_string()) {
    return absl::InvalidArgumentError("request: missing \"command\" (a string)");
  }
  const std::string command = it->get<std::string>();
  if (command == "services") {
    return ServicesJson(view);
  }
  if (command == "endpoints") {
    return EndpointsJson(view);
  }
  if (command == "identities") {
    return IdentitiesJson(view);
  }
  if (command == "policy") {
    DPV2_ASSIGN_OR_RETURN(std::string pod, StringField(request, "policy", "pod"));
    return PolicyJson(view, pod);
  }
  if (command == "ct") {
    return Conntrack(request, view, backend, now_ns);
  }
  if (command == "trace") {
    DPV2_ASSIGN_OR_RETURN(TraceRequest trace, ParseTraceRequest(request));
    return TraceJson(view, backend, trace);
  }
  if (command == "observe") {
    return absl::InvalidArgumentError("observe: a streaming command, not a call");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "request command: unknown \"", command,
      "\" (known: services, endpoints, identities, policy, ct, trace, observe)"));
}

absl::StatusOr<ObserveRequest> ParseObserveRequest(const nlohmann::json& request) {
  if (!request.is_object()) {
    return absl::InvalidArgumentError("observe: request is not a JSON object");
  }
  ObserveRequest out;
  if (auto f = request.find("filter"); f != request.end()) {
    if (!f->is_object()) {
      return absl::InvalidArgumentError("observe filter: must be an object");
    }
    for (const auto& [key, value] : f->items()) {
      if (key == "pod" || key == "namespace" || key == "verdict") {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("observe filter ", key, ": must be a string, got ", value.dump()));
        }
        std::optional<std::string>& slot = key == "pod"         ? out.subscription.filter.pod
                                           : key == "namespace" ? out.subscription.filter.namespace_name
                                                                : out.subscription.filter.verdict;
        slot = value.get<std::string>();
      } else if (key == "port") {
        if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
            value.get<int64_t>() > 65535) {
          return absl::InvalidArgumentError(
              absl::StrCat("observe filter port: must be 1-65535, got ", value.dump()));
        }
        out.subscription.filter.port = static_cast<uint16_t>(value.get<int64_t>());
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "observe filter: unknown field \"", key, "\" (known: pod, namespace, verdict, port)"));
      }
    }
  }
  DPV2_RETURN_IF_ERROR(out.subscription.filter.Validate());
  if (auto c = request.find("count"); c != request.end()) {
    if (!c->is_number_integer() || c->get<int64_t>() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("observe count: must be a positive integer, got ", c->dump()));
    }
    out.count = c->get<uint64_t>();
  }
  if (auto s = request.find("since_s"); s != request.end()) {
    if (!s->is_number() || s->get<double>() < 0 || s->get<double>() > 86400.0 * 365) {
      return absl::InvalidArgumentError(
          absl::StrCat("observe since_s: must be seconds >= 0, got ", s->dump()));
    }
    out.subscription.since = absl::Milliseconds(static_cast<int64_t>(s->get<double>() * 1000));
  }
  return out;
}

nlohmann::json ObserveRequestJson(const ObserveRequest& request) {
  const FlowFilter& f = request.subscription.filter;
  nlohmann::json filter = nlohmann::json::object();
  if (f.pod) {
    filter["pod"] = *f.pod;
  }
  if (f.namespace_name) {
    filter["namespace"] = *f.namespace_name;
  }
  if (f.verdict) {
    filter["verdict"] = *f.verdict;
  }
  if (f.port) {
    filter["port"] = *f.port;
  }
  nlohmann::json j = {{"command", "observe"}, {"filter", filter}};
  if (request.count) {
    j["count"] = *request.count;
  }
  if (request.subscription.since > absl::ZeroDuration()) {
    j["since_s"] = absl::ToDoubleSeconds(request.subscription.since);
  }
  return j;
}

}  // namespace dpv2::agent
