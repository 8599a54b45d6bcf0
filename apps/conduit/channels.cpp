// `conduit sub`, `conduit pub` and `conduit token`: channels of conduitd
// --mode pubsub (the conduit.v1 protocol) from a terminal or a script.
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "conduit/channel_client.hpp"
#include "conduit/json_string.hpp"
#include "conduit/signals.hpp"
#include "conduit/token.hpp"

namespace conduit::cli {

namespace {

struct ChannelFlags {
  std::string url;
  std::string token;
  std::string ca_file;
  bool insecure = false;
};

void add_channel_flags(CLI::App* cmd, ChannelFlags& f) {
  cmd->add_option("URL", f.url, "ws://host[:port][/path] or wss://... of conduitd --mode pubsub")->required();
  cmd->add_option("--token", f.token, "connection token (JWT), sent as ?token= in the URL");
  cmd->add_option("--ca", f.ca_file, "PEM file of CA certificates to trust for wss:// (instead of the system store)");
  cmd->add_flag("--insecure", f.insecure, "wss://: do not verify the server certificate (testing only)");
}

// The URL with `token=TOKEN` added to its query (percent-encoded).
std::string url_with_token(const std::string& url, const std::string& token) {
  if (token.empty()) return url;
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out = url;
  out += out.find('?') == std::string::npos ? "?token=" : "&token=";
  for (unsigned char ch : token) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(hex[ch >> 4]);
      out.push_back(hex[ch & 0xF]);
    }
  }
  return out;
}

std::string position_json(const StreamPosition& p) {
  std::string out = "{\"offset\":" + std::to_string(p.offset) + ",\"epoch\":";
  append_json_string(out, p.epoch);
  out.push_back('}');
  return out;
}

// Handlers that report on stderr what `sub` and `pub` both report: a failed
// connection attempt, and an error reply no request is waiting for.
ChannelClientHandlers reporting_handlers() {
  ChannelClientHandlers h;
  h.connection.on_error = [](const ClientFailure& f) { log_failure(f); };
  h.on_error = [](const ChannelReplyError& e) {
    log_line("conduit: server error %d: %s\n", e.code, e.message.c_str());
  };
  return h;
}

// Client options with the TLS flags applied.
ClientOptions channel_options(const ChannelFlags& f) {
  ClientOptions options;
  options.ca_file = f.ca_file;
  options.insecure = f.insecure;
  return options;
}

// The client of the URL with --token in its query, or null after printing why
// the URL cannot be used.
std::unique_ptr<ChannelClient> make_channel_client(const ChannelFlags& f, const ClientOptions& options,
                                                   ChannelClientHandlers handlers) {
  try {
    return std::make_unique<ChannelClient>(url_with_token(f.url, f.token), options, std::move(handlers));
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "conduit: %s: %s\n", f.url.c_str(), e.code().message().c_str());
    return nullptr;
  }
}

// ---- sub -------------------------------------------------------------------------

struct SubSettings {
  ChannelFlags flags;
  std::vector<std::string> channels;
  std::string reconnect_initial = "500ms";
  std::string reconnect_max = "30s";
  unsigned max_attempts = 0;
  std::uint64_t count = 0;
  bool fail_on_gap = false;
};

