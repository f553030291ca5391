#include "transports/shm/wake.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>

#include "base/scoped_fd.h"
#include "transports/shm/shared_semaphore.h"

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

}  // namespace

void WaitPoint::AnnounceSleep() {
  if (semaphore_ != nullptr) {
    // Nobody posts while the word is 0, except a waker that flipped it during
    // an earlier sleep and posts late: drain those posts now, before saying
    // we sleep, so that this sleep is not cut short by them.
    for (int i = 0; i < kMaxDrain && SemaphoreTryWait(semaphore_); ++i) {
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
  absl::Status status = SemaphoreWait(semaphore_, deadline);
  if (!status.ok() && !absl::IsDeadlineExceeded(status) && !absl::IsAborted(status)) {
    return status;
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
  } else {
    SemaphorePost(semaphore_);
  }
}

}  // namespace ipcrpc::shm
