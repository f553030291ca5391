#include "transports/control_channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/fd_util.h"
#include "base/status_macros.h"

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
  // Readable: end-of-file, an error, an fd record, or a stray byte. Peek, so
  // that nothing is consumed (and every caller sees the same thing).
  char bytes[4];
  ssize_t n;
  do {
    n = ::recv(socket_.get(), bytes, sizeof(bytes), MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    static constexpr char kMagic[4] = {'I', 'R', 'F', 'D'};
    if (std::memcmp(bytes, kMagic, static_cast<size_t>(n)) != 0) return RecordLoss(kStrayBytes);
    // An fd record waiting for its frame: poll for hang-ups only until the
    // reader takes it (TakeFdBatch).
    record_waiting_.store(true, std::memory_order_release);
    return absl::OkStatus();
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return absl::OkStatus();  // spurious
  return RecordLoss(kPeerClosed);  // end-of-file or a socket error
}

absl::Status ControlChannel::CheckNow() {
  if (peer_lost()) return status();
  pollfd p = {socket_.get(), poll_events(), 0};
  int n;
  do {
    n = ::poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return absl::OkStatus();
  return OnPollEvents(p.revents);
}

absl::Status ControlChannel::SendFds(absl::Span<const int> fds, absl::Time deadline) {
  if (fds.empty() || fds.size() > static_cast<size_t>(kMaxFdsPerRecord)) {
    return absl::InvalidArgumentError(absl::StrCat(description_, ": ", fds.size(),
                                                   " descriptors in one record; 1 to ",
                                                   kMaxFdsPerRecord, " may go"));
  }
  char record[kFdRecordBytes] = {'I', 'R', 'F', 'D', static_cast<char>(fds.size()), 0, 0, 0};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecord)];
  iovec iov{record, sizeof(record)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(status());
    ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof(record))) return absl::OkStatus();
    if (n >= 0) {
      // A unix stream socket takes a record this small whole or not at all.
      return absl::InternalError(absl::StrCat(description_, ": fd record sent in part"));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat(description_, ": sending descriptors"));
    }
    pollfd p = {socket_.get(), POLLOUT, 0};
    IPCRPC_RETURN_IF_ERROR(PollUntil(absl::MakeSpan(&p, 1), deadline, description_).status());
  }
}

absl::StatusOr<FdBatch> ControlChannel::TakeFdBatch() {
  char record[kFdRecordBytes];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecord)];
  iovec iov{record, sizeof(record)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(socket_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  FdBatch batch;  // owns whatever came, so nothing leaks on any path
  if (n > 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        batch.fds.emplace_back(fd);
      }
    }
    batch.truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return absl::NotFoundError(absl::StrCat(description_, ": no fd record waiting"));
  }
  if (n <= 0) {  // end-of-file or an error: the peer is gone
    RecordLoss(kPeerClosed).IgnoreError();
    return absl::NotFoundError(absl::StrCat(description_, ": no fd record waiting"));
  }
  const auto* u = reinterpret_cast<const unsigned char*>(record);
  const bool well_formed = n == static_cast<ssize_t>(kFdRecordBytes) && u[0] == 'I' &&
                           u[1] == 'R' && u[2] == 'F' && u[3] == 'D' && u[4] >= 1 &&
                           u[4] <= kMaxFdsPerRecord &&
                           (batch.truncated ? batch.fds.size() <= u[4] : batch.fds.size() == u[4]);
  if (!well_formed) return RecordLoss(kStrayBytes);  // `batch` closes its descriptors
  // The next record (if any) is looked at afresh by the check.
  record_waiting_.store(false, std::memory_order_release);
  if (watcher_.joinable()) Kick();  // (in poll mode the doorbell means Shutdown)
  return batch;
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
    pollfd fds[2] = {{socket_.get(), poll_events(), 0}, {doorbell_.get(), POLLIN, 0}};
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
