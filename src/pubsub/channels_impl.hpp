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
  }
  ChannelState(const ChannelState&) = delete;
  ChannelState& operator=(const ChannelState&) = delete;

  // A framed publication on its way to one loop's members (one reference held).
  struct Pending {
    std::uint64_t offset;
    net::FrameBuffer* frame;
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
};

}  // namespace conduit::pubsub
