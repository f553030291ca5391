// ipcrpc: the file descriptors one call holds.
//
// Every ClientContext and ServerContext holds one (`ctx->fds()`), with two
// kinds of descriptors:
//   * received: when a message carrying ipcrpc.FileDescriptor fields is read
//     (a response, a request, one message of a stream), the runtime puts the
//     descriptors that came with it here and points each field at its
//     descriptor. The application takes the ones it wants with
//     ipcrpc::TakeFd (runtime/file_descriptor.h); the others are closed when
//     the next message of the same call is read, or when the context is
//     destroyed. So a descriptor is never leaked, and a long stream never
//     accumulates them.
//   * kept for sending: ipcrpc::AttachFd hands a descriptor to the call so
//     that it stays open until the message naming it has been sent; it is
//     closed when the context is destroyed (after the call).
//
// Thread-safety: all methods may be called from any thread.

#ifndef IPCRPC_RUNTIME_CALL_FDS_H_
#define IPCRPC_RUNTIME_CALL_FDS_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "base/sync.h"

namespace ipcrpc {

class CallFds {
 public:
  CallFds() = default;
  CallFds(const CallFds&) = delete;
  CallFds& operator=(const CallFds&) = delete;

  // Takes the descriptor a received ipcrpc.FileDescriptor field names (its
  // `handle`). NOT_FOUND if the field names none (handle 0), or one that is
  // not here: already taken, closed because a later message was read, or
  // never received (e.g. a field of a message this side built itself).
  absl::StatusOr<ScopedFd> Take(uint32_t handle);

  // How many received descriptors are held (not taken yet).
  size_t received() const;

  // Keeps `fd` open until the context is destroyed; returns its number.
  int Keep(ScopedFd fd);

  // Runtime: the descriptors of a newly read message; received ones still
  // held are closed.
  void Replace(std::vector<ScopedFd> fds);

 private:
  mutable internal::Mutex mu_;
  std::vector<ScopedFd> received_ ABSL_GUARDED_BY(mu_);
  std::vector<ScopedFd> kept_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CALL_FDS_H_
