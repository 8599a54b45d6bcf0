#include "pubsub/protocol.hpp"

#include <simdjson.h>

#include "pubsub/json_text.hpp"

namespace conduit::pubsub {

namespace od = simdjson::ondemand;

std::string_view default_message(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::bad_request:
      return "bad request";
    case ErrorCode::permission_denied:
      return "permission denied";
    case ErrorCode::not_subscribed:
      return "not subscribed";
    case ErrorCode::already_subscribed:
      return "already subscribed";
    case ErrorCode::too_many_requests:
      return "too many requests";
    case ErrorCode::internal:
      return "internal error";
    case ErrorCode::unavailable:
      return "unavailable";
    case ErrorCode::outcome_unknown:
      return "outcome unknown";
  }
  return "error";
}

std::string_view to_string(Op op) noexcept {
  switch (op) {
    case Op::subscribe:
      return "subscribe";
    case Op::unsubscribe:
      return "unsubscribe";
    case Op::publish:
      return "publish";
    case Op::refresh:
      return "refresh";
  }
  return "unknown";
}

namespace {

// A field name quoted in an error message: at most 32 bytes, anything but
// printable ASCII replaced by '?', so that the message stays one short line
// whatever the client sent.
std::string quoted_name(std::string_view name) {
  constexpr std::size_t max_len = 32;
  std::string out = "\"";
  for (std::size_t i = 0; i < name.size() && i < max_len; ++i) {
    const char c = name[i];
    out.push_back(c >= 0x20 && c < 0x7F && c != '"' && c != '\\' ? c : '?');
  }
  if (name.size() > max_len) out.append("...");
  out.push_back('"');
  return out;
}

// Why a request was refused; the first problem found wins.
struct Failure {
  bool invalid_json = false;  // the frame is not JSON: the error has no id
  std::string message;
};

Failure not_json() { return {true, "invalid JSON"}; }
Failure bad(std::string message) { return {false, std::move(message)}; }

bool is_json_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? , followed
// only by whitespace (simdjson's token view runs to the next token).
bool is_json_number(std::string_view token) noexcept {
  while (!token.empty() && is_json_space(token.back())) token.remove_suffix(1);
  std::size_t i = 0;
  const std::size_t n = token.size();
  auto digits = [&] {
    const std::size_t start = i;
    while (i < n && is_digit(token[i])) ++i;
    return i > start;
  };
  if (i < n && token[i] == '-') ++i;
  if (i < n && token[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && token[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < n && (token[i] == '+' || token[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

// Reads every part of `value` so that simdjson checks it, and fails when it
// is not well-formed JSON or nests deeper than max_data_depth.
simdjson::error_code validate_value(od::value value, int depth) noexcept {
  if (depth > max_data_depth) return simdjson::DEPTH_ERROR;
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  switch (type) {
    case od::json_type::object: {
      od::object object;
      if (auto e = value.get_object().get(object)) return e;
      for (auto field_result : object) {
        od::field field;
        if (auto e = std::move(field_result).get(field)) return e;
        std::string_view key;
        if (auto e = field.unescaped_key().get(key)) return e;
        if (auto e = validate_value(field.value(), depth + 1)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::array: {
      od::array array;
      if (auto e = value.get_array().get(array)) return e;
      for (auto element_result : array) {
        od::value element;
        if (auto e = std::move(element_result).get(element)) return e;
        if (auto e = validate_value(element, depth + 1)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view s;
      return value.get_string().get(s);
    }
    case od::json_type::number:
      // Checked by grammar, not converted: data is passed on as text, so a
      // number of any size or precision is fine (simdjson would refuse
      // integers beyond 64 bits and doubles beyond 1e308).
      return is_json_number(value.raw_json_token()) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
    case od::json_type::boolean: {
      bool b;
      return value.get_bool().get(b);
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto e = value.is_null().get(is_null)) return e;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::TAPE_ERROR;
}

// The body of one operation: {"channel": ..., ...}. Fields allowed depend on
// the operation; each at most once.
class OpBodyReader {
 public:
  OpBodyReader(od::document& doc, Op op, Request& request) : doc_(doc), op_(op), request_(request) {}

  std::optional<Failure> read(od::value body) {
    const std::string op_name{to_string(op_)};
    od::json_type type;
    if (body.type().get(type)) return not_json();
    if (type != od::json_type::object) return bad(op_name + " must be an object");
    od::object object;
    if (body.get_object().get(object)) return not_json();
    bool seen_channel = false, seen_since = false, seen_data = false, seen_token = false;
    for (auto field_result : object) {
      od::field field;
      if (std::move(field_result).get(field)) return not_json();
      std::string_view key;
      if (field.unescaped_key().get(key)) return not_json();
      const bool channel_allowed = op_ != Op::refresh;
      if (key == "channel" && channel_allowed) {
        if (seen_channel) return bad("duplicate field \"channel\" in " + op_name);
        seen_channel = true;
        if (auto f = read_string(field.value(), "channel", request_.channel)) return f;
      } else if (key == "since" && op_ == Op::subscribe) {
        if (seen_since) return bad("duplicate field \"since\" in subscribe");
        seen_since = true;
        if (auto f = read_since(field.value())) return f;
      } else if (key == "data" && op_ == Op::publish) {
        if (seen_data) return bad("duplicate field \"data\" in publish");
        seen_data = true;
        if (auto f = read_data(field.value())) return f;
      } else if (key == "token" && op_ == Op::refresh) {
        if (seen_token) return bad("duplicate field \"token\" in refresh");
        seen_token = true;
        if (auto f = read_string(field.value(), "token", request_.token)) return f;
      } else {
        return bad("unknown field " + quoted_name(key) + " in " + op_name);
      }
    }
    if (op_ != Op::refresh && !seen_channel) return bad("missing field \"channel\" in " + op_name);
    if (op_ == Op::publish && !seen_data) return bad("missing field \"data\" in publish");
    if (op_ == Op::refresh && !seen_token) return bad("missing field \"token\" in refresh");
    return std::nullopt;
  }

 private:
  static std::optional<Failure> read_string(od::value value, std::string_view name, std::string_view& out) {
    od::json_type type;
    if (value.type().get(type)) return not_json();
    if (type != od::json_type::string) return bad("\"" + std::string(name) + "\" must be a string");
    if (value.get_string().get(out)) return not_json();
    return std::nullopt;
  }

  std::optional<Failure> read_since(od::value value) {
    od::json_type type;
    if (value.type().get(type)) return not_json();
    if (type != od::json_type::object) return bad("\"since\" must be an object");
    od::object object;
    if (value.get_object().get(object)) return not_json();
    Since since;
    bool seen_offset = false, seen_epoch = false;
    for (auto field_result : object) {
      od::field field;
      if (std::move(field_result).get(field)) return not_json();
      std::string_view key;
      if (field.unescaped_key().get(key)) return not_json();
      if (key == "offset") {
        if (seen_offset) return bad("duplicate field \"offset\" in since");
        seen_offset = true;
        od::value v = field.value();
        if (v.type().get(type)) return not_json();
        if (type != od::json_type::number || v.get_uint64().get(since.offset)) {
          return bad("\"since.offset\" must be a non-negative integer");
        }
      } else if (key == "epoch") {
        if (seen_epoch) return bad("duplicate field \"epoch\" in since");
        seen_epoch = true;
        if (auto f = read_string(field.value(), "since.epoch", since.epoch)) return f;
      } else {
        return bad("unknown field " + quoted_name(key) + " in since");
      }
    }
    if (!seen_offset) return bad("missing field \"offset\" in since");
    if (!seen_epoch) return bad("missing field \"epoch\" in since");
    request_.since = since;
    return std::nullopt;
  }

  // Validates the value and records the exact text it spans, minus the
  // whitespace after it. A scalar is one token, and simdjson's token view
  // runs to the next token; an array or object ends where the document
  // iterator stands once the walk has consumed it.
  std::optional<Failure> read_data(od::value value) {
    const std::string_view token = value.raw_json_token();
    const char* begin = token.data();
    od::json_type type;
    if (value.type().get(type)) return not_json();
    const auto e = validate_value(value, 1);
    if (e == simdjson::DEPTH_ERROR) return bad("\"data\" nests deeper than 64 levels");
    if (e) return not_json();
    const char* end = begin + token.size();
    if (type == od::json_type::object || type == od::json_type::array) {
      if (doc_.current_location().get(end) || end < begin) return not_json();
    }
    while (end > begin && is_json_space(end[-1])) --end;
    request_.data = std::string_view(begin, static_cast<std::size_t>(end - begin));
    return std::nullopt;
  }

  od::document& doc_;
  Op op_;
  Request& request_;
};

std::optional<Op> op_named(std::string_view key) noexcept {
  if (key == "subscribe") return Op::subscribe;
  if (key == "unsubscribe") return Op::unsubscribe;
  if (key == "publish") return Op::publish;
  if (key == "refresh") return Op::refresh;
  return std::nullopt;
}

// A refused request: bad_request with the failure's message, carrying the
// request's id unless the frame was not JSON (then no id can be trusted).
ParsedRequest refused(Failure f, std::optional<std::uint64_t> id = std::nullopt) {
  ParsedRequest out;
  out.error.code = ErrorCode::bad_request;
  out.error.message = std::move(f.message);
  if (!f.invalid_json) out.error.id = id;
  return out;
}

// Only allocation failure can end a parse with an exception (simdjson is used
// through its error-code API); it is answered as an internal error.
ParsedRequest internal_error() {
  ParsedRequest out;
  out.error.code = ErrorCode::internal;
  out.error.message = std::string(default_message(ErrorCode::internal));
  return out;
}

// current_location() reports OUT_OF_BOUNDS exactly when the whole input has
// been consumed: nothing but whitespace follows the value.
bool consumed_whole_input(od::document& doc) {
  const char* rest = nullptr;
  return doc.current_location().get(rest) == simdjson::OUT_OF_BOUNDS;
}

}  // namespace

struct RequestParser::Impl {
  od::parser parser;
  std::string buffer;  // the request text followed by simdjson's padding

  // Starts reading `text` as one JSON document into `doc`: the failure when it
  // is not JSON, or is JSON but not an object (`not_an_object` says so).
  std::optional<Failure> open_object(std::string_view text, std::string_view not_an_object, od::document& doc) {
    buffer.assign(text);
    buffer.resize(text.size() + simdjson::SIMDJSON_PADDING, '\0');
    if (parser.iterate(simdjson::padded_string_view(buffer.data(), text.size(), buffer.size())).get(doc)) {
      return not_json();
    }
    od::json_type type;
    if (doc.type().get(type)) return not_json();
    if (type != od::json_type::object) return bad(std::string(not_an_object));
    return std::nullopt;
  }

  ParsedRequest parse(std::string_view text) {
    od::document doc;
    if (auto f = open_object(text, "a request must be a JSON object", doc)) return refused(std::move(*f));
    Request request;
    std::optional<std::uint64_t> id;
    bool id_seen = false, op_seen = false;
    std::optional<Failure> failure;
    od::object root;
    if (doc.get_object().get(root)) return refused(not_json());
    for (auto field_result : root) {
      od::field field;
      if (std::move(field_result).get(field)) return refused(not_json());
      std::string_view key;
      if (field.unescaped_key().get(key)) return refused(not_json());
      if (key == "id") {
        if (id_seen) {
          if (!failure) failure = bad("duplicate field \"id\"");
          continue;
        }
        id_seen = true;
        std::uint64_t value = 0;
        od::value v = field.value();
        od::json_type type;
        if (v.type().get(type)) return refused(not_json());
        if (type == od::json_type::number && !v.get_uint64().get(value) && value > 0) {
          id = value;
        } else if (!failure) {
          failure = bad("\"id\" must be a positive integer");
        }
        continue;
      }
      // After the first problem only "id" is still read (so the error can
      // carry it); the rest is skipped.
      if (failure) continue;
      const auto op = op_named(key);
      if (!op) {
        failure = bad("unknown field " + quoted_name(key));
        continue;
      }
      if (op_seen) {
        failure = bad("more than one operation in a request");
        continue;
      }
      op_seen = true;
      request.op = *op;
      OpBodyReader reader(doc, *op, request);
      if (auto f = reader.read(field.value())) {
        if (f->invalid_json) return refused(std::move(*f));
        failure = std::move(*f);
      }
    }
    if (!consumed_whole_input(doc)) return refused(not_json());
    if (failure) return refused(std::move(*failure), id);
    if (!id_seen) return refused(bad("missing field \"id\""), id);
    if (!op_seen) return refused(bad("missing operation (subscribe, unsubscribe, publish or refresh)"), id);
    request.id = *id;
    ParsedRequest out;
    out.request = request;
    return out;
  }

  ParsedRequest parse_publish_body(std::string_view text) {
    od::document doc;
    if (auto f = open_object(text, "the body must be a JSON object", doc)) return refused(std::move(*f));
    od::value body;
    if (doc.get_value().get(body)) return refused(not_json());
    Request request;
    request.op = Op::publish;
    OpBodyReader reader(doc, Op::publish, request);
    if (auto f = reader.read(body)) return refused(std::move(*f));
    if (!consumed_whole_input(doc)) return refused(not_json());
    ParsedRequest out;
    out.request = request;
    return out;
  }
};

RequestParser::RequestParser() : impl_(std::make_unique<Impl>()) {}
RequestParser::~RequestParser() = default;

ParsedRequest RequestParser::parse_publish_body(std::string_view text) noexcept {
  try {
    return impl_->parse_publish_body(text);
  } catch (...) {
    return internal_error();
  }
}

ParsedRequest RequestParser::parse(std::string_view text) noexcept {
  try {
    return impl_->parse(text);
  } catch (...) {
    return internal_error();
  }
}

// ---- builders ---------------------------------------------------------------

void append_publication(std::string& out, std::string_view channel, std::uint64_t offset, std::string_view epoch,
                        std::string_view data) {
  out.append("{\"channel\":");
  append_json_string(out, channel);
  out.append(",\"offset\":");
  append_json_uint(out, offset);
  out.append(",\"epoch\":");
  append_json_string(out, epoch);
  out.append(",\"data\":");
  out.append(data);
  out.push_back('}');
}

namespace {
constexpr std::string_view push_prefix = "{\"push\":";
constexpr std::string_view push_suffix = "}";
}  // namespace

void append_push(std::string& out, std::string_view channel, std::uint64_t offset, std::string_view epoch,
                 std::string_view data) {
  out.append(push_prefix);
  append_publication(out, channel, offset, epoch, data);
  out.append(push_suffix);
}

std::string_view publication_of_push(std::string_view push) noexcept {
  if (push.size() < push_prefix.size() + push_suffix.size() || !push.starts_with(push_prefix) ||
      !push.ends_with(push_suffix)) {
    return {};
  }
  return push.substr(push_prefix.size(), push.size() - push_prefix.size() - push_suffix.size());
}

std::string_view data_of_push(std::string_view push) noexcept {
  // The publication is {"channel":S,"offset":N,"epoch":S,"data":D}: D follows
  // the first ,"data": (inside a JSON string every '"' is escaped, so that
  // sequence cannot occur in the channel or the epoch) and runs to the
  // publication's closing brace.
  const std::string_view publication = publication_of_push(push);
  constexpr std::string_view key = ",\"data\":";
  const auto at = publication.find(key);
  if (at == std::string_view::npos) return {};
  const std::string_view rest = publication.substr(at + key.size());
  if (rest.empty() || rest.back() != '}') return {};
  return rest.substr(0, rest.size() - 1);
}

void append_recovery_failed_push(std::string& out, std::string_view channel, std::uint64_t offset,
                                 std::string_view epoch) {
  out.append("{\"push\":{\"channel\":");
  append_json_string(out, channel);
  out.append(",\"recovery_failed\":{\"offset\":");
  append_json_uint(out, offset);
  out.append(",\"epoch\":");
  append_json_string(out, epoch);
  out.append("}}}");
}

namespace {
void append_id_result_start(std::string& out, std::uint64_t id) {
  out.append("{\"id\":");
  append_json_uint(out, id);
  out.append(",\"result\":{");
}
void append_position(std::string& out, std::uint64_t offset, std::string_view epoch) {
  out.append("\"offset\":");
  append_json_uint(out, offset);
  out.append(",\"epoch\":");
  append_json_string(out, epoch);
}
}  // namespace

void append_subscribe_result(std::string& out, std::uint64_t id, std::uint64_t offset, std::string_view epoch) {
  append_id_result_start(out, id);
  append_position(out, offset, epoch);
  out.append("}}");
}

void append_subscribe_recovery_result(std::string& out, std::uint64_t id, std::uint64_t offset, std::string_view epoch,
                                      bool recovered, std::span<const std::string_view> publications) {
  append_id_result_start(out, id);
  append_position(out, offset, epoch);
  out.append(recovered ? ",\"recovered\":true,\"publications\":[" : ",\"recovered\":false,\"publications\":[");
  for (std::size_t i = 0; i < publications.size(); ++i) {
    if (i) out.push_back(',');
    out.append(publications[i]);
  }
  out.append("]}}");
}

void append_publish_result(std::string& out, std::uint64_t id, std::uint64_t offset, std::string_view epoch) {
  append_subscribe_result(out, id, offset, epoch);  // same shape: the position
}

void append_empty_result(std::string& out, std::uint64_t id) {
  append_id_result_start(out, id);
  out.append("}}");
}

void append_error(std::string& out, std::optional<std::uint64_t> id, ErrorCode code, std::string_view message) {
  out.push_back('{');
  if (id) {
    out.append("\"id\":");
    append_json_uint(out, *id);
    out.push_back(',');
  }
  out.append("\"error\":{\"code\":");
  append_json_uint(out, static_cast<std::uint64_t>(code));
  out.append(",\"message\":");
  append_json_string(out, message);
  out.append("}}");
}

}  // namespace conduit::pubsub
