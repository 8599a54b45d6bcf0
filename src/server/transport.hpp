// How a connection's bytes meet its socket: plain TCP, or TLS over memory BIOs
// (server/tls.hpp). The connection's engine is the same for both; only these
// few operations differ, so a plain connection carries no TLS state at all
// (it uses one shared, stateless PlainTransport).
#pragma once
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "net/send_queue.hpp"

namespace conduit::server {

class Transport {
 public:
  enum class WriteStatus : std::uint8_t {
    Done,     // everything queued (and held by the transport) is on the wire
    Blocked,  // the socket is full: wait for writability (EPOLLOUT)
    Failed,   // err says why (EPROTO: a TLS failure, see last_error())
  };

  virtual ~Transport() = default;

  // Reads plaintext into buf: > 0 bytes, 0 at EOF (or TLS close_notify), -1
  // with err set (EAGAIN: nothing more for now; EPROTO: TLS failure).
  virtual long read(int fd, std::uint8_t* buf, std::size_t len, int& err) = 0;
  // Writes what queue holds, consuming it as it leaves; adds the bytes put on
  // the wire to written. iov is the loop's scratch array (SendQueue::max_iov).
  virtual WriteStatus write(int fd, net::SendQueue& queue, net::NodePool& pool, iovec* iov, std::uint64_t& written,
                            int& err) = 0;
  // Whether write_through() is available: the plain transport writes the
  // caller's bytes directly; TLS must encrypt them into records first.
  virtual bool writes_through() const noexcept { return false; }
  // One gather write of iov straight to the socket, for a connection with
  // nothing queued. Returns the bytes written (0 when the socket is full),
  // or -1 with err set.
  virtual long write_through(int fd, const iovec* iov, int count, int& err);
  // Bytes the transport itself still holds for the socket (TLS records).
  virtual bool has_pending_output() const noexcept { return false; }
  // True when a read shorter than asked means the socket is drained. TLS may
  // still hold decrypted records after a short read, so it says false.
  virtual bool short_read_drains() const noexcept { return true; }
  // True when close(2) alone ends the stream properly (plain TCP: the FIN
  // follows whatever the kernel still holds), so no shutdown is needed
  // right before it; TLS has its close_notify to send first.
  virtual bool close_ends_stream() const noexcept { return false; }
  // Ends our direction of the stream (TLS: close_notify first).
  virtual void shutdown_write(int fd) noexcept;
  virtual std::string_view last_error() const noexcept { return {}; }
};

using TransportPtr = std::unique_ptr<Transport>;

// The one plain transport, shared by every ws:// connection (it has no
// state): a plain connection holds no transport object of its own.
Transport& plain_transport() noexcept;

}  // namespace conduit::server
