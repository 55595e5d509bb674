// The control socket: one Asio thread does all socket I/O; requests that
// need the daemon's state run on a small worker pool (with_state may wait for
// the reconcile loop, and must not stall other clients' I/O); observe
// sessions are fed by their FlowHub subscriber thread, which waits for each
// line to be written, so a client that stops reading only fills its own
// bounded hub queue (and loses records there, counted).
#include "agent/control/control_server.h"

#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/control/control_commands.h"
#include "agent/control/protocol.h"

namespace dpv2::agent {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

constexpr auto kRequestTimeout = std::chrono::seconds(10);

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err) {
  return absl::InternalError(
      absl::StrCat("control socket ", path, ": ", what, ": ", std::strerror(err)));
}

// Whether some process accepts connections on the unix socket at `path`.
bool SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  bool live = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return live;
}

// Creates the directory (0700) if missing, clears a stale socket file and
// refuses to replace anything else.
absl::Status PrepareSocketPath(const std::string& path) {
  sockaddr_un probe{};
  if (path.empty() || path.size() >= sizeof(probe.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("control socket_path \"", path, "\": empty or longer than ",
                     sizeof(probe.sun_path) - 1, " bytes"));
  }
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        return absl::InternalError(absl::StrCat("control socket ", path,
                                                ": creating its directory: ", ec.message()));
      }
      chmod(dir.c_str(), 0700);
    }
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus("lstat", path, errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("control socket ", path, ": exists and is not a socket; not replacing it"));
  }
  if (SomeoneListens(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("control socket ", path, ": another agent is serving it"));
  }
  if (unlink(path.c_str()) != 0) {
    return ErrnoStatus("removing the stale socket", path, errno);
  }
  return absl::OkStatus();
}

class Session;

// Everything the server's threads share (ControlServer::State is this).
struct ServerCore {
  ControlServerOptions options;
  ControlTarget target;
  asio::io_context io;
  asio::local::stream_protocol::acceptor acceptor{io};
  asio::thread_pool workers{2};
  std::thread io_thread;
  std::atomic<uint64_t> served{0};
  std::atomic<bool> stopping{false};
  // Sessions alive (touched on the io thread only).
  std::set<std::shared_ptr<Session>> sessions;
  // Hub subscriptions of observe sessions, to end them on shutdown.
  absl::Mutex mu;
  std::set<uint64_t> subscriptions ABSL_GUARDED_BY(mu);

  uint64_t Now() const {
    return target.datapath_now_ns ? target.datapath_now_ns() : MonotonicNs();
  }
  void Accept();
};

