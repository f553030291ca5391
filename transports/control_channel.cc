#include "transports/control_channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/fd_util.h"

namespace ipcrpc {

absl::StatusOr<std::thread> ControlChannel::StartThread(std::function<void()> body) {
  try {
    return std::thread(std::move(body));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(e.what());
  }
}

absl::StatusOr<std::unique_ptr<ControlChannel>> ControlChannel::Open(ScopedFd socket,
                                                                     std::string description) {
  if (!socket.valid()) {
    return absl::InvalidArgumentError(absl::StrCat(description, ": no control socket"));
  }
  absl::StatusOr<PeerCredentials> peer = SocketPeerCredentials(socket.get());
  if (!peer.ok()) {
    return absl::Status(peer.status().code(), absl::StrCat(description, ": the control socket: ",
                                                           peer.status().message()));
  }
  absl::StatusOr<ScopedFd> doorbell = MakeEventFd();
  if (!doorbell.ok()) {
    return absl::Status(doorbell.status().code(),
                        absl::StrCat(description, ": ", doorbell.status().message()));
  }
  return std::unique_ptr<ControlChannel>(new ControlChannel(
      std::move(socket), std::move(*doorbell), *peer, std::move(description)));
}

ControlChannel::ControlChannel(ScopedFd socket, ScopedFd doorbell, PeerCredentials peer,
                               std::string description)
    : socket_(std::move(socket)),
      doorbell_(std::move(doorbell)),
      peer_(peer),
      description_(std::move(description)) {}

ControlChannel::~ControlChannel() { StopWatcher(); }

absl::Status ControlChannel::status() const {
  switch (state_.load(std::memory_order_acquire)) {
    case kOpen:
      return absl::OkStatus();
    case kStrayBytes:
      return absl::UnavailableError(absl::StrCat(
          description_,
          ": peer sent bytes on the control socket, which must stay silent after the upgrade"));
    default:
      return absl::UnavailableError(absl::StrCat(description_, ": peer closed the connection"));
  }
}

absl::Status ControlChannel::PeerClosedStatus() const {
  absl::Status lost = status();
  if (!lost.ok()) return lost;
  return absl::UnavailableError(absl::StrCat(description_, ": peer closed the connection"));
}

absl::Status ControlChannel::RecordLoss(State why) {
  int expected = kOpen;
  if (state_.compare_exchange_strong(expected, why, std::memory_order_acq_rel) &&
      on_peer_lost_) {
    on_peer_lost_();
  }
  return status();
}

void ControlChannel::MarkPeerClosed() { RecordLoss(kPeerClosed).IgnoreError(); }

absl::Status ControlChannel::OnPollEvents(short revents) {
  if (peer_lost()) return status();
  if (revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return RecordLoss(kPeerClosed);
  if (!(revents & POLLIN)) return absl::OkStatus();
  // Readable: end-of-file, an error, or a byte. Peek, so that a byte is
  // never consumed (and every caller sees the same thing).
  char byte;
  ssize_t n;
  do {
    n = ::recv(socket_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return RecordLoss(kStrayBytes);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return absl::OkStatus();  // spurious
  return RecordLoss(kPeerClosed);  // end-of-file or a socket error
}

absl::Status ControlChannel::CheckNow() {
  if (peer_lost()) return status();
  pollfd p = {socket_.get(), kPollEvents, 0};
  int n;
  do {
    n = ::poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return absl::OkStatus();
  return OnPollEvents(p.revents);
}

void ControlChannel::Shutdown() {
  if (shut_down_.exchange(true, std::memory_order_acq_rel)) return;
  ::shutdown(socket_.get(), SHUT_WR);
  SignalEventFd(doorbell_.get());
}

// --- Watcher mode -----------------------------------------------------------

absl::Status ControlChannel::StartWatcher(WatchHooks hooks, const ThreadStarter& start_thread) {
  if (watcher_.joinable()) {
    return absl::FailedPreconditionError(
        absl::StrCat(description_, ": the watcher thread was already started"));
  }
  if (hooks.on_peer_lost) on_peer_lost_ = std::move(hooks.on_peer_lost);
  hooks_ = std::move(hooks);
  absl::StatusOr<std::thread> thread = start_thread([this] { WatchLoop(); });
  if (!thread.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        description_, ": cannot start the watcher thread: ", thread.status().message()));
  }
  watcher_ = std::move(*thread);
  return absl::OkStatus();
}

void ControlChannel::Kick() { SignalEventFd(doorbell_.get()); }

void ControlChannel::StopWatcher() {
  if (!watcher_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  SignalEventFd(doorbell_.get());
  watcher_.join();
}

void ControlChannel::WatchLoop() {
  while (!stop_.load(std::memory_order_acquire)) {
    absl::Time wake_at = hooks_.next_timer ? hooks_.next_timer() : absl::InfiniteFuture();
    timespec timeout;
    const timespec* timeout_ptr = nullptr;
    if (wake_at != absl::InfiniteFuture()) {
      timeout = absl::ToTimespec(std::max(wake_at - absl::Now(), absl::ZeroDuration()));
      timeout_ptr = &timeout;
    }
    pollfd fds[2] = {{socket_.get(), kPollEvents, 0}, {doorbell_.get(), POLLIN, 0}};
    int n = ::ppoll(fds, 2, timeout_ptr, nullptr);
    if (n < 0) {
      // EINTR, or ENOMEM and the like: keep the liveness promise by
      // retrying soon rather than giving up on the peer.
      if (errno != EINTR) absl::SleepFor(absl::Milliseconds(1));
      continue;
    }
    if (fds[1].revents & POLLIN) DrainEventFd(doorbell_.get());
    if (stop_.load(std::memory_order_acquire)) return;
    // Once lost, the hook has run (here or on the thread that saw it
    // first) and this side's blocked calls are woken for good.
    if (!OnPollEvents(fds[0].revents).ok()) return;
    if (hooks_.on_timer) hooks_.on_timer(absl::Now());
  }
}

}  // namespace ipcrpc
