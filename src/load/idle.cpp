// Idle scenario: K connections opened and held, for memory-per-connection
// figures of the server.
#include "load/worker.hpp"

namespace conduit::load {
namespace {

class IdleWorker final : public Worker {
 public:
  using Worker::Worker;

 protected:
  void on_message(Connection&, wire::Opcode, std::uint8_t*, std::size_t) override {}
};

}  // namespace

IdleLoadReport run_idle_load(const IdleLoadOptions& options,
                             const std::function<void(const IdleLoadReport&)>& on_ready) {
  IdleLoadReport report;
  if (options.connections == 0 || options.threads == 0) {
    report.error = LoadError::BadOptions;
    report.error_detail = "connections and threads must be at least 1";
    if (on_ready) on_ready(report);
    return report;
  }
  Setup setup = resolve(options, options.connections);
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    if (on_ready) on_ready(report);
    return report;
  }
  const unsigned threads = std::min(options.threads, options.connections);
  std::vector<std::unique_ptr<IdleWorker>> workers;
  std::uint32_t next_id = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned count = options.connections / threads + (t < options.connections % threads ? 1 : 0);
    workers.push_back(std::make_unique<IdleWorker>(t, setup.target, options.connect_concurrency / threads));
    // Idle connections only see the 101 and the odd ping.
    workers.back()->add_connections(next_id, count, 1024);
    next_id += count;
  }
  const std::vector<Worker*> all = worker_list(workers);
  const auto start = Clock::now();
  const SetupOutcome outcome = start_and_wait_for_setup(options, all, options.connections);
  report.connections = outcome.opened;
  report.connect_failures = outcome.failures;
  report.error = outcome.error;
  report.error_detail = outcome.detail;
  report.connect_seconds = seconds_between(start, Clock::now());
  if (on_ready) on_ready(report);
  if (report.error == LoadError::None) {
    const auto hold_end = Clock::now() + options.hold;
    while (!cancelled(options) && (options.hold.count() == 0 || Clock::now() < hold_end))
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  teardown(all);
  report.close_codes = merged_close_codes(all);
  return report;
}

}  // namespace conduit::load
