// ipcrpc internal: a fixed-size pool of threads with a bounded queue.
//
// Server handlers run here. Schedule() refuses work when the queue is full so
// that an overloaded server answers RESOURCE_EXHAUSTED instead of growing
// without bound. Thread-safe. The destructor runs what is queued, then joins.
//
// Example:
//   ThreadPool pool(/*max_queued=*/64);
//   IPCRPC_RETURN_IF_ERROR(pool.Start(16));  // RESOURCE_EXHAUSTED if no threads
//   if (!pool.Schedule(task)) { /* refuse */ }

#ifndef IPCRPC_RUNTIME_INTERNAL_THREAD_POOL_H_
#define IPCRPC_RUNTIME_INTERNAL_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/sync.h"
#include "base/thread.h"

namespace ipcrpc::internal {

class ThreadPool {
 public:
  explicit ThreadPool(size_t max_queued);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Starts `num_threads` workers; call once. RESOURCE_EXHAUSTED if one
  // cannot start (those started are stopped by the destructor).
  absl::Status Start(int num_threads, const ThreadStarter& start_thread = StartThread);

  // false (and `task` is dropped) if max_queued tasks are already waiting.
  bool Schedule(std::function<void()> task);
  // Never refused: for work bounded elsewhere (a callback call's reactions,
  // at most one task per call at a time, so by the calls in progress).
  void ScheduleUnbounded(std::function<void()> task);

 private:
  void WorkerLoop();

  const size_t max_queued_;
  internal::Mutex mu_;
  // Signalled once per task (and for all at stopping): one idle worker wakes,
  // not every one (Mutex::Await would wake them all on every unlock).
  internal::CondVar work_cv_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_THREAD_POOL_H_