int run_sub(const SubSettings& s) {
  ClientOptions options = channel_options(s.flags);
  auto initial = parse_duration(s.reconnect_initial);
  auto max = parse_duration(s.reconnect_max);
  if (!initial || !max) {
    std::fprintf(stderr, "conduit: --reconnect-initial/--reconnect-max: bad duration (%s)\n", duration_help);
    return exit_code::usage;
  }
  options.reconnect.initial_delay = *initial;
  options.reconnect.max_delay = *max;
  options.reconnect.max_attempts = s.max_attempts;

  // Set before any thread starts (see conduit/signals.hpp); the callback
  // closes the client, which ends wait() below.
  std::atomic<ChannelClient*> client_ptr{nullptr};
  std::mutex outcome_mu;
  int outcome = -1;  // decided status, or -1 while running
  bool ever_opened = false;
  auto finish = [&](int status, std::uint16_t code = close_code::normal) {
    {
      std::lock_guard lock(outcome_mu);
      if (outcome != -1) return;
      outcome = status;
    }
    if (auto* c = client_ptr.load()) c->close(code);
  };
  ShutdownOnSignal shutdown([&](int) { finish(exit_code::ok); });

  ChannelClientHandlers handlers = reporting_handlers();
  handlers.connection.on_open = [&](const std::string&) {
    {
      std::lock_guard lock(outcome_mu);
      ever_opened = true;
    }
    log_line("conduit: open\n");
  };
  handlers.connection.on_close = log_closed;
  handlers.connection.on_error = [&](const ClientFailure& f) {
    log_failure(f);
    if (is_final_refusal(f)) {
      log_line("conduit: HTTP %u is final: not retrying\n", f.http_status);
      finish(exit_code::connect_failed);
    }
  };
  handlers.connection.on_state = log_connecting;

  std::unique_ptr<ChannelClient> client = make_channel_client(s.flags, options, std::move(handlers));
  if (!client) return exit_code::usage;
  client_ptr.store(client.get());

  std::atomic<std::uint64_t> printed{0};
  for (const std::string& channel : s.channels) {
    ChannelSubscriptionHandlers h;
    h.on_publication = [&](const ReceivedPublication& p) {
      if (s.count != 0 && printed.load() >= s.count) return;
      std::string line = "{\"channel\":";
      append_json_string(line, p.channel);
      line += ",\"offset\":" + std::to_string(p.offset) + ",\"epoch\":";
      append_json_string(line, p.epoch);
      line += ",\"data\":";
      line.append(p.data);
      line.push_back('}');
      print_line(line);
      if (printed.fetch_add(1) + 1 == s.count) finish(exit_code::ok);
    };
    h.on_subscribed = [](const ChannelSubscribed& e) {
      const std::string ch(e.channel);
      if (!e.resubscribe) {
        log_line("conduit: subscribed %s at offset %llu (epoch %s)\n", ch.c_str(),
                 static_cast<unsigned long long>(e.position.offset), e.position.epoch.c_str());
      } else if (e.recovered) {
        log_line("conduit: recovered %s: %zu missed publications, now at offset %llu (epoch %s)\n", ch.c_str(),
                 e.recovered_count, static_cast<unsigned long long>(e.position.offset), e.position.epoch.c_str());
      }
    };
    h.on_recovery_failed = [&](const ChannelRecoveryFailed& f) {
      const std::string ch(f.channel);
      log_line(
          "conduit: recovery failed on %s: %s (last delivered offset %llu epoch %s; continuing after offset %llu "
          "epoch %s)\n",
          ch.c_str(), to_string(f.reason), static_cast<unsigned long long>(f.last_delivered.offset),
          f.last_delivered.epoch.c_str(), static_cast<unsigned long long>(f.position.offset), f.position.epoch.c_str());
      if (s.fail_on_gap) finish(exit_code::recovery_failed);
    };
    h.on_error = [&, channel](const ChannelReplyError& e) {
      log_line("conduit: subscribe %s refused: %d %s\n", channel.c_str(), e.code, e.message.c_str());
      finish(exit_code::request_refused);
    };
    if (auto ec = client->subscribe(channel, std::move(h))) {
      std::fprintf(stderr, "conduit: %s: %s\n", channel.c_str(), ec.message().c_str());
      return exit_code::usage;
    }
  }
  client->start();
  client->wait();
  const std::error_code final_error = client->connection().final_error();
  client_ptr.store(nullptr);
  std::lock_guard lock(outcome_mu);
  if (outcome != -1) return outcome;
  // Closed by itself: reconnecting gave up (max_attempts), or reconnect failed for good.
  log_line("conduit: done%s%s\n", final_error ? ": " : "", final_error ? final_error.message().c_str() : "");
  return ever_opened ? exit_code::connection_lost : exit_code::connect_failed;
}

// ---- pub ---------------------------------------------------------------------------

struct PubSettings {
  ChannelFlags flags;
  std::string channel;
  std::string data;
  bool http = false;
  std::string api_key;
  std::string timeout = "10s";
};

// DATA as given, or all of stdin for "-"; surrounding whitespace dropped.
std::optional<std::string> load_data(const std::string& argument) {
  std::string data = argument;
  if (argument == "-") {
    data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) {
      std::fprintf(stderr, "conduit: -: cannot read stdin: %s\n", std::strerror(errno));
      return std::nullopt;
    }
  }
  const std::size_t first = data.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return std::string{};
  data.erase(0, first);
  data.erase(data.find_last_not_of(" \t\r\n") + 1);
  return data;
}

