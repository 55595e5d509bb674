#include "agent/apiserver/http_transport.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace dpv2::agent::apiserver {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

}  // namespace

struct HttpTransport::Impl {
  explicit Impl(ClientConfig c)
      : config(std::move(c)), ssl_context(ssl::context::tls_client) {}

  // Loads trust anchors and client credentials once, on first TLS use.
  absl::Status PrepareTls() {
    if (tls_ready) return absl::OkStatus();
    error_code ec;
    ssl_context.set_options(ssl::context::default_workarounds |
                            ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (config.insecure_skip_tls_verify) {
      ssl_context.set_verify_mode(ssl::verify_none);
    } else {
      ssl_context.set_verify_mode(ssl::verify_peer);
      if (config.ca_pem.empty()) {
        ssl_context.set_default_verify_paths(ec);
      } else {
        ssl_context.add_certificate_authority(
            asio::buffer(config.ca_pem.data(), config.ca_pem.size()), ec);
      }
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat(
            "api server TLS: certificate authority: ", ec.message()));
      }
    }
    if (!config.client_cert_pem.empty()) {
      ssl_context.use_certificate_chain(
          asio::buffer(config.client_cert_pem.data(),
                       config.client_cert_pem.size()),
          ec);
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat(
            "api server TLS: client certificate: ", ec.message()));
      }
      ssl_context.use_private_key(
          asio::buffer(config.client_key_pem.data(),
                       config.client_key_pem.size()),
          ssl::context::pem, ec);
      if (ec) {
        return absl::InvalidArgumentError(
            absl::StrCat("api server TLS: client key: ", ec.message()));
      }
    }
    tls_ready = true;
    return absl::OkStatus();
  }

  // Runs the io_context until the one operation started before the call
  // completes. Restarting before the cancel check closes the race with a
  // concurrent Cancel(): its stop() either lands after the restart (run
  // returns at once) or its flag is already visible.
  absl::Status RunUntilDone(const bool& done) {
    io.restart();
    if (cancelled.load()) return absl::CancelledError("api request cancelled");
    io.run();
    if (!done || cancelled.load()) {
      return absl::CancelledError("api request cancelled");
    }
    return absl::OkStatus();
  }

  static absl::Status IoError(const error_code& ec, absl::string_view step,
                              const std::string& where) {
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat(where, ": ", step, ": timed out"));
    }
    return absl::UnavailableError(
        absl::StrCat(where, ": ", step, ": ", ec.message()));
  }

  template <class Stream>
  absl::StatusOr<int> Exchange(Stream& stream, beast::tcp_stream& lowest,
                               const std::string& target,
                               const HttpTimeouts& timeouts,
                               const BodyCallback& on_body,
                               const std::string& where) {
    bool done = false;
    error_code result;
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, config.server.host);
    request.set(http::field::user_agent, "dpv2-agent");
    request.set(http::field::accept, "application/json");
    if (!config.bearer_token.empty()) {
      request.set(http::field::authorization,
                  absl::StrCat("Bearer ", config.bearer_token));
    }
    lowest.expires_after(ToChrono(timeouts.idle));
    http::async_write(stream, request, [&](error_code ec, size_t) {
      result = ec;
      done = true;
    });
    DPV2_RETURN_IF_ERROR(RunUntilDone(done));
    if (result) return IoError(result, "sending request", where);

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    done = false;
    lowest.expires_after(ToChrono(timeouts.idle));
    http::async_read_header(stream, buffer, parser, [&](error_code ec, size_t) {
      result = ec;
      done = true;
    });
    DPV2_RETURN_IF_ERROR(RunUntilDone(done));
    if (result) return IoError(result, "reading response header", where);
    int status = static_cast<int>(parser.get().result_int());
    // An empty first call tells the caller the stream is open.
    if (!on_body(status, absl::string_view())) return status;

    char chunk[16384];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      done = false;
      lowest.expires_after(ToChrono(timeouts.idle));
      http::async_read_some(stream, buffer, parser,
                            [&](error_code ec, size_t) {
                              result = ec;
                              done = true;
                            });
      DPV2_RETURN_IF_ERROR(RunUntilDone(done));
      if (result == http::error::need_buffer) result = {};
      size_t got = sizeof(chunk) - parser.get().body().size;
      if (got > 0 && !on_body(status, absl::string_view(chunk, got))) {
        return status;
      }
      if (result) return IoError(result, "reading response body", where);
    }
    return status;
  }

  absl::StatusOr<int> Get(const std::string& target,
                          const HttpTimeouts& timeouts,
                          const BodyCallback& on_body) {
    const ServerAddress& server = config.server;
    std::string where =
        absl::StrCat("GET ", server.tls ? "https://" : "http://", server.host,
                     ":", server.port, server.path_prefix, target);
    std::string full_target = server.path_prefix + target;
    bool done = false;
    error_code result;
    tcp::resolver resolver(io);
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(server.host, std::to_string(server.port),
                           [&](error_code ec, tcp::resolver::results_type r) {
                             result = ec;
                             endpoints = std::move(r);
                             done = true;
                           });
    DPV2_RETURN_IF_ERROR(RunUntilDone(done));
    if (result) return IoError(result, "resolving host", where);

    if (server.tls) DPV2_RETURN_IF_ERROR(PrepareTls());
    beast::ssl_stream<beast::tcp_stream> tls_stream(io, ssl_context);
    beast::tcp_stream plain_stream(io);
    beast::tcp_stream& lowest =
        server.tls ? beast::get_lowest_layer(tls_stream) : plain_stream;

    done = false;
    lowest.expires_after(ToChrono(timeouts.connect));
    lowest.async_connect(endpoints,
                         [&](error_code ec, const tcp::endpoint&) {
                           result = ec;
                           done = true;
                         });
    DPV2_RETURN_IF_ERROR(RunUntilDone(done));
    if (result) return IoError(result, "connecting", where);
    if (!server.tls) {
      return Exchange(plain_stream, lowest, full_target, timeouts, on_body,
                      where);
    }
    // SNI, and the certificate must name the host we asked for.
    if (!SSL_set_tlsext_host_name(tls_stream.native_handle(),
                                  server.host.c_str())) {
      return absl::InternalError(absl::StrCat(where, ": setting TLS SNI"));
    }
    if (!config.insecure_skip_tls_verify) {
      tls_stream.set_verify_callback(ssl::host_name_verification(server.host));
    }
    done = false;
    lowest.expires_after(ToChrono(timeouts.connect));
    tls_stream.async_handshake(ssl::stream_base::client, [&](error_code ec) {
      result = ec;
      done = true;
    });
    DPV2_RETURN_IF_ERROR(RunUntilDone(done));
    if (result) return IoError(result, "TLS handshake", where);
    return Exchange(tls_stream, lowest, full_target, timeouts, on_body, where);
  }

  ClientConfig config;
  asio::io_context io;
  ssl::context ssl_context;
  bool tls_ready = false;
  std::atomic<bool> cancelled{false};
};

HttpTransport::HttpTransport(ClientConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

HttpTransport::~HttpTransport() = default;

absl::StatusOr<int> HttpTransport::Get(const std::string& target,
                                       const HttpTimeouts& timeouts,
                                       const BodyCallback& on_body) {
  return impl_->Get(target, timeouts, on_body);
}

void HttpTransport::Cancel() {
  impl_->cancelled.store(true);
  impl_->io.stop();
}

}  // namespace dpv2::agent::apiserver
