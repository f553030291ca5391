#include "transports/msgq/msgq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "base/fd_util.h"
#include "base/status_macros.h"
#include "base/sync.h"
#include "transports/control_channel.h"

namespace ipcrpc {
namespace {

// How long a closing side waits for a live peer to read what it sent.
constexpr absl::Duration kLinger = absl::Seconds(1);

// Message types (mtype). A reader receives with msgtyp = -kWakeType, which
// takes the lowest type first: data always before a wake-up.
constexpr long kDataType = 1;  // a fragment of the byte stream (>= 1 byte)
constexpr long kWakeType = 2;  // empty; "re-check why you are sleeping"

constexpr char kMsgmaxPath[] = "/proc/sys/kernel/msgmax";

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

absl::StatusOr<size_t> ReadKernelLimit(const char* path) {
  ScopedFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  char buf[32];
  ssize_t n;
  do {
    n = ::read(fd.get(), buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
  size_t value = 0;
  if (!absl::SimpleAtoi(absl::string_view(buf, static_cast<size_t>(n)), &value) ||
      value == 0) {
    return absl::InternalError(absl::StrCat(path, " does not hold a positive number"));
  }
  return value;
}

// The fragment size this side sends: the option (0: msgmax), never above
// msgmax nor above what the queue can hold at all.
size_t ClampFragment(size_t requested, size_t msgmax, size_t queue_bytes) {
  size_t fragment = requested == 0 ? msgmax : std::min(requested, msgmax);
  return std::min(fragment, queue_bytes);
}

absl::StatusOr<int> CreateQueue() {
  int id = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (id < 0) {
    absl::Status s = ErrnoStatus(errno, "msgget(IPC_PRIVATE)");
    if (errno == ENOSPC) {
      return absl::ResourceExhaustedError(
          absl::StrCat(s.message(), " (the system's msgmni queue limit is reached)"));
    }
    return s;
  }
  return id;
}

// IPC_RMID; a queue already removed (by the peer) is not an error. Other
// failures (EPERM: not ours) cannot be acted on and are ignored.
void RemoveQueue(int id) { ::msgctl(id, IPC_RMID, nullptr); }

// Whether the queue still holds stream bytes (wake-ups are empty messages,
// so they do not count). False when the queue is gone.
bool QueueHoldsData(int id) {
  msqid_ds ds;
  if (::msgctl(id, IPC_STAT, &ds) < 0) return false;
  return ds.__msg_cbytes > 0;  // glibc's name for the kernel's msg_cbytes
}

// Checks a queue the server offered before this process trusts it: it must
// exist, be private to the server's user and never have been opened by key.
absl::StatusOr<msqid_ds> ValidateOfferedQueue(int id, absl::string_view which,
                                              uid_t server_uid) {
  std::string name = absl::StrCat("msgq: offered ", which, " queue ", id);
  if (id < 0) return absl::InvalidArgumentError(absl::StrCat(name, " is not a queue id"));
  msqid_ds ds;
  if (::msgctl(id, IPC_STAT, &ds) < 0) {
    int err = errno;
    if (err == EINVAL || err == EIDRM) {
      return absl::NotFoundError(absl::StrCat(name, " does not exist"));
    }
    if (err == EACCES) {
      return absl::PermissionDeniedError(absl::StrCat(
          name, " is not accessible to uid ", ::geteuid(),
          " (the msgq transport needs both processes to run as the same user)"));
    }
    return ErrnoStatus(err, absl::StrCat(name, ": IPC_STAT"));
  }
  unsigned mode = ds.msg_perm.mode & 0777;
  if (mode != 0600) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s has mode %04o; expected 0600", name, mode));
  }
  if (ds.msg_perm.uid != server_uid || ds.msg_perm.cuid != server_uid) {
    return absl::PermissionDeniedError(absl::StrCat(
        name, " is owned by uid ", ds.msg_perm.uid, " and was created by uid ",
        ds.msg_perm.cuid, "; the server runs as uid ", server_uid));
  }
  if (ds.msg_perm.__key != IPC_PRIVATE) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " has key ", ds.msg_perm.__key, "; expected IPC_PRIVATE"));
  }
  if (ds.msg_qbytes == 0) {
    return absl::FailedPreconditionError(absl::StrCat(name, " can hold no bytes"));
  }
  return ds;
}

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
  bool PeerGone() override { return control_->peer_lost() || !control_->CheckNow().ok(); }
  std::string description() const override { return description_; }

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

// ---------------------------------------------------------------------------
// Server side: the pending upgrade.

class MsgqPendingTransport final : public PendingTransport {
 public:
  // Owns (removes unless completed) both queues.
  MsgqPendingTransport(int client_to_server, int server_to_client)
      : client_to_server_(client_to_server), server_to_client_(server_to_client) {}
  void set_fragment(size_t fragment) { fragment_ = fragment; }

  ~MsgqPendingTransport() override {
    if (!completed_) {
      RemoveQueue(client_to_server_);
      RemoveQueue(server_to_client_);
    }
  }

