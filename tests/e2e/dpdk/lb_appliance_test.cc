// End to end: the dpv2-lb appliance on net_af_packet, in network namespaces
// this test creates and removes (even on failure).
//
// Topology: a "fabric" namespace holds a bridge; a client namespace
// (10.77.1.10), three backend namespaces (10.77.2.21-23, a TCP server on
// :8080 each that answers every line with its name) and the LB namespace
// (its eth0 opened by DPDK's af_packet PMD, its mgmt0 a kernel interface
// 10.77.2.2 for health probes) hang off it by veth pairs. No namespace has a
// static neighbour entry: the client reaches the VIPs on-link and the
// backends route the client subnet via VIP 10.77.0.100, so both find the
// appliance by ARP, which it answers for its VIPs. Traffic to the VIPs and
// the replies both cross the appliance (NAT one-armed). Real kernel TCP on
// both ends.
//
// VIPs: 10.77.0.100:80 from the config file (b1-b3), 10.77.0.101:80 from a
// Kubernetes LoadBalancer Service and its EndpointSlice, 10.77.0.102:80 from
// one whose loadBalancerSourceRanges leave the client out.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace {

const std::string kSuffix = absl::StrCat(getpid());

std::string Ns(const std::string& role) { return absl::StrCat("dpv2e", kSuffix, "-", role); }

bool Sh(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  if (rc != 0) {
    UNSCOPED_INFO("command failed: " << cmd);
  }
  return rc == 0;
}

bool CiRequiresPrivilegedTests() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Runs `fn` on a thread that has entered network namespace `ns`; sockets it
// creates live in that namespace for good.
template <typename Fn>
auto InNetns(const std::string& ns, Fn fn) -> decltype(fn()) {
  decltype(fn()) result{};
  std::thread t([&] {
    const int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) {
        close(fd);
      }
      return;
    }
    close(fd);
    result = fn();
  });
  t.join();
  return result;
}

struct Node {
  std::string role;
  std::string ip;   // with /24
  std::string mac;
  std::string gateway;  // next hop to far_subnet ("": on-link)
  std::string far_subnet;
};

const std::string kLbMac = "02:77:00:00:00:01";
const std::vector<Node> kBackends = {
    {"b1", "10.77.2.21", "02:77:00:00:02:21", "10.77.0.100", "10.77.1.0/24"},
    {"b2", "10.77.2.22", "02:77:00:00:02:22", "10.77.0.100", "10.77.1.0/24"},
    {"b3", "10.77.2.23", "02:77:00:00:02:23", "10.77.0.100", "10.77.1.0/24"},
};
const Node kClient = {"client", "10.77.1.10", "02:77:00:00:01:10", "", "10.77.0.0/24"};
const std::string kMgmtIp = "10.77.2.2";

