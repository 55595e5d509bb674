// dpv2-lb: a bare-metal L4 load balancer on the dpv2 DPDK backend.
//
// Reads VIPs and backends from a YAML/JSON file, compiles them with LbState
// (Maglev, session affinity, backend health) and NAT-forwards with the DPDK
// backend. SIGHUP or a change of the file reloads the services without
// touching conntrack, so established flows keep their backends; SIGUSR1
// prints the counters; --metrics serves them over HTTP. See docs/dpdk.md.
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
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "dpv2/backend.h"
#include "dpv2/dpdk.h"
#include "dpv2/lb_state.h"
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
// conntrack entries keep meaning the same backends.
class Appliance {
 public:
  static absl::StatusOr<std::unique_ptr<Appliance>> Start(const std::string& path,
                                                          const LbConfig& cfg) {
    auto app = std::unique_ptr<Appliance>(new Appliance());
    app->path_ = path;
    app->dpdk_ = cfg.dpdk;
    DPV2_ASSIGN_OR_RETURN(LbState lb, LbState::Create({.datapath = cfg.dpdk.config,
                                                       .maglev_seed = cfg.maglev_seed,
                                                       .selection = cfg.selection}));
    app->lb_ = std::make_unique<LbState>(std::move(lb));
    NodeInfo node;
    node.name = "dpv2-lb";
    DPV2_RETURN_IF_ERROR(app->lb_->SetNode(node));
    DPV2_ASSIGN_OR_RETURN(app->backend_, MakeDpdkBackend(cfg.dpdk));
    DPV2_RETURN_IF_ERROR(app->Sync(cfg));
    return app;
  }

  ~Appliance() { backend_.reset(); }

  // Brings the datapath to `cfg.services`. Conntrack is untouched: a flow
  // keeps its backend unless that backend is gone (down or removed).
  absl::Status Sync(const LbConfig& cfg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cfg.selection != lb_->options().selection || cfg.maglev_seed != lb_->options().maglev_seed) {
      std::fprintf(stderr, "dpv2-lb: selection/maglev_seed changes need a restart; ignored\n");
    }
    std::vector<ServiceSpec> specs = ToServiceSpecs(cfg.services);
    for (const ServiceSpec& s : specs) {
      DPV2_RETURN_IF_ERROR(s.Validate());
    }
    for (const std::string& name : names_) {
      bool kept = false;
      for (const ServiceSpec& s : specs) {
        kept = kept || s.name == name;
      }
      if (!kept) {
        DPV2_RETURN_IF_ERROR(lb_->RemoveService(kLbNamespace, name));
      }
    }
    names_.clear();
    for (const ServiceSpec& s : specs) {
      DPV2_RETURN_IF_ERROR(lb_->UpsertService(s));
      names_.push_back(s.name);
    }
    const ChangeBatch batch = lb_->Diff();
    if (!batch.empty()) {
      DPV2_RETURN_IF_ERROR(backend_->Apply(batch));
      lb_->Acknowledge(batch);
      std::fprintf(stderr, "dpv2-lb: applied %s\n", batch.Summary().c_str());
    }
    return absl::OkStatus();
  }

  absl::Status Reload() {
    DPV2_ASSIGN_OR_RETURN(LbConfig cfg, LoadLbConfig(path_));
    if (cfg.dpdk.eal_args != dpdk_.eal_args || cfg.dpdk.ports.size() != dpdk_.ports.size()) {
      std::fprintf(stderr, "dpv2-lb: dpdk section changes need a restart; services reloaded only\n");
    }
    return Sync(cfg);
  }

  std::string Metrics() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    absl::StatusOr<Counters> c = backend_->ReadCounters();
    if (!c.ok()) {
      return absl::StrCat("# error: ", c.status().message(), "\n");
    }
    absl::StrAppend(&out, FormatCounters(*c, "dpv2_lb_"));
    for (const FrontendView& f : lb_->Frontends()) {
      absl::StrAppend(&out, "# service ", f.service, " ", L4ProtoName(f.protocol), " ",
                      f.address.ToString(), ":", f.port, " backends ", f.backends.size(), "\n");
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
  DpdkOptions dpdk_;
  std::unique_ptr<LbState> lb_;
  std::unique_ptr<Backend> backend_;
  std::vector<std::string> names_;
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

int Run(const Flags& flags) {
  absl::StatusOr<LbConfig> cfg = LoadLbConfig(flags.config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "dpv2-lb: %s\n", std::string(cfg.status().message()).c_str());
    return 1;
  }
  if (flags.check) {
    absl::StatusOr<LbState> lb = LbState::Create({.datapath = cfg->dpdk.config,
                                                  .maglev_seed = cfg->maglev_seed,
                                                  .selection = cfg->selection});
    absl::Status s = lb.status();
    for (const ServiceSpec& spec : ToServiceSpecs(cfg->services)) {
      if (s.ok()) {
        s = lb->UpsertService(spec);
      }
    }
    if (!s.ok()) {
      std::fprintf(stderr, "dpv2-lb: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("%s: %zu services, batch %s\n", flags.config.c_str(), cfg->services.size(),
                lb->Diff().Summary().c_str());
    return 0;
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
