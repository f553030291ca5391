#include "base/fd_util.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ipcrpc {

absl::StatusOr<ScopedFd> MakeEventFd() {
  ScopedFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus(errno, "eventfd");
  return fd;
}

void SignalEventFd(int fd) {
  uint64_t one = 1;
  while (::write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void DrainEventFd(int fd) {
  uint64_t value;
  while (::read(fd, &value, sizeof(value)) < 0 && errno == EINTR) {
  }
}

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

absl::StatusOr<int> PollUntil(absl::Span<pollfd> fds, absl::Time deadline,
                              absl::string_view what) {
  for (;;) {
    int n = ::poll(fds.data(), fds.size(), PollTimeoutMs(deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat(what, ": poll"));
    }
    if (n > 0) return n;
    if (absl::Now() < deadline) continue;  // poll rounds; never report early
    return absl::DeadlineExceededError(absl::StrCat(what, ": deadline exceeded"));
  }
}

absl::StatusOr<PeerCredentials> SocketPeerCredentials(int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd ", fd, " is not a connected unix socket: ",
                     ErrnoStatus(errno, "getsockopt(SO_PEERCRED)").message()));
  }
  PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  return peer;
}

IovecCursor::IovecCursor(absl::Span<const absl::string_view> chunks) {
  for (absl::string_view c : chunks) {
    if (!c.empty()) iov_.push_back({const_cast<char*>(c.data()), c.size()});
  }
}

int IovecCursor::iov_count() const {
  return static_cast<int>(std::min<size_t>(iov_.size() - first_, kMaxIovecsPerCall));
}

void IovecCursor::Advance(size_t written) {
  while (first_ < iov_.size() && written >= iov_[first_].iov_len) {
    written -= iov_[first_].iov_len;
    ++first_;
  }
  if (first_ < iov_.size()) {
    iov_[first_].iov_base = static_cast<char*>(iov_[first_].iov_base) + written;
    iov_[first_].iov_len -= written;
  }
}

}  // namespace ipcrpc
