// Fanout over several processes, the parent's side.
//
// The parent opens only the publisher and starts K worker processes
// (options.worker_command), each holding a share of the subscribers and
// talking to the parent in the text protocol of worker_protocol.hpp.
//
// The publisher sends message k once every worker's watermark is above
// k - window, which is what the single-process window means: every live
// subscriber has received message k - window. Publish timestamps are
// steady_clock (CLOCK_MONOTONIC), comparable across processes, so the workers
// measure publish → receive latency themselves and send their histograms,
// which the parent merges bucket by bucket.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <csignal>
#include <cstring>
#include <limits>

#include "load/fanout.hpp"
#include "load/worker_protocol.hpp"

namespace conduit::load {
namespace {

struct SubscriberProcess {
  unsigned index = 0;
  unsigned share = 0;  // subscribers it opens
  pid_t pid = -1;
  int to_child = -1;  // its stdin
  std::unique_ptr<net::posix::stream_descriptor> from_child;
  std::string buffer;                       // io thread only
  std::atomic<std::uint64_t> watermark{0};  // written by the io thread
  std::mutex mutex;                         // guards what follows
  bool ready = false;
  bool reported = false;
  bool eof = false;
  unsigned opened = 0;
  std::uint64_t failed = 0;
  LoadError error = LoadError::None;
  std::string detail;
  FanoutLoadReport report;  // counts from its report line
  LatencyHistogram histogram;
  std::uint64_t last_delivery_ns = 0;
  std::string bad_line;  // the first line that could not be parsed
  int exit_status = -1;  // waitpid status once reaped
};

using Processes = std::vector<std::unique_ptr<SubscriberProcess>>;

// Reads the workers' lines on the publisher's io thread; progress lines move
// the publisher's window directly.
class SubscriberProcesses {
 public:
  SubscriberProcesses(Processes& procs, FanoutWorker& publisher_worker) : procs_(procs), worker_(publisher_worker) {}

  void start_reading() {
    for (auto& p : procs_) read_line(*p);
  }
  void close_all() {
    for (auto& p : procs_) {
      boost::system::error_code ignored;
      p->from_child->close(ignored);
    }
  }

 private:
  void read_line(SubscriberProcess& p) {
    net::async_read_until(*p.from_child, net::dynamic_buffer(p.buffer), '\n',
                          [this, &p](const boost::system::error_code& ec, std::size_t n) {
                            if (ec) {
                              std::lock_guard lock(p.mutex);
                              p.eof = true;
                              return;
                            }
                            std::string line = p.buffer.substr(0, n - 1);
                            p.buffer.erase(0, n);
                            handle(p, line);
                            read_line(p);
                          });
  }

  void handle(SubscriberProcess& p, const std::string& line) {
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    if (kind == "progress") {
      std::uint64_t n = 0;
      if (in >> n) {
        p.watermark.store(n);
        std::uint64_t low = std::numeric_limits<std::uint64_t>::max();
        for (auto& q : procs_) low = std::min(low, q->watermark.load());
        worker_.remote_progress(low);
        return;
      }
    } else if (kind == "ready") {
      unsigned opened = 0, error = 0;
      std::uint64_t failed = 0;
      if (in >> opened >> failed >> error) {
        std::lock_guard lock(p.mutex);
        p.opened = opened;
        p.failed = failed;
        p.error = load_error_from(error);
        p.detail = rest_of(in);
        p.ready = true;
        return;
      }
    } else if (kind == "report") {
      FanoutLoadReport r;
      std::uint64_t last = 0;
      LatencyHistogram h;
      if (parse_report_line(in, r, last, h)) {
        std::lock_guard lock(p.mutex);
        p.report = std::move(r);
        p.histogram = h;
        p.last_delivery_ns = last;
        p.reported = true;
        return;
      }
    }
    std::lock_guard lock(p.mutex);
    if (p.bad_line.empty()) p.bad_line = line.substr(0, 200);
  }

