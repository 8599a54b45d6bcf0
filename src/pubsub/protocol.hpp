// The conduit.v1 protocol codec: client requests in, replies and pushes out.
// One JSON object per WebSocket text frame (docs/protocol.md, "conduit.v1").
//
// Requests are read once with simdjson's on-demand parser, without building a
// DOM. A publication's `data` is checked to be well-formed JSON once, here,
// and then carried as the exact bytes it arrived as: builders splice those
// bytes into the push unchanged, so a publication is never re-serialized and
// its push is built once, not once per subscriber.
//
// Nothing here throws: malformed input of any kind (including bytes that are
// not UTF-8 or JSON nested arbitrarily deep) yields a RequestError whose code
// and one-line message go back to the client.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace conduit::pubsub {

// Error codes of conduit.v1 replies; they mirror the HTTP status of the same
// meaning.
enum class ErrorCode : int {
  bad_request = 400,         // malformed request, invalid channel name
  permission_denied = 403,   // the token does not allow this channel
  not_subscribed = 404,      // unsubscribe from a channel not subscribed
  already_subscribed = 409,  // subscribe twice to the same channel
  too_many_requests = 429,   // subscription limit or publish rate limit
  internal = 500,
  unavailable = 503,
  outcome_unknown = 504,  // Redis engine: the publish's answer was lost with the connection
};

// The default message of each code ("bad request", "permission denied", ...).
std::string_view default_message(ErrorCode code) noexcept;

enum class Op { subscribe, unsubscribe, publish, refresh };
std::string_view to_string(Op op) noexcept;

struct Since {
  std::uint64_t offset = 0;
  std::string_view epoch;
};

// A well-formed request. The views point into the RequestParser that produced
// it and stay valid until that parser's next parse().
struct Request {
  std::uint64_t id = 0;  // >= 1
  Op op = Op::subscribe;
  std::string_view channel;    // subscribe, unsubscribe, publish (not validated as a name here)
  std::optional<Since> since;  // subscribe
  std::string_view data;       // publish: the raw JSON text of the value, trimmed of surrounding whitespace
  std::string_view token;      // refresh
};

struct RequestError {
  std::optional<std::uint64_t> id;  // set when the request carried a valid id
  ErrorCode code = ErrorCode::bad_request;
  std::string message;  // one line, printable ASCII
};

struct ParsedRequest {
  std::optional<Request> request;  // set on success
  RequestError error;              // meaningful when !request
};

// Data may nest arrays/objects at most this deep.
inline constexpr int max_data_depth = 64;

// Parses requests. Holds simdjson's buffers, reused from one request to the
// next: one parser per thread, never shared between threads.
class RequestParser {
 public:
  RequestParser();
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  ParsedRequest parse(std::string_view text) noexcept;
  // The body of the HTTP API's publish, {"channel": C, "data": VALUE}: the
  // body of a conduit.v1 publish on its own, read by the same rules (the
  // same fields, each once, data any well-formed JSON). On success the
  // request has op publish and id 0; an error has no id.
  ParsedRequest parse_publish_body(std::string_view text) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- replies and pushes --------------------------------------------------
// Each builder appends one complete JSON object to `out` (no trailing
// newline). `data` and `publications` are spliced in as they are: they must
// already be valid JSON (what RequestParser accepted, or what
// append_publication built).

// The publication object shared by pushes and subscribe results:
//   {"channel":C,"offset":N,"epoch":E,"data":D}
void append_publication(std::string& out, std::string_view channel, std::uint64_t offset, std::string_view epoch,
                        std::string_view data);

// {"push":PUBLICATION}, built from its parts.
void append_push(std::string& out, std::string_view channel, std::uint64_t offset, std::string_view epoch,
                 std::string_view data);

// The publication object inside a push built by append_push: a push is the
// publication wrapped in {"push": ... }, so history can keep the push and
// hand the same bytes to a recovering subscriber.
std::string_view publication_of_push(std::string_view push) noexcept;

// The data inside a push built by append_push (what the publisher sent, as
// its bytes); "" when push is not one.
std::string_view data_of_push(std::string_view push) noexcept;

// {"push":{"channel":C,"recovery_failed":{"offset":N,"epoch":E}}}: the
// channel's stream has a gap the server cannot fill; the client should
// reload its state and continue from the position given.
void append_recovery_failed_push(std::string& out, std::string_view channel, std::uint64_t offset,
                                 std::string_view epoch);

// Subscribe without `since`: {"id":I,"result":{"offset":N,"epoch":E}}
void append_subscribe_result(std::string& out, std::uint64_t id, std::uint64_t offset, std::string_view epoch);

// Subscribe with `since`:
//   {"id":I,"result":{"offset":N,"epoch":E,"recovered":B,"publications":[P,...]}}
// `publications` are publication objects (append_publication), oldest first.
void append_subscribe_recovery_result(std::string& out, std::uint64_t id, std::uint64_t offset, std::string_view epoch,
                                      bool recovered, std::span<const std::string_view> publications);

// Publish: {"id":I,"result":{"offset":N,"epoch":E}}
void append_publish_result(std::string& out, std::uint64_t id, std::uint64_t offset, std::string_view epoch);

// Unsubscribe and refresh: {"id":I,"result":{}}
void append_empty_result(std::string& out, std::uint64_t id);

// {"id":I,"error":{"code":C,"message":M}}, or without "id" when the error
// answers no request (id empty).
void append_error(std::string& out, std::optional<std::uint64_t> id, ErrorCode code, std::string_view message);
inline void append_error(std::string& out, const RequestError& error) {
  append_error(out, error.id, error.code, error.message);
}

}  // namespace conduit::pubsub