// Creates the namespaces; removes them when destroyed, whatever happened.
class Topology {
 public:
  Topology() = default;
  ~Topology() {
    for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
      std::system(("ip netns del " + *it + " >/dev/null 2>&1").c_str());
    }
  }

  bool Build() {
    const std::string fabric = Ns("fabric");
    if (!Add(fabric) || !Sh("ip -n " + fabric + " link add br0 type bridge") ||
        !Sh("ip -n " + fabric + " link set br0 up")) {
      return false;
    }
    std::vector<Node> nodes = kBackends;
    nodes.push_back(kClient);
    nodes.push_back({"lb", "", kLbMac, "", ""});
    // The appliance's management interface: the kernel's, for health probes.
    const std::string lb = Ns("lb");
    if (!Add(lb) ||
        !Sh("ip -n " + fabric + " link add pm type veth peer name mgmt0 netns " + lb) ||
        !Sh("ip -n " + fabric + " link set pm master br0 up") ||
        !Sh("ip -n " + lb + " link set mgmt0 up") ||
        !Sh("ip -n " + lb + " addr add " + kMgmtIp + "/24 dev mgmt0") ||
        // Its kernel must not answer ARP for mgmt0's address on eth0.
        !Sh("ip netns exec " + lb + " sysctl -qw net.ipv4.conf.all.arp_ignore=1")) {
      return false;
    }
    int i = 0;
    for (const Node& n : nodes) {
      const std::string ns = Ns(n.role);
      const std::string port = absl::StrCat("p", i++);
      if ((n.role != "lb" && !Add(ns)) ||
          !Sh("ip -n " + fabric + " link add " + port + " type veth peer name eth0 netns " + ns) ||
          !Sh("ip -n " + fabric + " link set " + port + " master br0 up") ||
          !Sh("ip -n " + ns + " link set eth0 address " + n.mac) ||
          !Sh("ip -n " + ns + " link set eth0 up") || !Sh("ip -n " + ns + " link set lo up") ||
          !Sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1")) {
        return false;
      }
      if (n.ip.empty()) {
        continue;  // the LB: DPDK owns eth0, the kernel has no address on it
      }
      // The client has the VIPs on-link; a backend's way back to the
      // client is via a VIP. Either way the kernel ARPs for a VIP.
      const std::string route =
          n.gateway.empty() ? n.far_subnet + " dev eth0"
                            : n.far_subnet + " via " + n.gateway + " dev eth0 onlink";
      if (!Sh("ip -n " + ns + " addr add " + n.ip + "/24 dev eth0") ||
          !Sh("ip -n " + ns + " route add " + route)) {
        return false;
      }
    }
    // Checksums of veth frames are left to offload by default; the LB reads
    // them off the wire, so make the kernel compute them.
    for (const Node& n : nodes) {
      Sh("ip netns exec " + Ns(n.role) + " ethtool -K eth0 tx off rx off");
    }
    return true;
  }

 private:
  bool Add(const std::string& ns) {
    if (!Sh("ip netns add " + ns)) {
      return false;
    }
    namespaces_.push_back(ns);
    return true;
  }
  std::vector<std::string> namespaces_;
};

// A TCP server in a backend namespace: every line received is answered with
// the backend's name.
class NameServer {
 public:
  NameServer(const std::string& ns, const std::string& name) : name_(name) {
    listen_fd_ = InNetns(ns, [] {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in sa{.sin_family = AF_INET, .sin_port = htons(8080), .sin_addr = {INADDR_ANY}};
      if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd, 128) != 0) {
        close(fd);
        return -1;
      }
      return fd;
    });
    if (listen_fd_ >= 0) {
      thread_ = std::thread([this] { Serve(); });
    }
  }
  ~NameServer() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    for (int fd : conns_) {
      close(fd);
    }
    if (listen_fd_ >= 0) {
      close(listen_fd_);
    }
  }
  bool ok() const { return listen_fd_ >= 0; }
  // Refuses new connections (health probes fail) and keeps serving the
  // established ones.
  void StopListening() { stop_listening_ = true; }

 private:
  void Serve() {
    while (!stop_) {
      if (stop_listening_ && listen_fd_ >= 0) {
        close(listen_fd_);
        listen_fd_ = -1;
      }
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
      for (int c : conns_) {
        fds.push_back({c, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 100) <= 0) {
        continue;
      }
      if (listen_fd_ >= 0 && (fds[0].revents & POLLIN)) {
        int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          conns_.push_back(c);
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) {
          continue;
        }
        char buf[256];
        const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          close(fds[i].fd);
          conns_.erase(std::find(conns_.begin(), conns_.end(), fds[i].fd));
          continue;
        }
        const std::string reply = name_ + "\n";
        (void)!write(fds[i].fd, reply.data(), reply.size());
      }
    }
  }

  std::string name_;
  int listen_fd_ = -1;
  std::vector<int> conns_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stop_listening_{false};
  std::thread thread_;
};

