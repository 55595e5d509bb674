#include "netlab/netlab.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

namespace dpv2::netlab {
namespace {

constexpr absl::string_view kNetnsDir = "/var/run/netns";
constexpr absl::string_view kNetnsPrefix = "dpv2-";
constexpr absl::string_view kBpffsPrefix = "dpv2-bpffs-";
constexpr absl::string_view kErrnoPayload = "dpv2.netlab/errno";

absl::Status SocketError(int err, absl::string_view what) {
  absl::Status s = absl::ErrnoToStatus(err, what);
  s.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return s;
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// "dpv2-<pid>-..." -> pid, when the name has that shape.
std::optional<pid_t> OwnerPid(absl::string_view name, absl::string_view prefix) {
  if (!absl::ConsumePrefix(&name, prefix)) {
    return std::nullopt;
  }
  const size_t dash = name.find('-');
  int pid = 0;
  if (dash == absl::string_view::npos || !absl::SimpleAtoi(name.substr(0, dash), &pid) ||
      pid <= 0) {
    return std::nullopt;
  }
  return pid;
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return names;
  }
  while (dirent* e = readdir(d)) {
    names.emplace_back(e->d_name);
  }
  closedir(d);
  return names;
}

absl::Time Deadline(absl::Duration timeout) { return absl::Now() + timeout; }

int PollMillis(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) {
    return 0;
  }
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

// Waits for `events` on fd until the deadline: OK, DeadlineExceeded, or the
// poll error.
absl::Status WaitFor(int fd, short events, absl::Time deadline, absl::string_view what) {
  while (true) {
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int n = poll(&p, 1, PollMillis(deadline));
    if (n > 0) {
      return absl::OkStatus();
    }
    if (n == 0) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": no answer in time"));
    }
    if (errno != EINTR) {
      return SocketError(errno, absl::StrCat(what, ": poll"));
    }
  }
}

// Takes one line off the front of `pending`, if a whole one is there.
std::optional<std::string> TakeLine(std::string& pending) {
  const size_t nl = pending.find('\n');
  if (nl == std::string::npos) {
    return std::nullopt;
  }
  std::string line = pending.substr(0, nl);
  pending.erase(0, nl + 1);
  return line;
}

// Reads from fd until `pending` holds a whole line.
absl::StatusOr<std::string> ReadLineFrom(int fd, std::string& pending, absl::Time deadline,
                                         absl::string_view what) {
  while (true) {
    if (std::optional<std::string> line = TakeLine(pending)) {
      return *line;
    }
    DPV2_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline, what));
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) {
      return absl::NotFoundError(absl::StrCat(what, ": closed before a whole line"));
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return SocketError(errno, what);
    }
    pending.append(buf, static_cast<size_t>(n));
  }
}

sockaddr_storage ToSockaddr(const IpAddr& addr, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (addr.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, addr.bytes().data(), 4);
    *len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, addr.bytes().data(), 16);
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}

std::pair<IpAddr, uint16_t> FromSockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    return {IpAddr::V4Bytes(reinterpret_cast<const uint8_t*>(&sin->sin_addr)),
            ntohs(sin->sin_port)};
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  const auto* b = reinterpret_cast<const uint8_t*>(&sin6->sin6_addr);
  if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
    return {IpAddr::V4Bytes(b + 12), ntohs(sin6->sin6_port)};
  }
  return {IpAddr::V6Bytes(b), ntohs(sin6->sin6_port)};
}

// Sends all of `data` on a (possibly non-blocking) socket.
absl::Status SendAll(int fd, absl::string_view data, absl::Time deadline, absl::string_view what) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        DPV2_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline, what));
        continue;
      }
      return SocketError(errno, what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

void CloseFd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

}  // namespace

std::optional<int> ExitCodeIfUnprivileged(absl::string_view program) {
  if (geteuid() != 0) {
    return SkipOrFail(program, "not running as root");
  }
  // CapEff bits: CAP_NET_ADMIN is 12, CAP_SYS_ADMIN is 21.
  std::ifstream status("/proc/self/status");
  std::string line;
  uint64_t caps = 0;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "CapEff:")) {
      caps = std::strtoull(std::string(absl::StripAsciiWhitespace(rest)).c_str(), nullptr, 16);
    }
  }
  const uint64_t needed = (uint64_t{1} << 12) | (uint64_t{1} << 21);
  if ((caps & needed) != needed) {
    return SkipOrFail(program, "CAP_NET_ADMIN and CAP_SYS_ADMIN are needed");
  }
  if (absl::Status s = RunCommand({"ip", "-V"}); !s.ok()) {
    return SkipOrFail(program, absl::StrCat("iproute2 is missing: ", s.message()));
  }
  return std::nullopt;
}

