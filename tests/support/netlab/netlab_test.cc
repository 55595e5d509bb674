// netlab itself: namespaces appear and vanish, links carry real traffic,
// pods are wired as documented, clients tell refusals from timeouts.
// Needs root; unprivileged it exits 77 (skip) unless CI=true.
#include "netlab/netlab.h"

#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "catch_session.h"
#include "netlab/require_ok.h"

namespace dpv2::netlab {
namespace {

bool NetnsExists(const std::string& name) {
  struct stat st;
  return stat(("/var/run/netns/" + name).c_str(), &st) == 0;
}

std::string HostIpForward() {
  std::ifstream in("/proc/sys/net/ipv4/ip_forward");
  std::string v;
  std::getline(in, v);
  return v;
}

IpAddr Ip(const char* text) { return *IpAddr::Parse(text); }

// Two namespaces on one /24: a (10.99.0.1) and b (10.99.0.2).
struct Pair {
  Netns a = Must(Netns::Create("a"));
  Netns b = Must(Netns::Create("b"));
  Pair() {
    RequireOk(AddVeth(a, "va", b, "vb"));
    RequireOk(a.Ip("addr add 10.99.0.1/24 dev va"));
    RequireOk(b.Ip("addr add 10.99.0.2/24 dev vb"));
  }
};

TEST_CASE(
    "a namespace is named after the process, visible to ip netns, and removed with its object") {
  std::string name;
  {
    Netns ns = Must(Netns::Create("life"));
    name = ns.name();
    CHECK(name == absl::StrCat("dpv2-", getpid(), "-life"));
    CHECK(NetnsExists(name));
    Netns again = Must(Netns::Create("life"));  // the same label twice gets a distinct name
    CHECK(again.name() != name);
    Netns moved = std::move(ns);
    CHECK(NetnsExists(name));
  }
  CHECK(!NetnsExists(name));
}

TEST_CASE("a namespace is removed even when the test throws") {
  std::string name;
  try {
    Netns ns = Must(Netns::Create("throw"));
    name = ns.name();
    throw std::runtime_error("test failure");
  } catch (const std::runtime_error&) {
  }
  REQUIRE(!name.empty());
  CHECK(!NetnsExists(name));
}

TEST_CASE("namespaces left by a dead process are swept, live ones are not") {
  const pid_t child = fork();
  if (child == 0) {
    _exit(0);
  }
  REQUIRE(child > 0);
  waitpid(child, nullptr, 0);
  const std::string stale = absl::StrCat("dpv2-", child, "-stale");
  RequireOk(RunCommand({"ip", "netns", "add", stale}));
  Netns mine = Must(Netns::Create("live"));
  SweepStale();
  CHECK(!NetnsExists(stale));
  CHECK(NetnsExists(mine.name()));
}

TEST_CASE("bad labels and interface names are refused before anything is created") {
  CHECK(!Netns::Create("").ok());
  CHECK(!Netns::Create("a/b").ok());
  Netns a = Must(Netns::Create("names"));
  CHECK(!AddVeth(a, "a-name-longer-than-15", a, "x").ok());
  CHECK(!AddVeth(a, "", a, "x").ok());
  CHECK(!a.GetInterface("nosuchif").ok());
  absl::Status bad = a.Ip("link set nosuchif up");
  CHECK(!bad.ok());
  CHECK(absl::StrContains(bad.message(), "nosuchif"));  // quotes the command
}

TEST_CASE("a sysctl set in a namespace reads back there and leaves the host alone") {
  Netns ns = Must(Netns::Create("sysctl"));
  const std::string host_before = HostIpForward();
  const std::string other = host_before == "1" ? "0" : "1";
  RequireOk(ns.SetSysctl("net.ipv4.ip_forward", other));
  CHECK(Must(ns.GetSysctl("net.ipv4.ip_forward")) == other);
  CHECK(HostIpForward() == host_before);
  CHECK(!ns.SetSysctl("net.ipv4.no_such_key", "1").ok());
}

TEST_CASE("real TCP and UDP cross a veth pair and the reply names the server") {
  Pair p;
  std::unique_ptr<EchoServer> server =
      Must(EchoServer::Start(p.b, {.name = "srv-b", .port = 7000}));
  CHECK(Must(TcpExchange(p.a, Ip("10.99.0.2"), 7000, "hello")) == "srv-b hello");
  CHECK(Must(UdpExchange(p.a, Ip("10.99.0.2"), 7000, "dgram")) == "srv-b dgram");
  CHECK(ServerName("srv-b hello") == "srv-b");
  TcpConnection c = Must(TcpConnection::Connect(p.a, Ip("10.99.0.2"), 7000));
  for (int i = 0; i < 3; ++i) {
    CHECK(Must(c.Exchange(absl::StrCat("m", i))) == absl::StrCat("srv-b m", i));
  }
  auto [peer, port] = Must(c.Peer());
  CHECK(peer == Ip("10.99.0.2"));
  CHECK(port == 7000);
  CHECK(c.local_port() != 0);
  CHECK(server->tcp_connections() == 2);
  CHECK(server->udp_datagrams() == 1);
}

TEST_CASE(
    "an echo server that reports its peer names the address each client came from, and answers "
    "UDP from the address asked") {
  Pair p;
  RequireOk(p.a.Ip("addr add fd00:99::1/64 dev va nodad"));
  RequireOk(p.b.Ip("addr add fd00:99::2/64 dev vb nodad"));
  std::unique_ptr<EchoServer> server =
      Must(EchoServer::Start(p.b, {.name = "srv-b", .port = 7000, .report_peer = true}));
  CHECK(Must(TcpExchange(p.a, Ip("10.99.0.2"), 7000, "tcp")) == "srv-b 10.99.0.1 tcp");
  CHECK(Must(UdpExchange(p.a, Ip("10.99.0.2"), 7000, "udp")) == "srv-b 10.99.0.1 udp");
  CHECK(Must(TcpExchange(p.a, Ip("fd00:99::2"), 7000, "tcp6")) == "srv-b fd00:99::1 tcp6");
  CHECK(Must(UdpExchange(p.a, Ip("fd00:99::2"), 7000, "udp6")) == "srv-b fd00:99::1 udp6");
  // A second address of the server's: UDP replies leave from the address
  // asked (the client's connected socket takes no other), not the first.
  RequireOk(p.b.IpBatch({"addr add 10.99.0.3/24 dev vb", "addr add fd00:99::3/64 dev vb nodad"}));
  CHECK(Must(UdpExchange(p.a, Ip("10.99.0.3"), 7000, "second")) == "srv-b 10.99.0.1 second");
  CHECK(Must(UdpExchange(p.a, Ip("fd00:99::3"), 7000, "second6")) == "srv-b fd00:99::1 second6");
}

TEST_CASE("a closed port is refused at once, an unreachable address times out") {
  Pair p;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> tcp = TcpExchange(p.a, Ip("10.99.0.2"), 7001, "x");
  CHECK(IsConnectionRefused(tcp.status()));
  absl::StatusOr<std::string> udp = UdpExchange(p.a, Ip("10.99.0.2"), 7001, "x");
  CHECK(IsConnectionRefused(udp.status()));
  CHECK(absl::Now() - start < absl::Seconds(1));
  absl::StatusOr<std::string> lost =
      TcpExchange(p.a, Ip("10.99.0.77"), 7000, "x", absl::Milliseconds(300));
  CHECK(absl::IsDeadlineExceeded(lost.status()));
  CHECK(!IsConnectionRefused(lost.status()));
}

TEST_CASE(
    "a pod has a /32, a default route via the link-local gateway and a permanent neighbour for "
    "it") {
  Netns node = Must(Netns::Create("node"));
  RequireOk(node.ConfigureAsRouter());
  Pod web = Must(Pod::Create(
      node, {.name = "web", .host_ifname = "lxcweb", .addresses = {"10.0.1.5", "fd00::5"}}));
  Pod cli = Must(Pod::Create(
      node, {.name = "cli", .host_ifname = "lxccli", .addresses = {"10.0.2.7", "fd00::7"}}));
  CHECK(web.ip() == Ip("10.0.1.5"));
  CHECK(web.addresses().size() == 2);
  CHECK(web.host().ifindex == Must(node.GetInterface("lxcweb")).ifindex);
  CHECK(web.host().mac == Must(node.GetInterface("lxcweb")).mac);
  CHECK(web.eth0().mac == Must(web.netns().GetInterface("eth0")).mac);
  std::string out;
  RequireOk(web.netns().Exec({"ip", "-4", "route", "show", "default"}, &out));
  CHECK(absl::StrContains(out, "default via 169.254.1.1 dev eth0"));
  RequireOk(web.netns().Exec({"ip", "neigh", "show", "169.254.1.1"}, &out));
  CHECK(absl::StrContains(out, web.host().mac.ToString()));
  CHECK(absl::StrContains(out, "PERMANENT"));
  RequireOk(web.netns().Exec({"ip", "-4", "addr", "show", "dev", "eth0"}, &out));
  CHECK(absl::StrContains(out, "10.0.1.5/32"));
  // The node's kernel routes between pods (node_routes), in both families.
  std::unique_ptr<EchoServer> server =
      Must(EchoServer::Start(web.netns(), {.name = "web", .port = 8080}));
  CHECK(Must(TcpExchange(cli.netns(), Ip("10.0.1.5"), 8080, "v4")) == "web v4");
  CHECK(Must(TcpExchange(cli.netns(), Ip("fd00::5"), 8080, "v6")) == "web v6");
  CHECK(Must(UdpExchange(cli.netns(), Ip("fd00::5"), 8080, "u6")) == "web u6");
}

TEST_CASE("pod options that cannot work are errors naming the pod and leave no namespace") {
  Netns node = Must(Netns::Create("node"));
  absl::StatusOr<Pod> none = Pod::Create(node, {.name = "p1", .host_ifname = "h1"});
  CHECK(!none.ok());
  CHECK(absl::StrContains(none.status().message(), "pod p1"));
  absl::StatusOr<Pod> bad =
      Pod::Create(node, {.name = "p2", .host_ifname = "h2", .addresses = {"10.0.0.300"}});
  CHECK(!bad.ok());
  CHECK(absl::StrContains(bad.status().message(), "10.0.0.300"));
  absl::StatusOr<Pod> long_if = Pod::Create(
      node, {.name = "p3", .host_ifname = "much-too-long-name", .addresses = {"10.0.0.3"}});
  CHECK(!long_if.ok());
  CHECK(!NetnsExists(absl::StrCat("dpv2-", getpid(), "-p3")));
}

TEST_CASE("a bpffs mount is a real bpf filesystem and is gone after its object") {
  std::string path;
  {
    BpffsMount m = Must(BpffsMount::Create("t"));
    path = m.path();
    struct statfs fs;
    REQUIRE(statfs(path.c_str(), &fs) == 0);
    CHECK(fs.f_type == BPF_FS_MAGIC);
  }
  struct stat st;
  CHECK(stat(path.c_str(), &st) != 0);
}

TEST_CASE("a child process runs inside the namespace, speaks by lines and can be killed") {
  Netns ns = Must(Netns::Create("child"));
  struct stat st;
  REQUIRE(fstat(ns.fd(), &st) == 0);
  ChildProcess c = Must(ChildProcess::Spawn(
      {"sh", "-c", "readlink /proc/self/ns/net; echo ready; exec sleep 30"}, &ns));
  CHECK(Must(c.ReadLine()) == absl::StrCat("net:[", st.st_ino, "]"));
  CHECK(Must(c.ReadLine()) == "ready");
  CHECK(absl::IsDeadlineExceeded(c.ReadLine(absl::Milliseconds(100)).status()));
  const int status = Must(c.Kill(SIGTERM));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  ChildProcess done = Must(ChildProcess::Spawn({"sh", "-c", "exit 3"}));
  const int exit_status = Must(done.Wait(absl::Seconds(5)));
  CHECK(WEXITSTATUS(exit_status) == 3);
  ChildProcess missing = Must(ChildProcess::Spawn({"/nonexistent/program"}));
  CHECK(WEXITSTATUS(Must(missing.Wait(absl::Seconds(5)))) == 127);
}

}  // namespace
}  // namespace dpv2::netlab

int main(int argc, char** argv) {
  if (std::optional<int> code = dpv2::netlab::ExitCodeIfUnprivileged("netlab_test")) {
    return *code;
  }
  return dpv2::testing::RunCatchSession(argc, argv);
}
