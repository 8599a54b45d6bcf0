#include "connection_common.hpp"

#include <algorithm>
#include <cstdio>
#include <initializer_list>

namespace conduit::cli {

namespace {

// A control frame payload as one printable token: "text" with \xNN escapes.
std::string quoted(std::string_view payload) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char ch : payload) {
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(ch));
    } else if (ch >= 0x20 && ch < 0x7f) {
      out.push_back(static_cast<char>(ch));
    } else {
      out += "\\x";
      out.push_back(digits[ch >> 4]);
      out.push_back(digits[ch & 0xF]);
    }
  }
  out.push_back('"');
  return out;
}

// Prints HTTP text (CRLF lines, ending with an empty line) with a prefix per line.
void print_http_head(const char* prefix, std::string_view head) {
  while (!head.empty()) {
    const std::size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    if (line.empty()) break;
    log_line("%s%.*s\n", prefix, static_cast<int>(line.size()), line.data());
    if (eol == std::string_view::npos) break;
    head.remove_prefix(eol + 2);
  }
}

}  // namespace

void add_connection_flags(CLI::App* cmd, ConnectionFlags& f) {
  cmd->add_option("URL", f.url, "ws://host[:port][/path][?query] or wss://...; IPv6 as ws://[::1]:port/")->required();
  add_repeatable(cmd, "--subprotocol", f.subprotocols, "offer this subprotocol (repeatable, in preference order)");
  add_repeatable(cmd, "--header", f.headers, "extra request header 'Name: value' (repeatable)");
  cmd->add_option("--origin", f.origin, "Origin header");
  cmd->add_option("--ca", f.ca_file, "PEM file of CA certificates to trust for wss:// (instead of the system store)");
  cmd->add_flag("--insecure", f.insecure, "wss://: do not verify the server certificate (testing only)");
  cmd->add_option("--ping-interval", f.ping_interval, "ping every this long; 0s disables (default 25s)");
  cmd->add_option("--pong-timeout", f.pong_timeout, "no answer this long after a ping = dead connection (default 10s)");
  cmd->add_option("--reconnect-initial", f.reconnect_initial, "first backoff window (default 500ms)");
  cmd->add_option("--reconnect-max", f.reconnect_max, "largest backoff window (default 30s)");
  cmd->add_option("--max-message-bytes", f.max_message_bytes,
                  "largest message accepted; larger → close 1009 (default 16777216)");
  cmd->add_flag("--verbose", f.verbose,
                "print the upgrade request ('> ' lines) and response headers ('< ' lines) on stderr");
  cmd->add_flag("--show-ping-pong", f.show_ping_pong, "print every ping and pong sent or received on stderr");
  cmd->add_flag("--compression", f.compression,
                "offer permessage-deflate; used when the server accepts (see --verbose's response headers)");
}

// Fills options from flags; prints the problem and returns false on a bad value.
bool make_options(const ConnectionFlags& f, ClientOptions& o) {
  struct DurationFlag {
    const char* name;
    const std::string& text;
    ClientDuration& out;
  };
  for (const DurationFlag& d : {DurationFlag{"--ping-interval", f.ping_interval, o.ping_interval},
                                DurationFlag{"--pong-timeout", f.pong_timeout, o.pong_timeout},
                                DurationFlag{"--reconnect-initial", f.reconnect_initial, o.reconnect.initial_delay},
                                DurationFlag{"--reconnect-max", f.reconnect_max, o.reconnect.max_delay}}) {
    auto parsed = parse_duration(d.text);
    if (!parsed) {
      std::fprintf(stderr, "conduit: %s: bad duration '%s' (%s)\n", d.name, d.text.c_str(), duration_help);
      return false;
    }
    d.out = *parsed;
  }
  for (const std::string& h : f.headers) {
    const std::size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::fprintf(stderr, "conduit: --header '%s': expected 'Name: value'\n", h.c_str());
      return false;
    }
    std::string value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    o.headers.emplace_back(h.substr(0, colon), value);
  }
  o.subprotocols = f.subprotocols;
  o.origin = f.origin;
  o.ca_file = f.ca_file;
  o.insecure = f.insecure;
  o.max_message_bytes = f.max_message_bytes;
  o.compression = f.compression;
  // An echo of the largest message must always fit the send queue.
  o.send_queue_bytes = std::max(o.send_queue_bytes, 2 * f.max_message_bytes);
  return true;
}

std::unique_ptr<Client> make_client(const ConnectionFlags& flags, const ClientOptions& options,
                                    ClientHandlers handlers) {
  try {
    return std::make_unique<Client>(flags.url, options, std::move(handlers));
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "conduit: %s: %s\n", flags.url.c_str(), e.code().message().c_str());
    return nullptr;
  }
}

void print_message(std::string_view data, MessageType type, bool raw) {
  if (type == MessageType::Text) {
    print_line(data);
  } else if (raw) {
    print_bytes(data.data(), data.size());
  } else {
    static constexpr char digits[] = "0123456789abcdef";
    std::string line = "[binary " + std::to_string(data.size()) + " bytes] ";
    line.reserve(line.size() + data.size() * 2);
    for (unsigned char ch : data) {
      line.push_back(digits[ch >> 4]);
      line.push_back(digits[ch & 0xF]);
    }
    print_line(line);
  }
}

int Outcome::exit_status() {
  std::lock_guard lock(mu);
  if (refused) return exit_code::connect_failed;
  if (last_error == ClientError::protocol_error || last_error == ClientError::invalid_payload ||
      last_error == ClientError::message_too_big) {
    return exit_code::protocol_violation;
  }
  if (!ever_opened) return exit_code::connect_failed;
  if (app_closed && !last_error) return exit_code::ok;
  if (!last_error && (close_code == close_code::normal || close_code == close_code::no_status)) {
    return exit_code::ok;
  }
  return exit_code::connection_lost;
}

ClientHandlers make_reporting_handlers(Outcome& outcome, const ConnectionFlags& flags, bool quiet_open) {
  ClientHandlers h;
  if (flags.verbose) {
    h.on_handshake = [](std::string_view request, std::string_view response) {
      print_http_head("> ", request);
      print_http_head("< ", response);
    };
  }
  if (flags.show_ping_pong) {
    h.on_ping_pong = [](PingPong event, std::string_view payload) {
      log_line("conduit: %s %s\n", to_string(event), quoted(payload).c_str());
    };
  }
  h.on_open = [&outcome, quiet_open](const std::string& subprotocol) {
    {
      std::lock_guard lock(outcome.mu);
      outcome.ever_opened = true;
      outcome.last_error = {};
      outcome.close_code = 0;
    }
    if (!quiet_open) {
      log_line("conduit: open%s%s\n", subprotocol.empty() ? "" : ", subprotocol ", subprotocol.c_str());
    }
  };
  h.on_close = [&outcome](std::uint16_t code, std::string_view reason, bool by_server) {
    {
      std::lock_guard lock(outcome.mu);
      outcome.close_code = code;
    }
    log_closed(code, reason, by_server);
  };
  h.on_error = [&outcome](const ClientFailure& f) {
    {
      std::lock_guard lock(outcome.mu);
      outcome.last_error = f.code;
    }
    log_failure(f);
  };
  h.on_state = [](const ClientStateEvent& e) {
    log_connecting(e);
    if (e.state == ClientState::Closed) {
      log_line("conduit: done%s%s\n", e.error ? ": " : "", e.error ? e.error.message().c_str() : "");
    }
  };
  return h;
}

}  // namespace conduit::cli
