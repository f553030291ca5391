// ipcrpc: the control channel of an upgraded connection.
//
// A connection upgraded to fifo, shm or msgq (transports/upgrade.h) keeps the
// unix socket it started on as its control socket: after TRANSPORT_ACK it
// carries nothing, and its only job is to say when the peer is gone.
// ControlChannel owns that socket, the peer's credentials (SO_PEERCRED, read
// once when it is opened) and the one liveness rule every upgraded transport
// follows:
//
//   After set-up the control socket stays silent in both directions.
//     * end-of-file, hang-up or a socket error on it: the peer closed the
//       connection or died (a killed process's socket closes too);
//     * any byte arriving on it: the peer misbehaves (a protocol violation).
//   Either one ends the connection for good: this side's Read/Write return
//   UNAVAILABLE, "peer closed the connection" or "peer sent bytes on the
//   control socket, which must stay silent after the upgrade". Bytes the
//   peer put into the data path (FIFO, ring, queue) before are still read
//   first. Stray bytes are left in the socket (peeked, never read). Both are
//   UNAVAILABLE, not DATA_LOSS, because transport.h makes every broken
//   connection UNAVAILABLE; the message tells the two apart.
//
// File descriptors (Transport::WriteWithFds on fifo, shm and msgq) are the
// one exception to the silence: each batch travels as one fd record,
//
//   offset size
//   0      4    magic "IRFD" (0x49 0x52 0x46 0x44)
//   4      1    count: descriptors attached (1..253)
//   5      3    0
//
// sent in one sendmsg with the descriptors as SCM_RIGHTS, before the bytes
// of the frame that declares them enter the data path (SendFds). The
// receiver takes a record only when a frame header asks for one
// (TakeFdBatch), so records wait in the kernel, in order, until then; bytes
// that do not start like a record are stray bytes, as before. While a record
// waits, the socket is readable, so the check polls it for hang-ups only
// (poll_events()) until the record is taken.
//
// The loss is recorded once: a single transition from "open" to "lost" that
// any thread may make (the first wins), after which every check returns the
// same status and the peer-lost callback, if one was set, runs exactly once,
// on the thread that made the transition, with no lock of this class held.
//
// Two ways to drive the check:
//   * Poll mode (fifo, and a future event-driven server): put fd() with
//     kPollEvents into your own poll set (or epoll: EPOLLIN | EPOLLRDHUP are
//     the same bits) and hand what it reports to OnPollEvents(). CheckNow()
//     does a zero-timeout poll itself. Both are non-blocking functions of the
//     fd and the state, so one epoll thread can drive many channels.
//     doorbell_fd() becomes readable, for good, when Shutdown() is called, so
//     a poller also wakes for a local shut-down.
//   * Watcher mode (shm, msgq: they sleep in futex/msgrcv/msgsnd, which cannot
//     be polled together with a socket): StartWatcher() runs one thread that
//     polls the socket and the doorbell, and is just another driver of
//     OnPollEvents(). It can also serve as the transport's timer (msgq ends
//     blocked calls at their deadline from it). Starting it returns
//     RESOURCE_EXHAUSTED instead of throwing when no thread can be created
//     (RLIMIT_NPROC, a cgroup's pids limit). In this mode the doorbell belongs
//     to the watcher (Kick, stop); do not poll it yourself.
//
// Shutdown() shuts the socket down for writing only: the peer sees
// end-of-file, and this side still sees the peer's own close afterwards
// (msgq removes its queues on it).
//
// Thread-safety: every method is safe from any thread, except
// set_on_peer_lost(), StartWatcher() and StopWatcher(): the owner calls them
// (set-up before the channel is shared, StopWatcher from its destructor),
// never concurrently and never from a hook.
// Ownership: the channel owns the socket, the doorbell and the watcher
// thread. The hooks given to StartWatcher() usually point into the transport
// that owns the channel, so that transport must call StopWatcher() in its
// destructor, before anything the hooks use is destroyed.
//
// Example (poll mode):
//   IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ControlChannel> control,
//                           ControlChannel::Open(std::move(socket), "fifo:/tmp/x (client)"));
//   pollfd fds[] = {{data_fd, POLLIN, 0},
//                   {control->fd(), ControlChannel::kPollEvents, 0},
//                   {control->doorbell_fd(), POLLIN, 0}};
//   ::poll(fds, 3, timeout_ms);
//   IPCRPC_RETURN_IF_ERROR(control->OnPollEvents(fds[1].revents));
// Example (watcher mode):
//   ControlChannel::WatchHooks hooks;
//   hooks.on_peer_lost = [this] { WakeEveryone(); };
//   IPCRPC_RETURN_IF_ERROR(control->StartWatcher(std::move(hooks)));

#ifndef IPCRPC_TRANSPORTS_CONTROL_CHANNEL_H_
#define IPCRPC_TRANSPORTS_CONTROL_CHANNEL_H_

#include <poll.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/peer_credentials.h"
#include "base/scoped_fd.h"
#include "transports/transport.h"

namespace ipcrpc {

class ControlChannel {
 public:
  // The events to poll fd() for. POLLHUP and POLLERR are always reported.
  static constexpr short kPollEvents = POLLIN | POLLRDHUP;
  // The most descriptors one fd record carries (SCM_MAX_FD).
  static constexpr int kMaxFdsPerRecord = 253;
  static constexpr size_t kFdRecordBytes = 8;

  // Starts `body` on a new thread. The default wraps std::thread and turns
  // its std::system_error into RESOURCE_EXHAUSTED; tests inject failures.
  using ThreadStarter = std::function<absl::StatusOr<std::thread>(std::function<void()> body)>;
  static absl::StatusOr<std::thread> StartThread(std::function<void()> body);

