#include "agent/daemon/http_server.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "http_client.h"

namespace dpv2::agent::daemon {
namespace {

using testing::Get;
using testing::SendRaw;

TEST_CASE("a request head parses into method, path and query") {
  absl::StatusOr<HttpRequest> r =
      ParseHttpRequestHead("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
  REQUIRE(r.ok());
  CHECK(r->method == "GET");
  CHECK(r->path == "/metrics");
  CHECK(r->query == "x=1");
}

TEST_CASE("malformed request heads are refused with the reason") {
  auto error = [](const std::string& head) {
    absl::StatusOr<HttpRequest> r = ParseHttpRequestHead(head);
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK(error("GET /") == "http request: no CRLF after the request line");
  CHECK(error("GET  /x HTTP/1.1\r\n\r\n") ==
        "http request: malformed request line \"GET  /x HTTP/1.1\"");
  CHECK(error("GET /x SPDY/3\r\n\r\n") == "http request: unsupported version \"SPDY/3\"");
  CHECK(error("GET x HTTP/1.1\r\n\r\n") ==
        "http request: target \"x\" is not an absolute path");
  CHECK(error("GET /x HTTP/1.1\r\nno colon here\r\n\r\n") ==
        "http request: malformed header line \"no colon here\"");
}

TEST_CASE("a response carries status line, headers, length and date; HEAD has no body") {
  HttpResponse r{.status = 503, .headers = {{"Content-Type", "text/plain"}}, .body = "no\n"};
  absl::Time t = absl::FromUnixSeconds(0);
  CHECK(SerializeHttpResponse(r, false, t) ==
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n");
  CHECK(SerializeHttpResponse(r, true, t).find("\r\n\r\n") + 4 ==
        SerializeHttpResponse(r, true, t).size());
}

struct ServerFixture {
  HttpServer server{{.max_request_bytes = 1024, .request_timeout = absl::Milliseconds(500)}};
  uint16_t port = 0;
  ServerFixture() {
    absl::StatusOr<int> id =
        server.Listen({.host = "127.0.0.1", .port = 0}, [](const HttpRequest& req) {
          if (req.path == "/hello") {
            return HttpResponse{.body = "hi " + req.query};
          }
          return HttpResponse{.status = 404, .body = "nope"};
        });
    REQUIRE(id.ok());
    port = server.Port(*id);
    REQUIRE(port != 0);
  }
};

TEST_CASE("the server answers GET and HEAD through the handler") {
  ServerFixture f;
  testing::RawReply r = Get(f.port, "/hello?x");
  CHECK(r.status == 200);
  CHECK(r.body == "hi x");
  CHECK(r.Header("Content-Length") == "4");
  testing::RawReply head = Get(f.port, "/hello", "HEAD");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(Get(f.port, "/other").status == 404);
}

TEST_CASE("other methods get 405, garbage 400, oversized heads 431") {
  ServerFixture f;
  testing::RawReply post = Get(f.port, "/hello", "POST");
  CHECK(post.status == 405);
  CHECK(post.Header("Allow") == "GET, HEAD");
  CHECK(SendRaw(f.port, "\x16\x03\x01 hello\r\n\r\n").status == 400);
  CHECK(SendRaw(f.port, "GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n").status == 431);
}

TEST_CASE("a client that never finishes its request does not hold up the others") {
  ServerFixture f;
  int slow = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(f.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(slow, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  send(slow, "GET /hel", 8, 0);
  absl::Time start = absl::Now();
  CHECK(Get(f.port, "/hello").status == 200);
  CHECK(absl::Now() - start < absl::Milliseconds(400));
  // The slow one is cut off at the request timeout.
  char c;
  timeval tv{.tv_sec = 3, .tv_usec = 0};
  setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  CHECK(recv(slow, &c, 1, 0) == 0);
  close(slow);
}

TEST_CASE("a closed listener refuses connections; a taken port is an error naming it") {
  HttpServer server;
  absl::StatusOr<int> id = server.Listen({.host = "127.0.0.1", .port = 0},
                                         [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE(id.ok());
  uint16_t port = server.Port(*id);
  absl::StatusOr<int> again = server.Listen({.host = "127.0.0.1", .port = port},
                                            [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE_FALSE(again.ok());
  CHECK(std::string(again.status().message()) ==
        "listen 127.0.0.1:" + std::to_string(port) + ": Address already in use");
  server.Close(*id);
  absl::Time end = absl::Now() + absl::Seconds(3);  // the server thread closes it
  while (Get(port, "/").connected && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  CHECK_FALSE(Get(port, "/").connected);
  absl::StatusOr<int> bad = server.Listen({.host = "localhost", .port = 1},
                                          [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE_FALSE(bad.ok());
  CHECK(absl::StartsWith(bad.status().message(),
                         "listen localhost:1: host is not an IP address"));
}

}  // namespace
}  // namespace dpv2::agent::daemon
