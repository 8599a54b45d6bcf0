// `conduit`: connect to a WebSocket server, send one message, or load-test one.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.hpp"
#include "conduit/client.hpp"
#include "conduit/version.hpp"
#include "conduit_build_commit.hpp"

namespace conduit::cli {

namespace {

// Command-line settings shared by `connect` and `send`.
struct ConnectionFlags {
  std::string url;
  std::vector<std::string> subprotocols;
  std::vector<std::string> headers;
  std::string origin;
  std::string ca_file;
  bool insecure = false;
  std::string ping_interval = "25s";
  std::string pong_timeout = "10s";
  std::string reconnect_initial = "500ms";
  std::string reconnect_max = "30s";
  std::size_t max_message_bytes = 16u << 20;
  bool verbose = false;
  bool show_ping_pong = false;
  bool compression = false;
};

// A repeatable option takes exactly one value per occurrence. CLI11 lets a
// vector option keep taking the words that follow it (the URL, the message)
// unless extra arguments are disallowed explicitly.
CLI::Option* add_repeatable(CLI::App* cmd, const std::string& name, std::vector<std::string>& into,
                            const std::string& help) {
  return cmd->add_option(name, into, help)
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

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

std::mutex stdout_mutex;

void print_message(std::string_view data, MessageType type, bool raw) {
  std::lock_guard lock(stdout_mutex);
  if (type == MessageType::Text || raw) {
    std::fwrite(data.data(), 1, data.size(), stdout);
    if (type == MessageType::Text) std::fputc('\n', stdout);
  } else {
    static constexpr char digits[] = "0123456789abcdef";
    std::string line = "[binary " + std::to_string(data.size()) + " bytes] ";
    line.reserve(line.size() + data.size() * 2 + 1);
    for (unsigned char ch : data) {
      line.push_back(digits[ch >> 4]);
      line.push_back(digits[ch & 0xF]);
    }
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  std::fflush(stdout);
}

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
    std::fprintf(stderr, "%s%.*s\n", prefix, static_cast<int>(line.size()), line.data());
    if (eol == std::string_view::npos) break;
    head.remove_prefix(eol + 2);
  }
}

// What happened to the last connection, to choose the exit status.
struct Outcome {
  std::mutex mu;
  bool ever_opened = false;
  bool app_closed = false;
  bool refused = false;          // a 4xx refusal ended the run (no retry)
  std::error_code last_error;    // of the last connection or attempt; cleared on open
  std::uint16_t close_code = 0;  // of the last connection

