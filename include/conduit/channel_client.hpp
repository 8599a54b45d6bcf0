// conduit::ChannelClient: channels (the conduit.v1 protocol of conduitd
// --mode pubsub) over a reconnecting conduit::Client.
//
//   conduit::ChannelClient channels("ws://127.0.0.1:8080/?token=...");
//   conduit::ChannelSubscriptionHandlers h;
//   h.on_publication = [](const conduit::ReceivedPublication& p) { use(p.offset, p.data); };
//   h.on_recovery_failed = [](const conduit::ChannelRecoveryFailed& f) { reload_state(f.channel); };
//   channels.subscribe("news", std::move(h));
//   channels.publish("news", R"({"title":"hello"})", [](const conduit::ChannelPublishResult& r) { ... });
//   channels.start();
//
// What it guarantees per subscription: publications reach on_publication in
// offset order, each once. The client remembers the last position (offset and
// epoch) it delivered; after a reconnect it subscribes again with `since` =
// that position, delivers the publications the server recovered (oldest
// first) before any live one, and drops anything at or below the last
// delivered offset of the same epoch (so a publication is never delivered
// twice). When the server cannot fill the gap (the epoch changed because the
// server lost its history, the history no longer reaches back far enough, or
// the server pushes `recovery_failed`), or a live publication skips offsets,
// on_recovery_failed says so and delivery continues from the new position:
// the application must reload what it missed from elsewhere.
//
// Requests made while not connected wait and go out after the next open
// (re-subscriptions first, then publishes and unsubscribes in call order).
// A publish whose connection ends before its reply is reported as
// channel_error::connection_lost and is NOT sent again: it may or may not have
// been applied, and re-sending could publish it twice.
//
// Threads: as conduit::Client: callbacks run on the client's I/O thread, one
// at a time, and must not block; every member function is safe from any
// thread, including from inside a callback. A callback already queued may
// still run once after unsubscribe() returns on another thread.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "conduit/client.hpp"
#include "conduit/stream_position.hpp"

namespace conduit {

// A publication as delivered. The views are valid during the callback only.
struct ReceivedPublication {
  std::string_view channel;
  std::uint64_t offset = 0;
  std::string_view epoch;
  std::string_view data;   // the JSON value exactly as the publisher sent it
  bool recovered = false;  // part of a recovery after a reconnect (not live)
};

// Error codes of ChannelReplyError that never come from a server (the
// server's are HTTP-like: 400, 403, 404, 409, 429, 500, 503; see
// docs/protocol.md).
namespace channel_error {
// The connection ended before the reply: the request may or may not have
// taken effect on the server.
inline constexpr int connection_lost = 1;
// The client was closed (for good) before the request could be sent or answered.
inline constexpr int client_closed = 2;
// The server sent a frame that is not conduit.v1 (not JSON, or fields of the
// wrong type); `message` says what was wrong.
inline constexpr int bad_frame = 3;
}  // namespace channel_error

struct ChannelReplyError {
  int code = 0;
  std::string message;
};

// A subscription is in the live stream (the first subscribe, or again after
// a reconnect).
struct ChannelSubscribed {
  std::string_view channel;
  StreamPosition position;          // the channel's position the server reported
  bool resubscribe = false;         // true after a reconnect (or with SubscribeOptions::since)
  bool recovered = false;           // resubscribe: every missed publication follows
  std::size_t recovered_count = 0;  // publications about to be delivered with recovered = true
};

enum class RecoveryFailure : std::uint8_t {
  epoch_changed,    // the server lost the channel's history (e.g. it restarted)
  not_in_history,   // same epoch, but the history no longer holds what was missed
  server_reported,  // the server pushed recovery_failed for the channel
  gap,              // a publication skipped offsets (what was skipped is lost)
};
const char* to_string(RecoveryFailure reason) noexcept;

struct ChannelRecoveryFailed {
  std::string_view channel;
  RecoveryFailure reason = RecoveryFailure::epoch_changed;
  StreamPosition last_delivered;  // the position of the last publication delivered
  StreamPosition position;        // where delivery continues from (publications after it follow)
};

struct ChannelSubscriptionHandlers {
  std::function<void(const ReceivedPublication&)> on_publication;
  std::function<void(const ChannelSubscribed&)> on_subscribed;
  std::function<void(const ChannelRecoveryFailed&)> on_recovery_failed;
  // The server refused the subscribe (e.g. 403 permission denied, 400 invalid
  // channel name): the subscription is dropped and not retried.
  std::function<void(const ChannelReplyError&)> on_error;
};

struct ChannelSubscribeOptions {
  // Resume from this position (asks the server for recovery on the first
  // subscribe too); nullopt: start with the live stream.
  std::optional<StreamPosition> since;
};

struct ChannelPublishResult {
  // Set when the publish failed (server error reply or a channel_error code).
  std::optional<ChannelReplyError> error;
  StreamPosition position;  // success: the offset given to the publication, and the epoch
};

enum class ChannelClientError : int {
  invalid_channel = 1,  // empty, or bytes outside printable ASCII (checked here; the server checks the rest)
  invalid_json,         // publish data that is not one well-formed JSON value
  already_subscribed,   // subscribe() for a channel this client already holds
  not_subscribed,       // unsubscribe() for a channel this client does not hold
};
const std::error_category& channel_client_category() noexcept;
inline std::error_code make_error_code(ChannelClientError e) noexcept {
  return {static_cast<int>(e), channel_client_category()};
}

struct ChannelClientHandlers {
  // The connection's handlers, as for conduit::Client (on_open, on_close,
  // on_error, on_state, ...). on_message is not called: messages are the
  // protocol's, handled here.
  ClientHandlers connection;
  // An error that answers no request (`{"error":{...}}` without an id) or a
  // frame that is not conduit.v1 (code channel_error::bad_frame).
  std::function<void(const ChannelReplyError&)> on_error;
};

class ChannelClient {
 public:
  // url and options as for conduit::Client; "conduit.v1" is added to the
  // offered subprotocols. Publishes made while offline wait up to
  // options.offline_queue_bytes (beyond it publish() returns
  // offline_queue_full). Throws std::system_error(invalid_url).
  ChannelClient(std::string url, ClientOptions options = {}, ChannelClientHandlers handlers = {});
  ChannelClient(boost::asio::io_context& ctx, std::string url, ClientOptions options = {},
                ChannelClientHandlers handlers = {});
  ~ChannelClient();
  ChannelClient(const ChannelClient&) = delete;
  ChannelClient& operator=(const ChannelClient&) = delete;

