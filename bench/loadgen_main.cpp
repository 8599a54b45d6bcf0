// conduit-loadgen: thin command line over the load generator engine
// (target conduit_load, src/load/), used by scripts/bench.
//
//   conduit-loadgen echo   --url ws://127.0.0.1:P/ --connections 100 --size 20 --duration 5 [--json]
//   conduit-loadgen fanout --url ws://127.0.0.1:P/ --subscribers N --window W --size B --messages M [--json]
//   conduit-loadgen fanout --channel C --url ws://A/ --subscriber-url ws://A/ --subscriber-url ws://B/ ...
//                  --server-pid PID_A --also-server-pid PID_B --also-server-pid PID_REDIS  (several nodes)
//   conduit-loadgen idle   --url ws://127.0.0.1:P/ --connections 10000 --hold SECONDS
//   conduit-loadgen upgrades --url ws://127.0.0.1:P/ --in-flight 64 --duration 5 [--json]
//
// Exit status: 0 = run completed and every check passed; 1 = the run could not
// be done (bad URL, connections refused, timeout); 2 = bad command line;
// 3 = the run completed but did not pass (load::failure_reason: nothing
// measured, mismatched echo, lost or reordered message, protocol error,
// connection closed early).
#include <sched.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "conduit_load/load.hpp"