int SkipOrFail(absl::string_view program, absl::string_view why) {
  const bool ci = InCi();
  std::fprintf(stderr, "%.*s: %.*s%s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(why.size()), why.data(),
               ci ? " (CI=true: failing instead of skipping)"
                  : "; skipping (run as root; set CI=true to fail instead)");
  return ci ? 1 : 77;
}

absl::Status RunCommand(const std::vector<std::string>& argv, std::string* output,
                        absl::string_view input) {
  if (argv.empty()) {
    return absl::InvalidArgumentError("RunCommand: empty argv");
  }
  int out_pipe[2];
  int in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return SocketError(errno, "RunCommand: pipe");
  }
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return SocketError(errno, "RunCommand: pipe");
  }
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (pid < 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    return SocketError(errno, "RunCommand: fork");
  }
  // Inputs here are small (ip -batch scripts): they fit in the pipe buffer.
  if (!input.empty()) {
    signal(SIGPIPE, SIG_IGN);
    (void)!write(in_pipe[1], input.data(), input.size());
  }
  close(in_pipe[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(out_pipe[0], buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  close(out_pipe[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (output != nullptr) {
    *output = text;
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(
        absl::StrCat("command `", absl::StrJoin(argv, " "), "` failed (",
                     WIFEXITED(wstatus) ? "exit " : "signal ",
                     WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus),
                     "): ", absl::StripAsciiWhitespace(text)));
  }
  return absl::OkStatus();
}

void SweepStale() {
  for (const std::string& name : ListDir(std::string(kNetnsDir))) {
    std::optional<pid_t> pid = OwnerPid(name, kNetnsPrefix);
    if (pid && ProcessGone(*pid)) {
      (void)RunCommand({"ip", "netns", "del", name});
    }
  }
  for (const std::string& name : ListDir("/tmp")) {
    std::optional<pid_t> pid = OwnerPid(name, kBpffsPrefix);
    if (pid && ProcessGone(*pid)) {
      const std::string path = "/tmp/" + name;
      umount2(path.c_str(), MNT_DETACH);
      rmdir(path.c_str());
    }
  }
}

namespace {
void SweepOnce() {
  static std::once_flag once;
  std::call_once(once, SweepStale);
}
}  // namespace

std::string MacAddr::ToString() const {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3],
                         bytes[4], bytes[5]);
}

// ---- Netns ----

absl::StatusOr<Netns> Netns::Create(absl::string_view label) {
  if (label.empty() || label.find_first_of("/ \t\n") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("netns label \"", label, "\": empty or has /"));
  }
  SweepOnce();
  static std::atomic<int> serial{0};
  std::string name = absl::StrCat(kNetnsPrefix, getpid(), "-", label);
  struct stat st;
  if (stat(absl::StrCat(kNetnsDir, "/", name).c_str(), &st) == 0) {
    name = absl::StrCat(name, "-", ++serial);
  }
  DPV2_RETURN_IF_ERROR(RunCommand({"ip", "netns", "add", name}));
  const std::string path = absl::StrCat(kNetnsDir, "/", name);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    (void)RunCommand({"ip", "netns", "del", name});
    return SocketError(err, absl::StrCat("netns ", name, ": open ", path));
  }
  Netns ns(std::move(name), fd);
  DPV2_RETURN_IF_ERROR(ns.Ip("link set lo up"));
  return ns;
}

Netns::Netns(Netns&& other) noexcept
    : name_(std::exchange(other.name_, {})), fd_(std::exchange(other.fd_, -1)) {}

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    Destroy();
    name_ = std::exchange(other.name_, {});
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Netns::~Netns() { Destroy(); }

void Netns::Destroy() {
  CloseFd(fd_);
  if (!name_.empty()) {
    (void)RunCommand({"ip", "netns", "del", name_});
    name_.clear();
  }
}