int run_pub_http(const PubSettings& s, const std::string& data, ClientDuration timeout) {
  HttpPublishOptions o;
  o.api_key = s.api_key;
  o.timeout = timeout;
  o.ca_file = s.flags.ca_file;
  o.insecure = s.flags.insecure;
  const HttpPublishResult r = publish_http(s.flags.url, s.channel, data, o);
  if (r.transport_error) {
    std::fprintf(stderr, "conduit: %s: %s\n", r.transport_error.message().c_str(), r.detail.c_str());
    if (r.transport_error == ClientError::invalid_url || r.transport_error == ChannelClientError::invalid_json ||
        r.transport_error == ChannelClientError::invalid_channel) {
      return exit_code::usage;
    }
    if (r.transport_error == ClientError::connect_timeout) return exit_code::timeout;
    return exit_code::connect_failed;
  }
  if (r.position) {
    print_line(position_json(*r.position));
    return exit_code::ok;
  }
  std::fprintf(stderr, "conduit: publish refused: HTTP %u: %d %s\n", r.http_status, r.error ? r.error->code : 0,
               r.error ? r.error->message.c_str() : "");
  return exit_code::request_refused;
}

int run_pub(const PubSettings& s) {
  const auto timeout = parse_duration(s.timeout);
  if (!timeout) {
    std::fprintf(stderr, "conduit: --timeout: bad duration '%s' (%s)\n", s.timeout.c_str(), duration_help);
    return exit_code::usage;
  }
  const std::optional<std::string> data = load_data(s.data);
  if (!data) return exit_code::usage;
  if (s.http && !s.flags.token.empty()) {
    std::fprintf(stderr, "conduit: --token is for WebSocket; the HTTP API (--http) takes --api-key\n");
    return exit_code::usage;
  }
  if (s.http) return run_pub_http(s, *data, *timeout);
  if (!s.api_key.empty()) {
    std::fprintf(stderr, "conduit: --api-key is for --http (the HTTP API); over WebSocket use --token\n");
    return exit_code::usage;
  }

  ClientOptions options = channel_options(s.flags);
  options.reconnect.enabled = false;
  options.offline_queue_bytes = std::max(options.offline_queue_bytes, data->size() + s.channel.size() + 256);
  options.send_queue_bytes = std::max(options.send_queue_bytes, options.offline_queue_bytes);
  std::mutex mu;
  int outcome = -1;
  bool ever_opened = false;
  std::atomic<ChannelClient*> client_ptr{nullptr};
  ChannelClientHandlers handlers = reporting_handlers();
  handlers.connection.on_open = [&](const std::string&) {
    std::lock_guard lock(mu);
    ever_opened = true;
  };
  std::unique_ptr<ChannelClient> client = make_channel_client(s.flags, options, std::move(handlers));
  if (!client) return exit_code::usage;
  client_ptr.store(client.get());
  auto done = [&](const ChannelPublishResult& r) {
    int status = exit_code::ok;
    if (!r.error) {
      print_line(position_json(r.position));
    } else if (r.error->code == channel_error::connection_lost) {
      log_line("conduit: publish: %s (it may or may not have been published)\n", r.error->message.c_str());
      status = exit_code::connection_lost;
    } else if (r.error->code == channel_error::client_closed) {
      status = -2;  // never sent: decided below from how the connection ended
    } else if (r.error->code == channel_error::bad_frame) {
      log_line("conduit: publish: %s\n", r.error->message.c_str());
      status = exit_code::protocol_violation;
    } else {
      log_line("conduit: publish refused: %d %s\n", r.error->code, r.error->message.c_str());
      status = exit_code::request_refused;
    }
    {
      std::lock_guard lock(mu);
      outcome = status;
    }
    if (status != -2) client_ptr.load()->close(close_code::normal);
  };
  if (auto ec = client->publish(s.channel, *data, done)) {
    std::fprintf(stderr, "conduit: publish: %s\n", ec.message().c_str());
    return exit_code::usage;
  }
  client->start();
  if (!client->wait(*timeout)) {
    std::fprintf(stderr, "conduit: timeout: no answer after %s\n", s.timeout.c_str());
    if (client->connection().state() == ClientState::Open) {
      client->close(close_code::going_away, "timeout");
      client->wait(options.close_timeout);
    }
    return exit_code::timeout;
  }
  std::lock_guard lock(mu);
  if (outcome >= 0) return outcome;
  return ever_opened ? exit_code::connection_lost : exit_code::connect_failed;
}

// ---- token ---------------------------------------------------------------------------

struct TokenSettings {
  std::string secret;
  std::string secret_file;
  std::string subject;
  std::vector<std::string> subscribe;
  std::vector<std::string> publish;
  std::string ttl = "1h";
};

