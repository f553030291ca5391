#include "transports/shm/wake.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "base/scoped_fd.h"

namespace ipcrpc::shm {
namespace {

// Most stale posts drained per AnnounceSleep: normally 0 or 1; the bound only
// keeps a peer that posts in a loop from holding this thread here.
constexpr int kMaxDrain = 64;

uint32_t* FutexAddress(std::atomic<uint32_t>* word) {
  return reinterpret_cast<uint32_t*>(word);
}

// FUTEX_WAIT on `word` while it holds `expected`; `timeout` is relative,
// null for none. Shared (not FUTEX_PRIVATE_FLAG): the word is in a mapping
// shared between processes.
long FutexWait(std::atomic<uint32_t>* word, uint32_t expected, const timespec* timeout) {
  return ::syscall(SYS_futex, FutexAddress(word), FUTEX_WAIT, expected, timeout, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  ::syscall(SYS_futex, FutexAddress(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// glibc keeps a semaphore's futex flags in the int after its 64-bit counter
// (struct new_sem); any value but the one sem_init(pshared=1) stores makes
// glibc abort the process ("The futex facility returned an unexpected error
// code") on the next sem_post or blocking wait. The counter itself may hold
// anything without harm.
bool SemaphoreIntact(sem_t* semaphore) {
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))
  static const int kExpected = [] {
    sem_t probe;
    ::sem_init(&probe, /*pshared=*/1, 0);
    int flags;
    std::memcpy(&flags, reinterpret_cast<char*>(&probe) + 8, sizeof(flags));
    ::sem_destroy(&probe);
    return flags;
  }();
  const int* flags = reinterpret_cast<const int*>(reinterpret_cast<char*>(semaphore) + 8);
  return __atomic_load_n(flags, __ATOMIC_RELAXED) == kExpected;
#else
  (void)semaphore;
  return true;
#endif
}

}  // namespace

void WaitPoint::AnnounceSleep() {
  if (semaphore_ != nullptr) {
    // Nobody posts while the word is 0, except a waker that flipped it during
    // an earlier sleep and posts late: drain those posts now, before saying
    // we sleep, so that this sleep is not cut short by them.
    for (int i = 0; i < kMaxDrain && ::sem_trywait(semaphore_) == 0; ++i) {
    }
  }
  sleeping_->store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

absl::Status WaitPoint::Sleep(absl::Time deadline) {
  bool forever = deadline == absl::InfiniteFuture();
  absl::Duration left = deadline - absl::Now();
  if (!forever && left <= absl::ZeroDuration()) return absl::OkStatus();
  if (semaphore_ == nullptr) {
    timespec timeout = absl::ToTimespec(left);
    if (FutexWait(sleeping_, 1, forever ? nullptr : &timeout) < 0 && errno != EAGAIN &&
        errno != EINTR && errno != ETIMEDOUT) {
      return ErrnoStatus(errno, "futex(FUTEX_WAIT)");
    }
    return absl::OkStatus();
  }
  if (!SemaphoreIntact(semaphore_)) {
    return absl::DataLossError("a semaphore in the shared memory was overwritten");
  }
  int rc;
  if (forever) {
    rc = ::sem_wait(semaphore_);
  } else {
    // An absolute CLOCK_MONOTONIC deadline: immune to wall-clock steps.
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    timespec at = absl::ToTimespec(absl::DurationFromTimespec(now) + left);
    rc = ::sem_clockwait(semaphore_, CLOCK_MONOTONIC, &at);
  }
  if (rc < 0 && errno != EINTR && errno != ETIMEDOUT) {
    return ErrnoStatus(errno, "sem_clockwait");
  }
  return absl::OkStatus();
}

void WaitPoint::EndSleep() { sleeping_->store(0, std::memory_order_relaxed); }

void WaitPoint::WakeIfSleeping() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // The plain load keeps the common case (nobody sleeps) free of a locked
  // instruction on a line the waiter owns.
  if (sleeping_->load(std::memory_order_relaxed) == 0) return;
  if (sleeping_->exchange(0, std::memory_order_seq_cst) == 0) return;  // someone else woke it
  if (semaphore_ == nullptr) {
    FutexWakeAll(sleeping_);
  } else if (SemaphoreIntact(semaphore_)) {
    ::sem_post(semaphore_);  // EOVERFLOW only if a peer scribbled on it
  }  // else: the waiter finds the damage itself when it sleeps or re-checks
}

}  // namespace ipcrpc::shm
