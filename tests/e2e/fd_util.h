// Helpers of the fd-passing tests, shared by test_server and the tests:
// descriptors with known content, reading one back, counting a process's
// open descriptors.

#ifndef IPCRPC_TESTS_E2E_FD_UTIL_H_
#define IPCRPC_TESTS_E2E_FD_UTIL_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"

namespace ipcrpc::test {

// A descriptor of `kind` ("file": an unnamed temporary file in /tmp,
// O_TMPFILE; "memfd"; "pipe": a pipe's read end, the write end already
// written and closed) holding `content`.
absl::StatusOr<ScopedFd> OpenWithContent(const std::string& kind, const std::string& content);

// Everything readable from `fd`: from offset 0 for files and memfds, to the
// end for pipes.
absl::StatusOr<std::string> ReadAll(int fd);

// The number of entries in /proc/PID/fd (pid 0: this process); -1 on error.
int CountOpenFds(pid_t pid = 0);
// Waits (up to 20 s; never asserted as a timing) until `pid`'s (0: this
// process's) descriptor count is at most `limit`; returns the last count
// seen. At most, not exactly: a descriptor held only briefly when the
// baseline was taken may be gone (a connection still closing; under UBSan,
// the pipes its checks open now and then).
int AwaitFdCountAtMost(pid_t pid, int limit);
// What each of `pid`'s (0: this process's) descriptors refers to, one
// "fd -> target" per line: for failure messages.
std::string ListOpenFds(pid_t pid = 0);

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_FD_UTIL_H_
