#include "runtime/internal/deadline_timer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/thread.h"

namespace ipcrpc::internal {

absl::StatusOr<DeadlineTimer::Id> DeadlineTimer::Add(absl::Time when, std::function<void()> task) {
  internal::MutexLock lock(&mu_);
  if (stopped_) return absl::FailedPreconditionError("the server's deadline timer has stopped");
  if (!thread_.joinable()) {
    absl::StatusOr<std::thread> started = StartThread([this] { Loop(); });
    if (!started.ok()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot start the server's deadline timer thread: ", started.status().message()));
    }
    thread_ = std::move(*started);
  }
  const Id id{when, next_id_++};
  const bool earliest = tasks_.empty() || id < tasks_.begin()->first;
  tasks_.emplace(id, std::move(task));
  if (earliest) cv_.Signal();
  return id;
}

void DeadlineTimer::Cancel(Id id) {
  internal::MutexLock lock(&mu_);
  tasks_.erase(id);
}

void DeadlineTimer::Stop() {
  std::map<Id, std::function<void()>> dropped;  // destroyed without the lock
  {
    internal::MutexLock lock(&mu_);
    stopped_ = true;
    dropped.swap(tasks_);
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void DeadlineTimer::Loop() {
  internal::MutexLock lock(&mu_);
  while (!stopped_) {
    if (tasks_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    auto first = tasks_.begin();
    if (absl::Now() < first->first.first) {
      cv_.WaitWithDeadline(&mu_, first->first.first);
      continue;
    }
    std::function<void()> task = std::move(first->second);
    tasks_.erase(first);
    mu_.Unlock();
    task();
    task = nullptr;  // what it holds is released without the lock, too
    mu_.Lock();
  }
}

}  // namespace ipcrpc::internal
