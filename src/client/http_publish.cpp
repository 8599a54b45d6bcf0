// conduit::publish_http: one POST /api/publish to conduitd's HTTP API, with
// Beast on a private io_context so that the timeout bounds every step.
#include <openssl/ssl.h>

#include <simdjson.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "client/json_check.hpp"
#include "client/url.hpp"
#include "conduit/channel_client.hpp"
#include "conduit/json_string.hpp"

namespace conduit {

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::error_code transport_code(const boost::system::error_code& ec) {
  if (ec == asio::error::connection_refused) return make_error_code(ClientError::connection_refused);
  if (ec == asio::error::connection_reset) return make_error_code(ClientError::connection_reset);
  if (ec == asio::error::network_unreachable || ec == asio::error::host_unreachable)
    return make_error_code(ClientError::network_unreachable);
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again)
    return make_error_code(ClientError::dns_failure);
  if (ec.category() == asio::error::get_ssl_category()) return make_error_code(ClientError::tls_failure);
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category())
    return make_error_code(ClientError::bad_handshake_response);
  return make_error_code(ClientError::connection_aborted);
}

// Reads the body of an answer: {"offset":N,"epoch":E} or {"error":{"code":N,"message":M}}.
void read_answer(HttpPublishResult& r) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (!parser.parse(r.body).get(doc)) {
    if (r.http_status == 200) {
      std::uint64_t offset = 0;
      std::string_view epoch;
      if (!doc["offset"].get(offset) && !doc["epoch"].get(epoch)) {
        r.position = StreamPosition{offset, std::string(epoch)};
        return;
      }
    } else {
      std::int64_t code = 0;
      std::string_view message;
      if (!doc["error"]["code"].get(code) && !doc["error"]["message"].get(message)) {
        r.error = ChannelReplyError{static_cast<int>(code), std::string(message)};
        return;
      }
    }
  }
  std::string first_line = r.body.substr(0, r.body.find('\n'));
  if (r.http_status == 200) {
    r.error = ChannelReplyError{channel_error::bad_frame, "a 200 answer without offset and epoch: " + first_line};
  } else {
    r.error = ChannelReplyError{static_cast<int>(r.http_status), first_line};
  }
}

}  // namespace

HttpPublishResult publish_http(std::string_view url_text, std::string_view channel, std::string_view json_data,
                               const HttpPublishOptions& options) {
  HttpPublishResult r;
  std::string ws_url;
  if (url_text.substr(0, 7) == "http://") {
    ws_url = "ws://" + std::string(url_text.substr(7));
  } else if (url_text.substr(0, 8) == "https://") {
    ws_url = "wss://" + std::string(url_text.substr(8));
  } else {
    ws_url = std::string(url_text);
  }
  auto url = client_detail::parse_ws_url(ws_url);
  if (!url) {
    r.transport_error = make_error_code(ClientError::invalid_url);
    r.detail = "expected http://host[:port] or https://... (or ws://, wss://), got \"" + std::string(url_text) + "\"";
    return r;
  }
  if (channel.empty()) {
    r.transport_error = make_error_code(ChannelClientError::invalid_channel);
    r.detail = r.transport_error.message();
    return r;
  }
  {
    if (!client_detail::is_json_value(json_data)) {
      r.transport_error = make_error_code(ChannelClientError::invalid_json);
      r.detail = r.transport_error.message();
      return r;
    }
  }
  std::string body = "{\"channel\":";
  append_json_string(body, channel);
  body += ",\"data\":";
  body.append(json_data);
  body += "}";

  http::request<http::string_body> req{http::verb::post, "/api/publish", 11};
  req.set(http::field::host, url->host_header);
  req.set(http::field::content_type, "application/json");
  if (!options.api_key.empty()) req.set(http::field::authorization, "apikey " + options.api_key);
  req.body() = std::move(body);
  req.prepare_payload();

  asio::io_context ctx(1);
  ssl::context tls_ctx(ssl::context::tls_client);
  if (url->secure) {
    boost::system::error_code ec;
    if (!options.ca_file.empty()) {
      tls_ctx.load_verify_file(options.ca_file, ec);
    } else {
      tls_ctx.set_default_verify_paths(ec);
    }
    if (ec) {
      r.transport_error = make_error_code(ClientError::tls_failure);
      r.detail = "cannot load the CA certificates: " + ec.message();
      return r;
    }
  }
  bool done = false;
  auto exchange = [&]() -> asio::awaitable<void> {
    boost::system::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    tcp::resolver resolver(ctx);
    auto endpoints = co_await resolver.async_resolve(url->host, std::to_string(url->port), token);
    if (ec) {
      r.transport_error = transport_code(ec);
      r.detail = ec.message();
      done = true;
      co_return;
    }
    tcp::socket socket(ctx);
    co_await asio::async_connect(socket, endpoints, token);
    if (ec) {
      r.transport_error = transport_code(ec);
      r.detail = ec.message();
      done = true;
      co_return;
    }
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    if (url->secure) {
      ssl::stream<tcp::socket&> tls(socket, tls_ctx);
      if (!url->host_is_ip) SSL_set_tlsext_host_name(tls.native_handle(), url->host.c_str());
      if (options.insecure) {
        tls.set_verify_mode(ssl::verify_none);
      } else {
        tls.set_verify_mode(ssl::verify_peer);
        tls.set_verify_callback(ssl::host_name_verification(url->host));
      }
      co_await tls.async_handshake(ssl::stream_base::client, token);
      if (!ec) co_await http::async_write(tls, req, token);
      if (!ec) co_await http::async_read(tls, buffer, parser, token);
    } else {
      co_await http::async_write(socket, req, token);
      if (!ec) co_await http::async_read(socket, buffer, parser, token);
    }
    if (ec && !parser.is_header_done()) {
      r.transport_error = transport_code(ec);
      r.detail = ec.message();
      done = true;
      co_return;
    }
    r.http_status = parser.get().result_int();
    r.body = parser.get().body();
    read_answer(r);
    done = true;
  };
  asio::co_spawn(ctx, exchange(), asio::detached);
  ctx.run_for(options.timeout);
  if (!done) {
    r.transport_error = make_error_code(ClientError::connect_timeout);
    r.detail = "no answer within the timeout";
  }
  return r;
}

}  // namespace conduit
