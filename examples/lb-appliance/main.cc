// dpv2-lb: a bare-metal L4 load balancer on the dpv2 DPDK backend.
//
// Reads VIPs and backends from a YAML/JSON file and from Kubernetes Service
// and EndpointSlice manifests, probes its TCP backends, compiles it all with
// LbState (Maglev, session affinity, backend health, source ranges) and
// NAT-forwards with the DPDK backend. SIGHUP or a change of the file or the
// manifests reloads the services without touching conntrack, so established
// flows keep their backends; SIGUSR1 prints the counters; --metrics serves
// them over HTTP. See docs/dpdk.md.
//
//   dpv2-lb --config lb.yaml [--metrics 127.0.0.1:9100] [--check]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "dpv2/backend.h"
#include "dpv2/dpdk.h"
#include "dpv2/lb_state.h"
#include "agent/manifest_source.h"
#include "backend_health.h"
#include "k8s_services.h"
#include "lb_config.h"

namespace dpv2::lb {
namespace {

volatile sig_atomic_t reload_requested = 0;
volatile sig_atomic_t counters_requested = 0;
volatile sig_atomic_t stop_requested = 0;

void OnSignal(int sig) {
  if (sig == SIGHUP) {
    reload_requested = 1;
  } else if (sig == SIGUSR1) {
    counters_requested = 1;
  } else {
    stop_requested = 1;
  }
}

struct Flags {
  std::string config;
  std::string metrics;  // host:port
  bool check = false;   // parse and compile the file, then exit
};

void Usage() {
  std::fprintf(stderr,
               "usage: dpv2-lb --config FILE [--metrics HOST:PORT] [--check]\n"
               "  SIGHUP reloads FILE (also reloaded when it changes), SIGUSR1 prints counters.\n");
}

std::string FormatCounters(const Counters& c, absl::string_view prefix) {
  std::string out;
  for (int i = 0; i < DPV2_CNT_MAX; ++i) {
    absl::StrAppend(&out, prefix, CounterName(static_cast<dpv2_counter>(i)), " ", c.counters[i],
                    "\n");
  }
  for (int i = 1; i < DPV2_DROP_MAX; ++i) {
    if (c.drops[i] != 0) {
      absl::StrAppend(&out, prefix, "drops{reason=\"",
                      DropReasonName(static_cast<dpv2_drop_reason>(i)), "\"} ", c.drops[i], "\n");
    }
  }
  return out;
}

// The running appliance: one LbState kept for the life of the process, so
// that ids (backends, frontends, tables) stay stable across reloads and
// conntrack entries keep meaning the same backends. Its Services come from
// the config file, the Kubernetes manifests it names, and the health checker's
// marks; Sync() brings the datapath to all three.
class Appliance {
 public:
  static absl::StatusOr<std::unique_ptr<Appliance>> Start(const std::string& path,
                                                          const LbConfig& cfg) {
    auto app = std::unique_ptr<Appliance>(new Appliance());
    app->path_ = path;
    app->cfg_ = cfg;
    DPV2_ASSIGN_OR_RETURN(LbState lb, LbState::Create({.datapath = cfg.dpdk.config,
                                                       .maglev_seed = cfg.maglev_seed,
                                                       .selection = cfg.selection}));
    app->lb_ = std::make_unique<LbState>(std::move(lb));
    NodeInfo node;
    node.name = "dpv2-lb";
    DPV2_RETURN_IF_ERROR(app->lb_->SetNode(node));
    if (!cfg.kubernetes.manifests.empty()) {
      app->manifests_ = std::make_unique<agent::ManifestSource>(cfg.kubernetes.manifests);
      DPV2_RETURN_IF_ERROR(app->ReadManifests());
    }
    if (cfg.health_checks.interval_ms != 0) {
      app->health_ = std::make_unique<HealthChecker>(cfg.health_checks);
    }
    DPV2_ASSIGN_OR_RETURN(app->backend_, MakeDpdkBackend(cfg.dpdk));
    DPV2_RETURN_IF_ERROR(app->Sync());
    return app;
  }

  ~Appliance() {
    health_.reset();
    backend_.reset();
  }

