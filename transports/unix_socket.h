// ipcrpc: unix-domain socket and socketpair transports.
//
// UnixSocketTransport carries the byte stream over one connected AF_UNIX
// SOCK_STREAM socket: a connection accepted or made on a filesystem path or an
// abstract-namespace name, or one end of a socketpair. It can pass file
// descriptors (SCM_RIGHTS, at most kMaxFdsPerWrite per write) and reports the
// peer's pid/uid/gid from SO_PEERCRED.
//
// Addresses (see connect/address.h):
//   unix:/run/app.sock       a socket file; removed when the listener closes,
//                            and a stale file left by a crashed server is
//                            replaced (a live server's is not).
//   unix-abstract:app        Linux abstract namespace: no file at all.
//
// Thread-safety: as for every Transport (transport.h).
//
// Example:
//   auto pair = MakeSocketPair();          // two connected transports
//   auto listener = UnixSocketListener::Listen("unix:/tmp/x.sock");

#ifndef IPCRPC_TRANSPORTS_UNIX_SOCKET_H_
#define IPCRPC_TRANSPORTS_UNIX_SOCKET_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/sync.h"
#include "transports/transport.h"

namespace ipcrpc {

// SCM_MAX_FD: the most descriptors the kernel passes in one sendmsg.
inline constexpr int kMaxFdsPerWrite = 253;

class UnixSocketTransport final : public Transport {
 public:
  // Takes a connected AF_UNIX stream socket. `description` names it in errors.
  static absl::StatusOr<std::unique_ptr<UnixSocketTransport>> Create(
      ScopedFd socket, std::string description);
  // As above, with the peer's identity known by other means. (SO_PEERCRED on
  // a socketpair names the process that created the pair, so a parent that
  // spawns a worker states the worker's pid here.)
  static absl::StatusOr<std::unique_ptr<UnixSocketTransport>> Create(
      ScopedFd socket, std::string description, PeerCredentials peer);
  ~UnixSocketTransport() override;

  absl::Status Write(absl::Span<const absl::string_view> chunks,
                     absl::Time deadline) override;
  absl::StatusOr<size_t> Read(absl::Span<char> buffer,
                              absl::Time deadline) override;
  void Interrupt() override;
  void Shutdown() override;
  PeerCredentials peer() const override { return peer_; }
  std::string description() const override { return description_; }
  bool PeerGone() override;
  int readiness_fd() override { return socket_.get(); }
  void NoteReadable() override { poll_before_read_ = false; }
  bool ReadDrained() const override { return read_drained_; }

  // Gives up the socket (e.g. to hand it to an upgraded transport as its
  // liveness channel); this object is unusable afterwards.
  ScopedFd ReleaseSocket() { return std::move(socket_); }
  // A duplicate (close-on-exec) of the socket descriptor.
  absl::StatusOr<ScopedFd> DuplicateSocket() const;

  int max_fds_per_write() const override { return kMaxFdsPerWrite; }
  absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                            absl::Span<const int> fds,
                            absl::Time deadline) override;
  absl::StatusOr<size_t> ReadWithFds(absl::Span<char> buffer,
                                     std::vector<ScopedFd>* fds,
                                     absl::Time deadline) override;
  absl::StatusOr<size_t> ReadWithFdBatches(absl::Span<char> buffer,
                                           std::vector<FdBatch>* batches,
                                           absl::Time deadline) override;

 private:
  UnixSocketTransport(ScopedFd socket, std::string description, PeerCredentials peer);
  // Waits until the socket is ready for `events` (POLLIN/POLLOUT), the
  // deadline passes, or (for reads) Interrupt() is called.
  absl::Status WaitReady(short events, absl::Time deadline, bool interruptible);
  // One recvmsg (waiting as Read does); the descriptors that came with it go
  // to *batch (null: none are expected, and they are closed).
  absl::StatusOr<size_t> Receive(absl::Span<char> buffer, FdBatch* batch, absl::Time deadline);

  ScopedFd socket_;
  // Interrupt() sets `interrupted_`, and wakes a read that waits by
  // signalling the eventfd that read published in `waiting_wake_fd_`: the
  // waiting thread's own (one per thread, not one per connection, so a
  // connection costs one descriptor; a forked child makes its own). Publishing and signalling hold
  // `wake_mu_`, so a thread's eventfd is never signalled after its wait.
  std::atomic<bool> interrupted_{false};
  internal::Mutex wake_mu_;
  int waiting_wake_fd_ ABSL_GUARDED_BY(wake_mu_) = -1;
  std::string description_;
  PeerCredentials peer_;
  // Read side only (one reader at a time): the last read drained the socket,
  // so the next one will probably find it empty. It then polls first instead
  // of paying for a recvmsg that fails with EAGAIN (one syscall less per
  // message in a request/response exchange).
  bool poll_before_read_ = false;
  // The last read returned less than it asked for and no descriptors: a
  // stream recvmsg stops short only when no more bytes are queued, or after
  // bytes that carried descriptors (or, with SO_PASSCRED, which this
  // transport never sets, at bytes of another writer).
  bool read_drained_ = false;
};

// Two connected transports (socketpair), e.g. for tests or spawned workers.
absl::StatusOr<std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>>>
MakeSocketPair();

// Connects to "unix:PATH" or "unix-abstract:NAME" addresses.
class UnixSocketConnector final : public Connector {
 public:
  // `address` as in the header comment; INVALID_ARGUMENT if malformed.
  static absl::StatusOr<std::unique_ptr<UnixSocketConnector>> Create(
      absl::string_view address);
  absl::StatusOr<std::unique_ptr<Transport>> Connect(absl::Time deadline) override;
  // Connect, with the concrete type (for fd passing and ReleaseSocket).
  absl::StatusOr<std::unique_ptr<UnixSocketTransport>> ConnectSocket(absl::Time deadline);
  std::string target() const override { return address_; }

 private:
  UnixSocketConnector(std::string address, std::string sockaddr_path)
      : address_(std::move(address)), path_(std::move(sockaddr_path)) {}
  std::string address_;
  std::string path_;  // sun_path bytes; leading '\0' for abstract names
};

// Mode of a listening socket's file unless told otherwise: the owner only.
inline constexpr mode_t kDefaultSocketMode = 0600;

class UnixSocketListener final : public Listener {
 public:
  // A socket file gets `mode` before anyone can connect (it is set between
  // bind and listen); an abstract address has no file and no mode.
  static absl::StatusOr<std::unique_ptr<UnixSocketListener>> Listen(
      absl::string_view address, mode_t mode = kDefaultSocketMode);
  ~UnixSocketListener() override;

  absl::StatusOr<std::unique_ptr<Transport>> Accept() override;
  // Accept, with the concrete type.
  absl::StatusOr<std::unique_ptr<UnixSocketTransport>> AcceptSocket();
  void Close() override;
  std::string address() const override { return address_; }

 private:
  UnixSocketListener(std::string address, std::string path, ScopedFd socket,
                     ScopedFd wake, ino_t inode);
  void RemoveSocketFile();

  std::string address_;
  std::string path_;  // sun_path bytes
  ScopedFd socket_;
  ScopedFd wake_;
  // The socket file we created (0 for abstract names or once removed).
  std::atomic<ino_t> inode_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_UNIX_SOCKET_H_