  Processes& procs_;
  FanoutWorker& worker_;
};

// Starts argv with its stdin and stdout connected to new pipes; "" or an error message.
std::string spawn_worker(const std::vector<std::string>& command, SubscriberProcess& p, net::io_context& ioc) {
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return std::string("pipe: ") + std::strerror(e);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // the parent ignores it; a worker dies of it when the parent is gone
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const int rc = ::posix_spawn(&p.pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (rc != 0) {
    p.pid = -1;
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    return fmt::format("cannot start worker process {}: {}", command[0], std::strerror(rc));
  }
  p.to_child = in_pipe[1];
  p.from_child = std::make_unique<net::posix::stream_descriptor>(ioc, out_pipe[0]);
  return {};
}

// Reaps every started worker: waits up to `grace` for them to exit, then kills
// the rest by PID (SIGKILL) and reaps them too.
void reap_workers(Processes& procs, Milliseconds grace) {
  for (auto& p : procs)
    if (p->to_child >= 0) {
      ::close(p->to_child);  // EOF on its stdin: a worker still running stops
      p->to_child = -1;
    }
  const auto deadline = Clock::now() + grace;
  for (;;) {
    bool running = false;
    for (auto& p : procs) {
      if (p->pid <= 0) continue;
      int status = 0;
      const pid_t r = ::waitpid(p->pid, &status, WNOHANG);
      if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->exit_status = status;
        p->pid = -1;
      } else {
        running = true;
      }
    }
    if (!running) return;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& p : procs) {
    if (p->pid <= 0) continue;
    ::kill(p->pid, SIGKILL);
    int status = 0;
    while (::waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    p->exit_status = status;
    p->pid = -1;
  }
}

std::string describe_exit(int status) {
  if (status < 0) return "not reaped";
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "ended";
}

// What went wrong first, with the worker whose exit status explains it.
struct RunProblem {
  LoadError error = LoadError::None;
  std::string detail;
  int dead_worker = -1;  // a worker that ended without its report

  bool empty() const noexcept { return detail.empty(); }
  void set(LoadError e, std::string d, int dead = -1) {
    if (!detail.empty()) return;
    error = e;
    detail = std::move(d);
    dead_worker = dead;
  }
};

// Waits until the publisher and every worker's subscribers are connected (or
// one failed); fills the report's subscriber and failure counts.
void wait_for_workers_ready(const FanoutLoadOptions& options, Processes& procs, FanoutWorker& publisher_worker,
                            FanoutLoadReport& report, RunProblem& problem) {
  const auto deadline = Clock::now() + options.connect_timeout + Milliseconds(5000);
  for (;;) {
    bool all_ready = true;
    for (auto& p : procs) {
      std::lock_guard lock(p->mutex);
      if (p->ready) continue;
      all_ready = false;
      if (p->eof)
        problem.set(LoadError::WorkerFailed,
                    fmt::format("worker process {} ended during setup{}", p->index,
                                p->bad_line.empty() ? "" : " (said \"" + p->bad_line + "\")"),
                    static_cast<int>(p->index));
    }
    const bool publisher_done = publisher_worker.opened.load() + publisher_worker.failed.load() >= 1;
    if (!problem.empty() || (all_ready && publisher_done) || cancelled(options)) break;
    if (Clock::now() >= deadline) {
      problem.set(LoadError::ConnectFailed,
                  fmt::format("setup timed out after {} ms", options.connect_timeout.count()));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (publisher_worker.failed.load() > 0) {
    std::lock_guard lock(publisher_worker.detail_mutex);
    ++report.connect_failures;
    problem.set(publisher_worker.first_error,
                "the publisher could not connect: " + publisher_worker.first_error_detail);
  }
  for (auto& p : procs) {
    std::lock_guard lock(p->mutex);
    if (!p->ready) {
      report.connect_failures += p->share;
      continue;
    }
    report.subscribers += p->opened;
    report.connect_failures += p->share - std::min<std::uint64_t>(p->share, p->opened);
    if (p->opened < p->share)
      problem.set(p->error != LoadError::None ? p->error : LoadError::ConnectFailed,
                  p->detail.empty()
                      ? fmt::format("worker process {}: {} of {} subscribers opened", p->index, p->opened, p->share)
                      : fmt::format("worker process {}: {}", p->index, p->detail));
  }
}

// Starts the workers and the publisher; waits for every worker's report.
void run_workers(const FanoutLoadOptions& options, Processes& procs, FanoutWorker& publisher_worker,
                 FanoutShared& shared, const ProgressCallback& progress, Clock::time_point start,
                 FanoutLoadReport& report, RunProblem& problem) {
  const auto cpu_before = server_cpu_seconds(options);
  for (auto& p : procs) write_all(p->to_child, "start\n");
  publisher_worker.start_publishing();
  // Workers give up after `timeout` themselves and report; the grace covers their teardown.
  const auto deadline = Clock::now() + options.timeout + Milliseconds(10000);
  auto counted = [&] {
    Counted c;
    for (auto& p : procs) c.messages += p->watermark.load() * p->share;
    return c;
  };
  run_progress_loop(options, progress, start, true, report.subscribers, report.expected_deliveries, counted, [&] {
    // Without the publisher nothing more can arrive; the workers are told to stop.
    if (shared.publisher_lost.load()) return true;
    bool all = true;
    for (auto& p : procs) {
      std::lock_guard lock(p->mutex);
      if (p->reported) continue;
      all = false;
      if (p->eof) {
        problem.set(LoadError::WorkerFailed, fmt::format("worker process {} ended without a report", p->index),
                    static_cast<int>(p->index));
        return true;
      }
    }
    if (all) return true;
    if (Clock::now() >= deadline) {
      problem.set(LoadError::Timeout,
                  fmt::format("worker processes did not report within {} ms", options.timeout.count() + 10000));
      return true;
    }
    return false;
  });
  const auto cpu_after = server_cpu_seconds(options);
  if (cpu_before && cpu_after) report.server_cpu_seconds = *cpu_after - *cpu_before;
}

// Asks workers still running to stop and report (bounded wait).
void stop_workers(Processes& procs) {
  for (auto& p : procs) write_all(p->to_child, "stop\n");
  const auto deadline = Clock::now() + Milliseconds(5000);
  for (;;) {
    bool waiting = false;
    for (auto& p : procs) {
      std::lock_guard lock(p->mutex);
      if (!p->reported && !p->eof) waiting = true;
    }
    if (!waiting || Clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

FanoutLoadReport run_fanout_processes(const FanoutLoadOptions& options, unsigned processes,
                                      const ProgressCallback& progress) {
  FanoutLoadReport report;
  report.processes = processes;
  if (options.worker_command.empty() || processes > options.subscribers) {
    report.error = LoadError::BadOptions;
    report.error_detail = options.worker_command.empty()
                              ? "splitting subscribers over processes needs a worker command"
                              : fmt::format("{} processes need at least {} subscribers", processes, processes);
    return report;
  }
  Setup setup = resolve(options, 1);  // this process opens the publisher only
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    return report;
  }
  const std::uint64_t limit = raise_file_limit();
  const unsigned largest = (options.subscribers + processes - 1) / processes;
  if (largest + kFanoutProcessMargin > limit) {
    report.error = LoadError::ResourceLimit;
    report.error_detail = fmt::format(
        "{} subscribers per process need more file descriptors than RLIMIT_NOFILE ({}) allows; use more processes",
        largest, limit);
    return report;
  }
  // A worker that died must show up as EPIPE on its stdin, not kill us.
  std::signal(SIGPIPE, SIG_IGN);

  FanoutShared shared(options.messages);
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  workers.push_back(std::make_unique<FanoutWorker>(0, setup.target, options, shared));
  FanoutWorker& publisher_worker = *workers[0];
  publisher_worker.add_connections(0, 1, 8 * 1024);
  publisher_worker.set_publisher(publisher_worker.connections()[0].get(), &publisher_worker);
  publisher_worker.enable_remote_window();
  const std::vector<Worker*> all = worker_list(workers);

  Processes procs;
  RunProblem problem;
  // The same number of connects in flight in total as one process would have.
  const unsigned concurrency = std::max(1u, options.connect_concurrency / processes);
  for (unsigned i = 0; i < processes && problem.empty(); ++i) {
    auto p = std::make_unique<SubscriberProcess>();
    p->index = i;
    p->share = options.subscribers / processes + (i < options.subscribers % processes ? 1 : 0);
    std::string spawn_error = spawn_worker(options.worker_command, *p, publisher_worker.ioc());
    if (!spawn_error.empty()) {
      problem.set(LoadError::WorkerFailed, std::move(spawn_error));
      break;
    }
    procs.push_back(std::move(p));
    if (!write_all(procs.back()->to_child, format_config(options, procs.back()->share, concurrency)))
      problem.set(LoadError::WorkerFailed,
                  fmt::format("worker process {} did not take its configuration: {}", i, std::strerror(errno)));
  }
  SubscriberProcesses channel(procs, publisher_worker);
  channel.start_reading();

  const auto start = Clock::now();
  publisher_worker.start_thread();
  publisher_worker.begin_setup();
  if (problem.empty()) wait_for_workers_ready(options, procs, publisher_worker, report, problem);
  report.expected_deliveries = std::uint64_t{options.subscribers} * options.messages;
  if (problem.empty() && !cancelled(options))
    run_workers(options, procs, publisher_worker, shared, progress, start, report, problem);

  stop_workers(procs);
  net::post(publisher_worker.ioc(), [&channel] { channel.close_all(); });
  teardown(all);
  reap_workers(procs, Milliseconds(5000));
  if (problem.dead_worker >= 0)
    problem.detail += " (" + describe_exit(procs[static_cast<std::size_t>(problem.dead_worker)]->exit_status) + ")";

  // Merge.
  LatencyHistogram merged;
  std::uint64_t last = 0;
  CloseCodeCounts codes = merged_close_codes(all);
  publisher_worker.finalize();
  report.protocol_errors = publisher_worker.protocol_errors;
  report.closed_early = publisher_worker.closed_early;
  report.publisher_echoes = publisher_worker.publisher_echoes;
  report.publish_latency = publisher_worker.publish_histogram().summary();
  report.publish_errors = publisher_worker.publish_errors;
  report.messages_published = publisher_worker.published;
  for (auto& p : procs) {
    std::lock_guard lock(p->mutex);
    if (!p->reported) {
      problem.set(LoadError::WorkerFailed,
                  fmt::format("worker process {} sent no report ({})", p->index, describe_exit(p->exit_status)));
      continue;
    }
    const FanoutLoadReport& r = p->report;
    merged.merge(p->histogram);
    last = std::max(last, p->last_delivery_ns);
    report.deliveries += r.deliveries;
    report.gaps += r.gaps;
    report.out_of_order += r.out_of_order;
    report.corrupt += r.corrupt;
    report.protocol_errors += r.protocol_errors;
    report.closed_early += r.closed_early;
    for (auto [code, n] : r.close_codes) codes[code] += n;
    if (r.error != LoadError::None)
      problem.set(r.error, fmt::format("worker process {}: {}", p->index, r.error_detail));
  }
  report.error = problem.empty() ? LoadError::None : problem.error;
  report.error_detail = problem.detail;
  if (report.subscribers == 0 || shared.first_publish_ns.load() == 0) report.gaps = 0;  // nothing ran
  report.latency = merged.summary();
  report.close_codes = codes;
  add_rates(report, shared.first_publish_ns.load(), last);
  return report;
}

}  // namespace conduit::load