  // Brings the datapath to the desired Services. Conntrack is untouched: a
  // flow keeps its backend unless that backend is gone (down or removed).
  // The config file's services must all be valid; a Kubernetes Service the
  // core refuses is reported and left out.
  absl::Status Sync() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ServiceSpec> specs = ToServiceSpecs(cfg_.services);
    const size_t from_file = specs.size();
    specs.insert(specs.end(), k8s_.specs.begin(), k8s_.specs.end());
    if (health_ != nullptr) {
      health_->SetTargets(HealthTargets(specs));
      health_changes_ = health_->changes();
      MarkUnhealthy(health_->Down(), &specs);
    }
    for (size_t i = 0; i < from_file; ++i) {
      DPV2_RETURN_IF_ERROR(specs[i].Validate());
    }
    std::set<std::string> desired;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (absl::Status s = lb_->UpsertService(specs[i]); !s.ok()) {
        if (i < from_file) {
          return s;
        }
        std::fprintf(stderr, "dpv2-lb: Service %s left out: %s\n", specs[i].Key().c_str(),
                     std::string(s.message()).c_str());
        continue;  // a previous version, if any, is removed below
      }
      desired.insert(specs[i].Key());
    }
    for (const std::string& key : applied_) {
      if (desired.count(key) == 0) {
        const size_t slash = key.find('/');
        DPV2_RETURN_IF_ERROR(lb_->RemoveService(key.substr(0, slash), key.substr(slash + 1)));
      }
    }
    applied_ = std::move(desired);
    const ChangeBatch batch = lb_->Diff();
    if (!batch.empty()) {
      DPV2_RETURN_IF_ERROR(backend_->Apply(batch));
      lb_->Acknowledge(batch);
      std::fprintf(stderr, "dpv2-lb: applied %s\n", batch.Summary().c_str());
    }
    // Answer ARP/ND for the VIPs once their Services are in the tables.
    std::vector<IpAddr> vips = FrontendAddresses(specs);
    if (vips != answered_) {
      DPV2_RETURN_IF_ERROR(SetDpdkNeighborAnswers(*backend_, vips));
      answered_ = std::move(vips);
      std::fprintf(stderr, "dpv2-lb: answering ARP/ND for %zu addresses\n", answered_.size());
    }
    return absl::OkStatus();
  }

  absl::Status Reload() {
    DPV2_ASSIGN_OR_RETURN(LbConfig cfg, LoadLbConfig(path_));
    if (cfg.dpdk.eal_args != cfg_.dpdk.eal_args || cfg.dpdk.ports.size() != cfg_.dpdk.ports.size()) {
      std::fprintf(stderr, "dpv2-lb: dpdk section changes need a restart; services reloaded only\n");
    }
    if (cfg.selection != cfg_.selection || cfg.maglev_seed != cfg_.maglev_seed ||
        cfg.kubernetes.manifests != cfg_.kubernetes.manifests ||
        cfg.health_checks.interval_ms != cfg_.health_checks.interval_ms) {
      std::fprintf(stderr,
                   "dpv2-lb: selection, maglev_seed, kubernetes and health_checks changes need a "
                   "restart; ignored\n");
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      cfg_.services = std::move(cfg.services);
    }
    return Sync();
  }

  // Re-reads the manifests when a file was added, removed or changed; true
  // when they were read.
  bool ManifestsChanged() const { return manifests_ != nullptr && manifests_->Changed(); }
  absl::Status ReadManifests() {
    DPV2_ASSIGN_OR_RETURN(agent::k8s::ClusterObjects objects, manifests_->Load());
    KubernetesServices k8s = ServicesForAppliance(objects);
    for (const std::string& p : k8s.problems) {
      std::fprintf(stderr, "dpv2-lb: %s\n", p.c_str());
    }
    std::fprintf(stderr, "dpv2-lb: %zu Kubernetes Services from %s\n", k8s.specs.size(),
                 manifests_->path().c_str());
    std::lock_guard<std::mutex> lock(mu_);
    k8s_ = std::move(k8s);
    return absl::OkStatus();
  }

  // Some backend changed health since the last Sync.
  bool HealthChanged() const { return health_ != nullptr && health_->changes() != health_changes_; }

