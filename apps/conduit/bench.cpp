// `conduit bench` and `conduit bench fanout`: front ends of the load generator
// engine (target conduit_load), with progress lines on stderr.
#include <unistd.h>

#include <atomic>
#include <climits>
#include <csignal>
#include <cstdio>
#include <memory>

#include "cli_common.hpp"
#include "conduit_load/load.hpp"

namespace conduit::cli {

namespace {

std::atomic<bool> cancel_requested{false};

void on_interrupt(int) { cancel_requested.store(true); }

// On a terminal a progress line is redrawn in place ("\r", no newline); into
// a pipe or a file each one is a plain line, so logs stay readable.
struct ProgressPrinter {
  bool tty = false;
  std::atomic<bool> printed{false};

  void line(const std::string& text) {
    std::fprintf(stderr, tty ? "\r%s   " : "%s\n", text.c_str());
    std::fflush(stderr);
    printed.store(true);
  }
  // Ends a redrawn line so that what follows starts on its own line.
  void finish() {
    if (tty && printed.load()) std::fputc('\n', stderr);
  }
};

std::string echo_progress(const load::Progress& p) {
  char text[256];
  std::snprintf(text, sizeof text, "[%6.1fs] %s %u connections, %llu messages, %.0f msg/s, %llu errors",
                p.elapsed_seconds, p.measuring ? "measuring" : "warmup   ", p.connections,
                static_cast<unsigned long long>(p.messages), p.recent_rate, static_cast<unsigned long long>(p.errors));
  return text;
}

std::string fanout_progress(const load::Progress& p) {
  const double percent =
      p.expected > 0 ? 100.0 * static_cast<double>(p.messages) / static_cast<double>(p.expected) : 0.0;
  char text[256];
  std::snprintf(text, sizeof text, "[%6.1fs] %5.1f%% done, %llu of %llu deliveries, %.0f deliveries/s, %llu errors",
                p.elapsed_seconds, percent, static_cast<unsigned long long>(p.messages),
                static_cast<unsigned long long>(p.expected), p.recent_rate, static_cast<unsigned long long>(p.errors));
  return text;
}

// Ends a run: a usage problem (bad URL or options) is one line on stderr and
// status 2 with no report; otherwise the report goes to stdout, and a run that
// did not pass gets one line saying why and status 6.
template <class Report>
int finish_run(const Report& report, bool json, ProgressPrinter& printer) {
  printer.finish();
  if (report.error == load::LoadError::BadUrl || report.error == load::LoadError::BadOptions) {
    std::fprintf(stderr, "conduit: bench: %s: %s\n", std::string(load::to_string(report.error)).c_str(),
                 report.error_detail.c_str());
    return exit_code::usage;
  }
  std::fputs((json ? load::to_json(report) + "\n" : load::format_report(report)).c_str(), stdout);
  std::fflush(stdout);
  const std::string why = load::failure_reason(report);
  if (why.empty()) return exit_code::ok;
  std::fprintf(stderr, "conduit: bench failed: %s\n", why.c_str());
  return exit_code::bench_failed;
}

struct BenchFlags {
  std::string url = "ws://127.0.0.1:8080/";
  std::string ca_file;
  bool insecure = false;
  unsigned threads = 1;
  int server_pid = 0;
  bool json = false;
  // echo
  unsigned connections = 100;
  std::size_t size = 20;
  std::string duration = "5s";
  std::string warmup = "0s";
  double rate = 0;
  unsigned pipeline = 1;
  bool text = false;
  // fanout
  unsigned subscribers = 1000;
  unsigned window = 32;
  std::uint64_t messages = 1000;
  std::size_t fanout_size = 64;
  std::string fanout_timeout = "120s";
  unsigned processes = 0;
  std::string channel;
};

// The path of this executable, for the fanout worker processes.
std::string self_executable() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(path, static_cast<std::size_t>(n));
}

}  // namespace

