// ipcrpc fifo transport: surviving a write to a FIFO whose reader has gone.
//
// Writing to such a FIFO fails with EPIPE *and* raises SIGPIPE, whose default
// action kills the process. A FIFO has no MSG_NOSIGNAL, and changing the
// process-wide disposition would surprise the application, so for the
// duration of one Write the calling thread blocks SIGPIPE. The kernel directs
// the SIGPIPE of a failed write at the writing thread, so it stays pending on
// this thread, and ConsumeRaised() takes it with a zero-timeout sigtimedwait()
// before the old mask comes back. If a SIGPIPE was already pending when the
// block began, ours merged with it (standard signals do not queue) and that
// one belongs to someone else: it is left pending. (The technique libpq uses,
// pq_block_sigpipe.)
//
// Thread-safety: a ScopedSigpipeBlock changes the signal mask of the thread
// that constructs it; construct, use and destroy it on that one thread.
//
// Example:
//   ScopedSigpipeBlock no_sigpipe;
//   if (::writev(fd, iov, n) < 0 && errno == EPIPE) no_sigpipe.ConsumeRaised();

#ifndef IPCRPC_TRANSPORTS_FIFO_SIGPIPE_BLOCK_H_
#define IPCRPC_TRANSPORTS_FIFO_SIGPIPE_BLOCK_H_

#include <signal.h>

namespace ipcrpc::fifo {

class ScopedSigpipeBlock {
 public:
  // Blocks SIGPIPE in the calling thread; the destructor restores its mask.
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

  // Call after a write failed with EPIPE.
  void ConsumeRaised();

 private:
  sigset_t sigpipe_;
  sigset_t old_mask_;
  bool already_pending_ = false;
};

}  // namespace ipcrpc::fifo

#endif  // IPCRPC_TRANSPORTS_FIFO_SIGPIPE_BLOCK_H_
