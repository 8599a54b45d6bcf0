// server::Loop: one event-loop thread of the server and everything the server
// keeps per loop: its counters, its connections, the connections with output
// waiting for the end of the batch, its fan-out state, the sends posted from
// other threads, and the application's end-of-batch hooks.
//
// Who flushes, decided here and only here: every piece of loop-thread code
// runs inside a batch (net::EventLoop runs handlers, posted tasks and timers
// as one), a connection with new output asks to be flushed (flush_later), and
// the end of the batch runs, in this order, the application's hooks (which
// may publish or send), the hand-off of fan-out runs to other loops, and one
// gather write per connection with output.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "conduit/message.hpp"
#include "net/event_loop.hpp"
#include "server/counters.hpp"
#include "server/fanout.hpp"
#include "server/foreign_send.hpp"

namespace conduit::server {

class Connection;
class ServerCore;

class Loop final : public net::EventLoop {
 public:
  Loop(ServerCore& core, unsigned index);
  ~Loop() override;

  ServerCore& core() noexcept { return core_; }
  ServerCounters& counters() noexcept { return counters_; }
  const ServerCounters& counters() const noexcept { return counters_; }
  FanOut& fanout() noexcept { return fanout_; }

  // The loop's connections in every state (for the sweep and shutdown): this
  // loop's part of the server's set of every session.
  void add(Connection* c) noexcept;
  void remove(Connection* c) noexcept;
  std::size_t size() const noexcept { return connections_->size(); }
  // Calls fn on every connection of this loop; fn may finish (and so unlink)
  // the connection it is given.
  template <class Fn>
  void for_each_connection(Fn&& fn);

  // c has new output; it is written at the end of the current batch.
  void flush_later(std::shared_ptr<Connection> c);

  // An application hook run at the end of every batch on this loop, before
  // output is flushed (registered before the loop runs).
  void add_hook(std::function<void()> fn) { hooks_.push_back(std::move(fn)); }

  // Sends from other threads to this loop's sessions. Guards the foreign sends and every connection's foreign_* fields.
  std::mutex& foreign_mutex() noexcept { return foreign_mu_; }
  // Caller holds foreign_mutex(). Posts the drain when the list was empty.
  void push_foreign(ForeignSend s);
  // Loop thread, caller holds foreign_mutex(): removes and returns c's
  // pending foreign sends, in the order they were made.
  std::vector<ForeignSend> take_foreign(const Connection* c);

  void start_sweep();

  // io_uring: input that reached a connection while its receive was paused
  // for backpressure (what was already on its way when the pause began, or
  // the part of a chunk beyond the queue's room), with how the receive ended
  // if it did meanwhile. Rare, so kept here rather than in every connection.
  struct ParkedInput {
    std::string bytes;
    bool ended = false;
    int result = 0;  // on_receive_stopped's: 0 EOF, -errno
  };
  ParkedInput& parked_input(const Connection* c) { return parked_[c]; }
  // Removes and returns c's parked input (empty when there is none).
  ParkedInput take_parked_input(const Connection* c);

 private:
  void end_batch();
  void flush_dirty();
  void drain_foreign();

  ServerCore& core_;
  ServerCounters counters_;
  SubscriberSet* connections_;  // core_.everyone()->sets[index()]
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<std::shared_ptr<Connection>> flushing_;
  std::vector<std::function<void()>> hooks_;
  FanOut fanout_;
  std::mutex foreign_mu_;
  std::vector<ForeignSend> foreign_;  // guarded by foreign_mu_
  std::unordered_map<const Connection*, ParkedInput> parked_;
};

}  // namespace conduit::server

#include "server/connection.hpp"

namespace conduit::server {

template <class Fn>
void Loop::for_each_connection(Fn&& fn) {
  // Unlike a delivery, fn may finish its connection (which unlinks it): the
  // next one is taken first, and kept alive in case fn's callbacks end it too.
  for (Membership* m = connections_->first(); m;) {
    Membership* next = m->next;
    auto keep = m->conn->shared_from_this();
    fn(*m->conn);
    m = next;
  }
}

}  // namespace conduit::server
