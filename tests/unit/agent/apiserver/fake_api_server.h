// A fake Kubernetes API server for the reflector tests: plain HTTP/1.1 on
// 127.0.0.1 (ephemeral port), one connection at a time on one thread. The
// test's handler sees each request (path, query, Authorization) and answers
// either a whole JSON body or a chunked watch stream of event lines that
// ends cleanly, drops mid-stream, or hangs silent until the client leaves.
//
//   FakeApiServer server([](const FakeRequest& r) { return ListOf({}, "1"); });
//   ClientConfig config{.server = {.tls = false, .host = "127.0.0.1",
//                                  .port = server.port()}};
#ifndef DPV2_TESTS_UNIT_AGENT_APISERVER_FAKE_API_SERVER_H_
#define DPV2_TESTS_UNIT_AGENT_APISERVER_FAKE_API_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/apiserver/reflector.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent::apiserver::testing {

struct FakeRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;  // percent-decoded
  std::string authorization;
  std::chrono::steady_clock::time_point arrival;

  bool IsWatch() const { return query.count("watch") > 0; }
  std::string Query(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() ? "" : it->second;
  }
};

struct FakeResponse {
  enum class End { kFinish, kDrop, kHang };
  int status = 200;
  std::string body;                 // for non-streamed responses
  bool stream = false;              // chunked watch stream of `events`
  std::vector<std::string> events;  // one JSON document per line
  End end = End::kFinish;
};

using FakeHandler = std::function<FakeResponse(const FakeRequest&)>;

class FakeApiServer {
 public:
  explicit FakeApiServer(FakeHandler handler);
  ~FakeApiServer();  // stops
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  uint16_t port() const { return port_; }
  // Closes the listener and any open connection, then joins the thread.
  void Stop();
  std::vector<FakeRequest> Requests() const;

 private:
  void Serve();
  void HandleConnection();

  FakeHandler handler_;
  struct Net;  // Asio objects, kept out of this header
  std::unique_ptr<Net> net_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> conn_fd_{-1};
  mutable std::mutex mu_;
  std::vector<FakeRequest> requests_;
  std::thread thread_;
};

// A Kubernetes object with metadata (namespace may be empty).
nlohmann::json Object(const std::string& kind, const std::string& ns,
                      const std::string& name, const std::string& version,
                      nlohmann::json spec = nlohmann::json::object());
// A list response page: items without kind/apiVersion, as the server sends.
FakeResponse ListOf(std::vector<nlohmann::json> items,
                    const std::string& version,
                    const std::string& continue_token = "");
// One watch event line.
std::string Event(const std::string& type, const nlohmann::json& object);
std::string Bookmark(const std::string& version);
std::string ErrorEvent(int code, const std::string& reason);
// A watch stream response.
FakeResponse Stream(std::vector<std::string> events,
                    FakeResponse::End end = FakeResponse::End::kHang);
// A Status response with an HTTP error code (e.g. 410 Expired).
FakeResponse StatusResponse(int code, const std::string& reason);

// An object as a reflector delivers it (its own parsed document), and what
// one delivered holds, as a tree to look at.
JsonRef Delivered(const nlohmann::json& object);
nlohmann::json Tree(const JsonRef& object);

}  // namespace dpv2::agent::apiserver::testing

#endif  // DPV2_TESTS_UNIT_AGENT_APISERVER_FAKE_API_SERVER_H_
