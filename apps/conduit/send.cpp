// `conduit send`: send one message (text, binary, stdin or a file's contents),
// print the next N messages received, close.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "connection_common.hpp"

namespace conduit::cli {

namespace {

struct SendSettings {
  std::string message;
  unsigned wait_count = 0;
  std::string timeout = "10s";
  bool binary = false;
};

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

int run_send(const ConnectionFlags& flags, const SendSettings& settings) {
  const unsigned wait_count = settings.wait_count;
  const std::string& timeout = settings.timeout;
  ClientOptions options;
  if (!make_options(flags, options)) return exit_code::usage;
  auto deadline = parse_duration(timeout);
  if (!deadline) {
    std::fprintf(stderr, "conduit: --timeout: bad duration '%s' (%s)\n", timeout.c_str(), duration_help);
    return exit_code::usage;
  }
  const std::optional<std::string> message = load_message(settings.message);
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
  std::unique_ptr<Client> client = make_client(flags, options, std::move(handlers));
  if (!client) return exit_code::usage;
  client_ptr.store(client.get());
  // Queued before start: it goes out first thing after the upgrade.
  if (auto ec = client->send(*message, settings.binary ? MessageType::Binary : MessageType::Text)) {
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

std::function<int()> add_send_command(CLI::App& app) {
  auto flags = std::make_shared<ConnectionFlags>();
  auto settings = std::make_shared<SendSettings>();
  CLI::App* send = app.add_subcommand("send", "Send one message, print the next N messages received, close.");
  add_connection_flags(send, *flags);
  send->add_option("MESSAGE", settings->message,
                   "the message to send; '-' = all of stdin, '@FILE' = the file's contents")
      ->required();
  send->add_option("--wait", settings->wait_count, "print this many messages received before closing (default 0)");
  send->add_option("--timeout", settings->timeout,
                   "give up after this long: close with 1001 'timeout', exit 5 (default 10s)");
  send->add_flag("--binary", settings->binary, "send the message as a binary message (text must be UTF-8)");
  send->footer(exit_codes_help);
  return [=]() -> int { return send->parsed() ? run_send(*flags, *settings) : -1; };
}

}  // namespace conduit::cli
