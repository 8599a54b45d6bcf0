// conduit::redis::Client: hiredis' async API driven by our own epoll adapter on
// the client's thread (Debian's hiredis 0.14 ships no poll/epoll adapter, and
// an adapter for someone else's loop would put Redis I/O on that loop).
//
// Invariants of the loop (all state below "loop-only" is touched only by the
// client's thread):
//   - hiredis contexts are freed only outside hiredis callbacks: a callback
//     that sees a failure records it in teardown_reason_, and the loop tears
//     the pair down after the callback returns. Freeing from inside a callback
//     would re-enter hiredis for the other connection while the first is
//     mid-dispatch.
//   - A command reaches hiredis only while the pair is up; otherwise its done
//     runs at once with "unavailable:". Nothing is held for a later connection.
//   - outstanding_ counts commands accepted by command() whose done has not
//     run yet; it is the bound on memory (Options::max_pending).
#include "redis/client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "ops/log.hpp"

namespace conduit::redis {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t wake_token = 0;

Reply copy_reply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
      break;
    default:
      out.type = Reply::Type::nil;
      break;
  }
  return out;
}

Reply error_reply(std::string text) {
  Reply r;
  r.type = Reply::Type::error;
  r.str = std::move(text);
  return r;
}

// hiredis records an error in the inner redisContext first and copies it to
// the async context only when it tears the connection down, so a connect
// callback sees it in ac->c alone.
std::string context_error(const redisAsyncContext* ac, const char* fallback) {
  if (ac == nullptr) return fallback;
  if (ac->c.err != 0 && ac->c.errstr[0] != '\0') return ac->c.errstr;
  if (ac->err != 0 && ac->errstr != nullptr && ac->errstr[0] != '\0') return ac->errstr;
  return fallback;
}

// Runs an application callback. It is called from inside hiredis (C code), so
// an exception must not escape it: it is logged and the client carries on.
template <class F>
void guarded(F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    ops::logger().error("event=redis_callback_error reason=\"{}\"", e.what());
  } catch (...) {
    ops::logger().error("event=redis_callback_error reason=\"unknown exception\"");
  }
}

}  // namespace

struct Client::Impl {
  enum class Role { command = 1, pubsub = 2 };
  enum class State { backoff, connecting, up, stopped };
  enum class SubPhase { handshake, subscribing, ready };

  // One hiredis connection and its registration in our epoll set.
  struct Conn {
    Impl* owner = nullptr;
    Role role = Role::command;
    redisAsyncContext* ac = nullptr;
    int fd = -1;
    bool want_read = false;
    bool want_write = false;
    bool registered = false;
    bool ready = false;  // command connection: AUTH/SELECT/PING answered
  };

  struct Op {
    enum class Kind { command, refuse, subscribe, unsubscribe };
    Kind kind = Kind::command;
    std::vector<std::string> args;  // command
    std::function<void(const Reply&)> done;
    std::string text;  // subscribe/unsubscribe: the channel; refuse: the error text
  };

  // The privdata of a command in flight inside hiredis.
  struct Pending {
    Impl* owner;
    std::function<void(const Reply&)> done;
  };

  Impl(Endpoint e, Options o, Events v) : endpoint(std::move(e)), options(o), events(std::move(v)) {
    cmd.owner = sub.owner = this;
    cmd.role = Role::command;
    sub.role = Role::pubsub;
  }

  Endpoint endpoint;
  Options options;
  Events events;

  // ---- shared between callers and the client's thread (mu) ----
  mutable std::mutex mu;
  std::vector<Op> queue;
  bool running = false;
  bool stopping = false;
  bool started = false;
  bool wake_pending = false;
  std::string last_error;

  std::atomic<bool> connected{false};
  std::atomic<std::size_t> outstanding{0};
  std::atomic<std::uint64_t> n_connects{0}, n_disconnects{0}, n_connect_failures{0}, n_commands{0}, n_writes{0},
      n_errors{0}, n_unavailable{0}, n_messages{0};

  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  int epfd = -1;
  int wakefd = -1;