  std::string Metrics() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    absl::StatusOr<Counters> c = backend_->ReadCounters();
    if (!c.ok()) {
      return absl::StrCat("# error: ", c.status().message(), "\n");
    }
    absl::StrAppend(&out, FormatCounters(*c, "dpv2_lb_"));
    if (health_ != nullptr) {
      for (const auto& [target, up] : health_->States()) {
        absl::StrAppend(&out, "dpv2_lb_backend_up{backend=\"", target.ToString(), "\"} ",
                        up ? 1 : 0, "\n");
      }
    }
    for (const FrontendView& f : lb_->Frontends()) {
      absl::StrAppend(&out, "# service ", f.service, " ", FrontendKindName(f.kind), " ",
                      L4ProtoName(f.protocol), " ", f.address.ToString(), ":", f.port,
                      " backends ", f.backends.size(), "\n");
    }
    return out;
  }

  void CollectGarbage() {
    std::lock_guard<std::mutex> lock(mu_);
    (void)backend_->CollectGarbage();
    // Flow events are not consumed by the appliance: keep the rings empty so
    // that they never count as lost.
    (void)backend_->DrainEvents(1 << 16);
  }

 private:
  Appliance() = default;

  std::string path_;
  LbConfig cfg_;
  KubernetesServices k8s_;
  std::unique_ptr<agent::ManifestSource> manifests_;
  std::unique_ptr<HealthChecker> health_;
  uint64_t health_changes_ = 0;
  std::unique_ptr<LbState> lb_;
  std::unique_ptr<Backend> backend_;
  std::set<std::string> applied_;  // Service keys upserted into lb_
  std::vector<IpAddr> answered_;   // the addresses ARP/ND is answered for
  std::mutex mu_;
};

// A deliberately small HTTP/1.0 responder: GET anything -> the counters.
void ServeMetrics(int fd, Appliance* app) {
  while (!stop_requested) {
    timeval tv{.tv_sec = 0, .tv_usec = 200000};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    if (select(fd + 1, &set, nullptr, nullptr, &tv) <= 0) {
      continue;
    }
    int c = accept(fd, nullptr, nullptr);
    if (c < 0) {
      continue;
    }
    char buf[1024];
    (void)!read(c, buf, sizeof(buf));
    const std::string body = app->Metrics();
    const std::string resp = absl::StrCat(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: ",
        body.size(), "\r\n\r\n", body);
    (void)!write(c, resp.data(), resp.size());
    close(c);
  }
}

absl::StatusOr<int> ListenMetrics(const std::string& hostport) {
  std::vector<std::string> parts = absl::StrSplit(hostport, ':');
  uint32_t port = 0;
  in_addr addr{};
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) || port == 0 || port > 65535 ||
      inet_pton(AF_INET, parts[0].c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics \"", hostport, "\": expected IPv4:PORT, e.g. 127.0.0.1:9100"));
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{.sin_family = AF_INET, .sin_port = htons(static_cast<uint16_t>(port)), .sin_addr = addr};
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd, 8) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("--metrics ", hostport, ": ", std::strerror(errno)));
  }
  return fd;
}

int64_t ModifiedNs(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return 0;
  }
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// --check: the file and its manifests compiled as the appliance would, with
// every problem printed; 1 when anything was refused.
int Check(const std::string& path, const LbConfig& cfg) {
  absl::StatusOr<LbState> lb = LbState::Create(
      {.datapath = cfg.dpdk.config, .maglev_seed = cfg.maglev_seed, .selection = cfg.selection});
  if (!lb.ok()) {
    std::fprintf(stderr, "dpv2-lb: %s\n", std::string(lb.status().message()).c_str());
    return 1;
  }
  std::vector<ServiceSpec> specs = ToServiceSpecs(cfg.services);
  int problems = 0;
  if (!cfg.kubernetes.manifests.empty()) {
    agent::ManifestSource source(cfg.kubernetes.manifests);
    absl::StatusOr<agent::k8s::ClusterObjects> objects = source.Load();
    if (!objects.ok()) {
      std::fprintf(stderr, "dpv2-lb: %s\n", std::string(objects.status().message()).c_str());
      return 1;
    }
    KubernetesServices k8s = ServicesForAppliance(*objects);
    for (const std::string& p : k8s.problems) {
      std::fprintf(stderr, "dpv2-lb: %s\n", p.c_str());
      ++problems;
    }
    specs.insert(specs.end(), k8s.specs.begin(), k8s.specs.end());
  }
  for (const ServiceSpec& spec : specs) {
    if (absl::Status s = lb->UpsertService(spec); !s.ok()) {
      std::fprintf(stderr, "dpv2-lb: %s\n", std::string(s.message()).c_str());
      ++problems;
    }
  }
  std::printf("%s: %zu services (%zu from the file), %zu frontend addresses, batch %s\n",
              path.c_str(), specs.size(), cfg.services.size(), FrontendAddresses(specs).size(),
              lb->Diff().Summary().c_str());
  return problems == 0 ? 0 : 1;
}

