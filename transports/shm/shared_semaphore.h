// ipcrpc shm transport: the "shm+sem" wake-up's semaphore operations,
// written on the futex directly so that no value a peer writes into the
// shared semaphore can make this process abort.
//
// The semaphores live in the shared region (ring_layout.h) in glibc's
// process-shared sem_t layout (x86-64 / aarch64, 64-bit atomics), so a peer
// that uses glibc's sem_post/sem_wait on them interoperates:
//
//   offset 0   u64  data      low 32 bits: the count; high 32 bits: waiters
//   offset 8   i32  private   0 for a process-shared semaphore (ignored here)
//
// Why not glibc's own functions: glibc aborts the process ("The futex
// facility returned an unexpected error code") when the futex call fails in a
// way it does not expect, which a peer can cause by scribbling on the
// semaphore while this side sleeps in it. These functions make every futex
// call themselves, always as a shared futex (never FUTEX_PRIVATE_FLAG,
// whatever `private` holds), treat every count and waiter value as possible
// garbage, and turn an unexpected error into a status. A scribbling peer can
// cost spurious or missed wake-ups (which the ring's deadlines and liveness
// checks bound), never a crash.
//
// Thread-safety: any thread of either process, concurrently.

#ifndef IPCRPC_TRANSPORTS_SHM_SHARED_SEMAPHORE_H_
#define IPCRPC_TRANSPORTS_SHM_SHARED_SEMAPHORE_H_

#include <semaphore.h>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ipcrpc::shm {

// Takes one count if there is one; never blocks.
bool SemaphoreTryWait(sem_t* semaphore);

// Takes one count, sleeping until there is one or `deadline` passes (or a
// signal arrives). OK when a count was taken; DEADLINE_EXCEEDED, or ABORTED
// for a signal, when not; another status for an unexpected futex error.
absl::Status SemaphoreWait(sem_t* semaphore, absl::Time deadline);

// Adds one count and wakes one sleeper if any is registered. A count at its
// maximum (only a scribbling peer gets it there) is left as it is, and a
// sleeper is woken anyway.
void SemaphorePost(sem_t* semaphore);

}  // namespace ipcrpc::shm

#endif  // IPCRPC_TRANSPORTS_SHM_SHARED_SEMAPHORE_H_
