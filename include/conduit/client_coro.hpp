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
#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <memory>
#include <system_error>

#include "conduit/client.hpp"

namespace conduit {

template <class CompletionToken>
auto ClientReadOperation::operator()(CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(std::error_code, ClientMessage)>(
      [](auto handler, Client* client) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        client->async_read([shared](std::error_code ec, ClientMessage message) {
          auto executor = boost::asio::get_associated_executor(*shared);
          boost::asio::dispatch(executor, [shared, ec, message = std::move(message)]() mutable {
            (*shared)(ec, std::move(message));
          });
        });
      },
      token, client);
}

}  // namespace conduit
