// conduit::Group: a set of sessions that receive the same messages, the
// building block for topics, rooms and channels.
//
//   conduit::Group news(server);
//   handlers.on_open = [&](conduit::Session& s) { news.join(s); };
//   news.publish(R"({"headline":"..."})");          // from any thread
//
// A publication is framed once into a shared, reference-counted buffer and
// every member's send queue references it (members with permessage-deflate
// get a compressed copy: one shared per compression setting when they agreed
// to no server context takeover, else one each). Each loop keeps its own list of the group's
// members and touches it only on its thread: joining, leaving and publishing
// take no global lock, and a publication reaches another loop with one post
// per loop per batch of publications, not one per member, and only to loops
// where the group has members. Publishing to a group without members costs
// one atomic load. A publication and a join made at the same time on
// different threads are not ordered: the joining session may or may not get it.
//
// Every member's slow-consumer policy applies to each publication as it does
// to Session::send. A session leaves every group when it closes.
#pragma once
#include <cstddef>
#include <memory>
#include <string_view>

#include "conduit/message.hpp"
#include "conduit/session.hpp"

namespace conduit {

class Server;
namespace server {
struct GroupState;
class ServerCore;
}  // namespace server

class Group {
 public:
  // An empty group of server's sessions. The server must outlive the group's
  // use (publish, join); the Group handle itself may be destroyed any time,
  // with sessions still in it.
  explicit Group(Server& server);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Adds session (O(1) on its loop's thread; from another thread the join is
  // posted to that loop and happens after the current batch). Joining twice
  // is a no-op; a session that is not open is not added.
  void join(Session& session);
  // Removes session (O(number of groups the session is in); posted like join).
  void leave(Session& session);
  // Sends data to every member on every loop, framed once. Any thread. From a
  // loop thread the local members have it queued when publish returns, the
  // other loops' members at the end of the current batch. `except`, when
  // given, is left out (e.g. the member that sent the data: "to the others").
  void publish(std::string_view data, MessageType type = MessageType::Text, const Session* except = nullptr);
  // Members over all loops (a snapshot: joins and leaves are counted as they
  // happen on their loops).
  std::size_t size() const noexcept;

 private:
  server::ServerCore& core_;
  std::shared_ptr<server::GroupState> state_;
};

}  // namespace conduit