absl::Status Netns::Ip(absl::string_view args) const {
  std::vector<std::string> argv = {"ip", "-n", name_};
  for (absl::string_view a : absl::StrSplit(args, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    argv.emplace_back(a);
  }
  return RunCommand(argv);
}

absl::Status Netns::IpBatch(const std::vector<std::string>& commands) const {
  if (commands.empty()) {
    return absl::OkStatus();
  }
  return RunCommand({"ip", "-n", name_, "-batch", "-"}, nullptr,
                    absl::StrCat(absl::StrJoin(commands, "\n"), "\n"));
}

absl::Status Netns::Exec(const std::vector<std::string>& argv, std::string* output) const {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunCommand(full, output);
}

absl::Status Netns::Run(const std::function<absl::Status()>& fn) const {
  absl::Status result;
  std::thread t([&] {
    if (setns(fd_, CLONE_NEWNET) != 0) {
      result = SocketError(errno, absl::StrCat("netns ", name_, ": setns"));
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

namespace {
std::string SysctlPath(absl::string_view key) {
  return absl::StrCat("/proc/sys/", absl::StrReplaceAll(key, {{".", "/"}}));
}
}  // namespace

absl::Status Netns::SetSysctl(absl::string_view key, absl::string_view value) const {
  return Run([&]() -> absl::Status {
    const std::string path = SysctlPath(key);
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return SocketError(errno, absl::StrCat("netns ", name_, ": sysctl ", key));
    }
    const ssize_t n = write(fd, value.data(), value.size());
    const int err = errno;
    close(fd);
    if (n != static_cast<ssize_t>(value.size())) {
      return SocketError(err, absl::StrCat("netns ", name_, ": sysctl ", key, "=", value));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> Netns::GetSysctl(absl::string_view key) const {
  std::string value;
  DPV2_RETURN_IF_ERROR(Run([&]() -> absl::Status {
    std::ifstream in(SysctlPath(key));
    if (!in) {
      return absl::NotFoundError(absl::StrCat("netns ", name_, ": sysctl ", key));
    }
    std::getline(in, value);
    return absl::OkStatus();
  }));
  return value;
}

absl::Status Netns::ConfigureAsRouter() const {
  DPV2_RETURN_IF_ERROR(SetSysctl("net.ipv4.ip_forward", "1"));
  DPV2_RETURN_IF_ERROR(SetSysctl("net.ipv6.conf.all.forwarding", "1"));
  DPV2_RETURN_IF_ERROR(SetSysctl("net.ipv4.conf.all.rp_filter", "0"));
  return SetSysctl("net.ipv4.conf.default.rp_filter", "0");
}

absl::StatusOr<Interface> Netns::GetInterface(absl::string_view ifname) const {
  Interface out{.name = std::string(ifname)};
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("netns ", name_, ": interface name \"", ifname, "\" is not 1..15 chars"));
  }
  DPV2_RETURN_IF_ERROR(Run([&]() -> absl::Status {
    out.ifindex = if_nametoindex(out.name.c_str());
    if (out.ifindex == 0) {
      return absl::NotFoundError(absl::StrCat("netns ", name_, ": no interface ", out.name));
    }
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return SocketError(errno, "socket");
    }
    ifreq req{};
    std::memcpy(req.ifr_name, out.name.data(), out.name.size());
    const int rc = ioctl(fd, SIOCGIFHWADDR, &req);
    const int err = errno;
    close(fd);
    if (rc != 0) {
      return SocketError(err, absl::StrCat("netns ", name_, ": ", out.name, ": SIOCGIFHWADDR"));
    }
    std::memcpy(out.mac.bytes.data(), req.ifr_hwaddr.sa_data, 6);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int> Netns::OpenSocket(int domain, int type, int protocol) const {
  int fd = -1;
  DPV2_RETURN_IF_ERROR(Run([&]() -> absl::Status {
    fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? SocketError(errno, absl::StrCat("netns ", name_, ": socket"))
                  : absl::OkStatus();
  }));
  return fd;
}

absl::Status AddVeth(const Netns& a, absl::string_view a_ifname, const Netns& b,
                     absl::string_view b_ifname) {
  for (absl::string_view n : {a_ifname, b_ifname}) {
    if (n.empty() || n.size() >= IFNAMSIZ || n.find_first_of(" /") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("veth ", a_ifname, "/", b_ifname, ": name \"", n, "\" is not 1..15 chars"));
    }
  }
  DPV2_RETURN_IF_ERROR(a.Ip(
      absl::StrCat("link add ", a_ifname, " type veth peer name ", b_ifname, " netns ", b.name())));
  DPV2_RETURN_IF_ERROR(a.Ip(absl::StrCat("link set ", a_ifname, " up")));
  return b.Ip(absl::StrCat("link set ", b_ifname, " up"));
}

// ---- Pod ----

absl::StatusOr<Pod> Pod::Create(const Netns& node, const PodOptions& options) {
  const std::string what = absl::StrCat("pod ", options.name);
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": addresses: none given"));
  }
  std::vector<IpAddr> addresses;
  for (const std::string& text : options.addresses) {
    absl::StatusOr<IpAddr> a = IpAddr::Parse(text);
    if (!a.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": addresses: \"", text, "\": ", a.status().message()));
    }
    addresses.push_back(*a);
  }
  DPV2_ASSIGN_OR_RETURN(Netns ns, Netns::Create(options.name));
  Pod pod(options.name, std::move(ns));
  pod.addresses_ = std::move(addresses);
  DPV2_RETURN_IF_ERROR(AddVeth(node, options.host_ifname, pod.ns_, "eth0"));
  DPV2_ASSIGN_OR_RETURN(pod.host_, node.GetInterface(options.host_ifname));
  DPV2_ASSIGN_OR_RETURN(pod.eth0_, pod.ns_.GetInterface("eth0"));
  const std::string host_mac = pod.host_.mac.ToString();
  const std::string pod_mac = pod.eth0_.mac.ToString();
  std::vector<std::string> in_pod;
  std::vector<std::string> in_node;
  bool has_v4 = false;
  bool has_v6 = false;
  for (const IpAddr& a : pod.addresses_) {
    const std::string ip = a.ToString();
    has_v4 |= a.is_v4();
    has_v6 |= !a.is_v4();
    in_pod.push_back(a.is_v4() ? absl::StrCat("addr add ", ip, "/32 dev eth0")
                               : absl::StrCat("addr add ", ip, "/128 dev eth0 nodad"));
    if (options.node_routes) {
      in_node.push_back(absl::StrCat("route replace ", ip, a.is_v4() ? "/32" : "/128", " dev ",
                                     options.host_ifname));
      in_node.push_back(absl::StrCat("neigh replace ", ip, " lladdr ", pod_mac, " dev ",
                                     options.host_ifname, " nud permanent"));
    }
  }
  if (has_v4) {
    in_pod.push_back(absl::StrCat("route add ", kPodGatewayV4, " dev eth0 scope link"));
    in_pod.push_back(absl::StrCat("route add default via ", kPodGatewayV4, " dev eth0"));
    in_pod.push_back(absl::StrCat("neigh replace ", kPodGatewayV4, " lladdr ", host_mac,
                                  " dev eth0 nud permanent"));
  }
  if (has_v6) {
    in_pod.push_back(absl::StrCat("route add default via ", kPodGatewayV6, " dev eth0"));
    in_pod.push_back(absl::StrCat("neigh replace ", kPodGatewayV6, " lladdr ", host_mac,
                                  " dev eth0 nud permanent"));
  }
  DPV2_RETURN_IF_ERROR(pod.ns_.IpBatch(in_pod));
  DPV2_RETURN_IF_ERROR(node.IpBatch(in_node));
  return pod;
}

// ---- BpffsMount ----

absl::StatusOr<BpffsMount> BpffsMount::Create(absl::string_view label) {
  SweepOnce();
  std::string templ = absl::StrCat("/tmp/", kBpffsPrefix, getpid(), "-", label, "-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return SocketError(errno, absl::StrCat("bpffs ", label, ": mkdtemp"));
  }
  if (mount("bpf", templ.c_str(), "bpf", 0, nullptr) != 0) {
    const int err = errno;
    rmdir(templ.c_str());
    return SocketError(err, absl::StrCat("bpffs ", label, ": mount on ", templ));
  }
  return BpffsMount(std::move(templ));
}

BpffsMount::BpffsMount(BpffsMount&& other) noexcept : path_(std::exchange(other.path_, {})) {}

BpffsMount& BpffsMount::operator=(BpffsMount&& other) noexcept {
  if (this != &other) {
    Destroy();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

BpffsMount::~BpffsMount() { Destroy(); }

void BpffsMount::Destroy() {
  if (!path_.empty()) {
    umount2(path_.c_str(), MNT_DETACH);
    rmdir(path_.c_str());
    path_.clear();
  }
}

// ---- EchoServer ----

namespace {
absl::StatusOr<int> ListeningSocket(const Netns& ns, int type, uint16_t port) {
  DPV2_ASSIGN_OR_RETURN(int fd, ns.OpenSocket(AF_INET6, type | SOCK_NONBLOCK));
  const int off = 0;
  const int on = 1;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (type == SOCK_DGRAM) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));  // see Serve
  }
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_port = htons(port);
  any.sin6_addr = in6addr_any;
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0 ||
      (type == SOCK_STREAM && listen(fd, 512) != 0)) {
    const int err = errno;
    close(fd);
    return SocketError(err, absl::StrCat("netns ", ns.name(), ": listen on port ", port));
  }
  return fd;
}
}  // namespace

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(const Netns& ns,
                                                              const EchoServerOptions& options) {
  if (options.port == 0 || (!options.tcp && !options.udp)) {
    return absl::InvalidArgumentError(
        absl::StrCat("echo server ", options.name, ": needs a port and TCP or UDP"));
  }
  int tcp_fd = -1;
  int udp_fd = -1;
  if (options.tcp) {
    DPV2_ASSIGN_OR_RETURN(tcp_fd, ListeningSocket(ns, SOCK_STREAM, options.port));
  }
  if (options.udp) {
    absl::StatusOr<int> fd = ListeningSocket(ns, SOCK_DGRAM, options.port);
    if (!fd.ok()) {
      CloseFd(tcp_fd);
      return fd.status();
    }
    udp_fd = *fd;
  }
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return std::unique_ptr<EchoServer>(
      new EchoServer(options.name, options.report_peer, tcp_fd, udp_fd, wake_fd));
}

EchoServer::EchoServer(std::string name, bool report_peer, int tcp_fd, int udp_fd, int wake_fd)
    : name_(std::move(name)),
      report_peer_(report_peer),
      tcp_fd_(tcp_fd),
      udp_fd_(udp_fd),
      wake_fd_(wake_fd) {
  thread_ = std::thread([this] { Serve(); });
}

EchoServer::~EchoServer() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  CloseFd(tcp_fd_);
  CloseFd(udp_fd_);
  CloseFd(wake_fd_);
}

