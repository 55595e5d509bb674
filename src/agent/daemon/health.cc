#include "agent/daemon/health.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent::daemon {
namespace {

// Go's %q of a string: a double-quoted, escaped literal.
std::string GoQuote(const std::string& s) { return nlohmann::json(s).dump(); }

std::vector<std::pair<std::string, std::string>> JsonHeaders() {
  return {{"Content-Type", "application/json"}, {"X-Content-Type-Options", "nosniff"}};
}

}  // namespace

std::string GoTimeString(absl::Time t) {
  if (t == absl::InfinitePast()) {
    return "0001-01-01 00:00:00 +0000 UTC";
  }
  // %E*S drops trailing zeros of the fraction, as Go's ".999999999" layout does.
  return absl::FormatTime("%Y-%m-%d %H:%M:%E*S +0000 UTC", t, absl::UTCTimeZone());
}

void ProxyHealth::QueuedUpdate(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (oldest_pending_ == absl::InfinitePast()) {
    oldest_pending_ = now;
  }
}

void ProxyHealth::Updated(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  last_updated_ = now;
  oldest_pending_ = absl::InfinitePast();
}

bool ProxyHealth::Healthy(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return oldest_pending_ == absl::InfinitePast() || now < oldest_pending_ + options_.timeout;
}

absl::Time ProxyHealth::ReportedLastUpdated(absl::Time now, bool healthy) const {
  // kube-proxy reports "now" as lastUpdated while healthy, so that old
  // clients comparing it to currentTime keep working.
  if (healthy) {
    return now;
  }
  std::lock_guard<std::mutex> lock(mu_);
  return last_updated_;
}

HttpResponse ProxyHealth::Healthz(absl::Time now, bool node_eligible) const {
  bool healthy = Healthy(now);
  return {.status = healthy && node_eligible ? 200 : 503,
          .headers = JsonHeaders(),
          .body = absl::StrCat("{\"lastUpdated\": ",
                               GoQuote(GoTimeString(ReportedLastUpdated(now, healthy))),
                               ",\"currentTime\": ", GoQuote(GoTimeString(now)),
                               ", \"nodeEligible\": ", node_eligible ? "true" : "false", "}")};
}

HttpResponse ProxyHealth::Livez(absl::Time now) const {
  bool healthy = Healthy(now);
  return {.status = healthy ? 200 : 503,
          .headers = JsonHeaders(),
          .body = absl::StrCat("{\"lastUpdated\": ",
                               GoQuote(GoTimeString(ReportedLastUpdated(now, healthy))),
                               ",\"currentTime\": ", GoQuote(GoTimeString(now)), "}")};
}

HttpResponse ServiceHealthResponse(const std::string& namespace_name, const std::string& name,
                                   uint32_t local_endpoints, bool proxy_healthy) {
  HttpResponse r{.status = local_endpoints > 0 && proxy_healthy ? 200 : 503,
                 .headers = JsonHeaders()};
  r.headers.emplace_back("X-Load-Balancing-Endpoint-Weight", absl::StrCat(local_endpoints));
  // kube-proxy's dedented template: tab indentation, no trailing newline.
  r.body = absl::StrCat("{\n\t\"service\": {\n\t\t\"namespace\": ", GoQuote(namespace_name),
                        ",\n\t\t\"name\": ", GoQuote(name), "\n\t},\n\t\"localEndpoints\": ",
                        local_endpoints, ",\n\t\"serviceProxyHealthy\": ",
                        proxy_healthy ? "true" : "false", "\n}");
  return r;
}

HealthCheckPorts::HealthCheckPorts(HttpServer* server, std::string host,
                                   std::function<bool()> proxy_healthy, StructuredLog* log)
    : server_(server), host_(std::move(host)), proxy_healthy_(std::move(proxy_healthy)),
      log_(log) {}

HealthCheckPorts::~HealthCheckPorts() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [port, p] : ports_) {
    server_->Close(p.listener);
  }
}

void HealthCheckPorts::Sync(const std::vector<HealthCheckView>& checks) {
  std::map<uint16_t, const HealthCheckView*> wanted;
  for (const HealthCheckView& c : checks) {
    if (c.health_check_node_port != 0) {
      wanted[c.health_check_node_port] = &c;
    }
  }
  std::vector<uint16_t> to_open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = ports_.begin(); it != ports_.end();) {
      if (!wanted.count(it->first)) {
        server_->Close(it->second.listener);
        log_->Info("health check port closed", {{"port", it->first}});
        it = ports_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [port, c] : wanted) {
      if (auto it = ports_.find(port); it != ports_.end()) {
        it->second.namespace_name = c->namespace_name;
        it->second.name = c->name;
        it->second.local_endpoints = c->local_endpoints;
      } else {
        to_open.push_back(port);
      }
    }
  }
  // Bind outside the lock: the handler of an open port takes it.
  for (uint16_t port : to_open) {
    const HealthCheckView& c = *wanted[port];
    absl::StatusOr<int> id =
        server_->Listen({.host = host_, .port = port},
                        [this, port](const HttpRequest&) { return Answer(port); });
    if (!id.ok()) {
      log_->Warn("health check port not open",
                 {{"service", absl::StrCat(c.namespace_name, "/", c.name)},
                  {"port", port},
                  {"error", std::string(id.status().message())}});
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    ports_[port] = Port{.listener = *id, .namespace_name = c.namespace_name, .name = c.name,
                        .local_endpoints = c.local_endpoints};
    log_->Info("health check port open",
               {{"service", absl::StrCat(c.namespace_name, "/", c.name)}, {"port", port}});
  }
}

std::vector<uint16_t> HealthCheckPorts::ports() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint16_t> out;
  for (const auto& [port, p] : ports_) {
    out.push_back(port);
  }
  return out;
}

HttpResponse HealthCheckPorts::Answer(uint16_t port) const {
  Port p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = ports_.find(port);
    if (it == ports_.end()) {
      // Closed between accept and answer (kube-proxy answers nothing then).
      return {.status = 503, .body = ""};
    }
    p = it->second;
  }
  return ServiceHealthResponse(p.namespace_name, p.name, p.local_endpoints, proxy_healthy_());
}

}  // namespace dpv2::agent::daemon
