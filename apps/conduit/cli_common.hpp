// Shared pieces of the `conduit` command-line tool.
#pragma once
#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "conduit/client.hpp"
#include "conduit/config.hpp"

namespace conduit::cli {

// Process exit statuses; `conduit --help` and README list them.
namespace exit_code {
inline constexpr int ok = 0;                  // normal close (1000 / no status code), or command done
inline constexpr int connection_lost = 1;     // ended otherwise: dropped, close code other than 1000, pong timeout
inline constexpr int usage = 2;               // bad command line or URL
inline constexpr int connect_failed = 3;      // could not connect: DNS, TCP, TLS, or the upgrade was refused
inline constexpr int protocol_violation = 4;  // the server broke RFC 6455; we closed with 1002/1007/1009
inline constexpr int timeout = 5;             // `send`/`pub` --timeout passed before the expected messages or answer
inline constexpr int bench_failed = 6;        // `bench` could not run or its checks failed
inline constexpr int request_refused = 7;     // `sub`/`pub`: the server refused the subscribe or publish (error reply)
inline constexpr int recovery_failed = 8;     // `sub --fail-on-gap`: publications were missed and cannot be recovered
}  // namespace exit_code

inline constexpr const char* exit_codes_help =
    "Exit codes:\n"
    "  0  normal close (code 1000 or no status code), or the command completed\n"
    "  1  the connection ended otherwise (dropped, another close code, pong timeout, gave up reconnecting)\n"
    "  2  bad command line or URL\n"
    "  3  could not connect (DNS, TCP, TLS, or the upgrade was refused)\n"
    "  4  the server violated the protocol (we closed with 1002, 1007 or 1009)\n"
    "  5  send, pub: --timeout passed before the expected messages or answer arrived\n"
    "  6  bench: the load run failed or its checks failed\n"
    "  7  sub, pub: the server refused the subscribe or publish (its error code and message on stderr)\n"
    "  8  sub --fail-on-gap: recovery failed, publications were missed\n";

// Duration flags use the one grammar conduitd's keys use (conduit::parse_duration:
// a number and a unit ms|s|m|h, "1.5s" allowed, a bare number refused);
// nullopt when the text is not a duration.
inline std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  try {
    return conduit::parse_duration(text);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
}

// What to print after "bad duration 'X'".
inline constexpr const char* duration_help = "use a number and a unit: ms, s, m or h, e.g. 250ms, 1.5s, 25s, 1m";

// A repeatable option takes exactly one value per occurrence. CLI11 lets a
// vector option keep taking the words that follow it (the URL, the message)
// unless extra arguments are disallowed explicitly.
CLI::Option* add_repeatable(CLI::App* cmd, const std::string& name, std::vector<std::string>& into,
                            const std::string& help);

// ---- output -------------------------------------------------------------------
// Lines on stdout (the command's results) and on stderr (what happened) go out
// whole under one mutex, so lines from the client's thread and the main thread
// never interleave.

// Writes `line` and a newline on stdout, flushed.
void print_line(std::string_view line);

// Writes `length` bytes on stdout as they are, flushed.
void print_bytes(const char* data, std::size_t length);

// printf-style on stderr, checked by the compiler like printf.
[[gnu::format(printf, 1, 2)]] void log_line(const char* format, ...);

// The reports `connect`, `sub` and `pub` share, on stderr:
// "conduit: error: ..." and the refusal's response body, if any.
void log_failure(const ClientFailure& f);
// "conduit: closed CODE [REASON] [(by server)]".
void log_closed(std::uint16_t code, std::string_view reason, bool by_server);
// "conduit: connecting" and "conduit: reconnecting in N ms (attempt K)"; other
// states print nothing here.
void log_connecting(const ClientStateEvent& e);

// A 4xx answer (other than 429 Too Many Requests) says the request itself is
// wrong (bad path, missing credentials, forbidden origin): repeating it
// unchanged cannot succeed, so the run stops instead of retrying forever.
bool is_final_refusal(const ClientFailure& f);

// Ends the process at once. `connect`'s stdin reader may be blocked in
// getline: _exit avoids joining it and skips static destructors that could
// race with it.
[[noreturn]] void exit_now(int status);

// ---- commands -----------------------------------------------------------------
// Each add_*_command adds its subcommands to `app`; the returned function runs
// the selected one and returns the exit status (or ends the process), or
// returns -1 when none of its subcommands was selected. main() adds them in the
// order `conduit --help` lists them.

// Adds `connect` (stay connected: print messages, send stdin lines).
std::function<int()> add_connect_command(CLI::App& app);

// Adds `send` (send one message, print the next N received).
std::function<int()> add_send_command(CLI::App& app);

// Adds `bench` (echo load) and `bench fanout`; the returned function runs the
// selected one and returns the exit status, or -1 when bench was not selected.
std::function<int()> add_bench_commands(CLI::App& app);

// Adds `sub`, `pub` and `token` (channels of conduitd --mode pubsub); the
// returned function runs the selected one, or returns -1 when none was selected.
std::function<int()> add_channel_commands(CLI::App& app);

}  // namespace conduit::cli