  void start();

  // Subscribes (now if connected, else at the next open) and keeps the
  // subscription across reconnects until unsubscribe().
  std::error_code subscribe(std::string_view channel, ChannelSubscriptionHandlers handlers,
                            ChannelSubscribeOptions options = {});
  // Stops delivery at once and tells the server if connected.
  std::error_code unsubscribe(std::string_view channel);
  // Publishes json_data (one JSON value, sent as is) to channel; done runs
  // with the server's answer or a channel_error.
  std::error_code publish(std::string_view channel, std::string_view json_data,
                          std::function<void(const ChannelPublishResult&)> done = {});

  // The last position delivered on channel (nullopt when none yet or not subscribed).
  std::optional<StreamPosition> position(std::string_view channel) const;

  // As conduit::Client::close() / wait(). Pending publishes are answered
  // with client_closed (or connection_lost if already sent).
  void close(std::uint16_t code = 1000, std::string_view reason = {});
  bool wait(ClientDuration timeout = ClientDuration::max());
  // The underlying connection (state(), ping(), ...). Do not send() on it.
  Client& connection() noexcept;

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<Client> client_;
};

// ---- the HTTP publish API (POST /api/publish) ---------------------------------

struct HttpPublishOptions {
  std::string api_key;            // sent as `Authorization: apikey KEY`
  ClientDuration timeout{10000};  // the whole exchange: connect, TLS, request, response
  std::string ca_file;            // https: PEM bundle to trust instead of the system store
  bool insecure = false;          // https: skip certificate verification (tests only)
};

struct HttpPublishResult {
  // Transport failure (no HTTP answer): invalid_url, connection_refused,
  // connect_timeout (the timeout passed), tls_failure, bad_handshake_response
  // (the answer is not HTTP), ... (ClientError values).
  std::error_code transport_error;
  std::string detail;        // transport_error's explanation
  unsigned http_status = 0;  // the answer's status (0 without one)
  std::string body;          // the answer's body (first 64 KiB)
  // Status 200: the offset given to the publication, and the epoch.
  std::optional<StreamPosition> position;
  // Another status: the error object of the body ({"error":{"code":N,"message":M}}),
  // or {status, first line of the body} when the body is not one.
  std::optional<ChannelReplyError> error;
};

// Publishes json_data (one JSON value, sent as is) to channel through
// conduitd's HTTP API: POST /api/publish with {"channel":C,"data":DATA}.
// url: http://host[:port] or https://... (ws:// and wss:// are read as http://
// and https://; the path is ignored). Blocks until the answer or the timeout.
// An invalid channel or data gives transport_error = ChannelClientError
// invalid_channel / invalid_json without connecting.
HttpPublishResult publish_http(std::string_view url, std::string_view channel, std::string_view json_data,
                               const HttpPublishOptions& options = {});

}  // namespace conduit

template <>
struct std::is_error_code_enum<conduit::ChannelClientError> : std::true_type {};
