// netlab: network-namespace topologies for end-to-end tests and benchmarks.
//
// A test builds a small network out of named network namespaces joined by
// veth pairs (a node, pods hanging off it the way Cilium wires them, a client
// outside), runs real TCP/UDP servers and clients inside them, and gets
// everything removed again when its objects go out of scope, even when it
// fails or throws. Names carry the creating process id, so parallel runs do not
// collide and leftovers of a crashed run are swept by the next one.
// Everything here needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN): start a test
// program with ExitCodeIfUnprivileged. Nothing touches the host's interfaces,
// routes or firewall: every link is created inside a namespace made here.
//
//   absl::StatusOr<netlab::Netns> node = netlab::Netns::Create("node");
//   absl::StatusOr<netlab::Pod> web = netlab::Pod::Create(
//       *node, {.name = "web-1", .host_ifname = "lxc1", .addresses = {"10.0.1.5"}});
//   absl::StatusOr<std::string> reply = netlab::TcpExchange(web->netns(), vip, 80, "hi");
#ifndef DPV2_TESTS_SUPPORT_NETLAB_NETLAB_H_
#define DPV2_TESTS_SUPPORT_NETLAB_NETLAB_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dpv2/net.h"

namespace dpv2::netlab {

// nullopt when this process may build topologies. Otherwise prints why to
// stderr and returns the exit code a test program should end with: 77 (meson
// "skipped"), or 1 when the environment says CI=true, where a skip hides a
// missing test run and so is a failure.
std::optional<int> ExitCodeIfUnprivileged(absl::string_view program);

// The same decision for a missing capability other than root (BPF, a tool):
// 77, or 1 under CI=true, after printing `why`.
int SkipOrFail(absl::string_view program, absl::string_view why);

// Runs argv (argv[0] searched in PATH) to completion. Its stdout and stderr
// are captured into `output` when given; a non-zero exit is an error naming
// the command and quoting what it printed. `input` is fed to its stdin.
absl::Status RunCommand(const std::vector<std::string>& argv, std::string* output = nullptr,
                        absl::string_view input = {});

// Removes namespaces and bpffs mounts that earlier netlab processes left
// behind (their pid is gone). Create() calls it once per process.
void SweepStale();

struct MacAddr {
  std::array<uint8_t, 6> bytes{};
  std::string ToString() const;  // "0a:00:00:00:00:05"
  friend bool operator==(const MacAddr&, const MacAddr&) = default;
};

struct Interface {
  std::string name;
  uint32_t ifindex = 0;
  MacAddr mac;
};

// A named network namespace ("dpv2-<pid>-<label>", visible to `ip netns`),
// deleted with its interfaces when the object is destroyed.
class Netns {
 public:
  static absl::StatusOr<Netns> Create(absl::string_view label);

  Netns(Netns&& other) noexcept;
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  const std::string& name() const { return name_; }
  // An open descriptor of the namespace (for setns), valid while this lives.
  int fd() const { return fd_; }

  // `ip -n <name> <args>`; args are split at whitespace:
  //   ns.Ip("addr add 10.0.0.1/24 dev eth0")
  absl::Status Ip(absl::string_view args) const;
  // Several `ip` commands in one process (`ip -batch`), one per element.
  absl::Status IpBatch(const std::vector<std::string>& commands) const;
  // Runs argv inside the namespace (`ip netns exec`), output captured.
  absl::Status Exec(const std::vector<std::string>& argv, std::string* output = nullptr) const;
  // Writes /proc/sys/<key with dots as slashes> as seen from the namespace.
  absl::Status SetSysctl(absl::string_view key, absl::string_view value) const;
  absl::StatusOr<std::string> GetSysctl(absl::string_view key) const;
  // Forwarding on for IPv4 and IPv6 and reverse-path filtering off: what a
  // node namespace needs to route between its pods and its external link.
  absl::Status ConfigureAsRouter() const;
  absl::StatusOr<Interface> GetInterface(absl::string_view ifname) const;

  // Runs fn on a fresh thread that entered this namespace, and waits for it.
  // Sockets created there belong to the namespace for their whole life, so
  // the usual pattern is to create them here and use them from any thread.
  absl::Status Run(const std::function<absl::Status()>& fn) const;
  // A socket(2) created inside the namespace; the caller owns the descriptor.
  absl::StatusOr<int> OpenSocket(int domain, int type, int protocol = 0) const;

 private:
  Netns(std::string name, int fd) : name_(std::move(name)), fd_(fd) {}
  void Destroy();

  std::string name_;
  int fd_ = -1;
};

// A veth pair: `a_ifname` in `a`, `b_ifname` in `b`, both up.
absl::Status AddVeth(const Netns& a, absl::string_view a_ifname, const Netns& b,
                     absl::string_view b_ifname);

// The pod's default gateway: a link-local address that exists nowhere, with a
// permanent neighbour entry pointing at the host-side veth (as Cilium does),
// so that everything a pod sends lands on the host veth's tc ingress.
inline constexpr absl::string_view kPodGatewayV4 = "169.254.1.1";
inline constexpr absl::string_view kPodGatewayV6 = "fe80::1";

struct PodOptions {
  std::string name;         // the namespace label, and what its servers answer with
  std::string host_ifname;  // the node-side veth end (at most 15 characters)
  // Its addresses: IPv4 ones become /32, IPv6 ones /128 on the pod's eth0.
  std::vector<std::string> addresses;
  // Also route each address to the host veth in the node namespace, with a
  // permanent neighbour entry for the pod's MAC, so that the node's kernel can
  // forward to the pod without any datapath program (kube-proxy peers).
  bool node_routes = true;
};

// A pod: its own namespace with eth0, whose veth peer lives in the node's
// namespace. Destroying the pod removes its namespace and both veth ends.
class Pod {
 public:
  static absl::StatusOr<Pod> Create(const Netns& node, const PodOptions& options);

