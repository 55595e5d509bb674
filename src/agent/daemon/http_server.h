// A small HTTP/1.1 server for the agent's endpoints: /metrics, /healthz, the
// kube-proxy-compatible health server and one listener per
// healthCheckNodePort. One thread serves every listener with poll(); each
// connection carries one GET or HEAD request (Connection: close), with a
// bounded request size and a deadline, so a slow or hostile client costs a
// file descriptor for a few seconds, never the thread. Listeners come and go
// at run time (health check ports follow the Services).
//
//   HttpServer server;
//   absl::StatusOr<int> id = server.Listen({.host = "127.0.0.1", .port = 0}, handler);
//   uint16_t port = server.Port(*id);   // ... server.Close(*id);
#ifndef DPV2_AGENT_DAEMON_HTTP_SERVER_H_
#define DPV2_AGENT_DAEMON_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/daemon/agent_flags.h"

namespace dpv2::agent::daemon {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // without the query
  std::string query;   // after '?', undecoded
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Length, Date
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// The request line and headers of one request ("GET /healthz HTTP/1.1\r\n...\r\n\r\n"):
// InvalidArgument for anything malformed. Exposed for tests.
absl::StatusOr<HttpRequest> ParseHttpRequestHead(absl::string_view head);
// Status line, headers (Content-Length, Date given) and body unless HEAD.
std::string SerializeHttpResponse(const HttpResponse& response, bool head_only, absl::Time now);

struct HttpServerOptions {
  size_t max_request_bytes = 16 * 1024;
  absl::Duration request_timeout = absl::Seconds(10);  // request head to response sent
  size_t max_connections = 256;  // beyond it new connections are closed at once
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options = {});
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens now (errors name the address; the host must be an IP
  // address, so that starting never waits for DNS); serving starts on the
  // server thread, which the first Listen starts. Returns a listener id.
  absl::StatusOr<int> Listen(const ListenAddress& address, HttpHandler handler);
  // The bound port (the kernel's choice for port 0); 0 if the id is unknown.
  uint16_t Port(int id) const;
  // Stops accepting on that listener (open connections finish).
  void Close(int id);
  // Closes everything and joins the thread. Idempotent.
  void Stop();

 private:
  struct Listener;
  struct Connection;
  void Run();
  void Wake();

  HttpServerOptions options_;
  int wake_fd_ = -1;
  mutable std::mutex mu_;  // guards listeners_, retired_, stopping_
  std::map<int, std::shared_ptr<Listener>> listeners_;
  std::vector<int> retired_;  // closed listeners' descriptors, closed by the thread
  int next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_HTTP_SERVER_H_
