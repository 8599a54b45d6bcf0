// conduit::Client: connector, handshake, heartbeat and reconnect loop.
//
// Everything that touches a connection runs on one strand: the lifecycle
// coroutine (run → connect_once → run_open), the writer and the heartbeat.
// Other threads only touch the small send-side state under `mu`
// (offline queue, open flag, queued byte counts) and post to the strand, which
// keeps send() thread-safe and the per-message path free of locks on the
// I/O thread except that one short critical section.
#include "conduit/client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "client/retry_after.hpp"
#include "client/url.hpp"
#include "ops/log.hpp"
#include "wire/deflate.hpp"
#include "wire/frame.hpp"
#include "wire/handshake.hpp"
#include "wire/parser.hpp"
#include "wire/utf8.hpp"

namespace conduit {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::io_context::executor_type>;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t read_chunk_bytes = 64 * 1024;
constexpr std::size_t max_error_body_bytes = 4096;

ClientFailure make_failure(ClientError e, std::string detail = {}) {
  ClientFailure f;
  f.code = make_error_code(e);
  f.detail = std::move(detail);
  return f;
}

// Maps an Asio/OS error of the transport to the client's enum.
ClientError classify_transport_error(const boost::system::error_code& ec) {
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

// The permessage-deflate settings the client offers with ClientOptions::compression.
wire::DeflateConfig client_deflate_config() {
  wire::DeflateConfig config;
  config.enabled = true;
  return config;
}

// 1012/1013 carry no standard hint; a reason such as "retry after 5" or
// "retry-after=5" (seconds) is honoured, as conduitd's shutdown sends it.
std::optional<ClientDuration> parse_close_retry_hint(std::string_view reason) {
  std::string lower(reason);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  const std::size_t at = lower.find("retry");
  if (at == std::string::npos) return std::nullopt;
  const std::size_t digit = lower.find_first_of("0123456789", at);
  if (digit == std::string::npos) return std::nullopt;
  unsigned long seconds = 0;
  std::from_chars(lower.data() + digit, lower.data() + lower.size(), seconds);
  return std::chrono::duration_cast<ClientDuration>(std::chrono::seconds(std::min(seconds, 86400UL)));
}

struct Outgoing {
  wire::Opcode op;
  std::string payload;  // data messages keep their payload so an unsent one can go back offline
};

struct Watchdog {
  explicit Watchdog(const Strand& s) : timer(s) {}
  asio::steady_timer timer;
  bool expired = false;
};

}  // namespace

// One TCP (or TLS) connection attempt and, when it opens, its whole life.
struct Conn {
  Conn(const Strand& strand, ssl::context* tls_ctx, wire::ParserLimits limits)
      : plain(strand),
        parser(wire::Role::Client, limits),
        write_signal(strand),
        heartbeat(strand),
        read_resume(strand) {
    if (tls_ctx != nullptr) tls = std::make_unique<ssl::stream<tcp::socket>>(strand, *tls_ctx);
  }

  tcp::socket& socket() { return tls ? tls->next_layer() : plain; }

  template <class Buffers>
  asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(const Buffers& buffers) {
    if (tls) return tls->async_read_some(buffers, use_tuple);
    return plain.async_read_some(buffers, use_tuple);
  }
  template <class Buffers>
  asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> write(const Buffers& buffers) {
    if (tls) return asio::async_write(*tls, buffers, use_tuple);
    return asio::async_write(plain, buffers, use_tuple);
  }

  // Ends every pending operation of this connection: socket I/O, writer and
  // heartbeat waits, watchdogs. Safe to call more than once.
  void abort() {
    boost::system::error_code ignored;
    socket().close(ignored);
    write_signal.cancel();
    heartbeat.cancel();
    read_resume.cancel();
    for (auto& wd : watchdogs) wd->timer.cancel();
  }

  tcp::socket plain;
  std::unique_ptr<ssl::stream<tcp::socket>> tls;
  wire::Parser parser;
  asio::steady_timer write_signal;  // the writer sleeps on it while wq is empty; cancel() wakes it
  asio::steady_timer heartbeat;
  asio::steady_timer read_resume;  // the reader sleeps on it while read() consumers lag
  std::vector<std::shared_ptr<Watchdog>> watchdogs;

