// ipcrpc: small descriptor helpers every transport uses.
//
// Waking a blocked poll() (an eventfd), turning a deadline into a poll()
// timeout, and reading a unix socket's peer credentials, each written once.
//
// Thread-safety: free functions; SignalEventFd/DrainEventFd may race on the
// same eventfd (that is their purpose).

#ifndef IPCRPC_BASE_FD_UTIL_H_
#define IPCRPC_BASE_FD_UTIL_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/peer_credentials.h"
#include "base/scoped_fd.h"

namespace ipcrpc {

// A non-blocking, close-on-exec eventfd.
absl::StatusOr<ScopedFd> MakeEventFd();
// Makes the eventfd readable (wakes whoever polls it).
void SignalEventFd(int fd);
// Consumes every pending signal of the eventfd.
void DrainEventFd(int fd);

// poll() timeout in milliseconds until `deadline`: -1 for none, rounded up
// so that a deadline is never reported early.
int PollTimeoutMs(absl::Time deadline);

// pid/uid/gid of the process at the other end of a connected unix socket
// (SO_PEERCRED). INVALID_ARGUMENT, naming the fd, if `fd` is not one.
absl::StatusOr<PeerCredentials> SocketPeerCredentials(int fd);

}  // namespace ipcrpc

#endif  // IPCRPC_BASE_FD_UTIL_H_
