// ipcrpc fifo transport: blocking and consuming a write's SIGPIPE
// (sigpipe_block.h).

#include "transports/fifo/sigpipe_block.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace ipcrpc::fifo {

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  sigemptyset(&sigpipe_);
  sigaddset(&sigpipe_, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe_, &old_mask_);
  sigset_t pending;
  sigemptyset(&pending);
  already_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() { pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr); }

void ScopedSigpipeBlock::ConsumeRaised() {
  if (already_pending_) return;
  const timespec zero = {0, 0};
  while (::sigtimedwait(&sigpipe_, nullptr, &zero) < 0 && errno == EINTR) {
  }
}

}  // namespace ipcrpc::fifo
