// Shared pieces of the `conduit` command-line tool.
#pragma once
#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

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

// Adds `bench` (echo load) and `bench fanout`; the returned function runs the
// selected one and returns the exit status, or -1 when bench was not selected.
std::function<int()> add_bench_commands(CLI::App& app);

// Adds `sub`, `pub` and `token` (channels of conduitd --mode pubsub); the
// returned function runs the selected one, or returns -1 when none was selected.
std::function<int()> add_channel_commands(CLI::App& app);

}  // namespace conduit::cli
