// The agent's control socket: a ControlServer on a temporary unix socket
// over a sim backend and a ClusterView of test manifests, driven by
// ControlClient, raw socket writes and the dpv2ctl binary.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/control/control_client.h"
#include "agent/control/control_server.h"
#include "agent/reports.h"
#include "control_test_cluster.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"

namespace dpv2::agent {
namespace {

using testing::Event;
using testing::MakeClusterView;

std::string TempPath(const std::string& what) {
  static std::atomic<int> counter{0};
  return absl::StrCat("/tmp/dpv2-ctl-", getpid(), "-", counter++, "-", what);
}

// What the daemon holds: a view applied to a sim backend, a flow hub, and
// the control server over them. The sim's clock is `now`.
struct TestAgent {
  TestAgent() : view(MakeClusterView()) {
    absl::StatusOr<std::unique_ptr<Backend>> b =
        MakeSimBackend({.clock = [this] { return now.load(); }});
    REQUIRE(b.ok());
    backend = *std::move(b);
    REQUIRE(view.ApplyTo(*backend).ok());
    absl::StatusOr<std::unique_ptr<ControlServer>> s = ControlServer::Start(
        {.socket_path = path},
        {.with_state =
             [this](const std::function<void(ClusterView&, Backend&)>& fn) {
               absl::MutexLock lock(&mu);
               fn(view, *backend);
             },
         .flows = &hub,
         .datapath_now_ns = [this] { return now.load(); }});
    REQUIRE(s.ok());
    server = *std::move(s);
  }

  ControlClient Client() const {
    absl::StatusOr<ControlClient> c = ControlClient::Connect({.socket_path = path});
    REQUIRE(c.ok());
    return *c;
  }

  // A TCP SYN from local pod x/a to `dst`:`dport`, as a real packet.
  PacketOutcome SynFromA(const std::string& dst, uint16_t dport, uint16_t sport) {
    std::optional<LocalEndpoint> ep = view.LocalEndpointOf("x/a");
    REQUIRE(ep.has_value());
    std::vector<uint8_t> frame =
        PacketBuilder().Eth(ep->mac, ep->host_mac).IPv4("10.0.1.1", dst).Tcp(sport, dport, 0x02).Build();
    absl::MutexLock lock(&mu);
    absl::StatusOr<PacketOutcome> out =
        backend->RunPacket({.entry = Entry::kFromPod, .ifindex = ep->ifindex, .frame = frame});
    REQUIRE(out.ok());
    return *out;
  }

  std::vector<ConntrackEntry> Conntrack() {
    absl::MutexLock lock(&mu);
    absl::StatusOr<std::vector<ConntrackEntry>> entries = backend->DumpConntrack();
    REQUIRE(entries.ok());
    return *entries;
  }

  std::string path = TempPath("agent.sock");
  std::atomic<uint64_t> now{uint64_t{1000} * 1000000000};
  absl::Mutex mu;
  ClusterView view;
  std::unique_ptr<Backend> backend;
  FlowHub hub;
  std::unique_ptr<ControlServer> server;  // declared last: stopped first
};

// Sends raw bytes and returns the first response line.
nlohmann::json RawExchange(const std::string& path, const std::string& bytes) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the server may answer and close before reading it all
    }
    off += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);  // the request ends here, newline or not
  std::string reply;
  char buf[4096];
  while (reply.find('\n') == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  REQUIRE(reply.find('\n') != std::string::npos);
  return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
}

template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 500 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

TEST_CASE("control: services, endpoints and identities answer what the offline reports compute") {
  TestAgent agent;
  ControlClient client = agent.Client();
  nlohmann::json response;
  absl::StatusOr<nlohmann::json> services = client.Call({{"command", "services"}}, &response);
  REQUIRE(services.ok());
  CHECK(response["node"] == "node-1");
  CHECK(*services == ServicesJson(agent.view));
  CHECK(services->size() >= 5);
  absl::StatusOr<nlohmann::json> endpoints = client.Call({{"command", "endpoints"}});
  REQUIRE(endpoints.ok());
  CHECK(*endpoints == EndpointsJson(agent.view));
  REQUIRE(endpoints->size() == 2);
  CHECK((*endpoints)[0]["pod"] == "x/a");
  absl::StatusOr<nlohmann::json> ids = client.Call({{"command", "identities"}});
  REQUIRE(ids.ok());
  CHECK(*ids == IdentitiesJson(agent.view));
  CHECK(agent.server->requests_served() == 3);
}

