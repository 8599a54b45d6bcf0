// Client::Impl: the lifecycle loop (connect, live, reconnect with backoff,
// until closed or reconnecting gives up) and the life of an open connection.
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <cctype>
#include <charconv>

#include "client/client_impl.hpp"

namespace conduit {

using client_detail::make_failure;
using client_detail::use_tuple;

namespace {

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

}  // namespace

ClientDuration Client::Impl::backoff_delay(unsigned n) {
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

asio::awaitable<void> Client::Impl::run_loop() {
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

void Client::Impl::finish() {
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

asio::awaitable<void> Client::Impl::run_open(std::shared_ptr<Conn> c) {
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

}  // namespace conduit
