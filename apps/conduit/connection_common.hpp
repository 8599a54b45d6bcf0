// What `connect` and `send` share: their connection flags, the client options
// made from them, the stderr reports of the connection's life and the exit
// status it leads to.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cli_common.hpp"
#include "conduit/client.hpp"

namespace conduit::cli {

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

void add_connection_flags(CLI::App* cmd, ConnectionFlags& f);

// Fills options from flags; prints the problem and returns false on a bad value.
bool make_options(const ConnectionFlags& f, ClientOptions& o);

// The client of flags.url, or null after printing why the URL cannot be used.
std::unique_ptr<Client> make_client(const ConnectionFlags& flags, const ClientOptions& options,
                                    ClientHandlers handlers);

// Prints a received message on stdout: text as is with a newline, binary as
// '[binary N bytes] <hex>' (or as raw bytes when `raw`).
void print_message(std::string_view data, MessageType type, bool raw);

// What happened to the last connection, to choose the exit status.
struct Outcome {
  std::mutex mu;
  bool ever_opened = false;
  bool app_closed = false;
  bool refused = false;          // a 4xx refusal ended the run (no retry)
  std::error_code last_error;    // of the last connection or attempt; cleared on open
  std::uint16_t close_code = 0;  // of the last connection

  int exit_status();
};

// Handlers that record into `outcome` and report on stderr: open (unless
// quiet_open), close, errors, state changes, and with --verbose or
// --show-ping-pong the upgrade's heads and every ping and pong.
ClientHandlers make_reporting_handlers(Outcome& outcome, const ConnectionFlags& flags, bool quiet_open);

}  // namespace conduit::cli
