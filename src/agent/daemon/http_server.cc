#include "agent/daemon/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dpv2::agent::daemon {
namespace {

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

HttpResponse PlainError(int status) {
  return {.status = status,
          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
          .body = absl::StrCat(ReasonPhrase(status), "\n")};
}

}  // namespace

absl::StatusOr<HttpRequest> ParseHttpRequestHead(absl::string_view head) {
  size_t eol = head.find("\r\n");
  if (eol == absl::string_view::npos) {
    return absl::InvalidArgumentError("http request: no CRLF after the request line");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(head.substr(0, eol), ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("http request: malformed request line \"", head.substr(0, eol), "\""));
  }
  if (!absl::StartsWith(parts[2], "HTTP/1.")) {
    return absl::InvalidArgumentError(
        absl::StrCat("http request: unsupported version \"", parts[2], "\""));
  }
  if (parts[1][0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("http request: target \"", parts[1], "\" is not an absolute path"));
  }
  HttpRequest req{.method = std::string(parts[0])};
  absl::string_view target = parts[1];
  if (size_t q = target.find('?'); q != absl::string_view::npos) {
    req.query = std::string(target.substr(q + 1));
    target = target.substr(0, q);
  }
  req.path = std::string(target);
  // Header lines must at least look like "Name: value".
  for (absl::string_view line : absl::StrSplit(head.substr(eol + 2), "\r\n")) {
    if (line.empty()) {
      continue;
    }
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("http request: malformed header line \"", line, "\""));
    }
  }
  return req;
}

std::string SerializeHttpResponse(const HttpResponse& response, bool head_only, absl::Time now) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status), "\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&out, "Date: ",
                  absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", now, absl::UTCTimeZone()), "\r\n",
                  "Content-Length: ", response.body.size(), "\r\n", "Connection: close\r\n\r\n");
  if (!head_only) {
    out += response.body;
  }
  return out;
}

struct HttpServer::Listener {
  int fd = -1;
  uint16_t port = 0;
  HttpHandler handler;
};

struct HttpServer::Connection {
  int fd = -1;
  std::shared_ptr<Listener> listener;
  std::string in;
  std::string out;
  size_t written = 0;
  bool responding = false;
  absl::Time deadline;
};

HttpServer::HttpServer(HttpServerOptions options) : options_(options) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

HttpServer::~HttpServer() {
  Stop();
  if (wake_fd_ >= 0) {
    close(wake_fd_);
  }
}

absl::StatusOr<int> HttpServer::Listen(const ListenAddress& address, HttpHandler handler) {
  std::string where = address.ToString();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;  // no DNS at startup
  addrinfo* res = nullptr;
  std::string port_text = absl::StrCat(address.port);
  if (int rc = getaddrinfo(address.host.c_str(), port_text.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen ", where, ": host is not an IP address: ", gai_strerror(rc)));
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return absl::InternalError(absl::StrCat("listen ", where, ": socket: ", strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    int err = errno;
    freeaddrinfo(res);
    close(fd);
    return absl::UnavailableError(absl::StrCat("listen ", where, ": ", strerror(err)));
  }
  freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  uint16_t port = bound.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  auto listener = std::make_shared<Listener>(Listener{.fd = fd, .port = port,
                                                      .handler = std::move(handler)});
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) {
    close(fd);
    return absl::CancelledError(absl::StrCat("listen ", where, ": server stopped"));
  }
  int id = next_id_++;
  listeners_[id] = std::move(listener);
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { Run(); });
  }
  Wake();
  return id;
}

uint16_t HttpServer::Port(int id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = listeners_.find(id);
  return it == listeners_.end() ? 0 : it->second->port;
}

void HttpServer::Close(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  // The serving thread closes the descriptor between two polls, so that a
  // descriptor number is never reused while poll() still watches it.
  if (auto it = listeners_.find(id); it != listeners_.end()) {
    retired_.push_back(it->second->fd);
    listeners_.erase(it);
  }
  Wake();
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    Wake();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, l] : listeners_) {
    close(l->fd);
  }
  listeners_.clear();
  for (int fd : retired_) {
    close(fd);
  }
  retired_.clear();
}

void HttpServer::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void HttpServer::Run() {
  std::vector<Connection> conns;
  while (true) {
    std::vector<std::shared_ptr<Listener>> current;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        break;
      }
      for (auto& [id, l] : listeners_) {
        current.push_back(l);
      }
      for (int fd : retired_) {
        close(fd);
      }
      retired_.clear();
    }

    std::vector<pollfd> fds;
    fds.push_back({.fd = wake_fd_, .events = POLLIN});
    for (const auto& l : current) {
      fds.push_back({.fd = l->fd, .events = POLLIN});
    }
    absl::Time now = absl::Now();
    absl::Time next_deadline = now + absl::Seconds(1);
    for (const Connection& c : conns) {
      fds.push_back({.fd = c.fd, .events = static_cast<short>(c.responding ? POLLOUT : POLLIN)});
      next_deadline = std::min(next_deadline, c.deadline);
    }
    int timeout_ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(next_deadline - now)) + 1);
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      break;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof(v));
    }
    now = absl::Now();
    // Accept.
    for (size_t i = 0; i < current.size(); ++i) {
      if (!(fds[1 + i].revents & POLLIN)) {
        continue;
      }
      while (true) {
        int fd = accept4(current[i]->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          break;
        }
        if (conns.size() >= options_.max_connections) {
          close(fd);
          continue;
        }
        conns.push_back(Connection{.fd = fd, .listener = current[i],
                                   .deadline = now + options_.request_timeout});
      }
    }
    // Read, respond, write. Connections accepted above were not polled yet.
    size_t polled_conns = fds.size() - 1 - current.size();
    std::vector<Connection> kept;
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      short revents = i < polled_conns ? fds[1 + current.size() + i].revents : 0;
      bool done = false;
      if (!c.responding && (revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n;
        while ((n = read(c.fd, buf, sizeof(buf))) > 0) {
          c.in.append(buf, n);
          if (c.in.size() > options_.max_request_bytes) {
            break;
          }
        }
        size_t end = c.in.find("\r\n\r\n");
        if (end != std::string::npos) {
          absl::StatusOr<HttpRequest> req = ParseHttpRequestHead(c.in.substr(0, end + 4));
          HttpResponse resp;
          bool head = false;
          if (!req.ok()) {
            resp = PlainError(400);
          } else if (req->method != "GET" && req->method != "HEAD") {
            resp = PlainError(405);
            resp.headers.emplace_back("Allow", "GET, HEAD");
          } else {
            head = req->method == "HEAD";
            resp = c.listener->handler(*req);
          }
          c.out = SerializeHttpResponse(resp, head, now);
          c.responding = true;
        } else if (c.in.size() > options_.max_request_bytes) {
          c.out = SerializeHttpResponse(PlainError(431), false, now);
          c.responding = true;
        } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          done = true;  // the client left before finishing its request
        }
      }
      if (c.responding && !done) {
        while (c.written < c.out.size()) {
          ssize_t n = send(c.fd, c.out.data() + c.written, c.out.size() - c.written,
                           MSG_NOSIGNAL);
          if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
              break;
            }
            done = true;
            break;
          }
          c.written += n;
        }
        if (c.written == c.out.size()) {
          done = true;
        }
      }
      if (now >= c.deadline) {
        done = true;
      }
      if (done) {
        close(c.fd);
      } else {
        kept.push_back(std::move(c));
      }
    }
    conns = std::move(kept);
  }
  for (Connection& c : conns) {
    close(c.fd);
  }
}

}  // namespace dpv2::agent::daemon
