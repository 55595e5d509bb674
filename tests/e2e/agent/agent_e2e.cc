#include "agent_e2e.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "catch_session.h"
#include "dpv2/ebpf.h"

namespace dpv2::e2e {
namespace {
std::string g_agent_path;
}  // namespace

const std::string& AgentPath() { return g_agent_path; }

std::string PodYaml(const PodPlan& p) {
  return absl::StrCat("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: ", p.name,
                      "\n  namespace: shop\n  labels: {app: ", p.app,
                      "}\n  annotations: {dpv2.dev/host-interface: ", p.host_ifname,
                      "}\nspec: {nodeName: node-a}\nstatus: {phase: Running, podIP: ", p.ip,
                      ", podIPs: [{ip: ", p.ip, "}]}\n");
}

absl::Status StartEchoPods(const netlab::Netns& node, const std::vector<PodPlan>& plans,
                           uint16_t port, std::map<std::string, netlab::Pod>* pods,
                           std::vector<std::unique_ptr<netlab::EchoServer>>* servers) {
  for (const PodPlan& p : plans) {
    absl::StatusOr<netlab::Pod> pod = netlab::Pod::Create(
        node, {.name = p.name, .host_ifname = p.host_ifname, .addresses = {p.ip}});
    if (!pod.ok()) {
      return pod.status();
    }
    absl::StatusOr<std::unique_ptr<netlab::EchoServer>> server =
        netlab::EchoServer::Start(pod->netns(), {.name = p.name, .port = port});
    if (!server.ok()) {
      return server.status();
    }
    servers->push_back(*std::move(server));
    pods->emplace(p.name, *std::move(pod));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HttpGet(const netlab::Netns& ns, uint16_t port,
                                    const std::string& path) {
  absl::StatusOr<int> fd = ns.OpenSocket(AF_INET, SOCK_STREAM);
  if (!fd.ok()) {
    return fd.status();
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(*fd);
    return absl::UnavailableError(absl::StrCat("connect :", port, ": ", strerror(errno)));
  }
  std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n");
  send(*fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[8192];
  ssize_t n;
  while ((n = recv(*fd, buf, sizeof(buf), 0)) > 0) {
    reply.append(buf, n);
  }
  close(*fd);
  size_t body = reply.find("\r\n\r\n");
  if (body == std::string::npos) {
    return absl::UnavailableError("no HTTP response");
  }
  return reply.substr(body + 4);
}

double Sample(const std::string& metrics, const std::string& name) {
  size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(metrics.substr(at + name.size() + 2));
}

absl::StatusOr<std::string> WaitReconciled(const netlab::Netns& ns, uint16_t port) {
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (absl::Now() < end) {
    absl::StatusOr<std::string> m = HttpGet(ns, port, "/metrics");
    if (m.ok() && m->find("dpv2_reconciles_total{result=\"success\"} 0") == std::string::npos &&
        m->find("dpv2_reconciles_total{result=\"success\"}") != std::string::npos) {
      return m;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError("the agent did not reconcile within 20 s");
}

int RunAgentE2e(absl::string_view program, int argc, char** argv) {
  if (std::optional<int> code = netlab::ExitCodeIfUnprivileged(program)) {
    return *code;
  }
  if (argc < 2) {
    std::cerr << "usage: " << program << " PATH-TO-dpv2-agent [catch args]\n";
    return 2;
  }
  g_agent_path = argv[1];
  absl::StatusOr<std::unique_ptr<Backend>> probe = MakeEbpfBackend(
      {.config = {.maglev_table_size = 251, .max_services = 8, .max_backends = 8,
                  .max_tables = 8, .ct_tcp_entries = 64, .ct_other_entries = 64,
                  .max_affinity = 8, .max_source_ranges = 8, .max_endpoints = 8,
                  .max_ipcache = 8, .max_policy_entries = 8}});
  if (!probe.ok()) {
    return netlab::SkipOrFail(
        program, absl::StrCat("cannot load BPF programs: ", probe.status().ToString()));
  }
  probe->reset();
  argv[1] = argv[0];
  return dpv2::testing::RunCatchSession(argc - 1, argv + 1);
}

}  // namespace dpv2::e2e
