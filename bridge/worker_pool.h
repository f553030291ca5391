// ipcrpc gRPC bridge: threads kept for forwarded calls.
//
// A forwarded call needs a thread or two for as long as it runs (ipcrpc's
// streams block). Starting a thread per call costs tens of microseconds, a
// large share of a call, so WorkerPool keeps threads that finished a task
// waiting for the next one (for up to `idle_timeout`) and starts new ones
// only when none waits, up to `max_threads`.
//
// Thread-safety: thread-safe. Lifetime: the destructor waits for running
// tasks to return and for every thread to end.
//
// Example:
//   WorkerPool pool(/*max_threads=*/2000);
//   absl::Status s = pool.Run([call] { call->Downstream(); });
//   if (!s.ok()) ... RESOURCE_EXHAUSTED: the call cannot be served now

#ifndef IPCRPC_BRIDGE_WORKER_POOL_H_
#define IPCRPC_BRIDGE_WORKER_POOL_H_

#include <cstddef>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"

namespace ipcrpc {
namespace grpc_bridge {

class WorkerPool {
 public:
  explicit WorkerPool(size_t max_threads, absl::Duration idle_timeout = absl::Seconds(30));
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `task` on a waiting thread, or a new one; RESOURCE_EXHAUSTED (and
  // `task` dropped) when max_threads run tasks or the system refuses a thread.
  absl::Status Run(std::function<void()> task);

 private:
  struct Worker {
    internal::CondVar cv;
    std::function<void()> task;  // set by Run for a waiting worker
  };
  void Loop(Worker* worker);

  const size_t max_threads_;
  const absl::Duration idle_timeout_;
  internal::Mutex mu_;
  internal::CondVar all_done_cv_;
  std::vector<Worker*> idle_ ABSL_GUARDED_BY(mu_);  // most recently idle last
  size_t threads_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace grpc_bridge
}  // namespace ipcrpc

#endif  // IPCRPC_BRIDGE_WORKER_POOL_H_