  // ---- loop-only ----
  Conn cmd, sub;
  State state = State::backoff;
  SubPhase sub_phase = SubPhase::handshake;
  Clock::time_point deadline{};
  unsigned attempt = 0;
  bool outage_logged = false;
  std::optional<std::string> teardown_reason;
  std::string loss_reason;  // why in-flight commands lose their replies (during a teardown)
  std::set<std::string> channels;
  std::set<std::string> awaiting_subscribe;
  std::mt19937_64 rng{std::random_device{}()};

  // ---- callers' side ----
  void push(Op op) {
    std::unique_lock lock(mu);
    push_locked(std::move(op), lock);
  }
  // Queues op and wakes the loop if it is not already woken. Taking the lock
  // from the caller lets command() check `running` and queue atomically, so
  // nothing is queued after the loop's last drain.
  void push_locked(Op op, std::unique_lock<std::mutex>& lock) {
    bool wake = false;
    queue.push_back(std::move(op));
    if (!wake_pending) wake = wake_pending = true;
    int fd = wakefd;  // -1 before start(): the loop drains the queue when it starts
    lock.unlock();
    if (wake && fd >= 0) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
    }
  }

  // ---- completion ----
  void finish(std::function<void(const Reply&)>& done, const Reply& reply, bool counted = true) {
    if (reply.is_unavailable()) ++n_unavailable;
    if (done) {
      guarded([&] { done(reply); });
    }
    if (counted) --outstanding;
  }

  // ---- adapter hooks (hiredis calls them with ev.data = Conn*) ----
  void update_interest(Conn& c) {
    epoll_event ev{};
    ev.events = (c.want_read ? EPOLLIN : 0u) | (c.want_write ? EPOLLOUT : 0u);
    ev.data.u64 = static_cast<std::uint64_t>(c.role);
    int op = c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (::epoll_ctl(epfd, op, c.fd, &ev) == 0) {
      c.registered = true;
    } else {
      // Only possible with a bad fd or no memory: fail the connection rather
      // than wait forever for readiness that will never be reported.
      request_teardown(std::string("epoll_ctl failed: ") + std::strerror(errno));
    }
  }
  static void add_read(void* p) {
    auto* c = static_cast<Conn*>(p);
    if (!c->want_read) {
      c->want_read = true;
      c->owner->update_interest(*c);
    }
  }
  static void del_read(void* p) {
    auto* c = static_cast<Conn*>(p);
    if (c->want_read) {
      c->want_read = false;
      c->owner->update_interest(*c);
    }
  }
  static void add_write(void* p) {
    auto* c = static_cast<Conn*>(p);
    if (!c->want_write) {
      c->want_write = true;
      c->owner->update_interest(*c);
    }
  }
  static void del_write(void* p) {
    auto* c = static_cast<Conn*>(p);
    if (c->want_write) {
      c->want_write = false;
      c->owner->update_interest(*c);
    }
  }
  // hiredis is freeing the context (it closes the fd right after).
  static void cleanup(void* p) {
    auto* c = static_cast<Conn*>(p);
    if (c->registered) ::epoll_ctl(c->owner->epfd, EPOLL_CTL_DEL, c->fd, nullptr);
    c->registered = c->want_read = c->want_write = c->ready = false;
    c->fd = -1;
    c->ac = nullptr;
  }

  // ---- hiredis callbacks ----
  static void on_connect(const redisAsyncContext* ac, int status) {
    if (status == REDIS_OK) return;
    auto* c = static_cast<Conn*>(ac->data);
    c->owner->request_teardown("connect failed: " + context_error(ac, "unknown error"));
  }
  static void on_disconnect(const redisAsyncContext* ac, int /*status*/) {
    auto* c = static_cast<Conn*>(ac->data);
    c->owner->request_teardown(context_error(ac, "connection closed by the server"));
  }
  // A reply of the connection handshake (AUTH, SELECT, PING); privdata names
  // the step so a refusal says which one failed.
  static void on_handshake_reply(redisAsyncContext* ac, void* r, void* step) {
    auto* c = static_cast<Conn*>(ac->data);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr) return;  // the context is going away; the teardown says why
    Impl& self = *c->owner;
    const char* what = static_cast<const char*>(step);
    if (reply->type == REDIS_REPLY_ERROR) {
      self.request_teardown(std::string(what) + " failed: " + std::string(reply->str, reply->len));
      return;
    }
    if (std::strcmp(what, "PING") != 0) return;
    if (c->role == Role::command) {
      c->ready = true;
    } else {
      self.sub_phase = SubPhase::subscribing;
      self.awaiting_subscribe = self.channels;
      for (const auto& ch : self.channels) self.send_subscription("SUBSCRIBE", ch);
      if (self.awaiting_subscribe.empty()) self.sub_phase = SubPhase::ready;
    }
    self.check_up();
  }
  static void on_command_reply(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
    Impl& self = *p->owner;
    if (r == nullptr) {
      std::string why = self.loss_reason.empty() ? context_error(ac, "connection closed") : self.loss_reason;
      self.finish(p->done,
                  error_reply(why == "stopping" ? "unavailable: stopping"
                                                : "unavailable: connection lost before the reply (" + why + ")"));
      return;
    }
    Reply reply = copy_reply(static_cast<redisReply*>(r));
    if (reply.type == Reply::Type::error) ++self.n_errors;
    self.finish(p->done, reply);
  }
  // Every reply on the subscribed connection: subscribe/unsubscribe
  // confirmations and messages (hiredis routes them by channel name).
  static void on_subscription_reply(redisAsyncContext*, void* r, void* privdata) {
    auto* reply = static_cast<redisReply*>(r);
    auto& self = *static_cast<Impl*>(privdata);
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    const redisReply* channel = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
    std::string_view k(kind->str, kind->len);
    if (k == "message") {
      const redisReply* payload = reply->element[2];
      if (payload->type != REDIS_REPLY_STRING) return;
      ++self.n_messages;
      if (self.events.on_message) {
        guarded([&] {
          self.events.on_message(std::string(channel->str, channel->len), std::string(payload->str, payload->len));
        });
      }
    } else if (k == "subscribe" && self.sub_phase == SubPhase::subscribing) {
      self.awaiting_subscribe.erase(std::string(channel->str, channel->len));
      if (self.awaiting_subscribe.empty()) {
        self.sub_phase = SubPhase::ready;
        self.check_up();
      }
    } else if (k == "subscribe" && self.sub_phase == SubPhase::ready && self.events.on_subscribed) {
      guarded([&] { self.events.on_subscribed(std::string(channel->str, channel->len)); });
    }
  }

  // ---- connection lifecycle (client's thread) ----
  void request_teardown(std::string reason) {
    if (!teardown_reason && state != State::backoff) teardown_reason = std::move(reason);
  }

  void send_subscription(const char* verb, const std::string& channel) {
    if (sub.ac == nullptr) return;
    const char* argv[2] = {verb, channel.data()};
    std::size_t lens[2] = {std::strlen(verb), channel.size()};
    if (redisAsyncCommandArgv(sub.ac, on_subscription_reply, this, 2, argv, lens) != REDIS_OK)
      request_teardown(std::string(verb) + " could not be queued");
  }

  bool open(Conn& c, std::string& error) {
    redisAsyncContext* ac = redisAsyncConnect(endpoint.host.c_str(), endpoint.port);
    if (ac == nullptr) {
      error = "connect failed: out of memory";
      return false;
    }
    if (ac->err != 0) {
      error = "connect failed: " + context_error(ac, "unknown error");
      redisAsyncFree(ac);
      return false;
    }
    c.ac = ac;
    c.fd = ac->c.fd;
    c.ready = false;
    ac->data = &c;
    ac->ev.data = &c;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    // Set after the hooks: hiredis asks for writability here to learn when the
    // non-blocking connect completes.
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    // The handshake is pipelined behind the connect: hiredis buffers it until
    // the socket is writable.
    static const char auth[] = "AUTH", select[] = "SELECT", ping[] = "PING";
    if (!endpoint.password.empty()) {
      const char* argv[2] = {"AUTH", endpoint.password.data()};
      std::size_t lens[2] = {4, endpoint.password.size()};
      redisAsyncCommandArgv(ac, on_handshake_reply, const_cast<char*>(auth), 2, argv, lens);
    }
    if (c.role == Role::command && endpoint.db != 0) {
      std::string db = std::to_string(endpoint.db);
      const char* argv[2] = {"SELECT", db.data()};
      std::size_t lens[2] = {6, db.size()};
      redisAsyncCommandArgv(ac, on_handshake_reply, const_cast<char*>(select), 2, argv, lens);
    }
    const char* argv[1] = {"PING"};
    std::size_t lens[1] = {4};
    redisAsyncCommandArgv(ac, on_handshake_reply, const_cast<char*>(ping), 1, argv, lens);
    return true;
  }

  void begin_connect() {
    state = State::connecting;
    deadline = Clock::now() + options.connect_timeout;
    sub_phase = SubPhase::handshake;
    awaiting_subscribe.clear();
    std::string error;
    if (!open(cmd, error) || !open(sub, error)) request_teardown(error);
  }

  void check_up() {
    if (state != State::connecting || !cmd.ready || sub_phase != SubPhase::ready || teardown_reason) return;
    state = State::up;
    attempt = 0;
    outage_logged = false;
    ++n_connects;
    connected = true;
    ops::logger().info("event=redis_connected host={} port={} db={} channels={}", endpoint.host, endpoint.port,
                       endpoint.db, channels.size());
    if (events.on_connected) {
      guarded([&] { events.on_connected(); });
    }
  }

  std::chrono::milliseconds next_backoff() {
    auto ceiling = options.backoff_initial;
    for (unsigned i = 0; i < attempt && ceiling < options.backoff_max; ++i) ceiling *= 2;
    ceiling = std::min(ceiling, options.backoff_max);
    ++attempt;
    std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(ceiling.count(), 0));
    return std::chrono::milliseconds(pick(rng));
  }

  // Frees both connections (outside any hiredis callback). In-flight commands
  // are answered "unavailable:" by hiredis calling their callbacks with NULL.
  void free_connections(const std::string& reason) {
    loss_reason = reason;
    connected = false;
    if (cmd.ac != nullptr) redisAsyncFree(cmd.ac);
    if (sub.ac != nullptr) redisAsyncFree(sub.ac);
    loss_reason.clear();
  }

  void apply_teardown() {
    if (!teardown_reason) return;
    std::string reason = std::move(*teardown_reason);
    State was = state;
    free_connections(reason);
    teardown_reason.reset();  // the frees above report their own disconnects: ignore them
    state = State::backoff;
    auto delay = next_backoff();
    deadline = Clock::now() + delay;
    {
      std::lock_guard lock(mu);
      last_error = reason;
    }
    if (was == State::up) {
      ++n_disconnects;
      ops::logger().warn("event=redis_disconnected host={} port={} reason=\"{}\"", endpoint.host, endpoint.port,
                         reason);
      outage_logged = true;
      if (events.on_disconnected) {
        guarded([&] { events.on_disconnected(reason); });
      }
    } else {
      ++n_connect_failures;
      // One warning per outage, then debug lines: a long outage must not
      // flood the log with one line per retry.
      if (!outage_logged)
        ops::logger().warn("event=redis_connect_failed host={} port={} reason=\"{}\" retry_in_ms={}", endpoint.host,
                           endpoint.port, reason, delay.count());
      else
        ops::logger().debug("event=redis_connect_failed host={} port={} reason=\"{}\" retry_in_ms={}", endpoint.host,
                            endpoint.port, reason, delay.count());
      outage_logged = true;
      if (events.on_connect_failed) {
        guarded([&] { events.on_connect_failed(reason); });
      }
    }
  }

  void send_command(Op& op) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(op.args.size());
    lens.reserve(op.args.size());
    for (const auto& a : op.args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* p = new Pending{this, std::move(op.done)};
    if (op.args.empty() || redisAsyncCommandArgv(cmd.ac, on_command_reply, p, static_cast<int>(argv.size()),
                                                 argv.data(), lens.data()) != REDIS_OK) {
      std::unique_ptr<Pending> owned(p);
      Reply r = error_reply(op.args.empty() ? "ERR empty command" : "ERR command could not be queued");
      ++n_errors;
      finish(owned->done, r);
      return;
    }
    ++n_commands;
  }

  // Runs what callers queued since the last iteration. Returns true when
  // stop() was requested.
  bool drain_queue() {
    std::vector<Op> ops_now;
    bool stop_now;
    {
      std::lock_guard lock(mu);
      ops_now.swap(queue);
      wake_pending = false;
      stop_now = stopping;
    }
    for (auto& op : ops_now) {
      switch (op.kind) {
        case Op::Kind::command:
          if (stop_now) {
            finish(op.done, error_reply("unavailable: stopping"));
          } else if (state == State::up && !teardown_reason && cmd.ac != nullptr) {
            send_command(op);
          } else {
            std::string why;
            {
              std::lock_guard lock(mu);
              why = last_error.empty() ? "connecting" : last_error;
            }
            finish(op.done, error_reply("unavailable: not connected to Redis (" + why + ")"));
          }
          break;
        case Op::Kind::refuse:
          finish(op.done, error_reply(op.text), /*counted=*/false);
          break;
        case Op::Kind::subscribe:
          if (channels.insert(op.text).second && sub_phase != SubPhase::handshake) {
            if (sub_phase == SubPhase::subscribing) awaiting_subscribe.insert(op.text);
            send_subscription("SUBSCRIBE", op.text);
          }
          break;
        case Op::Kind::unsubscribe:
          if (channels.erase(op.text) > 0 && sub_phase != SubPhase::handshake) {
            awaiting_subscribe.erase(op.text);
            send_subscription("UNSUBSCRIBE", op.text);
            if (sub_phase == SubPhase::subscribing && awaiting_subscribe.empty()) {
              sub_phase = SubPhase::ready;
              check_up();
            }
          }
          break;
      }
    }
    return stop_now;
  }

  void dispatch(std::uint64_t token, std::uint32_t events_mask) {
    if (token == wake_token) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(wakefd, &n, sizeof n);
      return;
    }
    Conn& c = token == static_cast<std::uint64_t>(Role::command) ? cmd : sub;
    if (c.ac != nullptr && (events_mask & (EPOLLIN | EPOLLERR | EPOLLHUP))) redisAsyncHandleRead(c.ac);
    if (c.ac != nullptr && c.want_write && (events_mask & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      if (c.role == Role::command) ++n_writes;
      redisAsyncHandleWrite(c.ac);
    }
  }

  void run() {
    thread_id = std::this_thread::get_id();
    epoll_event evs[8];
    begin_connect();  // the first attempt is immediate
    while (true) {
      apply_teardown();
      if (drain_queue()) break;
      apply_teardown();
      int timeout = -1;
      if (state == State::backoff || state == State::connecting) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        timeout = static_cast<int>(std::clamp<std::int64_t>(left, 0, 60'000));
      }
      int n = ::epoll_wait(epfd, evs, 8, timeout);
      if (n < 0 && errno != EINTR) {
        ops::logger().error("event=redis_loop_error reason=\"epoll_wait: {}\"", std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) dispatch(evs[i].data.u64, evs[i].events);
      apply_teardown();
      auto now = Clock::now();
      if (state == State::connecting && now >= deadline) request_teardown("connect timeout");
      apply_teardown();
      if (state == State::backoff && now >= deadline) begin_connect();
    }
    // Stopping: everything unanswered gets "unavailable: stopping".
    State was = state;
    teardown_reason.reset();
    free_connections("stopping");
    state = State::stopped;
    drain_queue();
    if (was == State::up) {
      ++n_disconnects;
      ops::logger().info("event=redis_disconnected host={} port={} reason=\"stopping\"", endpoint.host, endpoint.port);
      if (events.on_disconnected) {
        guarded([&] { events.on_disconnected("stopping"); });
      }
    }
  }
};

Client::Client(Endpoint endpoint, Options options, Events events)
    : impl_(std::make_unique<Impl>(std::move(endpoint), options, std::move(events))) {}

Client::~Client() {
  if (impl_->thread.joinable() && std::this_thread::get_id() == impl_->thread_id.load()) {
    // Destroyed from its own callback: the thread would run on freed memory.
    ops::logger().critical("event=redis_misuse reason=\"redis::Client destroyed from its own callback\"");
    std::terminate();
  }
  stop();
  if (impl_->epfd >= 0) ::close(impl_->epfd);
  if (impl_->wakefd >= 0) ::close(impl_->wakefd);
}

void Client::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) throw std::logic_error("redis::Client::start: already started (a client starts once)");
  impl_->epfd = ::epoll_create1(EPOLL_CLOEXEC);
  impl_->wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->epfd < 0 || impl_->wakefd < 0)
    throw std::runtime_error(std::string("redis::Client::start: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_token;
  if (::epoll_ctl(impl_->epfd, EPOLL_CTL_ADD, impl_->wakefd, &ev) != 0)
    throw std::runtime_error(std::string("redis::Client::start: ") + std::strerror(errno));
  impl_->started = impl_->running = true;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void Client::stop() {
  if (!impl_->thread.joinable()) return;
  if (std::this_thread::get_id() == impl_->thread_id.load())
    throw std::logic_error("redis::Client::stop called from a callback on the client's thread");
  {
    std::lock_guard lock(impl_->mu);
    impl_->running = false;
    impl_->stopping = true;
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(impl_->wakefd, &one, sizeof one);
  impl_->thread.join();
}

bool Client::connected() const noexcept { return impl_->connected.load(); }

Counters Client::counters() const noexcept {
  Counters c;
  c.connects = impl_->n_connects;
  c.disconnects = impl_->n_disconnects;
  c.connect_failures = impl_->n_connect_failures;
  c.commands = impl_->n_commands;
  c.writes = impl_->n_writes;
  c.errors = impl_->n_errors;
  c.unavailable = impl_->n_unavailable;
  c.messages = impl_->n_messages;
  return c;
}

std::string Client::last_error() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_error;
}

void Client::command(std::vector<std::string> args, std::function<void(const Reply&)> done) {
  Impl& s = *impl_;
  std::unique_lock lock(s.mu);
  if (!s.running) {
    lock.unlock();
    ++s.n_unavailable;
    if (done) done(error_reply("unavailable: client not running"));
    return;
  }
  Impl::Op op;
  if (s.outstanding.fetch_add(1) >= s.options.max_pending) {
    --s.outstanding;
    op.kind = Impl::Op::Kind::refuse;
    op.text = "unavailable: too many pending commands (max_pending=" + std::to_string(s.options.max_pending) + ")";
  } else {
    op.kind = Impl::Op::Kind::command;
    op.args = std::move(args);
  }
  op.done = std::move(done);
  s.push_locked(std::move(op), lock);
}

void Client::subscribe(std::string channel) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::subscribe;
  op.text = std::move(channel);
  impl_->push(std::move(op));
}

void Client::unsubscribe(std::string channel) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::unsubscribe;
  op.text = std::move(channel);
  impl_->push(std::move(op));
}

}  // namespace conduit::redis
