// ipcrpc msgq transport: MsgqTransport, the byte stream over a queue pair.
//
// One side of an established msgq connection: Write cuts the stream into
// fragments of at most send_fragment bytes (one msgsnd each); Read returns
// bytes from the received fragments in order and keeps what did not fit for
// the next Read. Set-up (which queues, which fragment sizes, whether they can
// be trusted) is done before Start() by msgq.cc; this class only runs them.
//
// Files: msgq_transport.cc has reading and writing; msgq_shutdown.cc has
// everything that ends a call or the stream: Shutdown(), the peer's loss,
// the deadlines the watcher enforces, and when each queue is removed
// (including the destructor's linger).
//
// Thread-safety: as for every Transport (transports/transport.h): one
// reader, one writer, Interrupt()/Shutdown() from any thread. The control
// channel's watcher thread calls OnPeerClosed / NextTimer / OnTimer.
//
// Ownership: Start() takes over both queues (they are removed by the time
// the transport is destroyed, on every path) and the control channel.
//
// Example (what PrepareMsgq's Complete and AttachMsgq do):
//   msgq::MsgqTransport::Config config;
//   config.send_id = ...; config.recv_id = ...;          // validated queues
//   config.send_fragment = ...; config.recv_fragment = ...;
//   config.control = std::move(control);
//   IPCRPC_ASSIGN_OR_RETURN(auto transport, msgq::MsgqTransport::Start(std::move(config)));

#ifndef IPCRPC_TRANSPORTS_MSGQ_MSGQ_TRANSPORT_H_
#define IPCRPC_TRANSPORTS_MSGQ_MSGQ_TRANSPORT_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/sync.h"
#include "transports/control_channel.h"
#include "transports/transport.h"

namespace ipcrpc {
namespace msgq {

// How long a closing side waits for a live peer to read what it sent.
inline constexpr absl::Duration kLinger = absl::Seconds(1);

// Message types (mtype). A reader receives with msgtyp = -kWakeType, which
// takes the lowest type first: data always before a wake-up.
inline constexpr long kDataType = 1;  // a fragment of the byte stream (>= 1 byte)
inline constexpr long kWakeType = 2;  // empty; "re-check why you are sleeping"


// The `struct msgbuf` msgsnd/msgrcv expect: a long mtype, then the text.
// Allocated once per direction and reused for every fragment.
class MessageBuffer {
 public:
  explicit MessageBuffer(size_t text_capacity)
      : words_(new long[1 + (text_capacity + sizeof(long) - 1) / sizeof(long)]) {
    words_[0] = 0;
  }
  void* raw() { return words_.get(); }
  long mtype() const { return words_[0]; }
  void set_mtype(long type) { words_[0] = type; }
  char* text() { return reinterpret_cast<char*>(words_.get() + 1); }

 private:
  std::unique_ptr<long[]> words_;
};

// ---------------------------------------------------------------------------
// MsgqTransport
//
// Waiting, in brief (docs/transports/msgq.md has the whole story):
//  * The reader sleeps in msgrcv(msgtyp = -kWakeType) on its own receive
//    queue. Everything that must wake it (Interrupt(), its deadline, the
//    peer closing) sets a flag and then puts one empty kWakeType message into
//    that queue; the reader re-checks the flags and the clock before it
//    sleeps again, so a stale wake-up costs one loop, never a wrong result.
//    Shutdown() and queue removal wake it by IPC_RMID (msgrcv fails EIDRM).
//  * A writer whose queue is full sleeps in a blocking msgsnd; it is woken by
//    room in the queue, or by the queue's removal (peer closed, Shutdown(),
//    or its deadline passing, which breaks the stream — transport.h says a
//    failed Write leaves the stream unusable anyway).
//  * The control channel's watcher thread polls the control socket
//    (liveness, transports/control_channel.h) and its doorbell (re-arm), with
//    a timeout at the earliest armed deadline (NextTimer / OnTimer).

class MsgqTransport final : public Transport {
 public:
  struct Config {
    int send_id = -1;
    int recv_id = -1;
    size_t send_fragment = 0;  // largest fragment this side sends
    size_t recv_fragment = 0;  // largest fragment the peer may send
    std::unique_ptr<ControlChannel> control;  // its description is this transport's
  };

