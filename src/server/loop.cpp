#include "server/loop.hpp"

#include "server/server_core.hpp"
#include "wire/frame.hpp"

namespace conduit::server {

Loop::Loop(ServerCore& core, unsigned index) : net::EventLoop(index), core_(core), fanout_(*this) {
  add_end_of_batch_hook([this] { end_batch(); });
}

Loop::~Loop() = default;

void Loop::add(Connection* c) noexcept {
  c->prev_ = nullptr;
  c->next_ = head_;
  if (head_) head_->prev_ = c;
  head_ = c;
  ++count_;
}

void Loop::remove(Connection* c) noexcept {
  if (c->prev_) {
    c->prev_->next_ = c->next_;
  } else if (head_ == c) {
    head_ = c->next_;
  } else {
    return;  // not linked
  }
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --count_;
}

void Loop::flush_later(std::shared_ptr<Connection> c) { dirty_.push_back(std::move(c)); }

void Loop::end_batch() {
  for (auto& hook : hooks_) hook();
  // Flushing runs on_drain handlers, which may publish or send again: repeat
  // until neither runs for other loops nor output is left.
  do {
    fanout_.hand_off();
    flush_dirty();
  } while (fanout_.hand_off());
}

void Loop::flush_dirty() {
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    for (auto& c : flushing_) {
      if (c->dirty()) c->flush();
    }
    flushing_.clear();
  }
}

void Loop::push_foreign(ForeignSend s) {
  const bool first = foreign_.empty();
  foreign_.push_back(std::move(s));
  if (first) post([this] { drain_foreign(); });
}

std::vector<ForeignSend> Loop::take_foreign(const Connection* c) {
  std::vector<ForeignSend> mine;
  if (foreign_.empty()) return mine;
  auto keep = foreign_.begin();
  for (auto it = foreign_.begin(); it != foreign_.end(); ++it) {
    if (it->conn.get() == c) {
      mine.push_back(std::move(*it));
    } else {
      if (keep != it) *keep = std::move(*it);
      ++keep;
    }
  }
  foreign_.erase(keep, foreign_.end());
  return mine;
}

void Loop::drain_foreign() {
  // Under the lock, so that a sender's view (queued bytes + admitted bytes)
  // never misses a message on its way from one to the other.
  std::lock_guard lock(foreign_mu_);
  for (auto& s : foreign_) {
    auto& pending = s.conn->foreign_bytes_;
    pending.store(pending.load(std::memory_order_relaxed) - wire::unmasked_frame_size(s.data.size()),
                  std::memory_order_relaxed);
    s.conn->enqueue_admitted(s);
  }
  foreign_.clear();
}

void Loop::start_sweep() {
  schedule(core_.sweep_interval_ms(), [this] {
    std::int64_t now = now_ms();
    for_each_connection([now](Connection& c) { c.sweep(now); });
    core_.check_drained();
    if (!core_.stopped()) start_sweep();
  });
}

}  // namespace conduit::server
