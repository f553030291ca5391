// ipcrpc internal: one thread that runs tasks at their deadlines.
//
// The server's callback calls hold no thread while they wait, so nothing
// would notice their deadline pass; each registers it here and its reactor
// is told (OnCancel) when it fires. One thread for the whole server, started
// on first use; a task cancelled before its time costs nothing more.
//
// Thread-safety: every method is thread-safe. Tasks run on the timer's
// thread, one at a time, without the timer's lock: they must be quick.

#ifndef IPCRPC_RUNTIME_INTERNAL_DEADLINE_TIMER_H_
#define IPCRPC_RUNTIME_INTERNAL_DEADLINE_TIMER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"

namespace ipcrpc::internal {

class DeadlineTimer {
 public:
  using Id = std::pair<absl::Time, uint64_t>;

  DeadlineTimer() = default;
  ~DeadlineTimer() { Stop(); }
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  // Runs `task` at `when` unless Cancel(id) comes first. RESOURCE_EXHAUSTED
  // if the timer's thread cannot start; FAILED_PRECONDITION once stopped.
  absl::StatusOr<Id> Add(absl::Time when, std::function<void()> task);
  // Forgets the task (a no-op once it has run).
  void Cancel(Id id);
  // Drops every pending task and joins the thread.
  void Stop();

 private:
  void Loop();

  internal::Mutex mu_;
  internal::CondVar cv_;  // with mu_: an earlier task, or stopping
  std::map<Id, std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // started under mu_ by the first Add
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_DEADLINE_TIMER_H_
