#include "runtime/internal/thread_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ipcrpc::internal {

ThreadPool::ThreadPool(size_t max_queued) : max_queued_(max_queued) {}

absl::Status ThreadPool::Start(int num_threads, const ThreadStarter& start_thread) {
  threads_.reserve(num_threads);
  for (int i = 0; i < num_threads; ++i) {
    absl::StatusOr<std::thread> t = start_thread([this] { WorkerLoop(); });
    if (!t.ok()) {
      return absl::ResourceExhaustedError(absl::StrCat("cannot start the server's handler pool (",
                                                       i, " of ", num_threads,
                                                       " threads started): ", t.status().message()));
    }
    threads_.push_back(std::move(*t));
  }
  return absl::OkStatus();
}

ThreadPool::~ThreadPool() {
  {
    internal::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

bool ThreadPool::Schedule(std::function<void()> task) {
  internal::MutexLock lock(&mu_);
  if (queue_.size() >= max_queued_) return false;
  queue_.push_back(std::move(task));
  work_cv_.Signal();
  return true;
}

void ThreadPool::ScheduleUnbounded(std::function<void()> task) {
  internal::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
  work_cv_.Signal();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      internal::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) work_cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace ipcrpc::internal