void EchoServer::Serve() {
  // What a reply to `peer` starts with.
  auto prefix = [this](const sockaddr_storage& peer) {
    return report_peer_ ? absl::StrCat(name_, " ", FromSockaddr(peer).first.ToString()) : name_;
  };
  struct Conn {
    int fd;
    std::string prefix;
    std::string pending;
  };
  std::vector<Conn> conns;
  while (true) {
    std::vector<pollfd> fds = {{.fd = wake_fd_, .events = POLLIN, .revents = 0},
                               {.fd = tcp_fd_, .events = POLLIN, .revents = 0},
                               {.fd = udp_fd_, .events = POLLIN, .revents = 0}};
    for (const Conn& c : conns) {
      fds.push_back({.fd = c.fd, .events = POLLIN, .revents = 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (fds[0].revents != 0) {
      break;
    }
    if (fds[1].revents & POLLIN) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      const int fd =
          accept4(tcp_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        ++tcp_connections_;
        conns.push_back({.fd = fd, .prefix = prefix(peer), .pending = {}});
      }
    }
    if (fds[2].revents & POLLIN) {
      // The reply leaves from the address the datagram came to (its
      // IPV6_PKTINFO, v4-mapped for IPv4), not from the route's preferred
      // source: in a namespace with several addresses, the one asked.
      char buf[65536];
      sockaddr_storage from{};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))];
      iovec iov{.iov_base = buf, .iov_len = sizeof(buf)};
      msghdr msg{.msg_name = &from,
                 .msg_namelen = sizeof(from),
                 .msg_iov = &iov,
                 .msg_iovlen = 1,
                 .msg_control = control,
                 .msg_controllen = sizeof(control),
                 .msg_flags = 0};
      const ssize_t n = recvmsg(udp_fd_, &msg, 0);
      if (n >= 0) {
        ++udp_datagrams_;
        std::string reply =
            absl::StrCat(prefix(from), " ", absl::string_view(buf, static_cast<size_t>(n)));
        iov = {.iov_base = reply.data(), .iov_len = reply.size()};
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        if (c != nullptr && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          reinterpret_cast<in6_pktinfo*>(CMSG_DATA(c))->ipi6_ifindex = 0;  // any way out
        } else {
          msg.msg_control = nullptr;
          msg.msg_controllen = 0;
        }
        sendmsg(udp_fd_, &msg, 0);
      }
    }
    // Connections polled in this round sit at fds[3 + i]; closing one
    // shifts the rest, so walk backwards.
    for (size_t i = conns.size(); i-- > 0;) {
      if (fds[3 + i].revents == 0) {
        continue;
      }
      Conn& c = conns[i];
      char buf[4096];
      const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
      bool closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
      if (n > 0) {
        c.pending.append(buf, static_cast<size_t>(n));
        while (std::optional<std::string> line = TakeLine(c.pending)) {
          const std::string reply = absl::StrCat(c.prefix, " ", *line, "\n");
          closed |= !SendAll(c.fd, reply, Deadline(kDefaultTimeout), "echo reply").ok();
        }
      }
      if (closed) {
        close(c.fd);
        conns.erase(conns.begin() + static_cast<ptrdiff_t>(i));
      }
    }
  }
  for (Conn& c : conns) {
    close(c.fd);
  }
}

