// `conduit connect`: stay connected, print every message received, send each
// stdin line (or echo what arrives with --echo), reconnect with backoff.
#include <atomic>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "connection_common.hpp"

namespace conduit::cli {

namespace {

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

  std::unique_ptr<Client> client = make_client(flags, options, std::move(handlers));
  if (!client) return exit_code::usage;
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

}  // namespace

std::function<int()> add_connect_command(CLI::App& app) {
  auto flags = std::make_shared<ConnectionFlags>();
  auto settings = std::make_shared<ConnectSettings>();
  CLI::App* connect = app.add_subcommand(
      "connect",
      "Connect and stay connected: print each message received (text as is, binary as '[binary N bytes] <hex>'), "
      "send each stdin line as a text message, close normally at stdin EOF. State changes and backoff go to stderr. "
      "Stdin commands: '/ping [data]' sends a ping, '/close [code [reason]]' closes and exits, "
      "'//text' sends '/text'.");
  add_connection_flags(connect, *flags);
  connect->add_flag("--echo", settings->echo, "send every message received back with its opcode; stdin is not read");
  connect->add_flag("--no-reconnect", settings->no_reconnect,
                    "exit when the connection ends: 0 after a normal close, non-zero otherwise");
  connect->add_flag("--raw", settings->raw, "print binary messages as raw bytes instead of hex");
  connect->add_option("--max-attempts", settings->max_attempts,
                      "give up after N reconnect attempts in a row fail (default 0: never)");
  connect->add_flag("--retry-all", settings->retry_all,
                    "also retry upgrades refused with a 4xx status (by default they exit 3 at once; 429 is retried)");
  connect->footer(exit_codes_help);
  return [=]() -> int { return connect->parsed() ? run_connect(*flags, *settings) : -1; };
}

}  // namespace conduit::cli
