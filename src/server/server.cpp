// conduit::Server and conduit::Group: the public faces of ServerCore.
#include "conduit/server.hpp"

#include <stdexcept>

#include "conduit/group.hpp"
#include "server/connection.hpp"
#include "server/server_core.hpp"

namespace conduit {

struct Server::Impl {
  Impl(ServerOptions o, ServerHandlers h) : core(std::move(o), std::move(h)) {}
  server::ServerCore core;
};

Server::Server(ServerOptions options, ServerHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handlers))) {}
Server::~Server() = default;
void Server::start() { impl_->core.start(); }
void Server::stop() { impl_->core.stop(); }
void Server::abort() { impl_->core.abort(); }
void Server::wait() { impl_->core.wait(); }
std::uint16_t Server::port() const noexcept { return impl_->core.port(); }
std::uint16_t Server::metrics_port() const noexcept { return impl_->core.metrics_port(); }
bool Server::draining() const noexcept { return impl_->core.draining(); }
std::size_t Server::connection_count() const noexcept { return impl_->core.open_count(); }
void Server::broadcast(std::string_view data, MessageType type) {
  impl_->core.publish(impl_->core.everyone(), data, type);
}
std::string Server::metrics_text() const { return impl_->core.metrics_text(); }
void Server::add_route(HttpRoute route) { impl_->core.add_route(std::move(route)); }
void Server::add_end_of_batch_hook(std::function<void(unsigned)> hook) {
  impl_->core.add_end_of_batch_hook(std::move(hook));
}
void Server::add_close_hook(std::function<void(Session&)> hook) { impl_->core.add_close_hook(std::move(hook)); }
void Server::add_metrics_source(std::function<void(std::string&)> append) {
  impl_->core.add_metrics_source(std::move(append));
}

void Server::add_readiness_check(std::function<std::string()> check) {
  impl_->core.add_readiness_check(std::move(check));
}
unsigned Server::loop_count() const noexcept { return static_cast<unsigned>(impl_->core.loops().size()); }
bool Server::post(unsigned loop_index, std::function<void()> fn) { return impl_->core.post(loop_index, std::move(fn)); }
bool Server::post_to_all_loops(std::function<void(unsigned)> fn) {
  for (unsigned i = 0; i < loop_count(); ++i) {
    if (!impl_->core.post(i, [fn, i] { fn(i); })) return false;
  }
  return true;
}

server::ServerCore& server::core_of(Server& s) { return s.impl_->core; }

// ---------------------------------------------------------------- Group

namespace {
server::Connection& connection_of(Session& s) {
  // Every Session the server hands out is one of its connections.
  auto* c = dynamic_cast<server::Connection*>(&s);
  if (!c) throw std::invalid_argument("conduit::Group: not a session of a conduit::Server");
  return *c;
}
}  // namespace

Group::Group(Server& server)
    : core_(server.impl_->core), state_(std::make_shared<server::GroupState>(server.impl_->core.loops().size())) {}

Group::~Group() = default;

void Group::join(Session& session) {
  server::Connection& c = connection_of(session);
  if (c.on_own_loop()) {
    c.join(state_);
    return;
  }
  core_.post(c.loop_index(), [conn = c.shared_from_this(), state = state_] { conn->join(state); });
}

void Group::leave(Session& session) {
  server::Connection& c = connection_of(session);
  if (c.on_own_loop()) {
    c.leave(*state_);
    return;
  }
  core_.post(c.loop_index(), [conn = c.shared_from_this(), state = state_] { conn->leave(*state); });
}

void Group::publish(std::string_view data, MessageType type, const Session* except) {
  core_.publish(state_, data, type, except);
}

std::size_t Group::size() const noexcept { return state_->members.load(std::memory_order_relaxed); }

}  // namespace conduit