// Opens a connection from the client namespace to a VIP's port 80; -1 on
// failure (refused, or no answer within 2 s).
int ConnectToVip(const std::string& vip = "10.77.0.100") {
  return InNetns(Ns("client"), [&vip] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{.tv_sec = 2, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in sa{.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, vip.c_str(), &sa.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  });
}

// Opens a connection from the client's source port `port` to a VIP's port
// 80, with SO_REUSEADDR so that connections to two VIPs can share the port;
// -1 on failure.
int ConnectFromPort(const std::string& vip, uint16_t port) {
  return InNetns(Ns("client"), [&vip, port] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    timeval tv{.tv_sec = 2, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in local{.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, kClient.ip.c_str(), &local.sin_addr);
    sockaddr_in sa{.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, vip.c_str(), &sa.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
        connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  });
}

// Sends a line and returns the backend's answer ("" on error, reset or timeout).
std::string Ask(int fd) {
  if (write(fd, "who\n", 4) != 4) {
    return "";
  }
  char buf[64];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n <= 0) {
    return "";
  }
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n')) {
    s.pop_back();
  }
  return s;
}

std::string Config(const std::string& b2_state, const std::string& manifests) {
  std::ostringstream y;
  y << "dpdk:\n"
    << "  eal: [\"-l\", \"0-1\", \"--no-huge\", \"--no-pci\", \"-m\", \"256\", \"--no-shconf\",\n"
    << "        \"--file-prefix\", \"dpv2e-" << kSuffix << "\", \"--log-level\", \"*:error\",\n"
    << "        \"--vdev\", \"net_af_packet0,iface=eth0\"]\n"
    << "  ports:\n"
    << "    - device: net_af_packet0\n"
    << "  idle_sleep_us: 20\n"
    << "  neighbors:\n"
    << "    - {ip: " << kClient.ip << ", mac: \"" << kClient.mac << "\"}\n";
  for (const Node& b : kBackends) {
    y << "    - {ip: " << b.ip << ", mac: \"" << b.mac << "\"}\n";
  }
  y << "kubernetes: {manifests: " << manifests << "}\n"
    << "health_checks: {interval_ms: 300, timeout_ms: 250, rise: 2, fall: 3}\n"
    << "services:\n"
    << "  - name: web\n"
    << "    vip: 10.77.0.100\n"
    << "    port: 80\n"
    << "    backends:\n";
  for (const Node& b : kBackends) {
    y << "      - {address: " << b.ip << ", port: 8080, state: "
      << (b.role == "b2" ? b2_state : "up") << "}\n";
  }
  return y.str();
}

