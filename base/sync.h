// ipcrpc internal: the mutex and condition variable the runtime and the
// transports lock with.
//
// Why not absl::Mutex: Debian's Abseil is built without NDEBUG, so every
// absl::Mutex::Lock runs Abseil's deadlock detector (a global graph of lock
// orders, updated under a global lock). Profiled on a 64 B unary call over
// shm with both processes on one CPU, that was ~29% of all CPU time spent;
// switching it off in the benchmark cut the round trip from 5.1 to 4.0 us.
// A library must not change that process-wide setting behind its user's
// back, so ipcrpc locks with this thin layer over std::mutex instead (which
// ThreadSanitizer also understands, unlike the uninstrumented Debian Abseil).
//
// The interface is the subset of absl::Mutex / absl::CondVar ipcrpc uses,
// with the same meaning:
//   * Mutex::Await(cond) blocks until `cond()` holds, re-checking it whenever
//     another thread releases the mutex (an Unlock, or a CondVar/Await wait),
//     so the code that changes the state need not signal anything.
//   * CondVar waits are woken by Signal/SignalAll (and may wake spuriously);
//     callers loop on their condition.
// The Abseil thread-safety annotations apply, so ABSL_GUARDED_BY(mu_) reads
// as it does with absl::Mutex.
//
// Thread-safety: all of it is thread-safe; a Mutex is not reentrant.
//
// Example:
//   internal::Mutex mu;
//   bool ready ABSL_GUARDED_BY(mu) = false;
//   ...
//   {
//     internal::MutexLock lock(&mu);
//     mu.Await([&] { return ready; });   // returns with mu held
//   }

#ifndef IPCRPC_BASE_SYNC_H_
#define IPCRPC_BASE_SYNC_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ipcrpc::internal {

class CondVar;

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }

  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // Notified under the lock: a woken awaiter may destroy this mutex as soon
    // as it has seen its condition, so nothing may touch it after unlock().
    WakeAwaiters();
    mu_.unlock();
  }

  // Blocks until `cond()` is true. `cond` is evaluated with the mutex held.
  template <typename Predicate>
  void Await(Predicate cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitWithDeadline(cond, absl::InfiniteFuture());
  }

  // As Await, but gives up at `deadline`; returns `cond()`'s last value.
  template <typename Predicate>
  bool AwaitWithDeadline(Predicate cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (cond()) return true;
    // This thread may have changed the state since it locked: let the other
    // awaiters look before it sleeps. (Not on later rounds, where it only
    // evaluated conditions; otherwise two awaiters would wake each other
    // forever.)
    WakeAwaiters();
    ++awaiters_;
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    bool satisfied = true;
    while (!cond()) {
      if (!WaitUntil(await_cv_, lock, deadline)) {
        satisfied = cond();
        break;
      }
    }
    lock.release();
    --awaiters_;
    return satisfied;
  }

 private:
  friend class CondVar;

  void WakeAwaiters() {
    if (awaiters_ > 0) await_cv_.notify_all();
  }

  // Waits on `cv` until notified or `deadline`; false when the deadline passed.
  static bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                        absl::Time deadline) {
    if (deadline == absl::InfiniteFuture()) {
      cv.wait(lock);
      return true;
    }
    // Measured on the steady clock, so a change of the wall clock does not
    // stretch or cut the wait.
    // A far deadline waits in slices (reported as a spurious wake-up), so the
    // chrono arithmetic cannot overflow.
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    if (left > kLongestWait) {
      cv.wait_for(lock, absl::ToChronoNanoseconds(kLongestWait));
      return true;
    }
    return cv.wait_for(lock, absl::ToChronoNanoseconds(left)) == std::cv_status::no_timeout;
  }

  static constexpr absl::Duration kLongestWait = absl::Hours(24);

  std::mutex mu_;
  std::condition_variable await_cv_;  // threads inside Await
  int awaiters_ = 0;                  // guarded by mu_
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` (which the caller holds), waits for a Signal, and locks it
  // again. May return spuriously.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    WaitWithDeadline(mu, absl::InfiniteFuture());
  }

  // As Wait, up to `deadline`; true when the deadline passed first.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    mu->WakeAwaiters();  // releasing mu: awaiters must re-check
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    bool notified = Mutex::WaitUntil(cv_, lock, deadline);
    lock.release();
    return !notified;
  }

  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return WaitWithDeadline(mu, absl::Now() + timeout);
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_BASE_SYNC_H_