  std::unique_ptr<wire::PerMessageDeflate> deflate;  // set when the server accepted permessage-deflate
  std::string pending_input;                         // bytes that arrived with the 101 response
  std::deque<Outgoing> wq;                           // frames waiting for the writer
  bool opened = false;                               // 101 validated
  bool done = false;                                 // connection over: nothing more is written or read
  bool sent_close = false;
  bool got_close = false;
  bool by_server = false;  // the server's close came first
  bool parser_stopped = false;
  bool close_written = false;  // our close frame reached the socket
  bool half_closed = false;
  // We failed the connection (protocol error): our close frame is enqueued
  // once the messages send() accepted before the failure are in wq, so they
  // still go out first; until then on_send keeps accepting into wq.
  bool close_deferred = false;
  bool discard_input = false;  // after we failed the connection: frames still arriving are ignored
  std::uint16_t close_code = close_code::abnormal;
  std::string close_reason;
  std::uint64_t reads = 0;  // liveness for the heartbeat: any bytes received
  std::optional<ClientFailure> failure;
  Clock::time_point opened_at;
};

struct Client::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context* external, std::string url_text, ClientOptions options, ClientHandlers hs)
      : opt(std::move(options)),
        handlers(std::move(hs)),
        own_ctx(external == nullptr ? std::make_unique<asio::io_context>(1) : nullptr),
        ctx(external != nullptr ? *external : *own_ctx),
        strand(asio::make_strand(ctx)),
        tls_ctx(ssl::context::tls_client),
        backoff_timer(strand),
        rng(std::random_device{}()),
        read_buf(read_chunk_bytes) {
    auto parsed = client_detail::parse_ws_url(url_text);
    if (!parsed) throw std::system_error(make_error_code(ClientError::invalid_url), url_text);
    url = std::move(*parsed);
    if (url.secure) setup_tls();
  }

  void setup_tls() {
    boost::system::error_code ec;
    tls_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (!opt.ca_file.empty()) {
      tls_ctx.load_verify_file(opt.ca_file, ec);
      if (ec) tls_setup_error = "cannot load ca_file " + opt.ca_file + ": " + ec.message();
    } else {
      tls_ctx.set_default_verify_paths(ec);
      if (ec) tls_setup_error = "cannot load the system certificate store: " + ec.message();
    }
  }

  // ---- callbacks (suppressed once the Client object is gone) -------------------
  void emit_state(ClientState s, unsigned att, ClientDuration delay, std::error_code error) {
    state.store(s);
    if (!stopping.load() && handlers.on_state) handlers.on_state(ClientStateEvent{s, att, delay, error});
  }
  void emit_error(const ClientFailure& f) {
    if (!stopping.load() && handlers.on_error) handlers.on_error(f);
  }

  // ---- lifecycle -------------------------------------------------------------------
  bool should_stop() {
    std::lock_guard lock(mu);
    return app_closed || stopping.load();
  }

  ClientDuration backoff_delay(unsigned n) {
    // Full jitter (delay = uniform(0, min(max, initial * 2^n))): spreads a crowd of
    // clients that lost the same server over the whole window instead of
    // synchronising them into waves.
    const auto initial = opt.reconnect.initial_delay.count();
    const auto cap = opt.reconnect.max_delay.count();
    long long window = initial;
    for (unsigned i = 0; i < n && window < cap; ++i) window *= 2;
    window = std::min<long long>(window, cap);
    if (window <= 0) return ClientDuration{0};
    std::uniform_int_distribution<long long> dist(0, window);
    return ClientDuration{dist(rng)};
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) { co_await self->run_loop(); }

  asio::awaitable<void> run_loop() {
    std::error_code last_error;
    for (;;) {
      // close() during an attempt lets it finish (queued messages then go out
      // before the close handshake); only destruction stops it here.
      if (stopping.load()) break;
      emit_state(ClientState::Connecting, attempt.load(), ClientDuration{0}, last_error);
      ClientDuration hint{0};
      auto c = co_await connect_once(hint);
      if (c->opened) {
        co_await run_open(c);
        if (Clock::now() - c->opened_at >= opt.reconnect.healthy_after) attempt.store(0);
        if (c->got_close &&
            (c->close_code == close_code::service_restart || c->close_code == close_code::try_again_later)) {
          // Without a hint in the reason, at least initial_delay: a restarting or
          // overloaded server must not see its clients come back at once.
          hint = parse_close_retry_hint(c->close_reason).value_or(opt.reconnect.initial_delay);
        }
      }
      last_error = c->failure ? c->failure->code : std::error_code{};
      if (!c->failure && c->opened && c->got_close && c->close_code != close_code::normal) {
        last_error = make_error_code(ClientError::closed_by_server);
      }
      conn.reset();
      if (should_stop()) break;
      if (!opt.reconnect.enabled) {
        std::lock_guard lock(mu);
        final_error = last_error;
        break;
      }
      const unsigned n = attempt.load();
      if (opt.reconnect.max_attempts != 0 && n >= opt.reconnect.max_attempts) {
        ClientFailure f = make_failure(ClientError::max_attempts_reached,
                                       "after " + std::to_string(n) + " attempts; last: " + last_error.message());
        emit_error(f);
        std::lock_guard lock(mu);
        final_error = f.code;
        break;
      }
      const ClientDuration delay = std::max(backoff_delay(n), hint);
      attempt.store(n + 1);
      emit_state(ClientState::Reconnecting, n + 1, delay, last_error);
      if (should_stop()) break;
      backoff_timer.expires_after(delay);
      co_await backoff_timer.async_wait(use_tuple);
      if (should_stop()) break;
    }
    finish();
  }

  void finish() {
    std::deque<std::function<void(std::error_code, ClientMessage)>> waiting;
    std::error_code reason;
    {
      std::lock_guard lock(mu);
      finished = true;
      out_open = false;
      offline.clear();
      offline_bytes = 0;
      reason = final_error ? final_error : make_error_code(ClientError::not_open);
    }
    waiting.swap(readers);
    emit_state(ClientState::Closed, attempt.load(), ClientDuration{0}, final_error_copy());
    for (auto& r : waiting) r(reason, ClientMessage{});
    cv.notify_all();
  }

  std::error_code final_error_copy() {
    std::lock_guard lock(mu);
    return final_error;
  }

  std::shared_ptr<Watchdog> arm_watchdog(const std::shared_ptr<Conn>& c, ClientDuration d) {
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

  static void disarm(const std::shared_ptr<Conn>& c, const std::shared_ptr<Watchdog>& wd) {
    wd->timer.cancel();
    std::erase(c->watchdogs, wd);
  }

  // One attempt: resolve, connect, TLS, upgrade. Returns the connection with
  // opened = true, or with failure set (already reported through on_error).
  asio::awaitable<std::shared_ptr<Conn>> connect_once(ClientDuration& hint) {
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
      co_return fail(make_failure(
          ClientError::connect_timeout,
          url.host + ":" + std::to_string(url.port) + " after " + std::to_string(opt.connect_timeout.count()) + " ms"));
    }
    if (cec) {
      co_return fail(make_failure(classify_transport_error(cec),
                                  url.host + ":" + std::to_string(url.port) + ": " + cec.message()));
    }
    disarm(c, wd);
    boost::system::error_code ignored;
    c->socket().set_option(tcp::no_delay(true), ignored);

    // TLS + HTTP upgrade under handshake_timeout.
    wd = arm_watchdog(c, opt.handshake_timeout);
    auto timed_out = [&] {
      return fail(
          make_failure(ClientError::handshake_timeout,
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
        co_return fail(make_failure(hec.category() == asio::error::get_ssl_category() ? ClientError::tls_failure
                                                                                      : classify_transport_error(hec),
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
    if (wec)
      co_return fail(make_failure(classify_transport_error(wec), "sending the upgrade request: " + wec.message()));

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
        if (auto after = client_detail::parse_retry_after(
                response[http::field::retry_after], response[http::field::date], std::chrono::system_clock::now())) {
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
      c->deflate =
          std::make_unique<wire::PerMessageDeflate>(wire::Role::Client, *params, client_deflate_config().level);
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

  // The open connection's life: flush the offline queue, run writer, heartbeat
  // and reader, then the close handshake.
  asio::awaitable<void> run_open(std::shared_ptr<Conn> c) {
    {
      std::lock_guard lock(mu);
      for (auto& m : offline) {
        c->wq.push_back(
            Outgoing{m.type == MessageType::Binary ? wire::Opcode::Binary : wire::Opcode::Text, std::move(m.data)});
      }
      pending_send_bytes += offline_bytes;
      offline.clear();
      offline_bytes = 0;
      out_open = true;
    }
    emit_state(ClientState::Open, attempt.load(), ClientDuration{0}, {});
    if (!stopping.load() && handlers.on_open) handlers.on_open(subprotocol());
    auto self = shared_from_this();
    asio::co_spawn(strand, writer(self, c), asio::detached);
    if (opt.ping_interval.count() > 0) asio::co_spawn(strand, heartbeat(self, c), asio::detached);
    // close() may have been called while connecting: honour it now.
    if (should_stop() && !c->sent_close) start_close(c, app_close_code_copy(), app_close_reason_copy());

    co_await reader(c);

    if (c->parser_stopped && c->sent_close) {
      // RFC 6455 §7.1.1: after the close handshake the server closes TCP first;
      // wait for that (and for our close frame to be written), bounded by close_timeout.
      auto wd = arm_watchdog(c, opt.close_timeout);
      std::array<std::uint8_t, 4096> scratch;
      for (;;) {
        auto [ec, n] = co_await c->read_some(asio::buffer(scratch));
        (void)n;
        if (ec) break;
      }
      disarm(c, wd);
    }
    c->done = true;
    c->abort();

    // Unsent messages go back to the front of the offline queue, in order.
    {
      std::lock_guard lock(mu);
      out_open = false;
      requeue_unsent_locked(*c);
    }
    std::uint16_t code = c->close_code;
    if (!c->got_close && !c->sent_close) code = close_code::abnormal;
    if (!c->got_close && c->sent_close && !c->failure) code = close_code::abnormal;  // no answer to our close
    if (!stopping.load() && handlers.on_close) handlers.on_close(code, c->close_reason, c->by_server);
  }

  // Caller holds mu.
  void requeue_unsent_locked(Conn& c) {
    std::deque<ClientMessage> back;
    for (auto& o : c.wq) {
      if (wire::is_control(o.op)) continue;
      pending_send_bytes -= std::min(pending_send_bytes, o.payload.size());
      if (app_closed || !opt.resend_unsent) continue;
      offline_bytes += o.payload.size();
      back.push_back(
          ClientMessage{o.op == wire::Opcode::Binary ? MessageType::Binary : MessageType::Text, std::move(o.payload)});
    }
    c.wq.clear();
    offline.insert(offline.begin(), std::make_move_iterator(back.begin()), std::make_move_iterator(back.end()));
  }

  std::uint16_t app_close_code_copy() {
    std::lock_guard lock(mu);
    return app_close_code;
  }
  std::string app_close_reason_copy() {
    std::lock_guard lock(mu);
    return app_close_reason;
  }

  // Parser events for one connection (called synchronously from consume()).
  struct ParserEvents {
    Impl* impl;
    Conn* c;
    std::string inflated;  // scratch for compressed messages
    void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed) {
      if (c->discard_input) return;
      const MessageType type = op == wire::Opcode::Binary ? MessageType::Binary : MessageType::Text;
      if (!compressed) {
        impl->deliver(type, std::string_view(reinterpret_cast<const char*>(data), len));
        return;
      }
      // The parser accepts RSV1 only once permessage-deflate was negotiated.
      switch (c->deflate->decompress(data, len, inflated, impl->opt.max_message_bytes)) {
        case wire::InflateResult::Ok:
          break;
        case wire::InflateResult::TooBig:
          return on_error(close_code::message_too_big, "message too big after decompression");
        case wire::InflateResult::Corrupt:
          return on_error(close_code::invalid_payload, "invalid compressed data");
      }
      if (type == MessageType::Text &&
          !wire::is_valid_utf8(reinterpret_cast<const std::uint8_t*>(inflated.data()), inflated.size())) {
        return on_error(close_code::invalid_payload, "invalid UTF-8 in text message");
      }
      impl->deliver(type, inflated);
      if (inflated.capacity() > (1u << 20)) std::string().swap(inflated);
    }
    void on_ping(const std::uint8_t* data, std::size_t len) {
      if (c->discard_input) return;
      const std::string_view payload(reinterpret_cast<const char*>(data), len);
      impl->report_ping_pong(PingPong::ping_received, payload);
      if (c->sent_close) return;
      impl->enqueue(*c, wire::Opcode::Pong, std::string(payload));
    }
    void on_pong(const std::uint8_t* data, std::size_t len) {
      if (c->discard_input) return;
      impl->report_ping_pong(PingPong::pong_received, std::string_view(reinterpret_cast<const char*>(data), len));
    }
    void on_close(std::uint16_t code, std::string_view reason) {
      if (c->discard_input) {  // the answer to the close we sent when failing the connection
        c->got_close = true;
        return;
      }
      c->got_close = true;
      c->close_code = code;
      c->close_reason = std::string(reason);
      if (!c->sent_close) {
        c->by_server = true;
        // Data not yet written would be discarded by a closing server: keep it
        // for the next connection instead, and answer the close at once.
        {
          std::lock_guard lock(impl->mu);
          impl->requeue_unsent_locked(*c);
        }
        impl->enqueue(*c, wire::Opcode::Close, wire::close_payload(code, {}));
        c->sent_close = true;
      }
    }
    void on_error(std::uint16_t code, const char* reason) {
      ClientError e = ClientError::protocol_error;
      if (code == close_code::invalid_payload) e = ClientError::invalid_payload;
      if (code == close_code::message_too_big) e = ClientError::message_too_big;
      ClientFailure f = make_failure(e, reason != nullptr ? reason : "");
      f.close_code = code;
      c->close_code = code;
      c->close_reason = f.detail;
      if (!c->failure) {
        c->failure = f;
        impl->emit_error(f);
      }
      c->discard_input = true;
      if (!c->sent_close) {
        // Fail the connection (RFC 6455 §7.1.7) with our close frame, and
        // nothing after it. What the application had already handed to send()
        // (an echo of the valid message before the bad frame, typically) still
        // goes out first: those sends are posted to this strand ahead of the
        // task below, and on_send accepts them while close_deferred is set.
        c->sent_close = true;
        c->close_deferred = true;
        std::shared_ptr<Conn> conn = impl->conn;
        if (conn.get() != c) return;  // not the current connection (cannot happen while parsing it)
        // The server's answer is awaited at most close_timeout, whether the
        // parser stopped here or (failure found after parsing, e.g. bad
        // compressed data) keeps reading until the server's close.
        impl->arm_watchdog(conn, impl->opt.close_timeout);
        asio::post(impl->strand, [impl = impl->shared_from_this(), conn, code] {
          conn->close_deferred = false;
          impl->enqueue(*conn, wire::Opcode::Close, wire::close_payload(code, {}));
        });
      }
    }
  };

  void deliver(MessageType type, std::string_view data) {
    if (stopping.load()) return;
    if (handlers.on_message) {
      handlers.on_message(data, type);
      return;
    }
    ClientMessage m{type, std::string(data)};
    if (!readers.empty()) {
      auto r = std::move(readers.front());
      readers.pop_front();
      asio::post(strand, [r = std::move(r), m = std::move(m)]() mutable { r({}, std::move(m)); });
      return;
    }
    read_q_bytes += m.data.size();
    read_q.push_back(std::move(m));
    if (read_q_bytes > opt.read_queue_bytes) read_paused = true;
  }

  asio::awaitable<void> reader(std::shared_ptr<Conn> c) {
    ParserEvents events{this, c.get()};
    if (!c->pending_input.empty()) {
      std::string input = std::move(c->pending_input);
      if (!c->parser.consume(reinterpret_cast<std::uint8_t*>(input.data()), input.size(), events)) {
        c->parser_stopped = true;
        maybe_half_close(*c);
        co_return;
      }
    }
    while (!c->done) {
      if (read_paused) {
        c->read_resume.expires_at(asio::steady_timer::time_point::max());
        co_await c->read_resume.async_wait(use_tuple);
        continue;
      }
      auto [ec, n] = co_await c->read_some(asio::buffer(read_buf.data(), read_buf.size()));
      if (ec) {
        if (!c->failure && !stopping.load() && !c->sent_close) {
          c->failure = make_failure(classify_transport_error(ec), ec.message());
          emit_error(*c->failure);
        }
        co_return;
      }
      ++c->reads;
      if (!c->parser.consume(read_buf.data(), n, events)) {
        c->parser_stopped = true;
        maybe_half_close(*c);
        co_return;
      }
    }
  }

  static asio::awaitable<void> writer(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
    std::string batch;
    std::string compressed;
    while (!c->done) {
      if (c->wq.empty()) {
        c->write_signal.expires_at(asio::steady_timer::time_point::max());
        co_await c->write_signal.async_wait(use_tuple);
        continue;
      }
      // Cork: everything queued so far leaves in one write.
      batch.clear();
      std::size_t data_bytes = 0;
      bool close_written = false;
      while (!c->wq.empty()) {
        Outgoing& o = c->wq.front();
        // Compressed here, in write order, because with context takeover each
        // message's deflate output depends on every message before it.
        if (c->deflate && !wire::is_control(o.op) && o.payload.size() >= client_deflate_config().min_compress_bytes) {
          compressed.clear();
          c->deflate->compress(reinterpret_cast<const std::uint8_t*>(o.payload.data()), o.payload.size(), compressed);
          wire::append_frame(batch, o.op, compressed, /*masked=*/true, /*fin=*/true, /*rsv1=*/true);
        } else {
          wire::append_frame(batch, o.op, o.payload, /*masked=*/true);
        }
        if (!wire::is_control(o.op)) data_bytes += o.payload.size();
        if (o.op == wire::Opcode::Close) close_written = true;
        c->wq.pop_front();
        if (close_written) {
          c->wq.clear();  // nothing may follow a close frame (RFC 6455 §5.5.1)
          break;
        }
      }
      auto [ec, n] = co_await c->write(asio::buffer(batch));
      (void)n;
      {
        std::lock_guard lock(self->mu);
        self->pending_send_bytes -= std::min(self->pending_send_bytes, data_bytes);
      }
      if (batch.capacity() > (1u << 20)) std::string().swap(batch);  // no large idle buffer per connection
      if (compressed.capacity() > (1u << 20)) std::string().swap(compressed);
      if (ec) {
        if (!c->done && !c->failure && !c->sent_close) {
          c->failure = make_failure(classify_transport_error(ec), ec.message());
          self->emit_error(*c->failure);
        }
        c->abort();
        co_return;
      }
      if (close_written) {
        c->close_written = true;
        maybe_half_close(*c);
        co_return;
      }
    }
  }

  // Once both close frames are exchanged (or we failed the connection), send
  // our FIN. RFC 6455 §7.1.1 lets the server close TCP first, but peers that
  // wait for the client's EOF would otherwise stall for close_timeout.
  static void maybe_half_close(Conn& c) {
    if (c.half_closed || !c.close_written || !(c.got_close || c.parser.failed())) return;
    c.half_closed = true;
    boost::system::error_code ignored;
    c.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  static asio::awaitable<void> heartbeat(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
    const auto interval = self->opt.ping_interval;
    const auto timeout = self->opt.pong_timeout;
    auto next_ping = Clock::now() + interval;
    while (!c->done) {
      c->heartbeat.expires_at(next_ping);
      co_await c->heartbeat.async_wait(use_tuple);
      if (c->done || c->sent_close) co_return;
      const std::uint64_t reads_at_ping = c->reads;
      self->enqueue(*c, wire::Opcode::Ping, {});
      next_ping = Clock::now() + interval;
      if (timeout.count() <= 0) continue;
      c->heartbeat.expires_after(timeout);
      co_await c->heartbeat.async_wait(use_tuple);
      if (c->done || c->sent_close) co_return;
      if (c->reads == reads_at_ping) {
        // Nothing at all came back: the path is dead (NAT eviction, pulled
        // cable). A close handshake would hang too, so drop TCP and reconnect.
        ClientFailure f = make_failure(ClientError::pong_timeout,
                                       "no frame within " + std::to_string(timeout.count()) + " ms after ping");
        c->failure = f;
        self->emit_error(f);
        c->abort();
        co_return;
      }
    }
  }

  void report_ping_pong(PingPong event, std::string_view payload) {
    if (!stopping.load() && handlers.on_ping_pong) handlers.on_ping_pong(event, payload);
  }

  void enqueue(Conn& c, wire::Opcode op, std::string payload) {
    if (c.done) return;
    if (op == wire::Opcode::Ping) report_ping_pong(PingPong::ping_sent, payload);
    if (op == wire::Opcode::Pong) report_ping_pong(PingPong::pong_sent, payload);
    c.wq.push_back(Outgoing{op, std::move(payload)});
    c.write_signal.cancel();
  }

  void start_close(const std::shared_ptr<Conn>& c, std::uint16_t code, const std::string& reason) {
    if (c->sent_close || c->done) return;
    emit_state(ClientState::Closing, attempt.load(), ClientDuration{0}, {});
    enqueue(*c, wire::Opcode::Close, wire::close_payload(code, reason));
    c->sent_close = true;
    arm_watchdog(c, opt.close_timeout);
  }

  // ---- called on the strand from the public API ---------------------------------
  void on_send(Outgoing o) {
    if (conn && conn->opened && !conn->done && (!conn->sent_close || conn->close_deferred)) {
      enqueue(*conn, o.op, std::move(o.payload));
      return;
    }
    // The connection ended between send() and here: keep the order by joining
    // the offline queue behind what was requeued.
    std::lock_guard lock(mu);
    pending_send_bytes -= std::min(pending_send_bytes, o.payload.size());
    if (app_closed || finished || !opt.resend_unsent) return;
    offline_bytes += o.payload.size();
    offline.push_back(
        ClientMessage{o.op == wire::Opcode::Binary ? MessageType::Binary : MessageType::Text, std::move(o.payload)});
  }

  void on_app_ping(std::string payload) {
    if (conn && conn->opened && !conn->done && !conn->sent_close)
      enqueue(*conn, wire::Opcode::Ping, std::move(payload));
  }

  // A connect attempt in progress is left to finish (bounded by its timeouts):
  // run_open() then flushes the offline queue and starts the close handshake.
  void on_app_close() {
    backoff_timer.cancel();
    if (conn && conn->opened && !conn->done) start_close(conn, app_close_code_copy(), app_close_reason_copy());
  }

  void on_abort() {
    backoff_timer.cancel();
    if (resolver) resolver->cancel();
    if (conn) {
      conn->done = true;
      conn->abort();
    }
    read_paused = false;
  }

  std::string subprotocol() const {
    std::lock_guard lock(mu);
    return current_subprotocol;
  }

  // ---- configuration (immutable after construction) -------------------------------
  client_detail::WsUrl url;
  ClientOptions opt;
  ClientHandlers handlers;
  std::unique_ptr<asio::io_context> own_ctx;
  asio::io_context& ctx;
  Strand strand;
  ssl::context tls_ctx;
  std::string tls_setup_error;
  std::thread thread;

  // ---- shared with other threads ----------------------------------------------------
  std::atomic<ClientState> state{ClientState::Idle};
  std::atomic<unsigned> attempt{0};
  std::atomic<bool> stopping{false};  // the Client is being destroyed
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<ClientMessage> offline;   // guarded by mu
  std::size_t offline_bytes = 0;       // guarded by mu
  bool out_open = false;               // guarded by mu: sends go to the strand
  std::size_t pending_send_bytes = 0;  // guarded by mu: accepted while open, not yet written
  bool app_closed = false;             // guarded by mu
  bool finished = false;               // guarded by mu
  std::uint16_t app_close_code = close_code::normal;
  std::string app_close_reason;
  std::error_code final_error;
  std::string current_subprotocol;

  // ---- strand only ------------------------------------------------------------------------
  std::shared_ptr<Conn> conn;
  std::shared_ptr<tcp::resolver> resolver;
  asio::steady_timer backoff_timer;
  std::mt19937_64 rng;
  std::vector<std::uint8_t> read_buf;
  std::deque<ClientMessage> read_q;
  std::size_t read_q_bytes = 0;
  bool read_paused = false;
  std::deque<std::function<void(std::error_code, ClientMessage)>> readers;
};

// ---- public API ------------------------------------------------------------------------------

Client::Client(std::string url, ClientOptions options, ClientHandlers handlers)
    : impl_(std::make_shared<Impl>(nullptr, std::move(url), std::move(options), std::move(handlers))) {}

Client::Client(asio::io_context& ctx, std::string url, ClientOptions options, ClientHandlers handlers)
    : impl_(std::make_shared<Impl>(&ctx, std::move(url), std::move(options), std::move(handlers))) {}

Client::~Client() {
  impl_->stopping.store(true);
  asio::post(impl_->strand, [impl = impl_] { impl->on_abort(); });
  if (impl_->own_ctx && !impl_->thread.joinable()) {
    // Never started: nothing runs our own context, so run the abort here;
    // otherwise the queued handler (holding impl_) and the context (owned by
    // impl_) would keep each other alive.
    impl_->own_ctx->run();
    return;
  }
  if (impl_->thread.joinable()) {
    if (impl_->thread.get_id() == std::this_thread::get_id()) {
      impl_->thread.detach();  // destroyed from its own callback: the thread ends by itself
    } else {
      impl_->thread.join();
    }
  }
}

void Client::start() {
  if (impl_->state.load() != ClientState::Idle) return;
  impl_->state.store(ClientState::Connecting);
  asio::co_spawn(impl_->strand, Impl::run(impl_), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      ops::logger().critical("event=client_internal_error what=\"{}\"", ex.what());
    }
  });
  if (impl_->own_ctx) {
    impl_->thread = std::thread([impl = impl_.get()] { impl->own_ctx->run(); });
  }
}

std::error_code Client::send(std::string_view data, MessageType type) {
  Impl& d = *impl_;
  std::lock_guard lock(d.mu);
  if (d.app_closed || d.finished) return make_error_code(ClientError::not_open);
  if (d.out_open) {
    if (d.pending_send_bytes != 0 && d.pending_send_bytes + data.size() > d.opt.send_queue_bytes) {
      return make_error_code(ClientError::send_queue_full);
    }
    d.pending_send_bytes += data.size();
    // Posted while holding mu: the strand sees sends in the order send() accepted them.
    asio::post(d.strand,
               [impl = impl_, o = Outgoing{type == MessageType::Binary ? wire::Opcode::Binary : wire::Opcode::Text,
                                           std::string(data)}]() mutable { impl->on_send(std::move(o)); });
    return {};
  }
  if (d.offline_bytes + data.size() > d.opt.offline_queue_bytes)
    return make_error_code(ClientError::offline_queue_full);
  d.offline_bytes += data.size();
  d.offline.push_back(ClientMessage{type, std::string(data)});
  return {};
}

std::error_code Client::ping(std::string_view payload) {
  if (payload.size() > 125) return std::make_error_code(std::errc::message_size);
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->out_open || impl_->app_closed || impl_->finished) return make_error_code(ClientError::not_open);
  }
  asio::post(impl_->strand, [impl = impl_, p = std::string(payload)]() mutable { impl->on_app_ping(std::move(p)); });
  return {};
}

void Client::close(std::uint16_t code, std::string_view reason) {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->app_closed || impl_->finished) return;
    impl_->app_closed = true;
    impl_->app_close_code = code;
    impl_->app_close_reason = std::string(reason);
  }
  asio::post(impl_->strand, [impl = impl_] { impl->on_app_close(); });
}