  // Takes `socket` (the connected unix socket the negotiation ran on) and
  // reads its peer's credentials. `description` (e.g. "fifo:/tmp/d (client)")
  // starts every status this channel returns. INVALID_ARGUMENT "<description>:
  // the control socket: ..." when `socket` is missing or not a connected unix
  // socket; the socket is closed then.
  static absl::StatusOr<std::unique_ptr<ControlChannel>> Open(ScopedFd socket,
                                                              std::string description);

  // Stops the watcher (if any) and closes the socket and the doorbell.
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  const PeerCredentials& peer() const { return peer_; }
  const std::string& description() const { return description_; }
  int fd() const { return socket_.get(); }
  // An eventfd: readable from Shutdown() on (poll mode). See the header.
  int doorbell_fd() const { return doorbell_.get(); }

  // --- The liveness rule. ---

  // OK while the peer is there; once it is lost, the loss status (UNAVAILABLE,
  // see the header), always the same one. A plain atomic load while open.
  absl::Status status() const;
  bool peer_lost() const { return state_.load(std::memory_order_acquire) != kOpen; }

  // Interprets what poll/epoll reported for fd() (0: nothing): hang-up,
  // error or end-of-file records the loss, and so does a byte (peeked, not
  // consumed); a spurious readiness changes nothing. Non-blocking. Returns
  // status().
  absl::Status OnPollEvents(short revents);
  // OnPollEvents() of a zero-timeout poll of fd().
  absl::Status CheckNow();
  // Transport::PeerGone() of every transport on this channel: lost already,
  // or CheckNow() finds it lost (one zero-timeout poll).
  bool PeerGone() { return peer_lost() || !CheckNow().ok(); }
  // The status for a peer that closed the connection in a way the transport
  // saw itself (a closed flag in shared memory, a removed queue): status()
  // once the loss is recorded (it may name stray bytes), else UNAVAILABLE
  // "<description>: peer closed the connection". Records nothing.
  absl::Status PeerClosedStatus() const;
  // Records a loss that the transport saw itself (e.g. end-of-file on its
  // FIFO, EPIPE): the peer closed the connection. A no-op once lost.
  void MarkPeerClosed();

  // Called exactly once, on the thread that records the loss, outside any
  // lock of this class. Set before anything can record it (in particular
  // before StartWatcher or the first check); not needed with StartWatcher's
  // own hook.
  void set_on_peer_lost(std::function<void()> callback) { on_peer_lost_ = std::move(callback); }

  // Shuts the socket down for writing (the peer sees end-of-file; this side
  // keeps seeing the peer's close) and rings the doorbell. Idempotent.
  void Shutdown();
  bool is_shut_down() const { return shut_down_.load(std::memory_order_acquire); }

  // What to poll fd() for now: kPollEvents, or only POLLRDHUP while an fd
  // record waits to be taken (it keeps the socket readable). Poll-mode users
  // use this instead of kPollEvents.
  short poll_events() const {
    return record_waiting_.load(std::memory_order_acquire) ? POLLRDHUP : kPollEvents;
  }

  // --- File descriptors (see the header). ---

  // Sends one fd record carrying `fds` (1..kMaxFdsPerRecord), waiting for
  // room up to `deadline`. The writer of the transport only (one at a time).
  absl::Status SendFds(absl::Span<const int> fds, absl::Time deadline);
  // Takes the next fd record without blocking: NOT_FOUND if none is there;
  // UNAVAILABLE (and the loss is recorded, the descriptors closed) if what is
  // there is not a well-formed record. A record whose descriptors this
  // process could not all receive (out of descriptors) comes back with
  // `truncated` set.
  absl::StatusOr<FdBatch> TakeFdBatch();

  // --- Watcher mode. ---

  struct WatchHooks {
    // Replaces set_on_peer_lost's callback (called once, on whichever thread
    // records the loss; usually the watcher).
    std::function<void()> on_peer_lost;
    // Optional timer: asked on the watcher thread before every sleep when
    // it should next call on_timer (absl::InfiniteFuture(): not before a
    // Kick()). on_timer runs on the watcher after that time has come or
    // after a Kick().
    std::function<absl::Time()> next_timer;
    std::function<void(absl::Time now)> on_timer;
  };
  // Starts the watcher thread: it polls fd() and the doorbell until the peer
  // is lost (then returns) or StopWatcher(). RESOURCE_EXHAUSTED "<description>:
  // cannot start the watcher thread: ..." when the thread cannot be created
  // (no hook has run then). At most once per channel.
  absl::Status StartWatcher(WatchHooks hooks, const ThreadStarter& start_thread = StartThread);
  // Makes the watcher ask next_timer again (cheap; a write to the doorbell).
  void Kick();
  // Stops and joins the watcher; a no-op without one. Idempotent.
  void StopWatcher();

 private:
  enum State : int { kOpen = 0, kPeerClosed = 1, kStrayBytes = 2 };

  ControlChannel(ScopedFd socket, ScopedFd doorbell, PeerCredentials peer,
                 std::string description);

  // Makes the one transition from kOpen; runs the callback if this call won.
  absl::Status RecordLoss(State why);
  void WatchLoop();

  const ScopedFd socket_;
  const ScopedFd doorbell_;
  const PeerCredentials peer_;
  const std::string description_;
  std::atomic<int> state_{kOpen};
  std::atomic<bool> record_waiting_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<bool> stop_{false};
  std::function<void()> on_peer_lost_;  // set before use, then read only
  WatchHooks hooks_;                    // set before the watcher starts
  std::thread watcher_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_CONTROL_CHANNEL_H_
