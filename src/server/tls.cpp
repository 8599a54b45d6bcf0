#include "server/tls.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <stdexcept>

namespace conduit::server {
namespace {
// Ciphertext we are willing to hold for one connection before we stop
// encrypting more of its queue (the queue then applies its own policy).
constexpr std::size_t kMaxPendingCiphertext = 256 * 1024;

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}
}  // namespace

TlsContext::TlsContext(const TlsOptions& o) {
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) throw std::runtime_error("cannot create TLS context: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // TLS 1.2: forward-secret AEAD suites only; TLS 1.3 suites are OpenSSL's defaults.
  SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
    std::string err = openssl_error();
    SSL_CTX_free(ctx);
    throw std::runtime_error("tls.cert: cannot load certificate '" + o.cert_file + "': " + err);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string err = openssl_error();
    SSL_CTX_free(ctx);
    throw std::runtime_error("tls.key: cannot load private key '" + o.key_file + "': " + err);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    std::string err = openssl_error();
    SSL_CTX_free(ctx);
    throw std::runtime_error("tls.key: private key does not match tls.cert: " + err);
  }
}

TlsContext::~TlsContext() {
  if (ctx) SSL_CTX_free(ctx);
}

TransportPtr TlsContext::new_session() {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return nullptr;
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  if (!rbio || !wbio) {
    if (rbio) BIO_free(rbio);
    if (wbio) BIO_free(wbio);
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_mem_eof_return(rbio, -1);  // "no data yet", not EOF
  SSL_set_bio(ssl, rbio, wbio);      // ssl owns both
  SSL_set_accept_state(ssl);
  return TransportPtr(new TlsTransport(ssl, rbio, wbio));
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

long TlsTransport::read(int fd, std::uint8_t* buf, std::size_t len, int& err) {
  for (;;) {
    int n = SSL_read(ssl_, buf, static_cast<int>(len > INT_MAX ? INT_MAX : len));
    if (n > 0) return n;
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) {
      std::uint8_t cipher[16384];
      ssize_t r = ::recv(fd, cipher, sizeof cipher, 0);
      if (r > 0) {
        BIO_write(rbio_, cipher, static_cast<int>(r));
        continue;
      }
      if (r == 0) return 0;
      if (errno == EINTR) continue;
      err = errno;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_WANT_WRITE) continue;  // memory BIO: cannot really block
    last_error_ = openssl_error();
    err = EPROTO;
    return -1;
  }
}

void TlsTransport::collect_output() {
  std::size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) return;
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  std::size_t old = out_.size();
  out_.resize(old + pending);
  int got = BIO_read(wbio_, out_.data() + old, static_cast<int>(pending));
  out_.resize(old + (got > 0 ? static_cast<std::size_t>(got) : 0));
}

bool TlsTransport::has_pending_output() const noexcept { return out_off_ < out_.size() || BIO_ctrl_pending(wbio_) > 0; }

bool TlsTransport::can_accept_plaintext() const noexcept {
  return SSL_is_init_finished(ssl_) && (out_.size() - out_off_) + BIO_ctrl_pending(wbio_) < kMaxPendingCiphertext;
}

std::size_t TlsTransport::encrypt(const iovec* iov, int count) {
  std::size_t taken = 0;
  for (int i = 0; i < count && can_accept_plaintext(); ++i) {
    int n = SSL_write(ssl_, iov[i].iov_base, static_cast<int>(iov[i].iov_len));
    if (n <= 0) break;
    taken += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < iov[i].iov_len) break;
  }
  return taken;
}

long TlsTransport::write_out(int fd, int& err) {
  long total = 0;
  for (;;) {
    if (out_off_ == out_.size()) {
      collect_output();
      if (out_off_ == out_.size()) return total;
    }
    ssize_t n = ::send(fd, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (n > 0) {
      out_off_ += static_cast<std::size_t>(n);
      total += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    err = n < 0 ? errno : EPIPE;
    if (err == EAGAIN || err == EWOULDBLOCK) return total > 0 ? total : -1;
    return -1;
  }
}

Transport::WriteStatus TlsTransport::write(int fd, net::SendQueue& queue, net::NodePool& pool, iovec* iov,
                                           std::uint64_t& written, int& err) {
  for (;;) {
    std::size_t taken = 0;
    while (!queue.empty() && can_accept_plaintext()) {
      int cnt = queue.gather(iov, 64);
      std::size_t n = encrypt(iov, cnt);
      if (n == 0) break;
      queue.consume(pool, n);
      taken += n;
    }
    long sent = write_out(fd, err);
    if (sent < 0) return err == EAGAIN || err == EWOULDBLOCK ? WriteStatus::Blocked : WriteStatus::Failed;
    written += static_cast<std::uint64_t>(sent);
    if (has_pending_output()) continue;
    if (queue.empty()) return WriteStatus::Done;
    if (taken == 0 && sent == 0) {
      // OpenSSL took none of the queue and has nothing to send: retrying
      // would spin. Only a broken session gets here.
      last_error_ = openssl_error();
      err = EPROTO;
      return WriteStatus::Failed;
    }
  }
}

void TlsTransport::shutdown_write(int fd) noexcept {
  SSL_shutdown(ssl_);
  int err = 0;
  write_out(fd, err);
  Transport::shutdown_write(fd);
}

}  // namespace conduit::server
