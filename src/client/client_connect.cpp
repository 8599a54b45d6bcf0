// Client::Impl: one connection attempt (resolve, TCP connect, TLS, the HTTP
// upgrade and its validation), each phase under its own deadline.
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <sstream>

#include "client/client_impl.hpp"
#include "client/retry_after.hpp"
#include "wire/handshake.hpp"

namespace conduit {

namespace http = boost::beast::http;
using client_detail::classify_transport_error;
using client_detail::client_deflate_config;
using client_detail::make_failure;
using client_detail::use_tuple;

namespace {

constexpr std::size_t max_error_body_bytes = 4096;

}  // namespace

ClientError client_detail::classify_transport_error(const boost::system::error_code& ec) {
  namespace err = asio::error;
  if (ec.category() == asio::error::get_ssl_category() || ec.category() == asio::ssl::error::get_stream_category()) {
    if (ec == asio::ssl::error::stream_truncated) return ClientError::connection_aborted;
    return ClientError::tls_failure;
  }
  if (ec.category() == asio::error::get_netdb_category() || ec.category() == asio::error::get_addrinfo_category()) {
    return ClientError::dns_failure;
  }
  if (ec == err::connection_refused) return ClientError::connection_refused;
  if (ec == err::connection_reset) return ClientError::connection_reset;
  if (ec == err::network_unreachable || ec == err::host_unreachable || ec == err::network_down) {
    return ClientError::network_unreachable;
  }
  if (ec == err::timed_out) return ClientError::connect_timeout;
  return ClientError::connection_aborted;
}

auto Client::Impl::arm_watchdog(const std::shared_ptr<Conn>& c, ClientDuration d) -> std::shared_ptr<Watchdog> {
  auto wd = std::make_shared<Watchdog>(strand);
  if (d.count() <= 0) return wd;
  c->watchdogs.push_back(wd);
  wd->timer.expires_after(d);
  auto res = resolver;
  wd->timer.async_wait([wd, c, res](boost::system::error_code ec) {
    if (ec) return;
    wd->expired = true;
    if (res) res->cancel();
    boost::system::error_code ignored;
    c->socket().close(ignored);
  });
  return wd;
}

void Client::Impl::disarm(const std::shared_ptr<Conn>& c, const std::shared_ptr<Watchdog>& wd) {
  wd->timer.cancel();
  std::erase(c->watchdogs, wd);
}

auto Client::Impl::connect_once(ClientDuration& hint) -> asio::awaitable<std::shared_ptr<Conn>> {
  wire::ParserLimits limits;
  limits.max_message_bytes = opt.max_message_bytes;
  auto c = std::make_shared<Conn>(strand, url.secure ? &tls_ctx : nullptr, limits);
  conn = c;
  resolver = std::make_shared<tcp::resolver>(strand);
  auto fail = [&](ClientFailure f) {
    if (!c->failure) {
      c->failure = std::move(f);
      if (!stopping.load()) emit_error(*c->failure);
    }
    c->abort();
    return c;
  };

  if (url.secure && !tls_setup_error.empty()) co_return fail(make_failure(ClientError::tls_failure, tls_setup_error));

  // DNS + TCP connect under connect_timeout.
  auto wd = arm_watchdog(c, opt.connect_timeout);
  auto [rec, endpoints] = co_await resolver->async_resolve(url.host, std::to_string(url.port), use_tuple);
  if (stopping.load()) co_return fail(make_failure(ClientError::operation_aborted));
  if (wd->expired) co_return fail(make_failure(ClientError::connect_timeout, "resolving " + url.host));
  if (rec) co_return fail(make_failure(ClientError::dns_failure, url.host + ": " + rec.message()));
  auto [cec, endpoint] = co_await asio::async_connect(c->socket(), endpoints, use_tuple);
  if (stopping.load()) co_return fail(make_failure(ClientError::operation_aborted));
  if (wd->expired) {
    co_return fail(make_failure(ClientError::connect_timeout, url.host + ":" + std::to_string(url.port) + " after " +
                                                                  std::to_string(opt.connect_timeout.count()) + " ms"));
  }
  if (cec) {
    co_return fail(
        make_failure(classify_transport_error(cec), url.host + ":" + std::to_string(url.port) + ": " + cec.message()));
  }
  disarm(c, wd);
  boost::system::error_code ignored;
  c->socket().set_option(tcp::no_delay(true), ignored);

  // TLS + HTTP upgrade under handshake_timeout.
  wd = arm_watchdog(c, opt.handshake_timeout);
  auto timed_out = [&] {
    return fail(make_failure(ClientError::handshake_timeout,
                             "no complete handshake within " + std::to_string(opt.handshake_timeout.count()) + " ms"));
  };
  if (c->tls) {
    if (!url.host_is_ip) SSL_set_tlsext_host_name(c->tls->native_handle(), url.host.c_str());
    if (opt.insecure) {
      c->tls->set_verify_mode(ssl::verify_none);
    } else {
      c->tls->set_verify_mode(ssl::verify_peer);
      c->tls->set_verify_callback(ssl::host_name_verification(url.host));
    }
    auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (stopping.load()) co_return fail(make_failure(ClientError::operation_aborted));
    if (wd->expired) co_return timed_out();
    if (hec) {
      std::string detail = hec.message();
      const long verify = SSL_get_verify_result(c->tls->native_handle());
      if (verify != X509_V_OK) detail += ": " + std::string(X509_verify_cert_error_string(verify));
      co_return fail(make_failure(
          hec.category() == asio::error::get_ssl_category() ? ClientError::tls_failure : classify_transport_error(hec),
          detail));
    }
  }

  const std::string key = wire::generate_client_key();
  std::string extra;
  if (!opt.origin.empty()) extra += "Origin: " + opt.origin + "\r\n";
  for (const auto& [name, value] : opt.headers) extra += name + ": " + value + "\r\n";
  const std::string offer = opt.compression ? wire::make_deflate_offer(client_deflate_config()) : std::string{};
  const std::string request =
      wire::make_client_request(url.host_header, url.target, key, opt.subprotocols, offer, extra);
  auto [wec, wn] = co_await c->write(asio::buffer(request));
  (void)wn;
  if (stopping.load()) co_return fail(make_failure(ClientError::operation_aborted));
  if (wd->expired) co_return timed_out();
  if (wec) co_return fail(make_failure(classify_transport_error(wec), "sending the upgrade request: " + wec.message()));

  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> response_parser;
  response_parser.body_limit(64 * 1024);
  auto [hrec, hn] = c->tls ? co_await http::async_read_header(*c->tls, buffer, response_parser, use_tuple)
                           : co_await http::async_read_header(c->plain, buffer, response_parser, use_tuple);
  (void)hn;
  if (stopping.load()) co_return fail(make_failure(ClientError::operation_aborted));
  if (wd->expired) co_return timed_out();
  if (hrec) {
    if (hrec.category() == http::make_error_code(http::error::bad_version).category()) {  // malformed HTTP
      co_return fail(make_failure(ClientError::bad_handshake_response, hrec.message()));
    }
    co_return fail(make_failure(classify_transport_error(hrec), "reading the upgrade response: " + hrec.message()));
  }
  auto& response = response_parser.get();
  const unsigned status = response.result_int();
  if (!stopping.load() && handlers.on_handshake) {
    std::ostringstream head;
    head << response.base();
    handlers.on_handshake(request, head.str());
  }
  if (status != 101) {
    // The body says why (a 403 page, a 503 reason): read what there is within
    // the remaining handshake time.
    if (!response_parser.is_done()) {
      if (c->tls) {
        co_await http::async_read(*c->tls, buffer, response_parser, use_tuple);
      } else {
        co_await http::async_read(c->plain, buffer, response_parser, use_tuple);
      }
    }
    ClientFailure f = make_failure(ClientError::handshake_rejected, std::string(response.reason()));
    f.http_status = status;
    f.http_body = response.body().substr(0, max_error_body_bytes);
    if (status == 503 || status == 429) {
      if (auto after = client_detail::parse_retry_after(response[http::field::retry_after], response[http::field::date],
                                                        std::chrono::system_clock::now())) {
        hint = *after;
        f.detail += "; Retry-After " + std::to_string(after->count()) + " ms";
      }
    }
    co_return fail(std::move(f));
  }
  if (!wire::header_has_token(response[http::field::upgrade], "websocket") ||
      !wire::header_has_token(response[http::field::connection], "upgrade")) {
    co_return fail(
        make_failure(ClientError::bad_handshake_response, "101 without Upgrade: websocket and Connection: upgrade"));
  }
  const std::string expected_accept = wire::compute_accept_key(key);
  const std::string_view accept = response[http::field::sec_websocket_accept];
  if (accept != expected_accept) {
    co_return fail(make_failure(ClientError::bad_accept_key,
                                "got '" + std::string(accept) + "', expected '" + expected_accept + "'"));
  }
  const std::string selected(response[http::field::sec_websocket_protocol]);
  if (!selected.empty() &&
      std::find(opt.subprotocols.begin(), opt.subprotocols.end(), selected) == opt.subprotocols.end()) {
    ClientFailure f = make_failure(ClientError::unexpected_subprotocol, "server selected '" + selected + "'");
    f.subprotocol = selected;
    co_return fail(std::move(f));
  }
  if (const std::string_view extensions = response[http::field::sec_websocket_extensions]; !extensions.empty()) {
    std::optional<wire::DeflateParams> params;
    if (opt.compression) params = wire::accept_deflate_response(extensions, client_deflate_config());
    if (!params) {
      co_return fail(
          make_failure(ClientError::unexpected_extension,
                       std::string(extensions) + (opt.compression ? " (not a valid answer to our offer)" : "")));
    }
    c->deflate = std::make_unique<wire::PerMessageDeflate>(wire::Role::Client, *params, client_deflate_config().level);
    wire::ParserLimits limits = c->parser.limits();
    limits.allow_rsv1 = true;
    c->parser.set_limits(limits);
  }
  disarm(c, wd);

  const auto leftover = buffer.data();
  c->pending_input.assign(static_cast<const char*>(leftover.data()), leftover.size());
  c->opened = true;
  c->opened_at = Clock::now();
  {
    std::lock_guard lock(mu);
    current_subprotocol = selected;
  }
  co_return c;
}

}  // namespace conduit
