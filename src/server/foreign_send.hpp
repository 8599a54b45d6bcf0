// A message sent to a session from a thread that is not its loop's, already
// admitted against the session's send-queue cap and waiting in the loop's
// list until the loop queues it (Connection::send explains why).
#pragma once
#include <memory>
#include <string>

#include "conduit/message.hpp"

namespace conduit::server {

class Connection;

struct ForeignSend {
  std::shared_ptr<Connection> conn;
  std::string data;
  MessageType type;
  bool over_half;  // the sender was told SendStatus::Backpressure
};

}  // namespace conduit::server
