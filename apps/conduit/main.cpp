// `conduit`: connect to a WebSocket server, send one message, use channels, or
// load-test a server. Each command lives in its own file (connect.cpp,
// send.cpp, channels.cpp, bench.cpp); this one parses the command line and runs
// the selected command.
#include <cstdio>
#include <string>

#include "cli_common.hpp"
#include "conduit/version.hpp"
#include "conduit_build_commit.hpp"

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

  // Subcommands made after option_defaults() inherit it.
  auto run_connect = add_connect_command(app);
  auto run_send = add_send_command(app);
  auto run_bench = add_bench_commands(app);
  auto run_channels = add_channel_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : exit_code::usage;
  }
  if (const int status = run_connect(); status >= 0) return status;
  if (const int status = run_send(); status >= 0) return status;
  if (const int status = run_channels(); status >= 0) exit_now(status);
  if (const int status = run_bench(); status >= 0) return status;
  std::fputs(app.help().c_str(), stderr);
  return exit_code::usage;
}