  void FillOffer(wire::TransportOffer* offer, std::vector<int>* /*fds*/) override {
    offer->set_transport("msgq");
    wire::MsgqParams* params = offer->mutable_msgq();
    params->set_client_to_server_id(client_to_server_);
    params->set_server_to_client_id(server_to_client_);
    params->set_max_fragment_bytes(static_cast<uint32_t>(fragment_));
  }

  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control_socket,
                                                      absl::Time /*deadline*/) override {
    if (completed_) {
      return absl::FailedPreconditionError("msgq: Complete() called twice");
    }
    if (!control_socket.valid()) {
      return absl::InvalidArgumentError("msgq: Complete() needs the control socket");
    }
    MsgqTransport::Config config;
    IPCRPC_ASSIGN_OR_RETURN(
        config.control,
        ControlChannel::Open(std::move(control_socket),
                             absl::StrCat("msgq:c2s=", client_to_server_, ",s2c=",
                                          server_to_client_, " (server)")));
    config.send_id = server_to_client_;
    config.recv_id = client_to_server_;
    config.send_fragment = fragment_;
    config.recv_fragment = fragment_;
    // From here the transport owns the queues, on success and on failure.
    completed_ = true;
    return MsgqTransport::Start(std::move(config));
  }

 private:
  const int client_to_server_;
  const int server_to_client_;
  size_t fragment_ = 0;
  bool completed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareMsgq(const MsgqOptions& options) {
  IPCRPC_ASSIGN_OR_RETURN(size_t msgmax, ReadKernelLimit(kMsgmaxPath));
  IPCRPC_ASSIGN_OR_RETURN(int client_to_server, CreateQueue());
  absl::StatusOr<int> server_to_client = CreateQueue();
  if (!server_to_client.ok()) {
    RemoveQueue(client_to_server);
    return server_to_client.status();
  }
  // Owns both queues from here: any early return removes them.
  auto pending =
      std::make_unique<MsgqPendingTransport>(client_to_server, *server_to_client);
  size_t queue_bytes = SIZE_MAX;
  for (int id : {client_to_server, *server_to_client}) {
    msqid_ds ds;
    if (::msgctl(id, IPC_STAT, &ds) < 0) {
      return ErrnoStatus(errno, absl::StrCat("msgq: IPC_STAT of new queue ", id));
    }
    queue_bytes = std::min<size_t>(queue_bytes, ds.msg_qbytes);
  }
  // msgmax is an int on Linux, so the fragment fits the 32-bit offer field.
  size_t fragment = ClampFragment(options.max_fragment_bytes, msgmax, queue_bytes);
  if (fragment == 0 || fragment > UINT32_MAX) {
    return absl::FailedPreconditionError(
        absl::StrCat("msgq: unusable fragment size ", fragment, " (msgmax ", msgmax,
                     ", queue capacity ", queue_bytes, ")"));
  }
  pending->set_fragment(fragment);
  return std::unique_ptr<PendingTransport>(std::move(pending));
}

absl::StatusOr<std::unique_ptr<Transport>> AttachMsgq(const wire::TransportOffer& offer,
                                                      std::vector<ScopedFd> fds,
                                                      ScopedFd control_socket,
                                                      const MsgqOptions& options) {
  if (offer.transport() != "msgq" || !offer.has_msgq()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "msgq: the offer is for transport \"", offer.transport(), "\"",
        offer.has_msgq() ? "" : " and carries no msgq parameters"));
  }
  if (!fds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "msgq: the offer came with ", fds.size(), " file descriptors; it needs none"));
  }
  if (!control_socket.valid()) {
    return absl::InvalidArgumentError("msgq: AttachMsgq needs the control socket");
  }
  const wire::MsgqParams& params = offer.msgq();
  const int client_to_server = params.client_to_server_id();
  const int server_to_client = params.server_to_client_id();
  if (client_to_server == server_to_client) {
    return absl::InvalidArgumentError(
        absl::StrCat("msgq: the offer names queue ", client_to_server, " for both directions"));
  }
  IPCRPC_ASSIGN_OR_RETURN(
      std::unique_ptr<ControlChannel> control,
      ControlChannel::Open(std::move(control_socket),
                           absl::StrCat("msgq:c2s=", client_to_server, ",s2c=", server_to_client,
                                        " (client)")));
  const uid_t server_uid = control->peer().uid;
  IPCRPC_ASSIGN_OR_RETURN(msqid_ds c2s,
                          ValidateOfferedQueue(client_to_server, "client-to-server", server_uid));
  IPCRPC_RETURN_IF_ERROR(
      ValidateOfferedQueue(server_to_client, "server-to-client", server_uid).status());
  IPCRPC_ASSIGN_OR_RETURN(size_t msgmax, ReadKernelLimit(kMsgmaxPath));
  size_t offered = params.max_fragment_bytes();
  if (offered == 0 || offered > msgmax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "msgq: the offer's max_fragment_bytes is ", offered, "; it must be 1..", msgmax,
        " (msgmax)"));
  }
  MsgqTransport::Config config;
  config.send_id = client_to_server;
  config.recv_id = server_to_client;
  config.send_fragment =
      std::min(ClampFragment(options.max_fragment_bytes, msgmax, c2s.msg_qbytes), offered);
  config.recv_fragment = offered;
  config.control = std::move(control);
  return MsgqTransport::Start(std::move(config));
}

}  // namespace ipcrpc
