// ipcrpc msgq transport: MsgqTransport's reading and writing
// (msgq_transport.h; shutdown, deadlines and queue removal are in
// msgq_shutdown.cc).

#include "transports/msgq/msgq_transport.h"

#include <errno.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/time/clock.h"
#include "base/status_macros.h"

namespace ipcrpc {
namespace msgq {

absl::StatusOr<std::unique_ptr<Transport>> MsgqTransport::Start(Config config) {
  std::unique_ptr<MsgqTransport> t(new MsgqTransport(std::move(config)));
  ControlChannel::WatchHooks hooks;
  MsgqTransport* raw = t.get();
  hooks.on_peer_lost = [raw] { raw->OnPeerClosed(); };
  hooks.next_timer = [raw] { return raw->NextTimer(); };
  hooks.on_timer = [raw](absl::Time now) { raw->OnTimer(now); };
  // On failure (RESOURCE_EXHAUSTED) the destructor removes both queues.
  IPCRPC_RETURN_IF_ERROR(t->control_->StartWatcher(std::move(hooks)));
  return std::unique_ptr<Transport>(std::move(t));
}

MsgqTransport::MsgqTransport(Config config)
    : send_id_(config.send_id),
      recv_id_(config.recv_id),
      send_fragment_(config.send_fragment),
      recv_fragment_(config.recv_fragment),
      control_(std::move(config.control)),
      description_(control_->description()),
      send_buffer_(config.send_fragment),
      recv_buffer_(config.recv_fragment) {}

// --- Reading ---------------------------------------------------------------

absl::StatusOr<size_t> MsgqTransport::Read(absl::Span<char> buffer, absl::Time deadline) {
  if (buffer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(description_, ": empty read buffer"));
  }
  if (shutdown_) return ShutDownError();
  if (pending_size_ > 0) return CopyPending(buffer);
  bool armed = false;
  absl::StatusOr<size_t> result = ReadFragment(buffer, deadline, &armed);
  if (armed) DisarmReadDeadline();
  return result;
}

size_t MsgqTransport::CopyPending(absl::Span<char> buffer) {
  size_t n = std::min(buffer.size(), pending_size_);
  std::memcpy(buffer.data(), recv_buffer_.text() + pending_offset_, n);
  pending_offset_ += n;
  pending_size_ -= n;
  return n;
}

absl::StatusOr<size_t> MsgqTransport::ReadFragment(absl::Span<char> buffer,
                                                   absl::Time deadline, bool* armed) {
  // First look without sleeping; sleep only after deciding that nothing
  // (interrupt, deadline, peer gone) says to return instead.
  int flags = IPC_NOWAIT;
  for (;;) {
    if (recv_removed_) return shutdown_ ? ShutDownError() : PeerClosedError();
    ssize_t n = ::msgrcv(recv_id_, recv_buffer_.raw(), recv_fragment_, -kWakeType, flags);
    if (n > 0 && recv_buffer_.mtype() == kDataType) {
      pending_offset_ = 0;
      pending_size_ = static_cast<size_t>(n);
      return CopyPending(buffer);
    }
    if (n >= 0) {
      // A wake-up (or an empty message, which a peer never sends). Let the
      // next waker queue another, then re-check everything.
      wake_queued_ = false;
      flags = IPC_NOWAIT;
      continue;
    }
    int err = errno;
    if (err == EINTR) {
      flags = IPC_NOWAIT;
      continue;
    }
    if (err == ENOMSG) {
      if (shutdown_) return ShutDownError();
      if (peer_closed_) {
        // The peer wrote its last fragment before closing its control
        // socket, and everything it wrote has been read: end of stream.
        RemoveRecvQueue();
        return PeerClosedError();
      }
      if (interrupted_.exchange(false)) {
        return absl::AbortedError(absl::StrCat(description_, ": read interrupted"));
      }
      if (absl::Now() >= deadline) return DeadlineError();
      if (deadline != absl::InfiniteFuture()) {
        ArmReadDeadline(deadline);  // every time: the watcher disarms when it fires
        *armed = true;
      }
      flags = 0;
      continue;
    }
    if (err == EIDRM || err == EINVAL) {
      recv_removed_ = true;  // removed by the peer or by Shutdown()
      return shutdown_ ? ShutDownError() : PeerClosedError();
    }
    if (err == E2BIG) {
      return absl::DataLossError(absl::StrCat(description_, ": peer sent a message larger than ",
                                              recv_fragment_, " bytes"));
    }
    return ErrnoStatus(err, absl::StrCat(description_, ": msgrcv"));
  }
}

// Ordering argument: a waker sets its flag, then exchanges wake_queued_; the
// reader, after taking a wake-up, stores wake_queued_ = false and then loads
// the flags. If the waker's exchange saw `true` (and so sent nothing), it
// preceded the reader's store, so the reader's later loads see the flag.
void MsgqTransport::WakeReader() {
  if (recv_removed_ || wake_queued_.exchange(true)) return;
  long wake = kWakeType;  // an empty message: mtype only
  int rc;
  do {
    rc = ::msgsnd(recv_id_, &wake, 0, IPC_NOWAIT);
  } while (rc < 0 && errno == EINTR);
  // An empty message fits even a full queue; failing means the queue is gone.
  if (rc < 0) wake_queued_ = false;
}

void MsgqTransport::Interrupt() {
  interrupted_ = true;
  WakeReader();
}

// --- Writing ---------------------------------------------------------------

absl::Status MsgqTransport::Write(absl::Span<const absl::string_view> chunks,
                                  absl::Time deadline) {
  if (shutdown_) return ShutDownError();
  if (peer_closed_) return PeerClosedError();
  // Announce the write before the last shutdown check, so that Shutdown()
  // either sees it (and removes the send queue to wake it) or is seen.
  writing_ = true;
  absl::Status status;
  if (shutdown_) {
    status = ShutDownError();
  } else if (send_removed_) {
    status = absl::UnavailableError(
        absl::StrCat(description_, ": the stream is closed (peer gone or an earlier "
                                   "write deadline passed)"));
  } else {
    status = WriteChunks(chunks, deadline);
  }
  writing_ = false;
  return status;
}

absl::Status MsgqTransport::WriteChunks(absl::Span<const absl::string_view> chunks,
                                        absl::Time deadline) {
  char* text = send_buffer_.text();
  size_t used = 0;
  for (absl::string_view chunk : chunks) {
    while (!chunk.empty()) {
      size_t n = std::min(chunk.size(), send_fragment_ - used);
      std::memcpy(text + used, chunk.data(), n);
      used += n;
      chunk.remove_prefix(n);
      if (used == send_fragment_) {
        IPCRPC_RETURN_IF_ERROR(SendFragment(used, deadline));
        used = 0;
      }
    }
  }
  if (used > 0) return SendFragment(used, deadline);
  return absl::OkStatus();
}

absl::Status MsgqTransport::SendFragment(size_t size, absl::Time deadline) {
  send_buffer_.set_mtype(kDataType);
  int flags = IPC_NOWAIT;  // the common case: room in the queue, one system call
  bool armed = false;
  absl::Status status;
  for (;;) {
    if (::msgsnd(send_id_, send_buffer_.raw(), size, flags) == 0) break;
    int err = errno;
    if (err == EINTR) {
      flags = IPC_NOWAIT;
      continue;
    }
    if (err == EAGAIN) {
      // Full: the reader is behind. Sleep in msgsnd until there is room; the
      // watcher removes the queue if the deadline passes first.
      if (absl::Now() >= deadline) {
        status = DeadlineError();
        break;
      }
      if (deadline != absl::InfiniteFuture()) {
        ArmWriteDeadline(deadline);
        armed = true;
      }
      flags = 0;
      continue;
    }
    if (err == EIDRM || err == EINVAL) {
      send_removed_ = true;
      status = shutdown_ ? ShutDownError() : PeerClosedError();
      break;
    }
    status = ErrnoStatus(err, absl::StrCat(description_, ": msgsnd"));
    break;
  }
  if (armed && DisarmWriteDeadline()) return DeadlineError();
  return status;
}

}  // namespace msgq
}  // namespace ipcrpc
