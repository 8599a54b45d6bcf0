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

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace conduit::server {

class TlsState {
 public:
  TlsState(SSL* ssl, BIO* rbio, BIO* wbio) noexcept : ssl_(ssl), rbio_(rbio), wbio_(wbio) {}
  ~TlsState();
  TlsState(const TlsState&) = delete;
  TlsState& operator=(const TlsState&) = delete;

  // Plaintext into buf: > 0 bytes, 0 at EOF/close_notify, -1 with err set
  // (EAGAIN when the socket has nothing more, EPROTO on a TLS failure).
  long read(int fd, std::uint8_t* buf, std::size_t len, int& err);
  bool has_output() const noexcept;
  bool can_accept_plaintext() const noexcept;
  // Encrypts from the iovecs; returns plaintext bytes taken.
  std::size_t encrypt(const iovec* iov, int count);
  // Writes pending ciphertext; returns bytes written or -1 with err (EAGAIN = try later).
  long write_out(int fd, int& err);
  void shutdown_notify(int fd);
  const std::string& last_error() const noexcept { return last_error_; }

 private:
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
  std::unique_ptr<TlsState> new_session();

  SSL_CTX* ctx = nullptr;
};

}  // namespace conduit::server
