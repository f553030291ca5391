// ipcrpc msgq transport: how a MsgqTransport ends a call or the stream
// (msgq_transport.h).
//
// SysV queues cannot be polled, so a blocked msgrcv/msgsnd is ended by a
// wake-up message or by removing its queue. This file holds every such
// decision: Shutdown(), the peer's loss (the control channel's hook), the
// read and write deadlines the watcher thread enforces, and when each queue
// is removed — including the destructor's linger, which keeps a queue the
// live peer has not finished reading for up to kLinger (like SO_LINGER).
//
// Thread-safety: Shutdown() from any thread; OnPeerClosed / NextTimer /
// OnTimer on the watcher thread; Arm*/Disarm* by the reader or writer.
// Deadlines are guarded by mu_; the flags are seq_cst atomics.

#include <poll.h>

#include <algorithm>

#include "absl/time/clock.h"
#include "transports/msgq/msgq_transport.h"
#include "transports/msgq/queues.h"

namespace ipcrpc {
namespace msgq {

MsgqTransport::~MsgqTransport() {
  Shutdown();
  // Shutdown() kept the send queue if it held bytes for a live peer. Linger
  // (like SO_LINGER) until the peer has read them, has gone, or kLinger has
  // passed, then remove the queue ourselves: whatever happens to the peer
  // afterwards, no queue outlives this object.
  absl::Time give_up = absl::Now() + kLinger;
  while (!send_removed_ && !peer_closed_ && control_->CheckNow().ok() &&
         QueueHoldsData(send_id_) && absl::Now() < give_up) {
    pollfd control{control_->fd(), ControlChannel::kPollEvents, 0};
    ::poll(&control, 1, 2);
  }
  RemoveSendQueue();
  control_->StopWatcher();  // its hooks point here
}

void MsgqTransport::RemoveRecvQueue() {
  if (!recv_removed_.exchange(true)) RemoveQueue(recv_id_);
}

void MsgqTransport::RemoveSendQueue() {
  if (!send_removed_.exchange(true)) RemoveQueue(send_id_);
}

// --- Shutdown and liveness -------------------------------------------------

void MsgqTransport::Shutdown() {
  if (shutdown_.exchange(true)) return;
  bool peer_gone = peer_closed_ || !control_->CheckNow().ok();
  // For writing only: the peer sees end-of-file, and this side can still see
  // the peer's end close (the watcher keeps running until then or destruction).
  control_->Shutdown();
  RemoveRecvQueue();  // nobody reads it any more; wakes a blocked reader
  // Bytes already sent stay for a live peer to read, as on a socket; it
  // removes the queue when it reaches their end. A write in progress is
  // woken (and abandoned) by the removal.
  if (peer_gone || writing_ || !QueueHoldsData(send_id_)) RemoveSendQueue();
}

void MsgqTransport::OnPeerClosed() {
  peer_closed_ = true;
  RemoveSendQueue();  // the peer reads it no more; wakes a blocked writer
  if (QueueHoldsData(recv_id_)) {
    WakeReader();  // the reader drains what is left, then sees peer_closed_
  } else {
    RemoveRecvQueue();  // nothing left to read; wakes a blocked reader
  }
}

void MsgqTransport::ArmReadDeadline(absl::Time deadline) {
  bool kick;
  {
    internal::MutexLock lock(&mu_);
    read_deadline_ = deadline;
    kick = deadline < watcher_wakes_at_;
  }
  if (kick) control_->Kick();
}

void MsgqTransport::DisarmReadDeadline() {
  internal::MutexLock lock(&mu_);
  read_deadline_ = absl::InfiniteFuture();
}

void MsgqTransport::ArmWriteDeadline(absl::Time deadline) {
  bool kick;
  {
    internal::MutexLock lock(&mu_);
    write_deadline_ = deadline;
    kick = deadline < watcher_wakes_at_;
  }
  if (kick) control_->Kick();
}

bool MsgqTransport::DisarmWriteDeadline() {
  internal::MutexLock lock(&mu_);
  write_deadline_ = absl::InfiniteFuture();
  return write_timed_out_;
}

absl::Time MsgqTransport::NextTimer() {
  internal::MutexLock lock(&mu_);
  watcher_wakes_at_ = std::min(read_deadline_, write_deadline_);
  return watcher_wakes_at_;
}

void MsgqTransport::OnTimer(absl::Time now) {
  bool wake_reader = false;
  {
    internal::MutexLock lock(&mu_);
    if (read_deadline_ <= now) {
      read_deadline_ = absl::InfiniteFuture();
      wake_reader = true;
    }
    if (write_deadline_ <= now) {
      // The only way to end a blocked msgsnd early is to remove its queue.
      // Under mu_, so DisarmWriteDeadline() reports it even when msgsnd
      // had just succeeded.
      write_deadline_ = absl::InfiniteFuture();
      write_timed_out_ = true;
      RemoveSendQueue();
    }
  }
  if (wake_reader) WakeReader();
}

}  // namespace msgq
}  // namespace ipcrpc
