// Graceful shutdown on SIGTERM / SIGINT for applications, the way conduitd
// does it. The library itself never touches signals; this helper is opt-in.
//
//   int main() {
//     conduit::Server server(options, std::move(handlers));
//     conduit::ShutdownOnSignal shutdown([&](int) { server.stop(); });  // BEFORE start()
//     server.start();
//     server.wait();  // returns once stop() has drained the sessions
//   }
//
// The first SIGTERM or SIGINT calls the callback once, on the helper's own
// thread (Server::stop() and Client::close() are safe from any thread). A
// second one ends the process at once with std::_Exit(130) (no destructors,
// no draining): the operator's "stop now".
//
// Why it must be constructed before start() (and before any other thread is
// created): the signals are taken by blocking them and reading them from a
// signalfd, and a thread's signal mask is inherited only by threads created
// after it is set. Blocking in main() after start() leaves the loop threads
// with SIGTERM unblocked, so the kernel delivers the signal to one of them and
// its default action kills the process: no drain, no close frames, and
// nothing logged. The constructor blocks SIGTERM and SIGINT in the calling
// thread; every thread started afterwards inherits the mask. They stay blocked
// after destruction (a signal arriving during teardown is then ignored rather
// than killing a half-destroyed process).
#pragma once
#include <functional>
#include <memory>

namespace conduit {

class ShutdownOnSignal {
 public:
  // on_first(signo) runs on the helper's thread for the first SIGTERM/SIGINT.
  // Throws std::system_error if the signalfd or the thread cannot be created.
  explicit ShutdownOnSignal(std::function<void(int signo)> on_first);
  // Stops the helper's thread (signals stay blocked). Not from on_first itself.
  ~ShutdownOnSignal();
  ShutdownOnSignal(const ShutdownOnSignal&) = delete;
  ShutdownOnSignal& operator=(const ShutdownOnSignal&) = delete;

  // The first signal received, 0 while none has arrived.
  int received() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit
