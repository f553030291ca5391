// ipcrpc base: starting a thread without std::terminate.
//
// std::thread's constructor throws std::system_error when the kernel refuses
// a new thread (RLIMIT_NPROC, a cgroup's pids.max, no memory for a stack);
// ipcrpc builds without catching exceptions elsewhere, so an unguarded
// std::thread ends the whole process. StartThread turns that refusal into
// RESOURCE_EXHAUSTED for the caller to handle (fail one connection or call,
// keep serving the others). ThreadStarter is the injectable form, so tests
// can make a particular start fail.
//
// Thread-safety: free function; safe from any thread.
//
// Example:
//   absl::StatusOr<std::thread> t = StartThread([this] { Loop(); });
//   if (!t.ok()) return t.status();
//   thread_ = std::move(*t);

#ifndef IPCRPC_BASE_THREAD_H_
#define IPCRPC_BASE_THREAD_H_

#include <functional>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace ipcrpc::internal {

using ThreadStarter = std::function<absl::StatusOr<std::thread>(std::function<void()> body)>;

// Starts `body` on a new thread; RESOURCE_EXHAUSTED "cannot start a thread:
// ..." if the system refuses one (`body` is then dropped, never run).
inline absl::StatusOr<std::thread> StartThread(std::function<void()> body) {
  try {
    return std::thread(std::move(body));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
}

}  // namespace ipcrpc::internal

#endif  // IPCRPC_BASE_THREAD_H_
