#include "runtime/call_fds.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ipcrpc {

absl::StatusOr<ScopedFd> CallFds::Take(uint32_t handle) {
  if (handle == 0) {
    return absl::NotFoundError("the FileDescriptor field names no descriptor (handle 0)");
  }
  const int fd = static_cast<int>(handle - 1);
  internal::MutexLock lock(&mu_);
  for (ScopedFd& held : received_) {
    if (held.valid() && held.get() == fd) return std::move(held);
  }
  return absl::NotFoundError(absl::StrCat(
      "descriptor ", fd, " is not among those received with the call's last message "
      "(taken already, closed when a later message was read, or never received)"));
}

size_t CallFds::received() const {
  internal::MutexLock lock(&mu_);
  size_t n = 0;
  for (const ScopedFd& fd : received_) n += fd.valid() ? 1 : 0;
  return n;
}

int CallFds::Keep(ScopedFd fd) {
  const int number = fd.get();
  internal::MutexLock lock(&mu_);
  kept_.push_back(std::move(fd));
  return number;
}

void CallFds::Replace(std::vector<ScopedFd> fds) {
  std::vector<ScopedFd> old;
  {
    internal::MutexLock lock(&mu_);
    old.swap(received_);
    received_ = std::move(fds);
  }
  // `old` closes outside the lock.
}

}  // namespace ipcrpc