// A LoadBalancer Service at 10.77.0.101 whose slice holds `backends`
// (ready), and one at 10.77.0.102 that only 192.0.2.0/24 may reach.
std::string Manifests(const std::vector<std::string>& backends) {
  std::ostringstream y;
  y << "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    << "spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.10\n"
    << "  ports: [{name: http, port: 80, targetPort: 8080}]\n"
    << "status: {loadBalancer: {ingress: [{ip: 10.77.0.101}]}}\n"
    << "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    << "metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\n"
    << "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n";
  for (const std::string& b : backends) {
    y << "  - {addresses: [" << b << "], conditions: {ready: true}}\n";
  }
  y << "---\napiVersion: v1\nkind: Service\nmetadata: {name: closed, namespace: shop}\n"
    << "spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.11\n"
    << "  loadBalancerIP: 10.77.0.102\n  loadBalancerSourceRanges: [192.0.2.0/24]\n"
    << "  ports: [{name: http, port: 80, targetPort: 8080}]\n"
    << "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    << "metadata: {name: closed-1, namespace: shop, labels: {kubernetes.io/service-name: closed}}\n"
    << "addressType: IPv4\nports: [{name: http, port: 8080}]\n"
    << "endpoints: [{addresses: [" << kBackends[0].ip << "]}]\n";
  return y.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path + ".tmp");
  out << text;
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The appliance process, stopped (SIGTERM) when destroyed.
class Appliance {
 public:
  Appliance(const std::string& binary, const std::string& config, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execlp("ip", "ip", "netns", "exec", Ns("lb").c_str(), binary.c_str(), "--config",
             config.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Appliance() { (void)Stop(); }
  void Signal(int sig) {
    if (pid_ > 0) {
      kill(pid_, sig);
    }
  }
  // SIGTERM; returns the exit status (-1 if it had to be killed).
  int Stop() {
    if (pid_ <= 0) {
      return -1;
    }
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

// Waits up to `seconds` for `text` to appear in the appliance's log after
// its first `from` bytes.
bool WaitForLog(const std::string& log, const std::string& text, size_t from = 0,
                int seconds = 5) {
  for (int i = 0; i < seconds * 10; ++i) {
    const std::string now = ReadFile(log);
    if (now.size() > from && now.find(text, from) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// Which backends answer `count` new connections to `vip` ("no connection"
// or "" when one was not established or not answered).
std::multiset<std::string> NewConnections(const std::string& vip, int count) {
  std::multiset<std::string> names;
  for (int i = 0; i < count; ++i) {
    int fd = ConnectToVip(vip);
    names.insert(fd < 0 ? "no connection" : Ask(fd));
    if (fd >= 0) {
      close(fd);
    }
  }
  return names;
}

TEST_CASE("dpv2-lb answers ARP for its VIPs, serves file and Kubernetes Services over real TCP, honours source ranges, and health or state changes move only new flows") {
  const char* binary = std::getenv("DPV2_LB");
  REQUIRE(binary != nullptr);  // set by meson: the dpv2-lb executable
  if (geteuid() != 0) {
    if (!CiRequiresPrivilegedTests()) {
      std::fprintf(stderr, "SKIP: needs root for network namespaces and af_packet (CI=true fails)\n");
      std::exit(77);
    }
    FAIL("CI=true and not root: the DPDK e2e test cannot run");
  }
  Topology topo;
  REQUIRE(topo.Build());
  std::vector<std::unique_ptr<NameServer>> servers;
  for (const Node& b : kBackends) {
    servers.push_back(std::make_unique<NameServer>(Ns(b.role), b.role));
    REQUIRE(servers.back()->ok());
  }
  const std::string config = absl::StrCat("/tmp/dpv2e-", kSuffix, ".yaml");
  const std::string manifests = absl::StrCat("/tmp/dpv2e-", kSuffix, "-k8s.yaml");
  const std::string log = absl::StrCat("/tmp/dpv2e-", kSuffix, ".log");
  WriteFile(manifests, Manifests({kBackends[0].ip, kBackends[2].ip}));
  WriteFile(config, Config("up", manifests));
  Appliance app(binary, config, log);

  // Ready when a connection through the VIP answers; the client found the
  // VIP by ARP (it has no static neighbour), so did the backend replying.
  int probe = -1;
  for (int i = 0; i < 100 && probe < 0; ++i) {
    probe = ConnectToVip();
    if (probe < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  INFO("appliance log:\n" << ReadFile(log));
  REQUIRE(probe >= 0);
  CHECK(!Ask(probe).empty());
  close(probe);
  CHECK(Sh("ip -n " + Ns("client") + " neigh show 10.77.0.100 | grep -qi " + kLbMac));

  // 30 connections to the file's VIP, spread by Maglev.
  std::map<int, std::string> owner;
  std::set<std::string> used;
  for (int i = 0; i < 30; ++i) {
    int fd = ConnectToVip();
    REQUIRE(fd >= 0);
    const std::string name = Ask(fd);
    REQUIRE((name == "b1" || name == "b2" || name == "b3"));
    owner[fd] = name;
    used.insert(name);
  }
  CHECK(used.size() >= 2);
  const bool b2_had_flows = used.count("b2") != 0;

  // The Kubernetes LoadBalancer Service: its slice names b1 and b3.
  std::multiset<std::string> k8s = NewConnections("10.77.0.101", 12);
  CHECK(k8s.count("b1") + k8s.count("b3") == 12);
  // Its source ranges leave the client out: no answer (dropped, not refused).
  CHECK(ConnectToVip("10.77.0.102") < 0);

  // The manifests change (b1 leaves the slice): re-read without a signal.
  WriteFile(manifests, Manifests({kBackends[2].ip}));
  bool only_b3 = false;
  for (int i = 0; i < 30 && !only_b3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    only_b3 = NewConnections("10.77.0.101", 4) == std::multiset<std::string>{"b3", "b3", "b3", "b3"};
  }
  CHECK(only_b3);

  // One client port to both VIPs on their shared backend b3 (docs/datapath.md,
  // "Source port collisions"): a connection to .100 from a fixed port that
  // Maglev sends to b3 is held, then .101 (only b3) is asked from the same
  // port. The second connection's flow key (client:port -> b3:8080) is the
  // first's, so it leaves from a remapped port; both keep answering.
  int held = -1;
  uint16_t shared_port = 41000;
  for (; shared_port < 41100 && held < 0; ++shared_port) {
    int fd = ConnectFromPort("10.77.0.100", shared_port);
    if (fd >= 0 && Ask(fd) == "b3") {
      held = fd;
      break;
    }
    if (fd >= 0) {
      close(fd);
    }
  }
  REQUIRE(held >= 0);
  const int second = ConnectFromPort("10.77.0.101", shared_port);
  REQUIRE(second >= 0);
  CHECK(Ask(second) == "b3");
  CHECK(Ask(held) == "b3");
  CHECK(Ask(second) == "b3");
  close(second);
  owner[held] = "b3";  // asked again below, as the other held connections

  // b3 stops accepting: its probes fail and it is marked down. Its
  // established connections continue; new ones go elsewhere.
  size_t log_size = ReadFile(log).size();
  servers[2]->StopListening();
  REQUIRE(WaitForLog(log, "backend 10.77.2.23:8080 is down", log_size));
  // The health thread logs the change; the next resync applies it.
  REQUIRE(WaitForLog(log, "applied", ReadFile(log).find("10.77.2.23:8080 is down", log_size)));
  std::multiset<std::string> without_b3 = NewConnections("10.77.0.100", 12);
  INFO("log after b3 went down:\n" << ReadFile(log));
  CHECK(without_b3.count("b1") + without_b3.count("b2") == 12);
  for (const auto& [fd, name] : owner) {
    if (name == "b3") {
      CHECK(Ask(fd) == "b3");
    }
  }
  // The Kubernetes Service's only endpoint is down: refused, not black-holed.
  CHECK(ConnectToVip("10.77.0.101") < 0);

  // b2 goes down in the file: the file changes and SIGHUP asks for the reload.
  log_size = ReadFile(log).size();
  WriteFile(config, Config("down", manifests));
  app.Signal(SIGHUP);
  REQUIRE(WaitForLog(log, "reloaded", log_size));

  // Established connections on b1/b3 keep their backend; b2's connections
  // no longer reach b2 (their packets now go to a backend without that
  // socket, which resets them).
  int kept = 0;
  for (const auto& [fd, name] : owner) {
    const std::string again = Ask(fd);
    if (name == "b2") {
      CHECK(again.empty());  // now sent to a backend without the socket: reset
    } else {
      CHECK(again == name);
      kept += again == name;
    }
    close(fd);
  }
  CHECK(kept > 0);
  CHECK(b2_had_flows);  // 30 connections over 3 backends: (2/3)^30 odds against

  // New connections go to the one backend both up and healthy.
  std::multiset<std::string> last = NewConnections("10.77.0.100", 10);
  CHECK(last.count("b1") == 10);

  // SIGUSR1 prints counters and health; a clean stop exits 0.
  app.Signal(SIGUSR1);
  CHECK(WaitForLog(log, "dpv2_lb_backend_up{backend=\"10.77.2.23:8080\"} 0", 0, 3));
  const std::string out = ReadFile(log);
  CHECK(out.find("dpv2_lb_service_new_connections") != std::string::npos);
  CHECK(out.find("dpv2_lb_nat_collisions ") != std::string::npos);
  CHECK(out.find("dpv2_lb_nat_collisions 0\n") == std::string::npos);
  CHECK(out.find("drops{reason=\"lb_source_range_denied\"}") != std::string::npos);
  CHECK(app.Stop() == 0);
  std::remove(config.c_str());
  std::remove(manifests.c_str());
  std::remove(log.c_str());
}

}  // namespace
