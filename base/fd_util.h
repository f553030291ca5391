// ipcrpc: small descriptor helpers every transport uses.
//
// Waking a blocked poll() (an eventfd), turning a deadline into a poll()
// timeout, reading a unix socket's peer credentials, and keeping track of a
// gather write (writev / sendmsg) that the kernel took only in part, each
// written once.
//
// Thread-safety: free functions; SignalEventFd/DrainEventFd may race on the
// same eventfd (that is their purpose). An IovecCursor is used by one thread.

#ifndef IPCRPC_BASE_FD_UTIL_H_
#define IPCRPC_BASE_FD_UTIL_H_

#include <poll.h>
#include <sys/uio.h>

#include <cstddef>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/peer_credentials.h"
#include "base/scoped_fd.h"

namespace ipcrpc {

// A non-blocking, close-on-exec eventfd.
absl::StatusOr<ScopedFd> MakeEventFd();
// Makes the eventfd readable (wakes whoever polls it).
void SignalEventFd(int fd);
// Consumes every pending signal of the eventfd.
void DrainEventFd(int fd);

// poll() timeout in milliseconds until `deadline`: -1 for none, rounded up
// so that a deadline is never reported early.
int PollTimeoutMs(absl::Time deadline);

// poll() until something in `fds` is ready or `deadline` passes: retries
// EINTR, and polls again when poll()'s rounding returned before `deadline`.
// Returns how many fds have events (> 0); otherwise DEADLINE_EXCEEDED
// "<what>: deadline exceeded" or the poll error ("<what>: poll").
absl::StatusOr<int> PollUntil(absl::Span<pollfd> fds, absl::Time deadline,
                              absl::string_view what);

// pid/uid/gid of the process at the other end of a connected unix socket
// (SO_PEERCRED). INVALID_ARGUMENT, naming the fd, if `fd` is not one.
absl::StatusOr<PeerCredentials> SocketPeerCredentials(int fd);

// What is left of a gather write. Built from the chunks to send (empty ones
// are skipped; the chunks' bytes must outlive the cursor); after each call
// that wrote `n` bytes, Advance(n) drops what was written, so that the next
// call starts where the kernel stopped.
//
//   IovecCursor left(chunks);
//   while (!left.done()) {
//     ssize_t n = ::writev(fd, left.iov(), left.iov_count());
//     if (n < 0) { ... EINTR / EAGAIN: wait, continue; else fail ... }
//     left.Advance(static_cast<size_t>(n));
//   }
class IovecCursor {
 public:
  // At most this many iovecs are handed to one call (IOV_MAX is 1024).
  static constexpr int kMaxIovecsPerCall = 64;

  explicit IovecCursor(absl::Span<const absl::string_view> chunks);
  IovecCursor(const IovecCursor&) = delete;
  IovecCursor& operator=(const IovecCursor&) = delete;

  // True once every byte was written (at once if all chunks were empty).
  bool done() const { return first_ == iov_.size(); }
  // The first unwritten iovec and how many to pass (<= kMaxIovecsPerCall).
  // Only while !done().
  iovec* iov() { return &iov_[first_]; }
  int iov_count() const;
  // `written` bytes of iov()[0 .. iov_count()) were written: skips the
  // iovecs written whole and trims the one written in part.
  void Advance(size_t written);

 private:
  absl::InlinedVector<iovec, 4> iov_;
  size_t first_ = 0;  // iov_[first_] is the first not written whole
};

}  // namespace ipcrpc

#endif  // IPCRPC_BASE_FD_UTIL_H_
