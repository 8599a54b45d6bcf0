// What every `conduit` command shares: output lines, the stderr reports of a
// connection's life, and how a run ends.
#include "cli_common.hpp"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace conduit::cli {

namespace {

std::mutex output_mutex;

}  // namespace

CLI::Option* add_repeatable(CLI::App* cmd, const std::string& name, std::vector<std::string>& into,
                            const std::string& help) {
  return cmd->add_option(name, into, help)
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

void print_line(std::string_view line) {
  std::lock_guard lock(output_mutex);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void print_bytes(const char* data, std::size_t length) {
  std::lock_guard lock(output_mutex);
  std::fwrite(data, 1, length, stdout);
  std::fflush(stdout);
}

void log_line(const char* format, ...) {
  std::lock_guard lock(output_mutex);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
}

void log_failure(const ClientFailure& f) {
  log_line("conduit: error: %s\n", f.message().c_str());
  if (!f.http_body.empty()) log_line("conduit: response body: %s\n", f.http_body.c_str());
}

void log_closed(std::uint16_t code, std::string_view reason, bool by_server) {
  log_line("conduit: closed %u%s%.*s%s\n", code, reason.empty() ? "" : " ", static_cast<int>(reason.size()),
           reason.data(), by_server ? " (by server)" : "");
}

void log_connecting(const ClientStateEvent& e) {
  if (e.state == ClientState::Reconnecting) {
    log_line("conduit: reconnecting in %lld ms (attempt %u)\n", static_cast<long long>(e.delay.count()), e.attempt);
  } else if (e.state == ClientState::Connecting) {
    log_line("conduit: connecting\n");
  }
}

bool is_final_refusal(const ClientFailure& f) {
  return f.code == ClientError::handshake_rejected && f.http_status >= 400 && f.http_status < 500 &&
         f.http_status != 429;
}

void exit_now(int status) {
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(status);
}

}  // namespace conduit::cli
