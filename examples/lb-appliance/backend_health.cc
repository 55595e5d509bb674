#include "backend_health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpv2::lb {
namespace {

// The resolved port of `port` in `slice` (0: the slice does not carry it).
uint16_t SlicePort(const EndpointSliceSpec& slice, const ServicePortSpec& port) {
  for (const EndpointPortSpec& p : slice.ports) {
    if (p.name == port.name && p.protocol == port.protocol) {
      return p.port;
    }
  }
  return 0;
}

// Non-blocking connect to `target`; the socket (or -1 when it failed at once)
// and whether it already connected.
int StartConnect(const HealthTarget& target, bool* connected) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (target.address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(target.port);
    std::memcpy(&sin->sin_addr, target.address.bytes().data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(target.port);
    std::memcpy(&sin6->sin6_addr, target.address.bytes().data(), 16);
    len = sizeof(sockaddr_in6);
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    *connected = true;
    return fd;
  }
  if (errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::string HealthTarget::ToString() const {
  return address.is_v4() ? absl::StrCat(address.ToString(), ":", port)
                         : absl::StrCat("[", address.ToString(), "]:", port);
}

std::vector<HealthTarget> HealthTargets(const std::vector<ServiceSpec>& specs) {
  std::set<HealthTarget> targets;
  for (const ServiceSpec& spec : specs) {
    for (const ServicePortSpec& port : spec.ports) {
      if (port.protocol != L4Proto::kTCP) {
        continue;
      }
      for (const EndpointSliceSpec& slice : spec.endpoint_slices) {
        const uint16_t target_port = SlicePort(slice, port);
        if (target_port == 0) {
          continue;
        }
        for (const EndpointSpec& ep : slice.endpoints) {
          if (!ep.addresses.empty() && (ep.conditions.IsReady() || ep.conditions.IsServing())) {
            targets.insert({.address = ep.addresses.front(), .port = target_port});
          }
        }
      }
    }
  }
  return {targets.begin(), targets.end()};
}

void MarkUnhealthy(const std::set<HealthTarget>& down, std::vector<ServiceSpec>* specs) {
  if (down.empty()) {
    return;
  }
  for (ServiceSpec& spec : *specs) {
    std::vector<EndpointSliceSpec> slices;
    for (const EndpointSliceSpec& slice : spec.endpoint_slices) {
      for (const EndpointPortSpec& port : slice.ports) {
        EndpointSliceSpec one = slice;
        one.ports = {port};
        if (slice.ports.size() > 1) {
          absl::StrAppend(&one.name, "/", port.name);
        }
        for (EndpointSpec& ep : one.endpoints) {
          if (port.protocol == L4Proto::kTCP && !ep.addresses.empty() &&
              down.count({.address = ep.addresses.front(), .port = port.port}) != 0) {
            ep.conditions = {.ready = false, .serving = false, .terminating = false};
          }
        }
        slices.push_back(std::move(one));
      }
    }
    spec.endpoint_slices = std::move(slices);
  }
}

void HealthTable::SetTargets(const std::vector<HealthTarget>& targets) {
  std::map<HealthTarget, State> next;
  for (const HealthTarget& t : targets) {
    auto it = states_.find(t);
    next[t] = it == states_.end() ? State{} : it->second;
  }
  states_ = std::move(next);
}

bool HealthTable::Record(const HealthTarget& target, bool success) {
  auto it = states_.find(target);
  if (it == states_.end()) {
    return false;
  }
  State& s = it->second;
  if (success == s.up) {
    s.streak = 0;
    return false;
  }
  ++s.streak;
  if (s.streak < (s.up ? fall_ : rise_)) {
    return false;
  }
  s.up = !s.up;
  s.streak = 0;
  return true;
}

std::set<HealthTarget> HealthTable::Down() const {
  std::set<HealthTarget> out;
  for (const auto& [t, s] : states_) {
    if (!s.up) {
      out.insert(t);
    }
  }
  return out;
}

std::map<HealthTarget, bool> HealthTable::States() const {
  std::map<HealthTarget, bool> out;
  for (const auto& [t, s] : states_) {
    out[t] = s.up;
  }
  return out;
}

std::vector<bool> ProbeTcp(const std::vector<HealthTarget>& targets, absl::Duration timeout) {
  std::vector<bool> ok(targets.size(), false);
  std::vector<pollfd> fds;
  std::vector<size_t> index;  // fds[j] probes targets[index[j]]
  for (size_t i = 0; i < targets.size(); ++i) {
    bool connected = false;
    const int fd = StartConnect(targets[i], &connected);
    if (fd < 0) {
      continue;
    }
    if (connected) {
      ok[i] = true;
      close(fd);
      continue;
    }
    fds.push_back({.fd = fd, .events = POLLOUT, .revents = 0});
    index.push_back(i);
  }
  const absl::Time deadline = absl::Now() + timeout;
  size_t pending = fds.size();
  bool last_look = false;
  while (pending > 0 && !last_look) {
    // Past the deadline, one more look without waiting: a connection that
    // completed while this thread was not scheduled (a loaded box) counts.
    const int64_t wait_ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    last_look = wait_ms == 0;
    const int n = poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
    if (n < 0 && errno == EINTR) {
      last_look = false;
      continue;
    }
    if (n <= 0) {
      break;
    }
    for (size_t j = 0; j < fds.size(); ++j) {
      if (fds[j].fd < 0 || fds[j].revents == 0) {
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ok[index[j]] = getsockopt(fds[j].fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
      close(fds[j].fd);
      fds[j].fd = -1;  // poll ignores negative descriptors
      --pending;
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) {
      close(p.fd);
    }
  }
  return ok;
}

HealthChecker::HealthChecker(const HealthCheckConfig& config)
    : config_(config), table_(config.rise, config.fall) {
  thread_ = std::thread([this] { Run(); });
}

HealthChecker::~HealthChecker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HealthChecker::SetTargets(const std::vector<HealthTarget>& targets) {
  std::lock_guard<std::mutex> lock(mu_);
  table_.SetTargets(targets);
}

std::set<HealthTarget> HealthChecker::Down() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_.Down();
}

std::map<HealthTarget, bool> HealthChecker::States() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_.States();
}

void HealthChecker::Run() {
  const auto interval = std::chrono::milliseconds(config_.interval_ms);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto next_round = std::chrono::steady_clock::now() + interval;
    std::vector<HealthTarget> targets;
    for (const auto& [t, up] : table_.States()) {
      targets.push_back(t);
    }
    lock.unlock();
    const std::vector<bool> ok = ProbeTcp(targets, absl::Milliseconds(config_.timeout_ms));
    lock.lock();
    for (size_t i = 0; i < targets.size(); ++i) {
      if (table_.Record(targets[i], ok[i])) {
        std::fprintf(stderr, "dpv2-lb: backend %s is %s\n", targets[i].ToString().c_str(),
                     ok[i] ? "up" : "down");
        changes_.fetch_add(1, std::memory_order_release);
      }
    }
    wake_.wait_until(lock, next_round, [this] { return stop_; });
  }
}

}  // namespace dpv2::lb