  const std::string& name() const { return name_; }
  const Netns& netns() const { return ns_; }
  const std::vector<IpAddr>& addresses() const { return addresses_; }
  const IpAddr& ip() const { return addresses_.front(); }
  const Interface& eth0() const { return eth0_; }  // inside the pod
  const Interface& host() const { return host_; }  // in the node namespace

 private:
  Pod(std::string name, Netns ns) : name_(std::move(name)), ns_(std::move(ns)) {}

  std::string name_;
  Netns ns_;
  std::vector<IpAddr> addresses_;
  Interface eth0_;
  Interface host_;
};

// A bpffs instance mounted on a fresh directory
// (/tmp/dpv2-bpffs-<pid>-<label>-XXXXXX); unmounted and removed on
// destruction. Child processes of this one see it at the same path.
class BpffsMount {
 public:
  static absl::StatusOr<BpffsMount> Create(absl::string_view label);

  BpffsMount(BpffsMount&& other) noexcept;
  BpffsMount& operator=(BpffsMount&& other) noexcept;
  BpffsMount(const BpffsMount&) = delete;
  BpffsMount& operator=(const BpffsMount&) = delete;
  ~BpffsMount();

  const std::string& path() const { return path_; }

 private:
  explicit BpffsMount(std::string path) : path_(std::move(path)) {}
  void Destroy();

  std::string path_;
};

// A TCP and UDP server on one port (IPv4 and IPv6, any address) inside a
// namespace. Every newline-terminated line it receives on a TCP connection,
// and every UDP datagram, is answered with "<name> <line>", so a client learns
// which pod served it; a UDP reply leaves from the address the datagram was
// sent to. Serves from one thread until destroyed.
struct EchoServerOptions {
  std::string name;
  uint16_t port = 0;
  bool tcp = true;
  bool udp = true;
  // Answer "<name> <peer address> <line>" instead: the address the server
  // saw the connection or datagram come from (what a NAT made of the client).
  bool report_peer = false;
};

class EchoServer {
 public:
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(const Netns& ns,
                                                           const EchoServerOptions& options);
  ~EchoServer();

  const std::string& name() const { return name_; }
  // TCP connections accepted and UDP datagrams answered so far.
  uint64_t tcp_connections() const { return tcp_connections_.load(); }
  uint64_t udp_datagrams() const { return udp_datagrams_.load(); }

 private:
  EchoServer(std::string name, bool report_peer, int tcp_fd, int udp_fd, int wake_fd);
  void Serve();

  std::string name_;
  bool report_peer_;
  int tcp_fd_;
  int udp_fd_;
  int wake_fd_;
  std::atomic<uint64_t> tcp_connections_{0};
  std::atomic<uint64_t> udp_datagrams_{0};
  std::thread thread_;
};

inline constexpr absl::Duration kDefaultTimeout = absl::Seconds(2);

// An open TCP connection made from inside a namespace. Errors of Connect and
// Exchange: a refused connection (RST, ICMP port unreachable) satisfies
// IsConnectionRefused; no answer in time is DeadlineExceeded.
class TcpConnection {
 public:
  static absl::StatusOr<TcpConnection> Connect(const Netns& ns, const IpAddr& addr, uint16_t port,
                                               absl::Duration timeout = kDefaultTimeout);
  TcpConnection(TcpConnection&& other) noexcept;
  TcpConnection& operator=(TcpConnection&& other) noexcept;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;
  ~TcpConnection();

  // Sends one line and returns the reply line (without its newline).
  absl::StatusOr<std::string> Exchange(absl::string_view message,
                                       absl::Duration timeout = kDefaultTimeout);
  // The address and port the kernel sees as the peer (the one connected to).
  absl::StatusOr<std::pair<IpAddr, uint16_t>> Peer() const;
  uint16_t local_port() const { return local_port_; }

 private:
  explicit TcpConnection(int fd, uint16_t local_port) : fd_(fd), local_port_(local_port) {}

  int fd_ = -1;
  uint16_t local_port_ = 0;
  std::string pending_;  // bytes read past the last returned line
};

// One connection, one line, one reply, closed.
absl::StatusOr<std::string> TcpExchange(const Netns& ns, const IpAddr& addr, uint16_t port,
                                        absl::string_view message,
                                        absl::Duration timeout = kDefaultTimeout);
// One datagram from a connected UDP socket (so only a reply from addr:port
// is accepted) and its reply datagram.
absl::StatusOr<std::string> UdpExchange(const Netns& ns, const IpAddr& addr, uint16_t port,
                                        absl::string_view message,
                                        absl::Duration timeout = kDefaultTimeout);

// The server name at the start of an EchoServer reply.
std::string ServerName(absl::string_view reply);
bool IsConnectionRefused(const absl::Status& status);

// A child process (fork + exec), optionally inside a namespace. Its stdout is
// a pipe read line by line (to wait for "ready"); stderr is inherited. It is
// killed (SIGKILL) when the thread that spawned it ends (so spawn long-lived
// children from the main thread), and on destruction if still running.
class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                            const Netns* ns = nullptr);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // The next line the child printed, without its newline; NotFound at EOF.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout = kDefaultTimeout);
  // Sends `signal` and waits until it exits; returns the wait status.
  absl::StatusOr<int> Kill(int signal, absl::Duration timeout = kDefaultTimeout);
  // Waits for the child to exit on its own; returns its wait status.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  ChildProcess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}
  void Destroy();

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string pending_;
};

}  // namespace dpv2::netlab

#endif  // DPV2_TESTS_SUPPORT_NETLAB_NETLAB_H_