// ---- Clients ----

namespace {
// A non-blocking socket of addr's family created in ns, connected to
// addr:port (for UDP, connect only fixes the peer).
absl::StatusOr<int> ConnectedSocket(const Netns& ns, int type, const IpAddr& addr, uint16_t port,
                                    absl::Time deadline) {
  const std::string what = absl::StrCat(type == SOCK_STREAM ? "tcp" : "udp", " connect from ",
                                        ns.name(), " to ", addr.ToString(), ":", port);
  DPV2_ASSIGN_OR_RETURN(int fd,
                        ns.OpenSocket(addr.is_v4() ? AF_INET : AF_INET6, type | SOCK_NONBLOCK));
  socklen_t len = 0;
  sockaddr_storage ss = ToSockaddr(addr, port, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    close(fd);
    return SocketError(err, what);
  }
  if (type == SOCK_STREAM) {
    absl::Status s = WaitFor(fd, POLLOUT, deadline, what);
    int err = 0;
    socklen_t err_len = sizeof(err);
    if (s.ok() && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) == 0 && err != 0) {
      s = SocketError(err, what);
    }
    if (!s.ok()) {
      close(fd);
      return s;
    }
  }
  return fd;
}
}  // namespace

absl::StatusOr<TcpConnection> TcpConnection::Connect(const Netns& ns, const IpAddr& addr,
                                                     uint16_t port, absl::Duration timeout) {
  DPV2_ASSIGN_OR_RETURN(int fd, ConnectedSocket(ns, SOCK_STREAM, addr, port, Deadline(timeout)));
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  return TcpConnection(fd, FromSockaddr(local).second);
}

