// Fan-out scenario pieces shared by the single-process run (fanout.cpp) and
// the multi-process run (processes.cpp, worker_process.cpp): the subscriber
// and publisher logic of one worker thread, and the state the threads share.
//
// Message layout: [0..8) sequence number, [8..16) publish time (steady_clock
// ns, comparable across processes on one machine), then a fixed pattern.
#pragma once
#include <atomic>
#include <mutex>
#include <vector>

#include "load/histogram.hpp"
#include "load/worker.hpp"

namespace conduit::load {

constexpr std::size_t kFanoutHeader = 16;
// conduit.v1 channel mode: the data string starts with the sequence number
// and the publish time as 16 hex digits each.
constexpr std::size_t kChannelHeader = 32;
// Descriptors kept free in a process of a multi-process fanout run (publisher,
// stdio, pipes, epoll, /proc reads).
constexpr std::uint64_t kFanoutProcessMargin = 64;

struct FanoutShared {
  explicit FanoutShared(std::uint64_t messages) : received(messages) {}
  // Subscribers that received message k; the window waits on these.
  std::vector<std::atomic<std::uint32_t>> received;
  // Subscribers still connected; the window compares against this, so a
  // subscriber closed by the server (slow consumer) does not stall the run.
  std::atomic<std::uint32_t> alive{0};
  std::atomic<std::uint32_t> finished{0};   // subscribers done (got the last message, or closed)
  std::atomic<bool> publisher_lost{false};  // closed before the end: nothing more can be published
  std::atomic<std::uint64_t> first_publish_ns{0};
  std::atomic<std::uint64_t> last_delivery_ns{0};
  // Worker process of a multi-process run (run_fanout_worker): window progress
  // goes to the parent as "progress N" lines on progress_fd instead of to a
  // local publisher. N = messages every live subscriber here has received.
  int progress_fd = -1;
  std::atomic<bool> started{false};
  std::mutex progress_mutex;
  std::uint64_t watermark = 0;  // guarded by progress_mutex
};

// Writes all of data to fd (retrying short writes and EINTR); false on error.
bool write_all(int fd, std::string_view data);

class FanoutWorker final : public Worker {
 public:
  FanoutWorker(unsigned index, const Target& target, const FanoutLoadOptions& options, FanoutShared& shared);

  void set_publisher(Connection* publisher, FanoutWorker* publisher_worker) {
    publisher_ = publisher;
    publisher_worker_ = publisher_worker;
  }
  void start_publishing();
  // Worker process: sends "progress N" when the local watermark moved.
  void report_progress();
  // Parent of worker processes: the publisher waits on the subscribers'
  // progress reported by the workers (the lowest watermark of them all).
  void enable_remote_window() { remote_window_ = true; }
  void remote_progress(std::uint64_t watermark) {
    remote_watermark_ = watermark;
    publish();
  }
  // After join: adds the messages a subscriber never received at all to the
  // gaps, and publishes this worker's last delivery time.
  void finalize();

  const LatencyHistogram& histogram() const noexcept { return histogram_; }
  // Channel mode, the publisher's worker: publish request → reply.
  const LatencyHistogram& publish_histogram() const noexcept { return publish_histogram_; }
  std::uint64_t publish_errors = 0;
  std::uint64_t gaps = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t closed_early = 0;
  std::uint64_t publisher_echoes = 0;
  std::uint64_t published = 0;

 protected:
  void on_open(Connection& c) override;
  void on_message(Connection& c, wire::Opcode, std::uint8_t* data, std::size_t len) override;
  void on_drained(Connection& c) override {
    if (&c == publisher_) publish();
  }
  void on_closed(Connection& c, std::uint16_t code, bool by_us) override;

 private:
  void publish();
  void window_moved();
  // A verified delivery of message seq published at sent_ns.
  void delivered(Connection& c, std::uint64_t seq, std::uint64_t sent_ns, std::uint64_t now);
  // Channel mode: the subscribe reply or a push.
  void on_channel_message(Connection& c, std::string_view text, std::uint64_t now);
  // Channel mode: a reply to one of the publisher's publish requests.
  void on_publish_reply(std::string_view text, std::uint64_t now);
  std::uint64_t publisher_next_hint() const noexcept { return publisher_worker_->publisher_next_.load(); }
  void subscriber_finished(Connection& c);

  const FanoutLoadOptions& options_;
  FanoutShared& shared_;
  std::string pattern_;  // the publisher's payload buffer; the reference pattern for subscribers
  std::string request_;  // channel mode: the publisher's publish request being built
  Connection* publisher_ = nullptr;
  FanoutWorker* publisher_worker_ = nullptr;
  LatencyHistogram histogram_;
  LatencyHistogram publish_histogram_;
  // Channel mode, publisher's worker: when publish request id k+1 was sent.
  std::vector<std::uint64_t> publish_sent_ns_;
  bool publishing_ = false;
  std::uint64_t next_seq_ = 0;
  std::atomic<std::uint64_t> publisher_next_{0};
  std::uint64_t last_delivery_ns_ = 0;
  bool remote_window_ = false;
  std::uint64_t remote_watermark_ = 0;
};

// Deliveries per second over first publish → last delivery (steady-clock ns),
// and per server-CPU-second when the server's CPU time was measured.
void add_rates(FanoutLoadReport& report, std::uint64_t first_publish_ns, std::uint64_t last_delivery_ns);

// Sums the subscriber-side counts of finished fan-out workers into a report
// (this process's, or a worker process's report to its parent) and merges
// their latency histograms into merged.
void add_subscriber_counts(const std::vector<std::unique_ptr<FanoutWorker>>& workers, FanoutLoadReport& r,
                           LatencyHistogram& merged);

// The multi-process run (processes.cpp): the publisher here, the subscribers
// in `processes` worker processes.
FanoutLoadReport run_fanout_processes(const FanoutLoadOptions& options, unsigned processes,
                                      const ProgressCallback& progress);

}  // namespace conduit::load