bool Client::wait(ClientDuration timeout) {
  std::unique_lock lock(impl_->mu);
  if (timeout == ClientDuration::max()) {
    impl_->cv.wait(lock, [&] { return impl_->finished; });
    return true;
  }
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->finished; });
}

ClientState Client::state() const noexcept { return impl_->state.load(); }
unsigned Client::attempt() const noexcept { return impl_->attempt.load(); }
std::string Client::subprotocol() const { return impl_->subprotocol(); }
std::error_code Client::final_error() const { return impl_->final_error_copy(); }

void Client::async_read(std::function<void(std::error_code, ClientMessage)> handler) {
  asio::post(impl_->strand, [impl = impl_, handler = std::move(handler)]() mutable {
    if (!impl->read_q.empty()) {
      ClientMessage m = std::move(impl->read_q.front());
      impl->read_q.pop_front();
      impl->read_q_bytes -= m.data.size();
      if (impl->read_paused && impl->read_q_bytes <= impl->opt.read_queue_bytes / 2) {
        impl->read_paused = false;
        if (impl->conn) impl->conn->read_resume.cancel();
      }
      handler({}, std::move(m));
      return;
    }
    bool finished;
    std::error_code reason;
    {
      std::lock_guard lock(impl->mu);
      finished = impl->finished;
      reason = impl->final_error ? impl->final_error : make_error_code(ClientError::not_open);
    }
    if (finished) {
      handler(reason, ClientMessage{});
      return;
    }
    impl->readers.push_back(std::move(handler));
  });
}

}  // namespace conduit
