// ipcrpc fifo transport tests: what the fifo test binaries share.
//
// Every test in a binary that links this library (alwayslink) gets a fresh,
// short parent directory under /tmp for its FIFO directories (ParentDir(),
// TestOptions()); after the test that directory must be empty (nothing left
// on disk) and the process must hold exactly the file descriptors it held
// before — checked by a gtest event listener this library registers. Also:
// the whole upgrade in one process, control-socket pairs, small file checks.
//
// Thread-safety: for the test's main thread.

#ifndef IPCRPC_TRANSPORTS_FIFO_FIFO_TEST_UTIL_H_
#define IPCRPC_TRANSPORTS_FIFO_FIFO_TEST_UTIL_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "transports/fifo/fifo.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc::fifo_test {

inline constexpr absl::Duration kPatience = absl::Seconds(20);

// The current test's parent directory for FIFO directories.
std::string& ParentDir();
// FifoOptions whose parent_dir is ParentDir().
FifoOptions TestOptions();

int CountOpenFds();
// The names in `dir` (without "." and ".."), sorted.
std::vector<std::string> ListDir(const std::string& dir);
// lstat: a FIFO (and its permission bits in *mode)?
bool IsFifo(const std::string& path, mode_t* mode);
bool Exists(const std::string& path);
// Whether SIGPIPE is pending for this thread or the process.
bool SigpipePending();

// A connected AF_UNIX socket pair (aborts on failure): {server, client}.
std::pair<ScopedFd, ScopedFd> ControlPair();

// The whole upgrade in one process: left is the client's end, right the
// server's.
absl::StatusOr<testing::TransportPair> MakeFifoPair();

}  // namespace ipcrpc::fifo_test

#endif  // IPCRPC_TRANSPORTS_FIFO_FIFO_TEST_UTIL_H_