  int exit_status() {
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
};

// A 4xx answer (other than 429 Too Many Requests) says the request itself is
// wrong (bad path, missing credentials, forbidden origin): repeating it
// unchanged cannot succeed, so the run stops instead of retrying forever.
bool is_final_refusal(const ClientFailure& f) {
  return f.code == ClientError::handshake_rejected && f.http_status >= 400 && f.http_status < 500 &&
         f.http_status != 429;
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
      std::fprintf(stderr, "conduit: %s %s\n", to_string(event), quoted(payload).c_str());
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
      std::fprintf(stderr, "conduit: open%s%s\n", subprotocol.empty() ? "" : ", subprotocol ", subprotocol.c_str());
    }
  };
  h.on_close = [&outcome](std::uint16_t code, std::string_view reason, bool by_server) {
    {
      std::lock_guard lock(outcome.mu);
      outcome.close_code = code;
    }
    std::fprintf(stderr, "conduit: closed %u%s%.*s%s\n", code, reason.empty() ? "" : " ",
                 static_cast<int>(reason.size()), reason.data(), by_server ? " (by server)" : "");
  };
  h.on_error = [&outcome](const ClientFailure& f) {
    {
      std::lock_guard lock(outcome.mu);
      outcome.last_error = f.code;
    }
    std::fprintf(stderr, "conduit: error: %s\n", f.message().c_str());
    if (!f.http_body.empty()) std::fprintf(stderr, "conduit: response body: %s\n", f.http_body.c_str());
  };
  h.on_state = [](const ClientStateEvent& e) {
    if (e.state == ClientState::Reconnecting) {
      std::fprintf(stderr, "conduit: reconnecting in %lld ms (attempt %u)\n", static_cast<long long>(e.delay.count()),
                   e.attempt);
    } else if (e.state == ClientState::Connecting) {
      std::fprintf(stderr, "conduit: connecting\n");
    } else if (e.state == ClientState::Closed) {
      std::fprintf(stderr, "conduit: done%s%s\n", e.error ? ": " : "", e.error ? e.error.message().c_str() : "");
    }
  };
  return h;
}

// The stdin reader blocks in getline; exiting with _exit avoids joining it and
// skips static destructors that could race with it.
[[noreturn]] void exit_now(int status) {
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(status);
}

struct ConnectSettings {
  bool echo = false;
  bool no_reconnect = false;
  bool raw = false;
  unsigned max_attempts = 0;
  bool retry_all = false;
};

// A stdin line in `connect`: a command (/ping, /close) or a message to send.
// Returns false when reading stdin should stop (after /close).
bool handle_input_line(Client& client, Outcome& outcome, std::string line) {
  auto command_arg = [&line](std::string_view name) -> std::optional<std::string> {
    if (line.compare(0, name.size(), name) != 0) return std::nullopt;
    if (line.size() == name.size()) return std::string{};
    if (line[name.size()] != ' ') return std::nullopt;
    return line.substr(name.size() + 1);
  };
  if (auto payload = command_arg("/ping")) {
    if (auto ec = client.ping(*payload)) {
      std::fprintf(
          stderr, "conduit: /ping: %s\n",
          ec == std::errc::message_size ? "payload longer than 125 bytes" : "not connected (pings are not queued)");
    }
    return true;
  }
  if (auto args = command_arg("/close")) {
    std::uint16_t code = close_code::normal;
    std::string reason;
    if (!args->empty()) {
      const std::size_t space = args->find(' ');
      const std::string code_text = args->substr(0, space);
      if (space != std::string::npos) reason = args->substr(space + 1);
      unsigned value = 0;
      auto [ptr, ec] = std::from_chars(code_text.data(), code_text.data() + code_text.size(), value);
      // Codes an endpoint may send (RFC 6455 §7.4): the defined ones except
      // 1004-1006 and 1015, and the 3000-4999 application range.
      const bool sendable =
          (value >= 1000 && value <= 1003) || (value >= 1007 && value <= 1014) || (value >= 3000 && value <= 4999);
      if (ec != std::errc{} || ptr != code_text.data() + code_text.size() || !sendable) {
        std::fprintf(stderr, "conduit: /close: '%s' is not a close code to send (1000-1003, 1007-1014, 3000-4999)\n",
                     code_text.c_str());
        return true;
      }
      if (reason.size() > 123) {
        std::fprintf(stderr, "conduit: /close: reason longer than 123 bytes\n");
        return true;
      }
      code = static_cast<std::uint16_t>(value);
    }
    {
      std::lock_guard lock(outcome.mu);
      outcome.app_closed = true;
    }
    client.close(code, reason);
    return false;
  }
  // "//text" sends "/text": the escape for a message that starts like a command.
  if (line.compare(0, 2, "//") == 0) line.erase(0, 1);
  if (auto ec = client.send(line)) {
    std::fprintf(stderr, "conduit: not sent: %s\n", ec.message().c_str());
    if (ec == ClientError::not_open) return false;
  }
  return true;
}

int run_connect(const ConnectionFlags& flags, const ConnectSettings& settings) {
  const bool echo = settings.echo;
  const bool raw = settings.raw;
  ClientOptions options;
  if (!make_options(flags, options)) return exit_code::usage;
  options.reconnect.enabled = !settings.no_reconnect;
  options.reconnect.max_attempts = settings.max_attempts;
  Outcome outcome;
  ClientHandlers handlers = make_reporting_handlers(outcome, flags, false);
  std::atomic<Client*> client_ptr{nullptr};
  if (!settings.retry_all) {
    handlers.on_error = [&outcome, &client_ptr, report = std::move(handlers.on_error)](const ClientFailure& f) {
      report(f);
      if (!is_final_refusal(f)) return;
      std::fprintf(stderr, "conduit: HTTP %u is final: not retrying (--retry-all retries it)\n", f.http_status);
      {
        std::lock_guard lock(outcome.mu);
        outcome.refused = true;
      }
      client_ptr.load()->close(close_code::normal);
    };
  }
  if (echo) {
    handlers.on_message = [&client_ptr](std::string_view data, MessageType type) {
      if (auto ec = client_ptr.load()->send(data, type)) {
        std::fprintf(stderr, "conduit: echo dropped: %s\n", ec.message().c_str());
      }
    };
  } else {
    handlers.on_message = [raw](std::string_view data, MessageType type) { print_message(data, type, raw); };
  }

  std::unique_ptr<Client> client;
  try {
    client = std::make_unique<Client>(flags.url, options, std::move(handlers));
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "conduit: %s: %s\n", flags.url.c_str(), e.code().message().c_str());
    return exit_code::usage;
  }
  client_ptr.store(client.get());
  client->start();

