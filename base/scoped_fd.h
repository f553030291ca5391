// ipcrpc: a move-only owner of one file descriptor.
//
// ScopedFd closes its descriptor when destroyed or reset; release() gives it
// up. Every fd ipcrpc opens lives in one of these.
//
// Thread-safety: like an int: no concurrent mutation.
//
// Example:
//   ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
//   if (!fd.valid()) return ErrnoStatus(errno, "socket");

#ifndef IPCRPC_BASE_SCOPED_FD_H_
#define IPCRPC_BASE_SCOPED_FD_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ipcrpc {

class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() { reset(); }

  bool valid() const { return fd_ >= 0; }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the current descriptor (if any) and takes `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Turns an errno value into a status whose message reads
// "<what>: <strerror> (errno N)", with the canonical code that fits it:
// ECONNREFUSED/ENOENT/EPIPE/ECONNRESET → UNAVAILABLE, EACCES/EPERM →
// PERMISSION_DENIED, EINVAL → INVALID_ARGUMENT, ENOMEM/EMFILE/ENFILE/ENOSPC →
// RESOURCE_EXHAUSTED, EEXIST/EADDRINUSE → ALREADY_EXISTS, ETIMEDOUT →
// DEADLINE_EXCEEDED, anything else → INTERNAL.
absl::Status ErrnoStatus(int error_number, absl::string_view what);

}  // namespace ipcrpc

#endif  // IPCRPC_BASE_SCOPED_FD_H_