// One connection: read one request line, answer, close (observe: stream).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& server, Socket socket)
      : server_(server), socket_(std::move(socket)), request_(kMaxRequestBytes),
        timer_(server.io) {}

  void Start() {
    auto self = shared_from_this();
    timer_.expires_after(kRequestTimeout);
    timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec && !self->got_request_) {
        self->Reply(ErrorResponse(absl::DeadlineExceededError(
                        "request: no complete request line within 10 s")),
                    /*close=*/true);
      }
    });
    asio::async_read_until(socket_, request_, '\n',
                           [self](const boost::system::error_code& ec, size_t n) {
                             self->OnRequest(ec, n);
                           });
  }

  // On the io thread.
  void Close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
    if (subscription_ != 0) {
      // Unsubscribe joins the subscriber thread, which may wait for a write
      // this thread completes: never on the io thread.
      uint64_t id = std::exchange(subscription_, 0);
      ServerCore& server = server_;
      asio::post(server.workers, [&server, id] {
        server.target.flows->Unsubscribe(id);
        absl::MutexLock lock(&server.mu);
        server.subscriptions.erase(id);
      });
    }
    server_.sessions.erase(shared_from_this());
  }

  // Thread-safe: queues one line for writing; `done` (if any) is set once
  // written (true) or failed (false).
  void Write(std::string line, std::shared_ptr<std::promise<bool>> done, bool close_after) {
    auto self = shared_from_this();
    asio::post(server_.io, [self, line = std::move(line), done, close_after]() mutable {
      if (self->closed_) {
        if (done) {
          done->set_value(false);
        }
        return;
      }
      self->out_.push_back({std::move(line), std::move(done), close_after});
      if (self->out_.size() == 1) {
        self->WriteNext();
      }
    });
  }

 private:
  struct Outgoing {
    std::string line;
    std::shared_ptr<std::promise<bool>> done;
    bool close_after = false;
  };

  void Reply(const nlohmann::json& j, bool close) { Write(j.dump() + "\n", nullptr, close); }

  void WriteNext() {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_.front().line),
                      [self](const boost::system::error_code& ec, size_t) {
                        Outgoing sent = std::move(self->out_.front());
                        self->out_.pop_front();
                        if (sent.done) {
                          sent.done->set_value(!ec);
                        }
                        if (ec || sent.close_after) {
                          self->FailPending(/*front_in_flight=*/false);
                          self->Close();
                          return;
                        }
                        if (!self->out_.empty()) {
                          self->WriteNext();
                        }
                      });
  }

  // Fails the queued lines that are not being written: the one in flight
  // (the front, while a write is pending) completes through its handler.
  void FailPending(bool front_in_flight) {
    const size_t keep = front_in_flight && !out_.empty() ? 1 : 0;
    for (size_t i = keep; i < out_.size(); ++i) {
      if (out_[i].done) {
        out_[i].done->set_value(false);
      }
    }
    out_.resize(keep);
  }

  void OnRequest(const boost::system::error_code& ec, size_t n) {
    got_request_ = true;
    timer_.cancel();
    if (ec == asio::error::not_found) {
      Reply(ErrorResponse(absl::InvalidArgumentError(
                absl::StrCat("request: longer than ", kMaxRequestBytes, " bytes"))),
            true);
      return;
    }
    std::string line;
    if (!ec) {
      line.assign(asio::buffers_begin(request_.data()),
                  asio::buffers_begin(request_.data()) + static_cast<std::ptrdiff_t>(n) - 1);
      request_.consume(n);
    } else if (ec == asio::error::eof && request_.size() > 0) {
      // The client ended its only line with end of stream instead of "\n".
      line.assign(asio::buffers_begin(request_.data()), asio::buffers_end(request_.data()));
      request_.consume(request_.size());
    } else {
      Close();  // the client went away before asking anything
      return;
    }
    nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded()) {
      Reply(ErrorResponse(absl::InvalidArgumentError(
                absl::StrCat("request: not valid JSON: ", line.substr(0, 200)))),
            true);
      return;
    }
    ++server_.served;
    if (request.is_object() && request.value("command", "") == "observe") {
      StartObserve(request);
      return;
    }
    auto self = shared_from_this();
    asio::post(server_.workers, [self, request = std::move(request)] {
      absl::StatusOr<nlohmann::json> result =
          absl::UnavailableError("control: the agent did not run the request (stopping?)");
      std::string node;
      ServerCore& server = self->server_;
      if (!server.stopping) {
        server.target.with_state([&](ClusterView& view, Backend& backend) {
          node = view.node().name;
          result = RunControlCommand(request, view, backend, server.Now());
        });
      }
      if (result.ok()) {
        self->Reply({{"ok", true}, {"node", node}, {"result", *std::move(result)}}, true);
      } else {
        self->Reply(ErrorResponse(result.status()), true);
      }
    });
  }

  void StartObserve(const nlohmann::json& request) {
    if (server_.target.flows == nullptr) {
      Reply(ErrorResponse(absl::UnavailableError("observe: this agent has no flow stream")), true);
      return;
    }
    absl::StatusOr<ObserveRequest> observe = ParseObserveRequest(request);
    if (!observe.ok()) {
      Reply(ErrorResponse(observe.status()), true);
      return;
    }
    Reply({{"ok", true}, {"stream", "flows"}}, false);
    std::weak_ptr<Session> weak = shared_from_this();
    auto remaining = std::make_shared<std::optional<uint64_t>>(observe->count);
    absl::StatusOr<uint64_t> id = server_.target.flows->Subscribe(
        observe->subscription, [weak, remaining](const FlowDelivery& d) {
          std::shared_ptr<Session> self = weak.lock();
          if (!self) {
            return false;
          }
          nlohmann::json line = {{"flow", FlowJson(d.record)}};
          if (d.lost > 0) {
            line["lost"] = d.lost;
          }
          const bool last = remaining->has_value() && --**remaining == 0;
          auto written = std::make_shared<std::promise<bool>>();
          std::future<bool> ok = written->get_future();
          self->Write(line.dump() + "\n", written, false);
          if (last) {
            self->Reply({{"end", true}}, true);
          }
          self.reset();  // let Close() drop the session while we wait
          return ok.get() && !last;
        });
    if (!id.ok()) {
      Reply(ErrorResponse(id.status()), true);
      return;
    }
    subscription_ = *id;
    {
      absl::MutexLock lock(&server_.mu);
      server_.subscriptions.insert(*id);
    }
    // A read that ends when the client closes (anything it sends is ignored).
    WatchForClose();
  }

  void WatchForClose() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(sink_),
                            [self](const boost::system::error_code& ec, size_t) {
                              if (ec) {
                                self->FailPending(/*front_in_flight=*/true);
                                self->Close();
                              } else {
                                self->WatchForClose();
                              }
                            });
  }

  ServerCore& server_;
  Socket socket_;
  asio::streambuf request_;
  asio::steady_timer timer_;
  std::deque<Outgoing> out_;
  char sink_[256];
  bool got_request_ = false;
  bool closed_ = false;
  uint64_t subscription_ = 0;
};