TcpConnection::TcpConnection(TcpConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      local_port_(other.local_port_),
      pending_(std::move(other.pending_)) {}

TcpConnection& TcpConnection::operator=(TcpConnection&& other) noexcept {
  if (this != &other) {
    CloseFd(fd_);
    fd_ = std::exchange(other.fd_, -1);
    local_port_ = other.local_port_;
    pending_ = std::move(other.pending_);
  }
  return *this;
}

TcpConnection::~TcpConnection() { CloseFd(fd_); }

absl::StatusOr<std::string> TcpConnection::Exchange(absl::string_view message,
                                                    absl::Duration timeout) {
  if (fd_ < 0) {
    return absl::FailedPreconditionError("tcp connection: closed");
  }
  const absl::Time deadline = Deadline(timeout);
  std::string line(message);
  if (!absl::EndsWith(line, "\n")) {
    line += '\n';
  }
  DPV2_RETURN_IF_ERROR(SendAll(fd_, line, deadline, "tcp send"));
  return ReadLineFrom(fd_, pending_, deadline, "tcp reply");
}

absl::StatusOr<std::pair<IpAddr, uint16_t>> TcpConnection::Peer() const {
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    return SocketError(errno, "getpeername");
  }
  return FromSockaddr(peer);
}

absl::StatusOr<std::string> TcpExchange(const Netns& ns, const IpAddr& addr, uint16_t port,
                                        absl::string_view message, absl::Duration timeout) {
  const absl::Time deadline = Deadline(timeout);
  DPV2_ASSIGN_OR_RETURN(TcpConnection c, TcpConnection::Connect(ns, addr, port, timeout));
  return c.Exchange(message, deadline - absl::Now());
}

