#include "bridge/worker_pool.h"

#include <algorithm>
#include <memory>
#include <thread>
#include <utility>

#include "base/thread.h"

namespace ipcrpc {
namespace grpc_bridge {

WorkerPool::WorkerPool(size_t max_threads, absl::Duration idle_timeout)
    : max_threads_(max_threads), idle_timeout_(idle_timeout) {}

WorkerPool::~WorkerPool() {
  internal::MutexLock lock(&mu_);
  stopping_ = true;
  for (Worker* w : idle_) w->cv.Signal();
  while (threads_ > 0) all_done_cv_.Wait(&mu_);
}

absl::Status WorkerPool::Run(std::function<void()> task) {
  auto worker = std::make_unique<Worker>();
  {
    internal::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Worker* w = idle_.back();
      idle_.pop_back();
      w->task = std::move(task);
      w->cv.Signal();
      return absl::OkStatus();
    }
    if (stopping_ || threads_ >= max_threads_) {
      return absl::ResourceExhaustedError("gRPC bridge: no thread free for the call");
    }
    ++threads_;
  }
  worker->task = std::move(task);
  Worker* raw = worker.release();  // owned by its thread
  absl::StatusOr<std::thread> thread = internal::StartThread([this, raw] { Loop(raw); });
  if (thread.ok()) {
    thread->detach();
    return absl::OkStatus();
  }
  delete raw;
  internal::MutexLock lock(&mu_);
  if (--threads_ == 0) all_done_cv_.SignalAll();
  return thread.status();
}

void WorkerPool::Loop(Worker* worker) {
  std::unique_ptr<Worker> owned(worker);
  for (;;) {
    std::function<void()> task = std::move(worker->task);
    worker->task = nullptr;
    task();
    task = nullptr;  // what it holds goes now, not while waiting
    internal::MutexLock lock(&mu_);
    if (stopping_) break;
    idle_.push_back(worker);
    absl::Time give_up = absl::Now() + idle_timeout_;
    while (!worker->task && !stopping_ && absl::Now() < give_up) {
      worker->cv.WaitWithDeadline(&mu_, give_up);
    }
    if (!worker->task) {  // timed out or stopping: leave the idle list
      idle_.erase(std::find(idle_.begin(), idle_.end(), worker));
      break;
    }
  }
  internal::MutexLock lock(&mu_);
  if (--threads_ == 0) all_done_cv_.SignalAll();
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
