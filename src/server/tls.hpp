// TLS for the readiness-driven engine: OpenSSL over memory BIOs, so the same
// read-into-the-loop-buffer and gather-write paths serve ws:// and wss://.
// Ciphertext is read from the socket by us and handed to OpenSSL; what
// OpenSSL produces is written by us, with its pending output bounded.
#pragma once
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "conduit/options.hpp"
#include "server/transport.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace conduit::server {

class TlsTransport final : public Transport {
 public:
  TlsTransport(SSL* ssl, BIO* rbio, BIO* wbio) noexcept : ssl_(ssl), rbio_(rbio), wbio_(wbio) {}
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  long read(int fd, std::uint8_t* buf, std::size_t len, int& err) override;
  // Encrypts what the queue holds (bounded by the ciphertext cap) and writes
  // the ciphertext, until both are empty or the socket is full.
  WriteStatus write(int fd, net::SendQueue& queue, net::NodePool& pool, iovec* iov, std::uint64_t& written,
                    int& err) override;
  bool has_pending_output() const noexcept override;
  bool short_read_drains() const noexcept override { return false; }
  void shutdown_write(int fd) noexcept override;
  std::string_view last_error() const noexcept override { return last_error_; }

 private:
  bool can_accept_plaintext() const noexcept;
  // Encrypts from the iovecs; returns plaintext bytes taken.
  std::size_t encrypt(const iovec* iov, int count);
  // Writes pending ciphertext; returns bytes written or -1 with err (EAGAIN = try later).
  long write_out(int fd, int& err);
  void collect_output();
  SSL* ssl_;
  BIO* rbio_;
  BIO* wbio_;
  std::string out_;
  std::size_t out_off_ = 0;
  std::string last_error_;
};

struct TlsContext {
  // Throws std::runtime_error naming the file and OpenSSL's reason.
  explicit TlsContext(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  // A TLS session for one accepted connection, or nullptr when OpenSSL cannot make one.
  TransportPtr new_session();

  SSL_CTX* ctx = nullptr;
};

}  // namespace conduit::server