int run_token(const TokenSettings& s) {
  if (s.secret.empty() == s.secret_file.empty()) {
    std::fprintf(stderr, "conduit: token: give exactly one of --secret and --secret-file\n");
    return exit_code::usage;
  }
  std::string secret = s.secret;
  if (!s.secret_file.empty()) {
    std::ifstream in(s.secret_file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "conduit: token: cannot read %s: %s\n", s.secret_file.c_str(), std::strerror(errno));
      return exit_code::usage;
    }
    std::stringstream content;
    content << in.rdbuf();
    secret = content.str();
    // As conduitd reads auth.jwt_secret_file: trailing line breaks are not part of the secret.
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) {
      std::fprintf(stderr, "conduit: token: %s is empty\n", s.secret_file.c_str());
      return exit_code::usage;
    }
  }
  const auto ttl = parse_duration(s.ttl);
  if (!ttl || ttl->count() < 0) {
    std::fprintf(stderr, "conduit: --ttl: bad duration '%s' (%s)\n", s.ttl.c_str(), duration_help);
    return exit_code::usage;
  }
  TokenSpec spec;
  spec.subject = s.subject;
  if (ttl->count() > 0) spec.expires_at = std::chrono::system_clock::now() + *ttl;
  if (!s.subscribe.empty() || !s.publish.empty()) {
    spec.subscribe = s.subscribe;
    spec.publish = s.publish;
  }
  try {
    print_line(mint_token(spec, secret));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit: token: %s\n", e.what());
    return exit_code::usage;
  }
  return exit_code::ok;
}

}  // namespace

std::function<int()> add_channel_commands(CLI::App& app) {
  auto sub_settings = std::make_shared<SubSettings>();
  auto pub_settings = std::make_shared<PubSettings>();
  auto token_settings = std::make_shared<TokenSettings>();

  CLI::App* sub = app.add_subcommand(
      "sub",
      "Subscribe to channels of conduitd --mode pubsub (conduit.v1) and print each publication as one JSON line "
      "{\"channel\",\"offset\",\"epoch\",\"data\"} on stdout; reconnect and recover missed publications by "
      "themselves. Runs until SIGINT/SIGTERM (exit 0) or --count.");
  add_channel_flags(sub, sub_settings->flags);
  sub->add_option("CHANNEL", sub_settings->channels, "channels to subscribe to")->required();
  sub->add_option("--count", sub_settings->count, "exit 0 after printing this many publications (default 0: never)");
  sub->add_flag("--fail-on-gap", sub_settings->fail_on_gap,
                "exit 8 when recovery fails (publications were missed) instead of continuing");
  sub->add_option("--reconnect-initial", sub_settings->reconnect_initial, "first backoff window (default 500ms)");
  sub->add_option("--reconnect-max", sub_settings->reconnect_max, "largest backoff window (default 30s)");
  sub->add_option("--max-attempts", sub_settings->max_attempts,
                  "give up after N reconnect attempts in a row fail (default 0: never)");
  sub->footer(exit_codes_help);

  CLI::App* pub =
      app.add_subcommand("pub",
                         "Publish one JSON value to a channel (over WebSocket, or the HTTP API with --http) and print "
                         "{\"offset\":N,\"epoch\":\"E\"}.");
  add_channel_flags(pub, pub_settings->flags);
  pub->add_option("CHANNEL", pub_settings->channel, "the channel")->required();
  pub->add_option("DATA", pub_settings->data, "the publication: one JSON value; '-' = read it from stdin")->required();
  pub->add_flag("--http", pub_settings->http, "publish with POST /api/publish (URL may be http:// or ws://)");
  pub->add_option("--api-key", pub_settings->api_key, "--http: the API key (sent as 'Authorization: apikey KEY')");
  pub->add_option("--timeout", pub_settings->timeout,
                  "give up after this long without an answer: exit 5 (default 10s)");
  pub->footer(exit_codes_help);

  CLI::App* token = app.add_subcommand(
      "token", "Print an HS256 connection token (JWT) for conduitd's auth.jwt_secret (development and tests).");
  token->add_option("--secret", token_settings->secret, "the HMAC secret (auth.jwt_secret)");
  token->add_option("--secret-file", token_settings->secret_file,
                    "read the secret from this file, trailing line breaks dropped (auth.jwt_secret_file)");
  token->add_option("--sub", token_settings->subject, "the user id (sub claim)");
  add_repeatable(token, "--subscribe", token_settings->subscribe,
                 "a channel pattern the holder may subscribe to ('*' = any characters); repeatable");
  add_repeatable(token, "--publish", token_settings->publish,
                 "a channel pattern the holder may publish to; repeatable");
  token->add_option("--ttl", token_settings->ttl, "expires this long from now (exp claim); 0s = never (default 1h)");
  token->footer(exit_codes_help);

  return [=]() -> int {
    if (sub->parsed()) return run_sub(*sub_settings);
    if (pub->parsed()) return run_pub(*pub_settings);
    if (token->parsed()) return run_token(*token_settings);
    return -1;
  };
}

}  // namespace conduit::cli
