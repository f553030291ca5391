// ipcrpc fifo transport: FifoTransport's reading, writing and waiting
// (fifo_transport.h).

#include "transports/fifo/fifo_transport.h"

#include <errno.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "transports/fifo/sigpipe_block.h"

namespace ipcrpc::fifo {
namespace {

// How often Write asks the control socket whether the peer is still there.
constexpr std::chrono::milliseconds kControlCheckInterval(1);

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> FifoTransport::Create(
    ScopedFd read_fifo, ScopedFd write_fifo, std::unique_ptr<ControlChannel> control) {
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd wake, MakeEventFd());
  return std::unique_ptr<Transport>(new FifoTransport(std::move(read_fifo), std::move(write_fifo),
                                                     std::move(control), std::move(wake)));
}

absl::Status FifoTransport::CheckOpen() const {
  if (control_->is_shut_down()) {
    return absl::UnavailableError(absl::StrCat(description_, ": transport shut down"));
  }
  return control_->status();
}

absl::Status FifoTransport::PeerClosed() {
  control_->MarkPeerClosed();
  return CheckOpen();  // "shut down" wins if that is why the FIFO closed
}

absl::Status FifoTransport::CheckControl(short revents) {
  IPCRPC_RETURN_IF_ERROR(CheckOpen());
  IPCRPC_RETURN_IF_ERROR(control_->OnPollEvents(revents));
  return CheckOpen();
}

absl::Status FifoTransport::WaitWritable(absl::Time deadline) {
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(CheckOpen());
    pollfd fds[3] = {{write_fifo_.get(), POLLOUT, 0},
                     {control_->fd(), control_->poll_events(), 0},
                     {control_->doorbell_fd(), POLLIN, 0}};  // Shutdown()
    IPCRPC_RETURN_IF_ERROR(PollUntil(absl::MakeSpan(fds), deadline, description_).status());
    // Writable, or POLLERR (the reader is gone: writev will say EPIPE).
    if (fds[0].revents != 0) return absl::OkStatus();
    IPCRPC_RETURN_IF_ERROR(CheckControl(fds[1].revents));  // and the doorbell: CheckOpen
  }
}

absl::Status FifoTransport::Write(absl::Span<const absl::string_view> chunks,
                                  absl::Time deadline) {
  IPCRPC_RETURN_IF_ERROR(CheckOpen());
  // A peer that shut down but still holds its FIFO ends would let our bytes
  // pile up unread; its control socket tells (one poll, no waiting). Asked
  // at most once per kControlCheckInterval, so a stream of small writes does
  // not pay a syscall each; a peer that goes away in between is still seen
  // by the next check, a full FIFO (WaitWritable) or our reads.
  int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  int64_t last_ns = control_checked_ns_.load(std::memory_order_relaxed);
  if (last_ns == INT64_MIN ||
      now_ns - last_ns >= std::chrono::nanoseconds(kControlCheckInterval).count()) {
    IPCRPC_RETURN_IF_ERROR(control_->CheckNow());
    control_checked_ns_.store(now_ns, std::memory_order_relaxed);
  }

  IovecCursor left(chunks);
  if (left.done()) return absl::OkStatus();

  ScopedSigpipeBlock no_sigpipe;
  while (!left.done()) {
    ssize_t n = ::writev(write_fifo_.get(), left.iov(), left.iov_count());
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        IPCRPC_RETURN_IF_ERROR(WaitWritable(deadline));
        continue;
      }
      if (err == EPIPE) {
        no_sigpipe.ConsumeRaised();
        return PeerClosed();
      }
      return ErrnoStatus(err, absl::StrCat(description_, ": write"));
    }
    left.Advance(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> FifoTransport::Read(absl::Span<char> buffer, absl::Time deadline) {
  if (buffer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(description_, ": empty read buffer"));
  }
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(CheckOpen());
    ssize_t n = -1;
    errno = EAGAIN;
    if (!poll_before_read_) n = ::read(read_fifo_.get(), buffer.data(), buffer.size());
    poll_before_read_ = false;
    if (n > 0) {
      poll_before_read_ = static_cast<size_t>(n) < buffer.size();
      return static_cast<size_t>(n);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat(description_, ": read"));
    }
    // n == 0 means end-of-file -- or, on the client before the server's
    // Complete(), that no writer has opened the FIFO yet: Linux's read()
    // returns 0 for both. poll() tells them apart: it reports POLLHUP only
    // once a writer has come and gone, and keeps waiting while none ever did.
    pollfd fds[4] = {{read_fifo_.get(), POLLIN, 0},
                     {wake_.get(), POLLIN, 0},
                     {control_->fd(), control_->poll_events(), 0},
                     {control_->doorbell_fd(), POLLIN, 0}};  // Shutdown()
    IPCRPC_RETURN_IF_ERROR(PollUntil(absl::MakeSpan(fds), deadline, description_).status());
    if (fds[3].revents & POLLIN) continue;  // shut down: CheckOpen says so
    if (fds[1].revents & POLLIN) {
      DrainEventFd(wake_.get());
      return absl::AbortedError(absl::StrCat(description_, ": read interrupted"));
    }
    // Bytes first: what the peer wrote before it went is still delivered.
    if (fds[0].revents & POLLIN) continue;
    if (fds[0].revents & (POLLHUP | POLLERR)) return PeerClosed();
    IPCRPC_RETURN_IF_ERROR(CheckControl(fds[2].revents));
  }
}

void FifoTransport::Shutdown() {
  // Tells the peer (its poll sees end-of-file on the control socket) and
  // wakes our own blocked Read/Write (their poll sees the channel's
  // doorbell). The FIFO fds stay open until destruction: closing them here
  // would race with a thread inside read()/writev() on the same fd number.
  control_->Shutdown();
}

}  // namespace ipcrpc::fifo
