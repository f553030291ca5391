#include "transports/shm/shared_semaphore.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "base/scoped_fd.h"

namespace ipcrpc::shm {
namespace {

static_assert(sizeof(sem_t) >= sizeof(uint64_t), "glibc's sem_t starts with a 64-bit word");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the count is the low half of the 64-bit word, and the futex word");

constexpr uint64_t kCountMask = 0xffffffffu;
constexpr uint64_t kOneWaiter = uint64_t{1} << 32;
constexpr uint64_t kCountMax = INT_MAX;  // glibc's SEM_VALUE_MAX

std::atomic<uint64_t>& Data(sem_t* semaphore) {
  return *reinterpret_cast<std::atomic<uint64_t>*>(semaphore);
}

// The count's 32 bits, the futex word (little-endian: the word's low half).
uint32_t* CountWord(sem_t* semaphore) { return reinterpret_cast<uint32_t*>(semaphore); }

}  // namespace

bool SemaphoreTryWait(sem_t* semaphore) {
  std::atomic<uint64_t>& data = Data(semaphore);
  uint64_t d = data.load(std::memory_order_relaxed);
  while ((d & kCountMask) != 0) {
    if (data.compare_exchange_weak(d, d - 1, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

absl::Status SemaphoreWait(sem_t* semaphore, absl::Time deadline) {
  if (SemaphoreTryWait(semaphore)) return absl::OkStatus();
  std::atomic<uint64_t>& data = Data(semaphore);
  // Register as a waiter, so that posters wake us.
  uint64_t d = data.fetch_add(kOneWaiter, std::memory_order_relaxed) + kOneWaiter;
  absl::Status outcome;
  for (;;) {
    if ((d & kCountMask) != 0) {
      // Take a count and unregister in one step.
      if (data.compare_exchange_weak(d, d - 1 - kOneWaiter, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
        return absl::OkStatus();
      }
      continue;
    }
    const bool forever = deadline == absl::InfiniteFuture();
    absl::Duration left = deadline - absl::Now();
    if (!forever && left <= absl::ZeroDuration()) {
      outcome = absl::DeadlineExceededError("semaphore wait");
      break;
    }
    timespec timeout = absl::ToTimespec(left);
    long rc = ::syscall(SYS_futex, CountWord(semaphore), FUTEX_WAIT, 0u,
                        forever ? nullptr : &timeout, nullptr, 0);
    if (rc < 0 && errno == EINTR) {
      outcome = absl::AbortedError("semaphore wait interrupted by a signal");
      break;
    }
    if (rc < 0 && errno != EAGAIN && errno != ETIMEDOUT) {
      outcome = ErrnoStatus(errno, "futex(FUTEX_WAIT) on a shared semaphore");
      break;
    }
    d = data.load(std::memory_order_relaxed);
  }
  // Unregister. (A peer may have scribbled the waiter count to 0 meanwhile:
  // it then wraps, which only makes posters wake needlessly.)
  data.fetch_sub(kOneWaiter, std::memory_order_relaxed);
  return outcome;
}

void SemaphorePost(sem_t* semaphore) {
  std::atomic<uint64_t>& data = Data(semaphore);
  uint64_t d = data.load(std::memory_order_relaxed);
  do {
    // Only a scribbler gets the count this high: leave it (a sleeper that
    // wakes finds counts to take) but still wake.
    if ((d & kCountMask) >= kCountMax) break;
  } while (!data.compare_exchange_weak(d, d + 1, std::memory_order_release,
                                       std::memory_order_relaxed));
  if ((d >> 32) != 0 || (d & kCountMask) >= kCountMax) {
    ::syscall(SYS_futex, CountWord(semaphore), FUTEX_WAKE, 1, nullptr, nullptr, 0);
  }
}

}  // namespace ipcrpc::shm
