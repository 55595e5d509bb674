#include "fake_api_server.h"

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <utility>

#include "simdjson.h"

namespace dpv2::agent::apiserver::testing {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

std::string PercentDecode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out.push_back(static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 410:
      return "Gone";
    case 500:
      return "Internal Server Error";
    default:
      return "Error";
  }
}

}  // namespace

struct FakeApiServer::Net {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  tcp::socket socket{io};
};

FakeApiServer::FakeApiServer(FakeHandler handler)
    : handler_(std::move(handler)), net_(std::make_unique<Net>()) {
  tcp::endpoint local(asio::ip::make_address("127.0.0.1"), 0);
  net_->acceptor.open(local.protocol());
  net_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  net_->acceptor.bind(local);
  net_->acceptor.listen();
  port_ = net_->acceptor.local_endpoint().port();
  thread_ = std::thread([this] { Serve(); });
}

FakeApiServer::~FakeApiServer() { Stop(); }

void FakeApiServer::Stop() {
  if (stopping_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  // shutdown(2) wakes a thread blocked in accept or read on these sockets;
  // closing them from here would race with that thread.
  ::shutdown(net_->acceptor.native_handle(), SHUT_RDWR);
  int fd = conn_fd_.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

std::vector<FakeRequest> FakeApiServer::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeApiServer::Serve() {
  while (!stopping_.load()) {
    boost::system::error_code ec;
    net_->acceptor.accept(net_->socket, ec);
    if (ec) {
      if (stopping_.load()) return;
      continue;
    }
    conn_fd_.store(net_->socket.native_handle());
    if (stopping_.load()) {
      // Stop() may have missed this connection's descriptor.
      ::shutdown(net_->socket.native_handle(), SHUT_RDWR);
    }
    HandleConnection();
    conn_fd_.store(-1);
    net_->socket.close(ec);
  }
}

void FakeApiServer::HandleConnection() {
  tcp::socket& socket = net_->socket;
  boost::system::error_code ec;
  boost::beast::flat_buffer buffer;
  http::request<http::string_body> raw;
  http::read(socket, buffer, raw, ec);
  if (ec) return;

  FakeRequest request;
  request.method = std::string(raw.method_string());
  request.arrival = std::chrono::steady_clock::now();
  std::string target(raw.target());
  size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) {
    std::string query = target.substr(question + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t amp = query.find('&', start);
      std::string pair = query.substr(start, amp - start);
      size_t eq = pair.find('=');
      if (!pair.empty()) {
        request.query[PercentDecode(pair.substr(0, eq))] =
            eq == std::string::npos ? "" : PercentDecode(pair.substr(eq + 1));
      }
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
  }
  request.authorization = std::string(raw[http::field::authorization]);
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
  }
  FakeResponse response = handler_(request);

  std::string head = "HTTP/1.1 " + std::to_string(response.status) + " " +
                     Reason(response.status) +
                     "\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\n";
  if (!response.stream) {
    head += "Content-Length: " + std::to_string(response.body.size()) +
            "\r\n\r\n" + response.body;
    asio::write(socket, asio::buffer(head), ec);
    return;
  }
  head += "Transfer-Encoding: chunked\r\n\r\n";
  asio::write(socket, asio::buffer(head), ec);
  for (const std::string& event : response.events) {
    std::string line = event + "\n";
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", line.size());
    std::string chunk = size + line + "\r\n";
    asio::write(socket, asio::buffer(chunk), ec);
    if (ec) return;
  }
  switch (response.end) {
    case FakeResponse::End::kFinish:
      asio::write(socket, asio::buffer(std::string("0\r\n\r\n")), ec);
      break;
    case FakeResponse::End::kDrop:
      break;  // close without the terminating chunk
    case FakeResponse::End::kHang: {
      // Send nothing more; return when the client gives up or Stop().
      char byte;
      while (!ec && !stopping_.load()) {
        asio::read(socket, asio::buffer(&byte, 1), ec);
      }
      break;
    }
  }
}

nlohmann::json Object(const std::string& kind, const std::string& ns,
                      const std::string& name, const std::string& version,
                      nlohmann::json spec) {
  nlohmann::json object = {
      {"kind", kind},
      {"metadata", {{"name", name}, {"resourceVersion", version}}},
      {"spec", std::move(spec)}};
  if (!ns.empty()) object["metadata"]["namespace"] = ns;
  return object;
}

FakeResponse ListOf(std::vector<nlohmann::json> items,
                    const std::string& version,
                    const std::string& continue_token) {
  nlohmann::json list = {{"kind", "List"},
                         {"apiVersion", "v1"},
                         {"metadata", {{"resourceVersion", version}}},
                         {"items", nlohmann::json::array()}};
  if (!continue_token.empty()) {
    list["metadata"]["continue"] = continue_token;
  }
  for (nlohmann::json& item : items) {
    item.erase("kind");  // list items carry no type meta
    list["items"].push_back(std::move(item));
  }
  return FakeResponse{.status = 200, .body = list.dump()};
}

std::string Event(const std::string& type, const nlohmann::json& object) {
  return nlohmann::json{{"type", type}, {"object", object}}.dump();
}

std::string Bookmark(const std::string& version) {
  return Event("BOOKMARK",
               {{"kind", "Service"},
                {"metadata", {{"resourceVersion", version}}}});
}

std::string ErrorEvent(int code, const std::string& reason) {
  return Event("ERROR", {{"kind", "Status"},
                         {"apiVersion", "v1"},
                         {"status", "Failure"},
                         {"reason", reason},
                         {"message", "too old resource version"},
                         {"code", code}});
}

FakeResponse Stream(std::vector<std::string> events, FakeResponse::End end) {
  return FakeResponse{
      .status = 200, .stream = true, .events = std::move(events), .end = end};
}

FakeResponse StatusResponse(int code, const std::string& reason) {
  nlohmann::json status = {{"kind", "Status"},
                           {"apiVersion", "v1"},
                           {"status", "Failure"},
                           {"reason", reason},
                           {"code", code}};
  return FakeResponse{.status = code, .body = status.dump()};
}

JsonRef Delivered(const nlohmann::json& object) {
  return *ParseJson(object.dump());  // a dump always parses
}

nlohmann::json Tree(const JsonRef& object) {
  return nlohmann::json::parse(simdjson::to_string(*object));
}

}  // namespace dpv2::agent::apiserver::testing
