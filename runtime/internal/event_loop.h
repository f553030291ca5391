// ipcrpc internal: the server's event loop — where idle connections wait
// without a thread (docs/EVENT_CORE.md, step 1).
//
// A connection whose transport has a readiness fd (Transport::readiness_fd():
// the unix socket) is *watched* here: one epoll set for the whole server,
// every fd registered edge-triggered (EPOLLET) for as long as it is watched.
// Each new readiness (bytes arriving, a hang-up) calls the watcher's
// OnReadable() on one loop thread, which runs the connection's reading there
// (decoding frames and running quick handlers inline, as a reading thread
// does) if the connection was waiting for it. An idle connection costs its
// registration, not a thread.
//
// Edge-triggered means a registration is never re-armed (no system call
// when a connection goes back to waiting) and that the watcher must sort
// its turns itself: a readiness may arrive while another loop thread (or a
// thread of the connection) is still reading, and then calls OnReadable()
// on a second thread at once. The watcher notes it (ReadingRole::BeginTurn
// does) and the reader reads again before it waits; a reader waits only
// once it has read everything readable (Transport::ReadDrained), since
// bytes already there announce nothing more.
//
// Threads: the loop keeps `spare_threads` threads waiting in epoll_wait.
// A thread that takes a readiness and finds no other thread left waiting
// starts one, so a connection whose turn blocks (a handler running inline,
// a write to a peer that does not read) never keeps the others unread. A
// thread beyond the spare ones that waits `idle_exit` without a turn ends,
// if at least `spare_threads` others wait. So the loop holds about as many
// threads as turns ran at once lately, plus spares; under steady load no
// thread is started or ended. Every decision that lowers the count of
// waiting threads is made under the loop's lock with that exact count, so
// the loop is never left with no thread waiting and none on its way.
//
// Lifetime: Watch() keeps a reference to the watcher until Forget(); the fd
// must stay open until then. A readiness that races a Forget() is dropped
// (the id no longer resolves). Stop() forgets every watcher still watched.
//
// Thread-safety: every method is thread-safe. The loop's lock is a leaf; it
// is never held while a watcher runs.
//
// Cost on the per-call path: a connection's turn starts with the epoll_wait
// that returns its readiness, where a thread per connection would block in
// poll() or read(); going back to waiting costs no system call.
//
// Example (what ServerConnection does):
//   absl::StatusOr<EventLoop::Registration> r = loop.Watch(fd, shared_from_this());
//   ...  // on a loop thread, for each new readiness: OnReadable()
//   loop.Forget(*r);  // when the connection ends

#ifndef IPCRPC_RUNTIME_INTERNAL_EVENT_LOOP_H_
#define IPCRPC_RUNTIME_INTERNAL_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "base/sync.h"
#include "base/thread.h"

namespace ipcrpc::internal {

class EventLoop {
 public:
  class Watcher {
   public:
    virtual ~Watcher() = default;
    // On a loop thread, once for each new readiness of the fd (bytes came,
    // hung up, error) — possibly while an earlier call still runs on
    // another thread.
    virtual void OnReadable() = 0;
  };

  // What Post() and Forget() need: the fd and the loop's id for it.
  struct Registration {
    int fd = -1;
    uint64_t id = 0;
  };

  static constexpr int kDefaultSpareThreads = 2;
  static constexpr absl::Duration kDefaultIdleExit = absl::Seconds(1);

  explicit EventLoop(int spare_threads = kDefaultSpareThreads,
                     absl::Duration idle_exit = kDefaultIdleExit,
                     ThreadStarter start_thread = StartThread);
  ~EventLoop();  // Stop()s
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Creates the epoll set and the spare threads. RESOURCE_EXHAUSTED (or the
  // errno's status) if it cannot.
  absl::Status Start();

  // Watches `fd` for `watcher`: a turn for every readiness from now on,
  // including one at once if the fd is readable already. The loop holds
  // `watcher` until Forget(). The errno's status if epoll refuses the fd
  // (ENOSPC: max_user_watches; ENOMEM), FAILED_PRECONDITION once stopped.
  absl::StatusOr<Registration> Watch(int fd, std::shared_ptr<Watcher> watcher);

  // Calls the watcher's OnReadable() soon on a loop thread whether or not
  // its fd is readable (e.g. to read bytes a reader already holds). The
  // watcher must tolerate a turn it did not expect.
  void Post(const Registration& registration);

  // Stops watching and drops the loop's reference (a call in progress keeps
  // its own until it returns). Idempotent.
  void Forget(const Registration& registration);

  // Wakes and joins every loop thread; forgets every watcher. Idempotent.
  void Stop();

  // For tests and benchmarks.
  int threads() const;
  size_t watched() const;

 private:
  void ThreadMain();
  // Starts one more loop thread if not stopping; false if it could not.
  bool StartThreadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Joins the threads that ended on their own.
  void JoinEndedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int spare_threads_;
  const int idle_exit_ms_;  // epoll_wait timeout of a thread beyond the spares
  const ThreadStarter start_thread_;
  ScopedFd epoll_;
  ScopedFd stop_event_;  // eventfd: readable once Stop() begins
  ScopedFd post_event_;  // eventfd: readable while posted_ is not empty
  // Threads in (or on their way back to) epoll_wait. Raised without the
  // lock (a thread back from a turn; a thread being started); lowered only
  // under mu_.
  std::atomic<int> waiting_{0};
  std::atomic<int> thread_count_{0};  // threads_.size(), read without the lock

  mutable internal::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 2;  // 0, 1: the stop and post events
  absl::flat_hash_map<uint64_t, std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> posted_ ABSL_GUARDED_BY(mu_);
  std::list<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::list<std::thread> ended_ ABSL_GUARDED_BY(mu_);  // to be joined
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_EVENT_LOOP_H_
