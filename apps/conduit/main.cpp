// `conduit`: connect to a WebSocket server, send one message, or load-test one.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.hpp"
#include "conduit/client.hpp"

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
};

void add_connection_flags(CLI::App* cmd, ConnectionFlags& f) {
  cmd->add_option("URL", f.url, "ws://host[:port][/path][?query] or wss://...; IPv6 as ws://[::1]:port/")->required();
  cmd->add_option("--subprotocol", f.subprotocols, "offer this subprotocol (repeatable, in preference order)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--header", f.headers, "extra request header 'Name: value' (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--origin", f.origin, "Origin header");
  cmd->add_option("--ca", f.ca_file, "PEM file of CA certificates to trust for wss:// (instead of the system store)");
  cmd->add_flag("--insecure", f.insecure, "wss://: do not verify the server certificate (testing only)");
  cmd->add_option("--ping-interval", f.ping_interval, "ping every this long; 0s disables (default 25s)");
  cmd->add_option("--pong-timeout", f.pong_timeout, "no answer this long after a ping = dead connection (default 10s)");
  cmd->add_option("--reconnect-initial", f.reconnect_initial, "first backoff window (default 500ms)");
  cmd->add_option("--reconnect-max", f.reconnect_max, "largest backoff window (default 30s)");
  cmd->add_option("--max-message-bytes", f.max_message_bytes,
                  "largest message accepted; larger → close 1009 (default 16777216)");
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

// What happened to the last connection, to choose the exit status.
struct Outcome {
  std::mutex mu;
  bool ever_opened = false;
  bool app_closed = false;
  std::error_code last_error;    // of the last connection or attempt; cleared on open
  std::uint16_t close_code = 0;  // of the last connection

  int exit_status() {
    std::lock_guard lock(mu);
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

ClientHandlers make_reporting_handlers(Outcome& outcome, bool quiet_open) {
  ClientHandlers h;
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

int run_connect(const ConnectionFlags& flags, bool echo, bool no_reconnect, bool raw) {
  ClientOptions options;
  if (!make_options(flags, options)) return exit_code::usage;
  options.reconnect.enabled = !no_reconnect;
  Outcome outcome;
  ClientHandlers handlers = make_reporting_handlers(outcome, false);
  std::atomic<Client*> client_ptr{nullptr};
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
        if (auto ec = client->send(line)) {
          std::fprintf(stderr, "conduit: not sent: %s\n", ec.message().c_str());
          if (ec == ClientError::not_open) break;
        }
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

int run_send(const ConnectionFlags& flags, const std::string& message, unsigned wait_count, const std::string& timeout,
             bool binary) {
  ClientOptions options;
  if (!make_options(flags, options)) return exit_code::usage;
  auto deadline = parse_duration(timeout);
  if (!deadline) {
    std::fprintf(stderr, "conduit: --timeout: bad duration '%s' (%s)\n", timeout.c_str(), duration_help);
    return exit_code::usage;
  }
  options.reconnect.enabled = false;
  Outcome outcome;
  ClientHandlers handlers = make_reporting_handlers(outcome, true);
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
  client->send(message, binary ? MessageType::Binary : MessageType::Text);
  if (wait_count == 0) {
    std::lock_guard lock(outcome.mu);
    outcome.app_closed = true;
  }
  client->start();
  if (wait_count == 0) client->close(close_code::normal);
  if (!client->wait(*deadline)) {
    std::fprintf(stderr, "conduit: timeout: %u of %u messages after %s\n", received.load(), wait_count,
                 timeout.c_str());
    exit_now(exit_code::timeout);
  }
  if (received.load() < wait_count && outcome.exit_status() == exit_code::ok) exit_now(exit_code::connection_lost);
  exit_now(outcome.exit_status());
}

}  // namespace

}  // namespace conduit::cli

int main(int argc, char** argv) {
  using namespace conduit::cli;
  CLI::App app{"conduit: WebSocket client, one-shot sender and load generator"};
  app.footer(exit_codes_help);
  app.require_subcommand(1);
  // A flag given twice takes its last value, as in most CLIs (wrappers append overrides).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  ConnectionFlags connect_flags;
  bool echo = false;
  bool no_reconnect = false;
  bool raw = false;
  CLI::App* connect = app.add_subcommand(
      "connect",
      "Connect and stay connected: print each message received (text as is, binary as '[binary N bytes] <hex>'), "
      "send each stdin line as a text message, close normally at stdin EOF. State changes and backoff go to stderr.");
  add_connection_flags(connect, connect_flags);
  connect->add_flag("--echo", echo, "send every message received back with its opcode; stdin is not read");
  connect->add_flag("--no-reconnect", no_reconnect,
                    "exit when the connection ends: 0 after a normal close, non-zero otherwise");
  connect->add_flag("--raw", raw, "print binary messages as raw bytes instead of hex");
  connect->footer(exit_codes_help);

  ConnectionFlags send_flags;
  std::string message;
  unsigned wait_count = 0;
  std::string timeout = "10s";
  bool binary = false;
  CLI::App* send = app.add_subcommand("send", "Send one message, print the next N messages received, close.");
  add_connection_flags(send, send_flags);
  send->add_option("MESSAGE", message, "the message to send")->required();
  send->add_option("--wait", wait_count, "print this many messages received before closing (default 0)");
  send->add_option("--timeout", timeout, "give up (exit 5) after this long (default 10s)");
  send->add_flag("--binary", binary, "send MESSAGE as a binary message");
  send->footer(exit_codes_help);

  auto run_bench = add_bench_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : exit_code::usage;
  }
  if (connect->parsed()) return run_connect(connect_flags, echo, no_reconnect, raw);
  if (send->parsed()) return run_send(send_flags, message, wait_count, timeout, binary);
  const int bench_status = run_bench();
  if (bench_status >= 0) return bench_status;
  std::fputs(app.help().c_str(), stderr);
  return exit_code::usage;
}