int Run(const Flags& flags) {
  absl::StatusOr<LbConfig> cfg = LoadLbConfig(flags.config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "dpv2-lb: %s\n", std::string(cfg.status().message()).c_str());
    return 1;
  }
  if (flags.check) {
    return Check(flags.config, *cfg);
  }
  int metrics_fd = -1;
  if (!flags.metrics.empty()) {
    absl::StatusOr<int> fd = ListenMetrics(flags.metrics);
    if (!fd.ok()) {
      std::fprintf(stderr, "dpv2-lb: %s\n", std::string(fd.status().message()).c_str());
      return 1;
    }
    metrics_fd = *fd;
  }
  signal(SIGHUP, OnSignal);
  signal(SIGUSR1, OnSignal);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);

  absl::StatusOr<std::unique_ptr<Appliance>> app = Appliance::Start(flags.config, *cfg);
  if (!app.ok()) {
    std::fprintf(stderr, "dpv2-lb: %s\n", std::string(app.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "dpv2-lb: running %zu services; SIGHUP reloads, SIGUSR1 prints counters\n",
               cfg->services.size());
  std::thread metrics;
  if (metrics_fd >= 0) {
    metrics = std::thread(ServeMetrics, metrics_fd, app->get());
  }
  int64_t mtime = ModifiedNs(flags.config);
  auto last_gc = std::chrono::steady_clock::now();
  while (!stop_requested) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t now_mtime = ModifiedNs(flags.config);
    if (now_mtime != mtime) {
      mtime = now_mtime;
      reload_requested = 1;
    }
    bool resync = (*app)->HealthChanged();
    if ((*app)->ManifestsChanged()) {
      if (absl::Status s = (*app)->ReadManifests(); !s.ok()) {
        std::fprintf(stderr, "dpv2-lb: manifests unreadable, still serving the previous state: %s\n",
                     std::string(s.message()).c_str());
      } else {
        resync = true;
      }
    }
    if (resync && !reload_requested) {
      if (absl::Status s = (*app)->Sync(); !s.ok()) {
        std::fprintf(stderr, "dpv2-lb: update failed, still serving the previous state: %s\n",
                     std::string(s.message()).c_str());
      }
    }
    if (reload_requested) {
      reload_requested = 0;
      if (absl::Status s = (*app)->Reload(); !s.ok()) {
        std::fprintf(stderr, "dpv2-lb: reload failed, still serving the previous state: %s\n",
                     std::string(s.message()).c_str());
      } else {
        std::fprintf(stderr, "dpv2-lb: reloaded %s\n", flags.config.c_str());
      }
    }
    if (counters_requested) {
      counters_requested = 0;
      std::fputs((*app)->Metrics().c_str(), stdout);
      std::fflush(stdout);
    }
    if (std::chrono::steady_clock::now() - last_gc > std::chrono::seconds(5)) {
      (*app)->CollectGarbage();
      last_gc = std::chrono::steady_clock::now();
    }
  }
  if (metrics.joinable()) {
    metrics.join();
    close(metrics_fd);
  }
  app->reset();
  if (absl::Status s = ShutdownDpdk(); !s.ok()) {
    std::fprintf(stderr, "dpv2-lb: %s\n", std::string(s.message()).c_str());
  }
  std::fprintf(stderr, "dpv2-lb: stopped\n");
  return 0;
}

}  // namespace
}  // namespace dpv2::lb

int main(int argc, char** argv) {
  dpv2::lb::Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      flags.config = argv[++i];
    } else if (arg == "--metrics" && i + 1 < argc) {
      flags.metrics = argv[++i];
    } else if (arg == "--check") {
      flags.check = true;
    } else {
      dpv2::lb::Usage();
      return 2;
    }
  }
  if (flags.config.empty()) {
    dpv2::lb::Usage();
    return 2;
  }
  return dpv2::lb::Run(flags);
}
