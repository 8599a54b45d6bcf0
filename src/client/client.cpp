// conduit::Client: the public API and the set-up of Client::Impl; the
// connection's life is in client_connect.cpp (connect and handshake),
// client_read.cpp, client_send.cpp (with the heartbeat) and
// client_reconnect.cpp (the lifecycle loop and backoff).
#include "conduit/client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include "client/client_impl.hpp"
#include "ops/log.hpp"

namespace conduit {

namespace {

constexpr std::size_t read_chunk_bytes = 64 * 1024;

}  // namespace

Client::Impl::Impl(asio::io_context* external, std::string url_text, ClientOptions options, ClientHandlers hs)
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

void Client::Impl::setup_tls() {
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

void Client::Impl::on_app_ping(std::string payload) {
  if (conn && conn->opened && !conn->done && !conn->sent_close) enqueue(*conn, wire::Opcode::Ping, std::move(payload));
}

void Client::Impl::on_app_close() {
  backoff_timer.cancel();
  if (conn && conn->opened && !conn->done) start_close(conn, app_close_code_copy(), app_close_reason_copy());
}

void Client::Impl::on_abort() {
  backoff_timer.cancel();
  if (resolver) resolver->cancel();
  if (conn) {
    conn->done = true;
    conn->abort();
  }
  read_paused = false;
}

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
    asio::post(d.strand, [impl = impl_,
                          o = Impl::Outgoing{type == MessageType::Binary ? wire::Opcode::Binary : wire::Opcode::Text,
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