  if (!echo) {
    std::thread([&client, &outcome] {
      std::string line;
      while (std::getline(std::cin, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!handle_input_line(*client, outcome, std::move(line))) return;
      }
      {
        std::lock_guard lock(outcome.mu);
        outcome.app_closed = true;
      }
      client->close(close_code::normal);  // stdin EOF: normal close
    }).detach();
  }
  client->wait();
  exit_now(outcome.exit_status());
}

// The message `send` sends: MESSAGE as given, "-" for all of stdin, "@FILE"
// for a file's contents, each sent whole as one message.
std::optional<std::string> load_message(const std::string& argument) {
  if (argument == "-") {
    std::string data{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    if (std::cin.bad()) {
      std::fprintf(stderr, "conduit: -: cannot read stdin: %s\n", std::strerror(errno));
      return std::nullopt;
    }
    return data;
  }
  if (!argument.empty() && argument.front() == '@') {
    const std::string path = argument.substr(1);
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "conduit: %s: cannot open: %s\n", argument.c_str(), std::strerror(errno));
      return std::nullopt;
    }
    std::ostringstream data;
    data << file.rdbuf();
    if (file.bad()) {
      std::fprintf(stderr, "conduit: %s: cannot read: %s\n", argument.c_str(), std::strerror(errno));
      return std::nullopt;
    }
    return std::move(data).str();
  }
  return argument;
}

int run_send(const ConnectionFlags& flags, const std::string& message_argument, unsigned wait_count,
             const std::string& timeout, bool binary) {
  ClientOptions options;
  if (!make_options(flags, options)) return exit_code::usage;
  auto deadline = parse_duration(timeout);
  if (!deadline) {
    std::fprintf(stderr, "conduit: --timeout: bad duration '%s' (%s)\n", timeout.c_str(), duration_help);
    return exit_code::usage;
  }
  const std::optional<std::string> message = load_message(message_argument);
  if (!message) return exit_code::usage;
  // The whole message must fit the queue it waits in before the upgrade.
  options.offline_queue_bytes = std::max(options.offline_queue_bytes, message->size());
  options.send_queue_bytes = std::max(options.send_queue_bytes, message->size());
  options.reconnect.enabled = false;
  Outcome outcome;
  ClientHandlers handlers = make_reporting_handlers(outcome, flags, true);
  handlers.on_state = {};
  std::atomic<Client*> client_ptr{nullptr};
  std::atomic<unsigned> received{0};
  handlers.on_message = [&](std::string_view data, MessageType type) {
    if (received.load() >= wait_count) return;
    print_message(data, type, false);
    if (received.fetch_add(1) + 1 == wait_count) {
      std::lock_guard lock(outcome.mu);
      outcome.app_closed = true;
      client_ptr.load()->close(close_code::normal);
    }
  };
  std::unique_ptr<Client> client;
  try {
    client = std::make_unique<Client>(flags.url, options, std::move(handlers));
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "conduit: %s: %s\n", flags.url.c_str(), e.code().message().c_str());
    return exit_code::usage;
  }
  client_ptr.store(client.get());
  // Queued before start: it goes out first thing after the upgrade.
  if (auto ec = client->send(*message, binary ? MessageType::Binary : MessageType::Text)) {
    std::fprintf(stderr, "conduit: not sent: %s\n", ec.message().c_str());
    return exit_code::usage;
  }
  if (wait_count == 0) {
    std::lock_guard lock(outcome.mu);
    outcome.app_closed = true;
  }
  client->start();
  if (wait_count == 0) client->close(close_code::normal);
  if (!client->wait(*deadline)) {
    std::fprintf(stderr, "conduit: timeout: %u of %u messages after %s\n", received.load(), wait_count,
                 timeout.c_str());
    // Leave with a close handshake (1001: this endpoint is going away), bounded
    // by close_timeout, so the server sees a clean close rather than a drop.
    // An attempt still connecting has nothing to close.
    if (client->state() == ClientState::Open) {
      client->close(close_code::going_away, "timeout");
      client->wait(options.close_timeout);
    }
    exit_now(exit_code::timeout);
  }
  if (received.load() < wait_count && outcome.exit_status() == exit_code::ok) exit_now(exit_code::connection_lost);
  exit_now(outcome.exit_status());
}

}  // namespace

}  // namespace conduit::cli

