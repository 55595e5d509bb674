// One HTTP/1.1 GET at a time to the API server, over TLS (production) or
// plain TCP (tests), with every socket operation bounded by a timeout so a
// silent server cannot hang the agent. The body is delivered as it arrives
// (chunked transfer decoded), which is what a watch stream needs; Cancel()
// from any thread aborts the request in progress. Boost stays in the .cc.
//
//   HttpTransport http(config);
//   absl::StatusOr<int> status = http.Get("/api/v1/pods?limit=500",
//       {.connect = absl::Seconds(5), .idle = absl::Seconds(30)}, on_bytes);
#ifndef DPV2_AGENT_APISERVER_HTTP_TRANSPORT_H_
#define DPV2_AGENT_APISERVER_HTTP_TRANSPORT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/apiserver/client_config.h"

namespace dpv2::agent::apiserver {

struct HttpTimeouts {
  absl::Duration connect = absl::Seconds(10);  // TCP connect + TLS handshake
  absl::Duration idle = absl::Seconds(30);     // longest wait for any byte
};

// Receives the response status and the next piece of the decoded body
// (called once with no bytes as soon as the header is in); returns false to
// end the request early.
using BodyCallback = std::function<bool(int status, absl::string_view bytes)>;

class HttpTransport {
 public:
  explicit HttpTransport(ClientConfig config);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Sends GET `target` (path and query) on a new connection and streams the
  // body to `on_body`. Returns the HTTP status once the body is complete
  // (or the callback stopped it). Errors: DeadlineExceeded when no byte came
  // within `idle` (a stalled stream), Unavailable for connection errors and
  // a connection closed mid-body, Cancelled after Cancel(),
  // InvalidArgument for a TLS configuration that cannot load.
  absl::StatusOr<int> Get(const std::string& target,
                          const HttpTimeouts& timeouts,
                          const BodyCallback& on_body);

  // Aborts the request in progress and every later one. Thread-safe.
  void Cancel();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpv2::agent::apiserver

#endif  // DPV2_AGENT_APISERVER_HTTP_TRANSPORT_H_
