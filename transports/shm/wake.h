// ipcrpc shm transport: sleeping on a word in shared memory, and waking a
// sleeper only when it said it sleeps.
//
// A WaitPoint is one waiter's wait object in the shared region: its
// "sleeping" word (ring_layout.h), which is also its futex word in FUTEX mode,
// and, in SEMAPHORE mode, its process-shared semaphore. Futex calls never use
// FUTEX_PRIVATE_FLAG: the word is shared between processes.
//
// The protocol cannot lose a wake-up (Dekker's pattern, seq_cst fences):
//
//   waiter                                  waker
//   AnnounceSleep():  sleeping = 1          publish (head/tail/flag store)
//                     fence(seq_cst)        WakeIfSleeping(): fence(seq_cst)
//   if (!ready())     Sleep(deadline)         if sleeping.exchange(0) == 1:
//   EndSleep():       sleeping = 0              FUTEX_WAKE / sem_post
//
// Either the waiter's re-check sees the waker's publication, or the waker
// sees sleeping == 1; a futex wait on the value 1 returns at once once a
// waker stored 0, and a post is counted by the semaphore. Since only the waker
// that flips 1 -> 0 posts, at most one post is issued per announced sleep; a
// post that arrives after its sleeper stopped waiting is drained by the next
// AnnounceSleep(), so stale posts cannot pile up (they cause at most one
// spurious return, after which the caller re-checks).
//
// A peer may scribble on these words: that can cost spurious returns or lost
// wake-ups of this side (deadlines and the liveness watcher still apply),
// never memory outside the region.
//
// SEMAPHORE mode keeps glibc's process-shared sem_t layout but does its own
// semaphore operations on the futex (shared_semaphore.h): glibc's would abort
// the process if a peer scribbled on the semaphore while this side sleeps in
// it. So neither mode can be made to abort by a peer.
//
// Thread-safety: AnnounceSleep/Sleep/EndSleep by the one waiting thread;
// WakeIfSleeping from any thread of either process.

#ifndef IPCRPC_TRANSPORTS_SHM_WAKE_H_
#define IPCRPC_TRANSPORTS_SHM_WAKE_H_

#include <semaphore.h>

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ipcrpc::shm {

class WaitPoint {
 public:
  // `semaphore` is null in FUTEX mode. Both point into the shared mapping,
  // which must outlive this object.
  WaitPoint(std::atomic<uint32_t>* sleeping, sem_t* semaphore)
      : sleeping_(sleeping), semaphore_(semaphore) {}

  // Says "I am going to sleep". The caller must re-check its condition
  // afterwards and call Sleep only if it still does not hold.
  void AnnounceSleep();

  // Sleeps until woken, `deadline`, or a signal. OK in all those cases (the
  // caller re-checks everything, its deadline included); an error status
  // only for an unexpected errno from the futex.
  absl::Status Sleep(absl::Time deadline);

  // Says "I am awake" again (after Sleep, or instead of it).
  void EndSleep();

  // For the waker, after it published what the waiter waits for: wakes the
  // waiter if (and only if) it announced that it sleeps. No system call
  // otherwise.
  void WakeIfSleeping();

 private:
  std::atomic<uint32_t>* sleeping_;
  sem_t* semaphore_;
};

}  // namespace ipcrpc::shm

#endif  // IPCRPC_TRANSPORTS_SHM_WAKE_H_
