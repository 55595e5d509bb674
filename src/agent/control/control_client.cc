#include "agent/control/control_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"

namespace dpv2::agent {
namespace {

// A connected unix stream socket, closed on scope exit.
class Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

absl::Status Errno(absl::string_view what, const std::string& path, int err) {
  std::string hint;
  if (err == ENOENT || err == ECONNREFUSED) {
    hint = " (is dpv2-agent running? pass --socket, or -f PATH for offline mode)";
  } else if (err == EACCES || err == EPERM) {
    hint = " (the socket is root's: run as root)";
  }
  return absl::UnavailableError(
      absl::StrCat("control socket ", path, ": ", what, ": ", std::strerror(err), hint));
}

absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("control socket \"", path, "\": path empty or longer than ",
                     sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Errno("socket", path, errno);
  }
  auto conn = std::make_unique<Connection>(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno("connect", path, errno);
  }
  return conn;
}

absl::Status SendLine(const Connection& c, const std::string& path, const nlohmann::json& req) {
  std::string line = req.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = send(c.fd(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Errno("send", path, errno);
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads lines; a deadline of InfiniteFuture waits as long as the server
// streams.
class LineReader {
 public:
  LineReader(const Connection& c, std::string path) : c_(c), path_(std::move(path)) {}

  // nullopt at end of stream.
  absl::StatusOr<std::optional<nlohmann::json>> Next(absl::Time deadline) {
    while (true) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) {
          return absl::InternalError(
              absl::StrCat("control socket ", path_, ": malformed response line: ", line));
        }
        return j;
      }
      int wait_ms = -1;
      if (deadline != absl::InfiniteFuture()) {
        absl::Duration left = deadline - absl::Now();
        if (left <= absl::ZeroDuration()) {
          return absl::DeadlineExceededError(
              absl::StrCat("control socket ", path_, ": no answer in time"));
        }
        wait_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
      }
      pollfd p{.fd = c_.fd(), .events = POLLIN};
      int r = poll(&p, 1, wait_ms);
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r < 0) {
        return Errno("poll", path_, errno);
      }
      if (r == 0) {
        continue;  // the deadline check above reports it
      }
      char chunk[16384];
      ssize_t n = recv(c_.fd(), chunk, sizeof(chunk), 0);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return Errno("recv", path_, errno);
      }
      if (n == 0) {
        if (!buffer_.empty()) {
          return absl::InternalError(
              absl::StrCat("control socket ", path_, ": connection closed mid-line"));
        }
        return std::optional<nlohmann::json>();
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  const Connection& c_;
  std::string path_;
  std::string buffer_;
};

}  // namespace

absl::StatusOr<ControlClient> ControlClient::Connect(ControlClientOptions options) {
  absl::StatusOr<std::unique_ptr<Connection>> c = Open(options.socket_path);
  if (!c.ok()) {
    return c.status();
  }
  return ControlClient(std::move(options));
}

namespace {

// An open exchange: the request sent and the server's first line, ok.
struct Exchange {
  std::unique_ptr<Connection> connection;
  std::unique_ptr<LineReader> reader;
  nlohmann::json first;
};

absl::StatusOr<Exchange> Begin(const ControlClientOptions& options, const nlohmann::json& request) {
  Exchange x;
  DPV2_ASSIGN_OR_RETURN(x.connection, Open(options.socket_path));
  DPV2_RETURN_IF_ERROR(SendLine(*x.connection, options.socket_path, request));
  x.reader = std::make_unique<LineReader>(*x.connection, options.socket_path);
  DPV2_ASSIGN_OR_RETURN(std::optional<nlohmann::json> line,
                        x.reader->Next(absl::Now() + options.timeout));
  if (!line.has_value()) {
    return absl::UnavailableError(
        absl::StrCat("control socket ", options.socket_path, ": closed without an answer"));
  }
  DPV2_RETURN_IF_ERROR(ResponseStatus(*line));
  x.first = *std::move(line);
  return x;
}

}  // namespace

absl::StatusOr<nlohmann::json> ControlClient::Call(const nlohmann::json& request,
                                                   nlohmann::json* response) const {
  DPV2_ASSIGN_OR_RETURN(Exchange x, Begin(options_, request));
  if (response != nullptr) {
    *response = x.first;
  }
  return x.first.value("result", nlohmann::json());
}

absl::Status ControlClient::Stream(
    const nlohmann::json& request,
    const std::function<bool(const nlohmann::json&)>& on_line) const {
  DPV2_ASSIGN_OR_RETURN(Exchange x, Begin(options_, request));
  LineReader& reader = *x.reader;
  while (true) {
    absl::StatusOr<std::optional<nlohmann::json>> line = reader.Next(absl::InfiniteFuture());
    if (!line.ok()) {
      return line.status();
    }
    if (!line->has_value()) {
      return absl::OkStatus();  // the server ended the stream
    }
    if ((*line)->contains("ok")) {
      if (absl::Status s = ResponseStatus(**line); !s.ok()) {
        return s;  // an error in mid-stream (e.g. the agent stops)
      }
    }
    if ((**line).value("end", false) || !on_line(**line)) {
      return absl::OkStatus();
    }
  }
}

}  // namespace dpv2::agent
