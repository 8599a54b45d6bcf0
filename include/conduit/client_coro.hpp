// Coroutine interface of conduit::Client for Asio coroutines. This is the one
// client header that includes Asio; include it only where you co_await.
//
//   asio::awaitable<void> consume(conduit::Client& client) {
//     for (;;) {
//       auto [ec, msg] = co_await client.read();
//       if (ec) co_return;  // closed for good: ec is final_error() or not_open
//       handle(msg.type, msg.data);
//     }
//   }
//
// read() works with any Asio completion token (use_awaitable is the default for
// `co_await`, since Asio treats ClientReadOperation as an async operation). The
// coroutine resumes on its own executor, not on the client's I/O thread.
// Messages reach read() only when ClientHandlers::on_message is not set; they
// are queued up to ClientOptions::read_queue_bytes, then the client stops
// reading the socket until read() catches up.
#pragma once
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

#include "conduit/client.hpp"

namespace conduit {

namespace client_coro_detail {

struct ReadInitiation {
  template <class Handler>
  void operator()(Handler&& handler, Client* client) const {
    auto shared = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
    client->async_read([shared](std::error_code ec, ClientMessage message) {
      auto executor = boost::asio::get_associated_executor(*shared);
      boost::asio::dispatch(
          executor, [shared, ec, message = std::move(message)]() mutable { (*shared)(ec, std::move(message)); });
    });
  }
};

template <class Token>
using read_result_t = decltype(boost::asio::async_initiate<Token, void(std::error_code, ClientMessage)>(
    std::declval<ReadInitiation>(), std::declval<Token&>(), std::declval<Client*>()));

}  // namespace client_coro_detail

// Defined only for real completion tokens, so that Asio's probing of other
// argument types fails quietly instead of instantiating the body.
template <class CompletionToken>
struct ClientReadResult<CompletionToken, std::void_t<client_coro_detail::read_result_t<CompletionToken>>> {
  using type = client_coro_detail::read_result_t<CompletionToken>;
};

template <class CompletionToken>
typename ClientReadResult<std::decay_t<CompletionToken>>::type ClientReadOperation::operator()(
    CompletionToken&& token) {
  return boost::asio::async_initiate<std::decay_t<CompletionToken>, void(std::error_code, ClientMessage)>(
      client_coro_detail::ReadInitiation{}, token, client);
}

}  // namespace conduit