absl::StatusOr<std::string> UdpExchange(const Netns& ns, const IpAddr& addr, uint16_t port,
                                        absl::string_view message, absl::Duration timeout) {
  const absl::Time deadline = Deadline(timeout);
  DPV2_ASSIGN_OR_RETURN(int fd, ConnectedSocket(ns, SOCK_DGRAM, addr, port, deadline));
  const std::string what = absl::StrCat("udp to ", addr.ToString(), ":", port);
  absl::Status s = SendAll(fd, message, deadline, what);
  std::string reply;
  while (s.ok()) {
    s = WaitFor(fd, POLLIN, deadline, what);
    if (!s.ok()) {
      break;
    }
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n >= 0) {
      reply.assign(buf, static_cast<size_t>(n));
      break;
    }
    if (errno != EINTR && errno != EAGAIN) {
      s = SocketError(errno, what);
    }
  }
  close(fd);
  DPV2_RETURN_IF_ERROR(s);
  return reply;
}

std::string ServerName(absl::string_view reply) {
  return std::string(reply.substr(0, reply.find(' ')));
}

bool IsConnectionRefused(const absl::Status& status) {
  const auto err = status.GetPayload(kErrnoPayload);
  return err.has_value() && std::string(*err) == absl::StrCat(ECONNREFUSED);
}

// ---- ChildProcess ----

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                 const Netns* ns) {
  if (argv.empty()) {
    return absl::InvalidArgumentError("ChildProcess: empty argv");
  }
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return SocketError(errno, "ChildProcess: pipe");
  }
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const int ns_fd = ns != nullptr ? ns->fd() : -1;
  const pid_t pid = fork();
  if (pid == 0) {
    // Dies with the thread that spawned it, so a crashed test leaves no
    // datapath loader running.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(126);
    }
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) {
      _exit(125);
    }
    dup2(out_pipe[1], 1);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    return SocketError(errno, "ChildProcess: fork");
  }
  return ChildProcess(pid, out_pipe[0]);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdout_fd_(std::exchange(other.stdout_fd_, -1)),
      pending_(std::move(other.pending_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Destroy();
    pid_ = std::exchange(other.pid_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

ChildProcess::~ChildProcess() { Destroy(); }

void ChildProcess::Destroy() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  CloseFd(stdout_fd_);
}

absl::StatusOr<std::string> ChildProcess::ReadLine(absl::Duration timeout) {
  if (stdout_fd_ < 0) {
    return absl::FailedPreconditionError("child process: no stdout");
  }
  return ReadLineFrom(stdout_fd_, pending_, Deadline(timeout),
                      absl::StrCat("stdout of child ", pid_));
}

absl::StatusOr<int> ChildProcess::Kill(int signal, absl::Duration timeout) {
  if (pid_ <= 0) {
    return absl::FailedPreconditionError("child process: already reaped");
  }
  if (kill(pid_, signal) != 0) {
    return SocketError(errno, absl::StrCat("kill ", pid_));
  }
  return Wait(timeout);
}

absl::StatusOr<int> ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) {
    return absl::FailedPreconditionError("child process: already reaped");
  }
  const absl::Time deadline = Deadline(timeout);
  while (true) {
    int wstatus = 0;
    const pid_t r = waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return wstatus;
    }
    if (r < 0 && errno != EINTR) {
      return SocketError(errno, "waitpid");
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("child ", pid_, " still running"));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

}  // namespace dpv2::netlab
