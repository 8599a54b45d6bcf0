// One channel's shared state (see channels.cpp for how publications travel).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "conduit/pubsub.hpp"
#include "net/send_queue.hpp"
#include "pubsub/history.hpp"
#include "server/fanout.hpp"

namespace conduit::pubsub {

struct ChannelState {
  ChannelState(std::string channel, ChannelOptions opts, HistoryLimits limits, std::string epoch,
               std::size_t loop_count)
      : name(std::move(channel)),
        options(opts),
        history(limits, std::move(epoch)),
        group(std::make_shared<server::GroupState>(loop_count)),
        loops(loop_count) {}
  ~ChannelState() {
    for (auto& l : loops) {
      for (auto& p : l.inbox) p.frame->release();
    }
    if (batch) batch->release();
  }
  ChannelState(const ChannelState&) = delete;
  ChannelState& operator=(const ChannelState&) = delete;

  // Consecutive framed publications, [begin, end) of frame, on their way to
  // one loop's members (one reference held).
  struct Pending {
    net::FrameBuffer* frame;
    std::uint32_t begin;
    std::uint32_t end;
    std::uint32_t messages;
  };
  struct PerLoop {
    std::size_t interest = 0;    // subscriptions on this loop
    std::vector<Pending> inbox;  // offset order; drained by the loop
  };

  const std::string name;
  const ChannelOptions options;

  std::mutex mutex;   // guards everything below except group's sets (each its loop's)
  bool dead = false;  // removed from the registry: look it up again
  History history;
  std::size_t subscribers = 0;  // sum of the loops' interest
  // Members per loop; set i is touched only by loop i's thread.
  std::shared_ptr<server::GroupState> group;
  std::vector<PerLoop> loops;
  // Publications are framed one after another into this buffer (one
  // reference held) until it is full, so that a subscriber's queue extends
  // one node for a run of them instead of adding one node each. Bytes below
  // its `size` never change once written; publishers append above it under
  // `mutex`, loops read only ranges handed to them through an inbox.
  net::FrameBuffer* batch = nullptr;
};

}  // namespace conduit::pubsub