int main(int argc, char** argv) {
  using namespace conduit::cli;
  CLI::App app{"conduit: WebSocket client, one-shot sender, channels (sub, pub, token) and load generator"};
  app.footer(exit_codes_help);
  app.require_subcommand(1);
  const std::string commit = CONDUIT_GIT_COMMIT;
  app.set_version_flag("--version",
                       std::string("conduit ") + CONDUIT_VERSION + (commit.empty() ? "" : " (git " + commit + ")"),
                       "print the version (and the git commit it was built from) and exit");
  // A flag given twice takes its last value, as in most CLIs (wrappers append overrides).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  ConnectionFlags connect_flags;
  ConnectSettings connect_settings;
  CLI::App* connect = app.add_subcommand(
      "connect",
      "Connect and stay connected: print each message received (text as is, binary as '[binary N bytes] <hex>'), "
      "send each stdin line as a text message, close normally at stdin EOF. State changes and backoff go to stderr. "
      "Stdin commands: '/ping [data]' sends a ping, '/close [code [reason]]' closes and exits, "
      "'//text' sends '/text'.");
  add_connection_flags(connect, connect_flags);
  connect->add_flag("--echo", connect_settings.echo,
                    "send every message received back with its opcode; stdin is not read");
  connect->add_flag("--no-reconnect", connect_settings.no_reconnect,
                    "exit when the connection ends: 0 after a normal close, non-zero otherwise");
  connect->add_flag("--raw", connect_settings.raw, "print binary messages as raw bytes instead of hex");
  connect->add_option("--max-attempts", connect_settings.max_attempts,
                      "give up after N reconnect attempts in a row fail (default 0: never)");
  connect->add_flag("--retry-all", connect_settings.retry_all,
                    "also retry upgrades refused with a 4xx status (by default they exit 3 at once; 429 is retried)");
  connect->footer(exit_codes_help);

  ConnectionFlags send_flags;
  std::string message;
  unsigned wait_count = 0;
  std::string timeout = "10s";
  bool binary = false;
  CLI::App* send = app.add_subcommand("send", "Send one message, print the next N messages received, close.");
  add_connection_flags(send, send_flags);
  send->add_option("MESSAGE", message, "the message to send; '-' = all of stdin, '@FILE' = the file's contents")
      ->required();
  send->add_option("--wait", wait_count, "print this many messages received before closing (default 0)");
  send->add_option("--timeout", timeout, "give up after this long: close with 1001 'timeout', exit 5 (default 10s)");
  send->add_flag("--binary", binary, "send the message as a binary message (text must be UTF-8)");
  send->footer(exit_codes_help);

  auto run_bench = add_bench_commands(app);
  auto run_channels = add_channel_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : exit_code::usage;
  }
  if (connect->parsed()) return run_connect(connect_flags, connect_settings);
  if (send->parsed()) return run_send(send_flags, message, wait_count, timeout, binary);
  const int channels_status = run_channels();
  if (channels_status >= 0) exit_now(channels_status);
  const int bench_status = run_bench();
  if (bench_status >= 0) return bench_status;
  std::fputs(app.help().c_str(), stderr);
  return exit_code::usage;
}