std::function<int()> add_bench_commands(CLI::App& app) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Load-test an echo server: each connection keeps --pipeline messages in flight (or --rate messages/s in "
      "total); reports msg/s of verified echoes and latency p50/p90/p99/max. Exit 6 when nothing was measured, a "
      "connection closed early or a reply was wrong.");
  bench->add_option("URL", flags->url, "ws:// or wss:// URL of an echo server (default ws://127.0.0.1:8080/)");
  bench->add_option("--connections", flags->connections, "connections (default 100)");
  bench->add_option("--size", flags->size, "payload bytes per message (default 20)");
  bench->add_option("--duration", flags->duration, "measured window (default 5s)");
  bench->add_option("--warmup", flags->warmup, "unmeasured run before the window (default 0s)");
  bench->add_option("--rate", flags->rate, "messages per second over all connections; 0 = unlimited (default)");
  bench->add_option("--pipeline", flags->pipeline, "messages in flight per connection (default 1)");
  bench->add_flag("--text", flags->text, "text messages instead of binary");
  bench->add_option("--threads", flags->threads, "load generator threads (default 1)");
  bench->add_option("--server-pid", flags->server_pid, "report this process's CPU seconds and msg per CPU-second");
  bench->add_option("--ca", flags->ca_file,
                    "PEM file of CA certificates to trust for wss:// (instead of the system store)");
  bench->add_flag("--insecure", flags->insecure, "wss://: do not verify the server certificate (testing only)");
  bench->add_flag("--json", flags->json, "print the report as one JSON object");
  bench->footer(exit_codes_help);

  CLI::App* fanout = bench->add_subcommand(
      "fanout",
      "Load-test a broadcast server: N subscribers and one publisher keeping a window of W messages; checks every "
      "subscriber got every message in order; reports deliveries/s and delivery latency. Exit 6 when nothing was "
      "delivered, a connection closed early or a message was missing, out of order or corrupt.");
  fanout->add_option("URL", flags->url, "ws:// or wss:// URL of a broadcast server (default ws://127.0.0.1:8080/)");
  fanout->add_option("--subscribers", flags->subscribers, "subscriber connections (default 1000)");
  fanout->add_option("--window", flags->window, "messages the publisher may be ahead; 0 = no wait (default 32)");
  fanout->add_option("--size", flags->fanout_size, "payload bytes, at least 16 (default 64)");
  fanout->add_option("--messages", flags->messages, "messages to publish (default 1000)");
  fanout->add_option("--timeout", flags->fanout_timeout, "give up after this long (default 120s)");
  fanout->add_option("--threads", flags->threads, "load generator threads (default 1)");
  fanout->add_option("--server-pid", flags->server_pid,
                     "report this process's CPU seconds and deliveries per CPU-second");
  fanout->add_option("--channel", flags->channel,
                     "the server speaks conduit.v1 (conduitd --mode pubsub): subscribe to this channel and publish "
                     "into it (size at least 32)");
  fanout->add_option("--processes", flags->processes,
                     "spread the subscribers over this many worker processes; 0 = only when they need more file "
                     "descriptors than one process may open (default 0)");
  fanout->add_option("--ca", flags->ca_file,
                     "PEM file of CA certificates to trust for wss:// (instead of the system store)");
  fanout->add_flag("--insecure", flags->insecure, "wss://: do not verify the server certificate (testing only)");
  fanout->add_flag("--json", flags->json, "print the report as one JSON object");
  fanout->footer(exit_codes_help);
  // Hidden: one worker process of a multi-process fanout run, driven over
  // stdin/stdout by its parent `conduit bench fanout` (see load.hpp).
  CLI::App* fanout_worker = bench->add_subcommand("fanout-worker", "");
  fanout_worker->group("");

  return [flags, bench, fanout, fanout_worker]() -> int {
    if (!bench->parsed()) return -1;
    std::signal(SIGINT, on_interrupt);
    load::raise_file_limit();
    if (fanout_worker->parsed()) return load::run_fanout_worker(STDIN_FILENO, STDOUT_FILENO, &cancel_requested);
    auto printer = std::make_shared<ProgressPrinter>();
    printer->tty = isatty(fileno(stderr)) != 0;
    // With --json into a pipe, stderr stays quiet unless something fails.
    const bool show_progress = !flags->json || printer->tty;
    auto progress_with = [&](std::string (*format)(const load::Progress&)) -> load::ProgressCallback {
      if (!show_progress) return {};
      return [printer, format](const load::Progress& p) { printer->line(format(p)); };
    };

    if (fanout->parsed()) {
      load::FanoutLoadOptions o;
      o.url = flags->url;
      o.ca_file = flags->ca_file;
      o.insecure = flags->insecure;
      o.threads = flags->threads;
      o.server_pid = flags->server_pid;
      o.cancel = &cancel_requested;
      o.subscribers = flags->subscribers;
      o.window = flags->window;
      o.messages = flags->messages;
      o.size = flags->fanout_size;
      o.processes = flags->processes;
      o.channel = flags->channel;
      o.worker_command = {self_executable(), "bench", "fanout-worker"};
      auto timeout = parse_duration(flags->fanout_timeout);
      if (!timeout) {
        std::fprintf(stderr, "conduit: --timeout: bad duration '%s'\n", flags->fanout_timeout.c_str());
        return exit_code::usage;
      }
      o.timeout = *timeout;
      const load::FanoutLoadReport report = load::run_fanout_load(o, progress_with(fanout_progress));
      return finish_run(report, flags->json, *printer);
    }

    load::EchoLoadOptions o;
    o.url = flags->url;
    o.ca_file = flags->ca_file;
    o.insecure = flags->insecure;
    o.threads = flags->threads;
    o.server_pid = flags->server_pid;
    o.cancel = &cancel_requested;
    o.connections = flags->connections;
    o.size = flags->size;
    o.binary = !flags->text;
    o.pipeline = flags->pipeline;
    o.rate = flags->rate;
    auto duration = parse_duration(flags->duration);
    auto warmup = parse_duration(flags->warmup);
    if (!duration || !warmup) {
      std::fprintf(stderr, "conduit: --duration/--warmup: bad duration (use e.g. 500ms, 10s, 1m)\n");
      return exit_code::usage;
    }
    o.duration = *duration;
    o.warmup = *warmup;
    const load::EchoLoadReport report = load::run_echo_load(o, progress_with(echo_progress));
    return finish_run(report, flags->json, *printer);
  };
}

}  // namespace conduit::cli
