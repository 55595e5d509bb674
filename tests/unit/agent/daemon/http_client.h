// A blocking HTTP/1.1 client for the daemon tests: sends raw request bytes to
// 127.0.0.1:port and returns everything the server sent before closing; and
// free ports to listen on.
#ifndef DPV2_TESTS_UNIT_AGENT_DAEMON_HTTP_CLIENT_H_
#define DPV2_TESTS_UNIT_AGENT_DAEMON_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/daemon/http_server.h"

namespace dpv2::agent::daemon::testing {

struct RawReply {
  bool connected = false;
  std::string bytes;
  int status = 0;
  std::string body;

  std::string Header(const std::string& name) const {
    size_t at = bytes.find("\r\n" + name + ": ");
    if (at == std::string::npos) {
      return "";
    }
    size_t start = at + 4 + name.size();
    return bytes.substr(start, bytes.find("\r\n", start) - start);
  }
};

inline RawReply SendRaw(uint16_t port, const std::string& request) {
  RawReply reply;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return reply;
  }
  reply.connected = true;
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
    reply.bytes.append(buf, n);
  }
  close(fd);
  if (reply.bytes.size() > 12 && reply.bytes.rfind("HTTP/1.1 ", 0) == 0) {
    reply.status = std::stoi(reply.bytes.substr(9, 3));
  }
  if (size_t end = reply.bytes.find("\r\n\r\n"); end != std::string::npos) {
    reply.body = reply.bytes.substr(end + 4);
  }
  return reply;
}

inline RawReply Get(uint16_t port, const std::string& path, const std::string& method = "GET") {
  return SendRaw(port, method + " " + path + " HTTP/1.1\r\nHost: test\r\n\r\n");
}

// A port on 127.0.0.1 that was free a moment ago (bound and released).
inline uint16_t FreePort() {
  HttpServer probe;
  absl::StatusOr<int> id = probe.Listen({.host = "127.0.0.1", .port = 0},
                                        [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE(id.ok());
  uint16_t port = probe.Port(*id);
  probe.Stop();
  return port;
}

// A free port in the NodePort range (30000-32767), where Kubernetes puts
// healthCheckNodePorts; the search starts at a pid-based offset so that
// parallel test runs pick different ones.
inline uint16_t FreeNodePort() {
  for (int i = 0; i < 2768; ++i) {
    uint16_t port = static_cast<uint16_t>(30000 + (getpid() * 7 + i) % 2768);
    HttpServer probe;
    absl::StatusOr<int> id = probe.Listen({.host = "127.0.0.1", .port = port},
                                          [](const HttpRequest&) { return HttpResponse{}; });
    if (id.ok()) {
      return port;
    }
  }
  FAIL("no free port in 30000-32767");
  return 0;
}

}  // namespace dpv2::agent::daemon::testing

#endif  // DPV2_TESTS_UNIT_AGENT_DAEMON_HTTP_CLIENT_H_