namespace {

std::atomic<bool> g_cancel{false};

void on_signal(int) { g_cancel.store(true); }

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

conduit::load::Milliseconds seconds_to_ms(double seconds) {
  return conduit::load::Milliseconds(static_cast<long long>(seconds * 1000.0));
}

void print_progress(const conduit::load::Progress& p) {
  std::fprintf(stderr, "[%6.1fs] %s %u conns  %llu msgs  %.0f/s  %llu errors\n", p.elapsed_seconds,
               p.measuring ? "measuring" : "warmup   ", p.connections, static_cast<unsigned long long>(p.messages),
               p.recent_rate, static_cast<unsigned long long>(p.errors));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace conduit::load;
  CLI::App app{"conduit-loadgen: WebSocket load generator (echo, fanout, idle scenarios)"};
  app.require_subcommand(1);

  std::string url = "ws://127.0.0.1:8080/";
  unsigned threads = 1;
  int cpu = -1;
  int server_pid = 0;
  std::vector<int> more_server_pids;
  bool json = false;
  bool show_progress = false;
  unsigned concurrency = 256;
  double connect_timeout = 30;
  auto add_common = [&](CLI::App* cmd) {
    cmd->add_option("--url", url, "ws://host:port/path of the server")->capture_default_str();
    cmd->add_option("--threads", threads, "io_context threads")->capture_default_str();
    cmd->add_option("--cpu", cpu, "pin the process to this CPU core");
    cmd->add_option("--server-pid", server_pid, "report this process's CPU time over the measured window");
    cmd->add_option("--also-server-pid", more_server_pids,
                    "add this process's CPU time to the server's (repeatable: several nodes and their Redis)");
    cmd->add_option("--connect-concurrency", concurrency, "connections opened at once")->capture_default_str();
    cmd->add_option("--connect-timeout", connect_timeout, "seconds allowed to open every connection")
        ->capture_default_str();
    cmd->add_flag("--json", json, "print the report as one JSON object");
    cmd->add_flag("--progress", show_progress, "print a progress line every second on stderr");
  };

  EchoLoadOptions echo;
  double echo_duration = 5, echo_warmup = 0;
  bool text = false;
  auto* echo_cmd = app.add_subcommand("echo", "N connections, each keeping `pipeline` messages in flight");
  add_common(echo_cmd);
  echo_cmd->add_option("--connections,-c", echo.connections, "connections")->capture_default_str();
  echo_cmd->add_option("--size,-s", echo.size, "payload bytes per message")->capture_default_str();
  echo_cmd->add_option("--duration,-d", echo_duration, "measured seconds")->capture_default_str();
  echo_cmd->add_option("--warmup", echo_warmup, "seconds of load before measuring")->capture_default_str();
  echo_cmd->add_option("--rate", echo.rate, "total messages per second (0 = closed loop)")->capture_default_str();
  echo_cmd->add_option("--pipeline", echo.pipeline, "messages in flight per connection")->capture_default_str();
  echo_cmd->add_flag("--text", text, "send text messages (default binary)");

  FanoutLoadOptions fanout;
  double fanout_timeout = 120;
  auto* fanout_cmd = app.add_subcommand("fanout", "N subscribers and one publisher on a broadcast server");
  add_common(fanout_cmd);
  fanout_cmd->add_option("--subscribers,-n", fanout.subscribers, "subscriber connections")->capture_default_str();
  fanout_cmd->add_option("--window,-w", fanout.window, "messages in flight (0 = no wait)")->capture_default_str();
  fanout_cmd->add_option("--size,-s", fanout.size, "payload bytes per message (>= 16)")->capture_default_str();
  fanout_cmd->add_option("--messages,-m", fanout.messages, "messages published")->capture_default_str();
  fanout_cmd->add_option("--timeout", fanout_timeout, "seconds allowed for the run")->capture_default_str();
  fanout_cmd->add_option("--channel", fanout.channel,
                         "conduit.v1 server: subscribe to and publish into this channel (size >= 32)");
  fanout_cmd->add_option("--subscriber-url", fanout.subscriber_urls,
                         "with --channel: subscribers connect here, spread evenly (repeatable: several nodes); "
                         "the publisher uses --url");

  IdleLoadOptions idle;
  double hold = 0;
  auto* idle_cmd = app.add_subcommand("idle", "open K connections and hold them (prints \"ready\" when all are open)");
  add_common(idle_cmd);
  idle_cmd->add_option("--connections,-c", idle.connections, "connections")->capture_default_str();
  idle_cmd->add_option("--hold", hold, "seconds to hold them (0 = until SIGINT/SIGTERM)")->capture_default_str();

  UpgradeLoadOptions upgrades;
  double upgrades_duration = 5, upgrades_warmup = 0;
  auto* upgrades_cmd =
      app.add_subcommand("upgrades", "open + close storm: connect, upgrade, close handshake, again (ws:// only)");
  add_common(upgrades_cmd);
  upgrades_cmd->add_option("--in-flight", upgrades.in_flight, "connections in their life cycle at once")
      ->capture_default_str();
  upgrades_cmd->add_option("--duration,-d", upgrades_duration, "measured seconds")->capture_default_str();
  upgrades_cmd->add_option("--warmup", upgrades_warmup, "seconds of load before measuring")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (cpu >= 0 && !pin_to_cpu(cpu)) {
    std::perror("sched_setaffinity");
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  auto fill_common = [&](ConnectOptions& o) {
    o.url = url;
    o.threads = threads;
    o.server_pid = server_pid;
    o.more_server_pids = more_server_pids;
    o.connect_concurrency = concurrency;
    o.connect_timeout = seconds_to_ms(connect_timeout);
    o.cancel = &g_cancel;
  };
  ProgressCallback progress;
  if (show_progress) progress = print_progress;

  if (echo_cmd->parsed()) {
    fill_common(echo);
    echo.duration = seconds_to_ms(echo_duration);
    echo.warmup = seconds_to_ms(echo_warmup);
    echo.binary = !text;
    const EchoLoadReport r = run_echo_load(echo, progress);
    std::cout << (json ? to_json(r) + "\n" : format_report(r)) << std::flush;
    if (r.error != LoadError::None) return 1;
    return failure_reason(r).empty() ? 0 : 3;
  }
  if (fanout_cmd->parsed()) {
    fill_common(fanout);
    fanout.timeout = seconds_to_ms(fanout_timeout);
    const FanoutLoadReport r = run_fanout_load(fanout, progress);
    std::cout << (json ? to_json(r) + "\n" : format_report(r)) << std::flush;
    if (r.error != LoadError::None) return 1;
    return failure_reason(r).empty() ? 0 : 3;
  }
  if (upgrades_cmd->parsed()) {
    fill_common(upgrades);
    upgrades.duration = seconds_to_ms(upgrades_duration);
    upgrades.warmup = seconds_to_ms(upgrades_warmup);
    const UpgradeLoadReport r = run_upgrade_load(upgrades);
    std::cout << (json ? to_json(r) + "\n" : format_report(r)) << std::flush;
    if (r.error != LoadError::None) return 1;
    return failure_reason(r).empty() ? 0 : 3;
  }
  fill_common(idle);
  idle.hold = seconds_to_ms(hold);
  const IdleLoadReport r = run_idle_load(idle, [&](const IdleLoadReport& ready) {
    if (ready.error == LoadError::None) {
      std::cout << "ready " << ready.connections << " connections in " << ready.connect_seconds << " s" << std::endl;
    } else {
      std::cerr << "idle: " << to_string(ready.error) << ": " << ready.error_detail << std::endl;
    }
  });
  if (json) std::cout << to_json(r) << std::endl;
  return r.error == LoadError::None ? 0 : 1;
}
