// Fan-out: a message framed once into a reference-counted frame buffer and
// delivered to a set of sessions on every loop (one loop per thread, no locks; framed once, shared by every
// subscriber).
//
// - A group (GroupState) is one SubscriberSet per loop. A set is an intrusive
//   list of memberships touched only by its loop's thread, so joining,
//   leaving and delivering take no lock; joining and leaving are O(1) once the
//   membership is found (a session has few).
// - A publication to a group without members anywhere costs one atomic load;
//   one goes only to the loops where the group has members.
// - Publishing on a loop frames the message into that loop's batch buffer,
//   delivers it to the local set at once and queues the run for every other
//   loop; at the end of the batch each other loop gets one post carrying
//   every run for it (consecutive publications to the same group share one
//   run). Publishing from a foreign thread frames once and posts once per loop.
// - Every member's send queue holds a reference to the same bytes. Members
//   with permessage-deflate get a compressed copy: one per compression
//   setting (window, level) shared by every member that agreed to no server
//   context takeover, and one per member otherwise (its peer's inflater
//   holds that session's history, so no other compressor can serve it).
// - The set of every session is a group like any other (ServerCore's
//   everyone()), which is what Server::broadcast publishes to; each loop's
//   part of it is also that loop's connection list (delivery skips sessions
//   that are not open).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "conduit/message.hpp"
#include "conduit/session.hpp"
#include "net/send_queue.hpp"

namespace conduit::wire {
class PerMessageDeflate;
}

namespace conduit::server {

class Connection;
class Loop;
class ServerCore;
struct GroupState;
class SubscriberSet;

// A session's place in one loop's set of one group: the links of an
// intrusive list. Kept small because every connection embeds one (its place
// in the set of every session, which is also its loop's connection list).
struct Membership {
  Membership* prev = nullptr;
  Membership* next = nullptr;
  Connection* conn = nullptr;
};

// A membership of an application group (heap-allocated at join). It keeps
// the group's state alive while the group has members, so a Group handle may
// be dropped while sessions are still in it.
struct GroupMembership : Membership {
  SubscriberSet* set = nullptr;
  GroupMembership* next_of_connection = nullptr;  // the session's other groups
  std::shared_ptr<GroupState> keep;
};

class SubscriberSet {
 public:
  SubscriberSet() = default;
  SubscriberSet(const SubscriberSet&) = delete;
  SubscriberSet& operator=(const SubscriberSet&) = delete;

  // m must not be in a set (link) / must be in this one (unlink).
  void link(Membership& m) noexcept;
  void unlink(Membership& m) noexcept;
  bool empty() const noexcept { return head_ == nullptr; }
  Membership* first() noexcept { return head_; }
  // Any thread (a publisher on another loop skips a loop without members);
  // written by the set's loop only.
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  // fn(Connection&) for every member; fn must not unlink other members (a
  // delivery never does: a slow consumer is closed, not finished, here).
  template <class Fn>
  void for_each(Fn&& fn) {
    for (Membership* m = head_; m;) {
      Membership* next = m->next;
      fn(*m->conn);
      m = next;
    }
  }

 private:
  Membership* head_ = nullptr;
  std::atomic<std::size_t> size_{0};
};

struct GroupState {
  explicit GroupState(std::size_t loops) : sets(loops) {}
  std::vector<SubscriberSet> sets;      // [loop index]; each touched by its loop only
  std::atomic<std::size_t> members{0};  // over all loops (for size(); any thread)
};

// Consecutive frames in one shared buffer, for one group, on their way to
// another loop.
struct FrameRun {
  net::FrameBuffer* buf;  // one reference held by the run
  std::uint32_t begin;
  std::uint32_t end;
  std::uint32_t messages;
  std::shared_ptr<GroupState> group;
  const Session* except;  // the member the run is not for (nullptr: none)
};

// One loop's fan-out state: its batch buffer and its outbox to other loops.
class FanOut {
 public:
  explicit FanOut(Loop& loop) : loop_(loop) {}
  ~FanOut();
  FanOut(const FanOut&) = delete;
  FanOut& operator=(const FanOut&) = delete;

  // Loop thread: frames data once and delivers it to every member of group
  // but `except` on this loop now and on the other loops at the end of the
  // batch.
  void publish(const std::shared_ptr<GroupState>& group, std::string_view data, MessageType type,
               const Session* except = nullptr);
  // End of batch: one post per other loop with every run queued for it.
  // Returns false when there was nothing to hand off.
  bool hand_off();
  // Delivers [begin, end) of buf (messages frames) to group's set here,
  // leaving out `except` when it is a member.
  void deliver(GroupState& group, net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::uint32_t messages,
               const Session* except = nullptr);

 private:
  net::FrameBuffer* compress_run(wire::PerMessageDeflate& deflate, const std::uint8_t* run, std::size_t len);

  Loop& loop_;
  net::FrameBuffer* batch_ = nullptr;          // current batch buffer (one reference held)
  std::vector<std::vector<FrameRun>> outbox_;  // [destination loop]
};

// From a thread that is none of the server's loops: frame once, post once per loop.
void publish_from_outside(ServerCore& core, const std::shared_ptr<GroupState>& group, std::string_view data,
                          MessageType type, const Session* except = nullptr);

}  // namespace conduit::server