  // Takes over both queues (removes them when done) and starts the watcher.
  static absl::StatusOr<std::unique_ptr<Transport>> Start(Config config);
  ~MsgqTransport() override;

  absl::Status Write(absl::Span<const absl::string_view> chunks,
                     absl::Time deadline) override;
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time deadline) override;
  void Interrupt() override;
  void Shutdown() override;
  PeerCredentials peer() const override { return control_->peer(); }
  // The control channel knows (a zero-timeout poll of the control socket).
  bool PeerGone() override { return control_->PeerGone(); }
  std::string description() const override { return description_; }
  // Descriptors travel as fd records on the control socket, ahead of the
  // bytes (transports/control_channel.h).
  int max_fds_per_write() const override { return ControlChannel::kMaxFdsPerRecord; }
  absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                            absl::Span<const int> fds, absl::Time deadline) override {
    if (!fds.empty()) {
      absl::Status sent = control_->SendFds(fds, deadline);
      if (!sent.ok()) return sent;
    }
    return Write(chunks, deadline);
  }
  absl::StatusOr<FdBatch> TakeFdBatch() override { return control_->TakeFdBatch(); }

 private:
  explicit MsgqTransport(Config config);

  absl::StatusOr<size_t> ReadFragment(absl::Span<char> buffer, absl::Time deadline,
                                      bool* armed);
  size_t CopyPending(absl::Span<char> buffer);
  absl::Status WriteChunks(absl::Span<const absl::string_view> chunks,
                           absl::Time deadline);
  absl::Status SendFragment(size_t size, absl::Time deadline);

  // Puts one wake-up into the receive queue unless one is already there.
  void WakeReader();
  void RemoveRecvQueue();
  void RemoveSendQueue();

  // Deadlines the watcher enforces. Arm* kicks the watcher only when the
  // deadline is earlier than the one it sleeps towards.
  void ArmReadDeadline(absl::Time deadline);
  void DisarmReadDeadline();
  void ArmWriteDeadline(absl::Time deadline);
  // Returns true if the write deadline fired (and removed the send queue).
  bool DisarmWriteDeadline();
  // The watcher's timer hooks: when to wake next, and what a wake-up does.
  absl::Time NextTimer();
  void OnTimer(absl::Time now);
  // The watcher's peer-lost hook (runs once).
  void OnPeerClosed();

  // The channel lost the peer, or the peer removed a queue.
  absl::Status PeerClosedError() const { return control_->PeerClosedStatus(); }
  absl::Status ShutDownError() const {
    return absl::UnavailableError(absl::StrCat(description_, ": transport shut down"));
  }
  absl::Status DeadlineError() const {
    return absl::DeadlineExceededError(absl::StrCat(description_, ": deadline exceeded"));
  }

  const int send_id_;
  const int recv_id_;
  const size_t send_fragment_;
  const size_t recv_fragment_;
  // The unix socket the connection started on; its watcher thread is also
  // this transport's deadline timer.
  const std::unique_ptr<ControlChannel> control_;
  const std::string description_;

  // Writer-only state.
  MessageBuffer send_buffer_;
  // Reader-only state: the last fragment and the part of it not yet returned.
  MessageBuffer recv_buffer_;
  size_t pending_offset_ = 0;
  size_t pending_size_ = 0;

  // All sequentially consistent: the flag a waker sets before WakeReader()
  // is seen by the reader after it takes the wake-up (see WakeReader).
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> peer_closed_{false};
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> wake_queued_{false};
  std::atomic<bool> writing_{false};
  std::atomic<bool> recv_removed_{false};
  std::atomic<bool> send_removed_{false};

  internal::Mutex mu_;
  absl::Time read_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time write_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool write_timed_out_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time watcher_wakes_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace msgq
}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_MSGQ_MSGQ_TRANSPORT_H_