void ServerCore::Accept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, Socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted && !stopping) {
        Accept();
      }
      return;
    }
    const bool busy = sessions.size() >= static_cast<size_t>(options.max_connections);
    auto session = std::make_shared<Session>(*this, std::move(socket));
    sessions.insert(session);
    if (busy) {
      // Answer and close without reading: the client may retry.
      session->Write(ErrorResponse(absl::UnavailableError(absl::StrCat(
                                       "control socket: ", options.max_connections,
                                       " sessions open; try again")))
                             .dump() +
                         "\n",
                     nullptr, true);
    } else {
      session->Start();
    }
    Accept();
  });
}

}  // namespace

struct ControlServer::State : ServerCore {};

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(ControlServerOptions options,
                                                                    ControlTarget target) {
  if (!target.with_state) {
    return absl::InvalidArgumentError("control server: target.with_state is required");
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control server: max_connections ", options.max_connections, " must be >= 1"));
  }
  if (absl::Status s = PrepareSocketPath(options.socket_path); !s.ok()) {
    return s;
  }
  auto state = std::make_unique<State>();
  state->options = std::move(options);
  state->target = std::move(target);
  const std::string& path = state->options.socket_path;
  boost::system::error_code ec;
  state->acceptor.open(asio::local::stream_protocol(), ec);
  if (!ec) {
    state->acceptor.bind(asio::local::stream_protocol::endpoint(path), ec);
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("control socket ", path, ": bind: ", ec.message()));
  }
  // Right after bind, before anyone is accepted: the socket is root's only.
  if (chmod(path.c_str(), 0600) != 0) {
    int err = errno;
    unlink(path.c_str());
    return ErrnoStatus("chmod 0600", path, err);
  }
  state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    unlink(path.c_str());
    return absl::InternalError(absl::StrCat("control socket ", path, ": listen: ", ec.message()));
  }
  State* s = state.get();
  s->Accept();
  s->io_thread = std::thread([s] { s->io.run(); });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(state)));
}

ControlServer::ControlServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

ControlServer::~ControlServer() {
  State& s = *state_;
  s.stopping = true;
  // Close the acceptor and every session on the io thread; pending writes
  // fail, which releases subscriber threads waiting on them.
  std::promise<void> closed;
  asio::post(s.io, [&s, &closed] {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    std::set<std::shared_ptr<Session>> sessions = s.sessions;
    for (const std::shared_ptr<Session>& session : sessions) {
      session->Close();
    }
    closed.set_value();
  });
  closed.get_future().wait();
  std::set<uint64_t> subscriptions;
  {
    absl::MutexLock lock(&s.mu);
    subscriptions.swap(s.subscriptions);
  }
  for (uint64_t id : subscriptions) {
    s.target.flows->Unsubscribe(id);
  }
  s.workers.join();
  s.io.stop();
  if (s.io_thread.joinable()) {
    s.io_thread.join();
  }
  unlink(s.options.socket_path.c_str());
}

const std::string& ControlServer::socket_path() const { return state_->options.socket_path; }

uint64_t ControlServer::requests_served() const { return state_->served; }

}  // namespace dpv2::agent
