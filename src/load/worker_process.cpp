// Fanout over several processes, the worker's side: one process holding a
// share of the subscribers, driven by its parent over stdin/stdout (the
// protocol is in worker_protocol.hpp).
#include <fmt/format.h>

#include <cstdio>

#include "load/fanout.hpp"
#include "load/worker_protocol.hpp"

namespace conduit::load {

int run_fanout_worker(int in_fd, int out_fd, const std::atomic<bool>* cancel) {
  LineReader input(in_fd);
  FanoutLoadOptions o;
  o.cancel = cancel;
  if (!parse_config(input.read_line(Milliseconds(30000), cancel).value_or(""), o)) {
    std::fprintf(stderr, "conduit fanout worker: no valid configuration on stdin\n");
    return 2;
  }
  FanoutLoadReport r;
  LatencyHistogram merged;
  std::uint64_t last = 0;
  auto send_report = [&] { write_all(out_fd, format_report_line(r, last, merged)); };
  Setup setup;
  if (o.subscribers == 0 || o.threads == 0 || o.size < kFanoutHeader || o.messages == 0) {
    setup.error = LoadError::BadOptions;
    setup.detail = "bad configuration";
  } else {
    setup = resolve(o, o.subscribers);
  }
  if (setup.error != LoadError::None) {
    r.error = setup.error;
    r.error_detail = setup.detail;
    r.connect_failures = o.subscribers;
    write_all(out_fd, fmt::format("ready 0 {} {} {}\n", o.subscribers, static_cast<unsigned>(r.error),
                                  one_line(r.error_detail)));
    send_report();
    return 1;
  }

  FanoutShared shared(o.messages);
  shared.progress_fd = out_fd;
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  const unsigned threads = std::min(o.threads, o.subscribers);
  std::uint32_t next_id = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned count = o.subscribers / threads + (t < o.subscribers % threads ? 1 : 0);
    workers.push_back(std::make_unique<FanoutWorker>(t, setup.target, o, shared));
    workers.back()->add_connections(next_id, count, 8 * 1024);
    next_id += count;
  }
  const std::vector<Worker*> all = worker_list(workers);
  // No publisher here; worker 0 stands in as the "publisher worker" whose
  // position is 0, so every complete message reports progress.
  for (auto& w : workers) w->set_publisher(nullptr, workers[0].get());
  const SetupOutcome ready = start_and_wait_for_setup(o, all, o.subscribers);
  r.subscribers = ready.opened;
  r.connect_failures = ready.failures;
  r.error = ready.error;
  r.error_detail = ready.detail;
  write_all(out_fd, fmt::format("ready {} {} {} {}\n", r.subscribers, r.connect_failures,
                                static_cast<unsigned>(r.error), one_line(r.error_detail)));
  if (r.error == LoadError::None) {
    const auto line = input.read_line(o.connect_timeout + Milliseconds(10000), cancel);
    if (line && *line == "start") {
      shared.alive.store(r.subscribers);
      shared.started.store(true);
      workers[0]->report_progress();
      const auto deadline = Clock::now() + o.timeout;
      for (;;) {
        if (shared.finished.load() >= o.subscribers) break;
        if (Clock::now() >= deadline) {
          r.error = LoadError::Timeout;
          r.error_detail =
              fmt::format("not every subscriber received all {} messages within {} ms", o.messages, o.timeout.count());
          break;
        }
        if (cancelled(o)) break;
        input.poll_read(5);
        if (input.eof() || input.has_line()) break;  // "stop" or the parent is gone
      }
    }
  }
  teardown(all);
  add_subscriber_counts(workers, r, merged);
  if (!shared.started.load()) r.gaps = 0;  // nothing was published to these subscribers
  r.close_codes = merged_close_codes(all);
  last = shared.last_delivery_ns.load();
  send_report();
  return 0;
}

}  // namespace conduit::load