TEST_CASE("control: policy shows a pod's compiled entries after the view was applied") {
  TestAgent agent;  // the view is applied: nothing is pending any more
  REQUIRE(agent.view.PendingChanges().policy_upsert.empty());
  absl::StatusOr<nlohmann::json> policy =
      agent.Client().Call({{"command", "policy"}, {"pod", "x/b"}});
  REQUIRE(policy.ok());
  CHECK((*policy)["pod"] == "x/b");
  REQUIRE_FALSE((*policy)["entries"].empty());
  bool allows_8080 = false;
  for (const nlohmann::json& e : (*policy)["entries"]) {
    allows_8080 |= e["direction"] == "ingress" && e["ports"] == "8080" && e["verdict"] == "allow" &&
                   e["policies"] == nlohmann::json({"NetworkPolicy x/only-x"});
  }
  CHECK(allows_8080);
  CHECK(PolicyText(*policy).find("pod x/b (endpoint ") == 0);
}

TEST_CASE("control: bad requests get a clear error and the server keeps serving") {
  TestAgent agent;
  ControlClient client = agent.Client();
  absl::StatusOr<nlohmann::json> unknown = client.Call({{"command", "teleport"}});
  CHECK(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(unknown.status().message() ==
        "request command: unknown \"teleport\" (known: services, endpoints, identities, policy, "
        "ct, trace, observe)");
  absl::StatusOr<nlohmann::json> no_pod = client.Call({{"command", "policy"}});
  CHECK(no_pod.status().message() == "policy: missing \"pod\"");
  absl::StatusOr<nlohmann::json> bad_pod = client.Call({{"command", "policy"}, {"pod", 7}});
  CHECK(bad_pod.status().message() == "policy pod: must be a non-empty string, got 7");
  absl::StatusOr<nlohmann::json> remote = client.Call({{"command", "policy"}, {"pod", "y/c"}});
  CHECK(remote.status().code() == absl::StatusCode::kNotFound);
  absl::StatusOr<nlohmann::json> no_command = client.Call({{"pod", "x/a"}});
  CHECK(no_command.status().message() == "request: missing \"command\" (a string)");
  absl::StatusOr<nlohmann::json> bad_ct = client.Call({{"command", "ct"}, {"action", "drop"}});
  CHECK(bad_ct.status().message() == "ct action: \"drop\" is neither list nor flush");
  absl::StatusOr<nlohmann::json> bad_trace =
      client.Call({{"command", "trace"}, {"from", "x/a"}, {"to", "10.96.0.10"}, {"port", 0}});
  CHECK(bad_trace.status().message() == "trace port: must be an integer 1-65535, got 0");
  absl::StatusOr<nlohmann::json> bad_filter =
      client.Call({{"command", "observe"}, {"filter", {{"verdict", "maybe"}}}});
  CHECK(bad_filter.status().code() == absl::StatusCode::kInvalidArgument);

  nlohmann::json malformed = RawExchange(agent.path, "{\"command\": \"services\"\n");
  CHECK(malformed["ok"] == false);
  CHECK(malformed["code"] == "INVALID_ARGUMENT");
  CHECK(malformed["error"].get<std::string>().rfind("request: not valid JSON: ", 0) == 0);
  nlohmann::json array = RawExchange(agent.path, "[1, 2]\n");
  CHECK(array["error"] == "request: expected a JSON object, got array");
  nlohmann::json huge = RawExchange(agent.path, std::string(kMaxRequestBytes + 10, 'x'));
  CHECK(huge["error"] == "request: longer than 65536 bytes");
  // A last line ended by closing the write side instead of "\n" is accepted.
  nlohmann::json unterminated = RawExchange(agent.path, "{\"command\": \"identities\"}");
  CHECK(unterminated["ok"] == true);

  CHECK(client.Call({{"command", "services"}}).ok());
}

TEST_CASE("control: ct list decodes entries with state, NAT, backend, age and expiry; ct flush empties") {
  TestAgent agent;
  PacketOutcome out = agent.SynFromA("10.96.0.10", 80, 41000);
  REQUIRE(out.verdict != Verdict::kDrop);
  agent.now += uint64_t{5} * 1000000000;  // 5 s later
  ControlClient client = agent.Client();
  absl::StatusOr<nlohmann::json> ct = client.Call({{"command", "ct"}, {"action", "list"}});
  REQUIRE(ct.ok());
  REQUIRE(ct->size() == 2);
  const nlohmann::json* service = nullptr;
  const nlohmann::json* flow = nullptr;
  for (const nlohmann::json& e : *ct) {
    (e["service_entry"].get<bool>() ? service : flow) = &e;
  }
  REQUIRE(service != nullptr);
  REQUIRE(flow != nullptr);
  CHECK((*service)["source"] == "10.0.1.1:41000");
  CHECK((*service)["destination"] == "10.96.0.10:80");
  CHECK((*service)["service"] == "shop/web");
  CHECK((*service)["state"] == "SYN_SENT");
  CHECK((*service)["age_s"] == 5.0);
  CHECK((*service)["expires_in_s"] == 55.0);  // the 60 s SYN timeout
  CHECK((*service)["expired"] == false);
  const std::string backend = (*service)["backend"].get<std::string>();
  CHECK((*flow)["destination"] == backend);
  CHECK((*flow)["reverse_nat"] == "10.96.0.10:80");
  CHECK(ConntrackText(*ct).find("TCP 10.0.1.1:41000 -> 10.96.0.10:80 service  SYN_SENT  backend ") !=
        std::string::npos);

  agent.now += uint64_t{60} * 1000000000;
  absl::StatusOr<nlohmann::json> later = client.Call({{"command", "ct"}, {"action", "list"}});
  REQUIRE(later.ok());
  CHECK((*later)[0]["expired"] == true);

  absl::StatusOr<nlohmann::json> flushed = client.Call({{"command", "ct"}, {"action", "flush"}});
  REQUIRE(flushed.ok());
  CHECK((*flushed)["flushed"] == 2);
  CHECK(agent.Conntrack().empty());
  CHECK(client.Call({{"command", "ct"}, {"action", "list"}})->empty());
}

TEST_CASE("control: trace runs one packet through the live backend without touching live entries") {
  TestAgent agent;
  agent.SynFromA("10.96.0.10", 80, 40000);  // a live connection on port 40000
  std::vector<ConntrackEntry> before = agent.Conntrack();
  REQUIRE(before.size() == 2);
  absl::StatusOr<nlohmann::json> trace = agent.Client().Call(
      {{"command", "trace"}, {"from", "x/a"}, {"to", "10.96.0.10"}, {"port", 80}});
  REQUIRE(trace.ok());
  CHECK((*trace)["backend"] == "sim");
  CHECK((*trace)["sport"] == 40001);  // 40000 is in use by x/a
  CHECK((*trace)["verdict"] != "DROP");
  CHECK((*trace)["entry"].get<std::string>().rfind("from pod x/a (ifindex ", 0) == 0);
  REQUIRE_FALSE((*trace)["steps"].empty());
  CHECK(TraceText(*trace).find("result: ") != std::string::npos);

  // The live connection's entries are byte for byte as before; the trace
  // added only the two entries of its own (SYN-timeout) flow.
  std::vector<ConntrackEntry> after = agent.Conntrack();
  REQUIRE(after.size() == 4);
  CHECK(testing::AllKeptAsWere(before, after));
  for (const ConntrackEntry& e : after) {
    const uint16_t sport = static_cast<uint16_t>((e.key.sport >> 8) | (e.key.sport << 8));
    const uint16_t dport = static_cast<uint16_t>((e.key.dport >> 8) | (e.key.dport << 8));
    CHECK((sport == 40000 || sport == 40001 || dport == 40000 || dport == 40001));
    CHECK_FALSE((e.value.flags & DPV2_CT_F_SEEN_NON_SYN));
  }
}

TEST_CASE("control: trace of a pod that is not on this node says so") {
  TestAgent agent;
  absl::StatusOr<nlohmann::json> trace = agent.Client().Call(
      {{"command", "trace"}, {"from", "y/c"}, {"to", "10.96.0.10"}, {"port", 80}});
  CHECK(trace.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(trace.status().message() ==
        "trace from: pod y/c is not on node \"node-1\" (offline: pick its node with --node)");
}

TEST_CASE("control: observe streams the flows its filters match, then ends after count") {
  TestAgent agent;
  ControlClient client = agent.Client();
  std::vector<nlohmann::json> flows;
  std::thread publisher([&] {
    REQUIRE(Eventually([&] { return agent.hub.subscriber_count() == 1; }));
    for (uint16_t i = 1; i <= 10; ++i) {
      FlowEvent e = Event(i % 2 ? "10.0.1.1" : "10.0.2.3", 30000 + i, "10.0.1.2", 8080,
                          i % 3 ? DPV2_EVENT_TRACE : DPV2_EVENT_DROP);
      FlowRecord r;
      {
        absl::MutexLock lock(&agent.mu);
        r = EnrichFlow(e, agent.view);
      }
      agent.hub.Publish(r);
    }
  });
  absl::Status s = client.Stream(
      {{"command", "observe"},
       {"filter", {{"pod", "y/c"}, {"verdict", "forwarded"}, {"port", 8080}}},
       {"count", 2}},
      [&](const nlohmann::json& line) {
        flows.push_back(line);
        return true;
      });
  publisher.join();
  REQUIRE(s.ok());
  // From y/c (even i), not dropped (i % 3 != 0): i = 2, 4 (then count ends it).
  REQUIRE(flows.size() == 2);
  CHECK(flows[0]["flow"]["source"]["port"] == 30002);
  CHECK(flows[1]["flow"]["source"]["port"] == 30004);
  CHECK(flows[0]["flow"]["source"]["pod"] == "y/c");
  CHECK(flows[0]["flow"]["destination"]["pod"] == "x/b");
  CHECK(Eventually([&] { return agent.hub.subscriber_count() == 0; }));
}

TEST_CASE("control: an observer that closes is unsubscribed; one that stops reading blocks nobody") {
  TestAgent agent;
  // Observer 1 reads one flow and hangs up.
  std::thread reader([&] {
    absl::Status s = agent.Client().Stream({{"command", "observe"}},
                                           [](const nlohmann::json&) { return false; });
    CHECK(s.ok());
  });
  // Observer 2 asks and never reads a byte.
  int silent = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(silent >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, agent.path.data(), agent.path.size());
  REQUIRE(connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  const std::string req = "{\"command\": \"observe\"}\n";
  REQUIRE(send(silent, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
  REQUIRE(Eventually([&] { return agent.hub.subscriber_count() == 2; }));

  FlowRecord r = EnrichFlow(Event("10.0.1.1", 40000, "10.0.1.2", 8080), agent.view);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20000; ++i) {
    agent.hub.Publish(r);  // big enough to fill the silent socket's buffers
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  reader.join();
  CHECK(Eventually([&] { return agent.hub.subscriber_count() == 1; }));
  // Other clients are still served while the silent observer is stuck.
  CHECK(agent.Client().Call({{"command", "services"}}).ok());
  close(silent);
  CHECK(Eventually([&] { return agent.hub.subscriber_count() == 0; }));
}

TEST_CASE("control: concurrent clients are all answered") {
  TestAgent agent;
  agent.SynFromA("10.96.0.10", 80, 40000);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      ControlClient client = agent.Client();
      for (int i = 0; i < 10; ++i) {
        nlohmann::json req = t % 2 ? nlohmann::json{{"command", "ct"}, {"action", "list"}}
                                   : nlohmann::json{{"command", "services"}};
        absl::StatusOr<nlohmann::json> r = client.Call(req);
        if (r.ok() && r->size() >= 2) {
          ++ok;
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  CHECK(ok == 80);
}

TEST_CASE("control: the socket is mode 0600, refused while served, replaced when stale, removed at stop") {
  std::string path;
  {
    TestAgent agent;
    path = agent.path;
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    absl::StatusOr<std::unique_ptr<ControlServer>> second = ControlServer::Start(
        {.socket_path = path}, {.with_state = [](const auto&) {}});
    CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  struct stat st {};
  CHECK(stat(path.c_str(), &st) != 0);

  // A socket file left by a dead process (bound, nobody listening).
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  close(fd);
  FlowHub hub;
  absl::StatusOr<std::unique_ptr<ControlServer>> server =
      ControlServer::Start({.socket_path = path}, {.with_state = [](const auto&) {}, .flows = &hub});
  CHECK(server.ok());
  server->reset();

  // Anything else at the path is left alone.
  { std::ofstream(path) << "not a socket"; }
  absl::StatusOr<std::unique_ptr<ControlServer>> refused =
      ControlServer::Start({.socket_path = path}, {.with_state = [](const auto&) {}});
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  unlink(path.c_str());
}

TEST_CASE("control: past max_connections a client is told to retry, and served once one ends") {
  FlowHub hub;
  const std::string path = TempPath("busy.sock");
  absl::StatusOr<std::unique_ptr<ControlServer>> server =
      ControlServer::Start({.socket_path = path, .max_connections = 1},
                           {.with_state = [](const auto&) {}, .flows = &hub});
  REQUIRE(server.ok());
  ControlClient client = *ControlClient::Connect({.socket_path = path});
  std::atomic<bool> stop{false};
  std::thread observer([&] {
    CHECK(client.Stream({{"command", "observe"}}, [&](const nlohmann::json&) { return !stop; })
              .ok());
  });
  REQUIRE(Eventually([&] { return hub.subscriber_count() == 1; }));
  absl::StatusOr<nlohmann::json> busy = client.Call({{"command", "services"}});
  CHECK(busy.status().code() == absl::StatusCode::kUnavailable);
  CHECK(busy.status().message() == "control socket: 1 sessions open; try again");
  stop = true;
  hub.Publish(FlowRecord{.time = absl::Now(), .verdict = "FORWARDED"});  // observer hangs up
  observer.join();
  // Served again (this target's with_state never runs the request).
  absl::StatusOr<nlohmann::json> later = absl::UnavailableError("not tried");
  CHECK(Eventually([&] {
    later = client.Call({{"command", "services"}});
    return later.status().message() != "control socket: 1 sessions open; try again";
  }));
  CHECK(later.status().message() == "control: the agent did not run the request (stopping?)");
}

TEST_CASE("control: a client without an agent is told where it looked") {
  absl::StatusOr<ControlClient> c = ControlClient::Connect({.socket_path = TempPath("none.sock")});
  CHECK(c.status().code() == absl::StatusCode::kUnavailable);
  CHECK(c.status().message().find("is dpv2-agent running?") != absl::string_view::npos);
}

// Runs dpv2ctl (path in env DPV2CTL, set by meson) and returns its stdout.
std::string RunDpv2ctl(const std::string& args) {
  const char* bin = std::getenv("DPV2CTL");
  REQUIRE(bin != nullptr);
  std::string out;
  FILE* p = popen(absl::StrCat(bin, " ", args, " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  int rc = pclose(p);
  INFO(out);
  CHECK(rc == 0);
  return out;
}

TEST_CASE("dpv2ctl prints the same reports from the agent's socket as offline from manifests") {
  TestAgent agent;
  const std::string manifests = TempPath("cluster.yaml");
  { std::ofstream(manifests) << testing::kClusterYaml; }
  // Removed however the case ends: a failed REQUIRE in RunDpv2ctl throws.
  std::unique_ptr<const std::string, void (*)(const std::string*)> remove_manifests(
      &manifests, [](const std::string* p) { unlink(p->c_str()); });
  for (const std::string cmd :
       {"services", "services --output json", "endpoints", "identities", "policy x/b",
        "policy x/a --output json"}) {
    INFO(cmd);
    std::string online = RunDpv2ctl(absl::StrCat("--socket ", agent.path, " ", cmd));
    std::string offline = RunDpv2ctl(absl::StrCat("-f ", manifests, " --node node-1 ", cmd));
    CHECK(online == offline);
    CHECK_FALSE(online.empty());
  }
  CHECK(RunDpv2ctl(absl::StrCat("--socket ", agent.path, " ct list")) == "no conntrack entries\n");
}

}  // namespace
}  // namespace dpv2::agent
